//! The email digest: which period is due, which stories it holds, and how it
//! reads (askama templates). Never sends: `mail` does, `app` wires the two.
//!
//! A period is the half-open interval `[start, cutoff)` of the times stories
//! were first stored (not their publication dates: a story fetched late still
//! gets into a digest). `cutoff` is a fire time of the `[digest] schedule` cron expression
//! in `timezone`; `start` is the previous recorded period's cutoff, or
//! `cutoff − 7 days` for the very first digest. Periods therefore tile time:
//! a story falls in exactly one of them, even when the sender was down for
//! several fire times (the next digest then covers the whole gap).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use askama::Template;
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use url::Url;

use crate::config::{Config, DigestConfig};
use crate::mail::{self, MailError};
use crate::model::{ItemQuery, Story};
use crate::scheduler::CronSchedule;
use crate::store::{Store, StoreError};

/// Length of the very first period, when no earlier digest is recorded.
pub const FIRST_PERIOD: TimeDelta = TimeDelta::days(7);

/// Characters of a story's excerpt in the digest.
pub const EXCERPT_CHARS: usize = 250;

/// Why a digest could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The configuration has no `[digest]` section.
    #[error("no [digest] section in the configuration")]
    NotConfigured,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template failed to render.
    #[error("cannot render the digest: {0}")]
    Render(#[from] askama::Error),
    /// A recipient or sender address is invalid.
    #[error(transparent)]
    Address(#[from] MailError),
    /// The subscribers file could not be read.
    #[error("cannot read the subscribers file {path}: {source}")]
    Subscribers {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the subscribers file is not an address.
    #[error("{path}:{line}: {text:?} is not an email address")]
    Subscriber {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// A subscriber's topic is not a tag this digest can carry.
    #[error("{path}:{line}: topic {topic:?} is not a tag of this digest ({known})")]
    Topic {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The topic.
        topic: String,
        /// The tags it could be.
        known: String,
    },
    /// Nobody to send to.
    #[error("the digest has no recipients: set `to` or `subscribers` in [digest]")]
    NoRecipients,
    /// Several digests are configured and none was named.
    #[error("several digests are configured: name one with --digest ({0})")]
    Ambiguous(String),
    /// No digest has this name.
    #[error("no digest named {name:?} is configured ({known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: String,
    },
    /// An address given for one reader is not among the digest's recipients.
    #[error("{0} is not a recipient of this digest")]
    NotARecipient(String),
}

/// The only digest, or an error saying there is none or several.
pub fn settings(config: &Config) -> Result<&DigestConfig, DigestError> {
    select(config, None)
}

/// The digest named `name`, or (no name) the only one configured.
pub fn select<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a DigestConfig, DigestError> {
    let names = || {
        config
            .digests
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => config.digest_named(n).ok_or_else(|| DigestError::Unknown {
            name: n.to_string(),
            known: if config.digests.is_empty() {
                "none is configured".into()
            } else {
                format!("configured: {}", names())
            },
        }),
        None => match config.digests.as_slice() {
            [] => Err(DigestError::NotConfigured),
            [one] => Ok(one),
            _ => Err(DigestError::Ambiguous(names())),
        },
    }
}

/// One reader of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// Their address (with a display name when given).
    pub mailbox: Mailbox,
    /// Their topics: they get only these sections (empty: the whole digest).
    pub topics: Vec<String>,
}

impl Recipient {
    /// The address, lower-case: how readers are compared and suppressed.
    pub fn key(&self) -> String {
        self.mailbox.email.to_string().to_lowercase()
    }
}

/// Every recipient: `to`, then the subscribers file (one address per line,
/// optionally followed by topics; `#` starts a comment), each address once
/// (compared case-insensitively; the first line wins). Topics must be tags
/// the digest can carry (its `tags`, else every configured tag).
pub fn recipients(config: &Config, cfg: &DigestConfig) -> Result<Vec<Recipient>, DigestError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |r: Recipient| {
        if seen.insert(r.key()) {
            out.push(r);
        }
    };
    for t in &cfg.to {
        push(Recipient {
            mailbox: t.clone(),
            topics: Vec::new(),
        });
    }
    if let Some(path) = &cfg.subscribers {
        let known: std::collections::BTreeSet<String> = if cfg.tags.is_empty() {
            crate::publish::tag_names(config)
        } else {
            cfg.tags.iter().cloned().collect()
        };
        for (line, r) in read_subscribers(path)? {
            if let Some(t) = r.topics.iter().find(|t| !known.contains(*t)) {
                return Err(DigestError::Topic {
                    path: path.clone(),
                    line,
                    topic: t.clone(),
                    known: if known.is_empty() {
                        "no tags are configured".into()
                    } else {
                        format!(
                            "one of: {}",
                            known.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    },
                });
            }
            push(r);
        }
    }
    Ok(out)
}

/// Reads a subscribers file: each line an address (`a@example.org` or
/// `Name <a@example.org>`), then optional topics separated by spaces or
/// commas (`alice@example.org china lawyers`). Errors name the file and
/// line. Returns each reader with their line.
pub fn read_subscribers(path: &Path) -> Result<Vec<(usize, Recipient)>, DigestError> {
    let text = std::fs::read_to_string(path).map_err(|source| DigestError::Subscribers {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || DigestError::Subscriber {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        };
        // `Name <addr> topics` or `addr topics`.
        let (address, rest) = match line.find('>') {
            Some(end) if line.contains('<') => line.split_at(end + 1),
            _ => line.split_at(line.find(char::is_whitespace).unwrap_or(line.len())),
        };
        let mailbox = mail::mailbox(address.trim_end_matches(',')).map_err(|_| bad())?;
        let mut topics: Vec<String> = Vec::new();
        for t in rest.split(|c: char| c.is_whitespace() || c == ',') {
            let t = t.trim().to_lowercase();
            if t.is_empty() || topics.contains(&t) {
                continue;
            }
            if t.contains('@') {
                // Two addresses on one line: most likely a missing line break.
                return Err(bad());
            }
            topics.push(t);
        }
        out.push((i + 1, Recipient { mailbox, topics }));
    }
    Ok(out)
}

/// A digest period: stories published in `[start, cutoff)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end: the scheduled time.
    pub cutoff: DateTime<Utc>,
}

/// The period due at `now`: closed by the latest fire time at or before
/// `now`, starting at `last_cutoff` (the previous recorded period's end).
/// `None` when that fire time is already recorded (or there is none).
pub fn due_period(
    schedule: &CronSchedule,
    last_cutoff: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Period> {
    let cutoff = schedule.latest_at_or_before(now)?;
    match last_cutoff {
        Some(last) if last >= cutoff => None,
        Some(last) => Some(Period {
            start: last,
            cutoff,
        }),
        None => Some(Period {
            start: cutoff - FIRST_PERIOD,
            cutoff,
        }),
    }
}

/// The stories of a period, newest first (exclusion rules applied): those
/// first stored in `[start, cutoff)`, so a story fetched after the cutoff it
/// was published before goes in the next digest instead of none. Stories
/// dated more than [`FIRST_PERIOD`] before the start are left out: they are
/// the archive of a newly added feed, not news.
pub async fn stories(store: &Store, period: Period) -> Result<Vec<Story>, DigestError> {
    let ids: HashSet<i64> = store
        .story_ids_stored_between(period.start, period.cutoff)
        .await?
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let q = ItemQuery {
        since: Some(period.start - FIRST_PERIOD),
        ..ItemQuery::default()
    };
    let mut stories = store.list_stories(&q).await?;
    stories.retain(|s| ids.contains(&s.id));
    Ok(stories)
}

/// The stories of `period` that `cfg` carries: with one of its `tags`
/// (any, when it lists none) and none of its `exclude_tags`.
pub async fn stories_for(
    store: &Store,
    cfg: &DigestConfig,
    period: Period,
) -> Result<Vec<Story>, DigestError> {
    let mut all = stories(store, period).await?;
    all.retain(|s| carries(cfg, s));
    Ok(all)
}

/// Whether `cfg` carries `story` (see [`stories_for`]).
pub fn carries(cfg: &DigestConfig, story: &Story) -> bool {
    (cfg.tags.is_empty() || story.tags.iter().any(|t| cfg.tags.contains(t)))
        && !story.tags.iter().any(|t| cfg.exclude_tags.contains(t))
}

/// One story as the digest shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Plain-text title.
    pub title: String,
    /// http(s) link to the story, when it has one, without tracking parameters.
    pub link: Option<String>,
    /// Names of the feeds that carried it.
    pub sources: String,
    /// Its date in the digest's time zone, e.g. `23 Nov`.
    pub date: String,
    /// Plain-text excerpt, at most about [`EXCERPT_CHARS`] characters.
    pub excerpt: String,
}

/// The stories of one tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading: the tag, or "Other" for untagged stories.
    pub name: String,
    /// Its stories, newest first.
    pub entries: Vec<Entry>,
}

