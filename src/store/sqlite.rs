//! SQLite backend: one file, WAL journal, schema migrations embedded from
//! `migrations/sqlite/`. Gathers the candidates filing needs and applies
//! its decisions ([`crate::filing`]); decides nothing itself.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::gather::{Gathering, Plan, Rows};
use super::{
    Backend, DeliveryOutcome, Document, HttpValidator, ISSUES_SQL, Kind, Leases, NEAR_MAX_POSTINGS,
    Prepared, STORED_ITEM_COLUMNS, SaveCounts, SenderLock, StoreError, StoredItem, Table,
    UNSUBSCRIBE_KEY, Value, at, bind_value, decode_html, delivery_row, feed_row, issue_row,
    known_from_json, period_row, row_values, story_from_items, suppression_row,
};
use crate::config::FeedConfig;
use crate::dedup::{self, NearIndex};
use crate::filing::{self, Known};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, FeedRow, FetchState, Issue, ItemQuery, NewPeriod,
    PeriodStatus, Story, Suppression, TaggingInput,
};
use crate::tag::Tagging;

/// Schema migrations, applied in order; the file's `user_version` records the last one applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_stories.sql"),
    include_str!("../../migrations/sqlite/0003_exclusion_and_meta.sql"),
    include_str!("../../migrations/sqlite/0004_digest.sql"),
    include_str!("../../migrations/sqlite/0005_publish.sql"),
    include_str!("../../migrations/sqlite/0006_signatures_v2.sql"),
    include_str!("../../migrations/sqlite/0007_bands_in_memory.sql"),
    include_str!("../../migrations/sqlite/0008_leases.sql"),
    include_str!("../../migrations/sqlite/0009_digests.sql"),
    include_str!("../../migrations/sqlite/0010_story_changes.sql"),
];

/// A store in an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Connections that read.
    pool: SqlitePool,
    /// The one connection that writes.
    writer: SqlitePool,
    /// The database file (the digest sender's lock lives beside it).
    path: PathBuf,
    /// SQLite has one writer at a time. Writers of this process queue here
    /// instead of contending for the file lock (whose busy handler sleeps).
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Saves waiting for the next group commit (see `file_document`).
    pending: Arc<std::sync::Mutex<Vec<SaveJob>>>,
    /// Wakes the checkpointer after a large write.
    wal_written: Arc<tokio::sync::Notify>,
    /// Held while a checkpoint runs: SQLite runs one at a time and answers
    /// "busy" to a second.
    checkpoint_lock: Arc<tokio::sync::Mutex<()>>,
    /// The near-duplicate index of the stories of recently needed time
    /// slabs; `None` until the first save and after a failed group commit
    /// (it is read again from the file). The file stays the truth: each
    /// group commit first reads the stories another process added since,
    /// and filing only uses candidates the file confirms.
    near: Arc<std::sync::Mutex<Option<NearIndex>>>,
}

/// How long a group commit goes on taking the saves that queue while it
/// writes, before it commits them.
const GROUP_COMMIT_FOR: Duration = Duration::from_millis(50);

/// WAL frames (4 KB pages) past which the checkpointer makes writers wait
/// for a full checkpoint: passive ones cannot restart a WAL that writes
/// never stop appending to.
const WAL_FRAMES_CAP: i64 = 65_536;

/// Copies committed pages from the WAL into the database file, on its own
/// connection, so that neither the copy nor its fsync sits in a writer's
/// commit. Runs after large writes (half a second later, so a burst of
/// commits shares one checkpoint and one fsync) and every ten seconds;
/// ends when the pool closes (`close` checkpoints what is left).
async fn checkpointer(store: SqliteStore) {
    let pool = &store.pool;
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(10), store.wal_written.notified()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _running = store.checkpoint_lock.lock().await;
        if pool.is_closed() {
            return;
        }
        let frames: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await;
        let full = match frames {
            Ok((_, log, _)) => log > WAL_FRAMES_CAP,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the database failed; will try again");
                false
            }
        };
        if full {
            let _writers = store.write_lock.lock().await;
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .execute(pool)
                .await
            {
                tracing::warn!(error = %e, "checkpointing the database failed; will try again");
            }
        }
    }
}

impl SqliteStore {
    /// Opens or creates the file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            target: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Checkpoints run on a task of their own (`checkpointer`), not
            // in whichever writer commits the page that crosses a limit.
            .pragma("wal_autocheckpoint", "0")
            // Once restarted, the WAL file shrinks back to 64 MB.
            .pragma("journal_size_limit", "67108864")
            // Savepoints and statement journals in memory, not in a temporary
            // file: they hold the pages one feed's save changed.
            .pragma("temp_store", "memory");
        // SQLite has one writer: its connection keeps the index pages every
        // write touches (32 MB of page cache); the readers 8 MB each.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().pragma("cache_size", "-32768"))
            .await
            .map_err(open_err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(3)
            .connect_with(opts.pragma("cache_size", "-8192"))
            .await
            .map_err(open_err)?;
        let store = SqliteStore {
            pool,
            writer,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            pending: Arc::default(),
            wal_written: Arc::default(),
            checkpoint_lock: Arc::default(),
            near: Arc::default(),
            path: path.to_path_buf(),
        };
        store.migrate().await.map_err(|e| match e {
            StoreError::Query(source) => open_err(source),
            other => other,
        })?;
        tokio::spawn(checkpointer(store.clone()));
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn close_pool(&self) {
        // Everything into the database file, and the WAL emptied: a store
        // left alone is one file plus an empty WAL.
        {
            // The checkpointer's order: its lock, then the writers'.
            let _checkpointer = self.checkpoint_lock.lock().await;
            let _writers = self.write_lock.lock().await;
            // Another process (a running daemon) may be reading or writing:
            // wait for it briefly, not the usual busy timeout. Its own
            // checkpointer takes what is left.
            let done: Result<(i64, i64, i64), sqlx::Error> = async {
                let mut conn = self.writer.acquire().await?;
                sqlx::query("PRAGMA busy_timeout = 200")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&mut *conn)
                    .await
            }
            .await;
            if !matches!(done, Ok((0, _, _))) {
                tracing::debug!(
                    ?done,
                    "final checkpoint incomplete (another process uses the store)"
                );
            }
        }
        self.pool.close().await;
        self.writer.close().await;
        self.wal_written.notify_one();
    }

