//! Rule-based tags and exclusions. Pure: no I/O.
//!
//! Keywords match whole words and phrases, ignoring case and accents
//! ("China" tags "China's lawyers" and "CHINA", not "Chinatown"; "Genève"
//! matches "geneve"). Regular expressions match the raw field text. Feed
//! categories map to tags by name. Each rule looks only at its `fields`.

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{Config, Field, Matcher, TagRule};

/// The text of an item, field by field, as the rules see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemText<'a> {
    /// Plain-text title.
    pub title: &'a str,
    /// Plain text of the summary.
    pub summary: &'a str,
    /// Plain text of the content.
    pub content: &'a str,
    /// The feed's categories.
    pub categories: &'a [String],
}

/// What the rules say about an item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tagging {
    /// Its tags, sorted, without repeats.
    pub tags: Vec<String>,
    /// Whether an exclusion rule matched: kept in the store, left out of outputs.
    pub excluded: bool,
}

#[derive(Debug)]
struct Rule {
    /// The tag, or `None` for an exclusion rule.
    tag: Option<String>,
    fields: [bool; 4],
    regex: Vec<Regex>,
    categories: Vec<String>,
}

/// Compiled tag and exclusion rules.
#[derive(Debug, Default)]
pub struct Tagger {
    rules: Vec<Rule>,
    /// Every folded word of a keyword → its number.
    vocabulary: rustc_hash::FxHashMap<Box<[u8]>, u32>,
    /// By the number of a keyword's last word: (rule index, the keyword's
    /// word numbers).
    by_last: Vec<Vec<(usize, Box<[u32]>)>>,
    /// A quick "no" for most ASCII words, before the vocabulary lookup.
    sieve: Sieve,
}

/// Which lengths and which (first, last) letter pairs the ASCII words of
/// the vocabulary have.
#[derive(Debug)]
struct Sieve {
    /// Bit `n` for length `n` (63 for 63 and longer).
    lengths: u64,
    /// Bit `first * 256 + last`, letters lower-cased.
    ends: Box<[u64; 1024]>,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            lengths: 0,
            ends: Box::new([0; 1024]),
        }
    }
}

