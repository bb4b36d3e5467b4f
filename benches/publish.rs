//! Time to render the published documents from a store of N stories:
//! `feed.atom` with 100 and 1,000 entries, a common tag's feed (1 story in
//! 10) and a rare tag's (1 in 1,000), and the HTML page.
//!
//! usage: cargo bench --bench publish -- [N=1000000] [RUNS=5] [--keep DIR]
//! `--keep DIR` leaves the store in DIR/gazette.db with a feeds.toml beside
//! it, for the HTTP load test in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gazette::config::{Config, DatabaseUrl};
use gazette::publish::{self, Kind};
use gazette::store::Store;

mod common;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let keep: Option<PathBuf> = raw
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| raw.get(i + 1))
        .map(PathBuf::from);
    let args: Vec<&String> = raw
        .iter()
        .filter(|a| !a.starts_with("--") && Some(Path::new(a.as_str())) != keep.as_deref())
        .collect();
    let n: i64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("gazette.db");
    let _ = std::fs::remove_file(&db);
    let config_text = |entries: usize| {
        format!(
            "title = \"Bench Watch\"\nsite_url = \"https://news.example.org/\"\ndatabase = \"sqlite://gazette.db\"\n\
             [http]\nlisten = \"127.0.0.1:18080\"\n[publish]\nentries = {entries}\n\
             [[feeds]]\nname = \"bulk\"\nurl = \"https://bulk.example/feed\"\n\
             [[tags]]\nname = \"china\"\nkeywords = [\"China\"]\n[[tags]]\nname = \"sogie\"\nkeywords = [\"SOGIE\"]\n"
        )
    };
    let path = dir.join("feeds.toml");
    std::fs::write(&path, config_text(100)).unwrap();
    let store = Store::open(&DatabaseUrl::Sqlite(db.clone())).await.unwrap();
    let config = Config::parse(&path, &config_text(100)).unwrap();
    let rows = store.sync_feeds(&config.feeds).await.unwrap();
    common::populate(&db, n, rows[0].id, None).await;
    common::add_content_and_tags(&db).await;

    println!("| document | entries | stored stories | ms (median of {runs}) | bytes |");
    println!("|---|---|---|---|---|");
    for entries in [100usize, 1000] {
        let config = Config::parse(&path, &config_text(entries)).unwrap();
        for kind in [
            Kind::Atom(None),
            Kind::Atom(Some("china".into())),
            Kind::Atom(Some("sogie".into())),
            Kind::Html(None),
        ] {
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let doc = publish::render(&config, &store, &kind).await.unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                bytes = doc.body.len();
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| {} | {entries} | {n} | {:.1} | {bytes} |",
                kind.path(),
                times[times.len() / 2]
            );
        }
    }
    store.close().await;
    if let Some(k) = keep {
        eprintln!("store kept in {}", k.display());
    }
}
