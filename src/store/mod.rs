//! The store contract ([`Backend`]) and its backends: the only place with
//! SQL. The rest of gazette holds a [`Store`] and calls the contract in
//! domain types; each backend lives in its own file and passes the same
//! contract test suite (`tests/it/contract.rs`).
//!
//! Deciding is not the store's business: which story an item joins is
//! decided by [`crate::filing`] from the candidates a backend gathers, and
//! the backend applies those decisions in the same transaction.

mod gather;
mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{DatabaseUrl, FeedConfig};
use crate::dedup;
use crate::filing::{self, MergeReason, Policy};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, Enclosure, FeedRow, FetchState, Issue, Item, ItemQuery,
    NewDelivery, NewPeriod, PeriodStatus, Source, Story, Suppression, TaggingInput,
};
use crate::tag::Tagging;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Band entries a process's near-duplicate index keeps between writes (8
/// bytes each): 64 MB, the stories of about two months of 10,000 busy
/// feeds. Past it, the least recently used slabs are dropped (and read again
/// from the store when an item needs them).
const NEAR_MAX_POSTINGS: usize = 8_000_000;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database {target}: {source}")]
    Open {
        /// What was opened.
        target: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The transaction this write shared with other feeds' writes failed.
    #[error("database error: {0}")]
    Shared(Arc<sqlx::Error>),
    /// The write was cut short (the process is stopping): nothing of it is stored.
    #[error("the write was interrupted; the feed's items are stored on its next poll")]
    Interrupted,
    /// Stored data could not be read back.
    #[error("the database holds unreadable data: {0}")]
    Corrupt(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another process is sending the digest of this store.
    #[error("another `gazette digest send` (or the daemon) is sending the digest of this database")]
    SenderBusy,
    /// The digest sender's lock could not be taken.
    #[error("cannot take the digest sender's lock {path}: {source}")]
    SenderLock {
        /// The lock.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// First byte of compressed stored HTML. It never starts UTF-8 text, so
/// stored HTML says itself whether it is compressed.
const LZ4_MARK: u8 = 0xFF;
/// HTML shorter than this is stored as it is: compressing it would not pay.
const COMPRESS_FROM: usize = 256;

/// An item encoded for the store: its HTML compressed (LZ4), done by the
/// caller (the pipeline's parsing threads) and not by the store's single
/// writer. Stored HTML takes about 55% of its size.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The item; its HTML has moved to the encoded fields.
    pub item: Item,
    summary_html: Option<Vec<u8>>,
    content_html: Option<Vec<u8>>,
}

impl Prepared {
    /// Encodes `item` for storing.
    pub fn new(mut item: Item) -> Prepared {
        let summary_html = item.summary_html.take().map(encode_html);
        let content_html = item.content_html.take().map(encode_html);
        Prepared {
            item,
            summary_html,
            content_html,
        }
    }
}

/// Stored form of sanitised HTML: the mark and an LZ4 block when long
/// enough, else its bytes.
fn encode_html(html: String) -> Vec<u8> {
    if html.len() < COMPRESS_FROM {
        return html.into_bytes();
    }
    let mut out = vec![LZ4_MARK];
    out.extend_from_slice(&lz4_flex::compress_prepend_size(html.as_bytes()));
    out
}

/// HTML back from its stored form (also plain text stored by earlier versions).
fn decode_html(bytes: Vec<u8>) -> Result<String, StoreError> {
    let bytes = match bytes.split_first() {
        Some((&LZ4_MARK, block)) => lz4_flex::decompress_size_prepended(block)
            .map_err(|e| StoreError::Corrupt(format!("stored HTML does not decompress: {e}")))?,
        _ => bytes,
    };
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored HTML is not UTF-8: {e}")))
}

/// One stored item of a story with its feed and story, as a backend reads
/// it for a listing ([`story_from_items`] makes the story).
#[derive(Debug, Clone)]
struct StoredItem {
    id: i64,
    feed_name: String,
    feed_priority: i64,
    title: String,
    link: Option<String>,
    guid: Option<String>,
    summary_html: Option<Vec<u8>>,
    content_html: Option<Vec<u8>>,
    excerpt: String,
    authors: String,
    categories: String,
    enclosures: String,
    updated: Option<i64>,
    sort_date: i64,
    canonical_link: Option<String>,
    merge_reason: Option<String>,
    merge_score: Option<f64>,
    tags: Option<String>,
    story_date: i64,
    story_created: i64,
    story_updated: Option<i64>,
}

/// The columns a backend selects for [`StoredItem`] (items `i`, feeds `f`,
/// stories `s`; `tag_list` is the item's tags joined by U+001F).
const STORED_ITEM_COLUMNS: &str = "i.id, f.name AS feed_name, f.priority AS feed_priority,
    i.title, i.link, i.guid, i.summary_html, i.content_html, i.excerpt, i.authors, i.categories,
    i.enclosures, i.updated, i.sort_date, i.canonical_link, i.merge_reason, i.merge_score,
    s.sort_date AS story_date, s.created_at AS story_created, s.updated_at AS story_updated";

impl StoredItem {
    /// Reads the columns of [`STORED_ITEM_COLUMNS`] plus `tag_list` from a row of either backend.
    fn from_row<'r, R>(r: &'r R) -> Result<StoredItem, sqlx::Error>
    where
        R: sqlx::Row,
        &'r str: sqlx::ColumnIndex<R>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(StoredItem {
            id: r.try_get("id")?,
            feed_name: r.try_get("feed_name")?,
            feed_priority: r.try_get("feed_priority")?,
            title: r.try_get("title")?,
            link: r.try_get("link")?,
            guid: r.try_get("guid")?,
            // Rows of early SQLite stores hold TEXT here.
            summary_html: r.try_get_unchecked("summary_html")?,
            content_html: r.try_get_unchecked("content_html")?,
            excerpt: r.try_get("excerpt")?,
            authors: r.try_get("authors")?,
            categories: r.try_get("categories")?,
            enclosures: r.try_get("enclosures")?,
            updated: r.try_get("updated")?,
            sort_date: r.try_get("sort_date")?,
            canonical_link: r.try_get("canonical_link")?,
            merge_reason: r.try_get("merge_reason")?,
            merge_score: r.try_get("merge_score")?,
            tags: r.try_get("tag_list")?,
            story_date: r.try_get("story_date")?,
            story_created: r.try_get("story_created")?,
            story_updated: r.try_get("story_updated")?,
        })
    }
}