impl Sieve {
    fn add(&mut self, word: &[u8]) {
        if let (Some(&f), Some(&l)) = (word.first(), word.last()) {
            self.lengths |= 1 << word.len().min(63);
            let bit = (f | 0x20) as usize * 256 + (l | 0x20) as usize;
            self.ends[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Whether the ASCII letters and digits `word` may fold to a word of
    /// the vocabulary (`| 0x20` lower-cases letters and keeps digits).
    #[inline]
    fn may_hold(&self, word: &[u8]) -> bool {
        let (f, l) = (word[0] | 0x20, word[word.len() - 1] | 0x20);
        let bit = f as usize * 256 + l as usize;
        self.lengths & (1 << word.len().min(63)) != 0
            && self.ends[bit / 64] & (1 << (bit % 64)) != 0
    }
}

fn field_index(f: Field) -> usize {
    match f {
        Field::Title => 0,
        Field::Summary => 1,
        Field::Content => 2,
        Field::Categories => 3,
    }
}

/// Keyword matching over one item, field by field. Each word of a field is
/// counted; the few that pass the sieve are looked up in the vocabulary.
struct Scan<'t> {
    tagger: &'t Tagger,
    hit: Vec<bool>,
    field: usize,
    /// Words seen so far in the field.
    count: u32,
    /// Vocabulary words found in the field: (position, number).
    found: Vec<(u32, u32)>,
    /// A word being folded.
    word: String,
}

impl<'t> Scan<'t> {
    fn new(tagger: &'t Tagger) -> Scan<'t> {
        Scan {
            tagger,
            hit: vec![false; tagger.rules.len()],
            field: 0,
            count: 0,
            found: Vec::new(),
            word: String::new(),
        }
    }

    /// Matches the keywords in `texts`, plain text (each a run of the
    /// field's text; a word never spans two).
    fn field<T: AsRef<str>>(&mut self, field: usize, texts: impl IntoIterator<Item = T>) {
        if self.start(field) {
            for text in texts {
                self.scan::<false>(text.as_ref());
            }
        }
    }

    /// Matches the keywords in the text of sanitised HTML, read straight
    /// from the HTML: a block-level tag ends a word (an inline one does
    /// not), character references are decoded
    /// (the words of [`crate::sanitize::text_runs`], without making them).
    fn html_field(&mut self, field: usize, html: &str) {
        if self.start(field) {
            self.scan::<true>(html);
        }
    }

    /// Starts a field; false when there are no keywords to look for.
    fn start(&mut self, field: usize) -> bool {
        (self.field, self.count) = (field, 0);
        self.found.clear();
        !self.tagger.by_last.is_empty()
    }

    /// Counts the words of `text` and looks up those that may be keyword
    /// words. Runs of ASCII letters and digits take a byte path; a word with
    /// other letters (or, in `HTML`, a reference) is folded char by char.
    fn scan<const HTML: bool>(&mut self, text: &str) {
        let b = text.as_bytes();
        let markup = |c: u8| HTML && (c == b'<' || c == b'&');
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if ASCII_WORD[c as usize] {
                let start = i;
                i += 1;
                while i < b.len() && ASCII_WORD[b[i] as usize] {
                    i += 1;
                }
                let goes_on = |i: usize| {
                    HTML && (b[i] == b'&' || (b[i] == b'<' && crate::sanitize::inline_tag_at(b, i)))
                };
                if i == b.len() || (b[i] < 0x80 && !goes_on(i)) {
                    self.ascii_word(&b[start..i]);
                } else {
                    // It may go on with a letter beyond ASCII or a reference.
                    i = self.folded_word::<HTML>(text, start);
                }
                continue;
            }
            i = if HTML && c == b'<' {
                crate::sanitize::skip_tag(b, i)
            } else if c >= 0x80 || markup(c) {
                self.folded_word::<HTML>(text, i)
            } else {
                i + 1
            };
        }
    }

    /// A word of ASCII letters and digits.
    #[inline]
    fn ascii_word(&mut self, word: &[u8]) {
        self.count += 1;
        if self.tagger.sieve.may_hold(word) {
            self.look_up_ascii(word);
        }
    }

    /// The vocabulary lookup of an ASCII word that passed the sieve.
    #[inline(never)]
    fn look_up_ascii(&mut self, word: &[u8]) {
        let mut lower = [0u8; 64];
        let id = if word.len() <= lower.len() {
            let lower = &mut lower[..word.len()];
            lower.copy_from_slice(word);
            lower.make_ascii_lowercase();
            self.tagger.vocabulary.get(&*lower)
        } else {
            self.tagger
                .vocabulary
                .get(word.to_ascii_lowercase().as_slice())
        };
        if let Some(&id) = id {
            self.matched(id);
        }
    }

    /// Folds the word at `i` of `text` character (in `HTML`, also
    /// reference) by character, up to a tag or the first unit that leaves
    /// no word under way; returns where it stopped.
    fn folded_word<const HTML: bool>(&mut self, text: &str, mut i: usize) -> usize {
        self.word.clear();
        let b = text.as_bytes();
        while i < b.len() {
            if HTML && b[i] == b'<' {
                // An inline tag does not end the word ("Hong<b>Kong</b>").
                if crate::sanitize::inline_tag_at(b, i) {
                    i = crate::sanitize::skip_tag(b, i);
                    continue;
                }
                break;
            }
            let (unit, len) = match b[i] {
                b'&' if HTML => char_ref(&text[i..]),
                c => {
                    let n = utf8_len(c);
                    (std::borrow::Cow::Borrowed(&text[i..i + n]), n)
                }
            };
            i += len;
            for ch in unit.chars() {
                if ch.is_alphanumeric() {
                    fold_char(ch, &mut self.word);
                } else {
                    self.end_word();
                }
            }
            if self.word.is_empty() {
                return i;
            }
        }
        self.end_word();
        i
    }

    /// Counts the folded word under way, if any, and looks it up.
    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        self.count += 1;
        if let Some(&id) = self.tagger.vocabulary.get(self.word.as_bytes()) {
            self.matched(id);
        }
        self.word.clear();
    }

    /// The current word is vocabulary word `id`: the keywords ending with
    /// it match when their earlier words came just before.
    fn matched(&mut self, id: u32) {
        let pos = self.count - 1;
        self.found.push((pos, id));
        let found = &self.found;
        for (rule, phrase) in &self.tagger.by_last[id as usize] {
            if self.hit[*rule] || !self.tagger.rules[*rule].fields[self.field] {
                continue;
            }
            let n = phrase.len();
            self.hit[*rule] = found.len() >= n
                && found[found.len() - n..]
                    .iter()
                    .zip(phrase.iter())
                    .enumerate()
                    .all(|(k, (&(p, w), &want))| w == want && p + (n - 1 - k) as u32 == pos);
        }
    }
}

impl Tagger {
    /// Compiles `[[tags]]` and `[[exclude]]` rules (validated by the config).
    pub fn new(tags: &[TagRule], exclude: &[Matcher]) -> Tagger {
        let mut t = Tagger::default();
        let all = tags
            .iter()
            .map(|r| (Some(r.name.clone()), &r.matcher, r.categories.as_slice()))
            .chain(exclude.iter().map(|m| (None, m, &[][..])));
        for (i, (tag, matcher, categories)) in all.enumerate() {
            let mut fields = [false; 4];
            for f in &matcher.fields {
                fields[field_index(*f)] = true;
            }
            for kw in &matcher.keywords {
                let mut ids = Vec::new();
                for_each_folded_word(kw, &mut String::new(), &mut |w| {
                    let next = t.vocabulary.len() as u32;
                    ids.push(*t.vocabulary.entry(w.as_bytes().into()).or_insert(next));
                    if w.is_ascii() {
                        t.sieve.add(w.as_bytes());
                    }
                });
                if let Some(&last) = ids.last() {
                    t.by_last.resize(t.vocabulary.len(), Vec::new());
                    t.by_last[last as usize].push((i, ids.into()));
                }
            }
            t.rules.push(Rule {
                tag,
                fields,
                regex: matcher
                    .regex
                    .iter()
                    .filter_map(|r| Regex::new(r).ok())
                    .collect(),
                categories: categories.iter().map(|c| folded_words(c)).collect(),
            });
        }
        t
    }

