//! The configuration loader on arbitrary bytes: no panic, and every error
//! is located inside the text (invalid UTF-8 at its first bad byte).
#![no_main]

use gazette::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = Config::parse_bytes(std::path::Path::new("/nonexistent/feeds.toml"), data) {
        let lines = data.split(|b| *b == b'\n').count();
        assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
        assert!(!e.message.is_empty());
        if let Err(bad) = std::str::from_utf8(data) {
            let line = data[..bad.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            assert_eq!(e.line, line, "{e}");
        }
    }
});
