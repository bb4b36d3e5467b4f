//! Story identity: canonical links and near-duplicate fingerprints. Pure:
//! the store does the lookups, this module says what is the same story.
//!
//! Two items are one story when their canonical links are equal, or when
//! they come from different feeds within the dedup window and their texts
//! are near-identical: the estimated Jaccard similarity of their word
//! 3-gram sets (MinHash, [`SIGNATURE_LEN`] hashes) reaches the threshold.
//! Candidates are found through locality-sensitive hashing: the signature is
//! cut into [`BANDS`] bands and only stories sharing a band are compared, so
//! lookups never scan the store.

use url::Url;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Hashes in a MinHash signature.
pub const SIGNATURE_LEN: usize = 64;
/// LSH bands; each has `SIGNATURE_LEN / BANDS` rows.
pub const BANDS: usize = 16;
const ROWS: usize = SIGNATURE_LEN / BANDS;
/// Default similarity at or above which two items are one story.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Query parameters always removed from links: click trackers that say
/// nothing about the page.
const TRACKING_PARAMS: &[&str] = &[
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_hsenc",
    "_hsmi", "mkt_tok", "ref_src",
];

/// A MinHash signature of an item's text.
pub type Signature = Vec<u32>;

/// The canonical form of a story link: lower-case scheme and host, no
/// default port, no fragment, no tracking parameters (`utm_*`, the list
/// above and `extra_params`), `https` for `http`, no trailing slash, `www.`
/// dropped. Two links with the same canonical form point at the same page.
/// `None` for anything that is not an http(s) URL.
pub fn canonical_link(link: &str, extra_params: &[String]) -> Option<String> {
    let mut url = Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    let _ = url.set_port(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking_param(k, extra_params))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let path = url.path().trim_end_matches('/');
    let mut out = format!("https://{host}{path}");
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// Whether a query parameter is a tracker: `utm_*`, `mc_*`, the list
/// above, or one of `extra_params` (`[dedup] strip_params`); any case.
pub fn is_tracking_param(key: &str, extra_params: &[String]) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("utm_")
        || k.starts_with("mc_")
        || TRACKING_PARAMS.contains(&k.as_str())
        || extra_params.iter().any(|p| p.eq_ignore_ascii_case(&k))
}

/// `link` without its tracking parameters (see [`is_tracking_param`]), the
/// rest kept as written: the link readers are given. A link without
/// trackers comes back unchanged.
pub fn strip_tracking(link: &str, extra_params: &[String]) -> String {
    let Some((head, rest)) = link.split_once('?') else {
        return link.to_string();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let key_of = |pair: &str| -> String {
        let k = pair.split('=').next().unwrap_or(pair);
        url::form_urlencoded::parse(k.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default()
    };
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|p| !is_tracking_param(&key_of(p), extra_params))
        .collect();
    if kept.len() == pairs.len() {
        return link.to_string();
    }
    let mut out = head.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Hashes of the lower-case words of `text` (letters and digits only,
/// accents kept), appended to `out`.
fn word_hashes(text: &str, out: &mut Vec<u64>) {
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if !word.is_empty() {
            out.push(xxh3_64(word.as_bytes()));
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                word.push(c.to_ascii_lowercase());
            } else {
                word.extend(c.to_lowercase());
            }
        } else {
            flush(&mut word);
        }
    }
    flush(&mut word);
}

/// Odd multipliers and offsets of the [`SIGNATURE_LEN`] hash functions
/// (multiply-shift over a shingle's 64-bit hash), fixed so that signatures
/// stay comparable across runs.
const PERMUTATIONS: [(u64, u64); SIGNATURE_LEN] = {
    let mut out = [(0u64, 0u64); SIGNATURE_LEN];
    // splitmix64 from a fixed seed.
    let mut state: u64 = 0x6761_7a65_7474_6521;
    let mut i = 0;
    while i < SIGNATURE_LEN {
        let mut pair = [0u64; 2];
        let mut k = 0;
        while k < 2 {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            pair[k] = z ^ (z >> 31);
            k += 1;
        }
        out[i] = (pair[0] | 1, pair[1]);
        i += 1;
    }
    out
};

/// The MinHash signature of a title and text: word 3-grams (single words
/// for texts under three words). `None` when there are no words at all.
pub fn signature(title: &str, text: &str) -> Option<Signature> {
    let mut w = Vec::new();
    word_hashes(title, &mut w);
    word_hashes(text, &mut w);
    if w.is_empty() {
        return None;
    }
    let shingle = |g: &[u64]| {
        let mut bytes = [0u8; 24];
        for (i, h) in g.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&h.to_le_bytes());
        }
        xxh3_64(&bytes)
    };
    let shingles: Vec<u64> = if w.len() < 3 {
        w.chunks(1).map(shingle).collect()
    } else {
        w.windows(3).map(shingle).collect()
    };
    let mut sig = [u32::MAX; SIGNATURE_LEN];
    for h in shingles {
        for (m, (a, b)) in sig.iter_mut().zip(PERMUTATIONS.iter()) {
            *m = (*m).min((h.wrapping_mul(*a).wrapping_add(*b) >> 32) as u32);
        }
    }
    Some(sig.to_vec())
}

