//! Plain data types that flow between the pipeline steps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A media file attached to an item (podcast audio, PDF report…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    /// Absolute URL of the file.
    pub url: String,
    /// MIME type, when the feed gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Size in bytes, when the feed gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

/// One normalised item, ready to store: plain-text title, absolute link,
/// sanitised HTML, UTC dates.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Identity within its feed: `guid:…`, `link:…` or `hash:…`.
    pub key: String,
    /// Hash of the item as the feed sent it; unchanged hash means nothing to do.
    pub raw_hash: i64,
    /// The feed's own id for the item, when it has one.
    pub guid: Option<String>,
    /// Absolute link to the story.
    pub link: Option<String>,
    /// Plain-text title, entities decoded.
    pub title: String,
    /// Sanitised summary HTML.
    pub summary_html: Option<String>,
    /// Sanitised full content HTML.
    pub content_html: Option<String>,
    /// Plain-text excerpt of the content or summary.
    pub excerpt: String,
    /// Author names.
    pub authors: Vec<String>,
    /// The feed's categories for the item.
    pub categories: Vec<String>,
    /// Attached media.
    pub enclosures: Vec<Enclosure>,
    /// Publication date, UTC.
    pub published: Option<DateTime<Utc>>,
    /// Last update date, UTC.
    pub updated: Option<DateTime<Utc>>,
    /// Tags from the feed and the keyword rules.
    pub tags: Vec<String>,
    /// The link in canonical form (see `dedup::canonical_link`).
    pub canonical_link: Option<String>,
    /// MinHash signature of title and excerpt, for near duplicates.
    pub signature: Option<Vec<u32>>,
    /// Matched an exclusion rule: stored, but left out of outputs.
    pub excluded: bool,
}

/// A stored item as re-tagging reads it.
#[derive(Debug, Clone)]
pub struct TaggingInput {
    /// Store id.
    pub item_id: i64,
    /// Its feed's name.
    pub feed: String,
    /// Plain-text title.
    pub title: String,
    /// Sanitised summary.
    pub summary_html: Option<String>,
    /// Sanitised content.
    pub content_html: Option<String>,
    /// Feed categories.
    pub categories: Vec<String>,
}

/// How a feed's last fetch ended, as kept between polls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FetchStatus {
    /// Never fetched (or its url changed since).
    #[default]
    New,
    /// A document was fetched and parsed.
    Ok,
    /// 304, or an unchanged local file.
    NotModified,
    /// 410 Gone: not polled again until its url changes.
    Gone,
    /// 429/503 with Retry-After: not polled before `next_fetch_at`.
    Throttled,
    /// Another failure; the feed backs off.
    Failed(FailureKind),
}

/// The kinds of fetch failure, as recorded and counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The request took longer than `[fetch] timeout`.
    Timeout,
    /// No connection (refused, DNS, TLS).
    Connect,
    /// The connection broke.
    Network,
    /// Another 4xx status (or 429 without Retry-After).
    Http4xx,
    /// A 5xx status (or 503 without Retry-After).
    Http5xx,
    /// The body passed `[fetch] max_body_size`.
    TooLarge,
    /// Too many or bad redirects.
    Redirect,
    /// A local file could not be read.
    File,
    /// The document could not be parsed.
    Parse,
}

impl FetchStatus {
    /// The name stored and shown (`ok`, `gone`, `http_5xx`…).
    pub fn as_str(self) -> &'static str {
        match self {
            FetchStatus::New => "new",
            FetchStatus::Ok => "ok",
            FetchStatus::NotModified => "not_modified",
            FetchStatus::Gone => "gone",
            FetchStatus::Throttled => "throttled",
            FetchStatus::Failed(k) => match k {
                FailureKind::Timeout => "timeout",
                FailureKind::Connect => "connect",
                FailureKind::Network => "network",
                FailureKind::Http4xx => "http_4xx",
                FailureKind::Http5xx => "http_5xx",
                FailureKind::TooLarge => "too_large",
                FailureKind::Redirect => "redirect",
                FailureKind::File => "file",
                FailureKind::Parse => "parse",
            },
        }
    }

    /// Reads a stored name; an unknown one reads as `New`.
    pub fn parse(s: &str) -> FetchStatus {
        use FailureKind::*;
        match s {
            "ok" => FetchStatus::Ok,
            "not_modified" => FetchStatus::NotModified,
            "gone" => FetchStatus::Gone,
            "throttled" => FetchStatus::Throttled,
            "timeout" => FetchStatus::Failed(Timeout),
            "connect" => FetchStatus::Failed(Connect),
            "network" => FetchStatus::Failed(Network),
            "http_4xx" => FetchStatus::Failed(Http4xx),
            "http_5xx" => FetchStatus::Failed(Http5xx),
            "too_large" => FetchStatus::Failed(TooLarge),
            "redirect" => FetchStatus::Failed(Redirect),
            "file" => FetchStatus::Failed(File),
            "parse" => FetchStatus::Failed(Parse),
            _ => FetchStatus::New,
        }
    }
}