/// A `feeds` row (`SELECT *`).
fn feed_row<'r, R: sqlx::Row>(r: &'r R) -> Result<FeedRow, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = r.try_get("status")?;
    let time = |col: &'r str| -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        Ok(r.try_get::<Option<i64>, _>(col)?
            .and_then(|s| DateTime::from_timestamp(s, 0)))
    };
    Ok(FeedRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        state: FetchState {
            etag: r.try_get("etag")?,
            last_modified: r.try_get("last_modified")?,
            permanent_url: r.try_get("permanent_url")?,
            status: crate::model::FetchStatus::parse(&status),
            last_error: r.try_get("last_error")?,
            error_count: r.try_get::<i64, _>("error_count")?.max(0) as u32,
            last_fetch_at: time("last_fetch_at")?,
            last_success_at: time("last_success_at")?,
            next_fetch_at: time("next_fetch_at")?,
            due_at: time("due_at")?,
            title: r.try_get("title")?,
            site_link: r.try_get("site_link")?,
            ttl: r
                .try_get::<Option<i64>, _>("ttl_seconds")?
                .filter(|s| *s > 0)
                .map(|s| std::time::Duration::from_secs(s as u64)),
        },
    })
}

/// A `digest_periods` row.
fn period_row<'r, R: sqlx::Row>(r: &'r R) -> Result<DigestPeriod, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = r.try_get("status")?;
    Ok(DigestPeriod {
        id: r.try_get("id")?,
        digest: r.try_get("digest")?,
        start: at(r.try_get("start_at")?),
        cutoff: at(r.try_get("cutoff_at")?),
        stories: r.try_get("stories")?,
        status: PeriodStatus::parse(&status).unwrap_or(PeriodStatus::Open),
    })
}

/// A `digest_issues` row joined with its period (`html` may be absent).
fn issue_row<'r, R: sqlx::Row>(r: &'r R) -> Result<Issue, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Issue {
        digest: r.try_get("digest")?,
        period_id: r.try_get("period_id")?,
        slug: r.try_get("slug")?,
        subject: r.try_get("subject")?,
        start: at(r.try_get("start_at")?),
        cutoff: at(r.try_get("cutoff_at")?),
        stories: r.try_get("stories")?,
        html: r.try_get("html")?,
    })
}