    /// A write transaction, holding this process's write lock. `BEGIN
    /// IMMEDIATE` takes SQLite's lock up front, so another process's writer
    /// makes us wait (busy_timeout) instead of failing on upgrade.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let guard = self.write_lock.clone().lock_owned().await;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// Unix seconds of a time, as stored.
fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn opt_at(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(|s| DateTime::from_timestamp(s, 0))
}

#[async_trait]
impl Backend for SqliteStore {
    async fn sync_feeds(&self, feeds: &[FeedConfig]) -> Result<Vec<FeedRow>, StoreError> {
        let mut w = self.begin_write().await?;
        let tx = &mut w.tx;
        for f in feeds {
            // A changed URL starts the fetch state afresh: validators of the old URL mean nothing.
            sqlx::query(
                "INSERT INTO feeds (name, url, priority) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET priority = excluded.priority,
                   url = excluded.url,
                   etag = iif(feeds.url = excluded.url, feeds.etag, NULL),
                   last_modified = iif(feeds.url = excluded.url, feeds.last_modified, NULL),
                   permanent_url = iif(feeds.url = excluded.url, feeds.permanent_url, NULL),
                   error_count = iif(feeds.url = excluded.url, feeds.error_count, 0),
                   next_fetch_at = iif(feeds.url = excluded.url, feeds.next_fetch_at, NULL),
                   last_fetch_at = iif(feeds.url = excluded.url, feeds.last_fetch_at, NULL),
                   due_at = iif(feeds.url = excluded.url, feeds.due_at, NULL),
                   status = iif(feeds.url = excluded.url, feeds.status, 'new')
                 WHERE feeds.url <> excluded.url OR feeds.priority <> excluded.priority",
            )
            .bind(&f.name)
            .bind(f.source.as_url_string())
            .bind(f.priority)
            .execute(&mut **tx)
            .await?;
        }
        let mut by_name: HashMap<String, FeedRow> = sqlx::query("SELECT * FROM feeds")
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| feed_row(r).map(|f| (f.name.clone(), f)))
            .collect::<Result<_, _>>()?;
        w.tx.commit().await?;
        Ok(feeds
            .iter()
            .filter_map(|f| by_name.remove(&f.name))
            .collect())
    }

