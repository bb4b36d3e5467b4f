//! The only place with SQL. [`Store`] is the interface the rest of gazette
//! uses; each backend lives in its own file.

mod sqlite;

use std::collections::HashMap;

use crate::config::{DatabaseUrl, FeedConfig};
use crate::dedup::Policy;
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, FeedRow, FetchState, Item, ItemQuery, Story,
    TaggingInput,
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
    Shared(std::sync::Arc<sqlx::Error>),
    /// The write was cut short (the process is stopping): nothing of it is stored.
    #[error("the write was interrupted; the feed's items are stored on its next poll")]
    Interrupted,
    /// Stored data could not be read back.
    #[error("the database holds unreadable data: {0}")]
    Corrupt(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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

/// The story store. Cheap to clone (a connection pool inside).
#[derive(Clone, Debug)]
pub enum Store {
    /// An SQLite file.
    Sqlite(SqliteStore),
}

impl Store {
    /// Opens (creating and migrating when needed) the configured database.
    pub async fn open(db: &DatabaseUrl) -> Result<Store, StoreError> {
        match db {
            DatabaseUrl::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path).await?)),
            DatabaseUrl::Postgres(_) => Err(StoreError::Unsupported(
                "PostgreSQL is not supported yet: use database = \"sqlite://gazette.db\"".into(),
            )),
        }
    }

    /// Makes the feeds table match the configuration (by name) and returns
    /// each configured feed's row, in configuration order. Feeds removed from
    /// the configuration keep their rows and stories.
    pub async fn sync_feeds(&self, feeds: &[FeedConfig]) -> Result<Vec<FeedRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.sync_feeds(feeds).await,
        }
    }

    /// Deletes the stories dated before `dated_before` that were also first
    /// stored before `created_before` (unix seconds), with their items; how
    /// many stories went.
    pub async fn prune_stories(
        &self,
        dated_before: i64,
        created_before: i64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_stories(dated_before, created_before).await,
        }
    }

    /// How many stories the store holds.
    pub async fn story_count(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.story_count().await,
        }
    }

    /// Every feed the store knows (also those no longer configured), by id.
    pub async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.feeds().await,
        }
    }

    /// `item_key → raw_hash` of every stored item of a feed.
    pub async fn known_hashes(&self, feed_id: i64) -> Result<HashMap<String, i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.known_hashes(feed_id).await,
        }
    }

    /// Inserts new items (filing each into a story under `policy`) and
    /// rewrites changed ones, atomically (saves of several feeds that arrive
    /// together share one commit). `document_keys` are the
    /// keys of every entry the feed's document carries (also the unchanged
    /// ones left out of `items`): an item still listed was not renamed.
    pub async fn save_items(
        &self,
        feed_id: i64,
        items: Vec<Prepared>,
        document_keys: Vec<String>,
        now: i64,
        policy: &Policy,
    ) -> Result<SaveCounts, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.save_items(feed_id, items, document_keys, now, policy)
                    .await
            }
        }
    }

    /// Records feeds' fetch states, in one transaction.
    pub async fn save_fetch_states(&self, states: &[(i64, FetchState)]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.save_fetch_states(states).await,
        }
    }

    /// Lists stored stories, newest first, each with all its sources.
    pub async fn list_stories(&self, q: &ItemQuery) -> Result<Vec<Story>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_stories(q).await,
        }
    }

    /// A value from the store's own `meta` table.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.meta(key).await,
        }
    }

    /// Sets a value in the store's own `meta` table.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.set_meta(key, value).await,
        }
    }

    /// Up to `limit` stored items with ids above `after_id`, with what tagging needs.
    pub async fn items_for_tagging(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<TaggingInput>, StoreError> {
        match self {
            Store::Sqlite(s) => s.items_for_tagging(after_id, limit).await,
        }
    }

    /// Replaces items' tags and exclusion flags; how many changed.
    pub async fn set_tagging(&self, items: &[(i64, Tagging)]) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.set_tagging(items).await,
        }
    }

    /// Ids of the stories first stored at or after `from` and before `until` (unix seconds).
    pub async fn story_ids_stored_between(
        &self,
        from: i64,
        until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.story_ids_stored_between(from, until).await,
        }
    }

    /// The most recent digest periods, newest first.
    pub async fn digest_periods(&self, limit: i64) -> Result<Vec<DigestPeriod>, StoreError> {
        match self {
            Store::Sqlite(s) => s.digest_periods(limit).await,
        }
    }

    /// Digest periods with deliveries still to make, oldest first.
    pub async fn open_digest_periods(&self) -> Result<Vec<DigestPeriod>, StoreError> {
        match self {
            Store::Sqlite(s) => s.open_digest_periods().await,
        }
    }

    /// Records the period closed at `cutoff` with a queued delivery per
    /// `(recipient, message_id)` (none: the period is skipped), in one
    /// transaction. When the period is already recorded, returns it
    /// unchanged and `false`.
    pub async fn create_digest_period(
        &self,
        start: i64,
        cutoff: i64,
        stories: i64,
        recipients: &[(String, String)],
        now: i64,
    ) -> Result<(DigestPeriod, bool), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.create_digest_period(start, cutoff, stories, recipients, now)
                    .await
            }
        }
    }

    /// A period's deliveries, in recipient order.
    pub async fn deliveries(&self, period_id: i64) -> Result<Vec<Delivery>, StoreError> {
        match self {
            Store::Sqlite(s) => s.deliveries(period_id).await,
        }
    }

    /// Marks a delivery `pending` (committed before the transport is called)
    /// if it is still as `seen` (same state and attempt count); `false` when
    /// another sender got there first and this one must leave it alone.
    pub async fn claim_delivery(&self, seen: &Delivery, now: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_delivery(seen, now).await,
        }
    }

    /// Records a delivery's outcome.
    pub async fn finish_delivery(
        &self,
        period_id: i64,
        recipient: &str,
        state: DeliveryState,
        reply: Option<&str>,
        permanent: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.finish_delivery(period_id, recipient, state, reply, permanent, now)
                    .await
            }
        }
    }

    /// Marks an open period done.
    pub async fn close_digest_period(&self, period_id: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.close_digest_period(period_id).await,
        }
    }

    /// Closes the connections, flushing the WAL.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
        }
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