/// A `digest_suppressions` row.
fn suppression_row<'r, R: sqlx::Row>(r: &'r R) -> Result<Suppression, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Suppression {
        digest: r.try_get("digest")?,
        recipient: r.try_get("recipient")?,
        at: at(r.try_get("at")?),
        how: r.try_get("how")?,
    })
}

/// The `meta` key of the key unsubscribe links are signed with (when
/// `GAZETTE_SECRET` is not set).
const UNSUBSCRIBE_KEY: &str = "unsubscribe_key";

/// The SQL of [`Backend::issues`]: `{html}` is the html column or NULL,
/// `{digest}` a condition on the digest; both backends fill them.
const ISSUES_SQL: &str = "SELECT i.digest, i.period_id, i.slug, i.subject, p.start_at, p.cutoff_at, p.stories, {html} AS html
     FROM digest_issues i JOIN digest_periods p ON p.id = i.period_id
     WHERE {digest} ORDER BY p.cutoff_at DESC, i.period_id DESC LIMIT {limit}";

/// A `digest_deliveries` row.
fn delivery_row<'r, R: sqlx::Row>(r: &'r R) -> Result<Delivery, StoreError>
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let state: String = r.try_get("state")?;
    Ok(Delivery {
        period_id: r.try_get("period_id")?,
        recipient: r.try_get("recipient")?,
        topics: r
            .try_get::<String, _>("topics")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        message_id: r.try_get("message_id")?,
        attempts: r.try_get("attempts")?,
        permanent: r.try_get::<i64, _>("permanent")? != 0,
        reply: r.try_get("reply")?,
        updated_at: at(r.try_get("updated_at")?),
    })
}

/// A story from its items: the primary's content (see
/// [`filing::rank_sources`]), every source, the union of the tags.
fn story_from_items(story_id: i64, items: Vec<StoredItem>) -> Result<Story, StoreError> {
    let members: Vec<filing::Member> = items
        .iter()
        .map(|r| filing::Member {
            item_id: r.id,
            priority: r.feed_priority,
            date: at(r.sort_date),
            canonical_link: r.canonical_link.clone(),
            reason: MergeReason::from_stored(r.merge_reason.as_deref(), r.merge_score),
        })
        .collect();
    let ranked = filing::rank_sources(&members);
    let mut sources = Vec::with_capacity(items.len());
    let mut tags: Vec<String> = Vec::new();
    for (i, relation) in &ranked {
        let r = &items[*i];
        sources.push(Source {
            feed: r.feed_name.clone(),
            link: r.link.clone(),
            published: at(r.sort_date),
            reason: relation.label().to_string(),
            score: relation.score(),
        });
        if let Some(t) = &r.tags {
            tags.extend(t.split('\u{1f}').map(str::to_string));
        }
    }
    tags.sort();
    tags.dedup();
    let primary = items
        .into_iter()
        .nth(ranked[0].0)
        .ok_or_else(|| StoreError::Corrupt(format!("story {story_id} has no items")))?;
    let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
    Ok(Story {
        id: story_id,
        authors: list(&primary.authors),
        categories: list(&primary.categories),
        enclosures: serde_json::from_str::<Vec<Enclosure>>(&primary.enclosures).unwrap_or_default(),
        summary_html: primary.summary_html.map(decode_html).transpose()?,
        content_html: primary.content_html.map(decode_html).transpose()?,
        title: primary.title,
        link: primary.link,
        sources,
        tags,
        published: at(primary.story_date),
        updated: primary.updated.and_then(|s| DateTime::from_timestamp(s, 0)),
        created_at: at(primary.story_created),
        changed_at: primary
            .story_updated
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        guid: primary.guid,
        excerpt: primary.excerpt,
    })
}

