//! PostgreSQL backend: one database shared by several gazette instances.
//! Schema migrations are embedded from `migrations/postgres/` and applied on
//! start under sqlx's migration lock, so instances starting together on an
//! empty database do not race.
//!
//! What makes several instances safe:
//! - filing takes a transaction-level advisory lock ([`FILING_LOCK`]): two
//!   instances storing the same story at the same moment file one after the
//!   other, and the second finds the first's story (each process's
//!   near-duplicate index first reads the stories filed since it last
//!   looked; ids are given out under the lock, so they grow in commit order);
//! - feeds are leased row by row (`FOR UPDATE SKIP LOCKED`, with an expiry);
//! - the digest sender holds a session-level advisory lock
//!   ([`SENDER_LOCK`]), which the server drops when the session ends (a
//!   crash too), and each delivery is claimed by a compare-and-set.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder, Row, Transaction};

use super::gather::{Gathering, Plan, Rows};
use super::{
    Backend, DeliveryOutcome, Document, HttpValidator, ISSUES_SQL, Kind, Leases, NEAR_MAX_POSTINGS,
    Prepared, STORED_ITEM_COLUMNS, SaveCounts, SenderLock, StoreError, StoredItem, Table,
    UNSUBSCRIBE_KEY, Value, bind_value, delivery_row, feed_row, issue_row, known_from_json,
    period_row, row_values, story_from_items, suppression_row,
};
use crate::config::FeedConfig;
use crate::dedup::{self, NearIndex};
use crate::filing::{self, Known};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, FeedRow, FetchState, Issue, ItemQuery, NewPeriod,
    PeriodStatus, Story, Suppression, TaggingInput,
};
use crate::tag::Tagging;

/// Advisory lock key held by every filing transaction ("gazette" + 1).
const FILING_LOCK: i64 = 0x6761_7a65_7474_6501;
/// Advisory lock key held by the digest sender's session ("gazette" + 2).
const SENDER_LOCK: i64 = 0x6761_7a65_7474_6502;

/// The schema migrations, embedded.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "digests",
        include_str!("../../migrations/postgres/0002_digests.sql"),
    ),
    (
        3,
        "story_changes",
        include_str!("../../migrations/postgres/0003_story_changes.sql"),
    ),
];

/// [`MIGRATIONS`] as sqlx wants them.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        (*name).into(),
                        MigrationType::Simple,
                        (*sql).into(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A store in a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// For the digest sender's own session.
    options: PgConnectOptions,
    /// The near-duplicate index (see [`crate::dedup::NearIndex`]), held
    /// across this process's filings; taken by one filing at a time.
    near: Arc<tokio::sync::Mutex<Option<NearIndex>>>,
}

/// `host:port/database` of a connection, for messages.
fn describe(o: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}, database {}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("(the user's)")
    )
}

fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn opt_at(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(|s| DateTime::from_timestamp(s, 0))
}

fn at(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(v, 0).unwrap_or_default()
}

impl PgStore {
    /// Connects (an unreachable or refusing server is one error naming
    /// host, port and database) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            target: "the PostgreSQL URL".into(),
            source,
        })?;
        let target = describe(&options);
        let open_err = |source| StoreError::Open {
            target: target.clone(),
            source,
        };
        // One attempt first: a server that is not there is an error at once,
        // not after the pool's retries.
        let first = PgConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.clone());
        let migrator = Migrator::new(Embedded).await.map_err(StoreError::Migrate)?;
        migrator.run(&pool).await?;
        Ok(PgStore {
            pool,
            options,
            near: Arc::default(),
        })
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The `meta` key of the fingerprint of the tag rules the stored tags follow.
const TAG_RULES_KEY: &str = "tag_rules";

