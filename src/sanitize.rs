//! Feed HTML → safe HTML and plain text. ammonia lives here.
//!
//! Everything from a feed that may reach a page or an email passes through
//! [`Sanitizer::clean`] first: an allowlist of tags and attributes, only
//! http/https/mailto URLs, relative URLs made absolute, scripts and styles
//! dropped with their content.

use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// A configured HTML sanitiser for one feed (relative URLs resolve against its base).
pub struct Sanitizer {
    builder: Builder<'static>,
}

/// Tags kept in feed HTML; everything else is unwrapped (its text kept).
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
];

impl Sanitizer {
    /// A sanitiser resolving relative URLs against `base` (dropping them when there is none).
    pub fn new(base: Option<&Url>) -> Sanitizer {
        let mut b = Builder::default();
        b.tags(TAGS.iter().copied().collect::<HashSet<_>>())
            .clean_content_tags(
                [
                    "script", "style", "iframe", "object", "embed", "template", "noscript", "svg",
                    "math",
                ]
                .into_iter()
                .collect(),
            )
            .generic_attributes(["title", "lang", "dir"].into_iter().collect())
            .tag_attributes(
                [
                    ("a", ["href", "hreflang"].into_iter().collect()),
                    (
                        "img",
                        ["src", "alt", "width", "height"].into_iter().collect(),
                    ),
                    ("td", ["colspan", "rowspan"].into_iter().collect()),
                    ("th", ["colspan", "rowspan", "scope"].into_iter().collect()),
                    ("time", ["datetime"].into_iter().collect()),
                    ("q", ["cite"].into_iter().collect()),
                    ("blockquote", ["cite"].into_iter().collect()),
                    ("ol", ["start"].into_iter().collect()),
                ]
                .into_iter()
                .collect(),
            )
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            .link_rel(Some("noopener noreferrer nofollow"))
            .strip_comments(true)
            .url_relative(match base {
                Some(u) if matches!(u.scheme(), "http" | "https") => {
                    UrlRelative::RewriteWithBase(u.clone())
                }
                _ => UrlRelative::PassThrough,
            });
        Sanitizer { builder: b }
    }

    /// Sanitised HTML.
    pub fn clean(&self, html: &str) -> String {
        self.builder.clean(html).to_string()
    }
}

/// Plain text of an HTML fragment: tags dropped, entities decoded, white space collapsed.
pub fn html_to_text(html: &str) -> String {
    if !html.contains(['<', '&']) {
        return collapse_ws(html);
    }
    // ammonia with no tags allowed leaves text escaped with a handful of named entities.
    let escaped = Builder::empty()
        .clean_content_tags(["script", "style"].into_iter().collect())
        .clean(html)
        .to_string();
    collapse_ws(&unescape_basic(&escaped))
}

/// Plain text of sanitised HTML (ammonia output), without parsing it again.
pub fn clean_html_to_text(clean: &str) -> String {
    let mut out = String::with_capacity(clean.len() / 2);
    let mut in_tag = false;
    for c in clean.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    collapse_ws(&unescape_basic(&out))
}

/// At most `max` characters of `text`, cut on a word boundary, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => &cut[..i],
        _ => &cut[..],
    };
    format!(
        "{}…",
        cut.trim_end_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Decodes the entities html5ever's serializer emits.
fn unescape_basic(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_html_is_neutralised() {
        let base = Url::parse("https://ishr.ch/news/").unwrap();
        let s = Sanitizer::new(Some(&base));
        let out = s.clean(
            r#"<p onclick="evil()">Hi <script>alert(1)</script><a href="javascript:alert(1)">x</a>
            <img src="/a.png" onerror="x()"><iframe src="https://e.vil"></iframe><a href="report.pdf">r</a>
            <style>p{}</style><svg><script>1</script></svg></p>"#,
        );
        assert!(!out.contains("script"), "{out}");
        assert!(
            !out.contains("onclick") && !out.contains("onerror"),
            "{out}"
        );
        assert!(!out.contains("javascript:"), "{out}");
        assert!(!out.contains("iframe"), "{out}");
        assert!(out.contains(r#"src="https://ishr.ch/a.png""#), "{out}");
        assert!(
            out.contains(r#"href="https://ishr.ch/news/report.pdf""#),
            "{out}"
        );
    }

    #[test]
    fn text_is_extracted_and_entities_decoded() {
        assert_eq!(
            html_to_text("<b>Rock</b> &amp; Roll&nbsp;&#8217;s <i>tour</i>"),
            "Rock & Roll ’s tour"
        );
        assert_eq!(html_to_text("a < b"), "a < b");
        assert_eq!(
            clean_html_to_text("<p>One</p><p>Two &amp; three</p>"),
            "One Two & three"
        );
    }

    #[test]
    fn excerpt_cuts_on_a_word() {
        let e = excerpt("The Human Rights Council adopted a resolution today", 30);
        assert_eq!(e, "The Human Rights Council…");
        assert_eq!(excerpt("short", 30), "short");
    }
}