/// What bears on one document, as a backend reads it in one statement:
/// JSON arrays of the feed's stored keys, its tombstones, the linked items
/// `[id, feed_id, key, canonical_link, story_id, title, hex signature]` and
/// the candidate stories `[id, hex signature, sort_date, [feed ids]]`.
fn known_from_json(
    stored: &str,
    pruned: &str,
    linked: &str,
    stories: &str,
) -> Result<filing::Known, StoreError> {
    let bad = |what: &str, e: serde_json::Error| {
        StoreError::Query(sqlx::Error::Protocol(format!("reading {what}: {e}")))
    };
    type LinkRow = (
        i64,
        i64,
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
    );
    let mut link_rows: Vec<LinkRow> =
        serde_json::from_str(linked).map_err(|e| bad("stored links", e))?;
    // Oldest first: the first story a link was filed under wins.
    link_rows.sort_unstable_by_key(|r| r.0);
    let story_rows: Vec<(i64, String, i64, Vec<i64>)> =
        serde_json::from_str(stories).map_err(|e| bad("near-duplicate candidates", e))?;
    Ok(filing::Known {
        stored_keys: serde_json::from_str(stored).map_err(|e| bad("stored keys", e))?,
        tombstones: serde_json::from_str(pruned).map_err(|e| bad("pruned keys", e))?,
        linked: link_rows
            .into_iter()
            .map(
                |(item_id, feed_id, key, canonical_link, story_id, title, sig)| {
                    filing::LinkedItem {
                        item_id,
                        feed_id,
                        key,
                        canonical_link,
                        story_id,
                        title: title.unwrap_or_default(),
                        signature: sig
                            .filter(|s| !s.is_empty())
                            .map(|s| dedup::signature_from_bytes(&unhex(&s))),
                    }
                },
            )
            .collect(),
        stories: story_rows
            .into_iter()
            .map(|(id, sig, date, feeds)| {
                let story = filing::CandidateStory {
                    signature: dedup::signature_from_bytes(&unhex(&sig)),
                    date: at(date),
                    feeds,
                };
                (id, story)
            })
            .collect(),
    })
}

/// Bytes of a hex string (either case); a pair that is not two hex digits
/// is skipped.
fn unhex(s: &str) -> Vec<u8> {
    fn nibble(c: u8) -> Option<u8> {
        char::from(c).to_digit(16).map(|d| d as u8)
    }
    s.as_bytes()
        .chunks_exact(2)
        .filter_map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Unix seconds of `t`, rounded up.
fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// A stored unix time back.
fn at(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(v, 0).unwrap_or_default()
}

/// Counts of what a save changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveCounts {
    /// Items stored for the first time.
    pub new: usize,
    /// Items whose content changed and were rewritten.
    pub updated: usize,
}

/// One feed's fetched document, to be filed and stored.
#[derive(Debug, Clone)]
pub struct Document {
    /// The feed.
    pub feed_id: i64,
    /// Its new and changed items (unchanged ones are left out).
    pub items: Vec<Prepared>,
    /// Keys of every entry of the document, unchanged ones included: an
    /// item still listed was not renamed.
    pub listed: Vec<String>,
    /// When it was fetched: the first-seen time of its items, and the date
    /// of those without one.
    pub now: DateTime<Utc>,
    /// The filing rules.
    pub policy: Policy,
}

/// What [`Backend::lease_feeds`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leases {
    /// The feeds now leased to the caller.
    pub leased: Vec<FeedRow>,
    /// How many of them were held by a lease that expired (another
    /// process died or stalled with them): taken over.
    pub taken_over: usize,
    /// The feeds not leased (due later, or leased elsewhere), with their
    /// current rows and the lease's end when another process holds them.
    pub elsewhere: Vec<(FeedRow, Option<DateTime<Utc>>)>,
}

/// When the bytes of a published document were first served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpValidator {
    /// The ETag of those bytes.
    pub etag: String,
    /// When they were first served: their Last-Modified.
    pub first_served: DateTime<Utc>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted, with the server's reply.
    Sent(String),
    /// Refused or not delivered, with the reply; `permanent` when retrying
    /// will not help.
    Failed {
        /// The reply or error.
        reply: String,
        /// Not to be retried.
        permanent: bool,
    },
}

/// Held while this process sends the digest: no other sender runs
/// meanwhile. Released on drop (and by the OS or the database when the
/// process dies).
pub struct SenderLock {
    _held: Box<dyn Send + Sync>,
}

impl SenderLock {
    /// A lock held by `what`, released when it drops.
    pub fn new(what: impl Send + Sync + 'static) -> SenderLock {
        SenderLock {
            _held: Box::new(what),
        }
    }
}

impl std::fmt::Debug for SenderLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderLock")
    }
}