/// The LSH band keys of a signature, one per band, to index and look up:
/// each band's rows hashed with the band's number as the seed, so equal
/// rows in different bands give different keys.
pub fn bands(sig: &[u32]) -> Vec<i64> {
    sig.chunks(ROWS)
        .enumerate()
        .map(|(b, rows)| {
            let mut bytes = [0u8; 4 * ROWS];
            for (i, r) in rows.iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&r.to_le_bytes());
            }
            xxh3_64_with_seed(&bytes[..rows.len() * 4], b as u64) as i64
        })
        .collect()
}

/// Which stories have which LSH band keys: the near-duplicate candidates of
/// a signature, held in memory (8 bytes per band of a story, plus the hash
/// table). It only narrows the search: keys are folded to 32 bits, and ids
/// it gives may be of stories since deleted, so the caller checks every
/// candidate against the stored story and its signature.
#[derive(Debug, Default)]
pub struct BandIndex {
    /// Folded key → position in `postings` of the last story added under it.
    heads: rustc_hash::FxHashMap<u32, u32>,
    /// (story id, position of the previous story under the same key + 1, or 0).
    postings: Vec<(u32, u32)>,
}

impl BandIndex {
    /// Files `story_id` under each of `bands` (from [`bands`]). Ids past
    /// `u32::MAX` are not indexed.
    pub fn insert(&mut self, story_id: i64, bands: &[i64]) {
        let Ok(story) = u32::try_from(story_id) else {
            return;
        };
        for &key in bands {
            let at = self.postings.len() as u32;
            let prev = self.heads.insert(fold(key), at).map_or(0, |p| p + 1);
            self.postings.push((story, prev));
        }
    }