    async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError> {
        sqlx::query("SELECT * FROM feeds ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(feed_row)
            .collect()
    }

    async fn save_fetch_states(
        &self,
        states: &[(i64, FetchState)],
        owner: Option<&str>,
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut w = self.begin_write().await?;
        for (feed_id, st) in states {
            sqlx::query(
                "UPDATE feeds SET etag = ?2, last_modified = ?3, permanent_url = ?4, status = ?5,
                   last_error = ?6, error_count = ?7, last_fetch_at = ?8, last_success_at = ?9,
                   next_fetch_at = ?10, title = ?11, site_link = ?12, ttl_seconds = ?13,
                   due_at = ?14,
                   lease_owner = iif(?15 IS NULL, lease_owner, NULL),
                   lease_until = iif(?15 IS NULL, lease_until, NULL)
                 WHERE id = ?1 AND (?15 IS NULL OR lease_owner IS NULL OR lease_owner = ?15)",
            )
            .bind(feed_id)
            .bind(&st.etag)
            .bind(&st.last_modified)
            .bind(&st.permanent_url)
            .bind(st.status.as_str())
            .bind(&st.last_error)
            .bind(st.error_count as i64)
            .bind(st.last_fetch_at.map(secs))
            .bind(st.last_success_at.map(secs))
            .bind(st.next_fetch_at.map(secs))
            .bind(&st.title)
            .bind(&st.site_link)
            .bind(st.ttl.map(|d| d.as_secs() as i64))
            // Rounded up: stored in whole seconds, never due early.
            .bind(st.due_at.map(super::ceil_secs))
            .bind(owner)
            .execute(&mut *w.tx)
            .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    async fn lease_feeds(
        &self,
        ids: &[i64],
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Leases, StoreError> {
        if ids.is_empty() {
            return Ok(Leases::default());
        }
        let mut w = self.begin_write().await?;
        let free: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, lease_owner FROM feeds WHERE id IN (SELECT value FROM json_each(?1))
               AND (lease_until IS NULL OR lease_until < ?2) AND (due_at IS NULL OR due_at <= ?2)",
        )
        .bind(json(&ids))
        .bind(secs(now))
        .fetch_all(&mut *w.tx)
        .await?;
        let leased: Vec<i64> = free.iter().map(|(id, _)| *id).collect();
        sqlx::query(
            "UPDATE feeds SET lease_owner = ?2, lease_until = ?3
             WHERE id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json(&leased))
        .bind(owner)
        .bind(secs(until))
        .execute(&mut *w.tx)
        .await?;
        let rows = sqlx::query("SELECT * FROM feeds WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(json(&ids))
            .fetch_all(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        let mut out = Leases {
            taken_over: free
                .iter()
                .filter(|(_, prev)| prev.as_deref().is_some_and(|p| p != owner))
                .count(),
            ..Leases::default()
        };
        for r in &rows {
            let row = feed_row(r)?;
            if leased.contains(&row.id) {
                out.leased.push(row);
            } else {
                let until: Option<i64> = r.try_get("lease_until")?;
                out.elsewhere.push((row, opt_at(until)));
            }
        }
        Ok(out)
    }

    async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("UPDATE feeds SET lease_until = ?2 WHERE lease_owner = ?1")
            .bind(owner)
            .bind(secs(until))
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        w.tx.commit().await?;
        Ok(n)
    }

    async fn known_hashes(&self, feed_id: i64) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT item_key, raw_hash FROM items WHERE feed_id = ?1")
            .bind(feed_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Queues the document and returns once it is committed. Saves that
    /// queue while another is being written go in together, in one
    /// transaction (group commit), each under its own savepoint: the index
    /// pages that every document touches are written once per batch
    /// instead of once per feed, and one document's failure rolls back only
    /// that document.
    async fn file_document(&self, doc: Document) -> Result<SaveCounts, StoreError> {
        if doc.items.is_empty() {
            return Ok(SaveCounts::default());
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SaveJob { doc, reply });
        // The batch is written by a task of its own, so that a caller that
        // gives up waiting cannot cut short the other feeds' writes.
        tokio::spawn(self.clone().write_pending());
        done.await.unwrap_or(Err(StoreError::Interrupted))
    }

    async fn items_for_tagging(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<TaggingInput>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, f.name, i.title, i.summary_html, i.content_html, i.categories
             FROM items i JOIN feeds f ON f.id = i.feed_id
             WHERE i.id > ?1 ORDER BY i.id LIMIT ?2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let cats: String = r.try_get(5)?;
                Ok(TaggingInput {
                    item_id: r.try_get(0)?,
                    feed: r.try_get(1)?,
                    title: r.try_get(2)?,
                    summary_html: html_column(r, 3)?,
                    content_html: html_column(r, 4)?,
                    categories: serde_json::from_str(&cats).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn set_tagging(&self, items: &[(i64, Tagging)]) -> Result<usize, StoreError> {
        let mut w = self.begin_write().await?;
        let mut changed = 0;
        for (id, t) in items {
            let tags = json(&t.tags);
            let old: (String, bool) = sqlx::query_as(
                "SELECT COALESCE((SELECT json_group_array(tag) FROM (SELECT tag FROM item_tags WHERE item_id = ?1 ORDER BY tag)), '[]'),
                   (SELECT excluded FROM items WHERE id = ?1)",
            )
            .bind(id)
            .fetch_one(&mut *w.tx)
            .await?;
            if old.0 == tags && old.1 == t.excluded {
                continue;
            }
            changed += 1;
            sqlx::query("UPDATE items SET excluded = ?2 WHERE id = ?1")
                .bind(id)
                .bind(t.excluded)
                .execute(&mut *w.tx)
                .await?;
            sqlx::query("DELETE FROM item_tags WHERE item_id = ?1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
            write_tags(&mut w.tx, *id, &t.tags).await?;
        }
        if changed > 0 {
            bump_content_version(&mut w.tx).await?;
        }
        w.tx.commit().await?;
        Ok(changed)
    }

    async fn tag_rules(&self) -> Result<Option<String>, StoreError> {
        self.meta(TAG_RULES_KEY).await
    }

    async fn set_tag_rules(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.set_meta(TAG_RULES_KEY, fingerprint).await
    }

    async fn list_stories(&self, q: &ItemQuery) -> Result<Vec<Story>, StoreError> {
        // A tag's stories come from its own date-ordered index (story_tags).
        let mut sql = String::from(if q.tag.is_some() {
            "SELECT s.story_id AS id FROM story_tags s WHERE s.tag = ?1"
        } else {
            "SELECT s.id FROM stories s WHERE 1 = 1"
        });
        let id = if q.tag.is_some() {
            "s.story_id"
        } else {
            "s.id"
        };
        if !q.include_excluded {
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM items x WHERE x.story_id = {id} AND x.excluded = 1)"
            ));
        }
        if q.since.is_some() {
            sql.push_str(" AND s.sort_date >= ?2");
        }
        sql.push_str(&format!(" ORDER BY s.sort_date DESC, {id} DESC LIMIT ?3"));
        let ids: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(&q.tag)
            .bind(q.since.map(secs))
            .bind(q.limit.map_or(-1, |l| l as i64))
            .fetch_all(&self.pool)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {STORED_ITEM_COLUMNS}, i.story_id,
               (SELECT group_concat(tag, char(31)) FROM
                  (SELECT tag FROM item_tags t WHERE t.item_id = i.id ORDER BY tag)) AS tag_list
             FROM items i JOIN feeds f ON f.id = i.feed_id JOIN stories s ON s.id = i.story_id
             WHERE i.story_id IN (SELECT value FROM json_each(?1))
             ORDER BY i.story_id, i.id"
        ))
        .bind(json(&ids))
        .fetch_all(&self.pool)
        .await?;
        let mut by_story: HashMap<i64, Vec<StoredItem>> = HashMap::with_capacity(ids.len());
        for r in &rows {
            by_story
                .entry(r.try_get("story_id")?)
                .or_default()
                .push(StoredItem::from_row(r)?);
        }
        ids.iter()
            .filter_map(|id| Some((*id, by_story.remove(id)?)))
            .map(|(id, items)| story_from_items(id, items))
            .collect()
    }

    async fn story_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM stories")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn story_ids_stored_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM stories WHERE created_at >= ?1 AND created_at < ?2")
                .bind(secs(from))
                .bind(secs(until))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn prune_stories(
        &self,
        dated_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (dated_before, created_before) = (secs(dated_before), secs(created_before));
        let mut w = self.begin_write().await?;
        // The newest story id and item id are never deleted: they would be
        // handed out again.
        let doomed = "SELECT id FROM stories WHERE sort_date < ?1 AND created_at < ?2
                        AND id < (SELECT max(id) FROM stories)
                        AND id IS NOT (SELECT story_id FROM items WHERE id = (SELECT max(id) FROM items))";
        // Their keys are remembered: a feed still carrying a pruned item
        // must not bring it back as a new story.
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO pruned_items (feed_id, item_key)
             SELECT feed_id, item_key FROM items WHERE story_id IN ({doomed})"
        ))
        .bind(dated_before)
        .bind(created_before)
        .execute(&mut *w.tx)
        .await?;
        sqlx::query(&format!("DELETE FROM items WHERE story_id IN ({doomed})"))
            .bind(dated_before)
            .bind(created_before)
            .execute(&mut *w.tx)
            .await?;
        let n = sqlx::query(&format!("DELETE FROM stories WHERE id IN ({doomed})"))
            .bind(dated_before)
            .bind(created_before)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if n > 0 {
            bump_content_version(&mut w.tx).await?;
        }
        w.tx.commit().await?;
        Ok(n)
    }

    async fn content_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .meta("content_version")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    async fn store_key(&self) -> Result<String, StoreError> {
        // Migration 0005 made one; a store without it is corrupt.
        self.meta("store_key")
            .await?
            .ok_or_else(|| StoreError::Corrupt("the store has no store_key".into()))
    }

    async fn http_validator(&self, path: &str) -> Result<Option<HttpValidator>, StoreError> {
        let v = self.meta(&format!("http_validators:{path}")).await?;
        Ok(v.and_then(|v| {
            let (etag, at) = v.rsplit_once(' ')?;
            Some(HttpValidator {
                etag: etag.to_string(),
                first_served: DateTime::from_timestamp(at.parse().ok()?, 0)?,
            })
        }))
    }

    async fn set_http_validator(&self, path: &str, v: &HttpValidator) -> Result<(), StoreError> {
        self.set_meta(
            &format!("http_validators:{path}"),
            &format!("{} {}", v.etag, secs(v.first_served)),
        )
        .await
    }

    async fn lock_digest_sender(&self) -> Result<SenderLock, StoreError> {
        let mut path = self.path.clone().into_os_string();
        path.push(".digest-lock");
        let path = PathBuf::from(path);
        let failed = |source| StoreError::SenderLock {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(failed)?;
        // The OS drops the lock when its holder dies, even by kill -9.
        match file.try_lock() {
            Ok(()) => Ok(SenderLock::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::SenderBusy),
            Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
        }
    }

    async fn periods(
        &self,
        digest: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DigestPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, digest, start_at, cutoff_at, stories, status FROM digest_periods
             WHERE ?1 IS NULL OR digest = ?1 ORDER BY cutoff_at DESC, id DESC LIMIT ?2",
        )
        .bind(digest)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(period_row).collect()
    }

    async fn open_periods(&self, digest: Option<&str>) -> Result<Vec<DigestPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, digest, start_at, cutoff_at, stories, status FROM digest_periods
             WHERE status = 'open' AND (?1 IS NULL OR digest = ?1) ORDER BY cutoff_at, id",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(period_row).collect()
    }

