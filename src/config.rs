//! `feeds.toml` → a validated [`Config`].
//!
//! Every error carries the file, line and column it comes from, so the CLI can
//! print `feeds.toml:12:7: message` and an editor can jump to it; a file's
//! errors are reported all at once, sorted by line ([`ConfigErrors`]), with
//! its warnings. This module reads the file (and looks whether local feed
//! files exist) and nothing else: no network, no database.

use std::cell::RefCell;
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

/// Everything wrong with a configuration file, sorted by line: its errors
/// (at least one) and its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The errors, sorted by line and column.
    pub errors: Vec<ConfigError>,
    /// The warnings (see [`Config::warnings`]), sorted by line and column.
    pub warnings: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The first error.
    pub fn first(&self) -> &ConfigError {
        &self.errors[0]
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors {
            errors: vec![e],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    /// One line each, errors and warnings together in line order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut all: Vec<&ConfigError> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by_key(|e| (e.line, e.col));
        for (i, e) in all.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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
    /// What is allowed but probably not meant (an interval below
    /// `min_interval`), located like errors; messages start with `warning:`.
    pub warnings: Vec<ConfigError>,
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
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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
    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Config, ConfigErrors> {
        let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(path, bytes, e))?;
        Config::parse(path, text)
    }

    /// Validates `text` as if read from `path` (relative paths resolve
    /// beside it): every error of the file, or the configuration with its
    /// warnings.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let ctx = Ctx {
            path,
            text,
            errors: RefCell::new(Vec::new()),
            warnings: RefCell::new(Vec::new()),
        };
        let config = ctx.raw().and_then(|raw| ctx.validate(raw));
        let sorted = |cell: RefCell<Vec<ConfigError>>| {
            let mut v = cell.into_inner();
            v.sort_by_key(|e| (e.line, e.col));
            v
        };
        let errors = sorted(ctx.errors);
        let warnings = sorted(ctx.warnings);
        match config {
            Some(mut c) if errors.is_empty() => {
                c.warnings = warnings;
                Ok(c)
            }
            _ => Err(ConfigErrors {
                errors: if errors.is_empty() {
                    // Unreachable: a section that fails reports why.
                    vec![ctx_less_error(path)]
                } else {
                    errors
                },
                warnings,
            }),
        }
    }
}

/// Removes the table key written at `at` from `value` (searched through
/// nested tables and arrays); whether there was one.
fn drop_key_at(value: &mut Spanned<toml::de::DeValue>, at: &Range<usize>) -> bool {
    use toml::de::DeValue;
    match value.get_mut() {
        DeValue::Table(t) => {
            let before = t.len();
            let found = t.iter().any(|(k, _)| k.span() == *at);
            if found {
                let mut kept = toml::de::DeTable::new();
                for (k, v) in std::mem::take(t) {
                    if k.span() != *at {
                        kept.insert(k, v);
                    }
                }
                *t = kept;
                return t.len() < before;
            }
            t.iter_mut().any(|(_, v)| drop_key_at(v, at))
        }
        DeValue::Array(a) => a.iter_mut().any(|v| drop_key_at(v, at)),
        _ => false,
    }
}

/// The error of a configuration that failed without saying why (never
/// expected; better than an empty list).
fn ctx_less_error(path: &Path) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        message: "invalid configuration".into(),
    }
}

/// The top-level keys holding arrays of tables: each table is read on its
/// own, so that one bad entry does not hide the others' errors.
const TABLE_LISTS: &[&str] = &["feeds", "tags", "exclude"];

fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// Errors found so far.
    errors: RefCell<Vec<ConfigError>>,
    /// Warnings found so far.
    warnings: RefCell<Vec<ConfigError>>,
}