/// A digest's content, before it is rendered for a recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The site's title.
    pub title: String,
    /// The subject line.
    pub subject: String,
    /// The period as people read it, e.g. `17–24 Nov 2026`.
    pub period_label: String,
    /// How many stories.
    pub count: usize,
    /// How many distinct sources carried them.
    pub source_count: usize,
    /// Stories by tag, in the configured order, "Other" last.
    pub sections: Vec<Section>,
    /// The web page of recent stories.
    pub site_url: String,
    /// The combined Atom feed.
    pub feed_url: String,
    /// This issue in the archive ("View in your browser"), once it is recorded.
    pub archive_url: Option<String>,
    /// The archive of this digest's past issues.
    pub archive_index_url: String,
    /// Rendered as the archive's web page (no per-reader parts), not an email.
    pub web: bool,
}

/// Groups `stories` (newest first) into sections: the tags listed in
/// `sections` first in that order, then other tags alphabetically, then
/// "Other" for untagged stories. A story with several tags appears once,
/// in the first of its sections.
///
/// With `topics` (a reader's), only stories with one of those tags are in
/// it, each in the first of its sections among those topics.
pub fn build(
    config: &Config,
    cfg: &DigestConfig,
    stories: &[Story],
    period: Period,
    topics: &[String],
) -> Digest {
    let picked: Vec<Story>;
    let stories = if topics.is_empty() {
        stories
    } else {
        picked = stories
            .iter()
            .filter(|s| s.tags.iter().any(|t| topics.contains(t)))
            .cloned()
            .collect();
        &picked[..]
    };
    let tz = cfg.timezone();
    let rank = |tag: &str| -> (usize, String) {
        match cfg.sections.iter().position(|s| s == tag) {
            Some(i) => (i, String::new()),
            None => (cfg.sections.len(), tag.to_string()),
        }
    };
    let mut by_section: BTreeMap<(usize, String), Vec<Entry>> = BTreeMap::new();
    let mut untagged = Vec::new();
    let mut sources = HashSet::new();
    for s in stories {
        for src in &s.sources {
            sources.insert(src.feed.as_str());
        }
        let entry = entry(s, tz, &config.dedup.strip_params);
        let shown = s
            .tags
            .iter()
            .filter(|t| topics.is_empty() || topics.contains(t));
        match shown.min_by_key(|t| rank(t)) {
            Some(tag) => {
                let (r, _) = rank(tag);
                by_section.entry((r, tag.clone())).or_default().push(entry);
            }
            None => untagged.push(entry),
        }
    }
    let mut sections: Vec<Section> = by_section
        .into_iter()
        .map(|((_, name), entries)| Section { name, entries })
        .collect();
    if !untagged.is_empty() {
        sections.push(Section {
            name: "Other".into(),
            entries: untagged,
        });
    }
    let period_label = period_label(
        period.start.with_timezone(&tz),
        period.cutoff.with_timezone(&tz),
    );
    let site_url = config.site_url.to_string();
    let feed_url = config
        .site_url
        .join("feed.atom")
        .map(|u| u.to_string())
        .unwrap_or_else(|_| site_url.clone());
    Digest {
        subject: subject(&cfg.subject, &cfg.title, stories.len(), &period_label),
        title: cfg.title.clone(),
        period_label,
        count: stories.len(),
        source_count: sources.len(),
        sections,
        site_url,
        feed_url,
        archive_url: None,
        archive_index_url: config
            .site_url
            .join("digests/")
            .map(|u| u.to_string())
            .unwrap_or_default(),
        web: false,
    }
}

