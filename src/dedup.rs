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

/// A band key listed for more stories than this (within the slabs an item
/// is compared with) is skipped in lookups: it is boilerplate that many
/// stories share and says nothing about which one an item is, and counting
/// it for every item of such a document would take quadratic time. The
/// rare keys an item shares with its true duplicate still find it.
const MAX_POSTINGS_PER_KEY: usize = 256;

/// Which stories have which LSH band keys: the near-duplicate candidates of
/// a signature, held in memory (8 bytes per band of a story, plus the hash
/// table). It only narrows the search: keys are folded to 32 bits, and ids
/// it gives may be of stories since deleted, so the caller checks every
/// candidate against the stored story and its signature.
#[derive(Debug, Default)]
pub struct BandIndex {
    /// Folded key → position in `postings` of the last story added under
    /// it, and how many stories it lists.
    heads: rustc_hash::FxHashMap<u32, (u32, u32)>,
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
            let head = self.heads.entry(fold(key)).or_insert((u32::MAX, 0));
            let prev = head.0.wrapping_add(1);
            *head = (at, head.1 + 1);
            self.postings.push((story, prev));
        }
    }

    /// The stories sharing at least one of `bands`, ascending, each once,
    /// written to `out` (cleared first).
    pub fn candidates(&self, bands: &[i64], out: &mut Vec<i64>) {
        out.clear();
        for &key in bands {
            let mut budget = usize::MAX;
            self.collect_key(fold(key), &mut budget, out);
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Appends the stories listed under the folded `key`, newest first, at
    /// most `budget` of them (which it lowers); `false` when there were more.
    fn collect_key(&self, key: u32, budget: &mut usize, out: &mut Vec<i64>) -> bool {
        let Some(&(head, count)) = self.heads.get(&key) else {
            return true;
        };
        // More than the budget: nothing is walked.
        if count as usize > *budget {
            *budget = 0;
            return false;
        }
        *budget -= count as usize;
        let mut next = head + 1;
        while next > 0 {
            let (story, prev) = self.postings[next as usize - 1];
            out.push(story as i64);
            next = prev;
        }
        true
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

/// Near-duplicate candidates examined per item: the stories sharing the
/// most bands with it. Bounds the work and memory of a document whose items
/// all look alike.
pub const MAX_CANDIDATES: usize = 32;

/// Width of one slab of a [`NearIndex`] (seconds).
pub const SLAB_SECS: i64 = 7 * 86_400;

/// The band index of the stories of the time slabs a process has needed
/// lately, so that an item is compared with the stories dated within the
/// dedup window of its own date, however old. The store reads a slab's
/// stories when an item first needs it ([`NearIndex::missing`],
/// [`NearIndex::fill`]) and drops the least recently used slabs past a size
/// ([`NearIndex::trim`]). Only narrows the search, like [`BandIndex`].
#[derive(Debug, Default)]
pub struct NearIndex {
    slabs: rustc_hash::FxHashMap<i64, Slab>,
    /// Entries over all slabs.
    postings: usize,
    /// Bumped by every lookup: slabs remember when they were last used.
    tick: u64,
    /// The highest story id the index has seen (stories the store added
    /// since are read before the next use).
    pub seen_up_to: i64,
    /// (shared bands, story) of the latest lookup, kept to reuse its memory.
    counted: Vec<(usize, i64)>,
    /// The block of seconds this process's documents took as instants
    /// (see [`crate::filing::InstantSearch`]), held with the index so that
    /// it is forgotten with it (after a failed commit).
    pub instants: Option<(i64, i64)>,
}

/// Entries a slab takes in its hash table before they are merged into its
/// sorted array.
const RECENT_MAX: usize = 1 << 16;

/// Bits of a key that index [`Slab::starts`].
const PREFIX_BITS: u32 = 12;

/// One slab's band entries: most of them in an array sorted by key (8 bytes
/// an entry), the latest in a [`BandIndex`] until they are merged in.
#[derive(Debug, Default)]
struct Slab {
    /// (folded key, story id), sorted.
    frozen: Vec<(u32, u32)>,
    /// Where the keys of each top-[`PREFIX_BITS`]-bit prefix start in
    /// `frozen` (one more entry than prefixes): a lookup searches a few
    /// hundred neighbouring entries, not the whole array.
    starts: Vec<u32>,
    recent: BandIndex,
    /// The lookup that last used it.
    used: u64,
    /// The earliest date it holds: every story from there to its end.
    from: i64,
}

impl Slab {
    fn insert(&mut self, id: i64, bands: &[i64]) {
        self.recent.insert(id, bands);
        if self.recent.len() >= RECENT_MAX {
            self.freeze();
        }
    }

    /// Merges the recent entries into the sorted array.
    fn freeze(&mut self) {
        let recent = std::mem::take(&mut self.recent);
        let mut add: Vec<(u32, u32)> = Vec::with_capacity(recent.len());
        for (&key, &(head, _)) in &recent.heads {
            let mut next = head + 1;
            while next > 0 {
                let (story, prev) = recent.postings[next as usize - 1];
                add.push((key, story));
                next = prev;
            }
        }
        add.sort_unstable();
        // Merged in place from the back: no second copy of the array.
        let old_len = self.frozen.len();
        self.frozen.resize(old_len + add.len(), (0, 0));
        let (mut i, mut j, mut k) = (old_len, add.len(), self.frozen.len());
        while j > 0 {
            k -= 1;
            if i > 0 && self.frozen[i - 1] > add[j - 1] {
                i -= 1;
                self.frozen[k] = self.frozen[i];
            } else {
                j -= 1;
                self.frozen[k] = add[j];
            }
        }
        let shift = 32 - PREFIX_BITS;
        self.starts.clear();
        self.starts.extend((0..=1u32 << PREFIX_BITS).map(|b| {
            self.frozen
                .partition_point(|e| u64::from(e.0 >> shift) < u64::from(b)) as u32
        }));
    }

    /// Appends the stories listed under the folded `key`, at most
    /// `budget` of them (which it lowers); `false` when there were more.
    fn collect_key(&self, key: u32, budget: &mut usize, out: &mut Vec<i64>) -> bool {
        let (lo, hi) = match self.starts.len() {
            0 => (0, self.frozen.len()),
            _ => {
                let b = (key >> (32 - PREFIX_BITS)) as usize;
                (self.starts[b] as usize, self.starts[b + 1] as usize)
            }
        };
        let from = lo + self.frozen[lo..hi].partition_point(|e| e.0 < key);
        let to = from + self.frozen[from..hi].partition_point(|e| e.0 == key);
        // More than the budget (boilerplate): nothing is copied.
        if to - from > *budget {
            *budget = 0;
            return false;
        }
        *budget -= to - from;
        out.extend(self.frozen[from..to].iter().map(|e| e.1 as i64));
        self.recent.collect_key(key, budget, out)
    }

    fn len(&self) -> usize {
        self.frozen.len() + self.recent.len()
    }
}

/// Gives the slabs just held (see [`NearIndex::filler`]) their stories;
/// when dropped, merges them into the slabs' sorted arrays.
pub struct Filler<'a> {
    index: &'a mut NearIndex,
    slabs: (i64, i64),
}

impl Filler<'_> {
    /// One stored story: id, date and stored signature.
    pub fn add(&mut self, id: i64, date: i64, signature: &[u8]) {
        self.index
            .insert(id, date, &bands(&signature_from_bytes(signature)));
    }
}

impl Drop for Filler<'_> {
    fn drop(&mut self) {
        for slab in self.slabs.0..self.slabs.1 {
            if let Some(s) = self.index.slabs.get_mut(&slab)
                && !s.recent.is_empty()
            {
                s.freeze();
            }
        }
    }
}