    /// Tags for an item: `feed_tags` plus every matching rule's tag; and
    /// whether an exclusion rule matched.
    pub fn apply(&self, feed_tags: &[String], item: &ItemText<'_>) -> Tagging {
        let mut scan = Scan::new(self);
        scan.field(0, [item.title]);
        scan.field(1, [item.summary]);
        scan.field(2, [item.content]);
        scan.field(3, item.categories);
        let cats = item.categories.join(" \u{1f} ");
        let texts = [item.title, item.summary, item.content, cats.as_str()];
        self.decide(feed_tags, scan.hit, Some(&texts), item.categories)
    }

    /// [`apply`](Tagger::apply) for an item whose summary and content are
    /// sanitised HTML: keyword rules read the words straight from the HTML,
    /// and its plain text is made only when a regex rule needs it.
    pub fn apply_html(
        &self,
        feed_tags: &[String],
        title: &str,
        summary_html: Option<&str>,
        content_html: Option<&str>,
        categories: &[String],
    ) -> Tagging {
        if self.rules.iter().any(|r| !r.regex.is_empty()) {
            let text = |h: Option<&str>| {
                h.map(|h| crate::sanitize::clean_html_to_text(h, usize::MAX))
                    .unwrap_or_default()
            };
            let (summary, content) = (text(summary_html), text(content_html));
            return self.apply(
                feed_tags,
                &ItemText {
                    title,
                    summary: &summary,
                    content: &content,
                    categories,
                },
            );
        }
        let mut scan = Scan::new(self);
        scan.field(0, [title]);
        // A block-level tag between two runs of text ends a word.
        scan.html_field(1, summary_html.unwrap_or_default());
        scan.html_field(2, content_html.unwrap_or_default());
        scan.field(3, categories);
        self.decide(feed_tags, scan.hit, None, categories)
    }

    /// The tags of the rules whose keywords matched (`hit`), or whose regex
    /// matches one of their fields' plain `texts` (title, summary, content,
    /// categories), or whose categories the item has.
    fn decide(
        &self,
        feed_tags: &[String],
        mut hit: Vec<bool>,
        texts: Option<&[&str; 4]>,
        categories: &[String],
    ) -> Tagging {
        let item_cats: Vec<String> = if self.rules.iter().any(|r| !r.categories.is_empty()) {
            categories.iter().map(|c| folded_words(c)).collect()
        } else {
            Vec::new()
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if hit[i] {
                continue;
            }
            hit[i] = rule.regex.iter().any(|re| {
                texts.is_some_and(|texts| {
                    texts
                        .iter()
                        .enumerate()
                        .any(|(f, t)| rule.fields[f] && re.is_match(t))
                })
            }) || rule.categories.iter().any(|c| item_cats.contains(c));
        }
        let mut tags: Vec<String> = feed_tags.to_vec();
        let mut excluded = false;
        for (rule, _) in self.rules.iter().zip(&hit).filter(|(_, h)| **h) {
            match &rule.tag {
                Some(t) => tags.push(t.clone()),
                None => excluded = true,
            }
        }
        tags.sort();
        tags.dedup();
        Tagging { tags, excluded }
    }
}

/// A fingerprint of everything that decides tags: the rules, the exclusions
/// and each feed's tags. When it changes, stored stories are re-tagged.
pub fn rules_fingerprint(config: &Config) -> String {
    let feeds: Vec<(&str, &[String])> = config
        .feeds
        .iter()
        .map(|f| (f.name.as_str(), f.tags.as_slice()))
        .collect();
    let text = format!("{:?}|{:?}|{:?}", config.tags, config.exclude, feeds);
    format!("{:016x}", xxh3_64(text.as_bytes()))
}

/// ASCII letters and digits, by byte.
static ASCII_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 128 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    t
};