    async fn record_period(&self, p: &NewPeriod) -> Result<(DigestPeriod, bool), StoreError> {
        let mut w = self.begin_write().await?;
        let tx = &mut w.tx;
        if let Some(r) = sqlx::query(
            "SELECT id, digest, start_at, cutoff_at, stories, status FROM digest_periods
             WHERE digest = ?1 AND cutoff_at = ?2",
        )
        .bind(&p.digest)
        .bind(secs(p.cutoff))
        .fetch_optional(&mut **tx)
        .await?
        {
            return Ok((period_row(&r)?, false));
        }
        let status = if p
            .deliveries
            .iter()
            .any(|d| d.state == DeliveryState::Queued)
        {
            PeriodStatus::Open
        } else {
            PeriodStatus::Skipped
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO digest_periods (digest, start_at, cutoff_at, stories, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(&p.digest)
        .bind(secs(p.start))
        .bind(secs(p.cutoff))
        .bind(p.stories)
        .bind(status.as_str())
        .bind(secs(p.now))
        .fetch_one(&mut **tx)
        .await?;
        for (pos, d) in p.deliveries.iter().enumerate() {
            sqlx::query(
                "INSERT INTO digest_deliveries (period_id, recipient, position, state, message_id, reply, topics, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(id)
            .bind(&d.recipient)
            .bind(pos as i64)
            .bind(d.state.as_str())
            .bind(&d.message_id)
            .bind(&d.reply)
            .bind(d.topics.join(" "))
            .bind(secs(p.now))
            .execute(&mut **tx)
            .await?;
        }
        if let Some(issue) = &p.issue {
            sqlx::query(
                "INSERT INTO digest_issues (period_id, digest, slug, subject, html, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(id)
            .bind(&p.digest)
            .bind(&issue.slug)
            .bind(&issue.subject)
            .bind(&issue.html)
            .bind(secs(p.now))
            .execute(&mut **tx)
            .await?;
        }
        w.tx.commit().await?;
        let period = DigestPeriod {
            id,
            digest: p.digest.clone(),
            start: at(secs(p.start)),
            cutoff: at(secs(p.cutoff)),
            stories: p.stories,
            status,
        };
        Ok((period, true))
    }

    async fn deliveries(&self, period_id: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT period_id, recipient, topics, state, message_id, attempts, permanent, reply, updated_at
             FROM digest_deliveries WHERE period_id = ?1 ORDER BY position",
        )
        .bind(period_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(delivery_row).collect::<Result<_, _>>()?)
    }

    async fn claim_delivery(
        &self,
        seen: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE digest_deliveries SET state = 'pending', attempts = attempts + 1, updated_at = ?3
             WHERE period_id = ?1 AND recipient = ?2 AND state = ?4 AND attempts = ?5",
        )
        .bind(seen.period_id)
        .bind(&seen.recipient)
        .bind(secs(now))
        .bind(seen.state.as_str())
        .bind(seen.attempts)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_delivery(
        &self,
        period_id: i64,
        recipient: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, reply, permanent) = match outcome {
            DeliveryOutcome::Sent(reply) => (DeliveryState::Sent, reply, false),
            DeliveryOutcome::Failed { reply, permanent } => {
                (DeliveryState::Failed, reply, *permanent)
            }
        };
        let mut w = self.begin_write().await?;
        sqlx::query(
            "UPDATE digest_deliveries SET state = ?3, reply = ?4, permanent = ?5, updated_at = ?6
             WHERE period_id = ?1 AND recipient = ?2",
        )
        .bind(period_id)
        .bind(recipient)
        .bind(state.as_str())
        .bind(reply)
        .bind(permanent as i64)
        .bind(secs(now))
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn close_digest_period(&self, period_id: i64) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE digest_periods SET status = 'done' WHERE id = ?1 AND status = 'open'")
            .bind(period_id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn skip_delivery(
        &self,
        seen: &Delivery,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE digest_deliveries SET state = 'skipped', reply = ?3, updated_at = ?4
             WHERE period_id = ?1 AND recipient = ?2 AND state = ?5 AND attempts = ?6",
        )
        .bind(seen.period_id)
        .bind(&seen.recipient)
        .bind(reason)
        .bind(secs(now))
        .bind(seen.state.as_str())
        .bind(seen.attempts)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppress(
        &self,
        digest: &str,
        recipient: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO digest_suppressions (digest, recipient, at, how) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (digest, recipient) DO NOTHING",
        )
        .bind(digest)
        .bind(recipient.to_lowercase())
        .bind(secs(now))
        .bind(how)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unsuppress(&self, digest: &str, recipient: &str) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM digest_suppressions WHERE digest = ?1 AND recipient = ?2")
                .bind(digest)
                .bind(recipient.to_lowercase())
                .execute(&mut *w.tx)
                .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressions(&self, digest: Option<&str>) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, recipient, at, how FROM digest_suppressions
             WHERE ?1 IS NULL OR digest = ?1 ORDER BY digest, recipient",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(suppression_row).collect()
    }

    async fn issues(
        &self,
        digest: Option<&str>,
        limit: i64,
        with_html: bool,
    ) -> Result<Vec<Issue>, StoreError> {
        let sql = ISSUES_SQL
            .replace("{html}", if with_html { "i.html" } else { "NULL" })
            .replace("{digest}", "(?1 IS NULL OR i.digest = ?1)")
            .replace("{limit}", "?2");
        let rows = sqlx::query(&sql)
            .bind(digest)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(issue_row).collect()
    }

    async fn issue(&self, digest: &str, slug: &str) -> Result<Option<Issue>, StoreError> {
        let sql = ISSUES_SQL
            .replace("{html}", "i.html")
            .replace("{digest}", "i.digest = ?1 AND i.slug = ?2")
            .replace("{limit}", "1");
        let row = sqlx::query(&sql)
            .bind(digest)
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(issue_row).transpose()
    }

    async fn unsubscribe_key(&self, fresh: &str) -> Result<String, StoreError> {
        if let Some(k) = self.meta(UNSUBSCRIBE_KEY).await? {
            return Ok(k);
        }
        let mut w = self.begin_write().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")
            .bind(UNSUBSCRIBE_KEY)
            .bind(fresh)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        self.meta(UNSUBSCRIBE_KEY)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the unsubscribe key was not stored".into()))
    }

    async fn count_rows(&self, table: &Table) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.name))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn read_rows(
        &self,
        table: &Table,
        after: Option<Vec<Value>>,
        limit: i64,
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(table.select_head());
        if let Some(after) = &after {
            q.push(table.after_key());
            let mut key = q.separated(", ");
            for (v, kind) in after.iter().zip(table.key_kinds()) {
                bind_value!(key, v, kind);
            }
            q.push(")");
        }
        q.push(table.order());
        q.push_bind(limit);
        let rows = q.build().fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| row_values(r, table))
            .collect::<Result<_, _>>()?)
    }

    async fn write_rows(&self, table: &Table, rows: &[Vec<Value>]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut w = self.begin_write().await?;
        for chunk in rows.chunks(COPY_ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(table.insert_head());
            q.push_values(chunk, |mut b, row| {
                for (v, (_, kind)) in row.iter().zip(table.columns) {
                    bind_value!(b, v, *kind);
                }
            });
            q.push(table.insert_tail());
            q.build().persistent(false).execute(&mut *w.tx).await?;
        }
        w.tx.commit().await?;
        self.near.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }

    async fn finish_copy(&self) -> Result<(), StoreError> {
        // Ids are taken as max + 1: nothing to move.
        Ok(())
    }

    async fn close(&self) {
        self.close_pool().await;
    }
}

