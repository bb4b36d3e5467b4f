//! Growth of one document's CPU-bound work on hostile text: the shapes of
//! issue 15 (an item whose CDATA description is N bare `&`; a title of
//! `&amp;` × N followed by a tag), at N = 40k, 80k, 160k and 320k; each also
//! followed by a tag the sanitiser's fast path leaves to ammonia.
//!
//! usage: cargo bench --bench hostile -- [REPS=3]
//!
//! Each shape is read as a poll reads a document on its parsing thread:
//! parse (the fast path, and feed-rs for comparison), normalise (sanitise,
//! plain text, excerpt), tag with the shipped feeds.toml's rules and the
//! near-duplicate signature. Prints the median of REPS runs per N, and the
//! ratio of each time to the one at half the N: about 2 when linear, 4 when
//! quadratic.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gazette::parse::{self, ParseContext};
use gazette::sanitize::Sanitizer;
use gazette::tag::Tagger;
use url::Url;

const SIZES: &[usize] = &[40_000, 80_000, 160_000, 320_000];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let reps: usize = args.first().and_then(|r| r.parse().ok()).unwrap_or(3);
    let config = gazette::config::Config::load(std::path::Path::new("feeds.toml"))
        .expect("the shipped feeds.toml loads");
    let tagger = Tagger::new(&config.tags, &config.exclude);
    let base = Url::parse("https://hostile.example/feed.xml").unwrap();
    let shapes: [Shape; 5] = [
        ("description: CDATA of N bare `&`", |n| {
            item(
                "<title>t</title>",
                &format!("<description><![CDATA[{}]]></description>", "&".repeat(n)),
            )
        }),
        (
            "description: CDATA of N bare `&` then an unknown tag",
            |n| {
                item(
                    "<title>t</title>",
                    &format!(
                        "<description><![CDATA[{}<x>y</x>]]></description>",
                        "&".repeat(n)
                    ),
                )
            },
        ),
        ("title: `&amp;` × N then a tag (CDATA)", |n| {
            item(
                &format!("<title><![CDATA[{}<b>x</b>]]></title>", "&amp;".repeat(n)),
                "<description>d</description>",
            )
        }),
        ("title: `&amp;` × N then an unknown tag (CDATA)", |n| {
            item(
                &format!("<title><![CDATA[{}<x>y</x>]]></title>", "&amp;".repeat(n)),
                "<description>d</description>",
            )
        }),
        ("title: `&amp;` × N then a tag (escaped)", |n| {
            item(
                &format!("<title>{}&lt;b>x&lt;/b></title>", "&amp;amp;".repeat(n)),
                "<description>d</description>",
            )
        }),
    ];
    println!(
        "median of {reps} runs; ratio = time / time at half the N (2 = linear, 4 = quadratic)"
    );
    println!("| shape | parser | N | s | ratio |");
    println!("|---|---|---|---|---|");
    for (name, make) in shapes {
        for fast in [true, false] {
            let mut last: Option<f64> = None;
            for &n in SIZES {
                let doc = make(n);
                let t = median(reps, || {
                    let ctx = ParseContext {
                        base_url: Some(&base),
                        content_type: None,
                    };
                    let feed = if fast {
                        parse::parse(doc.as_bytes(), ctx)
                    } else {
                        parse::parse_with_feed_rs(doc.as_bytes(), ctx)
                    }
                    .expect("the document parses");
                    let s = Sanitizer::new(Some(&base));
                    for e in &feed.entries {
                        let item = e.normalise(&s);
                        black_box(tagger.apply_html(
                            &[],
                            &item.title,
                            item.summary_html.as_deref(),
                            item.content_html.as_deref(),
                            &item.categories,
                        ));
                        black_box(gazette::dedup::signature(&item.title, &item.excerpt));
                    }
                });
                let s = t.as_secs_f64();
                let ratio = last.map_or("".to_string(), |l| format!("{:.1}", s / l));
                println!(
                    "| {name} | {} | {}k | {s:.3} | {ratio} |",
                    if fast { "fast path" } else { "feed-rs" },
                    n / 1000
                );
                last = Some(s);
            }
        }
    }
}

/// A shape's name, and the document it gives for an N.
type Shape = (&'static str, fn(usize) -> String);

/// An RSS 2.0 document with one item made of `title` and `body`.
fn item(title: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>hostile</title><link>https://hostile.example/</link>\
         <item>{title}<link>https://hostile.example/1</link><guid>1</guid>{body}</item></channel></rss>"
    )
}

fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
