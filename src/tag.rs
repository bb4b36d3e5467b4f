//! Rule-based tags: per-feed tags and whole-word keyword rules. Pure: no I/O.

use std::collections::HashMap;

use crate::config::TagRule;

/// Compiled keyword rules, matched in one pass over an item's words.
#[derive(Debug, Default)]
pub struct Tagger {
    /// First word of a phrase → (tag index, the phrase's words).
    by_first: HashMap<String, Vec<(usize, Vec<String>)>>,
    names: Vec<String>,
}

impl Tagger {
    /// Compiles `[[tags]]` rules.
    pub fn new(rules: &[TagRule]) -> Tagger {
        let mut t = Tagger::default();
        for (i, rule) in rules.iter().enumerate() {
            t.names.push(rule.name.clone());
            for kw in &rule.keywords {
                let words = words(kw);
                if let Some(first) = words.first() {
                    t.by_first
                        .entry(first.clone())
                        .or_default()
                        .push((i, words.clone()));
                }
            }
        }
        t
    }

    /// Tags for an item: `feed_tags` plus every rule with a keyword among `texts`.
    /// Sorted and without repeats.
    pub fn tags(&self, feed_tags: &[String], texts: &[&str]) -> Vec<String> {
        let mut hit = vec![false; self.names.len()];
        if !self.by_first.is_empty() {
            for text in texts {
                let lower = text.to_lowercase();
                let w: Vec<&str> = split_words(&lower).collect();
                for (pos, word) in w.iter().enumerate() {
                    let Some(cands) = self.by_first.get(*word) else {
                        continue;
                    };
                    for (i, phrase) in cands {
                        if !hit[*i]
                            && w.len() - pos >= phrase.len()
                            && phrase.iter().zip(&w[pos..]).all(|(a, b)| a == b)
                        {
                            hit[*i] = true;
                        }
                    }
                }
            }
        }
        let mut out: Vec<String> = feed_tags.to_vec();
        out.extend(
            hit.iter()
                .zip(&self.names)
                .filter(|(h, _)| **h)
                .map(|(_, n)| n.clone()),
        );
        out.sort();
        out.dedup();
        out
    }
}

/// Lower-cased words: runs of letters and digits. "China's" is `china`, `s`;
/// "Chinatown" is one word, so the keyword `China` does not match it.
fn words(text: &str) -> Vec<String> {
    split_words(&text.to_lowercase())
        .map(str::to_string)
        .collect()
}

/// The words of already lower-cased text, without allocating.
fn split_words(lower: &str) -> impl Iterator<Item = &str> {
    lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagger() -> Tagger {
        Tagger::new(&[
            TagRule {
                name: "china".into(),
                keywords: vec!["China".into(), "Hong Kong".into()],
            },
            TagRule {
                name: "un-hrc".into(),
                keywords: vec!["Human Rights Council".into()],
            },
        ])
    }

    #[test]
    fn whole_words_and_phrases_match() {
        let t = tagger();
        assert_eq!(t.tags(&[], &["China's lawyers"]), vec!["china"]);
        assert_eq!(t.tags(&[], &["A walk in Chinatown"]), Vec::<String>::new());
        assert_eq!(t.tags(&[], &["protest in HONG KONG today"]), vec!["china"]);
        assert_eq!(t.tags(&[], &["Hong Konger"]), Vec::<String>::new());
        assert_eq!(
            t.tags(&["ngo".into()], &["", "the UN Human Rights Council voted"]),
            vec!["ngo", "un-hrc"]
        );
    }
}
