//! Parse + normalise throughput, as a ratio to a raw quick-xml tokenisation
//! and to a bare feed-rs parse of the same bytes in the same run.
//!
//! usage: cargo bench --bench ingest -- [CORPUS_DIR=bench-corpus/c2000] [REPS=3] [--baselines] [--oracle]
//! or:    cargo bench --bench ingest -- --realworld [FILES=300] [REPS=3] [--oracle]
//! (`--realworld`: instead of a corpus folder, FILES feeds made in memory
//! from a fixed seed whose HTML has real-world habits, see
//! `realworld_html.rs`; the table's last column is the ratio to feed-rs);
//! (`--baselines`: only quick-xml and feed-rs, for the poll benchmark's ratio;
//! `--profile`: only the fast path's parse + normalise, REPS times, for perf
//! or callgrind (`--profile-quick-xml`: only the quick-xml pass, to compare);
//! `--oracle`: first check that every file gives the same normalised items
//! through the fast path as through feed-rs, and count them;
//! `--stages`: the per-item work a poll adds after normalising, stage by
//! stage, over the corpus's normalised items: tagging with the shipped
//! feeds.toml's rules, the near-duplicate signature, the store's encoding)
//! (make the corpus with ../shared/bench/gen_corpus.py). One core, in process;
//! each stage's median of REPS rounds, every round running every stage in turn
//! (`--min`: each stage's fastest round instead, the least disturbed one on
//! a shared machine).

use std::hint::black_box;
use std::time::{Duration, Instant};

use gazette::parse::{self, ParseContext};
use gazette::sanitize::Sanitizer;
use url::Url;

mod realworld_html;

fn main() {
    let baselines_only = std::env::args().any(|a| a == "--baselines");
    let oracle = std::env::args().any(|a| a == "--oracle");
    let profile = std::env::args().any(|a| a == "--profile");
    let profile_quick = std::env::args().any(|a| a == "--profile-quick-xml");
    let stages = std::env::args().any(|a| a == "--stages");
    let realworld = std::env::args().any(|a| a == "--realworld");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let reps: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let (dir, named): (String, Vec<(String, Vec<u8>)>) = if realworld {
        let n: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(300);
        (
            format!("real-world HTML ({n} feeds, seed 42)"),
            realworld_html::corpus(n, 42),
        )
    } else {
        let dir = args
            .first()
            .cloned()
            .unwrap_or_else(|| "bench-corpus/c2000".into());
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {dir}: {e} (generate it with gen_corpus.py)"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml" || x == "json"))
            .collect();
        names.sort();
        let named = names
            .iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(p).unwrap(),
                )
            })
            .collect();
        (dir, named)
    };
    let files: Vec<(Url, Vec<u8>)> = named
        .into_iter()
        .map(|(name, bytes)| {
            (
                Url::parse(&format!("http://127.0.0.1/{name}")).unwrap(),
                bytes,
            )
        })
        .collect();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "corpus {dir}: {} files, {:.1} MB, {reps} interleaved rounds ({})",
        files.len(),
        bytes as f64 / 1e6,
        if std::env::args().any(|a| a == "--min") {
            "fastest"
        } else {
            "median"
        }
    );

    if oracle {
        check_oracle(&files);
    }

    let quick_xml = || {
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
    };
    let feed_rs = || {
        files
            .iter()
            .map(|(_, b)| {
                feed_rs::parser::parse(&b[..])
                    .map(|f| f.entries.len())
                    .unwrap_or(0)
            })
            .sum()
    };
    if profile_quick {
        let t = interleaved(reps, &mut [&mut { quick_xml }]);
        println!("quick-xml: {:.2} s", t[0].0.as_secs_f64());
        return;
    }
    if stages {
        return after_normalise(&files, reps);
    }
    if baselines_only {
        let t = interleaved(reps, &mut [&mut { quick_xml }, &mut { feed_rs }]);
        println!(
            "quick-xml {:.2} s, feed-rs {:.2} s",
            t[0].0.as_secs_f64(),
            t[1].0.as_secs_f64()
        );
        return;
    }
    let keyed_with = |fast: bool| {
        let files = &files;
        move || {
            files
                .iter()
                .map(|(u, b)| {
                    let f = parse_one(u, b, fast);
                    black_box(f.entries.iter().map(|e| e.raw_hash).sum::<i64>());
                    f.entries.len()
                })
                .sum()
        }
    };
    let full_with = |fast: bool| {
        let files = &files;
        move || {
            files
                .iter()
                .map(|(u, b)| {
                    let f = parse_one(u, b, fast);
                    let s = Sanitizer::new(Some(u));
                    f.entries
                        .iter()
                        .map(|e| black_box(e.normalise(&s)).title.len().min(1))
                        .sum::<usize>()
                })
                .sum()
        }
    };
    if profile {
        let t = interleaved(reps, &mut [&mut full_with(true)]);
        println!("fast path parse + normalise: {:.2} s", t[0].0.as_secs_f64());
        return;
    }
    // Every stage once per round, REPS rounds: a load change on this shared
    // machine then touches every stage alike.
    let t = interleaved(
        reps,
        &mut [
            &mut { quick_xml },
            &mut { feed_rs },
            &mut keyed_with(false),
            &mut full_with(false),
            &mut keyed_with(true),
            &mut full_with(true),
        ],
    );
    let (quick, feed_rs, keyed_rs, full_rs, keyed, full) = (t[0], t[1], t[2], t[3], t[4], t[5]);
    let items = feed_rs.1;
    println!("| stage | s | MB/s | items/s | ratio to quick-xml | ratio to feed-rs |");
    println!("|---|---|---|---|---|---|");
    for (name, (t, _)) in [
        ("quick-xml raw tokenisation", quick),
        ("feed-rs parse", feed_rs),
        (
            "gazette parse through feed-rs (decode + feed-rs + keys + raw hash)",
            keyed_rs,
        ),
        ("gazette parse + normalise through feed-rs", full_rs),
        (
            "gazette parse, fast path (decode + quick-xml + keys + raw hash)",
            keyed,
        ),
        (
            "**gazette parse + normalise, fast path** (sanitise, excerpt, links)",
            full,
        ),
    ] {
        let s = t.as_secs_f64();
        println!(
            "| {name} | {s:.2} | {:.1} | {:.0} | {:.3} | {:.3} |",
            bytes as f64 / 1e6 / s,
            items as f64 / s,
            quick.0.as_secs_f64() / s,
            feed_rs.0.as_secs_f64() / s
        );
    }
    assert_eq!(full.1, items, "every entry normalised");
    assert_eq!(full_rs.1, items, "every entry normalised");

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