fn entry(s: &Story, tz: Tz, strip: &[String]) -> Entry {
    // Recipients get links without click trackers.
    let link = s
        .link
        .as_deref()
        .and_then(|l| Url::parse(l).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| crate::dedup::strip_tracking(u.as_str(), strip));
    let mut names: Vec<&str> = Vec::new();
    for src in &s.sources {
        if !names.contains(&src.feed.as_str()) {
            names.push(&src.feed);
        }
    }
    let d = s.published.with_timezone(&tz);
    Entry {
        title: s.title.clone(),
        link,
        sources: names.join(", "),
        date: format!("{} {}", d.day(), month_abbrev(d.month())),
        excerpt: crate::sanitize::excerpt(&s.excerpt, EXCERPT_CHARS),
    }
}

fn month_abbrev(m: u32) -> &'static str {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    M[(m as usize).saturating_sub(1) % 12]
}

/// `17–24 Nov 2026`, `28 Nov – 5 Dec 2026` or `29 Dec 2026 – 5 Jan 2027`.
pub fn period_label(start: DateTime<Tz>, end: DateTime<Tz>) -> String {
    let (sd, sm, sy) = (start.day(), month_abbrev(start.month()), start.year());
    let (ed, em, ey) = (end.day(), month_abbrev(end.month()), end.year());
    if sy != ey {
        format!("{sd} {sm} {sy} – {ed} {em} {ey}")
    } else if start.month() != end.month() {
        format!("{sd} {sm} – {ed} {em} {ey}")
    } else if sd != ed {
        format!("{sd}–{ed} {em} {ey}")
    } else {
        format!("{ed} {em} {ey}")
    }
}