/// Rows per statement of a copy (22 values a row at most: under SQLite's
/// 32,766 variables).
const COPY_ROWS_PER_STATEMENT: usize = 1000;

/// The `meta` key of the fingerprint of the tag rules the stored tags follow.
const TAG_RULES_KEY: &str = "tag_rules";

impl SqliteStore {
    /// A value from the store's own `meta` table.
    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Sets a value in the store's own `meta` table.
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

/// A write transaction and the process-wide write lock it holds.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// One document waiting for the next group commit.
#[derive(Debug)]
struct SaveJob {
    doc: Document,
    reply: tokio::sync::oneshot::Sender<Result<SaveCounts, StoreError>>,
}

impl SqliteStore {
    /// Writes every queued document in one transaction, unless another
    /// task took them first.
    async fn write_pending(self) {
        let guard = self.write_lock.clone().lock_owned().await;
        let take = || std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut jobs = take();
        if jobs.is_empty() {
            return;
        }
        let shared = |e: sqlx::Error, jobs: Vec<SaveJob>| {
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Shared(e.clone())));
            }
        };
        let mut tx = match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return shared(e, jobs),
        };
        let t0 = std::time::Instant::now();
        let held = self.near.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut near = match catch_up(held, &mut tx).await {
            Ok(near) => near,
            Err(e) => {
                drop(tx);
                drop(guard);
                return shared(e, jobs);
            }
        };
        let mut results = Vec::with_capacity(jobs.len());
        let mut changed = false;
        loop {
            for job in &jobs[results.len()..] {
                match save_in_savepoint(&mut tx, &job.doc, &mut near).await {
                    Ok(Ok(counts)) => {
                        changed |= counts.new + counts.updated > 0;
                        results.push(Ok(counts));
                    }
                    Ok(Err(e)) => results.push(Err(e)),
                    // The transaction itself is gone (SQLite rolls it back on
                    // I/O errors, a full disk…): nothing of this batch is kept.
                    Err(e) => {
                        drop(tx);
                        drop(guard);
                        tracing::warn!(error = %e, "a group commit failed; its feeds will be fetched again");
                        return shared(e, jobs);
                    }
                }
            }
            // Saves queued meanwhile join this commit, for a while: each
            // commit rewrites the index pages its documents touched.
            if t0.elapsed() >= GROUP_COMMIT_FOR {
                break;
            }
            let more = take();
            if more.is_empty() {
                break;
            }
            jobs.extend(more);
        }
        let committed = async {
            if changed {
                bump_content_version(&mut tx).await?;
            }
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if committed.is_ok() {
            near.trim(NEAR_MAX_POSTINGS);
            *self.near.lock().unwrap_or_else(|p| p.into_inner()) = Some(near);
        }
        drop(guard);
        self.wal_written.notify_one();
        tracing::debug!(
            documents = jobs.len(),
            us = t0.elapsed().as_micros() as u64,
            "group commit"
        );
        match committed {
            Ok(()) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(StoreError::Query(e)) => shared(e, jobs),
            Err(e) => shared(sqlx::Error::Protocol(e.to_string()), jobs),
        }
    }
}