/// What a slab is read in addition to: a whole day (see [`NearIndex::missing`]).
const READ_STEP: i64 = 86_400;

/// The slab a date falls in.
fn slab_of(date: i64) -> i64 {
    date.div_euclid(SLAB_SECS)
}

impl NearIndex {
    /// The time ranges `[from, to)` whose stories must be read (and given
    /// to [`NearIndex::fill`]) before items dated `dates` are looked up with
    /// `window` seconds either side: what the slabs do not hold yet, merged
    /// into runs. A slab is read from the earliest date an item needs, not
    /// from its start: the rest is read if a later item needs it.
    pub fn missing(&self, dates: impl IntoIterator<Item = i64>, window: i64) -> Vec<(i64, i64)> {
        // (slab, earliest date needed in it)
        let mut need: Vec<(i64, i64)> = Vec::new();
        for d in dates {
            // From the start of its day: the held part of a slab grows back
            // a day at a time, not one read per document.
            let first = d.saturating_sub(window).div_euclid(READ_STEP) * READ_STEP;
            for slab in slab_of(first)..=slab_of(d.saturating_add(window)) {
                let from = first.max(slab * SLAB_SECS);
                if self.slabs.get(&slab).is_none_or(|s| s.from > from) {
                    need.push((slab, from));
                }
            }
        }
        need.sort_unstable();
        need.dedup_by_key(|(slab, _)| *slab);
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for (slab, from) in need {
            let to = self
                .slabs
                .get(&slab)
                .map_or((slab + 1) * SLAB_SECS, |s| s.from);
            match runs.last_mut() {
                Some((_, end)) if *end == from => *end = to,
                _ => runs.push((from, to)),
            }
        }
        runs
    }