/// Appends `ch` (a letter or digit) lower-cased and without accents.
fn fold_char(ch: char, word: &mut String) {
    if ch.is_ascii() {
        word.push(ch.to_ascii_lowercase());
    } else {
        for d in std::iter::once(ch).nfd().filter(|d| !is_combining_mark(*d)) {
            word.extend(d.to_lowercase());
        }
    }
}

/// Length of the UTF-8 sequence a leading byte starts.
fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// The character reference at the start of `s` (a `&`): its text and its
/// length, or a lone `&` when it is none.
fn char_ref(s: &str) -> (std::borrow::Cow<'_, str>, usize) {
    use std::borrow::Cow;
    let b = s.as_bytes();
    let name = b[1..]
        .iter()
        .take(33)
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'#'));
    let Some(end) = name.filter(|n| *n > 0 && b[1 + n] == b';').map(|n| n + 1) else {
        return (Cow::Borrowed("&"), 1);
    };
    let r = &s[..=end];
    // What sanitised HTML escapes: none of them a letter or a digit.
    let text = match r {
        "&lt;" => "<",
        "&gt;" => ">",
        "&amp;" => "&",
        "&quot;" => "\"",
        "&#39;" | "&apos;" => "'",
        "&nbsp;" => "\u{a0}",
        _ => {
            return match html_escape::decode_html_entities(r) {
                Cow::Owned(t) => (Cow::Owned(t), r.len()),
                Cow::Borrowed(_) => (Cow::Borrowed("&"), 1),
            };
        }
    };
    (Cow::Borrowed(text), r.len())
}

/// The words of `text`, lower-cased and without accents, separated by single spaces.
fn folded_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for_each_folded_word(text, &mut String::new(), &mut |w| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    });
    out
}