/// The near-duplicate index, brought up to date within the write
/// transaction `tx`: a new one starts empty (its slabs are read when items
/// need them), a held one is given the stories another process stored
/// since it last looked.
async fn catch_up(
    held: Option<NearIndex>,
    tx: &mut Transaction<'static, Sqlite>,
) -> Result<NearIndex, sqlx::Error> {
    let Some(mut index) = held else {
        let mut index = NearIndex::default();
        index.seen_up_to = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM stories")
            .fetch_one(&mut **tx)
            .await?;
        return Ok(index);
    };
    // Usually none.
    let rows: Vec<(i64, i64, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, sort_date, signature FROM stories WHERE id > ?1")
            .bind(index.seen_up_to)
            .fetch_all(&mut **tx)
            .await?;
    for (id, sort_date, sig) in rows {
        if let Some(sig) = sig {
            index.insert(
                id,
                sort_date,
                &dedup::bands(&dedup::signature_from_bytes(&sig)),
            );
        }
        index.seen_up_to = index.seen_up_to.max(id);
    }
    Ok(index)
}

/// Saves one document under a savepoint: released when it succeeds, rolled
/// back (leaving the batch's other documents alone) when it fails. The
/// savepoint is opened by the document's first statement and released by
/// its last, so the usual save is two round trips to the connection's
/// thread: one read, one write. The outer error means the savepoint could
/// not be rolled back: the whole transaction is lost.
async fn save_in_savepoint(
    tx: &mut Transaction<'static, Sqlite>,
    doc: &Document,
    near: &mut NearIndex,
) -> Result<Result<SaveCounts, StoreError>, sqlx::Error> {
    match save_document(tx, doc, near).await {
        Ok(counts) => Ok(Ok(counts)),
        Err(e) => {
            sqlx::query("ROLLBACK TO doc; RELEASE doc")
                .execute(&mut **tx)
                .await?;
            Ok(Err(e))
        }
    }
}

/// Gathers what filing needs for one document, files it
/// ([`filing::file`], through [`Gathering`]) and applies the decisions,
/// within the savepoint `doc` (opened by [`read_known`], released at the
/// end of the write).
async fn save_document(
    tx: &mut Transaction<'_, Sqlite>,
    doc: &Document,
    near: &mut NearIndex,
) -> Result<SaveCounts, StoreError> {
    let mut g = Gathering::new(doc);
    for (from, to) in g.missing_slabs(near) {
        read_slabs(tx, near, from, to).await?;
    }
    let candidates = g.suggest(near);
    let (known, next) = read_known(tx, doc.feed_id, &doc.items, &candidates).await?;
    let plan = g.file(&known);
    let now = secs(doc.now);
    place_instants(tx, &mut g, &plan, now, near).await?;
    let mut counts = SaveCounts {
        new: plan.fresh.len(),
        updated: 0,
    };
    for &i in &plan.updates {
        if update_item(tx, doc.feed_id, &doc.items[i], g.changed_at(i)).await? {
            counts.updated += 1;
        }
    }
    for &(i, item_id) in &plan.renames {
        sqlx::query("UPDATE items SET item_key = ?2 WHERE id = ?1")
            .bind(item_id)
            .bind(&doc.items[i].item.key)
            .execute(&mut **tx)
            .await?;
        if update_item(tx, doc.feed_id, &doc.items[i], g.changed_at(i)).await? {
            counts.updated += 1;
        }
    }
    let rows = g.rows(&plan, next.story, next.item);
    insert_rows(tx, doc, &g, &rows).await?;
    g.index_written(near, &rows, &known);
    Ok(counts)
}

/// Stories read per statement when the index reads slabs.
const SLAB_CHUNK: i64 = 2_000;

/// Gives the index the stories dated in `[from, to)`. A slab of a large
/// store holds many stories: they come a chunk at a time, each chunk as one
/// value (`id,date,length,signature` per story, back to back), since the
/// driver hands every row over from its worker thread on its own (about
/// 10 µs a story, against 3 µs this way).
async fn read_slabs(
    tx: &mut Transaction<'_, Sqlite>,
    near: &mut NearIndex,
    from: i64,
    to: i64,
) -> Result<(), StoreError> {
    let mut filler = near.filler(from, to);
    let mut after = (from, i64::MIN);
    loop {
        let chunk: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT CAST(group_concat(id || ',' || sort_date || ',' || length(signature) || ','
                 || signature, '') AS BLOB)
             FROM (SELECT id, sort_date, signature FROM stories
                   WHERE (sort_date, id) > (?1, ?2) AND sort_date < ?3
                     AND signature IS NOT NULL
                   ORDER BY sort_date, id LIMIT ?4)",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(to)
        .bind(SLAB_CHUNK)
        .fetch_one(&mut **tx)
        .await?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let mut rest = chunk.as_slice();
        let mut read = 0;
        while !rest.is_empty() {
            let Some((id, date, sig, tail)) = slab_record(rest) else {
                return Err(StoreError::Corrupt(format!(
                    "a story's record in the slab of {from}..{to} cannot be read"
                )));
            };
            filler.add(id, date, sig);
            (after, rest, read) = ((date, id), tail, read + 1);
        }
        if read < SLAB_CHUNK {
            return Ok(());
        }
    }
}

/// One `id,date,length,signature` record of [`read_slabs`], and the rest.
fn slab_record(b: &[u8]) -> Option<(i64, i64, &[u8], &[u8])> {
    fn field(b: &[u8]) -> Option<(i64, &[u8])> {
        let comma = memchr::memchr(b',', b)?;
        let n = std::str::from_utf8(&b[..comma]).ok()?.parse().ok()?;
        Some((n, &b[comma + 1..]))
    }
    let (id, b) = field(b)?;
    let (date, b) = field(b)?;
    let (len, b) = field(b)?;
    let len = usize::try_from(len).ok().filter(|l| *l <= b.len())?;
    Some((id, date, &b[..len], &b[len..]))
}

/// Gives the document's undated new stories and its change times seconds
/// no stored story holds (see [`filing::InstantSearch`]), reading the
/// stored ones back from the fetch time as far as needed.
async fn place_instants(
    tx: &mut Transaction<'_, Sqlite>,
    g: &mut Gathering<'_>,
    plan: &Plan,
    now: i64,
    near: &mut NearIndex,
) -> Result<(), StoreError> {
    let need = g.instants_needed(plan);
    if need == 0 {
        return Ok(());
    }
    let mut search = filing::InstantSearch::new(now, need, near.instants);
    loop {
        let [(a, b), (c, d)] = search.ranges();
        let taken: HashSet<i64> = sqlx::query_scalar::<_, i64>(
            "SELECT sort_date FROM stories WHERE sort_date BETWEEN ?1 AND ?2
             UNION SELECT sort_date FROM stories WHERE sort_date BETWEEN ?3 AND ?4
             UNION SELECT updated_at FROM stories WHERE updated_at BETWEEN ?1 AND ?2
             UNION SELECT updated_at FROM stories WHERE updated_at BETWEEN ?3 AND ?4",
        )
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(d)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        if let Some(instants) = search.place(&taken) {
            near.instants = search.block_after(&instants);
            g.place(plan, &instants);
            return Ok(());
        }
    }
}

/// The next story and item ids.
#[derive(Debug, Clone, Copy)]
struct NextIds {
    story: i64,
    item: i64,
}

/// Opens the document's savepoint and reads what filing needs to know: one
/// statement, however many items.
async fn read_known(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    items: &[Prepared],
    candidates: &[i64],
) -> Result<(Known, NextIds), StoreError> {
    let keys = json(
        &items
            .iter()
            .map(|p| p.item.key.as_str())
            .collect::<Vec<_>>(),
    );
    let links: Vec<&str> = items
        .iter()
        .filter_map(|p| p.item.canonical_link.as_deref())
        .collect();
    let row: (String, String, String, String, i64, i64) = sqlx::query_as(
        "SAVEPOINT doc;
         SELECT
           (SELECT json_group_array(item_key) FROM items WHERE feed_id = ?1
              AND item_key IN (SELECT value FROM json_each(?2))),
           (SELECT json_group_array(item_key) FROM pruned_items WHERE feed_id = ?1
              AND item_key IN (SELECT value FROM json_each(?2))),
           (SELECT json_group_array(json_array(i.id, i.feed_id, i.item_key, i.canonical_link,
                 i.story_id, iif(i.feed_id = ?1, i.title, NULL),
                 iif(i.feed_id = ?1, hex(s.signature), NULL)))
              FROM items i LEFT JOIN stories s ON s.id = i.story_id
              WHERE i.canonical_link IN (SELECT value FROM json_each(?3))
                AND i.story_id IS NOT NULL),
           (SELECT json_group_array(json_array(s.id, hex(s.signature), s.sort_date,
                 (SELECT json_group_array(DISTINCT feed_id) FROM items WHERE story_id = s.id)))
              FROM stories s
              WHERE s.id IN (SELECT value FROM json_each(?4)) AND s.signature IS NOT NULL),
           COALESCE((SELECT max(id) FROM stories), 0) + 1,
           COALESCE((SELECT max(id) FROM items), 0) + 1",
    )
    .bind(feed_id)
    .bind(keys)
    .bind(json(&links))
    .bind(json(&candidates))
    .fetch_one(&mut **tx)
    .await?;
    let (stored, pruned, linked, stories, next_story, next_item) = row;
    let known = known_from_json(&stored, &pruned, &linked, &stories)?;
    Ok((
        known,
        NextIds {
            story: next_story,
            item: next_item,
        },
    ))
}

/// Rewrites the stored item with `prepared`'s key when its raw hash
/// changed; whether it did. The first-seen time stays, and so does the
/// placed date of an undated item; its story is marked changed at `changed_at`.
async fn update_item(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    prepared: &Prepared,
    changed_at: i64,
) -> Result<bool, StoreError> {
    let item = &prepared.item;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE items SET raw_hash = ?3, guid = ?4, link = ?5, title = ?6, summary_html = ?7,
           content_html = ?8, excerpt = ?9, authors = ?10, categories = ?11, enclosures = ?12,
           published = ?13, updated = ?14, sort_date = COALESCE(?13, ?14,
             CASE WHEN published IS NULL AND updated IS NULL THEN sort_date ELSE first_seen END),
           canonical_link = ?15, excluded = ?16
         WHERE feed_id = ?1 AND item_key = ?2 AND raw_hash <> ?3
         RETURNING id",
    )
    .bind(feed_id)
    .bind(&item.key)
    .bind(item.raw_hash)
    .bind(&item.guid)
    .bind(&item.link)
    .bind(&item.title)
    .bind(&prepared.summary_html)
    .bind(&prepared.content_html)
    .bind(&item.excerpt)
    .bind(json(&item.authors))
    .bind(json(&item.categories))
    .bind(json(&item.enclosures))
    .bind(item.published.map(secs))
    .bind(item.updated.map(secs))
    .bind(&item.canonical_link)
    .bind(item.excluded)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE stories SET updated_at = ?2 WHERE id = (SELECT story_id FROM items WHERE id = ?1)",
    )
    .bind(id)
    .bind(changed_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM item_tags WHERE item_id = ?1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    write_tags(tx, id, &item.tags).await?;
    Ok(true)
}