/// Fills a subject template: `{title}`, `{count}` (e.g. `23 stories`, or the
/// bare number when the template says `{count} stories`) and `{period}`.
pub fn subject(template: &str, title: &str, count: usize, period: &str) -> String {
    let counted = if count == 1 {
        "1 story".to_string()
    } else {
        format!("{count} stories")
    };
    template
        .replace("{count} stories", &counted)
        .replace("{count}", &count.to_string())
        .replace("{title}", title)
        .replace("{period}", period)
}

/// The unsubscribe details shown in one recipient's copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unsubscribe {
    /// One-click URL, personalised.
    pub url: Option<String>,
    /// Address to write to.
    pub mailto: Option<String>,
}

impl Unsubscribe {
    /// Whether the URL takes the RFC 8058 one-click POST: only an https URL may.
    pub fn one_click(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// The unsubscribe details for `recipient`. With `unsubscribe_url`
/// configured, that URL (`{email}` replaced) and `unsubscribe_mailto`, as
/// before gazette answered unsubscriptions itself; otherwise gazette's own
/// `{site_url}unsubscribe/TOKEN` (`token`) and a mailto (`unsubscribe_mailto`,
/// else the sender).
pub fn unsubscribe_for(
    config: &Config,
    cfg: &DigestConfig,
    recipient: &Mailbox,
    token: &str,
) -> Unsubscribe {
    if let Some(template) = &cfg.unsubscribe_url {
        let email = recipient.email.to_string();
        let encoded: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
        return Unsubscribe {
            url: Some(template.replace("{email}", &encoded)),
            mailto: cfg.unsubscribe_mailto.as_ref().map(|a| a.to_string()),
        };
    }
    Unsubscribe {
        url: Some(unsubscribe_url(config, token)),
        mailto: Some(
            cfg.unsubscribe_mailto
                .as_ref()
                .unwrap_or(&cfg.from.email)
                .to_string(),
        ),
    }
}

/// `{site_url}unsubscribe/TOKEN`.
pub fn unsubscribe_url(config: &Config, token: &str) -> String {
    format!("{}unsubscribe/{token}", config.site_url)
}

#[derive(Template)]
#[template(path = "digest.html")]
struct HtmlTemplate<'a> {
    d: &'a Digest,
    unsubscribe: &'a Unsubscribe,
}

#[derive(Template)]
#[template(path = "digest.txt")]
struct TextTemplate<'a> {
    d: &'a Digest,
    unsubscribe: &'a Unsubscribe,
}

/// The email-safe HTML of a digest (inline styles, tables, no scripts).
pub fn render_html(d: &Digest, unsubscribe: &Unsubscribe) -> Result<String, DigestError> {
    Ok(HtmlTemplate { d, unsubscribe }.render()?)
}