/// A corpus file parsed as the pipeline does, with its URL as the base
/// (`fast`: as `parse::parse`, else always through feed-rs).
fn parse_one(u: &Url, b: &[u8], fast: bool) -> parse::ParsedFeed {
    let ctx = ParseContext {
        base_url: Some(u),
        content_type: None,
    };
    if fast {
        parse::parse(b, ctx)
    } else {
        parse::parse_with_feed_rs(b, ctx)
    }
    .unwrap()
}

/// Every file through the fast path and through feed-rs: the same feed
/// fields and the same normalised items, or the bench stops.
fn check_oracle(files: &[(Url, Vec<u8>)]) {
    let (mut fast_files, mut items) = (0usize, 0usize);
    for (u, b) in files {
        let s = Sanitizer::new(Some(u));
        let a = parse_one(u, b, true);
        let r = parse_one(u, b, false);
        fast_files += usize::from(a.fast_path);
        assert_eq!(
            (&a.title, &a.site_link, a.ttl_seconds),
            (&r.title, &r.site_link, r.ttl_seconds),
            "{u}"
        );
        assert_eq!(a.entries.len(), r.entries.len(), "{u}");
        for (x, y) in a.entries.iter().zip(&r.entries) {
            assert_eq!(x.normalise(&s), y.normalise(&s), "{u}");
            items += 1;
        }
    }
    println!(
        "oracle: {} files, {fast_files} through the fast path; {items} items, all equal to feed-rs's",
        files.len()
    );
}

/// Times the stages that follow normalising in a poll's parsing threads.
fn after_normalise(files: &[(Url, Vec<u8>)], reps: usize) {
    let config = gazette::config::Config::load(std::path::Path::new("feeds.toml"))
        .expect("the shipped feeds.toml loads");
    let tagger = gazette::tag::Tagger::new(&config.tags, &config.exclude);
    let items: Vec<gazette::model::Item> = files
        .iter()
        .flat_map(|(u, b)| {
            let s = Sanitizer::new(Some(u));
            parse_one(u, b, true)
                .entries
                .iter()
                .map(|e| e.normalise(&s))
                .collect::<Vec<_>>()
        })
        .collect();
    let html: usize = items
        .iter()
        .map(|i| {
            i.summary_html.as_ref().map_or(0, String::len)
                + i.content_html.as_ref().map_or(0, String::len)
        })
        .sum();
    println!(
        "{} items, {:.1} MB of sanitised HTML, {reps} interleaved rounds (median)",
        items.len(),
        html as f64 / 1e6
    );
    let t = interleaved(
        reps,
        &mut [
            &mut || {
                items
                    .iter()
                    .map(|i| {
                        let t = tagger.apply_html(
                            &[],
                            &i.title,
                            i.summary_html.as_deref(),
                            i.content_html.as_deref(),
                            &i.categories,
                        );
                        black_box(t).tags.len()
                    })
                    .sum()
            },
            &mut || {
                items
                    .iter()
                    .map(|i| {
                        black_box(gazette::dedup::signature(&i.title, &i.excerpt)).is_some()
                            as usize
                    })
                    .sum()
            },
            &mut || {
                items
                    .iter()
                    .map(|i| {
                        black_box(gazette::store::Prepared::new(i.clone()))
                            .item
                            .key
                            .len()
                            .min(1)
                    })
                    .sum()
            },
            &mut || {
                items
                    .iter()
                    .map(|i| black_box(i.clone()).key.len().min(1))
                    .sum()
            },
        ],
    );
    println!("| stage | s | MB/s of HTML |");
    println!("|---|---|---|");
    for (name, (t, _)) in [
        ("tag (shipped rules)", t[0]),
        ("near-duplicate signature", t[1]),
        ("store encoding (LZ4), including a clone", t[2]),
        ("the clone alone", t[3]),
    ] {
        let s = t.as_secs_f64();
        println!("| {name} | {s:.3} | {:.0} |", html as f64 / 1e6 / s);
    }
}

/// For each stage, the median (or fastest) wall time of `reps` runs and its
/// result; the stages run in turn, one round after another.
fn interleaved(reps: usize, stages: &mut [&mut dyn FnMut() -> usize]) -> Vec<(Duration, usize)> {
    let fastest = std::env::args().any(|a| a == "--min");
    let mut times = vec![Vec::new(); stages.len()];
    let mut out = vec![0; stages.len()];
    for _ in 0..reps.max(1) {
        for (i, f) in stages.iter_mut().enumerate() {
            let t = Instant::now();
            out[i] = f();
            times[i].push(t.elapsed());
        }
    }
    times
        .into_iter()
        .zip(out)
        .map(|(mut t, o)| {
            t.sort();
            (if fastest { t[0] } else { t[t.len() / 2] }, o)
        })
        .collect()
}