/// Writes the rows filing added (new stories, the dates of joined ones,
/// new items and their tags): usually one multi-statement write, a huge
/// document several, so that SQLite never holds the prepared form of all
/// its rows at once. The last statement releases the savepoint `doc`.
async fn insert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    doc: &Document,
    g: &Gathering<'_>,
    rows: &Rows,
) -> Result<(), StoreError> {
    let now = secs(doc.now);
    let mut w = Batch::default();
    for chunk in rows.stories.chunks(ROWS_PER_STATEMENT) {
        w.q.push("INSERT INTO stories (id, signature, sort_date, created_at) ");
        w.q.push_values(chunk, |mut b, (id, sig, date, _)| {
            b.push_bind(*id)
                .push_bind(sig.clone())
                .push_bind(*date)
                .push_bind(now);
        });
        w.q.push(";\n");
        w.rows += chunk.len();
        w.flush_if_full(tx).await?;
    }
    if !rows.merged.is_empty() {
        w.q.push(
            "UPDATE stories SET sort_date = min(sort_date, j.d),
               updated_at = CASE WHEN j.d < sort_date AND coalesce(updated_at, 0) < sort_date
                 THEN sort_date ELSE updated_at END
             FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS d
                   FROM json_each(",
        );
        w.q.push_bind(json(&rows.merged));
        w.q.push(")) AS j WHERE stories.id = j.id;\n");
    }
    // 22 values per item: well under SQLite's 32,766 variables.
    for chunk in rows.items.chunks(ROWS_PER_STATEMENT) {
        w.q.push(
            "INSERT INTO items (id, feed_id, item_key, raw_hash, guid, link, title, summary_html,
               content_html, excerpt, authors, categories, enclosures, published, updated,
               first_seen, sort_date, canonical_link, excluded, story_id, merge_reason, merge_score) ",
        );
        w.q.push_values(chunk, |mut b, (at, id, story_id, reason)| {
            let prepared = &doc.items[*at];
            let item = &prepared.item;
            b.push_bind(*id)
                .push_bind(doc.feed_id)
                .push_bind(&item.key)
                .push_bind(item.raw_hash)
                .push_bind(&item.guid)
                .push_bind(&item.link)
                .push_bind(&item.title)
                .push_bind(&prepared.summary_html)
                .push_bind(&prepared.content_html)
                .push_bind(&item.excerpt)
                .push_bind(json(&item.authors))
                .push_bind(json(&item.categories))
                .push_bind(json(&item.enclosures))
                .push_bind(item.published.map(secs))
                .push_bind(item.updated.map(secs))
                .push_bind(now)
                .push_bind(g.dates[*at])
                .push_bind(&item.canonical_link)
                .push_bind(item.excluded)
                .push_bind(*story_id)
                .push_bind(reason.kind())
                .push_bind(reason.score());
        });
        w.q.push(";\n");
        w.rows += chunk.len();
        w.flush_if_full(tx).await?;
    }
    for chunk in rows.tags.chunks(4 * ROWS_PER_STATEMENT) {
        w.q.push("INSERT OR IGNORE INTO item_tags (item_id, tag) ");
        w.q.push_values(chunk, |mut b, (id, tag)| {
            b.push_bind(*id).push_bind(tag);
        });
        w.q.push(";\n");
        w.rows += chunk.len() / 4;
        w.flush_if_full(tx).await?;
    }
    w.q.push("RELEASE doc");
    w.flush(tx).await
}