    /// The stories sharing at least one of `bands`, ascending, each once,
    /// written to `out` (cleared first).
    pub fn candidates(&self, bands: &[i64], out: &mut Vec<i64>) {
        out.clear();
        for &key in bands {
            let mut next = self.heads.get(&fold(key)).map(|p| p + 1);
            while let Some(at) = next.filter(|&n| n > 0) {
                let (story, prev) = self.postings[at as usize - 1];
                out.push(story as i64);
                next = Some(prev);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// How many (story, band) entries the index holds.
    pub fn len(&self) -> usize {
        self.postings.len()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.postings.is_empty()
    }
}

/// A band key folded to the index's 32 bits.
fn fold(key: i64) -> u32 {
    let k = key as u64;
    (k ^ (k >> 32)) as u32
}

/// Estimated Jaccard similarity of the two texts behind two signatures.
pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// A signature as stored (little-endian bytes).
pub fn signature_to_bytes(sig: &[u32]) -> Vec<u8> {
    sig.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A stored signature back.
pub fn signature_from_bytes(b: &[u8]) -> Signature {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The rules the store applies when it files a new item into a story.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Near duplicates are looked for among stories dated this close (seconds).
    pub window_secs: i64,
    /// Similarity at or above which an item joins a story.
    pub threshold: f64,
}

/// Why an item joined a story.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeReason {
    /// It started the story.
    First,
    /// Same canonical link as an item of the story.
    SameLink,
    /// Near-identical text, with its similarity.
    NearDuplicate(f64),
}

impl MergeReason {
    /// Stored form: `first`, `same link`, `near duplicate`.
    pub fn kind(&self) -> &'static str {
        match self {
            MergeReason::First => "first",
            MergeReason::SameLink => "same link",
            MergeReason::NearDuplicate(_) => "near duplicate",
        }
    }

    /// The similarity score, for near duplicates.
    pub fn score(&self) -> Option<f64> {
        match self {
            MergeReason::NearDuplicate(s) => Some(*s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_links_lose_their_trackers_only() {
        let extra = vec!["ref".to_string()];
        for (link, want) in [
            (
                "https://x.example/a?utm_source=rss&id=7&utm_medium=feed",
                "https://x.example/a?id=7",
            ),
            ("https://x.example/a?fbclid=abc", "https://x.example/a"),
            (
                "https://x.example/a?gclid=1&mc_cid=2&mc_eid=3&ref=feed#top",
                "https://x.example/a#top",
            ),
            (
                "https://x.example/a?UTM_Campaign=x&q=a%20b&page=2",
                "https://x.example/a?q=a%20b&page=2",
            ),
            // Nothing to strip: the link as written.
            (
                "https://x.example/a?q=a+b&x=%2F",
                "https://x.example/a?q=a+b&x=%2F",
            ),
            ("https://x.example/a", "https://x.example/a"),
            (
                "https://x.example/a?referrer=1",
                "https://x.example/a?referrer=1",
            ),
        ] {
            assert_eq!(strip_tracking(link, &extra), want, "{link}");
        }
    }

    #[test]
    fn tracking_and_cosmetic_differences_vanish() {
        let c = |s: &str| canonical_link(s, &[]).unwrap();
        let base = "https://ohchr.org/en/press-releases/2026/11/russia-vote";
        assert_eq!(
            c(
                "https://www.ohchr.org/en/press-releases/2026/11/russia-vote?utm_source=rss&utm_medium=feed"
            ),
            base
        );
        assert_eq!(
            c("http://WWW.OHCHR.org:80/en/press-releases/2026/11/russia-vote/#top"),
            base
        );
        assert_eq!(
            c(
                "https://ohchr.org:443/en/press-releases/2026/11/russia-vote?fbclid=IwAR2&mc_cid=1&mc_eid=2"
            ),
            base
        );
        assert_eq!(
            c("https://ohchr.org/en/news?id=7&utm_campaign=x&gclid=y"),
            "https://ohchr.org/en/news?id=7"
        );
        assert_ne!(
            c("https://ohchr.org/en/news?id=7"),
            c("https://ohchr.org/en/news?id=8")
        );
        assert_eq!(
            canonical_link("https://ishr.ch/news/a?ref=feed&x=1", &["ref".into()]).unwrap(),
            "https://ishr.ch/news/a?x=1"
        );
        assert_eq!(canonical_link("mailto:a@b.org", &[]), None);
        assert_eq!(canonical_link("/relative", &[]), None);
    }

    /// Precision and recall of near-duplicate merging on the labelled pairs in
    /// `tests/fixtures/near_dup_pairs.json`, as the pipeline computes them
    /// (title plus the 300-character excerpt). `cargo test pairs -- --nocapture`
    /// prints the table for other thresholds.
    #[test]
    fn labelled_pairs_precision_and_recall() {
        let pairs: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/fixtures/near_dup_pairs.json")).unwrap();
        assert!(pairs.len() >= 60);
        let sig = |side: &serde_json::Value| {
            let text = crate::sanitize::excerpt(
                side["text"].as_str().unwrap(),
                crate::parse::EXCERPT_CHARS,
            );
            signature(side["title"].as_str().unwrap(), &text).unwrap()
        };
        let scored: Vec<(bool, f64, String)> = pairs
            .iter()
            .map(|p| {
                let score = similarity(&sig(&p["a"]), &sig(&p["b"]));
                (
                    p["duplicate"].as_bool().unwrap(),
                    score,
                    p["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let rates = |t: f64| {
            let tp = scored.iter().filter(|(d, s, _)| *d && *s >= t).count() as f64;
            let fp = scored.iter().filter(|(d, s, _)| !*d && *s >= t).count() as f64;
            let fn_ = scored.iter().filter(|(d, s, _)| *d && *s < t).count() as f64;
            (tp / (tp + fp).max(1.0), tp / (tp + fn_).max(1.0))
        };
        println!("| threshold | precision | recall |");
        for t in [0.3, 0.4, 0.5, 0.6, 0.7] {
            let (p, r) = rates(t);
            println!("| {t:.1} | {p:.3} | {r:.3} |");
        }
        // End to end, a pair is only compared when it shares an LSH band.
        let found = pairs
            .iter()
            .filter(|p| p["duplicate"].as_bool().unwrap())
            .filter(|p| {
                let (a, b) = (bands(&sig(&p["a"])), bands(&sig(&p["b"])));
                a.iter().any(|x| b.contains(x))
            })
            .count();
        let positives = scored.iter().filter(|(d, _, _)| *d).count();
        println!("duplicates sharing an LSH band: {found} of {positives}");
        assert!(
            found as f64 >= 0.9 * positives as f64,
            "LSH finds {found} of {positives}"
        );
        let misses: Vec<_> = scored
            .iter()
            .filter(|(d, s, _)| *d != (*s >= DEFAULT_THRESHOLD))
            .map(|(d, s, id)| format!("{id} (duplicate: {d}, score {s:.2})"))
            .collect();
        println!("wrong at the default threshold: {misses:?}");
        let (precision, recall) = rates(DEFAULT_THRESHOLD);
        assert!(precision >= 0.95, "precision {precision}: {misses:?}");
        assert!(recall >= 0.85, "recall {recall}: {misses:?}");
    }

    #[test]
    fn band_index_finds_the_stories_sharing_a_band_once_each() {
        let sig = |t: &str| signature(t, "").unwrap();
        let vote = sig("States at the UN General Assembly vote to scrutinise Russia's record");
        let same = sig("States at the UN General Assembly vote to scrutinise Russia's record");
        let other = sig("The Third Committee adopted a resolution on the death penalty");
        let mut index = BandIndex::default();
        assert!(index.is_empty());
        index.insert(7, &bands(&vote));
        index.insert(3, &bands(&same));
        index.insert(9, &bands(&other));
        index.insert(i64::from(u32::MAX) + 1, &bands(&vote));
        assert_eq!(index.len(), 3 * BANDS, "ids past u32 are left out");
        let mut out = vec![42];
        index.candidates(&bands(&vote), &mut out);
        assert_eq!(
            out,
            vec![3, 7],
            "sorted, each once, however many bands match"
        );
        index.candidates(&bands(&other), &mut out);
        assert_eq!(out, vec![9]);
        index.candidates(&[], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn near_identical_texts_score_high_and_different_ones_low() {
        let a = signature(
            "States at UN General Assembly vote to scrutinise Russia's human rights record",
            "On Thursday, a majority of States at the UN General Assembly's Third Committee voted in favour of the first country resolution on Russia, asking the Secretary-General to report on arbitrary detention of anti-war protesters.",
        )
        .unwrap();
        let b = signature(
            "States at UN General Assembly vote to scrutinise Russia’s human rights record | ISHR",
            "On Thursday a majority of States at the UN General Assembly’s Third Committee voted in favor of the first country resolution on Russia – asking the Secretary-General to report on arbitrary detention of anti-war protesters.",
        )
        .unwrap();
        let c = signature(
            "UN General Assembly committee adopts resolution on death penalty moratorium",
            "The Third Committee adopted its biennial resolution calling for a moratorium on the use of the death penalty, with 130 States in favour, the largest majority yet.",
        )
        .unwrap();
        let d = signature(
            "UN General Assembly committee adopts resolution on extrajudicial executions",
            "The Third Committee adopted a resolution on extrajudicial, summary or arbitrary executions, after a vote on an amendment on sexual orientation and gender identity.",
        )
        .unwrap();
        assert!(
            similarity(&a, &b) >= DEFAULT_THRESHOLD,
            "{}",
            similarity(&a, &b)
        );
        assert!(similarity(&c, &d) < 0.2, "{}", similarity(&c, &d));
        assert_eq!(similarity(&a, &a), 1.0);
        assert_eq!(bands(&a).len(), BANDS);
        assert_eq!(signature_from_bytes(&signature_to_bytes(&a)), a);
    }
}
