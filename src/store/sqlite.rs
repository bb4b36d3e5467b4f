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
use sqlx::{Row, Sqlite, Transaction};
use std::sync::Arc;

use super::{SaveCounts, StoreError};
use crate::config::FeedConfig;
use crate::model::{Enclosure, FeedRow, FetchState, Item, ItemQuery, StoredItem};

/// Schema migrations, applied in order; the file's `user_version` records the last one applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_init.sql")];

/// A store in an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Writers of this process queue here
    /// instead of contending for the file lock (whose busy handler sleeps).
    write_lock: Arc<tokio::sync::Mutex<()>>,
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
            // Fewer, larger checkpoints: each one syncs the file (a 32 MB WAL at most).
            .pragma("wal_autocheckpoint", "8192");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        let store = SqliteStore {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        store.migrate().await.map_err(|e| match e {
            StoreError::Query(source) => open_err(source),
            other => other,
        })?;
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
        self.pool.close().await;
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
                "INSERT INTO feeds (name, url) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET url = excluded.url,
                   etag = NULL, last_modified = NULL, permanent_url = NULL,
                   error_count = 0, next_fetch_at = NULL, status = 'new'
                 WHERE feeds.url <> excluded.url",
            )
            .bind(&f.name)
            .bind(f.source.as_url_string())
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

    pub(super) async fn save_items(
        &self,
        feed_id: i64,
        items: &[Item],
        now: i64,
    ) -> Result<SaveCounts, StoreError> {
        let mut counts = SaveCounts::default();
        if items.is_empty() {
            return Ok(counts);
        }
        let mut w = self.begin_write().await?;
        let tx = &mut w.tx;
        // New items (the common case) cost one INSERT and one tag statement.
        for item in items {
            if insert_item(tx, feed_id, item, now).await? {
                counts.new += 1;
            } else if update_item(tx, feed_id, item).await? {
                counts.updated += 1;
            }
        }
        w.tx.commit().await?;
        Ok(counts)
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

    pub(super) async fn list_items(&self, q: &ItemQuery) -> Result<Vec<StoredItem>, StoreError> {
        let mut sql = String::from(
            "SELECT i.*, f.name AS feed_name,
               (SELECT group_concat(tag, char(31)) FROM
                  (SELECT tag FROM item_tags t WHERE t.item_id = i.id ORDER BY tag)) AS tag_list
             FROM items i JOIN feeds f ON f.id = i.feed_id WHERE 1 = 1",
        );
        if q.tag.is_some() {
            sql.push_str(" AND i.id IN (SELECT item_id FROM item_tags WHERE tag = ?1)");
        }
        if q.since.is_some() {
            sql.push_str(" AND i.sort_date >= ?2");
        }
        sql.push_str(" ORDER BY i.sort_date DESC, i.id DESC LIMIT ?3");
        let limit = q.limit.map_or(-1, |l| l as i64);
        let rows = sqlx::query(&sql)
            .bind(&q.tag)
            .bind(q.since.map(|d| d.timestamp()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_item).collect()
    }
}

/// A write transaction and the process-wide write lock it holds.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// Inserts `item` unless its key is stored already; whether it did.
async fn insert_item(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    item: &Item,
    now: i64,
) -> Result<bool, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO items (feed_id, item_key, raw_hash, guid, link, title, summary_html,
           content_html, excerpt, authors, categories, enclosures, published, updated,
           first_seen, sort_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
           COALESCE(?13, ?14, ?15))
         ON CONFLICT (feed_id, item_key) DO NOTHING
         RETURNING id",
    )
    .bind(feed_id)
    .bind(&item.key)
    .bind(item.raw_hash)
    .bind(&item.guid)
    .bind(&item.link)
    .bind(&item.title)
    .bind(&item.summary_html)
    .bind(&item.content_html)
    .bind(&item.excerpt)
    .bind(json(&item.authors))
    .bind(json(&item.categories))
    .bind(json(&item.enclosures))
    .bind(item.published.map(|d| d.timestamp()))
    .bind(item.updated.map(|d| d.timestamp()))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    match id {
        Some(id) => {
            write_tags(tx, id, &item.tags).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Rewrites the stored item with `item`'s key when its raw hash changed;
/// whether it did. The first-seen time stays.
async fn update_item(
    tx: &mut Transaction<'_, Sqlite>,
    feed_id: i64,
    item: &Item,
) -> Result<bool, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE items SET raw_hash = ?3, guid = ?4, link = ?5, title = ?6, summary_html = ?7,
           content_html = ?8, excerpt = ?9, authors = ?10, categories = ?11, enclosures = ?12,
           published = ?13, updated = ?14, sort_date = COALESCE(?13, ?14, first_seen)
         WHERE feed_id = ?1 AND item_key = ?2 AND raw_hash <> ?3
         RETURNING id",
    )
    .bind(feed_id)
    .bind(&item.key)
    .bind(item.raw_hash)
    .bind(&item.guid)
    .bind(&item.link)
    .bind(&item.title)
    .bind(&item.summary_html)
    .bind(&item.content_html)
    .bind(&item.excerpt)
    .bind(json(&item.authors))
    .bind(json(&item.categories))
    .bind(json(&item.enclosures))
    .bind(item.published.map(|d| d.timestamp()))
    .bind(item.updated.map(|d| d.timestamp()))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM item_tags WHERE item_id = ?1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    write_tags(tx, id, &item.tags).await?;
    Ok(true)
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

fn stored_item(r: &sqlx::sqlite::SqliteRow) -> Result<StoredItem, StoreError> {
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        let s: String = r.try_get(col)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let enclosures: String = r.try_get("enclosures")?;
    let tags: Option<String> = r.try_get("tag_list")?;
    Ok(StoredItem {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        link: r.try_get("link")?,
        sources: vec![r.try_get("feed_name")?],
        tags: tags
            .map(|t| t.split('\u{1f}').map(str::to_string).collect())
            .unwrap_or_default(),
        published: ts(Some(r.try_get("sort_date")?)).unwrap_or_default(),
        updated: ts(r.try_get("updated")?),
        guid: r.try_get("guid")?,
        authors: list("authors")?,
        categories: list("categories")?,
        enclosures: serde_json::from_str::<Vec<Enclosure>>(&enclosures).unwrap_or_default(),
        excerpt: r.try_get("excerpt")?,
        summary_html: r.try_get("summary_html")?,
        content_html: r.try_get("content_html")?,
    })
}
