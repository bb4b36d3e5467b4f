//! SQLite backend: one file, WAL journal, schema migrations embedded from
//! `migrations/sqlite/`.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::sync::Arc;

use super::{Prepared, SaveCounts, StoreError, decode_html};
use crate::config::FeedConfig;
use crate::dedup::{self, MergeReason, Policy};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, Enclosure, FeedRow, FetchState, Item, ItemQuery,
    PeriodStatus, Source, Story, TaggingInput,
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
];

/// A store in an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Writers of this process queue here
    /// instead of contending for the file lock (whose busy handler sleeps).
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Saves waiting for the next group commit (see `save_items`).
    pending: Arc<std::sync::Mutex<Vec<SaveJob>>>,
    /// Wakes the checkpointer after a large write.
    wal_written: Arc<tokio::sync::Notify>,
    /// Held while a checkpoint runs: SQLite runs one at a time and answers
    /// "busy" to a second.
    checkpoint_lock: Arc<tokio::sync::Mutex<()>>,
    /// The near-duplicate index, built on the first save; `None` until then
    /// and after a failed group commit (it is rebuilt from the file).
    near: Arc<std::sync::Mutex<Option<NearIndex>>>,
}

/// The LSH bands of the stories dated after `horizon`, held by the process
/// that writes. The file stays the truth: each group commit first reads
/// the stories another process added since (`seen_up_to`), and candidates
/// are checked against the stored stories before they are used.
#[derive(Debug)]
struct NearIndex {
    bands: dedup::BandIndex,
    /// Stories dated before this are not indexed.
    horizon: i64,
    /// The highest story id the index has seen.
    seen_up_to: i64,
}

/// How far the horizon may fall behind before the index is rebuilt without
/// the stories that aged out (seconds).
const NEAR_REBUILD_AFTER: i64 = 86_400;
/// How far a batch's horizon may lie before the index's without a rebuild
/// (seconds): saves stamped a little earlier than the last ones. A larger
/// step back (a longer dedup window) rebuilds the index.
const NEAR_SLACK: i64 = 3_600;

impl NearIndex {
    /// Brings `held` up to date within the write transaction `tx`: rebuilt
    /// from every signature dated after `horizon` when there is none or its
    /// horizon is a day behind (or later than `horizon`), else given the
    /// stories added since.
    async fn refresh(
        held: Option<NearIndex>,
        tx: &mut Transaction<'static, Sqlite>,
        horizon: i64,
    ) -> Result<NearIndex, sqlx::Error> {
        let mut index = match held {
            Some(i)
                if (i.horizon - NEAR_SLACK..=i.horizon + NEAR_REBUILD_AFTER).contains(&horizon) =>
            {
                i
            }
            _ => {
                let seen_up_to = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM stories")
                    .fetch_one(&mut **tx)
                    .await?;
                let mut index = NearIndex {
                    bands: dedup::BandIndex::default(),
                    horizon,
                    seen_up_to,
                };
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT id, signature FROM stories
                     WHERE sort_date >= ?1 AND signature IS NOT NULL",
                )
                .bind(horizon)
                .fetch_all(&mut **tx)
                .await?;
                for (id, sig) in rows {
                    index.add(id, &sig);
                }
                return Ok(index);
            }
        };
        // Usually none: what another process stored since our last write.
        let rows: Vec<(i64, i64, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT id, sort_date, signature FROM stories WHERE id > ?1")
                .bind(index.seen_up_to)
                .fetch_all(&mut **tx)
                .await?;
        for (id, sort_date, sig) in rows {
            index.seen_up_to = index.seen_up_to.max(id);
            if let Some(sig) = sig.filter(|_| sort_date >= index.horizon) {
                index.add(id, &sig);
            }
        }
        Ok(index)
    }

    /// Indexes a stored story by its stored signature.
    fn add(&mut self, id: i64, signature: &[u8]) {
        self.bands
            .insert(id, &dedup::bands(&dedup::signature_from_bytes(signature)));
    }
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
            // 64 MB of page cache per connection: the dedup band index stays in memory.
            .pragma("cache_size", "-65536")
            // Savepoints and statement journals in memory, not in a temporary
            // file: they hold the pages one feed's save changed.
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        let store = SqliteStore {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            pending: Arc::default(),
            wal_written: Arc::default(),
            checkpoint_lock: Arc::default(),
            near: Arc::default(),
        };
        store.migrate().await.map_err(|e| match e {
            StoreError::Query(source) => open_err(source),
            other => other,
        })?;
        tokio::spawn(checkpointer(store.clone()));
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
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

