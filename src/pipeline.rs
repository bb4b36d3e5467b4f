//! Refreshing one feed: fetch → parse → normalise → tag → store. The only
//! place that sees every ingest step; every failure ends here as a
//! [`FeedReport`] naming the feed, never as an error that stops other feeds.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::{Config, FeedConfig, FeedSource};
use crate::dedup;
use crate::fetch::{Conditional, FetchError, Fetched, Fetcher};
use crate::filing;
use crate::model::{FailureKind, FeedRow, FetchState, FetchStatus};
use crate::parse::{self, Deadline, ParseContext, ParseError};
use crate::sanitize::Sanitizer;
use crate::scheduler;
use crate::store::{Document, Prepared, Store, StoreError};
use crate::tag::Tagger;

/// Parsing is CPU-bound: as many documents at a time as there are cores.
static PARSERS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// How a feed's refresh ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    /// Fetched and parsed.
    Ok,
    /// 304 or unchanged file.
    NotModified,
    /// Not fetched: the server asked us to wait (Retry-After) until then.
    Deferred(DateTime<Utc>),
    /// The feed answered 410 Gone (now or earlier).
    Gone,
    /// Failed; the classification (`timeout`, `http_5xx`, `parse`…).
    Failed(String),
}

impl fmt::Display for FeedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedStatus::Ok => f.write_str("ok"),
            FeedStatus::NotModified => f.write_str("not modified"),
            FeedStatus::Deferred(_) => f.write_str("deferred"),
            FeedStatus::Gone => f.write_str("gone"),
            FeedStatus::Failed(kind) => write!(f, "error ({kind})"),
        }
    }
}

/// The outcome of refreshing one feed.
#[derive(Debug, Clone)]
pub struct FeedReport {
    /// The feed's name.
    pub name: String,
    /// How it ended.
    pub status: FeedStatus,
    /// Items stored for the first time.
    pub new: usize,
    /// Items rewritten because they changed.
    pub updated: usize,
    /// Entries in the document that were already stored unchanged.
    pub unchanged: usize,
    /// What went wrong, or a notice (e.g. a permanent redirect).
    pub message: Option<String>,
    /// Something odd in a document that was read all the same (a date that
    /// could not be read), shown in the poll summary.
    pub warning: Option<String>,
}

impl FeedReport {
    fn new(name: &str, status: FeedStatus) -> FeedReport {
        FeedReport {
            name: name.to_string(),
            status,
            new: 0,
            updated: 0,
            unchanged: 0,
            message: None,
            warning: None,
        }
    }

    /// A refresh that panicked outside the parser (a bug): reported, not fatal.
    pub fn crashed(name: &str, why: &str) -> FeedReport {
        let mut r = FeedReport::new(name, FeedStatus::Failed("internal".into()));
        r.message = Some(format!("internal error, please report it: {why}"));
        r
    }

    /// Whether the feed failed.
    pub fn is_error(&self) -> bool {
        matches!(self.status, FeedStatus::Failed(_) | FeedStatus::Gone)
    }
}

/// Everything a refresh needs, shared by all feeds of a poll. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// The HTTP client with its limits.
    pub fetcher: Arc<Fetcher>,
    /// Compiled tag rules.
    pub tagger: Arc<Tagger>,
}

/// What to do about waits the store records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waits {
    /// Skip feeds under Retry-After or marked gone (manual `poll`).
    ServerRequested,
    /// Also skip feeds backing off after failures (the daemon).
    All,
    /// Fetch regardless (`poll --force`).
    Ignore,
}

impl Ingest {
    /// Refreshes one feed, storing its new and changed items, and returns the
    /// fetch state to record (`None` when the feed was not fetched). Callers
    /// that refresh many feeds record the states in batches.
    pub async fn refresh(
        &self,
        feed: &FeedConfig,
        row: &FeedRow,
        waits: Waits,
    ) -> (FeedReport, Option<FetchState>) {
        match self.refresh_inner(feed, row, waits).await {
            Ok(r) => r,
            Err(e) => (store_failed(feed, e), None),
        }
    }