impl std::fmt::Display for FetchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A feed's fetch state, kept between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchState {
    /// ETag of the last 200 response.
    pub etag: Option<String>,
    /// Last-Modified of the last 200 response.
    pub last_modified: Option<String>,
    /// Where a permanent redirect pointed; fetched instead of the configured URL.
    pub permanent_url: Option<String>,
    /// How the last fetch ended.
    pub status: FetchStatus,
    /// Message of the last error.
    pub last_error: Option<String>,
    /// Consecutive failures; drives the backoff.
    pub error_count: u32,
    /// When the feed was last fetched.
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// When the feed last answered 200 or 304.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Not to be fetched before this time: backoff or Retry-After.
    pub next_fetch_at: Option<DateTime<Utc>>,
    /// When the daemon that fetched it last plans to fetch it again
    /// (`scheduler::due_in`); another instance does not fetch it sooner.
    pub due_at: Option<DateTime<Utc>>,
    /// The feed's own title.
    pub title: Option<String>,
    /// The feed's web site.
    pub site_link: Option<String>,
    /// The feed's `ttl` / `sy:updatePeriod` hint.
    pub ttl: Option<std::time::Duration>,
}

/// A feed as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    /// Store id.
    pub id: i64,
    /// Name from the configuration.
    pub name: String,
    /// URL from the configuration.
    pub url: String,
    /// Fetch state.
    pub state: FetchState,
}

/// One feed's item within a story.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// The feed's name.
    pub feed: String,
    /// The item's link in that feed.
    pub link: Option<String>,
    /// The item's date in that feed.
    pub published: DateTime<Utc>,
    /// Why the item is part of the story: `primary`, `same link` or `near duplicate`.
    pub reason: String,
    /// Similarity to the story, for near duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// A stored story: its primary item's content, and every source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Story {
    /// Store id; stable for the story's life.
    pub id: i64,
    /// Plain-text title (of the primary item).
    pub title: String,
    /// Absolute link (of the primary item).
    pub link: Option<String>,
    /// The items that carry the story, primary first.
    pub sources: Vec<Source>,
    /// Tags: the union over its items.
    pub tags: Vec<String>,
    /// The story's date: its earliest item's (first-seen time when none had a date).
    pub published: DateTime<Utc>,
    /// Last update of the primary item, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    /// When the store first saw the story.
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
    /// When an item last joined the story or one of its items was edited.
    #[serde(skip)]
    pub changed_at: Option<DateTime<Utc>>,
    /// The primary item's guid, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// Author names.
    pub authors: Vec<String>,
    /// Feed categories.
    pub categories: Vec<String>,
    /// Attached media.
    pub enclosures: Vec<Enclosure>,
    /// Plain-text excerpt.
    pub excerpt: String,
    /// Sanitised summary HTML.
    #[serde(skip)]
    pub summary_html: Option<String>,
    /// Sanitised content HTML.
    #[serde(skip)]
    pub content_html: Option<String>,
}

/// Filters for listing stories.
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Only stories with this tag.
    pub tag: Option<String>,
    /// Only stories published at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Also stories matched by an exclusion rule.
    pub include_excluded: bool,
}

/// Where a digest period stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodStatus {
    /// Some deliveries are not final yet.
    Open,
    /// Every delivery is sent or failed for good.
    Done,
    /// Nothing to send (an empty period with `send_when_empty = false`).
    Skipped,
}