    /// Holds the slabs of `[from, to)` (a range from [`NearIndex::missing`])
    /// with `stories` (id, date, stored signature), all the stories the
    /// store has dated in that range.
    pub fn fill<'a>(
        &mut self,
        from: i64,
        to: i64,
        stories: impl IntoIterator<Item = (i64, i64, &'a [u8])>,
    ) {
        let mut filler = self.filler(from, to);
        for (id, date, sig) in stories {
            filler.add(id, date, sig);
        }
    }

    /// Holds `[from, to)` (a range from [`NearIndex::missing`]), to be given
    /// its stories one at a time through the returned [`Filler`] (a store
    /// streaming them).
    pub fn filler(&mut self, from: i64, to: i64) -> Filler<'_> {
        let slabs = (slab_of(from), slab_of(to.saturating_sub(1)) + 1);
        for slab in slabs.0..slabs.1 {
            let s = self.slabs.entry(slab).or_insert_with(|| Slab {
                from: (slab + 1) * SLAB_SECS,
                ..Slab::default()
            });
            s.used = self.tick;
            s.from = s.from.min(from.max(slab * SLAB_SECS));
        }
        Filler { index: self, slabs }
    }

    /// Indexes a story dated `date`, when its slab holds that date
    /// (otherwise the store has it, and reading the slab later finds it).
    pub fn insert(&mut self, id: i64, date: i64, bands: &[i64]) {
        if let Some(slab) = self.slabs.get_mut(&slab_of(date))
            && date >= slab.from
            && u32::try_from(id).is_ok()
        {
            slab.insert(id, bands);
            self.postings += bands.len();
        }
        self.seen_up_to = self.seen_up_to.max(id);
    }

    /// The candidates for an item dated `date`: up to [`MAX_CANDIDATES`]
    /// stories of the slabs within `window` of it that share a band with
    /// it, those sharing the most bands first (ties: the oldest), written
    /// to `out`. The slabs must be held (see [`NearIndex::missing`]).
    pub fn candidates(&mut self, date: i64, window: i64, bands: &[i64], out: &mut Vec<i64>) {
        out.clear();
        self.tick += 1;
        let slabs = slab_of(date.saturating_sub(window))..=slab_of(date.saturating_add(window));
        let mut held: [Option<&Slab>; 8] = [None; 8];
        let mut n = 0;
        for slab in slabs.clone() {
            if let Some(s) = self.slabs.get_mut(&slab) {
                s.used = self.tick;
            }
        }
        let mut more: Vec<&Slab> = Vec::new();
        for slab in slabs {
            if let Some(s) = self.slabs.get(&slab) {
                if n < held.len() {
                    held[n] = Some(s);
                    n += 1;
                } else {
                    more.push(s);
                }
            }
        }
        for &key in bands {
            let (mark, mut budget) = (out.len(), MAX_POSTINGS_PER_KEY);
            let all = held[..n]
                .iter()
                .flatten()
                .chain(more.iter())
                .all(|s| s.collect_key(fold(key), &mut budget, out));
            if !all {
                out.truncate(mark);
            }
        }
        out.sort_unstable();
        // (shared bands, id) runs, most shared first, then the oldest.
        let counted = &mut self.counted;
        counted.clear();
        for run in out.chunk_by(|a, b| a == b) {
            counted.push((run.len(), run[0]));
        }
        counted.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        counted.truncate(MAX_CANDIDATES);
        out.clear();
        out.extend(counted.iter().map(|&(_, id)| id));
    }

    /// Drops the least recently used slabs until the index holds at most
    /// `max_postings` entries (slabs used by the latest lookup stay).
    pub fn trim(&mut self, max_postings: usize) {
        while self.postings > max_postings {
            let oldest = self
                .slabs
                .iter()
                .filter(|(_, s)| s.used < self.tick)
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k);
            let Some(k) = oldest else {
                return;
            };
            if let Some(s) = self.slabs.remove(&k) {
                self.postings -= s.len();
            }
        }
    }

    /// How many (story, band) entries the index holds.
    pub fn len(&self) -> usize {
        self.postings
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.postings == 0
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
    fn the_near_index_reads_the_slabs_an_item_needs_and_finds_stories_by_date() {
        let day = 86_400;
        let t0 = 400 * SLAB_SECS;
        let sig = |t: &str| signature(t, "").unwrap();
        let vote = sig("States at the UN General Assembly vote to scrutinise Russia's record");
        let other = sig("The Third Committee adopted a resolution on the death penalty");
        let mut index = NearIndex::default();
        // An item dated t0 with a 7-day window needs the slabs around it.
        let missing = index.missing([t0], 7 * day);
        assert_eq!(missing, vec![(t0 - SLAB_SECS, t0 + 2 * SLAB_SECS)]);
        let stored = signature_to_bytes(&vote);
        let far = signature_to_bytes(&other);
        index.fill(
            missing[0].0,
            missing[0].1,
            [
                (1, t0 - 3 * day, stored.as_slice()),
                (2, t0 + day, far.as_slice()),
            ],
        );
        assert!(index.missing([t0, t0 + day], 7 * day).is_empty());
        assert_eq!(index.len(), 2 * BANDS);
        let mut out = Vec::new();
        index.candidates(t0, 7 * day, &bands(&vote), &mut out);
        assert_eq!(out, vec![1]);
        // A story added later joins its slab, when the slab is held.
        index.insert(3, t0, &bands(&vote));
        index.insert(4, t0 + 40 * SLAB_SECS, &bands(&vote));
        index.candidates(t0, 7 * day, &bands(&vote), &mut out);
        assert_eq!(out, vec![1, 3]);
        assert_eq!(index.seen_up_to, 4);
        // Years later: other slabs, read from the store when needed.
        let later = t0 + 100 * SLAB_SECS;
        assert_eq!(index.missing([later], 7 * day).len(), 1);
        index.candidates(later, 7 * day, &bands(&vote), &mut out);
        assert!(out.is_empty());
        // Trimming drops the slabs the last lookup did not use.
        index.fill(
            later - SLAB_SECS,
            later + 2 * SLAB_SECS,
            [(5, later, stored.as_slice())],
        );
        index.candidates(later, 7 * day, &bands(&vote), &mut out);
        assert_eq!(out, vec![5]);
        index.trim(0);
        assert_eq!(index.len(), BANDS, "only the slab in use stays");
        assert_eq!(index.missing([t0], 7 * day).len(), 1);
    }

    #[test]
    fn a_slab_is_read_from_the_earliest_date_needed_and_the_rest_when_needed() {
        let day = 86_400;
        let t0 = 400 * SLAB_SECS;
        let vote = signature(
            "States at the UN General Assembly vote on Russia's record",
            "",
        )
        .unwrap();
        let stored = signature_to_bytes(&vote);
        let mut index = NearIndex::default();
        // An item three days into a slab, 2-day window: from a day into it
        // to the slab's end.
        assert_eq!(
            index.missing([t0 + 3 * day], 2 * day),
            vec![(t0 + day, t0 + SLAB_SECS)]
        );
        index.fill(
            t0 + day,
            t0 + SLAB_SECS,
            [(2, t0 + 2 * day, stored.as_slice())],
        );
        assert!(index.missing([t0 + 3 * day], 2 * day).is_empty());
        // A story dated before what the slab holds waits for the store.
        index.insert(1, t0, &bands(&vote));
        assert_eq!(index.len(), BANDS);
        // An earlier item needs the rest of the slab, and the slab before
        // (from the start of a day).
        assert_eq!(
            index.missing([t0 + day / 2], 2 * day),
            vec![(t0 - 2 * day, t0 + day)]
        );
        index.fill(t0 - 2 * day, t0 + day, [(1, t0, stored.as_slice())]);
        let mut out = Vec::new();
        index.candidates(t0 + day / 2, 2 * day, &bands(&vote), &mut out);
        assert_eq!(out, vec![1, 2]);
        assert_eq!(index.len(), 2 * BANDS, "each story once");
        // A later item: only the next slab.
        assert_eq!(
            index.missing([t0 + 6 * day], 2 * day),
            vec![(t0 + SLAB_SECS, t0 + 2 * SLAB_SECS)]
        );
    }

    #[test]
    fn boilerplate_keys_are_skipped_and_the_rare_ones_rank_first() {
        let t0 = 10 * SLAB_SECS;
        let body = "The Human Rights Council adopted a resolution on the situation of human rights defenders urging States to release those detained for their work and to end reprisals";
        let mut index = NearIndex::default();
        index.fill(t0 - SLAB_SECS, t0 + 2 * SLAB_SECS, std::iter::empty());
        let sigs: Vec<Signature> = (0..2000)
            .map(|i| {
                signature(
                    &format!("Report {i} on defenders"),
                    &format!("{body} item {i}"),
                )
                .unwrap()
            })
            .collect();
        for (i, s) in sigs.iter().enumerate() {
            index.insert(i as i64 + 1, t0, &bands(s));
        }
        let mut out = Vec::new();
        for i in [0usize, 777, 1999] {
            index.candidates(t0, 86_400, &bands(&sigs[i]), &mut out);
            assert!(out.len() <= MAX_CANDIDATES);
            assert_eq!(out.first(), Some(&(i as i64 + 1)), "its own copy first");
        }
    }

    #[test]
    fn slabs_merge_their_recent_entries_into_the_sorted_array_and_still_find_everything() {
        let t0 = 10 * SLAB_SECS;
        let mut index = NearIndex::default();
        index.fill(t0, t0 + SLAB_SECS, std::iter::empty());
        let sigs: Vec<Signature> = (0..9000)
            .map(|i| {
                signature(&format!("story {i} number {} about {}", i * 7, i % 13), "").unwrap()
            })
            .collect();
        for (i, s) in sigs.iter().enumerate() {
            index.insert(i as i64 + 1, t0 + 60, &bands(s));
        }
        let slab = &index.slabs[&slab_of(t0)];
        assert!(slab.frozen.len() >= RECENT_MAX, "merged at least once");
        assert!(slab.frozen.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert_eq!(index.len(), 9000 * BANDS);
        let mut out = Vec::new();
        for i in (0..9000).step_by(97) {
            index.candidates(t0 + 60, 3600, &bands(&sigs[i]), &mut out);
            assert_eq!(out.first(), Some(&(i as i64 + 1)));
        }
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