    async fn refresh_inner(
        &self,
        feed: &FeedConfig,
        row: &FeedRow,
        waits: Waits,
    ) -> Result<(FeedReport, Option<FetchState>), StoreError> {
        let now = Utc::now();
        let mut st = row.state.clone();
        if waits != Waits::Ignore {
            if st.status == FetchStatus::Gone {
                let mut r = FeedReport::new(&feed.name, FeedStatus::Gone);
                r.message = Some(format!(
                    "marked gone (HTTP 410) earlier: remove it from {} or poll with --force",
                    self.config.path.display()
                ));
                return Ok((r, None));
            }
            let waiting = st.next_fetch_at.filter(|t| *t > now);
            let throttled = st.status == FetchStatus::Throttled;
            let honour = waits == Waits::All || throttled;
            if let (Some(until), true) = (waiting, honour) {
                let mut r = FeedReport::new(&feed.name, FeedStatus::Deferred(until));
                let why = if throttled {
                    "server asked to wait"
                } else {
                    "backing off after errors"
                };
                r.message = Some(format!(
                    "{why}: next fetch after {}",
                    until.format("%Y-%m-%d %H:%M:%S UTC")
                ));
                return Ok((r, None));
            }
        }

        let source = match (&feed.source, &st.permanent_url) {
            (FeedSource::Http(_), Some(p)) => Url::parse(p)
                .map(FeedSource::Http)
                .unwrap_or_else(|_| feed.source.clone()),
            _ => feed.source.clone(),
        };
        let cond = Conditional {
            etag: st.etag.clone(),
            last_modified: st.last_modified.clone(),
        };
        st.last_fetch_at = Some(now);
        let fetched = self.fetcher.fetch(&source, &cond).await;
        let (report, state) = match fetched {
            Err(e) => self.failed(feed, st, e, now),
            Ok(Fetched::NotModified { moved_permanently }) => {
                let mut r = FeedReport::new(&feed.name, FeedStatus::NotModified);
                note_moved(&mut r, &mut st, moved_permanently);
                succeeded(&mut st, now, FetchStatus::NotModified);
                (r, st)
            }
            Ok(Fetched::Body {
                body,
                content_type,
                final_url,
                content_location,
                etag,
                last_modified,
                moved_permanently,
            }) => {
                let known = self.store.known_hashes(row.id).await?;
                // One document parsed per core at a time: more would only
                // share the cores while each holds its document in memory.
                let cpu = PARSERS.acquire().await;
                let tagger = self.tagger.clone();
                let feed_tags = feed.tags.clone();
                let config = self.config.clone();
                let base = document_base(final_url, content_location.as_deref());
                let parsed = tokio::task::spawn_blocking(move || {
                    // From here the document has a core: its CPU limit runs.
                    let deadline = Deadline::after(config.fetch.parse_timeout);
                    parse_and_normalise(
                        &body,
                        content_type.as_deref(),
                        base.as_ref(),
                        &known,
                        &tagger,
                        &feed_tags,
                        &config.dedup.strip_params,
                        deadline,
                    )
                })
                .await
                .unwrap_or_else(|join| Err(ParseError::Panicked(join.to_string())));
                drop(cpu);
                match parsed {
                    Err(e) => {
                        let mut r = FeedReport::new(&feed.name, FeedStatus::Failed("parse".into()));
                        r.message = Some(e.to_string());
                        tracing::warn!(feed = %feed.name, error = %e, "feed could not be parsed");
                        st.error_count += 1;
                        st.status = FetchStatus::Failed(FailureKind::Parse);
                        st.last_error = Some(e.to_string());
                        st.next_fetch_at = Some(now + self.backoff(st.error_count));
                        (r, st)
                    }
                    Ok(mut out) => {
                        // What the retention would prune is not stored in the first place.
                        if let Some(keep) = self.config.retention {
                            let oldest = now.timestamp() - keep.as_secs() as i64;
                            out.items.retain(|i| {
                                i.item.published.is_none_or(|p| p.timestamp() >= oldest)
                            });
                        }
                        let counts = self
                            .store
                            .file_document(Document {
                                feed_id: row.id,
                                items: out.items,
                                listed: out.keys,
                                now,
                                policy: self.filing_policy(),
                            })
                            .await?;
                        let mut r = FeedReport::new(&feed.name, FeedStatus::Ok);
                        r.new = counts.new;
                        r.updated = counts.updated;
                        r.unchanged = out.unchanged;
                        r.warning = out.warning;
                        note_moved(&mut r, &mut st, moved_permanently);
                        st.etag = etag;
                        st.last_modified = last_modified;
                        st.title = out.title.or(st.title);
                        st.site_link = out.site_link.or(st.site_link);
                        st.ttl = out
                            .ttl_seconds
                            .filter(|s| *s > 0)
                            .map(|s| std::time::Duration::from_secs(s as u64));
                        succeeded(&mut st, now, FetchStatus::Ok);
                        (r, st)
                    }
                }
            }
        };
        Ok((report, Some(state)))
    }

    fn failed(
        &self,
        feed: &FeedConfig,
        mut st: FetchState,
        e: FetchError,
        now: DateTime<Utc>,
    ) -> (FeedReport, FetchState) {
        tracing::warn!(feed = %feed.name, error = %e, "fetch failed");
        st.error_count += 1;
        st.status = e.status();
        st.last_error = Some(e.to_string());
        let wait = match e.retry_after() {
            Some(d) => chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX),
            None => self.backoff(st.error_count),
        };
        st.next_fetch_at = Some(now.checked_add_signed(wait).unwrap_or(now));
        let status = match e {
            FetchError::Gone => FeedStatus::Gone,
            _ => FeedStatus::Failed(e.kind().to_string()),
        };
        let mut r = FeedReport::new(&feed.name, status);
        r.message = Some(e.to_string());
        (r, st)
    }

    fn filing_policy(&self) -> filing::Policy {
        filing::Policy {
            window_secs: self.config.dedup.window.as_secs() as i64,
            threshold: self.config.dedup.threshold,
        }
    }

    fn backoff(&self, errors: u32) -> chrono::TimeDelta {
        let wait = scheduler::backoff(
            errors,
            self.config.min_interval,
            self.config.fetch.max_backoff,
        );
        chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX)
    }
}