/// The store contract: every operation gazette needs from a backend, in
/// domain types. Each backend implements it and passes the contract suite.
#[async_trait]
pub trait Backend: Send + Sync {
    // ---- feeds ----

    /// Makes the feeds table match the configuration (by name) and returns
    /// each configured feed's row, in configuration order. A changed url
    /// starts the fetch state afresh. Feeds removed from the configuration
    /// keep their rows and stories.
    async fn sync_feeds(&self, feeds: &[FeedConfig]) -> Result<Vec<FeedRow>, StoreError>;

    /// Every feed the store knows (also those no longer configured), by id.
    async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError>;

    /// Records feeds' fetch states (and when each is next due), in one
    /// transaction. With an `owner`, only the feeds it still leases are
    /// written, and their leases are released; without one (a manual
    /// poll) every state is written and leases stay.
    async fn save_fetch_states(
        &self,
        states: &[(i64, FetchState)],
        owner: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Leases to `owner` until `until` the feeds among `ids` that are due
    /// at `now` (their `due_at` passed) and free (no lease, or an expired
    /// one): no other process fetches them meanwhile. Returns them, and the
    /// current rows of the others so the caller plans them from the state
    /// another process left.
    async fn lease_feeds(
        &self,
        ids: &[i64],
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Leases, StoreError>;

    /// Extends every lease `owner` holds to `until` (the owner is alive and
    /// still working); how many.
    async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64, StoreError>;

    // ---- ingest ----

    /// `item_key → raw_hash` of every stored item of a feed.
    async fn known_hashes(&self, feed_id: i64) -> Result<HashMap<String, i64>, StoreError>;

    /// Files a document's items into stories and stores them, atomically:
    /// gathers the candidates [`crate::filing::file`] needs (the feed's
    /// stored keys and tombstones, items with the same canonical links,
    /// near-duplicate stories dated within the window of each item) and
    /// applies its decisions in one transaction.
    async fn file_document(&self, doc: Document) -> Result<SaveCounts, StoreError>;

    // ---- tagging ----

    /// Up to `limit` stored items with ids above `after_id`, with what tagging needs.
    async fn items_for_tagging(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<TaggingInput>, StoreError>;

    /// Replaces items' tags and exclusion flags; how many changed.
    async fn set_tagging(&self, items: &[(i64, Tagging)]) -> Result<usize, StoreError>;

    /// The fingerprint of the tag rules the stored tags follow.
    async fn tag_rules(&self) -> Result<Option<String>, StoreError>;

    /// Records the fingerprint of the tag rules just applied.
    async fn set_tag_rules(&self, fingerprint: &str) -> Result<(), StoreError>;

    // ---- reading ----

    /// Stored stories, newest first, each with all its sources (primary
    /// first, see [`crate::filing::rank_sources`]).
    async fn list_stories(&self, q: &ItemQuery) -> Result<Vec<Story>, StoreError>;

    /// How many stories the store holds.
    async fn story_count(&self) -> Result<i64, StoreError>;

    /// Ids of the stories first stored in `[from, until)`.
    async fn story_ids_stored_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError>;

    // ---- retention ----

    /// Deletes the stories dated before `dated_before` that were also first
    /// stored before `created_before`, with their items, leaving a
    /// tombstone for each item key (so a feed still listing it does not
    /// bring it back); how many stories went. The newest story and item
    /// are kept, so ids are never handed out twice.
    async fn prune_stories(
        &self,
        dated_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    // ---- publishing ----

    /// A number that changes whenever what is published changes.
    async fn content_version(&self) -> Result<i64, StoreError>;

    /// This store's random key, part of every published entry id.
    async fn store_key(&self) -> Result<String, StoreError>;

    /// When the bytes last served at `path` were first served.
    async fn http_validator(&self, path: &str) -> Result<Option<HttpValidator>, StoreError>;

    /// Records the bytes now served at `path`.
    async fn set_http_validator(&self, path: &str, v: &HttpValidator) -> Result<(), StoreError>;

    // ---- digest ----

    /// Takes the digest sender's lock, or fails with
    /// [`StoreError::SenderBusy`] while another sender holds it: a
    /// `pending` delivery seen by the holder is never another live
    /// sender's message in flight.
    async fn lock_digest_sender(&self) -> Result<SenderLock, StoreError>;

    /// The most recent periods of `digest` (of every digest when `None`),
    /// newest first.
    async fn periods(
        &self,
        digest: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DigestPeriod>, StoreError>;

    /// The most recent digest periods of every digest, newest first.
    async fn digest_periods(&self, limit: i64) -> Result<Vec<DigestPeriod>, StoreError> {
        self.periods(None, limit).await
    }

    /// Periods of `digest` (of every digest when `None`) with deliveries
    /// still to make, oldest first.
    async fn open_periods(&self, digest: Option<&str>) -> Result<Vec<DigestPeriod>, StoreError>;

    /// Digest periods of every digest with deliveries still to make, oldest first.
    async fn open_digest_periods(&self) -> Result<Vec<DigestPeriod>, StoreError> {
        self.open_periods(None).await
    }

    /// Records a period with its deliveries and its archived issue, in one
    /// transaction. It is `skipped` when no delivery is queued, `open`
    /// otherwise. When a period of this digest with this cutoff is already
    /// recorded, returns it unchanged and `false`.
    async fn record_period(&self, p: &NewPeriod) -> Result<(DigestPeriod, bool), StoreError>;

    /// Records the period `[start, cutoff)` of the digest named "digest"
    /// (the single `[digest]`) with a queued delivery per `(recipient,
    /// message_id)` (none: the period is skipped); see [`Backend::record_period`].
    async fn create_digest_period(
        &self,
        start: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        stories: i64,
        recipients: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(DigestPeriod, bool), StoreError> {
        let p = NewPeriod {
            digest: crate::config::DEFAULT_DIGEST_NAME.to_string(),
            start,
            cutoff,
            stories,
            deliveries: recipients
                .iter()
                .map(|(r, m)| NewDelivery {
                    recipient: r.clone(),
                    message_id: m.clone(),
                    topics: Vec::new(),
                    state: DeliveryState::Queued,
                    reply: None,
                })
                .collect(),
            issue: None,
            now,
        };
        self.record_period(&p).await
    }

    /// A period's deliveries, in recipient order.
    async fn deliveries(&self, period_id: i64) -> Result<Vec<Delivery>, StoreError>;

    /// Marks a delivery `pending` (committed before the transport is
    /// called) if it is still as `seen` (same state and attempt count): a
    /// compare-and-set; `false` when another sender got there first.
    async fn claim_delivery(&self, seen: &Delivery, now: DateTime<Utc>)
    -> Result<bool, StoreError>;

    /// Records a delivery's outcome, committed on its own at once.
    async fn finish_delivery(
        &self,
        period_id: i64,
        recipient: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Marks an open period done.
    async fn close_digest_period(&self, period_id: i64) -> Result<(), StoreError>;

    /// Marks a queued (or failed) delivery `skipped` with `reason` (the
    /// reader unsubscribed after the period was recorded); `false` when it
    /// was no longer in that state.
    async fn skip_delivery(
        &self,
        seen: &Delivery,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    // ---- readers who left, the archive, the unsubscribe key ----

    /// Records that `recipient` (lower-cased) left `digest`; `false` when
    /// already recorded (the first time is kept).
    async fn suppress(
        &self,
        digest: &str,
        recipient: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Forgets that `recipient` left `digest`; `false` when they had not.
    async fn unsuppress(&self, digest: &str, recipient: &str) -> Result<bool, StoreError>;

    /// Who left `digest` (every digest when `None`), by digest and address.
    async fn suppressions(&self, digest: Option<&str>) -> Result<Vec<Suppression>, StoreError>;

    /// The archived issues of `digest` (every digest when `None`), newest
    /// first, with their HTML when `with_html`.
    async fn issues(
        &self,
        digest: Option<&str>,
        limit: i64,
        with_html: bool,
    ) -> Result<Vec<Issue>, StoreError>;

    /// One archived issue, with its HTML.
    async fn issue(&self, digest: &str, slug: &str) -> Result<Option<Issue>, StoreError>;

    /// The key unsubscribe links are signed with: the stored one, or
    /// `fresh`, stored now, when there is none yet (every instance on one
    /// database gets the same).
    async fn unsubscribe_key(&self, fresh: &str) -> Result<String, StoreError>;

    // ---- moving a store (`gazette db copy`) ----

    /// How many rows `table` holds.
    async fn count_rows(&self, table: &Table) -> Result<i64, StoreError>;

    /// Up to `limit` rows of `table` after the key `after` (none: from the
    /// start), in key order, as [`Table::columns`] lists them.
    async fn read_rows(
        &self,
        table: &Table,
        after: Option<Vec<Value>>,
        limit: i64,
    ) -> Result<Vec<Vec<Value>>, StoreError>;

    /// Writes rows read from another store, in one transaction.
    async fn write_rows(&self, table: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError>;

    /// After a copy: the store's own counters follow the copied rows.
    async fn finish_copy(&self) -> Result<(), StoreError>;

    /// Closes the connections (SQLite: empties the WAL).
    async fn close(&self);
}

/// A stored value, as `gazette db copy` moves it between backends.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (ids, unix times, flags).
    Int(i64),
    /// A real (similarity scores).
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes (signatures, compressed HTML).
    Bytes(Vec<u8>),
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BIGINT` / `INTEGER`.
    Int,
    /// `DOUBLE PRECISION` / `REAL`.
    Real,
    /// `TEXT`.
    Text,
    /// `BYTEA` / `BLOB`.
    Bytes,
}

/// A table `db copy` moves: its columns (the same in every backend) and
/// its key, in which order its rows are read.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Every column, with what it holds.
    pub columns: &'static [(&'static str, Kind)],
    /// The columns of its key.
    pub key: &'static [&'static str],
}

use Kind::{Bytes as B, Int as I, Real as R, Text as T};

/// Every table of a store that `db copy` moves, parents first. (Each tag's
/// story index is rebuilt from the tags by the target's triggers.)
pub const TABLES: &[Table] = &[
    Table {
        name: "feeds",
        columns: &[
            ("id", I),
            ("name", T),
            ("url", T),
            ("priority", I),
            ("title", T),
            ("site_link", T),
            ("etag", T),
            ("last_modified", T),
            ("permanent_url", T),
            ("status", T),
            ("last_error", T),
            ("error_count", I),
            ("last_fetch_at", I),
            ("last_success_at", I),
            ("next_fetch_at", I),
            ("ttl_seconds", I),
            ("due_at", I),
            ("lease_owner", T),
            ("lease_until", I),
        ],
        key: &["id"],
    },
    Table {
        name: "stories",
        columns: &[
            ("id", I),
            ("signature", B),
            ("sort_date", I),
            ("created_at", I),
            ("updated_at", I),
        ],
        key: &["id"],
    },
    Table {
        name: "items",
        columns: &[
            ("id", I),
            ("feed_id", I),
            ("item_key", T),
            ("raw_hash", I),
            ("guid", T),
            ("link", T),
            ("title", T),
            ("summary_html", B),
            ("content_html", B),
            ("excerpt", T),
            ("authors", T),
            ("categories", T),
            ("enclosures", T),
            ("published", I),
            ("updated", I),
            ("first_seen", I),
            ("sort_date", I),
            ("canonical_link", T),
            ("excluded", I),
            ("story_id", I),
            ("merge_reason", T),
            ("merge_score", R),
        ],
        key: &["id"],
    },
    Table {
        name: "item_tags",
        columns: &[("item_id", I), ("tag", T)],
        key: &["item_id", "tag"],
    },
    Table {
        name: "pruned_items",
        columns: &[("feed_id", I), ("item_key", T)],
        key: &["feed_id", "item_key"],
    },
    Table {
        name: "meta",
        columns: &[("key", T), ("value", T)],
        key: &["key"],
    },
    Table {
        name: "digest_periods",
        columns: &[
            ("id", I),
            ("digest", T),
            ("start_at", I),
            ("cutoff_at", I),
            ("stories", I),
            ("status", T),
            ("created_at", I),
        ],
        key: &["id"],
    },
    Table {
        name: "digest_deliveries",
        columns: &[
            ("period_id", I),
            ("recipient", T),
            ("position", I),
            ("state", T),
            ("message_id", T),
            ("attempts", I),
            ("permanent", I),
            ("reply", T),
            ("updated_at", I),
            ("topics", T),
        ],
        key: &["period_id", "recipient"],
    },
    Table {
        name: "digest_suppressions",
        columns: &[("digest", T), ("recipient", T), ("at", I), ("how", T)],
        key: &["digest", "recipient"],
    },
    Table {
        name: "digest_issues",
        columns: &[
            ("period_id", I),
            ("digest", T),
            ("slug", T),
            ("subject", T),
            ("html", T),
            ("created_at", I),
        ],
        key: &["period_id"],
    },
];

impl Table {
    /// The start of a `SELECT` of its columns; [`Table::after_key`] and
    /// [`Table::order`] go after it.
    fn select_head(&self) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        format!("SELECT {} FROM {} ", cols.join(", "), self.name)
    }

    /// `WHERE (key) > (` (the caller binds the key's values and closes it).
    fn after_key(&self) -> String {
        format!("WHERE ({}) > (", self.key.join(", "))
    }

    /// `ORDER BY key LIMIT ` (the caller binds the limit).
    fn order(&self) -> String {
        format!(" ORDER BY {} LIMIT ", self.key.join(", "))
    }

    /// `INSERT` of its columns (the caller adds the values); a meta key the
    /// target made for itself is replaced by the copied one.
    fn insert_head(&self) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        format!("INSERT INTO {} ({}) ", self.name, cols.join(", "))
    }

    /// What follows the values of [`Table::insert_head`].
    fn insert_tail(&self) -> &'static str {
        if self.name == "meta" {
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        } else {
            ""
        }
    }

    /// What each of its key columns holds.
    fn key_kinds(&self) -> Vec<Kind> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| c.0 == *k))
            .map(|c| c.1)
            .collect()
    }

    /// The key of one of its rows (as [`Backend::read_rows`] gives them).
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| c.0 == *k))
            .filter_map(|i| row.get(i).cloned())
            .collect()
    }

    /// The table named `name`, among [`TABLES`].
    pub fn named(name: &str) -> Option<&'static Table> {
        TABLES.iter().find(|t| t.name == name)
    }
}

/// A row of `table` read by either backend, as [`Value`]s.
fn row_values<'r, R>(r: &'r R, table: &Table) -> Result<Vec<Value>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                Kind::Real => r.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                Kind::Text => r.try_get::<Option<String>, _>(i)?.map(Value::Text),
                // Rows of early SQLite stores hold TEXT here.
                Kind::Bytes => r
                    .try_get_unchecked::<Option<Vec<u8>>, _>(i)?
                    .map(Value::Bytes),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// Binds a [`Value`] to a query of either backend; a NULL is typed by the
/// column's [`Kind`] (PostgreSQL wants it so).
macro_rules! bind_value {
    ($b:expr, $v:expr, $kind:expr) => {
        match ($v, $kind) {
            (Value::Null, Kind::Int) => $b.push_bind(None::<i64>),
            (Value::Null, Kind::Real) => $b.push_bind(None::<f64>),
            (Value::Null, Kind::Text) => $b.push_bind(None::<String>),
            (Value::Null, Kind::Bytes) => $b.push_bind(None::<Vec<u8>>),
            (Value::Int(i), _) => $b.push_bind(*i),
            (Value::Real(f), _) => $b.push_bind(*f),
            (Value::Text(t), _) => $b.push_bind(t.clone()),
            (Value::Bytes(x), _) => $b.push_bind(x.clone()),
        }
    };
}
pub(crate) use bind_value;

/// The configured store: a backend behind the contract. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (creating and migrating when needed) the configured database.
    pub async fn open(db: &DatabaseUrl) -> Result<Store, StoreError> {
        match db {
            DatabaseUrl::Sqlite(path) => Ok(Store(Arc::new(SqliteStore::open(path).await?))),
            DatabaseUrl::Postgres(url) => Ok(Store(Arc::new(PgStore::open(url).await?))),
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_html_comes_back_as_it_went_in() {
        let long = "<p>Hong Kong lawyers detained, Zürich statement — ".repeat(40) + "</p>";
        for html in ["", "<p>short</p>", long.as_str()] {
            let stored = encode_html(html.to_string());
            assert_eq!(
                stored.first() == Some(&LZ4_MARK),
                html.len() >= COMPRESS_FROM
            );
            assert_eq!(decode_html(stored).unwrap(), html);
        }
        assert!(encode_html(long.clone()).len() < long.len() / 2);
        // Rows written before compression hold the HTML's bytes.
        assert_eq!(decode_html(b"<p>old</p>".to_vec()).unwrap(), "<p>old</p>");
        assert!(matches!(
            decode_html(vec![LZ4_MARK, 1, 2]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