    pub(super) async fn close(&self) {
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
                let mut conn = self.pool.acquire().await?;
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
        self.wal_written.notify_one();
    }

    /// A write transaction, holding this process's write lock. `BEGIN
    /// IMMEDIATE` takes SQLite's lock up front, so another process's writer
    /// makes us wait (busy_timeout) instead of failing on upgrade.
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let guard = self.write_lock.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    pub(super) async fn sync_feeds(
        &self,
        feeds: &[FeedConfig],
    ) -> Result<Vec<FeedRow>, StoreError> {
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

    pub(super) async fn prune_stories(
        &self,
        dated_before: i64,
        created_before: i64,
    ) -> Result<u64, StoreError> {
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

    pub(super) async fn story_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM stories")
            .fetch_one(&self.pool)
            .await?)
    }

    pub(super) async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError> {
        sqlx::query("SELECT * FROM feeds ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(feed_row)
            .collect()
    }

    pub(super) async fn known_hashes(
        &self,
        feed_id: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT item_key, raw_hash FROM items WHERE feed_id = ?1")
            .bind(feed_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Queues one document's items and returns once they are committed.
    /// Saves that queue while another is being written go in together, in
    /// one transaction (group commit), each under its own savepoint: the
    /// index pages that every document touches (links, dedup bands) are
    /// written once per batch instead of once per feed, and one document's
    /// failure rolls back only that document.
    pub(super) async fn save_items(
        &self,
        feed_id: i64,
        items: Vec<Prepared>,
        document_keys: Vec<String>,
        now: i64,
        policy: &Policy,
    ) -> Result<SaveCounts, StoreError> {
        if items.is_empty() {
            return Ok(SaveCounts::default());
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SaveJob {
                feed_id,
                items,
                document_keys,
                now,
                policy: *policy,
                reply,
            });
        // The batch is written by a task of its own, so that a caller that
        // gives up waiting cannot cut short the other feeds' writes.
        tokio::spawn(self.clone().write_pending());
        done.await.unwrap_or(Err(StoreError::Interrupted))
    }

    /// Writes every queued save in one transaction, unless another task
    /// took them first.
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
        let mut tx = match self.pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => return shared(e, jobs),
        };
        let t0 = std::time::Instant::now();
        // Every story dated within a window of an item of the batch is a
        // near-duplicate candidate, however old the item.
        let horizon = jobs.iter().map(SaveJob::horizon).min().unwrap_or(0);
        let held = self.near.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut near = match NearIndex::refresh(held, &mut tx, horizon).await {
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
                match save_in_savepoint(&mut tx, job, &mut near).await {
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
            // Saves with items older than the index reaches wait for the next commit.
            let (more, older): (Vec<SaveJob>, Vec<SaveJob>) = take()
                .into_iter()
                .partition(|j| j.horizon() >= near.horizon);
            if !older.is_empty() {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(older);
            }
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

    pub(super) async fn save_fetch_states(
        &self,
        states: &[(i64, FetchState)],
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut w = self.begin_write().await?;
        for (feed_id, st) in states {
            sqlx::query(
                "UPDATE feeds SET etag = ?2, last_modified = ?3, permanent_url = ?4, status = ?5,
                   last_error = ?6, error_count = ?7, last_fetch_at = ?8, last_success_at = ?9,
                   next_fetch_at = ?10, title = ?11, site_link = ?12, ttl_seconds = ?13
                 WHERE id = ?1",
            )
            .bind(feed_id)
            .bind(&st.etag)
            .bind(&st.last_modified)
            .bind(&st.permanent_url)
            .bind(&st.status)
            .bind(&st.last_error)
            .bind(st.error_count as i64)
            .bind(st.last_fetch_at)
            .bind(st.last_success_at)
            .bind(st.next_fetch_at)
            .bind(&st.title)
            .bind(&st.site_link)
            .bind(st.ttl_seconds)
            .execute(&mut *w.tx)
            .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(super) async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn items_for_tagging(
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

    pub(super) async fn set_tagging(&self, items: &[(i64, Tagging)]) -> Result<usize, StoreError> {
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

    pub(super) async fn story_ids_stored_between(
        &self,
        from: i64,
        until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM stories WHERE created_at >= ?1 AND created_at < ?2")
                .bind(from)
                .bind(until)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub(super) async fn digest_periods(&self, limit: i64) -> Result<Vec<DigestPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, start_at, cutoff_at, stories, status FROM digest_periods
             ORDER BY cutoff_at DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(period_row).collect()
    }

    pub(super) async fn open_digest_periods(&self) -> Result<Vec<DigestPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, start_at, cutoff_at, stories, status FROM digest_periods
             WHERE status = 'open' ORDER BY cutoff_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(period_row).collect()
    }

    pub(super) async fn create_digest_period(
        &self,
        start: i64,
        cutoff: i64,
        stories: i64,
        recipients: &[(String, String)],
        now: i64,
    ) -> Result<(DigestPeriod, bool), StoreError> {
        let mut w = self.begin_write().await?;
        let tx = &mut w.tx;
        if let Some(r) = sqlx::query(
            "SELECT id, start_at, cutoff_at, stories, status FROM digest_periods WHERE cutoff_at = ?1",
        )
        .bind(cutoff)
        .fetch_optional(&mut **tx)
        .await?
        {
            return Ok((period_row(&r)?, false));
        }
        let status = if recipients.is_empty() {
            PeriodStatus::Skipped
        } else {
            PeriodStatus::Open
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO digest_periods (start_at, cutoff_at, stories, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .bind(start)
        .bind(cutoff)
        .bind(stories)
        .bind(status.as_str())
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        for (pos, (recipient, message_id)) in recipients.iter().enumerate() {
            sqlx::query(
                "INSERT INTO digest_deliveries (period_id, recipient, position, state, message_id, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
            )
            .bind(id)
            .bind(recipient)
            .bind(pos as i64)
            .bind(message_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        w.tx.commit().await?;
        let period = DigestPeriod {
            id,
            start: ts(Some(start)).unwrap_or_default(),
            cutoff: ts(Some(cutoff)).unwrap_or_default(),
            stories,
            status,
        };
        Ok((period, true))
    }

    pub(super) async fn deliveries(&self, period_id: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT period_id, recipient, state, message_id, attempts, permanent, reply, updated_at
             FROM digest_deliveries WHERE period_id = ?1 ORDER BY position",
        )
        .bind(period_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(Delivery {
                    period_id: r.try_get("period_id")?,
                    recipient: r.try_get("recipient")?,
                    state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
                    message_id: r.try_get("message_id")?,
                    attempts: r.try_get("attempts")?,
                    permanent: r.try_get::<i64, _>("permanent")? != 0,
                    reply: r.try_get("reply")?,
                    updated_at: ts(Some(r.try_get("updated_at")?)).unwrap_or_default(),
                })
            })
            .collect()
    }

    pub(super) async fn claim_delivery(
        &self,
        seen: &Delivery,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE digest_deliveries SET state = 'pending', attempts = attempts + 1, updated_at = ?3
             WHERE period_id = ?1 AND recipient = ?2 AND state = ?4 AND attempts = ?5",
        )
        .bind(seen.period_id)
        .bind(&seen.recipient)
        .bind(now)
        .bind(seen.state.as_str())
        .bind(seen.attempts)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn finish_delivery(
        &self,
        period_id: i64,
        recipient: &str,
        state: DeliveryState,
        reply: Option<&str>,
        permanent: bool,
        now: i64,
    ) -> Result<(), StoreError> {
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
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    pub(super) async fn close_digest_period(&self, period_id: i64) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE digest_periods SET status = 'done' WHERE id = ?1 AND status = 'open'")
            .bind(period_id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_stories(&self, q: &ItemQuery) -> Result<Vec<Story>, StoreError> {
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
            .bind(q.since.map(|d| d.timestamp()))
            .bind(q.limit.map_or(-1, |l| l as i64))
            .fetch_all(&self.pool)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT i.*, f.name AS feed_name, s.sort_date AS story_date,
               s.created_at AS story_created, s.updated_at AS story_updated,
               (SELECT group_concat(tag, char(31)) FROM
                  (SELECT tag FROM item_tags t WHERE t.item_id = i.id ORDER BY tag)) AS tag_list
             FROM items i JOIN feeds f ON f.id = i.feed_id JOIN stories s ON s.id = i.story_id
             WHERE i.story_id IN (SELECT value FROM json_each(?1))
             ORDER BY i.story_id, f.priority DESC, i.sort_date ASC, i.id ASC",
        )
        .bind(json(&ids))
        .fetch_all(&self.pool)
        .await?;
        let mut by_story: HashMap<i64, Story> = HashMap::with_capacity(ids.len());
        let mut links: HashMap<i64, Vec<Option<String>>> = HashMap::new();
        for r in &rows {
            let story_id: i64 = r.try_get("story_id")?;
            links
                .entry(story_id)
                .or_default()
                .push(r.try_get("canonical_link")?);
            let source = Source {
                feed: r.try_get("feed_name")?,
                link: r.try_get("link")?,
                published: ts(Some(r.try_get("sort_date")?)).unwrap_or_default(),
                reason: r
                    .try_get::<Option<String>, _>("merge_reason")?
                    .unwrap_or_else(|| "first".into()),
                score: r.try_get("merge_score")?,
            };
            let tags = tag_list(r)?;
            match by_story.get_mut(&story_id) {
                Some(story) => {
                    story.sources.push(source);
                    story.tags.extend(tags);
                }
                None => {
                    let mut story = story_of(r, story_id)?;
                    story.sources.push(source);
                    story.tags = tags;
                    by_story.insert(story_id, story);
                }
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| by_story.remove(id))
            .map(|mut s| {
                s.tags.sort();
                s.tags.dedup();
                // The first source is the primary. The item that started the
                // story may not be: say how it relates to the others.
                let links = links.remove(&s.id).unwrap_or_default();
                // When the primary joined the story as a near duplicate, its
                // score is its similarity to the item that started the story.
                let primary_score = s.sources.first().and_then(|p| p.score);
                for (i, src) in s.sources.iter_mut().enumerate() {
                    if i == 0 {
                        src.reason = "primary".into();
                        src.score = None;
                    } else if src.reason == "first" {
                        let shared = links[i].is_some()
                            && links
                                .iter()
                                .enumerate()
                                .any(|(j, l)| j != i && *l == links[i]);
                        src.reason = if shared {
                            "same link"
                        } else {
                            src.score = primary_score;
                            "near duplicate"
                        }
                        .into();
                    }
                }
                s
            })
            .collect())
    }
}

/// A write transaction and the process-wide write lock it holds.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// One document's items waiting for the next group commit.
#[derive(Debug)]
struct SaveJob {
    feed_id: i64,
    items: Vec<Prepared>,
    document_keys: Vec<String>,
    now: i64,
    policy: Policy,
    reply: tokio::sync::oneshot::Sender<Result<SaveCounts, StoreError>>,
}

impl SaveJob {
    /// The earliest date a near duplicate of one of its items may have.
    fn horizon(&self) -> i64 {
        self.items
            .iter()
            .map(|p| item_date(&p.item, self.now))
            .min()
            .unwrap_or(self.now)
            - self.policy.window_secs
    }
}

/// An item's date for filing: published, else updated, else first seen.
fn item_date(item: &Item, now: i64) -> i64 {
    item.published
        .or(item.updated)
        .map_or(now, |d| d.timestamp())
}

/// Saves one document under a savepoint: released when it succeeds, rolled
/// back (leaving the batch's other documents alone) when it fails. The
/// savepoint is opened by the document's first statement and released by
/// its last, so the usual save is two round trips to the connection's
/// thread: one read, one write. The outer error means the savepoint could
/// not be rolled back: the whole transaction is lost.
async fn save_in_savepoint(
    tx: &mut Transaction<'static, Sqlite>,
    job: &SaveJob,
    near: &mut NearIndex,
) -> Result<Result<SaveCounts, StoreError>, sqlx::Error> {
    match save_document(tx, job, near).await {
        Ok(counts) => Ok(Ok(counts)),
        Err(e) => {
            sqlx::query("ROLLBACK TO doc; RELEASE doc")
                .execute(&mut **tx)
                .await?;
            Ok(Err(e))
        }
    }
}

/// What the store holds that bears on one incoming document, read in one
/// statement.
struct Known {
    /// Keys of the document this feed stores, or stored before the retention
    /// pruned them (they are not stored again).
    existing: std::collections::HashSet<String>,
    /// Stored items by canonical link, for every link of the document.
    links: HashMap<String, Vec<LinkRow>>,
    /// The stored near-duplicate candidates (from the band index) that have
    /// no item of this feed yet, by story id.
    candidates: HashMap<i64, Candidate>,
    next_story: i64,
    next_item: i64,
}

/// Opens the document's savepoint and reads what it needs to know: one
/// statement, however many items.
async fn read_known(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    items: &[Prepared],
    candidates: &[i64],
) -> Result<Known, StoreError> {
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
    let row: (String, String, String, i64, i64) = sqlx::query_as(
        "SAVEPOINT doc;
         SELECT
           (SELECT json_group_array(item_key) FROM (
              SELECT item_key FROM items WHERE feed_id = ?1
                AND item_key IN (SELECT value FROM json_each(?2))
              UNION ALL
              SELECT item_key FROM pruned_items WHERE feed_id = ?1
                AND item_key IN (SELECT value FROM json_each(?2)))),
           (SELECT json_group_array(json_array(id, canonical_link, feed_id, story_id)) FROM items
              WHERE canonical_link IN (SELECT value FROM json_each(?3))),
           (SELECT json_group_array(json_array(s.id, hex(s.signature), s.sort_date))
              FROM stories s
              WHERE s.id IN (SELECT value FROM json_each(?4))
                AND s.signature IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM items i WHERE i.story_id = s.id AND i.feed_id = ?1)),
           COALESCE((SELECT max(id) FROM stories), 0) + 1,
           COALESCE((SELECT max(id) FROM items), 0) + 1",
    )
    .bind(feed_id)
    .bind(keys)
    .bind(json(&links))
    .bind(json(&candidates))
    .fetch_one(&mut **tx)
    .await?;
    let (existing, links, candidates, next_story, next_item) = row;
    let bad = |what: &str, e: serde_json::Error| {
        StoreError::Query(sqlx::Error::Protocol(format!("reading {what}: {e}")))
    };
    let existing = serde_json::from_str(&existing).map_err(|e| bad("stored keys", e))?;
    let mut link_rows: Vec<(i64, String, i64, Option<i64>)> =
        serde_json::from_str(&links).map_err(|e| bad("stored links", e))?;
    // Oldest first: the first story a link was filed under wins.
    link_rows.sort_unstable_by_key(|r| r.0);
    let mut links: HashMap<String, Vec<LinkRow>> = HashMap::new();
    for (_, link, feed_id, story_id) in link_rows {
        links
            .entry(link)
            .or_default()
            .push(LinkRow { feed_id, story_id });
    }
    let candidate_rows: Vec<(i64, String, i64)> =
        serde_json::from_str(&candidates).map_err(|e| bad("near-duplicate candidates", e))?;
    let candidates = candidate_rows
        .into_iter()
        .map(|(id, sig, sort_date)| {
            let signature = dedup::signature_from_bytes(&unhex(&sig));
            (
                id,
                Candidate {
                    signature,
                    sort_date,
                },
            )
        })
        .collect();
    Ok(Known {
        existing,
        links,
        candidates,
        next_story,
        next_item,
    })
}

/// Bytes of an upper-case hex string (SQLite's `hex()`).
fn unhex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks_exact(2)
        .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// Inserts a document's new items and rewrites its changed ones, within the
/// savepoint `doc` (opened by [`read_known`], released at the end).
async fn save_document(
    tx: &mut Transaction<'_, Sqlite>,
    job: &SaveJob,
    near: &mut NearIndex,
) -> Result<SaveCounts, StoreError> {
    let SaveJob {
        feed_id,
        items,
        document_keys,
        now,
        policy,
        ..
    } = job;
    let (feed_id, now) = (*feed_id, *now);
    let mut counts = SaveCounts::default();
    let item_bands: Vec<Vec<i64>> = items
        .iter()
        .map(|p| {
            p.item
                .signature
                .as_deref()
                .map(dedup::bands)
                .unwrap_or_default()
        })
        .collect();
    let item_candidates: Vec<Vec<i64>> = item_bands
        .iter()
        .map(|bands| {
            let mut out = Vec::new();
            near.bands.candidates(bands, &mut out);
            out
        })
        .collect();
    let mut all_candidates: Vec<i64> = item_candidates.iter().flatten().copied().collect();
    all_candidates.sort_unstable();
    all_candidates.dedup();
    let mut known = read_known(tx, feed_id, items, &all_candidates).await?;
    let mut listed: Vec<&str> = document_keys.iter().map(String::as_str).collect();
    listed.extend(items.iter().map(|p| p.item.key.as_str()));
    let document_keys = json(&listed);
    // The last copy of a key within one document wins, as it always did.
    let mut last_of: HashMap<&str, usize> = HashMap::new();
    for (i, p) in items.iter().enumerate() {
        last_of.insert(p.item.key.as_str(), i);
    }
    let mut fresh: Vec<Fresh> = Vec::new();
    for (i, prepared) in items.iter().enumerate() {
        let item = &prepared.item;
        if last_of.get(item.key.as_str()) != Some(&i) {
            continue;
        }
        if known.existing.contains(&item.key) {
            if update_item(tx, feed_id, prepared, now).await? {
                counts.updated += 1;
            }
            continue;
        }
        // The feed changed the item's guid (a CMS migration): same item, new key.
        let maybe_renamed = item.canonical_link.as_ref().is_some_and(|l| {
            known
                .links
                .get(l)
                .is_some_and(|rows| rows.iter().any(|r| r.feed_id == feed_id))
        });
        let renamed = if maybe_renamed {
            renamed_item(tx, feed_id, item, &document_keys, policy).await?
        } else {
            None
        };
        if let Some(old) = renamed {
            sqlx::query("UPDATE items SET item_key = ?2 WHERE id = ?1")
                .bind(old)
                .bind(&item.key)
                .execute(&mut **tx)
                .await?;
            if update_item(tx, feed_id, prepared, now).await? {
                counts.updated += 1;
            }
            continue;
        }
        fresh.push(Fresh {
            prepared,
            bands: &item_bands[i],
            candidates: &item_candidates[i],
        });
    }
    counts.new = fresh.len();
    insert_new(tx, feed_id, &fresh, &mut known, now, policy, near).await?;
    Ok(counts)
}

/// An item of the same feed with a different key but the same canonical link
/// and the same (or a near-identical) text: the feed changed the item's guid.
async fn renamed_item(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    item: &Item,
    document_keys: &str,
    policy: &Policy,
) -> Result<Option<i64>, StoreError> {
    let Some(link) = &item.canonical_link else {
        return Ok(None);
    };
    // An item whose key the document still carries was not renamed: it is
    // another item that happens to share the link.
    let rows: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT i.id, i.title, s.signature FROM items i LEFT JOIN stories s ON s.id = i.story_id
         WHERE i.feed_id = ?1 AND i.canonical_link = ?2 AND i.item_key <> ?3
           AND i.item_key NOT IN (SELECT value FROM json_each(?4))",
    )
    .bind(feed_id)
    .bind(link)
    .bind(&item.key)
    .bind(document_keys)
    .fetch_all(&mut **tx)
    .await?;
    // Many feeds link every item to one page: only the same text means the same item.
    Ok(rows.into_iter().find_map(|(id, title, sig)| {
        let same_text = title == item.title
            || matches!((&item.signature, sig), (Some(a), Some(b))
                if dedup::similarity(a, &dedup::signature_from_bytes(&b)) >= policy.threshold);
        same_text.then_some(id)
    }))
}

/// Rewrites the stored item with `item`'s key when its raw hash changed;
/// whether it did. The first-seen time stays; its story is marked updated.
async fn update_item(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    prepared: &Prepared,
    now: i64,
) -> Result<bool, StoreError> {
    let item = &prepared.item;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE items SET raw_hash = ?3, guid = ?4, link = ?5, title = ?6, summary_html = ?7,
           content_html = ?8, excerpt = ?9, authors = ?10, categories = ?11, enclosures = ?12,
           published = ?13, updated = ?14, sort_date = COALESCE(?13, ?14, first_seen),
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
    .bind(item.published.map(|d| d.timestamp()))
    .bind(item.updated.map(|d| d.timestamp()))
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
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM item_tags WHERE item_id = ?1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    write_tags(tx, id, &item.tags).await?;
    Ok(true)
}

/// A stored item sharing a canonical link with an incoming one.
struct LinkRow {
    feed_id: i64,
    story_id: Option<i64>,
}

/// An item new to the store, with its LSH bands and the stories that share one.
struct Fresh<'a> {
    prepared: &'a Prepared,
    bands: &'a [i64],
    candidates: &'a [i64],
}

/// A stored story that may be a near duplicate (it shares an LSH band).
struct Candidate {
    signature: dedup::Signature,
    sort_date: i64,
}

/// Inserts new items, filing each into a story: the story of an item of
/// another feed with the same canonical link, else the most similar story
/// from other feeds within the window (found through the LSH bands), else a
/// new story. Filing is decided in memory against what `known` says the
/// store held; the stories, items and tags then go in as one
/// multi-statement write, which also releases the savepoint `doc`. Once it
/// is written, the new stories join the band index.
async fn insert_new(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    items: &[Fresh<'_>],
    known: &mut Known,
    now: i64,
    policy: &Policy,
    near: &mut NearIndex,
) -> Result<(), StoreError> {
    let date_of = |item: &Item| item_date(item, now);
    let (links, candidates) = (&mut known.links, &mut known.candidates);
    let mut next_story = known.next_story;
    let mut next_item = known.next_item;

    struct Filed {
        story_id: i64,
        reason: MergeReason,
    }
    let mut filed: Vec<Filed> = Vec::with_capacity(items.len());
    let mut new_stories: Vec<(i64, Option<Vec<u8>>, i64)> = Vec::new();
    let mut new_bands: Vec<(i64, &[i64])> = Vec::new();
    let mut merged: HashMap<i64, i64> = HashMap::new();
    for fresh in items {
        let item = &fresh.prepared.item;
        let date = date_of(item);
        let mut found: Option<(i64, MergeReason)> = item
            .canonical_link
            .as_ref()
            .and_then(|l| links.get(l))
            .and_then(|rows| {
                rows.iter()
                    .find(|r| r.feed_id != feed_id && r.story_id.is_some())
                    .and_then(|r| r.story_id)
            })
            .map(|s| (s, MergeReason::SameLink));
        if found.is_none() {
            let sig = item.signature.as_deref().unwrap_or_default();
            found = fresh
                .candidates
                .iter()
                .filter_map(|id| Some((*id, candidates.get(id)?)))
                .filter(|(_, c)| {
                    (date - policy.window_secs..=date + policy.window_secs).contains(&c.sort_date)
                })
                .map(|(id, c)| (id, dedup::similarity(sig, &c.signature)))
                .filter(|(_, score)| *score >= policy.threshold)
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(id, score)| (id, MergeReason::NearDuplicate(score)));
        }
        let story_id = match &found {
            Some((story_id, _)) => {
                let d = merged.entry(*story_id).or_insert(date);
                *d = (*d).min(date);
                // The story now has an item of this feed: no later item of
                // the same document may join it as a near duplicate.
                candidates.remove(story_id);
                *story_id
            }
            None => {
                let story_id = next_story;
                next_story += 1;
                new_stories.push((
                    story_id,
                    item.signature.as_deref().map(dedup::signature_to_bytes),
                    date,
                ));
                // A story already older than the index's horizon stays out.
                if date >= near.horizon && !fresh.bands.is_empty() {
                    new_bands.push((story_id, fresh.bands));
                }
                story_id
            }
        };
        if let Some(l) = &item.canonical_link {
            links.entry(l.clone()).or_default().push(LinkRow {
                feed_id,
                story_id: Some(story_id),
            });
        }
        filed.push(Filed {
            story_id,
            reason: found.map_or(MergeReason::First, |(_, r)| r),
        });
    }

    let mut q = QueryBuilder::<Sqlite>::new("");
    for chunk in new_stories.chunks(2000) {
        q.push("INSERT INTO stories (id, signature, sort_date, created_at) ");
        q.push_values(chunk, |mut b, (id, sig, date)| {
            b.push_bind(*id)
                .push_bind(sig.clone())
                .push_bind(*date)
                .push_bind(now);
        });
        q.push(";\n");
    }
    if !merged.is_empty() {
        let merged: Vec<(i64, i64)> = merged.into_iter().collect();
        q.push("UPDATE stories SET sort_date = min(sort_date, j.d), updated_at = ");
        q.push_bind(now);
        q.push(
            " FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS d
                   FROM json_each(",
        );
        q.push_bind(json(&merged));
        q.push(")) AS j WHERE stories.id = j.id;\n");
    }
    let mut tags: Vec<(i64, &str)> = Vec::new();
    // 22 values per item: 1,000 items stay under SQLite's 32,766 variables.
    for chunk in items.iter().zip(&filed).collect::<Vec<_>>().chunks(1000) {
        q.push(
            "INSERT INTO items (id, feed_id, item_key, raw_hash, guid, link, title, summary_html,
               content_html, excerpt, authors, categories, enclosures, published, updated,
               first_seen, sort_date, canonical_link, excluded, story_id, merge_reason, merge_score) ",
        );
        q.push_values(chunk, |mut b, (fresh, f)| {
            let prepared = fresh.prepared;
            let item = &prepared.item;
            let id = next_item;
            next_item += 1;
            tags.extend(item.tags.iter().map(|t| (id, t.as_str())));
            let published = item.published.map(|d| d.timestamp());
            let updated = item.updated.map(|d| d.timestamp());
            b.push_bind(id)
                .push_bind(feed_id)
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
                .push_bind(published)
                .push_bind(updated)
                .push_bind(now)
                .push_bind(published.or(updated).unwrap_or(now))
                .push_bind(&item.canonical_link)
                .push_bind(item.excluded)
                .push_bind(f.story_id)
                .push_bind(f.reason.kind())
                .push_bind(f.reason.score());
        });
        q.push(";\n");
    }
    for chunk in tags.chunks(10_000) {
        q.push("INSERT OR IGNORE INTO item_tags (item_id, tag) ");
        q.push_values(chunk, |mut b, (id, tag)| {
            b.push_bind(*id).push_bind(*tag);
        });
        q.push(";\n");
    }
    q.push("RELEASE doc");
    // The statement's shape changes with every document: not worth caching.
    q.build().persistent(false).execute(&mut **tx).await?;
    for (story_id, bands) in new_bands {
        near.bands.insert(story_id, bands);
    }
    near.seen_up_to = near.seen_up_to.max(next_story - 1);
    Ok(())
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

fn ts(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(|s| DateTime::from_timestamp(s, 0))
}

fn feed_row(r: &sqlx::sqlite::SqliteRow) -> Result<FeedRow, StoreError> {
    Ok(FeedRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        state: FetchState {
            etag: r.try_get("etag")?,
            last_modified: r.try_get("last_modified")?,
            permanent_url: r.try_get("permanent_url")?,
            status: r.try_get("status")?,
            last_error: r.try_get("last_error")?,
            error_count: r.try_get::<i64, _>("error_count")?.max(0) as u32,
            last_fetch_at: r.try_get("last_fetch_at")?,
            last_success_at: r.try_get("last_success_at")?,
            next_fetch_at: r.try_get("next_fetch_at")?,
            title: r.try_get("title")?,
            site_link: r.try_get("site_link")?,
            ttl_seconds: r.try_get("ttl_seconds")?,
        },
    })
}

fn tag_list(r: &sqlx::sqlite::SqliteRow) -> Result<Vec<String>, StoreError> {
    let tags: Option<String> = r.try_get("tag_list")?;
    Ok(tags
        .map(|t| t.split('\u{1f}').map(str::to_string).collect())
        .unwrap_or_default())
}

/// A story from its primary item's row (sources and tags are added by the caller).
fn story_of(r: &sqlx::sqlite::SqliteRow, story_id: i64) -> Result<Story, StoreError> {
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let s: String = r.try_get(col)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let enclosures: String = r.try_get("enclosures")?;
    Ok(Story {
        id: story_id,
        title: r.try_get("title")?,
        link: r.try_get("link")?,
        sources: Vec::new(),
        tags: Vec::new(),
        published: ts(Some(r.try_get("story_date")?)).unwrap_or_default(),
        updated: ts(r.try_get("updated")?),
        created_at: ts(Some(r.try_get("story_created")?)).unwrap_or_default(),
        changed_at: ts(r.try_get("story_updated")?),
        guid: r.try_get("guid")?,
        authors: list("authors")?,
        categories: list("categories")?,
        enclosures: serde_json::from_str::<Vec<Enclosure>>(&enclosures).unwrap_or_default(),
        excerpt: r.try_get("excerpt")?,
        summary_html: html_column(r, "summary_html")?,
        content_html: html_column(r, "content_html")?,
    })
}

fn period_row(r: &sqlx::sqlite::SqliteRow) -> Result<DigestPeriod, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(DigestPeriod {
        id: r.try_get("id")?,
        start: ts(Some(r.try_get("start_at")?)).unwrap_or_default(),
        cutoff: ts(Some(r.try_get("cutoff_at")?)).unwrap_or_default(),
        stories: r.try_get("stories")?,
        status: PeriodStatus::parse(&status).unwrap_or(PeriodStatus::Open),
    })
}
