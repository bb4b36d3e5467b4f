//! Cost per new item of tagging + dedup (canonical link, MinHash, LSH
//! lookup, story filing) and storing, against stores already holding 10k,
//! 100k and 1M stories. It must stay flat as the store grows.
//!
//! usage: cargo bench --bench dedup -- [SIZES=10000,100000,1000000] [NEW=2000] [RECENT]
//! Without RECENT the stored stories are dated uniformly over 180 days (so a
//! larger store also has more stories inside the dedup window); with RECENT,
//! that many are dated within the last 7 days and the rest 15 to 365 days
//! ago: the same traffic, a longer archive.
//! New items are stored 25 at a time, a feed's worth, as a poll does.
//!
//! With `DEDUP_PG_URL=postgres://user@host:port` the stores are PostgreSQL
//! databases (`gazette_bench_dedup`, created afresh for each size and
//! dropped after) instead of SQLite files.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use gazette::config::{Config, DatabaseUrl};
use gazette::dedup;
use gazette::filing::Policy;
use gazette::model::Item;
use gazette::store::Store;
use gazette::tag::Tagger;
use rand::{Rng, SeedableRng};

mod common;
use common::{populate, populate_pg, text};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // GAZETTE_LOG=sqlx=debug,gazette=debug shows each statement's time.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("GAZETTE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sizes: Vec<i64> = args
        .first()
        .map(|s| s.split(',').map(|n| n.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let new: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let recent: Option<i64> = args.get(2).and_then(|n| n.parse().ok());
    let config = Arc::new(
        Config::parse(
            Path::new("bench.toml"),
            "[[tags]]\nname = \"china\"\nkeywords = [\"China\", \"Hong Kong\", \"Tibet\"]\n[[tags]]\nname = \"un-hrc\"\nkeywords = [\"Human Rights Council\"]\nregex = ['\\bUPR\\d*\\b']\n",
        )
        .unwrap(),
    );
    let tagger = Tagger::new(&config.tags, &config.exclude);
    let policy = Policy {
        window_secs: 7 * 86400,
        threshold: dedup::DEFAULT_THRESHOLD,
    };
    println!(
        "| stored stories | new items | µs per new item (tag + dedup + store) | of which tag + fingerprint |"
    );
    println!("|---|---|---|---|");
    let pg = std::env::var("DEDUP_PG_URL").ok();
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bench.db");
        let url = match &pg {
            Some(server) => {
                use sqlx::ConnectOptions;
                let admin = format!("{server}/postgres");
                let mut c = sqlx::postgres::PgConnectOptions::from_str(&admin)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                for sql in [
                    "DROP DATABASE IF EXISTS gazette_bench_dedup",
                    "CREATE DATABASE gazette_bench_dedup",
                ] {
                    sqlx::query(sql).execute(&mut c).await.unwrap();
                }
                DatabaseUrl::Postgres(format!("{server}/gazette_bench_dedup"))
            }
            None => DatabaseUrl::Sqlite(db.clone()),
        };
        let store = Store::open(&url).await.unwrap();
        let mut feeds = config.feeds.clone();
        for name in ["bulk", "new"] {
            feeds.push(gazette::config::FeedConfig {
                name: name.into(),
                source: gazette::config::FeedSource::File(dir.path().join(name)),
                tags: vec![],
                interval: std::time::Duration::from_secs(3600),
                priority: 0,
            });
        }
        let rows = store.sync_feeds(&feeds).await.unwrap();
        match &url {
            DatabaseUrl::Postgres(u) => {
                populate_pg(u, n, rows[0].id, recent.map(|r| r.min(n))).await
            }
            DatabaseUrl::Sqlite(_) => populate(&db, n, rows[0].id, recent.map(|r| r.min(n))).await,
        }
        // Opened afresh on the filled store, as a process starts: the first
        // handle's checkpointer would copy the bulk load's WAL meanwhile.
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        let now = chrono::Utc::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let started = Instant::now();
        let mut cpu = std::time::Duration::ZERO;
        // Stored a feed's worth at a time, as a poll does.
        let mut batch = Vec::new();
        for i in 0..new {
            let t0 = Instant::now();
            let title = text(&mut rng, 10);
            let body = text(&mut rng, 50);
            let tagging = tagger.apply_html(&[], &title, None, Some(&body), &[]);
            let link = format!("https://new.example/{i}?utm_source=rss");
            let item = Item {
                key: format!("guid:{i}"),
                raw_hash: i as i64,
                guid: Some(i.to_string()),
                canonical_link: dedup::canonical_link(&link, &[]),
                signature: dedup::signature(&title, &body),
                link: Some(link),
                title,
                summary_html: None,
                content_html: Some(format!("<p>{body}</p>")),
                excerpt: body,
                authors: vec![],
                categories: vec![],
                enclosures: vec![],
                // New items are this week's news when the store has an archive.
                published: chrono::DateTime::from_timestamp(
                    now.timestamp()
                        - rng.random_range(0..if recent.is_some() { 7 } else { 90 } * 86400),
                    0,
                ),
                updated: None,
                tags: tagging.tags,
                excluded: tagging.excluded,
            };
            cpu += t0.elapsed();
            batch.push(gazette::store::Prepared::new(item));
            if batch.len() == 25 || i + 1 == new {
                store
                    .file_document(gazette::store::Document {
                        feed_id: rows[1].id,
                        items: std::mem::take(&mut batch),
                        listed: vec![],
                        now,
                        policy,
                    })
                    .await
                    .unwrap();
            }
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / new as f64;
        println!(
            "| {n} | {new} | {per:.0} | {:.0} |",
            cpu.as_secs_f64() * 1e6 / new as f64
        );
        store.close().await;
    }
}