/// Calls `f` with each word of `text`, lower-cased and without accents,
/// folded in `buf`: a word is a run of letters and digits. The plain
/// definition the scanners above are tested against (keywords and
/// categories are folded with it).
fn for_each_folded_word(text: &str, buf: &mut String, f: &mut impl FnMut(&str)) {
    buf.clear();
    for ch in text.chars().chain([' ']) {
        if ch.is_alphanumeric() {
            fold_char(ch, buf);
        } else if !buf.is_empty() {
            f(buf);
            buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_from_html_are_the_words_of_its_text() {
        let cases = [
            "<p>Hong<b>Kong</b> lawyers &amp; <a href=\"x?a=1&amp;b=>\">activists</a></p>",
            "<p>Zürich, São Paulo &eacute;t&eacute; — ÉCOLE naïve</p><ul><li>Ångström 42</li></ul>",
            "plain text, no tags: UN Human-Rights Council",
            "<p>a&nbsp;b&#233;c</p><p></p>  <br/>x",
            "",
            "<p>日本語 テキスト and Кириллица</p>",
        ];
        let words = |texts: &mut dyn Iterator<Item = std::borrow::Cow<'_, str>>| {
            let mut out = Vec::new();
            for t in texts {
                for_each_folded_word(&t, &mut String::new(), &mut |w| out.push(w.to_string()));
            }
            out
        };
        for html in cases {
            let direct = words(&mut crate::sanitize::text_runs(html));
            let text = crate::sanitize::clean_html_to_text(html, usize::MAX);
            let via_text = words(&mut std::iter::once(text.into()));
            assert_eq!(direct, via_text, "{html}");
        }
        assert_eq!(
            folded_words("Genève, São-Paulo 42nd HONG  kong"),
            "geneve sao paulo 42nd hong kong"
        );
    }

    /// A tagger with tag `tNN` for the NNth keyword.
    fn one_tag_per_keyword(keywords: &[&str]) -> Tagger {
        let rules: Vec<TagRule> = keywords
            .iter()
            .enumerate()
            .map(|(i, k)| rule(&format!("t{i:02}"), &[k]))
            .collect();
        Tagger::new(&rules, &[])
    }

    /// Fewer than `max` tokens drawn at random, joined.
    fn soup(rng: &mut impl rand::Rng, tokens: &[&str], max: usize) -> String {
        let n = rng.random_range(0..max);
        (0..n)
            .map(|_| tokens[rng.random_range(0..tokens.len())])
            .collect()
    }

    /// The scanner against the rule it implements: a keyword matches when
    /// its folded words appear, in a row, among the folded words of a field.
    #[test]
    fn keyword_scan_agrees_with_matching_folded_word_sequences() {
        use rand::SeedableRng;
        let keywords = [
            "Hong Kong",
            "China",
            "Genève",
            "HRC",
            "human rights council",
            "42",
            "ǅungla",
            "straße",
            "x",
            "São Paulo",
            "İstanbul",
        ];
        let tagger = one_tag_per_keyword(&keywords);
        let tokens = [
            "Hong",
            "KONG",
            "kong",
            "Genève",
            "GENEVE",
            "Gene\u{300}ve",
            "China",
            "China’s",
            "Chinatown",
            "x",
            "X",
            "—",
            "é",
            ",",
            " ",
            "  ",
            "\n",
            "42",
            "4",
            "2",
            "hrc",
            "HRC.",
            "Human",
            "RIGHTS",
            "council",
            "Straße",
            "STRASSE",
            "ǅungla",
            "ǆungla",
            "İstanbul",
            "istanbul",
            "São",
            "Sao",
            "Paulo",
            "-",
            "'",
            "日本",
            "a\u{301}",
            "Ω",
            " the ",
            " of ",
            " the ",
            " of ",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut tagged = 0;
        for _ in 0..5000 {
            let text = soup(&mut rng, &tokens, 12);
            let words = format!(" {} ", folded_words(&text));
            let want: Vec<String> = keywords
                .iter()
                .enumerate()
                .filter(|(_, k)| words.contains(&format!(" {} ", folded_words(k))))
                .map(|(i, _)| format!("t{i:02}"))
                .collect();
            tagged += usize::from(!want.is_empty());
            assert_eq!(tagger.apply(&[], &title(&text)).tags, want, "{text:?}");
        }
        assert!(tagged > 1000, "the texts exercise the keywords: {tagged}");
    }

    /// Words read straight from sanitised HTML are the words of its text
    /// runs: same count, same keyword words at the same places.
    #[test]
    fn html_scan_agrees_with_scanning_the_decoded_text_runs() {
        use rand::SeedableRng;
        let tagger = one_tag_per_keyword(&[
            "Hong Kong",
            "Genève",
            "A",
            "é",
            "x",
            "lt",
            "amp",
            "foo",
            "42",
        ]);
        let tokens = [
            "<p>",
            "</p>",
            "<br/>",
            "<a href=\"x?a=1&amp;b=>\">",
            "</a>",
            "<img alt='a>b'>",
            "&amp;",
            "&lt;",
            "&gt;",
            "&quot;",
            "&#39;",
            "&nbsp;",
            "&eacute;",
            "&#233;",
            "&#x41;",
            "&#65;",
            "&foo;",
            "&",
            ";",
            "&ampx;",
            "Gen",
            "&egrave;ve",
            "Genève",
            "ve",
            "Hong",
            "KONG",
            " ",
            "  ",
            "\n",
            "’",
            "é",
            "e\u{301}",
            "42",
            "x",
            "A",
            "lt",
            "amp",
            "foo",
            "日本",
            ",",
            "-",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut words = 0;
        for _ in 0..5000 {
            let html = soup(&mut rng, &tokens, 16);
            let mut direct = Scan::new(&tagger);
            direct.html_field(2, &html);
            let mut runs = Scan::new(&tagger);
            runs.field(2, crate::sanitize::text_runs(&html));
            assert_eq!(
                (direct.count, &direct.found, &direct.hit),
                (runs.count, &runs.found, &runs.hit),
                "{html:?}"
            );
            words += direct.found.len();
        }
        assert!(words > 5000, "the texts exercise the keywords: {words}");
    }

    #[test]
    fn html_and_text_entry_points_tag_alike() {
        let tagger = Tagger::new(
            &[
                rule("china", &["Hong Kong"]),
                rule("lawyers", &["lawyer", "lawyers"]),
                rule("un", &["human rights council"]),
            ],
            &[],
        );
        let html = "<p>Hong <em>Kong</em> lawyers at the Human&nbsp;Rights Council</p>";
        let text = crate::sanitize::clean_html_to_text(html, usize::MAX);
        let a = tagger.apply_html(&[], "Title", None, Some(html), &[]);
        let b = tagger.apply(
            &[],
            &ItemText {
                title: "Title",
                summary: "",
                content: &text,
                categories: &[],
            },
        );
        assert_eq!(a, b);
        assert_eq!(a.tags, vec!["china", "lawyers", "un"]);
        // An inline tag inside a word does not split it; a block tag does.
        let x = Tagger::new(&[rule("xinjiang", &["Xinjiang"])], &[]);
        let tags = |html: &str| x.apply_html(&[], "T", None, Some(html), &[]).tags;
        assert_eq!(tags("<p><b>Xin</b>jiang camps</p>"), vec!["xinjiang"]);
        assert!(tags("<p>Xin</p><p>jiang</p>").is_empty());
    }
    use crate::config::ALL_FIELDS;

    fn rule(name: &str, keywords: &[&str]) -> TagRule {
        TagRule {
            name: name.into(),
            matcher: Matcher {
                keywords: keywords.iter().map(|k| k.to_string()).collect(),
                regex: vec![],
                fields: ALL_FIELDS.to_vec(),
            },
            categories: vec![],
        }
    }

    fn title(t: &str) -> ItemText<'_> {
        ItemText {
            title: t,
            ..Default::default()
        }
    }

    #[test]
    fn whole_words_and_phrases_match_without_case_or_accents() {
        let t = Tagger::new(
            &[
                rule("china", &["China", "Hong Kong"]),
                rule("un-hrc", &["Human Rights Council"]),
                rule("geneva", &["Genève"]),
            ],
            &[],
        );
        let tags = |s: &str| t.apply(&[], &title(s)).tags;
        assert_eq!(tags("China's lawyers"), vec!["china"]);
        assert_eq!(tags("A walk in Chinatown"), Vec::<String>::new());
        assert_eq!(tags("protest in HONG KONG today"), vec!["china"]);
        assert_eq!(tags("Hong Konger"), Vec::<String>::new());
        assert_eq!(tags("session in Geneve"), vec!["geneva"]);
        assert_eq!(tags("GENÈVE"), vec!["geneva"]);
        assert_eq!(
            t.apply(
                &["ngo".into()],
                &ItemText {
                    summary: "the UN Human Rights Council voted",
                    ..Default::default()
                }
            )
            .tags,
            vec!["ngo", "un-hrc"]
        );
    }

    #[test]
    fn fields_regex_categories_and_exclusions() {
        let mut title_only = rule("russia", &["Russia"]);
        title_only.matcher.fields = vec![Field::Title];
        let mut re = rule("upr", &[]);
        re.matcher.regex = vec![r"\bUPR ?\d+\b".into()];
        let mut cats = rule("sogie", &[]);
        cats.categories = vec!["LGBTI".into(), "Orientation sexuelle".into()];
        let exclude = Matcher {
            keywords: vec!["sponsored".into()],
            regex: vec![],
            fields: vec![Field::Title],
        };
        let t = Tagger::new(&[title_only, re, cats], &[exclude]);
        let body = ItemText {
            title: "Weekly news",
            content: "Russia again",
            ..Default::default()
        };
        assert_eq!(
            t.apply(&[], &body).tags,
            Vec::<String>::new(),
            "content is not a field of this rule"
        );
        assert_eq!(
            t.apply(&[], &title("UPR53 opens: what to know")).tags,
            vec!["upr"]
        );
        assert_eq!(t.apply(&[], &title("UPR 53 opens")).tags, vec!["upr"]);
        let cats = vec!["orientation SEXUELLE".to_string()];
        assert_eq!(
            t.apply(
                &[],
                &ItemText {
                    title: "x",
                    categories: &cats,
                    ..Default::default()
                }
            )
            .tags,
            vec!["sogie"]
        );
        assert!(t.apply(&[], &title("Sponsored: a webinar")).excluded);
        assert!(
            !t.apply(
                &[],
                &ItemText {
                    title: "x",
                    content: "sponsored",
                    ..Default::default()
                }
            )
            .excluded
        );
    }
}
