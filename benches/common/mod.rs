//! Shared by the benches: random text in the seed's vocabulary, and a bulk
//! loader that fills a store with a given number of stories.

#![allow(dead_code)]

use std::path::Path;
use std::time::Instant;

use rand::Rng;

pub const WORDS: &[&str] = &[
    "council",
    "resolution",
    "china",
    "lawyer",
    "defender",
    "detained",
    "russia",
    "vote",
    "geneva",
    "session",
    "report",
    "expert",
    "release",
    "arbitrary",
    "detention",
    "torture",
    "committee",
    "review",
    "hong",
    "kong",
    "tibet",
    "xinjiang",
    "journalist",
    "protest",
    "sentenced",
    "court",
    "appeal",
    "freedom",
    "expression",
    "assembly",
    "association",
    "reprisals",
    "women",
    "rights",
    "human",
    "states",
    "special",
    "rapporteur",
    "visit",
    "statement",
    "urges",
    "calls",
    "families",
    "missing",
    "disappearance",
    "election",
    "law",
    "security",
    "national",
    "amendment",
    "sogie",
];

pub fn text(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fills the store with `n` stories (random signatures, dates over
/// the last 180 days) and one item each, in bulk SQL.
///
/// `recent`: `None` dates the stories uniformly over the last 180 days;
/// `Some(k)` dates `k` of them within the last 7 days (the dedup window's
/// worth of traffic) and the rest 15 to 365 days ago (the archive).
/// Story ids follow the dates, as in a store filled over time (an id is
/// given when a story is first seen), so a time range's stories lie
/// together in the table as they would.
pub async fn populate(db: &Path, n: i64, feed_id: i64, recent: Option<i64>) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let t = Instant::now();
    // Bulk load without the indexes, then build them sorted: far faster than 16M random inserts.
    for sql in [
        "PRAGMA cache_size = -262144",
        "DROP INDEX items_canonical_link",
        "DROP INDEX items_story",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let date = match recent {
        None => format!("{now} - abs(random()) % (180 * 86400)"),
        Some(k) => format!(
            "CASE WHEN x <= {k} THEN {now} - abs(random()) % (7 * 86400)
                  ELSE {now} - 15 * 86400 - abs(random()) % (350 * 86400) END"
        ),
    };
    for sql in [
        format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
             INSERT INTO stories (id, signature, sort_date, created_at)
             SELECT row_number() OVER (ORDER BY d), randomblob(256), d, {now}
             FROM (SELECT {date} AS d FROM c)"
        ),
        format!(
            "INSERT INTO items (feed_id, item_key, raw_hash, link, title, excerpt, authors, categories,
               enclosures, first_seen, sort_date, canonical_link, story_id, merge_reason)
             SELECT {feed_id}, 'k' || id, 0, 'https://bulk.example/' || id, 'bulk story ' || id, '', '[]', '[]', '[]',
               {now}, sort_date, 'https://bulk.example/' || id, id, 'first' FROM stories"
        ),
        "CREATE INDEX items_canonical_link ON items (canonical_link)".into(),
        "CREATE INDEX items_story ON items (story_id)".into(),
        "ANALYZE".into(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    // The WAL copied into the file and the connection closed before the
    // caller's timing starts: otherwise the store's checkpointer copies a
    // gigabyte of WAL, and the dropped connection frees its 256 MB page
    // cache, while the caller measures.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    eprintln!(
        "populated {n} stories in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// [`populate`] for a PostgreSQL store at `url` (its schema already made).
#[allow(dead_code)]
pub async fn populate_pg(url: &str, n: i64, feed_id: i64, recent: Option<i64>) {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let t = Instant::now();
    let date = match recent {
        None => format!("{now} - floor(random() * 180 * 86400)::bigint"),
        Some(k) => format!(
            "CASE WHEN x <= {k} THEN {now} - floor(random() * 7 * 86400)::bigint
                  ELSE {now} - 15 * 86400 - floor(random() * 350 * 86400)::bigint END"
        ),
    };
    // 256 random bytes: sixteen MD5s of random numbers.
    let signature = format!(
        "decode({}, 'hex')",
        vec!["md5(random()::text)"; 16].join(" || ")
    );
    for sql in [
        "DROP INDEX items_canonical_link".to_string(),
        "DROP INDEX items_story".into(),
        format!(
            "INSERT INTO stories (id, signature, sort_date, created_at)
             SELECT row_number() OVER (ORDER BY d), {signature}, d, {now}
             FROM (SELECT {date} AS d FROM generate_series(1, {n}) AS x) AS dated"
        ),
        format!(
            "INSERT INTO items (id, feed_id, item_key, raw_hash, link, title, excerpt, authors, categories,
               enclosures, first_seen, sort_date, canonical_link, story_id, merge_reason)
             SELECT id, {feed_id}, 'k' || id, 0, 'https://bulk.example/' || id, 'bulk story ' || id, '', '[]', '[]', '[]',
               {now}, sort_date, 'https://bulk.example/' || id, id, 'first' FROM stories"
        ),
        "CREATE INDEX items_canonical_link ON items (canonical_link)".into(),
        "CREATE INDEX items_story ON items (story_id)".into(),
        "ANALYZE".into(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    eprintln!(
        "populated {n} stories in PostgreSQL in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Gives every bulk story a body (about 600 characters of HTML and a
/// 250-character excerpt) and tags: `china` on one story in 10, `sogie` on
/// one in 1,000.
pub async fn add_content_and_tags(db: &Path) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let t = Instant::now();
    for sql in [
        "PRAGMA cache_size = -262144",
        "UPDATE items SET content_html = '<p>' || hex(randomblob(300)) || '</p>',
           excerpt = substr(hex(randomblob(125)), 1, 250), title = 'Bulk story number ' || id",
        "INSERT INTO item_tags (item_id, tag) SELECT id, 'china' FROM items WHERE id % 10 = 0",
        "INSERT INTO item_tags (item_id, tag) SELECT id, 'sogie' FROM items WHERE id % 1000 = 0",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    eprintln!(
        "content and tags added in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
