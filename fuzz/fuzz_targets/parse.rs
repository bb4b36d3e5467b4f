//! `parse::parse` (the quick-xml fast path, else feed-rs) on arbitrary
//! bytes, every entry normalised: no panic; and a document the fast path
//! reads gives what feed-rs gives.
#![no_main]

use gazette::parse::{self, ParseContext};
use gazette::sanitize::Sanitizer;
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let base = Url::parse("https://feed.example/feed.xml").unwrap();
    let ctx = ParseContext {
        base_url: Some(&base),
        content_type: None,
    };
    let Ok(fast) = parse::parse(data, ctx) else {
        return;
    };
    let s = Sanitizer::new(Some(&base));
    // Dates in the future are clamped to the clock at normalising: the two
    // normalisations differ there by the time between them.
    let normalise = |e: &parse::RawEntry| {
        let mut item = e.normalise(&s);
        let recent = chrono::Utc::now() - chrono::Duration::minutes(1);
        for d in [&mut item.published, &mut item.updated] {
            if d.is_some_and(|d| d > recent) {
                *d = None;
            }
        }
        item
    };
    let items: Vec<_> = fast.entries.iter().map(normalise).collect();
    if fast.fast_path {
        let reference = parse::parse_with_feed_rs(data, ctx).expect("feed-rs reads what the fast path reads");
        assert_eq!(
            (&fast.title, &fast.site_link, fast.ttl_seconds),
            (&reference.title, &reference.site_link, reference.ttl_seconds)
        );
        let want: Vec<_> = reference.entries.iter().map(normalise).collect();
        assert_eq!(items, want);
    }
});