#[async_trait]
impl Backend for PgStore {
    async fn sync_feeds(&self, feeds: &[FeedConfig]) -> Result<Vec<FeedRow>, StoreError> {
        let names: Vec<&str> = feeds.iter().map(|f| f.name.as_str()).collect();
        let urls: Vec<String> = feeds.iter().map(|f| f.source.as_url_string()).collect();
        let priorities: Vec<i64> = feeds.iter().map(|f| f.priority).collect();
        // A changed URL starts the fetch state afresh: validators of the old URL mean nothing.
        let mut by_name: HashMap<String, FeedRow> = HashMap::new();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO feeds (name, url, priority)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) ORDER BY 1
             ON CONFLICT (name) DO UPDATE SET priority = excluded.priority,
               url = excluded.url,
               etag = CASE WHEN feeds.url = excluded.url THEN feeds.etag END,
               last_modified = CASE WHEN feeds.url = excluded.url THEN feeds.last_modified END,
               permanent_url = CASE WHEN feeds.url = excluded.url THEN feeds.permanent_url END,
               error_count = CASE WHEN feeds.url = excluded.url THEN feeds.error_count ELSE 0 END,
               next_fetch_at = CASE WHEN feeds.url = excluded.url THEN feeds.next_fetch_at END,
               last_fetch_at = CASE WHEN feeds.url = excluded.url THEN feeds.last_fetch_at END,
               due_at = CASE WHEN feeds.url = excluded.url THEN feeds.due_at END,
               status = CASE WHEN feeds.url = excluded.url THEN feeds.status ELSE 'new' END
             WHERE feeds.url <> excluded.url OR feeds.priority <> excluded.priority",
        )
        .bind(&names)
        .bind(&urls)
        .bind(&priorities)
        .execute(&mut *tx)
        .await?;
        for r in sqlx::query("SELECT * FROM feeds WHERE name = ANY($1)")
            .bind(&names)
            .fetch_all(&mut *tx)
            .await?
        {
            let f = feed_row(&r)?;
            by_name.insert(f.name.clone(), f);
        }
        tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
        for (feed_id, st) in states {
            sqlx::query(
                "UPDATE feeds SET etag = $2, last_modified = $3, permanent_url = $4, status = $5,
                   last_error = $6, error_count = $7, last_fetch_at = $8, last_success_at = $9,
                   next_fetch_at = $10, title = $11, site_link = $12, ttl_seconds = $13,
                   due_at = $14,
                   lease_owner = CASE WHEN $15::text IS NULL THEN lease_owner END,
                   lease_until = CASE WHEN $15::text IS NULL THEN lease_until END
                 WHERE id = $1 AND ($15::text IS NULL OR lease_owner IS NULL OR lease_owner = $15)",
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
        // Rows another instance is leasing right now are skipped, not waited for.
        let free: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, lease_owner FROM feeds WHERE id = ANY($1)
               AND (lease_until IS NULL OR lease_until < $2) AND (due_at IS NULL OR due_at <= $2)
             ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(ids)
        .bind(secs(now))
        .fetch_all(&mut *tx)
        .await?;
        let leased: Vec<i64> = free.iter().map(|(id, _)| *id).collect();
        let rows = sqlx::query(
            "UPDATE feeds SET lease_owner = $2, lease_until = $3 WHERE id = ANY($1) RETURNING *",
        )
        .bind(&leased)
        .bind(owner)
        .bind(secs(until))
        .fetch_all(&mut *tx)
        .await?;
        let others = sqlx::query("SELECT * FROM feeds WHERE id = ANY($1) AND NOT id = ANY($2)")
            .bind(ids)
            .bind(&leased)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out = Leases {
            taken_over: free
                .iter()
                .filter(|(_, prev)| prev.as_deref().is_some_and(|p| p != owner))
                .count(),
            ..Leases::default()
        };
        for r in &rows {
            out.leased.push(feed_row(r)?);
        }
        for r in &others {
            let until: Option<i64> = r.try_get("lease_until")?;
            out.elsewhere.push((feed_row(r)?, opt_at(until)));
        }
        Ok(out)
    }

    async fn renew_leases(&self, owner: &str, until: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("UPDATE feeds SET lease_until = $2 WHERE lease_owner = $1")
                .bind(owner)
                .bind(secs(until))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn known_hashes(&self, feed_id: i64) -> Result<HashMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT item_key, raw_hash FROM items WHERE feed_id = $1")
                .bind(feed_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// One transaction per document, under the filing lock that every
    /// instance's filings share.
    async fn file_document(&self, doc: Document) -> Result<SaveCounts, StoreError> {
        if doc.items.is_empty() {
            return Ok(SaveCounts::default());
        }
        let mut held = self.near.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FILING_LOCK)
            .execute(&mut *tx)
            .await?;
        // A failed filing drops the index: it is read again next time.
        let mut near = catch_up(held.take(), &mut tx).await?;
        let counts = save_document(&mut tx, &doc, &mut near).await?;
        if counts.new + counts.updated > 0 {
            bump_content_version(&mut tx).await?;
        }
        tx.commit().await?;
        near.trim(NEAR_MAX_POSTINGS);
        *held = Some(near);
        Ok(counts)
    }

    async fn items_for_tagging(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<TaggingInput>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, f.name, i.title, i.summary_html, i.content_html, i.categories
             FROM items i JOIN feeds f ON f.id = i.feed_id
             WHERE i.id > $1 ORDER BY i.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let cats: String = r.try_get(5)?;
                let html = |i: usize| -> Result<Option<String>, StoreError> {
                    r.try_get::<Option<Vec<u8>>, _>(i)?
                        .map(super::decode_html)
                        .transpose()
                };
                Ok(TaggingInput {
                    item_id: r.try_get(0)?,
                    feed: r.try_get(1)?,
                    title: r.try_get(2)?,
                    summary_html: html(3)?,
                    content_html: html(4)?,
                    categories: serde_json::from_str(&cats).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn set_tagging(&self, items: &[(i64, Tagging)]) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (id, t) in items {
            let old: (Vec<String>, i64) = sqlx::query_as(
                "SELECT COALESCE((SELECT array_agg(tag ORDER BY tag) FROM item_tags WHERE item_id = $1), '{}'),
                   (SELECT excluded FROM items WHERE id = $1)",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if old.0 == t.tags && (old.1 != 0) == t.excluded {
                continue;
            }
            changed += 1;
            sqlx::query("UPDATE items SET excluded = $2 WHERE id = $1")
                .bind(id)
                .bind(i64::from(t.excluded))
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM item_tags WHERE item_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            write_tags(&mut tx, *id, &t.tags).await?;
        }
        if changed > 0 {
            bump_content_version(&mut tx).await?;
        }
        tx.commit().await?;
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
        let (from, id) = if q.tag.is_some() {
            (
                "SELECT s.story_id AS id FROM story_tags s WHERE s.tag = $1",
                "s.story_id",
            )
        } else {
            ("SELECT s.id FROM stories s WHERE $1::text IS NULL", "s.id")
        };
        let mut sql = String::from(from);
        if !q.include_excluded {
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM items x WHERE x.story_id = {id} AND x.excluded = 1)"
            ));
        }
        sql.push_str(" AND ($2::bigint IS NULL OR s.sort_date >= $2)");
        sql.push_str(&format!(" ORDER BY s.sort_date DESC, {id} DESC LIMIT $3"));
        let ids: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(&q.tag)
            .bind(q.since.map(secs))
            .bind(q.limit.map(|l| l as i64))
            .fetch_all(&self.pool)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {STORED_ITEM_COLUMNS}, i.story_id,
               (SELECT string_agg(tag, chr(31) ORDER BY tag) FROM item_tags t
                  WHERE t.item_id = i.id) AS tag_list
             FROM items i JOIN feeds f ON f.id = i.feed_id JOIN stories s ON s.id = i.story_id
             WHERE i.story_id = ANY($1)
             ORDER BY i.story_id, i.id"
        ))
        .bind(&ids)
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
        Ok(sqlx::query_scalar(
            "SELECT id FROM stories WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
        )
        .bind(secs(from))
        .bind(secs(until))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_stories(
        &self,
        dated_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Filing must not join a story being deleted.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FILING_LOCK)
            .execute(&mut *tx)
            .await?;
        // The newest story id and item id are never deleted: they would be
        // handed out again.
        let doomed: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM stories WHERE sort_date < $1 AND created_at < $2
               AND id < (SELECT max(id) FROM stories)
               AND id IS DISTINCT FROM
                   (SELECT story_id FROM items WHERE id = (SELECT max(id) FROM items))",
        )
        .bind(secs(dated_before))
        .bind(secs(created_before))
        .fetch_all(&mut *tx)
        .await?;
        if doomed.is_empty() {
            return Ok(0);
        }
        // Their keys are remembered: a feed still carrying a pruned item
        // must not bring it back as a new story.
        sqlx::query(
            "INSERT INTO pruned_items (feed_id, item_key)
             SELECT feed_id, item_key FROM items WHERE story_id = ANY($1)
             ON CONFLICT DO NOTHING",
        )
        .bind(&doomed)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM items WHERE story_id = ANY($1)")
            .bind(&doomed)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM stories WHERE id = ANY($1)")
            .bind(&doomed)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump_content_version(&mut tx).await?;
        tx.commit().await?;
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
        // A session of its own: the lock lasts as long as it, and the server
        // drops both when the process dies.
        let mut conn = PgConnection::connect_with(&self.options).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SENDER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let _ = conn.close().await;
            return Err(StoreError::SenderBusy);
        }
        Ok(SenderLock::new(std::sync::Mutex::new(conn)))
    }

    async fn periods(
        &self,
        digest: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DigestPeriod>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, digest, start_at, cutoff_at, stories, status FROM digest_periods
             WHERE $1::text IS NULL OR digest = $1 ORDER BY cutoff_at DESC, id DESC LIMIT $2",
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
             WHERE status = 'open' AND ($1::text IS NULL OR digest = $1) ORDER BY cutoff_at, id",
        )
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(period_row).collect()
    }

    async fn record_period(&self, p: &NewPeriod) -> Result<(DigestPeriod, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let status = if p
            .deliveries
            .iter()
            .any(|d| d.state == DeliveryState::Queued)
        {
            PeriodStatus::Open
        } else {
            PeriodStatus::Skipped
        };
        // Another instance may record the same period at the same moment:
        // (digest, cutoff) is unique, and the loser reads the winner's.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO digest_periods (digest, start_at, cutoff_at, stories, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest, cutoff_at) DO NOTHING RETURNING id",
        )
        .bind(&p.digest)
        .bind(secs(p.start))
        .bind(secs(p.cutoff))
        .bind(p.stories)
        .bind(status.as_str())
        .bind(secs(p.now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            let r = sqlx::query(
                "SELECT id, digest, start_at, cutoff_at, stories, status FROM digest_periods
                 WHERE digest = $1 AND cutoff_at = $2",
            )
            .bind(&p.digest)
            .bind(secs(p.cutoff))
            .fetch_one(&mut *tx)
            .await?;
            return Ok((period_row(&r)?, false));
        };
        if !p.deliveries.is_empty() {
            let n = p.deliveries.len();
            let mut who = Vec::with_capacity(n);
            let mut ids = Vec::with_capacity(n);
            let mut states = Vec::with_capacity(n);
            let mut replies = Vec::with_capacity(n);
            let mut topics = Vec::with_capacity(n);
            for d in &p.deliveries {
                who.push(d.recipient.as_str());
                ids.push(d.message_id.as_str());
                states.push(d.state.as_str());
                replies.push(d.reply.as_deref());
                topics.push(d.topics.join(" "));
            }
            let positions: Vec<i64> = (0..n as i64).collect();
            sqlx::query(
                "INSERT INTO digest_deliveries (period_id, recipient, position, state, message_id, reply, topics, updated_at)
                 SELECT $1, r, p, s, m, y, t, $8
                 FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                   AS u(r, p, s, m, y, t)",
            )
            .bind(id)
            .bind(&who)
            .bind(&positions)
            .bind(&states)
            .bind(&ids)
            .bind(&replies)
            .bind(&topics)
            .bind(secs(p.now))
            .execute(&mut *tx)
            .await?;
        }
        if let Some(issue) = &p.issue {
            sqlx::query(
                "INSERT INTO digest_issues (period_id, digest, slug, subject, html, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(&p.digest)
            .bind(&issue.slug)
            .bind(&issue.subject)
            .bind(&issue.html)
            .bind(secs(p.now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
             FROM digest_deliveries WHERE period_id = $1 ORDER BY position",
        )
        .bind(period_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    async fn claim_delivery(
        &self,
        seen: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE digest_deliveries SET state = 'pending', attempts = attempts + 1, updated_at = $3
             WHERE period_id = $1 AND recipient = $2 AND state = $4 AND attempts = $5",
        )
        .bind(seen.period_id)
        .bind(&seen.recipient)
        .bind(secs(now))
        .bind(seen.state.as_str())
        .bind(seen.attempts)
        .execute(&self.pool)
        .await?;
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
        sqlx::query(
            "UPDATE digest_deliveries SET state = $3, reply = $4, permanent = $5, updated_at = $6
             WHERE period_id = $1 AND recipient = $2",
        )
        .bind(period_id)
        .bind(recipient)
        .bind(state.as_str())
        .bind(reply)
        .bind(i64::from(permanent))
        .bind(secs(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn close_digest_period(&self, period_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE digest_periods SET status = 'done' WHERE id = $1 AND status = 'open'")
            .bind(period_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn skip_delivery(
        &self,
        seen: &Delivery,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE digest_deliveries SET state = 'skipped', reply = $3, updated_at = $4
             WHERE period_id = $1 AND recipient = $2 AND state = $5 AND attempts = $6",
        )
        .bind(seen.period_id)
        .bind(&seen.recipient)
        .bind(reason)
        .bind(secs(now))
        .bind(seen.state.as_str())
        .bind(seen.attempts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppress(
        &self,
        digest: &str,
        recipient: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO digest_suppressions (digest, recipient, at, how) VALUES ($1, $2, $3, $4)
             ON CONFLICT (digest, recipient) DO NOTHING",
        )
        .bind(digest)
        .bind(recipient.to_lowercase())
        .bind(secs(now))
        .bind(how)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unsuppress(&self, digest: &str, recipient: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM digest_suppressions WHERE digest = $1 AND recipient = $2")
                .bind(digest)
                .bind(recipient.to_lowercase())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressions(&self, digest: Option<&str>) -> Result<Vec<Suppression>, StoreError> {
        let rows = sqlx::query(
            "SELECT digest, recipient, at, how FROM digest_suppressions
             WHERE $1::text IS NULL OR digest = $1 ORDER BY digest, recipient",
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
            .replace("{html}", if with_html { "i.html" } else { "NULL::text" })
            .replace("{digest}", "($1::text IS NULL OR i.digest = $1)")
            .replace("{limit}", "$2");
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
            .replace("{digest}", "i.digest = $1 AND i.slug = $2")
            .replace("{limit}", "1");
        let row = sqlx::query(&sql)
            .bind(digest)
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(issue_row).transpose()
    }

    async fn unsubscribe_key(&self, fresh: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(UNSUBSCRIBE_KEY)
            .bind(fresh)
            .execute(&self.pool)
            .await?;
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
        let mut q = QueryBuilder::<Postgres>::new(table.select_head());
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
        let mut tx = self.pool.begin().await?;
        // 22 values a row at most: well under PostgreSQL's 65,535 parameters.
        for chunk in rows.chunks(1000) {
            let mut q = QueryBuilder::<Postgres>::new(table.insert_head());
            q.push_values(chunk, |mut b, row| {
                for (v, (_, kind)) in row.iter().zip(table.columns) {
                    bind_value!(b, v, *kind);
                }
            });
            q.push(table.insert_tail());
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.near.lock().await.take();
        Ok(())
    }

    async fn finish_copy(&self) -> Result<(), StoreError> {
        // The serial ids continue after the copied ones.
        for table in ["feeds", "digest_periods"] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(max(id), 0) + 1, false) FROM {table}"
            ))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The index brought up to date within the filing transaction: a new one
/// starts empty, a held one is given the stories filed since (by any
/// instance: under the filing lock, ids grow in commit order).
async fn catch_up(
    held: Option<NearIndex>,
    tx: &mut Transaction<'static, Postgres>,
) -> Result<NearIndex, StoreError> {
    let Some(mut index) = held else {
        let mut index = NearIndex::default();
        index.seen_up_to = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM stories")
            .fetch_one(&mut **tx)
            .await?;
        return Ok(index);
    };
    let rows: Vec<(i64, i64, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, sort_date, signature FROM stories WHERE id > $1")
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

/// Gathers what filing needs for one document, files it and applies the
/// decisions (see the SQLite backend's twin and [`Gathering`]).
async fn save_document(
    tx: &mut Transaction<'static, Postgres>,
    doc: &Document,
    near: &mut NearIndex,
) -> Result<SaveCounts, StoreError> {
    let mut g = Gathering::new(doc);
    for (from, to) in g.missing_slabs(near) {
        let mut rows = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(
            "SELECT id, sort_date, signature FROM stories
             WHERE sort_date >= $1 AND sort_date < $2 AND signature IS NOT NULL",
        )
        .bind(from)
        .bind(to)
        .fetch(&mut **tx);
        let mut filler = near.filler(from, to);
        while let Some((id, date, sig)) = rows.try_next().await? {
            filler.add(id, date, &sig);
        }
    }
    let candidates = g.suggest(near);
    let (known, next_story, next_item) =
        read_known(tx, doc.feed_id, &doc.items, &candidates).await?;
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
        sqlx::query("UPDATE items SET item_key = $2 WHERE id = $1")
            .bind(item_id)
            .bind(&doc.items[i].item.key)
            .execute(&mut **tx)
            .await?;
        if update_item(tx, doc.feed_id, &doc.items[i], g.changed_at(i)).await? {
            counts.updated += 1;
        }
    }
    let rows = g.rows(&plan, next_story, next_item);
    insert_rows(tx, doc, &g, &rows).await?;
    g.index_written(near, &rows, &known);
    Ok(counts)
}

/// Gives the document's undated new stories and its change times seconds
/// no stored story holds (see [`filing::InstantSearch`]), reading the
/// stored ones back from the fetch time as far as needed.
async fn place_instants(
    tx: &mut Transaction<'static, Postgres>,
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
            "SELECT sort_date FROM stories WHERE sort_date BETWEEN $1 AND $2
             UNION SELECT sort_date FROM stories WHERE sort_date BETWEEN $3 AND $4
             UNION SELECT updated_at FROM stories WHERE updated_at BETWEEN $1 AND $2
             UNION SELECT updated_at FROM stories WHERE updated_at BETWEEN $3 AND $4",
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

/// What bears on the document, in one statement; and the next free ids.
async fn read_known(
    tx: &mut Transaction<'static, Postgres>,
    feed_id: i64,
    items: &[Prepared],
    candidates: &[i64],
) -> Result<(Known, i64, i64), StoreError> {
    let keys: Vec<&str> = items.iter().map(|p| p.item.key.as_str()).collect();
    let links: Vec<&str> = items
        .iter()
        .filter_map(|p| p.item.canonical_link.as_deref())
        .collect();
    let row: (String, String, String, String, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT COALESCE(json_agg(item_key), '[]')::text FROM items
              WHERE feed_id = $1 AND item_key = ANY($2)),
           (SELECT COALESCE(json_agg(item_key), '[]')::text FROM pruned_items
              WHERE feed_id = $1 AND item_key = ANY($2)),
           (SELECT COALESCE(json_agg(json_build_array(i.id, i.feed_id, i.item_key, i.canonical_link,
                 i.story_id, CASE WHEN i.feed_id = $1 THEN i.title END,
                 CASE WHEN i.feed_id = $1 THEN encode(s.signature, 'hex') END)), '[]')::text
              FROM items i LEFT JOIN stories s ON s.id = i.story_id
              WHERE i.canonical_link = ANY($3) AND i.story_id IS NOT NULL),
           (SELECT COALESCE(json_agg(json_build_array(s.id, encode(s.signature, 'hex'), s.sort_date,
                 (SELECT COALESCE(json_agg(DISTINCT feed_id), '[]'::json) FROM items
                    WHERE story_id = s.id))), '[]')::text
              FROM stories s WHERE s.id = ANY($4) AND s.signature IS NOT NULL),
           COALESCE((SELECT max(id) FROM stories), 0) + 1,
           COALESCE((SELECT max(id) FROM items), 0) + 1",
    )
    .bind(feed_id)
    .bind(&keys)
    .bind(&links)
    .bind(candidates)
    .fetch_one(&mut **tx)
    .await?;
    let (stored, pruned, linked, stories, next_story, next_item) = row;
    Ok((
        known_from_json(&stored, &pruned, &linked, &stories)?,
        next_story,
        next_item,
    ))
}

/// Rewrites the stored item with `prepared`'s key when its raw hash
/// changed; whether it did. The first-seen time stays, and so does the
/// placed date of an undated item; its story is marked changed at `changed_at`.
async fn update_item(
    tx: &mut Transaction<'static, Postgres>,
    feed_id: i64,
    prepared: &Prepared,
    changed_at: i64,
) -> Result<bool, StoreError> {
    let item = &prepared.item;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE items SET raw_hash = $3, guid = $4, link = $5, title = $6, summary_html = $7,
           content_html = $8, excerpt = $9, authors = $10, categories = $11, enclosures = $12,
           published = $13, updated = $14, sort_date = COALESCE($13, $14,
             CASE WHEN published IS NULL AND updated IS NULL THEN sort_date ELSE first_seen END),
           canonical_link = $15, excluded = $16
         WHERE feed_id = $1 AND item_key = $2 AND raw_hash <> $3
         RETURNING id",
    )
    .bind(feed_id)
    .bind(&item.key)
    .bind(item.raw_hash)
    .bind(&item.guid)
    .bind(&item.link)
    .bind(&item.title)
    .bind(prepared.summary_html.as_deref())
    .bind(prepared.content_html.as_deref())
    .bind(&item.excerpt)
    .bind(json(&item.authors))
    .bind(json(&item.categories))
    .bind(json(&item.enclosures))
    .bind(item.published.map(secs))
    .bind(item.updated.map(secs))
    .bind(&item.canonical_link)
    .bind(i64::from(item.excluded))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE stories SET updated_at = $2 WHERE id = (SELECT story_id FROM items WHERE id = $1)",
    )
    .bind(id)
    .bind(changed_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM item_tags WHERE item_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    write_tags(tx, id, &item.tags).await?;
    Ok(true)
}

/// Rows per insert statement (22 parameters an item: well under 65,535).
const ROWS_PER_STATEMENT: usize = 1000;

/// Writes the rows filing added.
async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    doc: &Document,
    g: &Gathering<'_>,
    rows: &Rows,
) -> Result<(), StoreError> {
    let now = secs(doc.now);
    for chunk in rows.stories.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO stories (id, signature, sort_date, created_at) ",
        );
        q.push_values(chunk, |mut b, (id, sig, date, _)| {
            b.push_bind(*id)
                .push_bind(sig.as_deref())
                .push_bind(*date)
                .push_bind(now);
        });
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    if !rows.merged.is_empty() {
        let ids: Vec<i64> = rows.merged.iter().map(|m| m.0).collect();
        let dates: Vec<i64> = rows.merged.iter().map(|m| m.1).collect();
        sqlx::query(
            "UPDATE stories SET sort_date = LEAST(sort_date, j.d),
               updated_at = CASE WHEN j.d < sort_date AND COALESCE(updated_at, 0) < sort_date
                 THEN sort_date ELSE updated_at END
             FROM UNNEST($1::bigint[], $2::bigint[]) AS j(id, d)
             WHERE stories.id = j.id",
        )
        .bind(&ids)
        .bind(&dates)
        .execute(&mut **tx)
        .await?;
    }
    for chunk in rows.items.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO items (id, feed_id, item_key, raw_hash, guid, link, title, summary_html,
               content_html, excerpt, authors, categories, enclosures, published, updated,
               first_seen, sort_date, canonical_link, excluded, story_id, merge_reason, merge_score) ",
        );
        q.push_values(chunk, |mut b, (at, id, story_id, reason)| {
            let prepared = &doc.items[*at];
            let item = &prepared.item;
            b.push_bind(*id)
                .push_bind(doc.feed_id)
                .push_bind(&item.key)
                .push_bind(item.raw_hash)
                .push_bind(&item.guid)
                .push_bind(&item.link)
                .push_bind(&item.title)
                .push_bind(prepared.summary_html.as_deref())
                .push_bind(prepared.content_html.as_deref())
                .push_bind(&item.excerpt)
                .push_bind(json(&item.authors))
                .push_bind(json(&item.categories))
                .push_bind(json(&item.enclosures))
                .push_bind(item.published.map(secs))
                .push_bind(item.updated.map(secs))
                .push_bind(now)
                .push_bind(g.dates[*at])
                .push_bind(&item.canonical_link)
                .push_bind(i64::from(item.excluded))
                .push_bind(*story_id)
                .push_bind(reason.kind())
                .push_bind(reason.score());
        });
        q.build().persistent(false).execute(&mut **tx).await?;
    }
    if !rows.tags.is_empty() {
        let (ids, tags): (Vec<i64>, Vec<&str>) =
            rows.tags.iter().map(|(i, t)| (*i, t.as_str())).unzip();
        sqlx::query(
            "INSERT INTO item_tags (item_id, tag) SELECT * FROM UNNEST($1::bigint[], $2::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&tags)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Marks a change of what is published.
async fn bump_content_version(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'content_version'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// All of an item's tags in one statement.
async fn write_tags(
    tx: &mut Transaction<'static, Postgres>,
    id: i64,
    tags: &[String],
) -> Result<(), StoreError> {
    if tags.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO item_tags (item_id, tag) SELECT $1, t FROM UNNEST($2::text[]) AS t
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(tags)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}
