//! The sanitiser on arbitrary HTML: no panic, and wherever the fast path
//! answers, its output means what ammonia's does.
#![no_main]

use gazette::sanitize::{self, Sanitizer};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let base = Url::parse("https://feed.example/news/").unwrap();
    let s = Sanitizer::new(Some(&base));
    let clean = s.clean(&html);
    let reference = s.ammonia(&html);
    if let Some(fast) = sanitize::fast_clean(&html, Some(&base)) {
        assert_eq!(s.ammonia(&fast), reference, "fast path disagrees on {html:?}");
    }
    let lower = clean.to_ascii_lowercase();
    assert!(!lower.contains("<script") && !lower.contains("<iframe"), "{clean:?}");
    let _ = sanitize::html_to_text(&html);
    let _ = sanitize::clean_html_to_text(&clean, 300);
});
