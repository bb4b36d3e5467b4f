//! `parse::parse_with_feed_rs` (feed-rs always) on arbitrary bytes, every
//! entry normalised: no panic escapes.
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
    if let Ok(feed) = parse::parse_with_feed_rs(data, ctx) {
        let s = Sanitizer::new(Some(&base));
        for e in &feed.entries {
            let _ = e.normalise(&s);
        }
    }
});