/// The plain-text alternative of a digest.
pub fn render_text(d: &Digest, unsubscribe: &Unsubscribe) -> Result<String, DigestError> {
    Ok(TextTemplate { d, unsubscribe }.render()?)
}

/// The digest `cfg` would send at `now`, or, when that period is already
/// recorded (or would be skipped), the one building up: from the last
/// cutoff to `now`, labelled up to the next fire time. With `topics`, as the
/// reader with those topics would get it. Nothing is recorded.
pub async fn upcoming(
    config: &Config,
    cfg: &DigestConfig,
    store: &Store,
    now: DateTime<Utc>,
    topics: &[String],
) -> Result<Digest, DigestError> {
    let schedule = &cfg.schedule;
    let mut last = store
        .periods(Some(&cfg.name), 1)
        .await?
        .first()
        .map(|p| p.cutoff);
    if let Some(p) = due_period(schedule, last, now) {
        let stories = stories_for(store, cfg, p).await?;
        if stories.len() >= cfg.min_stories {
            return Ok(build(config, cfg, &stories, p, topics));
        }
        last = Some(p.cutoff);
    }
    let start = last.unwrap_or(now - FIRST_PERIOD);
    // Store times are whole seconds: a story stored this second counts.
    let so_far = Period {
        start,
        cutoff: now + TimeDelta::seconds(1),
    };
    let stories = stories_for(store, cfg, so_far).await?;
    let label_end = schedule.next_after(now).unwrap_or(now);
    Ok(build(
        config,
        cfg,
        &stories,
        Period {
            start,
            cutoff: label_end,
        },
        topics,
    ))
}