impl Ctx<'_> {
    /// `r`'s value; its error is recorded.
    fn ok<T>(&self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.errors.borrow_mut().push(e)).ok()
    }

    /// Records a warning at `span`.
    fn warn(&self, span: Range<usize>, message: impl fmt::Display) {
        let w = self.err(span, format!("warning: {message}"));
        self.warnings.borrow_mut().push(w);
    }

    /// A TOML error, located, with a "did you mean" for unknown keys.
    fn toml_err(&self, e: &toml::de::Error) -> ConfigError {
        self.err(e.span().unwrap_or(0..0), improve_serde_message(e.message()))
    }

    /// `key = value` alone, as a (partial) RawConfig: an unknown key is
    /// recorded and dropped (the rest is still read), another error is
    /// recorded and the value left out.
    fn fit<'i>(
        &self,
        key: &Spanned<toml::de::DeString<'i>>,
        mut value: Spanned<toml::de::DeValue<'i>>,
    ) -> Option<Spanned<toml::de::DeValue<'i>>> {
        loop {
            let mut one = toml::de::DeTable::new();
            one.insert(key.clone(), value.clone());
            let de = toml::de::Deserializer::from(Spanned::new(value.span(), one));
            let Err(e) = RawConfig::deserialize(de) else {
                return Some(value);
            };
            self.ok::<()>(Err(self.toml_err(&e)));
            let unknown = e.message().starts_with("unknown field");
            match e.span() {
                Some(at) if unknown && drop_key_at(&mut value, &at) => {}
                _ => return None,
            }
        }
    }

    /// The file's shape: every syntax error, else each top-level key and
    /// each `[[feeds]]`, `[[tags]]` and `[[exclude]]` entry read on its
    /// own, so that every unknown key, wrong type and missing field is
    /// reported (a wrong entry is left out, the others are still checked).
    fn raw(&self) -> Option<RawConfig> {
        use toml::de::{DeArray, DeTable, DeValue, Deserializer};
        let (root, syntax) = DeTable::parse_recoverable(self.text);
        if !syntax.is_empty() {
            let mut errors = self.errors.borrow_mut();
            errors.extend(syntax.iter().map(|e| self.toml_err(e)));
            // Several messages at one place say the same thing.
            errors.dedup_by_key(|e| (e.line, e.col));
            return None;
        }
        let span = root.span();
        let mut kept = DeTable::new();
        for (key, mut value) in root.into_inner() {
            let list = TABLE_LISTS.contains(&key.get_ref().as_ref());
            if list && let DeValue::Array(items) = value.get_mut() {
                let good: DeArray = items
                    .iter()
                    .filter_map(|item| {
                        let alone: DeArray = std::iter::once(item.clone()).collect();
                        let fitted =
                            self.fit(&key, Spanned::new(item.span(), DeValue::Array(alone)))?;
                        match fitted.into_inner() {
                            DeValue::Array(a) => a.into_iter().next(),
                            _ => None,
                        }
                    })
                    .collect();
                *items = good;
                kept.insert(key, value);
            } else if let Some(value) = self.fit(&key, value) {
                kept.insert(key, value);
            }
        }
        let de = Deserializer::from(Spanned::new(span, kept));
        self.ok(RawConfig::deserialize(de).map_err(|e| self.toml_err(&e)))
    }

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

    /// The whole file, one section at a time (each section's defaults are
    /// in its own function); every error is recorded, `None` when any.
    fn validate(&self, raw: RawConfig) -> Option<Config> {
        let top = self.top_level(&raw);
        let title = self.ok(self.title(raw.title));
        let site_url = self.ok(self.site_url(raw.site_url));
        let default_site = Url::parse(DEFAULT_SITE_URL).expect("static url");
        let digests = self.ok(self.digests(
            raw.digest,
            raw.digests,
            title.as_deref().unwrap_or(DEFAULT_TITLE),
            site_url.as_ref().unwrap_or(&default_site),
        ));
        let database = self.ok(self.database_setting(raw.database.as_ref()));
        let fetch = self.fetch(raw.fetch);
        let http = self.http(raw.http);
        let publish = self.publish(raw.publish);
        let dedup = self.dedup(raw.dedup);
        let tags = self.tags(raw.tags);
        let exclude = self.exclude(raw.exclude);
        let feeds = self.feeds(raw.feeds, &top);
        if !self.errors.borrow().is_empty() {
            return None;
        }
        Some(Config {
            path: self.path.to_path_buf(),
            database: database?,
            fetch,
            http,
            publish,
            dedup,
            tags,
            exclude,
            feeds,
            digests: digests?,
            title: title?,
            site_url: site_url?,
            poll_interval: top.poll_interval,
            min_interval: top.min_interval,
            retention: top.retention,
            shutdown_timeout: top.shutdown_timeout,
            warnings: Vec::new(),
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

    /// `v` read by `read` when given and valid (an error is recorded), else `default`.
    fn or<V, T>(
        &self,
        v: &Option<V>,
        default: T,
        read: impl FnOnce(&V) -> Result<T, ConfigError>,
    ) -> T {
        match v {
            Some(v) => self.ok(read(v)).unwrap_or(default),
            None => default,
        }
    }

    /// The top-level durations; a `poll_interval` below `min_interval` is a warning.
    fn top_level(&self, raw: &RawConfig) -> TopLevel {
        let duration = |d: &Spanned<String>| self.duration(d);
        let retention = raw.retention.as_ref().and_then(|d| {
            let r = self.ok(self.duration(d))?;
            if r < MIN_RETENTION {
                self.ok::<()>(Err(self.err(d.span(), "retention must be at least 1d")));
                return None;
            }
            Some(r)
        });
        let top = TopLevel {
            poll_interval: self.or(&raw.poll_interval, DEFAULT_POLL_INTERVAL, duration),
            min_interval: self.or(&raw.min_interval, DEFAULT_MIN_INTERVAL, duration),
            shutdown_timeout: self.or(&raw.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT, duration),
            retention,
        };
        if let Some(p) = &raw.poll_interval {
            self.below_min(p, top.poll_interval, top.min_interval, "poll_interval");
        }
        top
    }

    /// Warns when `interval` (written at `at`) is below `min`: feeds are
    /// never polled more often than `min_interval`.
    fn below_min(&self, at: &Spanned<String>, interval: Duration, min: Duration, what: &str) {
        if interval < min {
            self.warn(
                at.span(),
                format!(
                    "{what} {} is below min_interval {}: polled every {} instead",
                    humantime::format_duration(interval),
                    humantime::format_duration(min),
                    humantime::format_duration(min)
                ),
            );
        }
    }

    /// `[fetch]`; defaults in [`FetchConfig::default`].
    fn fetch(&self, f: Option<RawFetch>) -> FetchConfig {
        let d = FetchConfig::default();
        let Some(f) = f else {
            return d;
        };
        let duration = |v: &Spanned<String>| self.duration(v);
        FetchConfig {
            timeout: self.or(&f.timeout, d.timeout, duration),
            connect_timeout: self.or(&f.connect_timeout, d.connect_timeout, duration),
            max_body_size: self.or(&f.max_body_size, d.max_body_size, |v| {
                parse_size(v.get_ref()).map_err(|m| self.err(v.span(), m))
            }),
            concurrency: self.or(&f.concurrency, d.concurrency, |v| {
                self.positive(v, "concurrency")
            }),
            per_host: self.or(&f.per_host, d.per_host, |v| self.positive(v, "per_host")),
            max_backoff: self.or(&f.max_backoff, d.max_backoff, duration),
            parse_timeout: self.or(&f.parse_timeout, d.parse_timeout, duration),
            user_agent: f.user_agent,
        }
    }

    /// `[http]`; loopback by default.
    fn http(&self, h: Option<RawHttp>) -> HttpConfig {
        let h = h.unwrap_or(RawHttp {
            listen: None,
            header_read_timeout: None,
            max_connections: None,
        });
        HttpConfig {
            listen: self.or(
                &h.listen,
                DEFAULT_LISTEN.parse().expect("static addr"),
                |l| parse_listen(l.get_ref()).map_err(|m| self.err(l.span(), m)),
            ),
            header_read_timeout: self.or(
                &h.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
                |v| self.duration(v),
            ),
            max_connections: self.or(&h.max_connections, DEFAULT_MAX_CONNECTIONS, |v| {
                self.positive(v, "max_connections")
            }),
        }
    }

    /// `[publish]`.
    fn publish(&self, p: Option<RawPublish>) -> PublishConfig {
        let mut publish = PublishConfig {
            dir: self.resolve(DEFAULT_PUBLISH_DIR),
            entries: DEFAULT_ENTRIES,
            hub: None,
        };
        let Some(p) = p else {
            return publish;
        };
        if let Some(h) = &p.hub {
            publish.hub = self.ok(self.http_url(h, "hub"));
        }
        if let Some(d) = p.dir {
            publish.dir = self.resolve(&d);
        }
        publish.entries = self.or(&p.entries, DEFAULT_ENTRIES, |e| self.positive(e, "entries"));
        publish
    }

    /// `[dedup]`; defaults in [`DedupConfig::default`].
    fn dedup(&self, d: Option<RawDedup>) -> DedupConfig {
        let mut dedup = DedupConfig::default();
        let Some(d) = d else {
            return dedup;
        };
        dedup.window = self.or(&d.window, dedup.window, |w| self.duration(w));
        dedup.threshold = self.or(&d.threshold, dedup.threshold, |t| {
            if !(0.0..=1.0).contains(t.get_ref()) || *t.get_ref() == 0.0 {
                return Err(self.err(
                    t.span(),
                    "threshold must be above 0 and at most 1 (e.g. 0.5)",
                ));
            }
            Ok(*t.get_ref())
        });
        dedup.strip_params = d.strip_params;
        dedup
    }

    /// `[[tags]]`: unique slugs, each with something to match; a wrong
    /// rule is recorded and left out.
    fn tags(&self, raw: Vec<Spanned<RawTag>>) -> Vec<TagRule> {
        let mut tags = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for t in raw {
            let span = t.span();
            let t = t.into_inner();
            let mut good = self.ok(self.slug(&t.name)).is_some();
            if let Some(first) = names.get(t.name.get_ref()) {
                self.ok::<()>(Err(self.err(
                    t.name.span(),
                    format!(
                        "tag {:?} is already defined on line {}",
                        t.name.get_ref(),
                        self.line(*first)
                    ),
                )));
                good = false;
            } else {
                names.insert(t.name.get_ref().clone(), span.start);
            }
            if t.keywords.is_empty() && t.regex.is_empty() && t.categories.is_empty() {
                self.ok::<()>(Err(
                    self.err(span, "a [[tags]] rule needs keywords, regex or categories")
                ));
                good = false;
            }
            let matcher = self.matcher(t.keywords, t.regex, t.fields);
            if let (true, Some(matcher)) = (good, matcher) {
                tags.push(TagRule {
                    name: t.name.into_inner(),
                    matcher,
                    categories: t.categories,
                });
            }
        }
        tags
    }

    /// `[[exclude]]`; a wrong rule is recorded and left out.
    fn exclude(&self, raw: Vec<Spanned<RawExclude>>) -> Vec<Matcher> {
        let mut exclude = Vec::new();
        for x in raw {
            let span = x.span();
            let x = x.into_inner();
            if x.keywords.is_empty() && x.regex.is_empty() {
                self.ok::<()>(Err(
                    self.err(span, "an [[exclude]] rule needs keywords or regex")
                ));
                continue;
            }
            if let Some(m) = self.matcher(x.keywords, x.regex, x.fields) {
                exclude.push(m);
            }
        }
        exclude
    }

    /// `[[feeds]]`: unique names (ignoring case) and sources; an
    /// `interval` below `min_interval` is a warning. A wrong feed is
    /// recorded and left out.
    fn feeds(&self, raw: Vec<Spanned<RawFeed>>, top: &TopLevel) -> Vec<FeedConfig> {
        let mut feeds = Vec::new();
        // Byte offsets of first uses; turned into line numbers only for an error.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut urls: HashMap<FeedSource, usize> = HashMap::new();
        for f in raw {
            let f = f.into_inner();
            let before = self.errors.borrow().len();
            let name = f.name.get_ref().trim().to_string();
            if name.is_empty() {
                self.ok::<()>(Err(self.err(f.name.span(), "feed name must not be empty")));
            } else if let Some(first) = names.get(&name.to_lowercase()) {
                self.ok::<()>(Err(self.err(
                    f.name.span(),
                    format!(
                        "duplicate feed name {name:?}: already used on line {}",
                        self.line(*first)
                    ),
                )));
            } else {
                names.insert(name.to_lowercase(), f.name.span().start);
            }
            let source = self.ok(self.feed_source(&f.url));
            if let Some(source) = &source {
                if let Some(first) = urls.get(source) {
                    self.ok::<()>(Err(self.err(
                        f.url.span(),
                        format!(
                            "duplicate feed url {source}: already listed on line {}",
                            self.line(*first)
                        ),
                    )));
                } else {
                    urls.insert(source.clone(), f.url.span().start);
                }
            }
            let mut feed_tags = Vec::new();
            for t in &f.tags {
                if self.ok(self.slug(t)).is_some() && !feed_tags.contains(t.get_ref()) {
                    feed_tags.push(t.get_ref().clone());
                }
            }
            let interval = match &f.interval {
                Some(d) => {
                    let i = self.ok(self.duration(d));
                    if let Some(i) = i {
                        self.below_min(d, i, top.min_interval, "interval");
                    }
                    i.unwrap_or(top.poll_interval)
                }
                None => top.poll_interval,
            };
            if let (Some(source), true) = (source, self.errors.borrow().len() == before) {
                feeds.push(FeedConfig {
                    name,
                    source,
                    tags: feed_tags,
                    interval,
                    priority: f.priority,
                });
            }
        }
        feeds
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

    /// Keywords and regexes; `None` (each error recorded) when one is wrong.
    fn matcher(
        &self,
        keywords: Vec<Spanned<String>>,
        regex: Vec<Spanned<String>>,
        fields: Option<Vec<Field>>,
    ) -> Option<Matcher> {
        let mut m = Matcher {
            fields: fields.unwrap_or_else(|| ALL_FIELDS.to_vec()),
            ..Matcher::default()
        };
        let mut good = true;
        for k in keywords {
            if k.get_ref().trim().is_empty() {
                self.ok::<()>(Err(self.err(k.span(), "keywords must not be empty")));
                good = false;
                continue;
            }
            m.keywords.push(k.into_inner().trim().to_string());
        }
        for r in regex {
            if let Err(e) = regex::Regex::new(r.get_ref()) {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or("invalid").trim();
                self.ok::<()>(Err(self.err(
                    r.span(),
                    format!("invalid regex {:?}: {first}", r.get_ref()),
                )));
                good = false;
                continue;
            }
            m.regex.push(r.into_inner());
        }
        good.then_some(m)
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
        // A path: it must name a file (`url = "not a url at all"` is a typo,
        // not a feed); `file://` URLs are taken as given.
        let path = self.resolve(s);
        if !path.is_file() {
            return Err(self.err(
                u.span(),
                format!(
                    "feed url {s:?} is neither an http://, https:// or file:// URL nor an existing file ({} not found)",
                    path.display()
                ),
            ));
        }
        Ok(FeedSource::File(path))
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

    /// The configuration, or its first error.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("feeds.toml"), text).map_err(|e| e.first().clone())
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
        let e = Config::load(&path).unwrap_err().first().clone();
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
        let e = Config::load(&path).unwrap_err().first().clone();
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
        // A path must name an existing file, relative to the configuration.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("feeds")).unwrap();
        std::fs::write(dir.path().join("feeds/local.xml"), "<rss/>").unwrap();
        let beside = dir.path().join("feeds.toml");
        let local = MINIMAL.replace("https://ishr.ch/feed/", "feeds/local.xml");
        let c = Config::parse(&beside, &local).unwrap();
        assert_eq!(
            c.feeds[0].source,
            FeedSource::File(dir.path().join("feeds/local.xml"))
        );
        let e = Config::parse(&beside, &local.replace("local.xml", "missing.xml")).unwrap_err();
        assert_eq!((e.first().line, e.first().col), (7, 7), "{e}");
        let e = parse(&MINIMAL.replace("https://ishr.ch/feed/", "not a url at all")).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(
            e.message
                .contains("neither an http://, https:// or file:// URL nor an existing file"),
            "{e}"
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
    fn every_error_of_a_file_is_reported_sorted_by_line() {
        let text = r#"title = "Watch"
poll_intervall = "1h"
min_interval = "10m"

[fetch]
timeout = "soon"
concurrency = 0

[[feeds]]
name = "One"
url = "not a url at all"
interval = "forever"

[[feeds]]
name = "Two"
url = "https://two.example/feed"
colour = "red"

[[feeds]]
name = "one"
url = "https://one.example/feed"
tags = ["Bad Tag"]

[[tags]]
name = "un"
regex = ["(unclosed"]
"#;
        let e = Config::parse(Path::new("feeds.toml"), text).unwrap_err();
        let at: Vec<(usize, usize)> = e.errors.iter().map(|e| (e.line, e.col)).collect();
        assert_eq!(
            at,
            [
                (2, 1),
                (6, 11),
                (7, 15),
                (11, 7),
                (12, 12),
                (17, 1),
                (20, 8),
                (22, 9),
                (26, 10)
            ],
            "{e}"
        );
        assert!(
            e.errors[0].message.contains("did you mean `poll_interval`"),
            "{e}"
        );
        assert!(e.errors[5].message.contains("unknown key `colour`"), "{e}");
        assert!(e.errors[6].message.contains("duplicate feed name"), "{e}");
        // Printed one per line, in line order.
        let printed = e.to_string();
        assert_eq!(printed.lines().count(), 9, "{printed}");
        assert!(
            printed
                .lines()
                .next()
                .unwrap()
                .starts_with("feeds.toml:2:1: ")
        );

        // Several syntax errors at once, too.
        let e =
            Config::parse(Path::new("feeds.toml"), "title = \n\n[fetch\nx = = 1\n").unwrap_err();
        assert!(e.errors.len() >= 2, "{e}");
        assert!(e.errors.windows(2).all(|w| w[0].line <= w[1].line), "{e}");
    }

    #[test]
    fn intervals_below_min_interval_are_warnings_naming_both() {
        let text = MINIMAL
            .replace("\"30m\"", "\"1m\"")
            .replace("site_url", "poll_interval = \"2m\"\nsite_url");
        let c = parse(&text).unwrap();
        let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            [
                "feeds.toml:3:17: warning: poll_interval 2m is below min_interval 5m: polled every 5m instead",
                "feeds.toml:10:12: warning: interval 1m is below min_interval 5m: polled every 5m instead",
            ]
        );
        let text = text.replace("poll_interval = \"2m\"", "min_interval = \"1m\"");
        assert!(parse(&text).unwrap().warnings.is_empty());
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