fn store_failed(feed: &FeedConfig, e: StoreError) -> FeedReport {
    tracing::error!(feed = %feed.name, error = %e, "storing the feed failed");
    let mut r = FeedReport::new(&feed.name, FeedStatus::Failed("store".into()));
    r.message = Some(e.to_string());
    r
}

fn succeeded(st: &mut FetchState, now: DateTime<Utc>, status: FetchStatus) {
    st.status = status;
    st.error_count = 0;
    st.last_error = None;
    st.next_fetch_at = None;
    st.last_success_at = Some(now);
}

fn note_moved(r: &mut FeedReport, st: &mut FetchState, moved: Option<Url>) {
    if let Some(to) = moved {
        r.message = Some(format!(
            "moved permanently to {to}: update its url in the configuration"
        ));
        st.permanent_url = Some(to.to_string());
    }
}

/// Parsed, filtered and normalised content of one document.
struct Normalised {
    title: Option<String>,
    site_link: Option<String>,
    ttl_seconds: Option<i64>,
    items: Vec<Prepared>,
    /// Keys of every entry of the document, unchanged ones included.
    keys: Vec<String>,
    unchanged: usize,
    /// A warning about the entries normalised this time.
    warning: Option<String>,
}

/// CPU-bound part of a refresh: runs on a blocking thread. Entries already
/// stored with the same raw hash are counted and skipped before the costly
/// sanitising. Gives up with [`ParseError::TooCostly`] once `deadline`
/// passes (looked at in the parser's loops and before each entry).
#[allow(clippy::too_many_arguments)]
fn parse_and_normalise(
    body: &[u8],
    content_type: Option<&str>,
    base: Option<&Url>,
    known: &HashMap<String, i64>,
    tagger: &Tagger,
    feed_tags: &[String],
    strip_params: &[String],
    deadline: Deadline,
) -> Result<Normalised, ParseError> {
    let parsed = parse::parse_within(
        body,
        ParseContext {
            base_url: base,
            content_type,
        },
        deadline,
    )?;
    let sanitizer = Sanitizer::new(base.or(parsed_site(&parsed.site_link).as_ref()));
    let mut seen = HashSet::new();
    let mut unchanged = 0;
    let mut items = Vec::new();
    for entry in &parsed.entries {
        if !seen.insert(entry.key.as_str()) {
            continue;
        }
        if known.get(&entry.key) == Some(&entry.raw_hash) {
            unchanged += 1;
            continue;
        }
        deadline.check()?;
        let mut item = entry.normalise(&sanitizer);
        let tagging = tagger.apply_html(
            feed_tags,
            &item.title,
            item.summary_html.as_deref(),
            item.content_html.as_deref(),
            &item.categories,
        );
        item.tags = tagging.tags;
        item.excluded = tagging.excluded;
        item.canonical_link = item
            .link
            .as_deref()
            .and_then(|l| dedup::canonical_link(l, strip_params));
        item.signature = dedup::signature(&item.title, &item.excerpt);
        // Encoded here, on a parsing thread, not by the store's one writer.
        items.push(Prepared::new(item));
    }
    // Reported when something was stored this time, so an unchanged feed
    // does not repeat it at every poll.
    let warning = parsed
        .unreadable_date
        .filter(|_| !items.is_empty())
        .map(|d| {
            tracing::warn!(date = %d, "a date in the feed could not be read");
            format!("unreadable date {d:?}: its story keeps the time it was first seen")
        });
    Ok(Normalised {
        warning,
        title: parsed.title,
        site_link: parsed.site_link,
        ttl_seconds: parsed.ttl_seconds,
        items,
        keys: seen.into_iter().map(str::to_string).collect(),
        unchanged,
    })
}

/// The URL relative links in a document resolve against (after its own
/// `xml:base`): its Content-Location, resolved against the URL it came
/// from, else that URL.
fn document_base(final_url: Option<Url>, content_location: Option<&str>) -> Option<Url> {
    let located = content_location.and_then(|cl| match &final_url {
        Some(u) => u.join(cl.trim()).ok(),
        None => Url::parse(cl.trim()).ok(),
    });
    located
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .or(final_url)
}

fn parsed_site(s: &Option<String>) -> Option<Url> {
    s.as_deref().and_then(|s| Url::parse(s).ok())
}