/// The upcoming digest as HTML, for `gazette digest preview` and the `/digest` page.
pub async fn upcoming_html(
    config: &Config,
    cfg: &DigestConfig,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<String, DigestError> {
    let d = upcoming(config, cfg, store, now, &[]).await?;
    render_html(&d, &preview_unsubscribe(cfg))
}

/// Unsubscribe details of a copy addressed to nobody in particular (previews, the web page).
pub fn preview_unsubscribe(cfg: &DigestConfig) -> Unsubscribe {
    Unsubscribe {
        url: cfg
            .unsubscribe_url
            .as_ref()
            .map(|u| u.replace("{email}", "")),
        mailto: cfg.unsubscribe_mailto.as_ref().map(|a| a.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn config(extra: &str) -> Config {
        let text = format!(
            "title = \"Human Rights Defenders Watch\"\nsite_url = \"https://news.example.org/\"\n[digest]\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Zurich\"\nfrom = \"Gazette <digest@example.org>\"\nto = [\"team@example.org\"]\n{extra}"
        );
        Config::parse(Path::new("feeds.toml"), &text).unwrap()
    }

    fn story(id: i64, title: &str, tags: &[&str], published: DateTime<Utc>) -> Story {
        Story {
            id,
            title: title.into(),
            link: Some(format!("https://example.org/{id}")),
            sources: vec![Source {
                feed: "ISHR".into(),
                link: None,
                published,
                reason: "primary".into(),
                score: None,
            }],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            published,
            updated: None,
            created_at: published,
            changed_at: None,
            guid: None,
            authors: vec![],
            categories: vec![],
            enclosures: vec![],
            excerpt: "word ".repeat(100),
            summary_html: None,
            content_html: None,
        }
    }

    #[test]
    fn first_period_is_the_last_seven_days_before_the_fire_time() {
        let c = config("");
        let s = c.digests[0].schedule.clone();
        // Tuesday 24 Nov 2026 05:00 UTC: the due fire is Monday 23 Nov 08:00 CET (07:00 UTC).
        let p = due_period(&s, None, utc(2026, 11, 24, 5, 0)).unwrap();
        assert_eq!(p.cutoff, utc(2026, 11, 23, 7, 0));
        assert_eq!(p.start, utc(2026, 11, 16, 7, 0));
        assert_eq!(
            due_period(&s, Some(p.cutoff), utc(2026, 11, 24, 5, 0)),
            None
        );
        // Missed fire times: the next period covers the whole gap.
        let later = due_period(&s, Some(p.cutoff), utc(2026, 12, 8, 9, 0)).unwrap();
        assert_eq!(later.start, p.cutoff);
        assert_eq!(later.cutoff, utc(2026, 12, 7, 7, 0));
    }

    #[test]
    fn sections_follow_the_configured_order_then_other() {
        let c = config("sections = [\"un\", \"china\"]\n");
        let cfg = &c.digests[0];
        let t = utc(2026, 11, 20, 10, 0);
        let stories = vec![
            story(1, "A", &["china"], t),
            story(2, "B", &[], t),
            story(3, "C", &["asia", "un"], t),
            story(4, "D", &["asia"], t),
        ];
        let p = Period {
            start: utc(2026, 11, 16, 7, 0),
            cutoff: utc(2026, 11, 23, 7, 0),
        };
        let d = build(&c, cfg, &stories, p, &[]);
        let names: Vec<&str> = d.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["un", "china", "asia", "Other"]);
        assert_eq!(
            d.sections[0].entries[0].title, "C",
            "once, in its first section"
        );
        assert_eq!(d.count, 4);
        assert_eq!(
            d.subject,
            "Human Rights Defenders Watch — 4 stories, 16–23 Nov 2026"
        );
        let e = &d.sections[0].entries[0].excerpt;
        assert!(
            e.chars().count() <= EXCERPT_CHARS + 1 && e.ends_with("word…"),
            "{e}"
        );
    }

    #[test]
    fn labels_and_subjects() {
        let z: Tz = "Europe/Zurich".parse().unwrap();
        let at = |y, m, d| z.with_ymd_and_hms(y, m, d, 8, 0, 0).unwrap();
        assert_eq!(
            period_label(at(2026, 11, 17), at(2026, 11, 24)),
            "17–24 Nov 2026"
        );
        assert_eq!(
            period_label(at(2026, 11, 28), at(2026, 12, 5)),
            "28 Nov – 5 Dec 2026"
        );
        assert_eq!(
            period_label(at(2026, 12, 29), at(2027, 1, 5)),
            "29 Dec 2026 – 5 Jan 2027"
        );
        assert_eq!(
            subject("{title}: {count} stories", "W", 1, "x"),
            "W: 1 story"
        );
        assert_eq!(subject("{count} new ({period})", "W", 3, "x"), "3 new (x)");
    }

    #[test]
    fn html_is_escaped_and_has_no_scripts() {
        let c = config("unsubscribe_url = \"https://news.example.org/unsub?e={email}\"\n");
        let cfg = &c.digests[0];
        let t = utc(2026, 11, 20, 10, 0);
        let mut s = story(1, "<script>alert(1)</script> & co", &[], t);
        s.link = Some("javascript:alert(1)".into());
        let p = Period {
            start: utc(2026, 11, 16, 7, 0),
            cutoff: utc(2026, 11, 23, 7, 0),
        };
        let d = build(&c, cfg, &[s], p, &[]);
        let to: Mailbox = "a+b@example.org".parse().unwrap();
        let u = unsubscribe_for(&c, cfg, &to, "unused");
        assert_eq!(
            u.url.as_deref(),
            Some("https://news.example.org/unsub?e=a%2Bb%40example.org")
        );
        let html = render_html(&d, &u).unwrap();
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)"), "{html}");
        assert!(html.contains("https://news.example.org/feed.atom"));
        let text = render_text(&d, &u).unwrap();
        assert!(text.contains("<script>alert(1)</script> & co"), "{text}");
        assert!(text.contains("Unsubscribe"), "{text}");
    }

    #[test]
    fn subscribers_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subs.txt");
        std::fs::write(
            &path,
            "# team\na@example.org\n\nB <b@example.org> # boss\nnot an address\n",
        )
        .unwrap();
        let e = read_subscribers(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:5: \"not an address\" is not an email address",
                path.display()
            )
        );
        std::fs::write(
            &path,
            "# team\na@example.org\n\nB <b@example.org> # boss\nA@example.org\n",
        )
        .unwrap();
        let mut c = config("");
        c.digests[0].subscribers = Some(path);
        let all: Vec<String> = recipients(&c, &c.digests[0])
            .unwrap()
            .iter()
            .map(|m| m.mailbox.email.to_string())
            .collect();
        assert_eq!(all, ["team@example.org", "a@example.org", "b@example.org"]);
    }
}
