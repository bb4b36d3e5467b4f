//! `feeds.toml` → a validated [`Config`].
//!
//! Every error carries the file, line and column it comes from, so the CLI can
//! print `feeds.toml:12:7: message` and an editor can jump to it. This module
//! reads the file and nothing else: no network, no database.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::mail::{Address, Mailbox};
use crate::scheduler::{CronSchedule, ScheduleError};

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file, as given by the user.
    pub path: PathBuf,
    /// 1-based line; 0 when the error is about the file as a whole.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the stories are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

/// Where a feed is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeedSource {
    /// Fetched over HTTP(S).
    Http(Url),
    /// Read from a local file (scripts that generate feeds, offline demos).
    File(PathBuf),
}

impl FeedSource {
    /// The source as a URL string (`file://` for local files), for ids and OPML.
    pub fn as_url_string(&self) -> String {
        match self {
            FeedSource::Http(u) => u.to_string(),
            FeedSource::File(p) => Url::from_file_path(p)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| p.display().to_string()),
        }
    }
}

impl fmt::Display for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedSource::Http(u) => write!(f, "{u}"),
            FeedSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One `[[feeds]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    /// Unique display name; also the feed's key in the store.
    pub name: String,
    /// Where to read it.
    pub source: FeedSource,
    /// Tags every story of this feed gets.
    pub tags: Vec<String>,
    /// How often to poll it (the global `poll_interval` when unset).
    pub interval: Duration,
    /// When several feeds carry a story, the one with the highest priority
    /// provides its title and link (then the earliest).
    pub priority: i64,
}

/// `[dedup]`: when items from different feeds are one story.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupConfig {
    /// Near duplicates are looked for among stories this close in time.
    pub window: Duration,
    /// Estimated Jaccard similarity of word 3-grams at or above which two
    /// items are one story (0 to 1).
    pub threshold: f64,
    /// Extra query parameters dropped from links before comparing them.
    pub strip_params: Vec<String>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window: Duration::from_secs(7 * 86400),
            threshold: crate::dedup::DEFAULT_THRESHOLD,
            strip_params: Vec::new(),
        }
    }
}

/// Parts of an item a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// The title.
    Title,
    /// The summary's text.
    Summary,
    /// The full content's text.
    Content,
    /// The feed's categories for the item.
    Categories,
}

/// Every field, the default of a rule.
pub const ALL_FIELDS: [Field; 4] = [
    Field::Title,
    Field::Summary,
    Field::Content,
    Field::Categories,
];

/// What a `[[tags]]` or `[[exclude]]` rule matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher {
    /// Whole words or phrases, case- and accent-insensitive.
    pub keywords: Vec<String>,
    /// Regular expressions (Rust `regex` syntax; add `(?i)` for case-insensitive).
    pub regex: Vec<String>,
    /// Fields the keywords and expressions look at.
    pub fields: Vec<Field>,
}

/// One `[[tags]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRule {
    /// The tag's name (a slug: used in `tags/<name>.atom`).
    pub name: String,
    /// Keywords, expressions and the fields they look at.
    pub matcher: Matcher,
    /// Feed categories (case- and accent-insensitive) that give this tag.
    pub categories: Vec<String>,
}

/// `[fetch]`: how feeds are fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchConfig {
    /// Whole-request timeout, body included.
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Bodies larger than this are abandoned (after decompression).
    pub max_body_size: u64,
    /// Feeds fetched at once, over all hosts.
    pub concurrency: usize,
    /// Feeds fetched at once from one host.
    pub per_host: usize,
    /// Longest wait after repeated failures.
    pub max_backoff: Duration,
    /// Overrides the default `gazette/VERSION (+site_url)` User-Agent.
    pub user_agent: Option<String>,
    /// CPU time one document may take to parse and normalise before it is
    /// abandoned (its feed fails with an error; the poll goes on).
    pub parse_timeout: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_size: 10_000_000,
            concurrency: 16,
            per_host: 4,
            max_backoff: Duration::from_secs(24 * 3600),
            user_agent: None,
            parse_timeout: Duration::from_secs(10),
        }
    }
}

/// `[http]`: the built-in web server.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address to listen on; loopback by default.
    pub listen: SocketAddr,
    /// How long a client may take to send a request's headers (and a
    /// kept-alive connection may wait for its next request).
    pub header_read_timeout: Duration,
    /// Connections open at once; at the cap the longest-idle one is closed.
    pub max_connections: usize,
}

/// `[publish]`: the written feeds and page.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// Output folder.
    pub dir: PathBuf,
    /// Stories per published feed.
    pub entries: usize,
    /// WebSub hub announced in the published feeds (`link rel="hub"`).
    pub hub: Option<Url>,
}

/// How digests leave the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `.eml` files in the outbox folder.
    File,
    /// An SMTP server.
    Smtp,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (loopback relays only).
    None,
}

/// `[digest.smtp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// AUTH user name, if the server wants one.
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// Connect and per-command timeout.
    pub timeout: Duration,
    /// Further attempts after a temporary failure (4xx reply or a lost connection).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    /// A PEM file of CA certificates to trust besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
}

/// Default subject template of the digest.
pub const DEFAULT_SUBJECT: &str = "{title} — {count} stories, {period}";

// ---- defaults of the settings that have no `Default` impl ----

/// Title of the published feeds and the digest.
const DEFAULT_TITLE: &str = "gazette";
/// Public address when `site_url` is not set.
const DEFAULT_SITE_URL: &str = "http://127.0.0.1:8080/";
/// The SQLite file, beside the configuration.
const DEFAULT_DATABASE: &str = "gazette.db";
/// How often each feed is polled.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(3600);
/// No feed is polled more often.
const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(300);
/// How long `gazette run` lets in-flight work finish on SIGTERM.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest retention.
const MIN_RETENTION: Duration = Duration::from_secs(86_400);
/// `[http] listen`: loopback.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `[http] header_read_timeout`.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `[http] max_connections`.
const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// `[publish] dir`, beside the configuration.
const DEFAULT_PUBLISH_DIR: &str = "public";
/// `[publish] entries`.
const DEFAULT_ENTRIES: usize = 100;
/// `[digest] schedule`: Mondays 08:00.
const DEFAULT_SCHEDULE: &str = "0 8 * * Mon";
/// `[digest] timezone`.
const DEFAULT_TIMEZONE: &str = "UTC";
/// `[digest] outbox`, beside the configuration.
const DEFAULT_OUTBOX: &str = "outbox";
/// `[digest.smtp] timeout`.
const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// `[digest.smtp] retries`.
const DEFAULT_SMTP_RETRIES: u32 = 3;
/// `[digest.smtp] retry_delay`.
const DEFAULT_SMTP_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The name the single `[digest]` section gets: its ledger, archive and
/// unsubscribe list go by it.
pub const DEFAULT_DIGEST_NAME: &str = "digest";

