//! Parse + normalise throughput, as a ratio to a raw quick-xml tokenisation
//! and to a bare feed-rs parse of the same bytes in the same run.
//!
//! usage: cargo bench --bench ingest -- [CORPUS_DIR=bench-corpus/c2000] [REPS=3] [--baselines]
//! (`--baselines`: only quick-xml and feed-rs, for the poll benchmark's ratio)
//! (make the corpus with ../shared/bench/gen_corpus.py). One core, in process,
//! median of REPS.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gazette::parse::{self, ParseContext};
use gazette::sanitize::Sanitizer;
use url::Url;

fn main() {
    let baselines_only = std::env::args().any(|a| a == "--baselines");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = args
        .first()
        .cloned()
        .unwrap_or_else(|| "bench-corpus/c2000".into());
    let reps: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {dir}: {e} (generate it with gen_corpus.py)"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml" || x == "json"))
        .collect();
    names.sort();
    let files: Vec<(Url, Vec<u8>)> = names
        .iter()
        .map(|p| {
            let url = Url::parse(&format!(
                "http://127.0.0.1/{}",
                p.file_name().unwrap().to_string_lossy()
            ))
            .unwrap();
            (url, std::fs::read(p).unwrap())
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "corpus {dir}: {} files, {:.1} MB, {reps} reps (median)",
        files.len(),
        bytes as f64 / 1e6
    );

    let quick = median(reps, || {
        let mut events = 0usize;
        for (_, b) in &files {
            // Borrowing events straight from the bytes: the cheapest pass quick-xml offers.
            let mut r = quick_xml::Reader::from_reader(&b[..]);
            loop {
                match r.read_event() {
                    Ok(quick_xml::events::Event::Eof) | Err(_) => break,
                    Ok(e) => {
                        black_box(&e);
                        events += 1;
                    }
                }
            }
        }
        events
    });
    let feed_rs = median(reps, || {
        files
            .iter()
            .map(|(_, b)| {
                feed_rs::parser::parse(&b[..])
                    .map(|f| f.entries.len())
                    .unwrap_or(0)
            })
            .sum()
    });
    if baselines_only {
        println!(
            "quick-xml {:.2} s, feed-rs {:.2} s",
            quick.0.as_secs_f64(),
            feed_rs.0.as_secs_f64()
        );
        return;
    }
    let keyed = median(reps, || {
        files
            .iter()
            .map(|(u, b)| {
                let f = parse_one(u, b);
                black_box(f.entries.iter().map(|e| e.raw_hash).sum::<i64>());
                f.entries.len()
            })
            .sum()
    });
    let full = median(reps, || {
        files
            .iter()
            .map(|(u, b)| {
                let f = parse_one(u, b);
                let s = Sanitizer::new(Some(u));
                f.entries
                    .iter()
                    .map(|e| black_box(e.normalise(&s)).title.len().min(1))
                    .sum::<usize>()
            })
            .sum()
    });
    let items = feed_rs.1;
    println!("| stage | s | MB/s | items/s | ratio to quick-xml |");
    println!("|---|---|---|---|---|");
    for (name, (t, _)) in [
        ("quick-xml raw tokenisation", quick),
        ("feed-rs parse", feed_rs),
        ("gazette parse (decode + feed-rs + keys + raw hash)", keyed),
        ("gazette parse + normalise (sanitise, excerpt, links)", full),
    ] {
        let s = t.as_secs_f64();
        println!(
            "| {name} | {s:.2} | {:.1} | {:.0} | {:.3} |",
            bytes as f64 / 1e6 / s,
            items as f64 / s,
            quick.0.as_secs_f64() / s
        );
    }
    assert_eq!(full.1, items, "every entry normalised");

    // How much feed HTML the sanitiser's fast path takes, and whether its
    // output means what ammonia's does (first 100 files).
    let (mut fast, mut total) = (0usize, 0usize);
    for (u, b) in files.iter().take(100) {
        let s = Sanitizer::new(Some(u));
        let feed = feed_rs::parser::parse(&b[..]).unwrap();
        for html in feed
            .entries
            .iter()
            .filter_map(|e| e.content.as_ref()?.body.clone())
        {
            total += 1;
            if let Some(out) = gazette::sanitize::fast_clean(&html, Some(u)) {
                fast += 1;
                assert_eq!(
                    s.ammonia(&out),
                    s.ammonia(&html),
                    "fast path disagrees in {u}"
                );
            }
        }
    }
    println!(
        "sanitiser fast path: {fast} of {total} content bodies (first 100 files), all equal to ammonia's output after re-sanitising"
    );
}

/// A corpus file parsed as the pipeline does, with its URL as the base.
fn parse_one(u: &Url, b: &[u8]) -> parse::ParsedFeed {
    parse::parse(
        b,
        ParseContext {
            base_url: Some(u),
            content_type: None,
        },
    )
    .unwrap()
}

/// Median wall time of `reps` runs of `f`, and its result.
fn median(reps: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut out = 0;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        out = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], out)
}