impl PeriodStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodStatus::Open => "open",
            PeriodStatus::Done => "done",
            PeriodStatus::Skipped => "skipped",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<PeriodStatus> {
        Some(match s {
            "open" => PeriodStatus::Open,
            "done" => PeriodStatus::Done,
            "skipped" => PeriodStatus::Skipped,
            _ => return None,
        })
    }
}

/// A recorded digest period: the stories first stored in `[start, cutoff)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestPeriod {
    /// Store id.
    pub id: i64,
    /// The digest it belongs to.
    pub digest: String,
    /// Stories first stored at or after this time are in it.
    pub start: DateTime<Utc>,
    /// The scheduled time that closed it; stories stored before it are in it.
    pub cutoff: DateTime<Utc>,
    /// How many stories it holds.
    pub stories: i64,
    /// Open, done or skipped.
    pub status: PeriodStatus,
}

/// Where one recipient's copy of a digest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not tried yet.
    Queued,
    /// Handed to the transport; the outcome was not recorded (still sending, or a crash).
    Pending,
    /// Accepted by the server (or written to the outbox).
    Sent,
    /// Refused; see the reply.
    Failed,
    /// Not sent, on purpose: none of the reader's topics had a story, or
    /// the reader unsubscribed (see the reply).
    Skipped,
}

impl DeliveryState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "queued" => DeliveryState::Queued,
            "pending" => DeliveryState::Pending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "skipped" => DeliveryState::Skipped,
            _ => return None,
        })
    }
}

/// One recipient's copy of a digest period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The period it belongs to.
    pub period_id: i64,
    /// The recipient's mailbox.
    pub recipient: String,
    /// The reader's topics: only these sections (empty: the whole digest).
    pub topics: Vec<String>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Message-ID chosen when the period was recorded; kept across retries
    /// so a copy sent twice after a crash is recognisably the same message.
    pub message_id: String,
    /// How many times the transport was called for it.
    pub attempts: i64,
    /// A failure that retrying will not fix (SMTP 5xx).
    pub permanent: bool,
    /// The server's reply or the transport's error for the last attempt.
    pub reply: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A digest period to record, with its deliveries and its archived issue.
#[derive(Debug, Clone)]
pub struct NewPeriod {
    /// The digest.
    pub digest: String,
    /// Stories first stored at or after this time are in it.
    pub start: DateTime<Utc>,
    /// The scheduled time that closed it.
    pub cutoff: DateTime<Utc>,
    /// How many stories it holds.
    pub stories: i64,
    /// One row per recipient, in sending order.
    pub deliveries: Vec<NewDelivery>,
    /// The issue kept in the archive (none when the period is skipped).
    pub issue: Option<NewIssue>,
    /// When it is recorded.
    pub now: DateTime<Utc>,
}

/// One recipient's row of a new period.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The recipient's mailbox.
    pub recipient: String,
    /// Message-ID of their copy.
    pub message_id: String,
    /// Their topics (empty: the whole digest).
    pub topics: Vec<String>,
    /// `Queued`, or `Skipped` with `reply` saying why.
    pub state: DeliveryState,
    /// Why it is skipped.
    pub reply: Option<String>,
}

/// An issue of a digest to archive.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIssue {
    /// Its address under `/digests/NAME/`, e.g. `2026-11-23-0800`.
    pub slug: String,
    /// Its subject.
    pub subject: String,
    /// The whole digest as a web page (no per-reader parts).
    pub html: String,
}

/// An archived issue of a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// The digest.
    pub digest: String,
    /// Its period.
    pub period_id: i64,
    /// Its address under `/digests/NAME/`.
    pub slug: String,
    /// Its subject.
    pub subject: String,
    /// The period's start.
    pub start: DateTime<Utc>,
    /// The period's cutoff.
    pub cutoff: DateTime<Utc>,
    /// How many stories.
    pub stories: i64,
    /// The page, when asked for.
    pub html: Option<String>,
}

/// A reader who left a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppression {
    /// The digest.
    pub digest: String,
    /// The address, lower-case.
    pub recipient: String,
    /// When.
    pub at: DateTime<Utc>,
    /// How: `one-click` (RFC 8058 POST), `web` (the page's button) or `cli`.
    pub how: String,
}