/// One digest: a `[[digests]]` entry, or the single `[digest]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestConfig {
    /// Unique name (a slug): its ledger, archive, feed and unsubscribe list go by it.
    pub name: String,
    /// Only stories with one of these tags (empty: every story).
    pub tags: Vec<String>,
    /// No story with one of these tags.
    pub exclude_tags: Vec<String>,
    /// A period with fewer stories is recorded as skipped (0 with `send_when_empty`).
    pub min_stories: usize,
    /// Its title in subjects, pages and its feed (default: the top-level `title`).
    pub title: String,
    /// When it is sent: a cron expression in its time zone.
    pub schedule: CronSchedule,
    /// From header.
    pub from: Mailbox,
    /// Recipients listed in the file.
    pub to: Vec<Mailbox>,
    /// A file with one recipient per line.
    pub subscribers: Option<PathBuf>,
    /// File outbox or SMTP.
    pub transport: Transport,
    /// Folder for `.eml` files with the file transport.
    pub outbox: PathBuf,
    /// SMTP settings.
    pub smtp: Option<SmtpConfig>,
    /// Send a digest for a period without stories (otherwise it is recorded as skipped).
    pub send_when_empty: bool,
    /// Subject template: `{title}`, `{count}` and `{period}` are replaced.
    pub subject: String,
    /// Tags whose sections come first, in this order; other tags follow
    /// alphabetically, then "Other" for untagged stories.
    pub sections: Vec<String>,
    /// One-click unsubscribe URL (`{email}` is replaced by the recipient).
    pub unsubscribe_url: Option<String>,
    /// Address that unsubscribes a recipient who writes to it.
    pub unsubscribe_mailto: Option<Address>,
    /// List-Id header value, e.g. `Watch <digest.news.example.org>`.
    pub list_id: String,
}

impl Config {
    /// The digest named `name`.
    pub fn digest_named(&self, name: &str) -> Option<&DigestConfig> {
        self.digests.iter().find(|d| d.name == name)
    }
}

impl DigestConfig {
    /// The time zone the schedule, dates and period labels are read in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.schedule.timezone()
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Title of the published feeds and the digest.
    pub title: String,
    /// Public address; ids and self links derive from it.
    pub site_url: Url,
    /// The store.
    pub database: DatabaseUrl,
    /// Default polling interval.
    pub poll_interval: Duration,
    /// Stories older than this are pruned by the daemon's daily job (`None`: kept forever).
    pub retention: Option<Duration>,
    /// How long `gazette run` waits for in-flight work on SIGINT/SIGTERM.
    pub shutdown_timeout: Duration,
    /// No feed is polled more often than this.
    pub min_interval: Duration,
    /// Fetch settings.
    pub fetch: FetchConfig,
    /// Web server settings.
    pub http: HttpConfig,
    /// Publishing settings.
    pub publish: PublishConfig,
    /// The digests: `[[digests]]` entries, and `[digest]` as one named "digest".
    pub digests: Vec<DigestConfig>,
    /// Duplicate detection settings.
    pub dedup: DedupConfig,
    /// The feeds, in file order.
    pub feeds: Vec<FeedConfig>,
    /// Tag rules.
    pub tags: Vec<TagRule>,
    /// Exclusion rules: matching stories are kept but left out of every output.
    pub exclude: Vec<Matcher>,
}

/// The top-level durations, validated.
struct TopLevel {
    poll_interval: Duration,
    min_interval: Duration,
    retention: Option<Duration>,
    shutdown_timeout: Duration,
}

// ---- raw, spanned shape as written in the file ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    title: Option<Spanned<String>>,
    site_url: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    min_interval: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    fetch: Option<RawFetch>,
    http: Option<RawHttp>,
    publish: Option<RawPublish>,
    digest: Option<Spanned<RawDigest>>,
    #[serde(default)]
    digests: Vec<Spanned<RawDigest>>,
    dedup: Option<RawDedup>,
    #[serde(default)]
    feeds: Vec<Spanned<RawFeed>>,
    #[serde(default)]
    tags: Vec<Spanned<RawTag>>,
    #[serde(default)]
    exclude: Vec<Spanned<RawExclude>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_body_size: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    per_host: Option<Spanned<i64>>,
    max_backoff: Option<Spanned<String>>,
    user_agent: Option<String>,
    parse_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedup {
    window: Option<Spanned<String>>,
    threshold: Option<Spanned<f64>>,
    #[serde(default)]
    strip_params: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    header_read_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    dir: Option<String>,
    entries: Option<Spanned<i64>>,
    hub: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    name: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    exclude_tags: Vec<Spanned<String>>,
    min_stories: Option<Spanned<i64>>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    subscribers: Option<String>,
    transport: Option<Transport>,
    outbox: Option<String>,
    smtp: Option<Spanned<RawSmtp>>,
    send_when_empty: Option<bool>,
    subject: Option<Spanned<String>>,
    #[serde(default)]
    sections: Vec<Spanned<String>>,
    unsubscribe_url: Option<Spanned<String>>,
    unsubscribe_mailto: Option<Spanned<String>>,
    list_id: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    security: Option<SmtpSecurity>,
    username: Option<String>,
    password_env: Option<String>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<i64>>,
    retry_delay: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    priority: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    name: Spanned<String>,
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    regex: Vec<Spanned<String>>,
    #[serde(default)]
    categories: Vec<String>,
    fields: Option<Vec<Field>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclude {
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    regex: Vec<Spanned<String>>,
    fields: Option<Vec<Field>>,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Config::parse_bytes(path, &bytes)
    }

    /// Validates the bytes of a file read from `path`: invalid UTF-8 is an
    /// error at its first bad byte.
    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(path, bytes, e))?;
        Config::parse(path, text)
    }

    /// Validates `text` as if read from `path` (relative paths resolve beside it).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let ctx = Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ctx.err(span, improve_serde_message(e.message()))
        })?;
        ctx.validate(raw)
    }
}

fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir_of(self.path).join(p)
        }
    }

    fn duration(&self, v: &Spanned<String>) -> Result<Duration, ConfigError> {
        let d = parse_duration(v.get_ref()).map_err(|m| self.err(v.span(), m))?;
        if d.is_zero() {
            return Err(self.err(v.span(), "duration must be greater than zero"));
        }
        Ok(d)
    }

    fn positive(&self, v: &Spanned<i64>, what: &str) -> Result<usize, ConfigError> {
        match usize::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(self.err(v.span(), format!("{what} must be a positive number"))),
        }
    }

    /// The whole file, one section at a time; each section's defaults are
    /// in its own function.
    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let top = self.top_level(&raw)?;
        let title = self.title(raw.title)?;
        let site_url = self.site_url(raw.site_url)?;
        let digests = self.digests(raw.digest, raw.digests, &title, &site_url)?;
        Ok(Config {
            path: self.path.to_path_buf(),
            database: self.database_setting(raw.database.as_ref())?,
            fetch: self.fetch(raw.fetch)?,
            http: self.http(raw.http)?,
            publish: self.publish(raw.publish)?,
            dedup: self.dedup(raw.dedup)?,
            tags: self.tags(raw.tags)?,
            exclude: self.exclude(raw.exclude)?,
            feeds: self.feeds(raw.feeds, top.poll_interval)?,
            digests,
            title,
            site_url,
            poll_interval: top.poll_interval,
            min_interval: top.min_interval,
            retention: top.retention,
            shutdown_timeout: top.shutdown_timeout,
        })
    }

    fn title(&self, t: Option<Spanned<String>>) -> Result<String, ConfigError> {
        match t {
            Some(t) if t.get_ref().trim().is_empty() => {
                Err(self.err(t.span(), "title must not be empty"))
            }
            Some(t) => Ok(t.into_inner()),
            None => Ok(DEFAULT_TITLE.to_string()),
        }
    }

    fn site_url(&self, s: Option<Spanned<String>>) -> Result<Url, ConfigError> {
        let Some(s) = s else {
            return Ok(Url::parse(DEFAULT_SITE_URL).expect("static url"));
        };
        let mut u = Url::parse(s.get_ref())
            .map_err(|e| self.err(s.span(), format!("site_url is not a valid URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(self.err(s.span(), "site_url must be an http:// or https:// URL"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(self.err(s.span(), "site_url has no host"));
        }
        // Published paths are joined to it: it names a folder.
        if !u.path().ends_with('/') {
            let path = format!("{}/", u.path());
            u.set_path(&path);
        }
        u.set_query(None);
        u.set_fragment(None);
        Ok(u)
    }

    /// The top-level durations.
    fn top_level(&self, raw: &RawConfig) -> Result<TopLevel, ConfigError> {
        let or = |v: &Option<Spanned<String>>, default: Duration| match v {
            Some(d) => self.duration(d),
            None => Ok(default),
        };
        let retention = match &raw.retention {
            Some(d) => {
                let r = self.duration(d)?;
                if r < MIN_RETENTION {
                    return Err(self.err(d.span(), "retention must be at least 1d"));
                }
                Some(r)
            }
            None => None,
        };
        Ok(TopLevel {
            poll_interval: or(&raw.poll_interval, DEFAULT_POLL_INTERVAL)?,
            min_interval: or(&raw.min_interval, DEFAULT_MIN_INTERVAL)?,
            shutdown_timeout: or(&raw.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT)?,
            retention,
        })
    }

    /// `[fetch]`; defaults in [`FetchConfig::default`].
    fn fetch(&self, f: Option<RawFetch>) -> Result<FetchConfig, ConfigError> {
        let mut fetch = FetchConfig::default();
        let Some(f) = f else {
            return Ok(fetch);
        };
        if let Some(v) = &f.timeout {
            fetch.timeout = self.duration(v)?;
        }
        if let Some(v) = &f.connect_timeout {
            fetch.connect_timeout = self.duration(v)?;
        }
        if let Some(v) = &f.max_body_size {
            fetch.max_body_size = parse_size(v.get_ref()).map_err(|m| self.err(v.span(), m))?;
        }
        if let Some(v) = &f.concurrency {
            fetch.concurrency = self.positive(v, "concurrency")?;
        }
        if let Some(v) = &f.per_host {
            fetch.per_host = self.positive(v, "per_host")?;
        }
        if let Some(v) = &f.max_backoff {
            fetch.max_backoff = self.duration(v)?;
        }
        if let Some(v) = &f.parse_timeout {
            fetch.parse_timeout = self.duration(v)?;
        }
        fetch.user_agent = f.user_agent;
        Ok(fetch)
    }

    /// `[http]`; loopback by default.
    fn http(&self, h: Option<RawHttp>) -> Result<HttpConfig, ConfigError> {
        let h = h.unwrap_or(RawHttp {
            listen: None,
            header_read_timeout: None,
            max_connections: None,
        });
        Ok(HttpConfig {
            listen: match &h.listen {
                Some(l) => parse_listen(l.get_ref()).map_err(|m| self.err(l.span(), m))?,
                None => DEFAULT_LISTEN.parse().expect("static addr"),
            },
            header_read_timeout: match &h.header_read_timeout {
                Some(v) => self.duration(v)?,
                None => DEFAULT_HEADER_READ_TIMEOUT,
            },
            max_connections: match &h.max_connections {
                Some(v) => self.positive(v, "max_connections")?,
                None => DEFAULT_MAX_CONNECTIONS,
            },
        })
    }

    /// `[publish]`.
    fn publish(&self, p: Option<RawPublish>) -> Result<PublishConfig, ConfigError> {
        let mut publish = PublishConfig {
            dir: self.resolve(DEFAULT_PUBLISH_DIR),
            entries: DEFAULT_ENTRIES,
            hub: None,
        };
        let Some(p) = p else {
            return Ok(publish);
        };
        if let Some(h) = &p.hub {
            publish.hub = Some(self.http_url(h, "hub")?);
        }
        if let Some(d) = p.dir {
            publish.dir = self.resolve(&d);
        }
        if let Some(e) = &p.entries {
            publish.entries = self.positive(e, "entries")?;
        }
        Ok(publish)
    }

    /// `[dedup]`; defaults in [`DedupConfig::default`].
    fn dedup(&self, d: Option<RawDedup>) -> Result<DedupConfig, ConfigError> {
        let mut dedup = DedupConfig::default();
        let Some(d) = d else {
            return Ok(dedup);
        };
        if let Some(w) = &d.window {
            dedup.window = self.duration(w)?;
        }
        if let Some(t) = &d.threshold {
            if !(0.0..=1.0).contains(t.get_ref()) || *t.get_ref() == 0.0 {
                return Err(self.err(
                    t.span(),
                    "threshold must be above 0 and at most 1 (e.g. 0.5)",
                ));
            }
            dedup.threshold = *t.get_ref();
        }
        dedup.strip_params = d.strip_params;
        Ok(dedup)
    }

    /// `[[tags]]`: unique slugs, each with something to match.
    fn tags(&self, raw: Vec<Spanned<RawTag>>) -> Result<Vec<TagRule>, ConfigError> {
        let mut tags = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for t in raw {
            let span = t.span();
            let t = t.into_inner();
            self.slug(&t.name)?;
            if let Some(first) = names.get(t.name.get_ref()) {
                return Err(self.err(
                    t.name.span(),
                    format!(
                        "tag {:?} is already defined on line {}",
                        t.name.get_ref(),
                        self.line(*first)
                    ),
                ));
            }
            names.insert(t.name.get_ref().clone(), span.start);
            if t.keywords.is_empty() && t.regex.is_empty() && t.categories.is_empty() {
                return Err(self.err(span, "a [[tags]] rule needs keywords, regex or categories"));
            }
            tags.push(TagRule {
                name: t.name.into_inner(),
                matcher: self.matcher(t.keywords, t.regex, t.fields)?,
                categories: t.categories,
            });
        }
        Ok(tags)
    }

    /// `[[exclude]]`.
    fn exclude(&self, raw: Vec<Spanned<RawExclude>>) -> Result<Vec<Matcher>, ConfigError> {
        let mut exclude = Vec::new();
        for x in raw {
            let span = x.span();
            let x = x.into_inner();
            if x.keywords.is_empty() && x.regex.is_empty() {
                return Err(self.err(span, "an [[exclude]] rule needs keywords or regex"));
            }
            exclude.push(self.matcher(x.keywords, x.regex, x.fields)?);
        }
        Ok(exclude)
    }

    /// `[[feeds]]`: unique names (ignoring case) and sources.
    fn feeds(
        &self,
        raw: Vec<Spanned<RawFeed>>,
        poll_interval: Duration,
    ) -> Result<Vec<FeedConfig>, ConfigError> {
        let mut feeds = Vec::new();
        // Byte offsets of first uses; turned into line numbers only for an error.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut urls: HashMap<FeedSource, usize> = HashMap::new();
        for f in raw {
            let f = f.into_inner();
            let name = f.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(self.err(f.name.span(), "feed name must not be empty"));
            }
            if let Some(first) = names.get(&name.to_lowercase()) {
                return Err(self.err(
                    f.name.span(),
                    format!(
                        "duplicate feed name {name:?}: already used on line {}",
                        self.line(*first)
                    ),
                ));
            }
            names.insert(name.to_lowercase(), f.name.span().start);
            let source = self.feed_source(&f.url)?;
            if let Some(first) = urls.get(&source) {
                return Err(self.err(
                    f.url.span(),
                    format!(
                        "duplicate feed url {source}: already listed on line {}",
                        self.line(*first)
                    ),
                ));
            }
            urls.insert(source.clone(), f.url.span().start);
            let mut feed_tags = Vec::new();
            for t in &f.tags {
                self.slug(t)?;
                if !feed_tags.contains(t.get_ref()) {
                    feed_tags.push(t.get_ref().clone());
                }
            }
            let interval = match &f.interval {
                Some(d) => self.duration(d)?,
                None => poll_interval,
            };
            feeds.push(FeedConfig {
                name,
                source,
                tags: feed_tags,
                interval,
                priority: f.priority,
            });
        }
        Ok(feeds)
    }

    /// An http(s) URL.
    fn http_url(&self, v: &Spanned<String>, what: &str) -> Result<Url, ConfigError> {
        let u = Url::parse(v.get_ref())
            .map_err(|e| self.err(v.span(), format!("{what} is not a valid URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(self.err(
                v.span(),
                format!("{what} must be an http:// or https:// URL"),
            ));
        }
        Ok(u)
    }

    /// A mailbox (`addr` or `Name <addr>`).
    fn mailbox(&self, v: &Spanned<String>, what: &str) -> Result<Mailbox, ConfigError> {
        let s = v.get_ref().trim();
        let bad = || self.err(v.span(), format!("{what}{s:?} is not an email address"));
        if !looks_like_mailbox(s) {
            return Err(bad());
        }
        s.parse::<Mailbox>().map_err(|_| bad())
    }

    fn matcher(
        &self,
        keywords: Vec<Spanned<String>>,
        regex: Vec<Spanned<String>>,
        fields: Option<Vec<Field>>,
    ) -> Result<Matcher, ConfigError> {
        let mut m = Matcher {
            fields: fields.unwrap_or_else(|| ALL_FIELDS.to_vec()),
            ..Matcher::default()
        };
        for k in keywords {
            if k.get_ref().trim().is_empty() {
                return Err(self.err(k.span(), "keywords must not be empty"));
            }
            m.keywords.push(k.into_inner().trim().to_string());
        }
        for r in regex {
            if let Err(e) = regex::Regex::new(r.get_ref()) {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or("invalid").trim();
                return Err(self.err(
                    r.span(),
                    format!("invalid regex {:?}: {first}", r.get_ref()),
                ));
            }
            m.regex.push(r.into_inner());
        }
        Ok(m)
    }

    /// `database`, or the [`DATABASE_ENV`] variable that overrides it (so
    /// passwords stay out of the file); the SQLite file beside the
    /// configuration by default.
    fn database_setting(&self, d: Option<&Spanned<String>>) -> Result<DatabaseUrl, ConfigError> {
        if let Ok(url) = std::env::var(DATABASE_ENV)
            && !url.trim().is_empty()
        {
            return database_url(&url, |p| self.resolve(p)).map_err(|m| ConfigError {
                path: self.path.to_path_buf(),
                line: 0,
                col: 0,
                message: format!("{DATABASE_ENV}: {m}"),
            });
        }
        match d {
            Some(d) => database_url(d.get_ref(), |p| self.resolve(p))
                .map_err(|m| self.err(d.span(), format!("database: {m}"))),
            None => Ok(DatabaseUrl::Sqlite(self.resolve(DEFAULT_DATABASE))),
        }
    }

    fn feed_source(&self, u: &Spanned<String>) -> Result<FeedSource, ConfigError> {
        let s = u.get_ref().trim();
        if s.is_empty() {
            return Err(self.err(u.span(), "feed url must not be empty"));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = Url::parse(s)
                .map_err(|e| self.err(u.span(), format!("invalid feed url {s:?}: {e}")))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(self.err(u.span(), format!("feed url {s:?} has no host")));
            }
            return Ok(FeedSource::Http(url));
        }
        if lower.starts_with("file://") {
            let url = Url::parse(s)
                .map_err(|e| self.err(u.span(), format!("invalid file url {s:?}: {e}")))?;
            let p = url
                .to_file_path()
                .map_err(|_| self.err(u.span(), format!("file url {s:?} is not a local path")))?;
            return Ok(FeedSource::File(p));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(self.err(
                u.span(),
                format!(
                    "unsupported url scheme {scheme:?}: use http://, https://, file:// or a file path"
                ),
            ));
        }
        Ok(FeedSource::File(self.resolve(s)))
    }

    fn slug(&self, t: &Spanned<String>) -> Result<(), ConfigError> {
        let s = t.get_ref();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && !s.starts_with('-');
        if ok {
            Ok(())
        } else {
            Err(self.err(
                t.span(),
                format!(
                    "tag {s:?} must use lower-case letters, digits, '-' and '_' only (it becomes a file name)"
                ),
            ))
        }
    }

    /// `[digest]` (named "digest" unless it says otherwise) and every
    /// `[[digests]]`, each with a unique name.
    fn digests(
        &self,
        single: Option<Spanned<RawDigest>>,
        several: Vec<Spanned<RawDigest>>,
        title: &str,
        site_url: &Url,
    ) -> Result<Vec<DigestConfig>, ConfigError> {
        let mut out: Vec<DigestConfig> = Vec::new();
        let single = single.map(|d| (d, true));
        for (d, legacy) in single
            .into_iter()
            .chain(several.into_iter().map(|d| (d, false)))
        {
            let span = d.span();
            let name_span = d.get_ref().name.as_ref().map(|n| n.span());
            let cfg = self.digest(d, legacy, title, site_url)?;
            if out.iter().any(|o| o.name == cfg.name) {
                return Err(self.err(
                    name_span.unwrap_or(span),
                    format!("a digest named {:?} is already configured: each digest needs a unique name", cfg.name),
                ));
            }
            out.push(cfg);
        }
        Ok(out)
    }

    /// One digest: the schedule, the addresses, the transport, the content
    /// and the list headers.
    fn digest(
        &self,
        d: Spanned<RawDigest>,
        legacy: bool,
        title: &str,
        site_url: &Url,
    ) -> Result<DigestConfig, ConfigError> {
        let span = d.span();
        let d = d.into_inner();
        let section = if legacy { "[digest]" } else { "[[digests]]" };
        let name = match &d.name {
            Some(n) => {
                let s = n.get_ref();
                let ok = !s.is_empty()
                    && s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
                    && !s.starts_with('-');
                if !ok {
                    return Err(self.err(
                        n.span(),
                        format!("digest name {s:?} must use lower-case letters, digits, '-' and '_' only (it is part of web addresses)"),
                    ));
                }
                s.clone()
            }
            None if legacy => DEFAULT_DIGEST_NAME.to_string(),
            None => return Err(self.err(span, "[[digests]] needs a `name`")),
        };
        let mut tags = Vec::new();
        for t in d.tags {
            self.slug(&t)?;
            tags.push(t.into_inner());
        }
        let mut exclude_tags = Vec::new();
        for t in d.exclude_tags {
            self.slug(&t)?;
            exclude_tags.push(t.into_inner());
        }
        let digest_title = match d.title {
            Some(t) if t.get_ref().trim().is_empty() => {
                return Err(self.err(t.span(), "title must not be empty"));
            }
            Some(t) => t.into_inner(),
            None => title.to_string(),
        };
        let send_when_empty = d.send_when_empty.unwrap_or(false);
        let min_stories = match &d.min_stories {
            Some(m) => usize::try_from(*m.get_ref())
                .map_err(|_| self.err(m.span(), "min_stories must be 0 or a positive number"))?,
            None if send_when_empty => 0,
            None => 1,
        };
        let schedule = self.schedule(d.schedule, d.timezone.as_ref(), &span)?;
        let from = match &d.from {
            Some(f) => self.mailbox(f, "from ")?,
            None => return Err(self.err(span, format!("{section} needs a `from` address"))),
        };
        let to =
            d.to.iter()
                .map(|t| self.mailbox(t, ""))
                .collect::<Result<Vec<_>, _>>()?;
        let transport = d.transport.unwrap_or(Transport::File);
        let smtp = d.smtp.map(|s| self.smtp(s)).transpose()?;
        if transport == Transport::Smtp && smtp.is_none() {
            let smtp_section = if legacy {
                "[digest.smtp]"
            } else {
                "[digests.smtp]"
            };
            return Err(self.err(
                span,
                format!("transport = \"smtp\" needs a {smtp_section} section"),
            ));
        }
        let subject = match d.subject {
            Some(s) if s.get_ref().trim().is_empty() => {
                return Err(self.err(s.span(), "subject must not be empty"));
            }
            Some(s) => s.into_inner(),
            None => DEFAULT_SUBJECT.to_string(),
        };
        let mut sections = Vec::new();
        for t in d.sections {
            self.slug(&t)?;
            sections.push(t.into_inner());
        }
        let unsubscribe_url = match d.unsubscribe_url {
            Some(u) => {
                // `{email}` is replaced per recipient.
                let probe = Spanned::new(u.span(), u.get_ref().replace("{email}", "x"));
                self.http_url(&probe, "unsubscribe_url")?;
                Some(u.into_inner())
            }
            None => None,
        };
        let unsubscribe_mailto = match d.unsubscribe_mailto {
            Some(m) => {
                let addr = m.get_ref().trim().trim_start_matches("mailto:");
                match addr.parse::<Address>() {
                    Ok(a) if looks_like_mailbox(addr) => Some(a),
                    _ => {
                        return Err(self.err(
                            m.span(),
                            format!(
                                "unsubscribe_mailto {:?} is not an email address",
                                m.get_ref()
                            ),
                        ));
                    }
                }
            }
            None => None,
        };
        let list_id = match d.list_id {
            Some(l) if l.get_ref().trim().is_empty() || !l.get_ref().is_ascii() => {
                return Err(self.err(
                    l.span(),
                    "list_id must be non-empty ASCII, e.g. \"Watch <digest.example.org>\"",
                ));
            }
            Some(l) => l.into_inner(),
            None if legacy => default_list_id(title, site_url),
            None => default_list_id_named(&digest_title, &name, site_url),
        };
        Ok(DigestConfig {
            name,
            tags,
            exclude_tags,
            min_stories,
            title: digest_title,
            schedule,
            from,
            to,
            subscribers: d.subscribers.map(|s| self.resolve(&s)),
            transport,
            outbox: self.resolve(d.outbox.as_deref().unwrap_or(DEFAULT_OUTBOX)),
            smtp,
            send_when_empty,
            subject,
            sections,
            unsubscribe_url,
            unsubscribe_mailto,
            list_id,
        })
    }

    /// `schedule` in `timezone` (defaults: Mondays 08:00, UTC).
    fn schedule(
        &self,
        schedule: Option<Spanned<String>>,
        timezone: Option<&Spanned<String>>,
        section: &Range<usize>,
    ) -> Result<CronSchedule, ConfigError> {
        let tz = timezone.map_or(DEFAULT_TIMEZONE, |t| t.get_ref().trim());
        let schedule =
            schedule.unwrap_or_else(|| Spanned::new(section.clone(), DEFAULT_SCHEDULE.into()));
        let fields = schedule.get_ref().split_whitespace().count();
        // Six fields: a leading seconds field (an extension, handy in tests).
        if fields != 5 && fields != 6 {
            return Err(self.err(
                schedule.span(),
                format!(
                    "schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week), got {fields} fields"
                ),
            ));
        }
        CronSchedule::parse(schedule.get_ref(), tz).map_err(|e| {
            let at = match (&e, timezone) {
                (ScheduleError::TimeZone(_), Some(t)) => t.span(),
                _ => schedule.span(),
            };
            self.err(at, e.to_string())
        })
    }

    /// `[digest.smtp]`; the port defaults by security.
    fn smtp(&self, s: Spanned<RawSmtp>) -> Result<SmtpConfig, ConfigError> {
        let s = s.into_inner();
        let security = s.security.unwrap_or(SmtpSecurity::Starttls);
        let retries = match &s.retries {
            Some(r) => u32::try_from(*r.get_ref())
                .map_err(|_| self.err(r.span(), "retries must be 0 or a positive number"))?,
            None => DEFAULT_SMTP_RETRIES,
        };
        let or = |v: &Option<Spanned<String>>, default: Duration| match v {
            Some(d) => self.duration(d),
            None => Ok(default),
        };
        Ok(SmtpConfig {
            host: s.host,
            port: s.port.unwrap_or(match security {
                SmtpSecurity::Tls => 465,
                SmtpSecurity::Starttls => 587,
                SmtpSecurity::None => 25,
            }),
            security,
            username: s.username,
            password_env: s.password_env,
            timeout: or(&s.timeout, DEFAULT_SMTP_TIMEOUT)?,
            retries,
            retry_delay: or(&s.retry_delay, DEFAULT_SMTP_RETRY_DELAY)?,
            ca_file: match &s.ca_file {
                Some(f) => {
                    let path = self.resolve(f.get_ref());
                    if !path.is_file() {
                        return Err(self.err(
                            f.span(),
                            format!("ca_file {} is not a readable file", path.display()),
                        ));
                    }
                    Some(path)
                }
                None => None,
            },
        })
    }
}

