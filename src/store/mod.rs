//! The store contract ([`Backend`]) and its backends: the only place with
//! SQL. The rest of gazette holds a [`Store`] and calls the contract in
//! domain types; each backend lives in its own file and passes the same
//! contract test suite (`tests/it/contract.rs`).
//!
//! Deciding is not the store's business: which story an item joins is
//! decided by [`crate::filing`] from the candidates a backend gathers, and
//! the backend applies those decisions in the same transaction.

mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{DatabaseUrl, FeedConfig};
use crate::filing::Policy;
use crate::model::{
    Delivery, DigestPeriod, FeedRow, FetchState, Item, ItemQuery, Story, TaggingInput,
};
use crate::tag::Tagging;

pub use sqlite::SqliteStore;

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
    /// The configured backend is not available in this build.
    #[error("{0}")]
    Unsupported(String),
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

    /// Records feeds' fetch states, in one transaction.
    async fn save_fetch_states(&self, states: &[(i64, FetchState)]) -> Result<(), StoreError>;

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

    /// The most recent digest periods, newest first.
    async fn digest_periods(&self, limit: i64) -> Result<Vec<DigestPeriod>, StoreError>;

    /// Digest periods with deliveries still to make, oldest first.
    async fn open_digest_periods(&self) -> Result<Vec<DigestPeriod>, StoreError>;

    /// Records the period `[start, cutoff)` with a queued delivery per
    /// `(recipient, message_id)` (none: the period is skipped), in one
    /// transaction. When a period with this cutoff is already recorded,
    /// returns it unchanged and `false`.
    async fn create_digest_period(
        &self,
        start: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        stories: i64,
        recipients: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(DigestPeriod, bool), StoreError>;

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

    /// Closes the connections (SQLite: empties the WAL).
    async fn close(&self);
}

/// The configured store: a backend behind the contract. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (creating and migrating when needed) the configured database.
    pub async fn open(db: &DatabaseUrl) -> Result<Store, StoreError> {
        match db {
            DatabaseUrl::Sqlite(path) => Ok(Store(Arc::new(SqliteStore::open(path).await?))),
            DatabaseUrl::Postgres(_) => Err(StoreError::Unsupported(
                "PostgreSQL is not supported yet: use database = \"sqlite://gazette.db\"".into(),
            )),
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
