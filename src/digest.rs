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
    /// Nobody to send to.
    #[error("the digest has no recipients: set `to` or `subscribers` in [digest]")]
    NoRecipients,
}

/// The `[digest]` section, or an error saying it is missing.
pub fn settings(config: &Config) -> Result<&DigestConfig, DigestError> {
    config.digest.as_ref().ok_or(DigestError::NotConfigured)
}

/// Every recipient: `to`, then the subscribers file (one address per line,
/// `#` starts a comment), each address once (compared case-insensitively).
pub fn recipients(cfg: &DigestConfig) -> Result<Vec<Mailbox>, DigestError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |m: Mailbox| {
        if seen.insert(m.email.to_string().to_lowercase()) {
            out.push(m);
        }
    };
    for t in &cfg.to {
        push(t.clone());
    }
    if let Some(path) = &cfg.subscribers {
        for m in read_subscribers(path)? {
            push(m);
        }
    }
    Ok(out)
}

/// Reads a subscribers file; errors name the file and line.
pub fn read_subscribers(path: &Path) -> Result<Vec<Mailbox>, DigestError> {
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
        let m = mail::mailbox(line).map_err(|_| DigestError::Subscriber {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        })?;
        out.push(m);
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
}

/// Groups `stories` (newest first) into sections: the tags listed in
/// `sections` first in that order, then other tags alphabetically, then
/// "Other" for untagged stories. A story with several tags appears once,
/// in the first of its sections.
pub fn build(config: &Config, cfg: &DigestConfig, stories: &[Story], period: Period) -> Digest {
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
        match s.tags.iter().min_by_key(|t| rank(t)) {
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
        subject: subject(&cfg.subject, &config.title, stories.len(), &period_label),
        title: config.title.clone(),
        period_label,
        count: stories.len(),
        source_count: sources.len(),
        sections,
        site_url,
        feed_url,
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
    /// One-click URL, personalised (`{email}` replaced).
    pub url: Option<String>,
    /// Address to write to.
    pub mailto: Option<String>,
}

/// The unsubscribe details for `recipient`.
pub fn unsubscribe_for(cfg: &DigestConfig, recipient: &Mailbox) -> Unsubscribe {
    let email = recipient.email.to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    Unsubscribe {
        url: cfg
            .unsubscribe_url
            .as_ref()
            .map(|u| u.replace("{email}", &encoded)),
        mailto: cfg
            .unsubscribe_mailto
            .as_ref()
            .map(|a| a.to_string())
            .or_else(|| {
                if cfg.unsubscribe_url.is_none() {
                    // Someone must be reachable: the sender's own address.
                    Some(cfg.from.email.to_string())
                } else {
                    None
                }
            }),
    }
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

/// The digest that `digest send` would send at `now`, or, when that period
/// is already recorded (or would be skipped as empty), the one building up:
/// from the last cutoff to `now`, labelled up to the next fire time.
/// Nothing is recorded.
pub async fn upcoming(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Digest, DigestError> {
    let cfg = settings(config)?;
    let schedule = &cfg.schedule;
    let mut last = store.digest_periods(1).await?.first().map(|p| p.cutoff);
    if let Some(p) = due_period(schedule, last, now) {
        let stories = stories(store, p).await?;
        if !stories.is_empty() || cfg.send_when_empty {
            return Ok(build(config, cfg, &stories, p));
        }
        last = Some(p.cutoff);
    }
    let start = last.unwrap_or(now - FIRST_PERIOD);
    // Store times are whole seconds: a story stored this second counts.
    let so_far = Period {
        start,
        cutoff: now + TimeDelta::seconds(1),
    };
    let stories = stories(store, so_far).await?;
    let label_end = schedule.next_after(now).unwrap_or(now);
    Ok(build(
        config,
        cfg,
        &stories,
        Period {
            start,
            cutoff: label_end,
        },
    ))
}

/// The upcoming digest as HTML, for `gazette digest preview` and the `/digest` page.
pub async fn upcoming_html(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<String, DigestError> {
    let cfg = settings(config)?;
    let d = upcoming(config, store, now).await?;
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
        let s = c.digest.as_ref().unwrap().schedule.clone();
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
        let cfg = c.digest.as_ref().unwrap();
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
        let d = build(&c, cfg, &stories, p);
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
        let cfg = c.digest.as_ref().unwrap();
        let t = utc(2026, 11, 20, 10, 0);
        let mut s = story(1, "<script>alert(1)</script> & co", &[], t);
        s.link = Some("javascript:alert(1)".into());
        let p = Period {
            start: utc(2026, 11, 16, 7, 0),
            cutoff: utc(2026, 11, 23, 7, 0),
        };
        let d = build(&c, cfg, &[s], p);
        let to: Mailbox = "a+b@example.org".parse().unwrap();
        let u = unsubscribe_for(cfg, &to);
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
        let cfg = c.digest.as_mut().unwrap();
        cfg.subscribers = Some(path);
        let all: Vec<String> = recipients(cfg)
            .unwrap()
            .iter()
            .map(|m| m.email.to_string())
            .collect();
        assert_eq!(all, ["team@example.org", "a@example.org", "b@example.org"]);
    }
}