/// The environment variable that overrides `database`.
pub const DATABASE_ENV: &str = "GAZETTE_DATABASE_URL";

/// A database URL given on the command line (`db copy --to`): relative
/// SQLite paths are relative to the working folder.
pub fn parse_database_url(s: &str) -> Result<DatabaseUrl, String> {
    database_url(s, |p| PathBuf::from(p))
}

/// `sqlite://PATH` (relative paths resolved by `resolve`) or
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
fn database_url(s: &str, resolve: impl Fn(&str) -> PathBuf) -> Result<DatabaseUrl, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("sqlite:") {
        let rest = rest.trim_start_matches("//");
        if rest.is_empty() {
            return Err("sqlite:// needs a file path".into());
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        return Ok(DatabaseUrl::Sqlite(resolve(rest)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let u = Url::parse(s).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
        if u.host_str().is_none_or(str::is_empty) && !u.query_pairs().any(|(k, _)| k == "host") {
            return Err("the PostgreSQL URL has no host (postgres://USER@HOST/DB)".into());
        }
        if u.path().trim_start_matches('/').is_empty() {
            return Err("the PostgreSQL URL names no database (postgres://USER@HOST/DB)".into());
        }
        return Ok(DatabaseUrl::Postgres(s.to_string()));
    }
    Err(format!(
        "must be sqlite://PATH or postgres://USER@HOST/DB, not {s:?}"
    ))
}

/// `title <digest.SITE-HOST>`, the default List-Id.
fn default_list_id(title: &str, site_url: &Url) -> String {
    let host = site_url.host_str().unwrap_or("localhost");
    let phrase: String = title
        .chars()
        .filter(|c| c.is_ascii() && !matches!(c, '<' | '>' | '"' | '\\'))
        .collect();
    format!("{} <digest.{host}>", phrase.trim())
}

/// `title <NAME.digest.SITE-HOST>`: the default List-Id of a `[[digests]]` entry.
fn default_list_id_named(title: &str, name: &str, site_url: &Url) -> String {
    let host = site_url.host_str().unwrap_or("localhost");
    let phrase: String = title
        .chars()
        .filter(|c| c.is_ascii() && !matches!(c, '<' | '>' | '"' | '\\'))
        .collect();
    let name = name.replace('_', "-");
    format!("{} <{name}.digest.{host}>", phrase.trim())
}

/// `[http] listen` (or `--listen`): an address and port.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("listen must be an address and port such as 127.0.0.1:8080, not {s:?}")
    })
}