/// Rows a multi-statement write takes before it is sent: a feed's usual
/// document is one write, a huge one several.
const ROWS_PER_STATEMENT: usize = 250;

/// Statements queued for one write.
struct Batch<'q> {
    q: QueryBuilder<'q, Sqlite>,
    rows: usize,
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch {
            q: QueryBuilder::new(""),
            rows: 0,
        }
    }
}

impl<'q> Batch<'q> {
    /// Sends what is queued once it holds [`ROWS_PER_STATEMENT`] rows.
    async fn flush_if_full(&mut self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        if self.rows >= ROWS_PER_STATEMENT {
            self.flush(tx).await?;
        }
        Ok(())
    }

    /// Sends what is queued.
    async fn flush(&mut self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        if self.q.sql().is_empty() {
            return Ok(());
        }
        // The statement's shape changes with every document: not worth caching.
        self.q.build().persistent(false).execute(&mut **tx).await?;
        self.q.reset();
        self.rows = 0;
        Ok(())
    }
}

/// Marks a change of what is published (see `content_version`).
async fn bump_content_version(tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('content_version', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// All of an item's tags in one statement.
async fn write_tags(
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    tags: &[String],
) -> Result<(), StoreError> {
    if tags.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT OR IGNORE INTO item_tags (item_id, tag) SELECT ?1, value FROM json_each(?2)",
    )
    .bind(id)
    .bind(json(&tags))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored HTML column: compressed or plain, BLOB or (older rows) TEXT.
fn html_column<I: sqlx::ColumnIndex<sqlx::sqlite::SqliteRow>>(
    r: &sqlx::sqlite::SqliteRow,
    i: I,
) -> Result<Option<String>, StoreError> {
    r.try_get_unchecked::<Option<Vec<u8>>, _>(i)?
        .map(decode_html)
        .transpose()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slab holding more stories than one chunk is read whole, stories
    /// on a chunk's edge and sharing a date included, and nothing outside
    /// the range.
    #[tokio::test]
    async fn slabs_are_read_whole_a_chunk_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(dir.path().join("slabs.db"))
                .create_if_missing(true),
        )
        .await
        .unwrap();
        let n = 2 * SLAB_CHUNK + 500;
        // Dates in pairs (two stories a second), from 1,000 on; one story
        // without a signature and one past the range.
        sqlx::raw_sql(&format!(
            "CREATE TABLE stories (id INTEGER PRIMARY KEY, signature BLOB, sort_date INTEGER NOT NULL);
             CREATE INDEX stories_sort_date ON stories (sort_date DESC, id DESC);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
             INSERT INTO stories SELECT x, randomblob(256), 1000 + x / 2 FROM c;
             INSERT INTO stories VALUES ({}, NULL, 1500), ({}, randomblob(256), 999999);",
            n + 1,
            n + 2
        ))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        let mut near = NearIndex::default();
        read_slabs(&mut tx, &mut near, 0, dedup::SLAB_SECS)
            .await
            .unwrap();
        assert_eq!(near.len(), n as usize * dedup::BANDS);
        // Each story is found by its own bands.
        let mut out = Vec::new();
        for id in [1, SLAB_CHUNK, SLAB_CHUNK + 1, 2 * SLAB_CHUNK, n] {
            let sig: Vec<u8> = sqlx::query_scalar("SELECT signature FROM stories WHERE id = ?1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            let bands = dedup::bands(&dedup::signature_from_bytes(&sig));
            near.candidates(1000 + id / 2, 86_400, &bands, &mut out);
            assert_eq!(out.first(), Some(&id), "story {id}");
        }
    }

    #[test]
    fn a_slab_record_is_split_and_a_broken_one_refused() {
        let rec = b"12,-3,4,\x00,;\x0199,1,0,";
        let (id, date, sig, rest) = slab_record(rec).unwrap();
        assert_eq!((id, date, sig), (12, -3, &b"\x00,;\x01"[..]));
        assert_eq!(slab_record(rest).unwrap(), (99, 1, &b""[..], &b""[..]));
        assert_eq!(slab_record(b"12,3,9,abc"), None);
        assert_eq!(slab_record(b"12,x,1,a"), None);
    }
}