/// A light check that a mailbox (`addr` or `Name <addr>`) holds an address.
fn looks_like_mailbox(s: &str) -> bool {
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let addr = addr.trim();
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !addr.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The error for a file that is not UTF-8, located at its first bad byte
/// (the column counts the characters before it on its line, plus one).
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> ConfigError {
    let at = e.valid_up_to();
    let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let (line, col) = line_col(valid, at);
    ConfigError {
        path: path.to_path_buf(),
        line,
        col,
        message: format!(
            "invalid UTF-8 (byte 0x{:02X}): save the file as UTF-8",
            bytes[at]
        ),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Adds a "did you mean" to serde's unknown-field messages.
fn improve_serde_message(msg: &str) -> String {
    let msg = msg.trim();
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_string();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(field, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    match best {
        Some((_, c)) => format!("unknown key `{field}`; did you mean `{c}`?"),
        None if !candidates.is_empty() => format!(
            "unknown key `{field}`; expected one of {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("unknown key `{field}`"),
    }
}

/// Parses `30m`, `1h`, `90s`, `7d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("invalid duration {s:?}: use a number and a unit, e.g. 30s, 30m, 1h, 7d")
    })
}

/// Parses `10MB`, `512KiB`, `1GB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let err = || format!("invalid size {s:?}: use a number and a unit, e.g. 512KB or 10MB");
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1024,
        "mb" | "m" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" | "g" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return Err(err()),
    };
    let v = n.checked_mul(mult).ok_or_else(err)?;
    if v == 0 {
        return Err("size must be greater than zero".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("feeds.toml"), text)
    }

    const MINIMAL: &str = r#"
title = "Watch"
site_url = "https://news.example.org/"

[[feeds]]
name = "ISHR"
url = "https://ishr.ch/feed/"
tags = ["ngo"]
interval = "30m"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.title, "Watch");
        assert_eq!(c.feeds.len(), 1);
        assert_eq!(c.feeds[0].interval, Duration::from_secs(1800));
        assert_eq!(c.feeds[0].tags, vec!["ngo"]);
        assert_eq!(c.poll_interval, Duration::from_secs(3600));
        assert_eq!(c.publish.entries, 100);
        assert_eq!(c.fetch.max_body_size, 10_000_000);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database,
            DatabaseUrl::Sqlite(PathBuf::from("./gazette.db"))
        );
    }

    #[test]
    fn invalid_utf8_is_located_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feeds.toml");
        // Line 3, after the 13 characters `title = "Genè`: column 14.
        let mut text = b"# Gen\xc3\xa8ve\nsite_url = \"https://news.example.org/\"\ntitle = \"Gen\xc3\xa8\xe8ve\"\n".to_vec();
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!((e.line, e.col), (3, 14), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3:14: invalid UTF-8 (byte 0xE8): save the file as UTF-8",
                path.display()
            )
        );
        // A truncated sequence at the very end, on the first line.
        text = b"title = \"x\xc3".to_vec();
        std::fs::write(&path, &text).unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(
            (e.line, e.col, e.message.contains("0xC3")),
            (1, 11, true),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_located_with_a_suggestion() {
        let e = parse("title = \"x\"\npoll_intervall = \"1h\"\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1), "{e}");
        assert!(e.message.contains("did you mean `poll_interval`"), "{e}");
        assert!(e.to_string().starts_with("feeds.toml:2:1: "), "{e}");
    }

    #[test]
    fn unknown_key_in_a_feed_is_located() {
        let text = format!("{MINIMAL}nmae = \"x\"\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("did you mean `name`"), "{e}");
    }

    #[test]
    fn bad_duration_points_at_the_value() {
        let text = MINIMAL.replace("\"30m\"", "\"half an hour\"");
        let e = parse(&text).unwrap_err();
        assert_eq!((e.line, e.col), (9, 12), "{e}");
        assert!(e.message.contains("invalid duration"), "{e}");
    }

    #[test]
    fn duplicate_names_and_urls_are_rejected() {
        let dup_name =
            format!("{MINIMAL}\n[[feeds]]\nname = \"ishr\"\nurl = \"https://other.example/\"\n");
        let e = parse(&dup_name).unwrap_err();
        assert!(e.message.contains("duplicate feed name"), "{e}");
        assert_eq!(e.line, 12);
        let dup_url =
            format!("{MINIMAL}\n[[feeds]]\nname = \"Other\"\nurl = \"https://ishr.ch/feed/\"\n");
        let e = parse(&dup_url).unwrap_err();
        assert!(e.message.contains("duplicate feed url"), "{e}");
        assert!(e.message.contains("line 7"), "{e}");
    }

    #[test]
    fn urls_are_validated() {
        let e = parse(&MINIMAL.replace("https://ishr.ch/feed/", "https://")).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        let e = parse(&MINIMAL.replace("https://ishr.ch/feed/", "ftp://x.org/f")).unwrap_err();
        assert!(e.message.contains("unsupported url scheme"), "{e}");
        let c = parse(&MINIMAL.replace("https://ishr.ch/feed/", "feeds/local.xml")).unwrap();
        assert_eq!(
            c.feeds[0].source,
            FeedSource::File(PathBuf::from("./feeds/local.xml"))
        );
        let c = parse(&MINIMAL.replace("https://ishr.ch/feed/", "file:///tmp/x.xml")).unwrap();
        assert_eq!(
            c.feeds[0].source,
            FeedSource::File(PathBuf::from("/tmp/x.xml"))
        );
        let e = parse(&MINIMAL.replace("https://news.example.org/", "news")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn postgres_urls_are_checked() {
        let c = parse("database = \"postgres://u@127.0.0.1/test\"\n").unwrap();
        assert!(matches!(c.database, DatabaseUrl::Postgres(_)));
        let e = parse("database = \"mysql://x\"\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("\ndatabase = \"postgres://u@127.0.0.1\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("names no database"), "{e}");
        let e = parse("database = \"postgres:///test\"\n").unwrap_err();
        assert!(e.message.contains("no host"), "{e}");
        let c = parse("database = \"postgresql://u:secret@db.example:5433/news\"\n").unwrap();
        assert!(matches!(c.database, DatabaseUrl::Postgres(_)));
    }

    #[test]
    fn syntax_error_is_located() {
        let e = parse("title = \"x\"\n[[feeds]\nname = 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn tags_must_be_slugs() {
        let e = parse(&MINIMAL.replace("[\"ngo\"]", "[\"../etc\"]")).unwrap_err();
        assert!(e.message.contains("lower-case"), "{e}");
        let e = parse("[[tags]]\nname = \"china\"\nkeywords = []\n").unwrap_err();
        assert!(
            e.message.contains("needs keywords, regex or categories"),
            "{e}"
        );
        let e = parse("[[tags]]\nname = \"x\"\nregex = [\"(unclosed\"]\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 10), "{e}");
        assert!(e.message.contains("invalid regex"), "{e}");
        let e =
            parse("[[tags]]\nname = \"x\"\nkeywords = [\"a\"]\nfields = [\"body\"]\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let c = parse("[[exclude]]\nkeywords = [\"sponsored\"]\nfields = [\"title\"]\n").unwrap();
        assert_eq!(c.exclude[0].fields, vec![Field::Title]);
    }

    #[test]
    fn digest_addresses_and_schedule_are_checked() {
        let base = "[digest]\nschedule = \"0 8 * * Mon\"\nfrom = \"Gazette <d@example.org>\"\nto = [\"team@example.org\"]\n";
        let d = parse(base).unwrap().digests.remove(0);
        assert_eq!(d.transport, Transport::File);
        let e = parse(&base.replace("team@example.org", "team")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = parse(&base.replace("0 8 * * Mon", "0 8 * *")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse(&format!("{base}transport = \"smtp\"\n")).unwrap_err();
        assert!(e.message.contains("[digest.smtp]"), "{e}");
        let e = parse(&format!("{base}transport = \"pigeon\"\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn digest_options_have_defaults_and_located_errors() {
        let base = "title = \"Watch\"\nsite_url = \"https://news.example.org/\"\n[digest]\nfrom = \"d@example.org\"\n";
        let d = parse(base).unwrap().digests.remove(0);
        assert!(!d.send_when_empty);
        assert_eq!(d.subject, DEFAULT_SUBJECT);
        assert_eq!(d.list_id, "Watch <digest.news.example.org>");
        assert_eq!((d.unsubscribe_url, d.unsubscribe_mailto), (None, None));
        let full = format!(
            "{base}send_when_empty = true\nsubject = \"{{count}} new\"\nsections = [\"un\", \"china\"]\nunsubscribe_url = \"https://x.org/u?e={{email}}\"\nunsubscribe_mailto = \"mailto:leave@x.org\"\nlist_id = \"W <w.x.org>\"\n[digest.smtp]\nhost = \"smtp.x.org\"\nsecurity = \"tls\"\ntimeout = \"5s\"\nretries = 0\nretry_delay = \"1s\"\n"
        );
        let d = parse(&full).unwrap().digests.remove(0);
        assert!(d.send_when_empty);
        assert_eq!(d.sections, ["un", "china"]);
        assert_eq!(
            d.unsubscribe_mailto.map(|a| a.to_string()).as_deref(),
            Some("leave@x.org")
        );
        assert_eq!(d.list_id, "W <w.x.org>");
        let smtp = d.smtp.unwrap();
        assert_eq!((smtp.port, smtp.retries), (465, 0));
        assert_eq!(smtp.timeout, Duration::from_secs(5));
        let e = parse(&format!("{base}timezone = \"Europe/Zurch\"\n")).unwrap_err();
        assert_eq!((e.line, e.col), (5, 12), "{e}");
        assert!(e.message.contains("unknown time zone"), "{e}");
        let e = parse(&format!("{base}schedule = \"0 25 * * *\"\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&format!("{base}unsubscribe_url = \"ftp://x\"\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&format!("{base}sections = [\"UN\"]\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&format!("{base}send_when_emtpy = true\n")).unwrap_err();
        assert!(e.message.contains("did you mean `send_when_empty`"), "{e}");
        let e = parse(&format!(
            "{base}[digest.smtp]\nhost = \"h\"\nretries = -1\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, 7, "{e}");
    }

    #[test]
    fn several_digests_have_names_tags_and_defaults() {
        let text = "title = \"Watch\"\nsite_url = \"https://news.example.org/\"\n[digest]\nfrom = \"d@example.org\"\n\n[[digests]]\nname = \"china\"\ntitle = \"China desk\"\ntags = [\"china\", \"lawyers\"]\nexclude_tags = [\"sport\"]\nmin_stories = 3\nfrom = \"c@example.org\"\n\n[[digests]]\nname = \"public\"\nsend_when_empty = true\nfrom = \"p@example.org\"\n";
        let c = parse(text).unwrap();
        let names: Vec<&str> = c.digests.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["digest", "china", "public"]);
        let (old, china, public) = (&c.digests[0], &c.digests[1], &c.digests[2]);
        assert_eq!((old.title.as_str(), old.min_stories), ("Watch", 1));
        assert!(old.tags.is_empty());
        assert_eq!(old.list_id, "Watch <digest.news.example.org>");
        assert_eq!(china.title, "China desk");
        assert_eq!(china.tags, ["china", "lawyers"]);
        assert_eq!(china.exclude_tags, ["sport"]);
        assert_eq!(china.min_stories, 3);
        assert_eq!(china.list_id, "China desk <china.digest.news.example.org>");
        assert_eq!(public.min_stories, 0, "send_when_empty");
        assert_eq!(c.digest_named("china"), Some(china));
        let e = parse("[[digests]]\nfrom = \"d@example.org\"\n").unwrap_err();
        assert!(e.message.contains("needs a `name`"), "{e}");
        let e =
            parse("[[digests]]\nname = \"China Desk\"\nfrom = \"d@example.org\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("[digest]\nfrom = \"d@example.org\"\n[[digests]]\nname = \"digest\"\nfrom = \"d@example.org\"\n").unwrap_err();
        assert!(e.message.contains("already configured"), "{e}");
        assert_eq!(e.line, 4, "{e}");
        let e =
            parse("[[digests]]\nname = \"x\"\nfrom = \"d@example.org\"\ntransport = \"smtp\"\n")
                .unwrap_err();
        assert!(e.message.contains("[digests.smtp]"), "{e}");
        let e = parse("[[digests]]\nname = \"x\"\nfrom = \"d@example.org\"\nmin_stories = -1\n")
            .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("512KiB").unwrap(), 524_288);
        assert!(parse_size("ten").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
    }
}
