//! Feed HTML → safe HTML and plain text. ammonia lives here.
//!
//! Everything from a feed that may reach a page or an email passes through
//! [`Sanitizer::clean`] first: an allowlist of tags and attributes, only
//! http/https/mailto URLs, relative URLs made absolute, scripts and styles
//! dropped with their content.

use std::borrow::Cow;
use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// A configured HTML sanitiser for one feed (relative URLs resolve against its base).
pub struct Sanitizer {
    /// ammonia, configured when a document first needs it: most feed HTML
    /// takes the fast path, and building ammonia's tables costs about as
    /// much as sanitising a short item.
    builder: std::sync::OnceLock<Builder<'static>>,
    base: Option<Url>,
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
/// Tags removed together with their content.
const CLEAN_CONTENT_TAGS: &[&str] = &[
    "script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math",
];
/// Attributes kept on every allowed tag.
const GENERIC_ATTRS: &[&str] = &["title", "lang", "dir"];
/// Attributes kept on particular tags.
const TAG_ATTRS: &[(&str, &[&str])] = &[
    ("a", &["href", "hreflang"]),
    ("img", &["src", "alt", "width", "height"]),
    ("td", &["colspan", "rowspan"]),
    ("th", &["colspan", "rowspan", "scope"]),
    ("time", &["datetime"]),
    ("q", &["cite"]),
    ("blockquote", &["cite"]),
    ("ol", &["start"]),
];
/// Attributes that hold a URL, in any HTML or SVG element a feed may carry.
/// Every one of them that the allowlist keeps goes through [`filter_url`],
/// in the fast path and in ammonia alike (a test checks the allowlist keeps
/// none that [`filter_url`] cannot judge: `srcset` is a list, so it is never
/// kept).
const URL_ATTRS: &[&str] = &[
    "action",
    "archive",
    "background",
    "cite",
    "classid",
    "codebase",
    "data",
    "dynsrc",
    "formaction",
    "href",
    "icon",
    "imagesrcset",
    "itemtype",
    "longdesc",
    "lowsrc",
    "manifest",
    "ping",
    "poster",
    "profile",
    "src",
    "srcset",
    "usemap",
    "xlink:href",
];
/// URL schemes kept.
const URL_SCHEMES: &[&str] = &["http", "https", "mailto"];
/// Added to every link.
const LINK_REL: &str = "noopener noreferrer nofollow";

impl Sanitizer {
    /// A sanitiser resolving relative URLs against `base` (left as they are when there is none).
    pub fn new(base: Option<&Url>) -> Sanitizer {
        let base = base
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .cloned();
        Sanitizer {
            builder: std::sync::OnceLock::new(),
            base,
        }
    }

    /// ammonia, configured for this sanitiser's base.
    fn builder(&self) -> &Builder<'static> {
        self.builder.get_or_init(|| ammonia_for(self.base.clone()))
    }
}

/// ammonia with gazette's allowlists, resolving relative URLs against `base`.
fn ammonia_for(base: Option<Url>) -> Builder<'static> {
    let mut b = Builder::default();
    b.tags(TAGS.iter().copied().collect::<HashSet<_>>())
        .clean_content_tags(CLEAN_CONTENT_TAGS.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRS.iter().copied().collect())
        .tag_attributes(
            TAG_ATTRS
                .iter()
                .map(|(t, a)| (*t, a.iter().copied().collect()))
                .collect(),
        )
        .url_schemes(URL_SCHEMES.iter().copied().collect())
        .link_rel(Some(LINK_REL))
        .strip_comments(true)
        // [`filter_url`] makes relative URLs absolute, in every URL
        // attribute (ammonia's own rewriting knows only some of them).
        .url_relative(UrlRelative::PassThrough);
    b.attribute_filter(move |_element, attr, value| {
        if is_url_attr(attr) {
            filter_url(value, base.as_ref()).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(value))
        }
    });
    b
}

impl Sanitizer {
    /// Sanitised HTML.
    ///
    /// Most feed HTML is simple, well-formed markup that already uses only
    /// allowed tags: [`fast_clean`] checks that strictly in one pass and only
    /// drops attributes. Anything it is not sure about — an unknown tag, a
    /// comment, an unquoted attribute, an odd URL, unbalanced tags — goes
    /// through ammonia's full parse instead.
    pub fn clean(&self, html: &str) -> String {
        match fast_clean(html, self.base.as_ref()) {
            Some(out) => out,
            None => self.ammonia(html),
        }
    }

    /// As [`Sanitizer::clean`], relative URLs resolving against `base`
    /// (an entry's `xml:base`) instead of the feed's.
    pub fn clean_at(&self, html: &str, base: &Url) -> String {
        if self.base.as_ref() == Some(base) || !matches!(base.scheme(), "http" | "https") {
            return self.clean(html);
        }
        match fast_clean(html, Some(base)) {
            Some(out) => out,
            None => Sanitizer::new(Some(base)).ammonia(html),
        }
    }

    /// Sanitised by ammonia alone (the reference for the fast path).
    pub fn ammonia(&self, html: &str) -> String {
        self.builder().clean(&split_long_text(html)).to_string()
    }
}

/// Plain text longer than this gets an empty comment before ammonia reads it.
const TEXT_NODE_BYTES: usize = 1024;

/// Elements whose content is not markup (raw text, escapable raw text);
/// `plaintext` runs to the end.
const RAW_TEXT_TAGS: &[&str] = &[
    "script",
    "style",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "textarea",
    "title",
    "plaintext",
];

/// `html` with an empty comment before an `&` or a byte `0xC2` (which
/// starts `U+0080`–`U+00BF`, NBSP among them) once every
/// [`TEXT_NODE_BYTES`] of plain text.
///
/// html5ever 0.40's serializer (which ammonia uses) scans from each
/// character it escapes to the next `<` or `>` of the same text node:
/// quadratic on a long run of `&` (320,000 of them took 2.5 s, 640,000 four
/// times that). The comments, which ammonia strips, cut such a run into
/// text nodes serialised one after the other into the same bytes.
/// Comments go only in plain text: tags (quoted values included), comments
/// and the content of raw-text elements are skipped whole, so where this
/// scan and a browser's could disagree (broken markup) this one sees less
/// plain text. A misplaced comment could only change text, never what
/// ammonia lets through.
fn split_long_text(html: &str) -> Cow<'_, str> {
    let b = html.as_bytes();
    if b.len() <= TEXT_NODE_BYTES {
        return Cow::Borrowed(html);
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                run = 0;
                i = skip_markup(b, i);
            }
            b'&' | 0xC2 if run >= TEXT_NODE_BYTES => {
                out.push_str(&html[copied..i]);
                out.push_str("<!---->");
                copied = i;
                run = 0;
                i += 1;
            }
            _ => {
                run += 1;
                i += 1;
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(html);
    }
    out.push_str(&html[copied..]);
    Cow::Owned(out)
}

/// Where the markup starting at `b[i]` (a `<`) ends: past a comment, a
/// CDATA section, a tag, and a raw-text element's content; `i + 1` for a
/// `<` that starts none.
fn skip_markup(b: &[u8], i: usize) -> usize {
    let rest = &b[i..];
    let find = |from: usize, what: &[u8]| {
        memchr::memmem::find(&b[from.min(b.len())..], what)
            .map_or(b.len(), |p| from + p + what.len())
    };
    if rest.starts_with(b"<!--") {
        return find(i + 4, b"-->");
    }
    if rest.starts_with(b"<![CDATA[") {
        return find(i + 9, b"]]>");
    }
    match rest.get(1) {
        Some(c) if c.is_ascii_alphabetic() => {}
        Some(b'/' | b'!' | b'?') => return skip_tag(b, i),
        _ => return i + 1,
    }
    let end = skip_tag(b, i);
    let name_end = rest[1..]
        .iter()
        .position(|c| !c.is_ascii_alphanumeric())
        .map_or(rest.len(), |p| p + 1);
    let name = &rest[1..name_end];
    let Some(raw) = RAW_TEXT_TAGS
        .iter()
        .find(|t| t.as_bytes().eq_ignore_ascii_case(name))
    else {
        return end;
    };
    if *raw == "plaintext" {
        return b.len();
    }
    // The content runs to the element's end tag, in any case.
    let mut j = end;
    while let Some(p) = b.get(j..).and_then(|r| memchr::memmem::find(r, b"</")) {
        let at = j + p;
        let tag = &b[at + 2..];
        if tag.len() >= raw.len() && tag[..raw.len()].eq_ignore_ascii_case(raw.as_bytes()) {
            return at;
        }
        j = at + 2;
    }
    b.len()
}

/// Whether the attribute named `attr` (lower case) holds a URL.
fn is_url_attr(attr: &str) -> bool {
    URL_ATTRS.contains(&attr)
}

/// The one URL filter of every URL attribute, in both paths. `value` is the
/// attribute's value as a browser reads it, character references decoded.
///
/// It is read as browsers read URLs (the WHATWG URL standard, which the
/// `url` crate implements): tabs and newlines anywhere are dropped, and
/// controls and spaces around it, so `jav&#x09;ascript:` is `javascript:`.
/// What is left must be an http, https or mailto URL, written out as the
/// parser understood it; or a relative URL, made absolute against `base`
/// (kept relative without one, unless it reads as another scheme once every
/// space and control is gone). `None`: the attribute is dropped.
pub fn filter_url(value: &str, base: Option<&Url>) -> Option<String> {
    // Most links in feed HTML are absolute http(s) URLs already in the
    // form the parser writes back: they are kept without a parse.
    if is_canonical_web_url(value) {
        return Some(value.to_string());
    }
    // And relative ones, when simple, are joined without a parse.
    if let Some(joined) = base.and_then(|b| join_plain(b, value)) {
        return Some(joined);
    }
    match Url::parse(value) {
        Ok(u) => URL_SCHEMES.contains(&u.scheme()).then(|| u.into()),
        Err(url::ParseError::RelativeUrlWithoutBase) => match base {
            Some(b) => b
                .join(value)
                .ok()
                .filter(|u| URL_SCHEMES.contains(&u.scheme()))
                .map(String::from),
            None => {
                let squeezed: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect();
                if let Some((scheme, _)) = squeezed.split_once(':')
                    && is_scheme(scheme)
                    && !URL_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str())
                {
                    return None;
                }
                Some(
                    value
                        .trim_matches(|c: char| c <= ' ')
                        .chars()
                        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                        .collect(),
                )
            }
        },
        Err(_) => None,
    }
}

/// Whether `v` is an http(s) URL that `Url::parse` would give back
/// unchanged: a conservative check (lower-case host name whose last label
/// starts with a letter, no port or user, a path, no dot segments, only
/// characters the parser never encodes). Anything else is parsed.
pub(crate) fn is_canonical_web_url(v: &str) -> bool {
    let Some(rest) = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
    else {
        return false;
    };
    let Some(slash) = memchr::memchr(b'/', rest.as_bytes()) else {
        return false;
    };
    // One pass over the host: lower-case letters, digits, `-` and `.`,
    // no empty label, no `xn--` label, the last label starting with a letter.
    let host = &rest.as_bytes()[..slash];
    let mut label_start = 0;
    for (i, &c) in host.iter().enumerate() {
        if c == b'.' {
            if i == label_start {
                return false;
            }
            label_start = i + 1;
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            || (i == label_start && host[i..].starts_with(b"xn--"))
        {
            return false;
        }
    }
    host.get(label_start).is_some_and(u8::is_ascii_lowercase) && is_plain_reference(&rest[slash..])
}

/// Bytes no part of a URL encodes: ASCII letters and digits and
/// `-._~!$&()*+,;=:@/%`.
const URL_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"-._~!$&()*+,;=:@/%";
    let mut k = 0;
    while k < extra.len() {
        t[extra[k] as usize] = true;
        k += 1;
    }
    t
};

/// Whether `r` (a path, then an optional `?query` and `#fragment`) is one
/// the URL parser keeps as written: only characters it never encodes, no
/// dot segments (`.`, `..`, `%2e`), a query or fragment not empty. The
/// query and fragment may also hold `?`.
fn is_plain_reference(r: &str) -> bool {
    #[derive(PartialEq)]
    enum Part {
        Path,
        Query,
        Fragment,
    }
    let b = r.as_bytes();
    let mut part = Part::Path;
    let mut part_start = 0;
    let mut segment_start = 0;
    let dot_segment = |seg: &[u8]| seg == b"." || seg == b"..";
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'?' | b'#' if part == Part::Path => {
                if dot_segment(&b[segment_start..i]) {
                    return false;
                }
                part = if c == b'?' {
                    Part::Query
                } else {
                    Part::Fragment
                };
                part_start = i + 1;
            }
            b'#' if part == Part::Query => {
                if i == part_start {
                    return false;
                }
                part = Part::Fragment;
                part_start = i + 1;
            }
            b'?' => {}
            b'/' if part == Part::Path => {
                if dot_segment(&b[segment_start..i]) {
                    return false;
                }
                segment_start = i + 1;
            }
            b'%' if part == Part::Path
                && b.get(i + 1) == Some(&b'2')
                && matches!(b.get(i + 2), Some(b'e' | b'E')) =>
            {
                return false;
            }
            c if URL_PLAIN[c as usize] => {}
            _ => return false,
        }
    }
    match part {
        Part::Path => !dot_segment(&b[segment_start..]),
        _ => part_start < b.len(),
    }
}

/// `value`, a relative reference, made absolute against an http(s) `base`
/// without a parse, when the result is sure to be what `Url::join` gives
/// (a test holds the two equal on random references): `/path`, `?query`,
/// `#fragment` and `dir/file` made only of characters the parser keeps as
/// written, without dot segments. `None`: use the parser.
fn join_plain(base: &Url, value: &str) -> Option<String> {
    use url::Position;
    if !matches!(base.scheme(), "http" | "https") {
        return None;
    }
    let head = match *value.as_bytes().first()? {
        b'/' if !value.starts_with("//") => &base[..Position::BeforePath],
        b'?' => &base[..Position::AfterPath],
        b'#' => &base[..Position::AfterQuery],
        c if c.is_ascii_alphanumeric() => {
            // A first segment with `:` would read as a scheme.
            let first = value.split(['/', '?', '#']).next().unwrap_or("");
            if first.contains(':') {
                return None;
            }
            let upto_path = &base[..Position::AfterPath];
            &upto_path[..upto_path.rfind('/')? + 1]
        }
        _ => return None,
    };
    // The base's part is already in the parser's form; the reference's
    // is kept as written when it is plain.
    if !is_plain_reference(value) {
        return None;
    }
    let mut out = String::with_capacity(head.len() + value.len());
    out.push_str(head);
    out.push_str(value);
    Some(out)
}

/// Whether `s` has the shape of a URL scheme (a letter, then letters, digits, `+`, `-`, `.`).
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// The allowed attribute's name (lower case), when `attr` (any case) is
/// allowed on `tag`: [`GENERIC_ATTRS`] and [`TAG_ATTRS`] as one `match`
/// (a test keeps them equal).
fn attr_allowed(tag: &str, attr: &str) -> Option<&'static str> {
    let mut lower = [0u8; 8];
    let lower = lower.get_mut(..attr.len())?;
    for (l, c) in lower.iter_mut().zip(attr.bytes()) {
        *l = c.to_ascii_lowercase();
    }
    let a = match &*lower {
        b"title" => return Some("title"),
        b"lang" => return Some("lang"),
        b"dir" => return Some("dir"),
        b"href" => "href",
        b"hreflang" => "hreflang",
        b"src" => "src",
        b"alt" => "alt",
        b"width" => "width",
        b"height" => "height",
        b"colspan" => "colspan",
        b"rowspan" => "rowspan",
        b"scope" => "scope",
        b"datetime" => "datetime",
        b"cite" => "cite",
        b"start" => "start",
        _ => return None,
    };
    let ok = match tag {
        "a" => matches!(a, "href" | "hreflang"),
        "img" => matches!(a, "src" | "alt" | "width" | "height"),
        "td" => matches!(a, "colspan" | "rowspan"),
        "th" => matches!(a, "colspan" | "rowspan" | "scope"),
        "time" => a == "datetime",
        "q" | "blockquote" => a == "cite",
        "ol" => a == "start",
        _ => false,
    };
    ok.then_some(a)
}

/// The allowed tag's name (lower case), when `name` (any case) is allowed:
/// [`TAGS`] as one `match` (a test keeps the two equal).
fn allowed_tag(name: &str) -> Option<&'static str> {
    let mut lower = [0u8; 10];
    let lower = lower.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name.bytes()) {
        *l = c.to_ascii_lowercase();
    }
    Some(match &*lower {
        b"a" => "a",
        b"abbr" => "abbr",
        b"b" => "b",
        b"blockquote" => "blockquote",
        b"br" => "br",
        b"caption" => "caption",
        b"cite" => "cite",
        b"code" => "code",
        b"dd" => "dd",
        b"del" => "del",
        b"details" => "details",
        b"dfn" => "dfn",
        b"div" => "div",
        b"dl" => "dl",
        b"dt" => "dt",
        b"em" => "em",
        b"figcaption" => "figcaption",
        b"figure" => "figure",
        b"h1" => "h1",
        b"h2" => "h2",
        b"h3" => "h3",
        b"h4" => "h4",
        b"h5" => "h5",
        b"h6" => "h6",
        b"hr" => "hr",
        b"i" => "i",
        b"img" => "img",
        b"ins" => "ins",
        b"kbd" => "kbd",
        b"li" => "li",
        b"mark" => "mark",
        b"ol" => "ol",
        b"p" => "p",
        b"pre" => "pre",
        b"q" => "q",
        b"s" => "s",
        b"samp" => "samp",
        b"small" => "small",
        b"span" => "span",
        b"strong" => "strong",
        b"sub" => "sub",
        b"summary" => "summary",
        b"sup" => "sup",
        b"table" => "table",
        b"tbody" => "tbody",
        b"td" => "td",
        b"tfoot" => "tfoot",
        b"th" => "th",
        b"thead" => "thead",
        b"time" => "time",
        b"tr" => "tr",
        b"u" => "u",
        b"ul" => "ul",
        _ => return None,
    })
}

/// An element the one-pass sanitiser has open.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Open {
    name: &'static str,
    /// Written to the output (else unwrapped: its tags dropped, its content kept).
    kept: bool,
}

/// Start tags that close an open `<p>` (HTML's "close a p element"); when
/// the `<p>` is the current element the one-pass sanitiser writes that
/// `</p>` itself, as a browser would infer it.
#[cfg(test)]
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "li",
    "dd",
    "dt",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "ul",
];
/// [`CLOSES_P`] as one `match` (a test keeps the two equal).
fn closes_p(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "center"
            | "details"
            | "div"
            | "dl"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "li"
            | "dd"
            | "dt"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "summary"
            | "table"
            | "ul"
    )
}

/// [`IMPLIES_END_TAGS`] as one `match` (a test keeps the two equal).
fn implies_end_tags(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "center"
            | "details"
            | "div"
            | "dl"
            | "figcaption"
            | "figure"
            | "footer"
            | "header"
            | "hgroup"
            | "main"
            | "nav"
            | "ol"
            | "pre"
            | "section"
            | "summary"
            | "ul"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "td"
            | "th"
            | "caption"
    )
}

/// End tags before which a browser closes open `p`, `li`, `dd` and `dt`
/// ("generate implied end tags").
#[cfg(test)]
const IMPLIES_END_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "div",
    "dl",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "nav",
    "ol",
    "pre",
    "section",
    "summary",
    "ul",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "td",
    "th",
    "caption",
];
/// Disallowed elements whose tags are dropped and content kept, as ammonia
/// does, when dropping them changes nothing else: inline ones anywhere,
/// block ones (that would close a `<p>`) when no `<p>` is open.
const UNWRAP_INLINE: &[&str] = &[
    "font", "big", "tt", "nobr", "label", "bdi", "bdo", "data", "var",
];
const UNWRAP_BLOCK: &[&str] = &[
    "center", "section", "article", "header", "footer", "aside", "nav", "main", "address", "hgroup",
];
/// Raw-text elements removed with their content, as ammonia's
/// `clean_content_tags` removes them.
const DROP_RAW: &[&str] = &["script", "style", "iframe"];

/// One-pass sanitiser for the common shapes of feed HTML.
///
/// Accepts: text; comments (dropped); start tags of allowed elements with
/// double- or single-quoted attribute values (or bare boolean attributes);
/// matching end tags, properly nested; `<br>`-style void tags; `<p>`,
/// `<li>`, `<dd>` and `<dt>` left open where a browser closes them (the
/// end tag is written out); elements left open at the end (closed);
/// `<script>`, `<style>` and `<iframe>` (dropped with their content) and
/// `<embed>` (dropped); a few disallowed elements whose tags are dropped
/// and content kept (`<font>`, `<center>`…) where that changes nothing
/// else. Disallowed attributes are dropped, allowed URLs are checked (http,
/// https, mailto; relative ones made absolute) and links get `rel`. The
/// output parses to the tree ammonia would build. Returns `None` for
/// anything else, so the caller falls back to a full HTML parse.
pub fn fast_clean(html: &str, base: Option<&Url>) -> Option<String> {
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() + html.len() / 16);
    let mut stack: Vec<Open> = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while let Some(p) = memchr::memchr2(b'<', 0, &b[i..]) {
        i += p;
        if b[i] == 0 {
            return None;
        }
        push_text(&mut out, &html[text_start..i])?;
        let written = out.len();
        i = if b[i..].starts_with(b"<!--") {
            comment_end(html, i)?
        } else {
            tag(html, i, &mut out, &mut stack, base)?
        };
        // A browser drops a newline right after `<pre>`: what was dropped
        // here must not bring one there.
        if out.len() == written && out.ends_with("<pre>") && b.get(i) == Some(&b'\n') {
            return None;
        }
        text_start = i;
    }
    push_text(&mut out, &html[text_start..])?;
    // Elements left open end with the fragment; a table's would need its
    // implied parts, so those are left to the full parse.
    while let Some(open) = stack.pop() {
        if matches!(
            open.name,
            "table" | "tbody" | "thead" | "tfoot" | "tr" | "td" | "th" | "caption"
        ) {
            return None;
        }
        if open.kept {
            out.push_str("</");
            out.push_str(open.name);
            out.push('>');
        }
    }
    Some(out)
}

/// Where the comment at `html[start]` (`<!--`) ends; `None` for the odd
/// forms (`<!-->`, `<!--->`, `--!>`) and an unclosed one.
fn comment_end(html: &str, start: usize) -> Option<usize> {
    let body = &html[start + 4..];
    if body.starts_with('>') || body.starts_with("->") {
        return None;
    }
    static END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"-->"));
    let end = END.find(body.as_bytes())?;
    if body[..end].contains("--!>") {
        return None;
    }
    Some(start + 4 + end + 3)
}

/// Writes the end tags a browser infers before the start tag `name`
/// (`</p>`, `</li>`); `None` when the element to close is not the current
/// one (the full parse knows the rules for that).
fn close_implied_by_start(name: &str, out: &mut String, stack: &mut Vec<Open>) -> Option<()> {
    if !closes_p(name) {
        return Some(());
    }
    let closes = |top: &str| match name {
        "li" => matches!(top, "p" | "li"),
        "dd" | "dt" => matches!(top, "p" | "dd" | "dt"),
        _ => top == "p",
    };
    while let Some(top) = stack.last().copied() {
        if !closes(top.name) {
            break;
        }
        stack.pop();
        out.push_str("</");
        out.push_str(top.name);
        out.push('>');
        if top.name != "p" {
            break;
        }
    }
    // A `<p>` deeper in the stack would be closed past other elements.
    if stack.iter().any(|o| o.name == "p") {
        return None;
    }
    // So would an `li` (`dd`, `dt`) behind inline elements.
    let same: &[&str] = match name {
        "li" => &["li"],
        "dd" | "dt" => &["dd", "dt"],
        _ => &[],
    };
    if !same.is_empty() {
        // An unwrapped block (`<center>`…) stops a browser's search for the
        // `li` to close; without its tags the search would go on.
        if stack
            .iter()
            .any(|o| !o.kept && UNWRAP_BLOCK.contains(&o.name))
        {
            return None;
        }
        for o in stack.iter().rev() {
            if same.contains(&o.name) {
                return None;
            }
            if !(INLINE_TAGS.contains(&o.name) || UNWRAP_INLINE.contains(&o.name)) {
                break;
            }
        }
    }
    Some(())
}

/// Writes the end tags of the open `p`, `li`, `dd` and `dt` that a browser
/// closes before the end tag `name` ("generate implied end tags").
fn close_implied_by_end(name: &str, out: &mut String, stack: &mut Vec<Open>) {
    let implied: &[&str] = match name {
        "li" | "dd" | "dt" => &["p"],
        n if implies_end_tags(n) => &["p", "li", "dd", "dt"],
        _ => &[],
    };
    while let Some(top) = stack.last().copied() {
        if top.name == name || !implied.contains(&top.name) || !top.kept {
            break;
        }
        stack.pop();
        out.push_str("</");
        out.push_str(top.name);
        out.push('>');
    }
}

/// Parses the tag at `html[start]` (a `<`), writes its clean form, returns the index after it.
fn tag(
    html: &str,
    start: usize,
    out: &mut String,
    stack: &mut Vec<Open>,
    base: Option<&Url>,
) -> Option<usize> {
    let b = html.as_bytes();
    let mut i = start + 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && b[i].is_ascii_alphanumeric() {
        i += 1;
    }
    if i == name_start || !b[name_start].is_ascii_alphabetic() {
        return None;
    }
    let raw_name = &html[name_start..i];
    let Some(name) = allowed_tag(raw_name) else {
        return other_tag(html, raw_name, i, closing, out, stack);
    };
    let void = matches!(name, "br" | "hr" | "img");
    if closing {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'>') {
            return None;
        }
        // XHTML's `</img>` means nothing to an HTML parser; `</br>` is a `<br>`.
        if void && name != "br" {
            return Some(i + 1);
        }
        if void {
            return None;
        }
        // `</p>` with no `<p>` open: a browser makes an empty one.
        if name == "p" && !stack.iter().any(|o| o.name == "p") {
            out.push_str("<p></p>");
            return Some(i + 1);
        }
        close_implied_by_end(name, out, stack);
        if stack.pop() != Some(Open { name, kept: true }) {
            return None;
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
        return Some(i + 1);
    }
    // Table parts outside their table are ignored by a browser: taken
    // only where they belong, so the open elements stay the browser's.
    let parent = stack.last().map(|o| o.name);
    let placed = match name {
        "td" | "th" => parent == Some("tr"),
        "tr" => matches!(parent, Some("table" | "tbody" | "thead" | "tfoot")),
        "tbody" | "thead" | "tfoot" | "caption" => parent == Some("table"),
        _ => true,
    };
    if !placed {
        return None;
    }
    close_implied_by_start(name, out, stack)?;
    // A heading closes a heading that is the current element: an unwrapped
    // element on top would hide one from it.
    if matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
        && stack.last().is_some_and(|o| !o.kept)
    {
        return None;
    }
    out.push('<');
    out.push_str(name);
    // Allowed attributes already written (at most the 7 an `img` may keep).
    let mut kept: [&'static str; 8] = [""; 8];
    let mut n_kept = 0;
    loop {
        let before_space = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        match b.get(i)? {
            b'>' => {
                i += 1;
                break;
            }
            b'/' if b.get(i + 1) == Some(&b'>') && void => {
                i += 2;
                break;
            }
            c if c.is_ascii_alphabetic() && i > before_space => {}
            _ => return None,
        }
        let (attr, value, next) = attribute(html, i)?;
        i = next;
        // Browsers use the first of repeated attributes.
        let Some(attr) = attr_allowed(name, attr) else {
            continue;
        };
        if kept[..n_kept].contains(&attr) {
            continue;
        }
        if n_kept == kept.len() {
            return None;
        }
        // A bare attribute is one with an empty value (and the first of its name).
        let value = value.unwrap_or("");
        // A URL the filter refuses drops the attribute, as in ammonia; a
        // later one of the same name stays ignored.
        let url = if is_url_attr(attr) {
            match clean_url(value, base)? {
                Some(u) => Some(u),
                None => {
                    kept[n_kept] = attr;
                    n_kept += 1;
                    continue;
                }
            }
        } else {
            None
        };
        out.push(' ');
        out.push_str(attr);
        out.push_str("=\"");
        match &url {
            Some(u) => push_attr_value(out, u, true),
            None => {
                if ambiguous_ref_in_attr(value) {
                    return None;
                }
                push_attr_value(out, value, false)
            }
        }
        out.push('"');
        kept[n_kept] = attr;
        n_kept += 1;
    }
    if name == "a" {
        out.push_str(" rel=\"");
        out.push_str(LINK_REL);
        out.push('"');
    }
    out.push('>');
    if !void {
        stack.push(Open { name, kept: true });
    }
    Some(i)
}

/// One attribute at `html[i]` (its first letter): its name, its value
/// when it has one (quoted; unquoted values are refused), and the index
/// after it.
fn attribute(html: &str, mut i: usize) -> Option<(&str, Option<&str>, usize)> {
    let b = html.as_bytes();
    let attr_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_') {
        i += 1;
    }
    let attr = &html[attr_start..i];
    let mut j = i;
    while j < b.len() && is_space(b[j]) {
        j += 1;
    }
    if b.get(j) == Some(&b'=') {
        j += 1;
        while j < b.len() && is_space(b[j]) {
            j += 1;
        }
        let quote = *b.get(j)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let v_start = j + 1;
        let v_end = v_start + memchr::memchr(quote, &b[v_start..])?;
        let v = &html[v_start..v_end];
        if memchr::memchr2(b'<', 0, v.as_bytes()).is_some() {
            return None;
        }
        Some((attr, Some(v), v_end + 1))
    } else {
        match b.get(i) {
            Some(c) if is_space(*c) || *c == b'>' || *c == b'/' => Some((attr, None, i)),
            _ => None,
        }
    }
}

/// Skips the rest of a start tag whose name ends at `html[i]`: its
/// attributes, then `>` (or `/>`); the index after it.
fn skip_attributes(html: &str, mut i: usize) -> Option<usize> {
    let b = html.as_bytes();
    loop {
        let before_space = i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        match b.get(i)? {
            b'>' => return Some(i + 1),
            b'/' if b.get(i + 1) == Some(&b'>') => return Some(i + 2),
            c if c.is_ascii_alphabetic() && i > before_space => {}
            _ => return None,
        }
        i = attribute(html, i)?.2;
    }
}

/// A tag of a disallowed element: raw-text ones dropped with their
/// content, `<embed>` dropped, a few unwrapped; `None` for the rest.
fn other_tag(
    html: &str,
    raw_name: &str,
    after_name: usize,
    closing: bool,
    out: &mut String,
    stack: &mut Vec<Open>,
) -> Option<usize> {
    let known = |list: &[&'static str]| -> Option<&'static str> {
        list.iter()
            .copied()
            .find(|n| n.eq_ignore_ascii_case(raw_name))
    };
    if closing {
        let name = known(UNWRAP_INLINE).or_else(|| known(UNWRAP_BLOCK))?;
        let b = html.as_bytes();
        let mut i = after_name;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'>') {
            return None;
        }
        if UNWRAP_BLOCK.contains(&name) {
            close_implied_by_end(name, out, stack);
        }
        if stack.pop() != Some(Open { name, kept: false }) {
            return None;
        }
        return Some(i + 1);
    }
    let end = skip_attributes(html, after_name)?;
    if let Some(name) = known(DROP_RAW) {
        if html[..end].ends_with("/>") {
            return None;
        }
        // Raw text up to `</name` and a delimiter, any case.
        let b = html.as_bytes();
        let mut from = end;
        loop {
            let p = from + memchr::memmem::find(&b[from..], b"</")?;
            let after = p + 2 + name.len();
            if html
                .get(p + 2..after)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                && b.get(after)
                    .is_some_and(|c| is_space(*c) || matches!(c, b'>' | b'/'))
            {
                let close = after + memchr::memchr(b'>', &b[after..])?;
                if html[after..close].contains(['"', '\'', '<']) {
                    return None;
                }
                // `<!--` in a script starts its escaped states, where a
                // `</script>` may not end it: left to the full parse.
                if name == "script" && html[end..p].contains("<!--") {
                    return None;
                }
                return Some(close + 1);
            }
            from = p + 2;
        }
    }
    if raw_name.eq_ignore_ascii_case("embed") {
        return Some(end);
    }
    if html[..end].ends_with("/>") {
        return None;
    }
    if let Some(name) = known(UNWRAP_INLINE) {
        stack.push(Open { name, kept: false });
        return Some(end);
    }
    let name = known(UNWRAP_BLOCK)?;
    // A block is where a browser's adoption of misnested formatting stops:
    // with formatting open, dropping its tags could move what follows.
    if stack.iter().any(|o| is_formatting(o.name)) {
        return None;
    }
    // It closes a `<p>` that is the current element, as an allowed block does.
    close_implied_by_start(name, out, stack)?;
    stack.push(Open { name, kept: false });
    Some(end)
}

/// A URL attribute's raw value through [`filter_url`]: `Some(None)` drops
/// the attribute; `None` when in doubt (the caller leaves the fragment to
/// ammonia).
fn clean_url<'a>(raw: &'a str, base: Option<&Url>) -> Option<Option<Cow<'a, str>>> {
    // `&amp;` is decoded; a bare `&` (as in `?a=1&b=2`) stays. Any other
    // reference would be decoded by a browser: leave those to ammonia.
    let v: Cow<'a, str> = if memchr::memchr(b'&', raw.as_bytes()).is_none() {
        Cow::Borrowed(raw)
    } else {
        let mut v = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(p) = memchr::memchr(b'&', rest.as_bytes()) {
            v.push_str(&rest[..p]);
            rest = &rest[p..];
            if let Some(after) = rest.strip_prefix("&amp;") {
                rest = after;
            } else if is_char_ref(rest)
                || legacy_ref_in_attr(rest)
                || numeric_ref_without_semicolon(rest)
            {
                return None;
            } else {
                rest = &rest[1..];
            }
            v.push('&');
        }
        v.push_str(rest);
        Cow::Owned(v)
    };
    if v.is_empty() || v.bytes().any(|c| c <= b' ' || c == 0x7f || c == b'\\') {
        return None;
    }
    // The common case, an absolute link already in the parser's form, is
    // kept as it is, without a copy.
    if is_canonical_web_url(&v) {
        return Some(Some(v));
    }
    Some(filter_url(&v, base).map(Cow::Owned))
}

/// Text between tags: `&` that does not start a character reference is escaped, `>` too.
/// `None` for a reference a browser would decode without its `;` (`&copy 2026`).
fn push_text(out: &mut String, text: &str) -> Option<()> {
    let mut rest = text;
    while let Some(p) = memchr::memchr2(b'&', b'>', rest.as_bytes()) {
        if rest.as_bytes()[p] == b'&'
            && !is_char_ref(&rest[p..])
            && (legacy_ref_in_text(&rest[p..]) || numeric_ref_without_semicolon(&rest[p..]))
        {
            return None;
        }
        out.push_str(&rest[..p]);
        if rest.as_bytes()[p] == b'>' {
            out.push_str("&gt;");
        } else if is_char_ref(&rest[p..]) {
            out.push('&');
        } else {
            out.push_str("&amp;");
        }
        rest = &rest[p + 1..];
    }
    out.push_str(rest);
    Some(())
}

/// Character references HTML decodes even without their `;`.
const LEGACY_REFS: &[&str] = &[
    "AElig", "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "COPY", "Ccedil",
    "ETH", "Eacute", "Ecirc", "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT",
    "Ntilde", "Oacute", "Ocirc", "Ograve", "Oslash", "Otilde", "Ouml", "QUOT", "REG", "THORN",
    "Uacute", "Ucirc", "Ugrave", "Uuml", "Yacute", "aacute", "acirc", "acute", "aelig", "agrave",
    "amp", "aring", "atilde", "auml", "brvbar", "ccedil", "cedil", "cent", "copy", "curren", "deg",
    "divide", "eacute", "ecirc", "egrave", "eth", "euml", "frac12", "frac14", "frac34", "gt",
    "iacute", "icirc", "iexcl", "igrave", "iquest", "iuml", "laquo", "lt", "macr", "micro",
    "middot", "nbsp", "not", "ntilde", "oacute", "ocirc", "ograve", "ordf", "ordm", "oslash",
    "otilde", "ouml", "para", "plusmn", "pound", "quot", "raquo", "reg", "sect", "shy", "sup1",
    "sup2", "sup3", "szlig", "thorn", "times", "uacute", "ucirc", "ugrave", "uml", "uuml",
    "yacute", "yen", "yuml",
];

/// Whether `s` (starting with `&`) starts a numeric reference without its
/// `;`: browsers decode it anyway (`&#x3Aa` is `Ϊ`).
fn numeric_ref_without_semicolon(s: &str) -> bool {
    match s.as_bytes() {
        [b'&', b'#', b'x' | b'X', h, ..] => h.is_ascii_hexdigit(),
        [b'&', b'#', d, ..] => d.is_ascii_digit(),
        _ => false,
    }
}

/// Whether an attribute value holds a reference a browser decodes though it
/// is not well-formed (a legacy name or a number without `;`): the fast
/// path would escape what a browser reads as a character.
fn ambiguous_ref_in_attr(v: &str) -> bool {
    memchr::memchr_iter(b'&', v.as_bytes()).any(|k| {
        let r = &v[k..];
        !is_char_ref(r) && (legacy_ref_in_attr(r) || numeric_ref_without_semicolon(r))
    })
}

/// In text, a legacy name right after `&` is decoded whatever follows it.
fn legacy_ref_in_text(s: &str) -> bool {
    LEGACY_REFS.iter().any(|r| s[1..].starts_with(r))
}

/// In an attribute, a legacy name is decoded unless a letter, digit or `=` follows it.
fn legacy_ref_in_attr(s: &str) -> bool {
    LEGACY_REFS.iter().any(|r| {
        s[1..].starts_with(r)
            && !s[1 + r.len()..]
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'=')
    })
}

/// An attribute value inside double quotes. URL values were decoded, so every `&` is escaped.
fn push_attr_value(out: &mut String, v: &str, decoded: bool) {
    let mut start = 0;
    for k in memchr::memchr2_iter(b'"', b'&', v.as_bytes()) {
        let escaped = match v.as_bytes()[k] {
            b'"' => "&quot;",
            _ if decoded || !is_char_ref(&v[k..]) => "&amp;",
            _ => continue,
        };
        out.push_str(&v[start..k]);
        out.push_str(escaped);
        start = k + 1;
    }
    out.push_str(&v[start..]);
}

/// Whether `s` (starting with `&`) begins a well-formed character reference.
fn is_char_ref(s: &str) -> bool {
    let b = s.as_bytes();
    let body = &b[1..];
    // A reference is at most 32 bytes: looking further made every bare `&`
    // scan the rest of the text (quadratic on `&` × N).
    let end = match body.iter().take(33).position(|c| *c == b';') {
        Some(e) if e > 0 && e <= 32 => e,
        _ => return false,
    };
    let r = &body[..end];
    match r {
        [b'#', b'x' | b'X', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
        [first, ..] => first.is_ascii_alphabetic() && r.iter().all(u8::is_ascii_alphanumeric),
        [] => false,
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Plain text of an HTML fragment: tags dropped, entities decoded, white space collapsed.
pub fn html_to_text(html: &str) -> String {
    if !html.contains('<') {
        return clean_html_to_text(html, usize::MAX);
    }
    match fast_clean(html, None) {
        Some(clean) => clean_html_to_text(&clean, usize::MAX),
        // The allowed tags are kept so that block boundaries still separate words.
        None => clean_html_to_text(&Sanitizer::new(None).ammonia(html), usize::MAX),
    }
}

/// Allowed tags that sit inside a line of text: removing one adds no
/// space ("inspire <em>you</em>." reads "inspire you.").
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "cite", "code", "del", "dfn", "em", "i", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "time", "u",
];

/// Whether the tag starting at `b[i]` (a `<`) is an inline element's start or end tag.
pub fn inline_tag_at(b: &[u8], i: usize) -> bool {
    let mut j = i + 1;
    if b.get(j) == Some(&b'/') {
        j += 1;
    }
    let start = j;
    while j < b.len() && j - start <= 6 && b[j].is_ascii_alphanumeric() {
        j += 1;
    }
    let ends = b
        .get(j)
        .is_some_and(|c| matches!(c, b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'));
    if !ends || j == start || j - start > 6 {
        return false;
    }
    let mut lower = [0u8; 6];
    for (l, c) in lower.iter_mut().zip(&b[start..j]) {
        *l = c.to_ascii_lowercase();
    }
    is_inline(&lower[..j - start])
}

/// HTML's formatting elements (those a browser reopens after misnesting).
fn is_formatting(name: &str) -> bool {
    matches!(
        name,
        "a" | "b"
            | "big"
            | "code"
            | "em"
            | "font"
            | "i"
            | "nobr"
            | "s"
            | "small"
            | "strike"
            | "strong"
            | "tt"
            | "u"
    )
}

/// [`INLINE_TAGS`] as one `match` on lower-case bytes (a test keeps the two equal).
fn is_inline(name: &[u8]) -> bool {
    matches!(
        name,
        b"a" | b"abbr"
            | b"b"
            | b"cite"
            | b"code"
            | b"del"
            | b"dfn"
            | b"em"
            | b"i"
            | b"ins"
            | b"kbd"
            | b"mark"
            | b"q"
            | b"s"
            | b"samp"
            | b"small"
            | b"span"
            | b"strong"
            | b"sub"
            | b"sup"
            | b"time"
            | b"u"
    )
}

/// The text runs of sanitised HTML, entities decoded: the text between two
/// block-level tags (`p`, `br`, `li`, `img`…). Inline tags (`em`, `a`,
/// `span`…) do not end a run: "inspire <em>you</em>." is one run,
/// "inspire you.".
pub fn text_runs(clean: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let b = clean.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && b[i] == b'<' {
            i = skip_tag(b, i);
        }
        if i >= b.len() {
            return None;
        }
        let mut run: Option<Cow<'_, str>> = None;
        loop {
            let end = memchr::memchr(b'<', &b[i..]).map_or(b.len(), |p| i + p);
            let text = decoded(&clean[i..end]);
            run = Some(match run {
                None => text,
                Some(mut r) => {
                    r.to_mut().push_str(&text);
                    r
                }
            });
            i = end;
            // Across inline tags, when text follows them.
            let mut j = i;
            while j < b.len() && b[j] == b'<' && inline_tag_at(b, j) {
                j = skip_tag(b, j);
            }
            if j > i && j < b.len() && b[j] != b'<' {
                i = j;
                continue;
            }
            return run;
        }
    })
}

/// Text between tags with its character references decoded.
fn decoded(s: &str) -> Cow<'_, str> {
    if s.contains('&') {
        html_escape::decode_html_entities(s)
    } else {
        Cow::Borrowed(s)
    }
}

/// Where the tag starting at `b[i]` (a `<`) ends: just past its `>`.
/// Quoted attribute values may hold `>`.
pub fn skip_tag(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        let Some(p) = memchr::memchr3(b'>', b'"', b'\'', &b[i..]) else {
            break;
        };
        let at = i + p;
        if b[at] == b'>' {
            return at + 1;
        }
        // A quoted value, to its closing quote.
        match memchr::memchr(b[at], &b[at + 1..]) {
            Some(q) => i = at + 1 + q + 1,
            None => break,
        }
    }
    b.len() + 1
}

/// Plain text of sanitised HTML, in one pass: block-level tags become
/// spaces, inline tags vanish, entities are decoded, white space collapses.
/// Stops after about `max_chars` characters (at most one more, which is
/// how [`excerpt`] sees whether it must cut).
pub fn clean_html_to_text(clean: &str, max_chars: usize) -> String {
    let b = clean.as_bytes();
    let mut out = String::with_capacity(clean.len().min(max_chars.saturating_mul(2)).min(1 << 20));
    let mut count = 0usize;
    // A separator is due before the next character.
    let mut space = false;
    let push = |text: &str, out: &mut String, space: &mut bool, count: &mut usize| {
        let t = text.as_bytes();
        let mut k = 0;
        while k < t.len() {
            let c = t[k];
            if c.is_ascii() {
                if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
                    *space = true;
                    k += 1;
                    continue;
                }
                // A run of ASCII words with single spaces between them,
                // copied at once.
                let start = k;
                while k < t.len() && t[k].is_ascii() {
                    if matches!(t[k], b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
                        let word_follows = t[k] == b' '
                            && t.get(k + 1).is_some_and(|n| {
                                n.is_ascii()
                                    && !matches!(
                                        n,
                                        b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'
                                    )
                            });
                        if !word_follows {
                            break;
                        }
                    }
                    k += 1;
                }
                if *space && !out.is_empty() {
                    out.push(' ');
                    *count += 1;
                    if *count > max_chars {
                        return;
                    }
                }
                *space = false;
                let take = (k - start).min(max_chars.saturating_add(1) - *count);
                out.push_str(&text[start..start + take]);
                *count += take;
            } else {
                let ch = text[k..].chars().next().unwrap_or('\u{FFFD}');
                k += ch.len_utf8();
                if ch.is_whitespace() {
                    *space = true;
                    continue;
                }
                if *space && !out.is_empty() {
                    out.push(' ');
                    *count += 1;
                    if *count > max_chars {
                        return;
                    }
                }
                *space = false;
                out.push(ch);
                *count += 1;
            }
            if *count > max_chars {
                return;
            }
        }
    };
    let mut i = 0;
    while i < b.len() && count <= max_chars {
        match b[i] {
            b'<' => {
                // A block-level tag separates words; an inline one does not.
                if !inline_tag_at(b, i) {
                    space = true;
                }
                i = skip_tag(b, i);
            }
            b'&' => {
                let semi = b[i..].iter().take(34).position(|c| *c == b';');
                let len = semi.map_or(1, |p| p + 1);
                push(
                    &decoded(&clean[i..i + len]),
                    &mut out,
                    &mut space,
                    &mut count,
                );
                i += len;
            }
            _ => {
                let end = memchr::memchr2(b'<', b'&', &b[i..]).map_or(b.len(), |p| i + p);
                push(&clean[i..end], &mut out, &mut space, &mut count);
                i = end;
            }
        }
    }
    out
}

/// `text` with each run of white space made one space, and trimmed.
pub fn collapse_whitespace(text: &str) -> String {
    // Most titles need nothing: one pass over the bytes to see, then a copy.
    let b = text.as_bytes();
    let mut after_space = true;
    let mut clean = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b' ' {
            clean &= !after_space;
            after_space = true;
            i += 1;
        } else if c.is_ascii() {
            clean &= !c.is_ascii_whitespace() && c != b'\x0b';
            after_space = false;
            i += 1;
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            clean &= !ch.is_whitespace();
            after_space = false;
            i += ch.len_utf8();
        }
        if !clean {
            break;
        }
    }
    if clean && !after_space {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// At most `max` characters of `text`, cut on a word boundary, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    // Where the character after the first `max` starts: none, no cut.
    let end = if text.len() <= max {
        return text.to_string();
    } else if text.as_bytes()[..=max].is_ascii() {
        max
    } else {
        match text.char_indices().nth(max) {
            Some((end, _)) => end,
            None => return text.to_string(),
        }
    };
    let cut = &text[..end];
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut,
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation());
    let mut out = String::with_capacity(cut.len() + '…'.len_utf8());
    out.push_str(cut);
    out.push('…');
    out
}

/// `s` without the characters XML 1.0 forbids and no page or email wants:
/// C0 controls other than tab, newline and carriage return, and U+FFFE/U+FFFF.
pub fn strip_controls(s: String) -> String {
    let bad = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    };
    // Bytes first, 32 at a time without branches: a C0 control is one byte
    // below 0x20, U+FFFE/U+FFFF start with 0xEF.
    let suspect_byte = |b: u8| {
        u8::from(b < 0x20) & u8::from(b != b'\t' && b != b'\n' && b != b'\r') | u8::from(b == 0xEF)
    };
    let chunks = s.as_bytes().chunks(32);
    let suspect = chunks
        .into_iter()
        .any(|c| c.iter().fold(0u8, |acc, &b| acc | suspect_byte(b)) != 0);
    if suspect && s.chars().any(bad) {
        s.chars().filter(|&c| !bad(c)).collect()
    } else {
        s
    }
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

    /// Inputs the fast path must accept, and its output must mean what ammonia's means.
    const SIMPLE: &[&str] = &[
        "<p>Plain <strong>bold</strong> and <em>em</em> &amp; &mdash; &#8217; AT&T a > b</p>",
        "<figure><img src=\"https://cdn.example/a.jpg\" alt=\"A &quot;b&quot;\" width=\"800\" loading=\"lazy\"><figcaption>c</figcaption></figure>",
        "<blockquote><p>q <a href=\"https://x.example/p?ref=feed&amp;utm_source=rss\" onclick=\"x()\">link</a></p></blockquote>",
        "<ul><li>one</li><li>two <code>x</code></li></ul><pre>a\nb</pre><h2 class=\"x\" style=\"color:red\">h</h2>",
        "<p><a href='/relative/path'>rel</a> <a href=\"report.pdf\" title='t'>pdf</a><br/><br></p>",
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>xhtml</p></div>",
        "<p><a href=\"mailto:info@ishr.example\">mail</a><details open><summary>s</summary>d</details></p>",
        "<figure><img src=\"https://cdn.example/b.jpg\" alt=\"x\"></img></figure><a href=\"https://x.example/?a=1&utm_source=rss&copy=2\">q</a>",
    ];

    /// Real-world habits the fast path takes since issue 14; each must mean
    /// what ammonia's output means, and carry nothing hostile.
    const REAL_WORLD: &[&str] = &[
        "<p>x<script>alert(1)</script></p>",
        "<p>unclosed",
        "<!-- comment --><p>x</p>",
        "<style>p{}</style><p>after</p>",
        "<!-- wp:paragraph -->\n<p class=\"has-text-align-left\" style=\"font-size:18px\">A <strong>b</strong></p>\n<!-- /wp:paragraph -->",
        "<p>one\n<p>two <i>x</i>\n<ul><li>a<li>b</ul>",
        "<center><span style=\"color: #333\">centred &ldquo;q&rdquo;</span></center><br><br>",
        "<p>a<center>b</center>c</p>",
        "<table border=\"1\"><tbody><tr><td><font face=\"Arial\">x</font></td></tr></tbody></table>",
        "<p>before</p><iframe width=\"560\" src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe><p>after</p>",
        "<blockquote class=\"twitter-tweet\"><p lang=\"en\">t <a href=\"https://t.co/x\">x</a></p>&mdash; r</blockquote> <script async src=\"https://platform.twitter.com/widgets.js\" charset=\"utf-8\"></script>",
        "<div class=\"w\"><embed src=\"https://x.example/a.swf\" type=\"application/x-shockwave-flash\"></div><p>after</p>",
        "<p>x<img src=\"https://pixel.wp.com/b.gif?host=a&amp;blog=1\" alt=\"\" width=\"1\" height=\"1\" /></p>",
        "<section><h2>t</h2><p>x</section>",
        "<dl><dt>a<dd>b<dt>c</dl>",
        "<p>x<div>y</div>",
        "<ul><li><b>x</b><li>y</ul>",
        "<script>document.write('</scr' + 'ipt>')</script><p>ok</p>",
        "<script><!--<script></script><p>still script</p>",
        "<style>p { color: red }</STYLE ><p>after</p>",
    ];

    #[test]
    fn real_world_habits_take_the_fast_path_and_mean_what_ammonia_means() {
        let base = Url::parse("https://ishr.example/news/").unwrap();
        let s = Sanitizer::new(Some(&base));
        let mut taken = 0;
        for html in REAL_WORLD {
            let Some(fast) = fast_clean(html, Some(&base)) else {
                continue;
            };
            taken += 1;
            assert_eq!(
                s.ammonia(&fast),
                s.ammonia(html),
                "for {html}\nfast: {fast}"
            );
            let lower = fast.to_lowercase();
            for bad in [
                "<script", "<iframe", "<embed", "<style", "style=", "<!--", "<font", "<center",
            ] {
                assert!(!lower.contains(bad), "{bad} in {fast}");
            }
        }
        assert!(taken >= REAL_WORLD.len() - 3, "only {taken} taken");
    }

    /// Random soups of real-world fragments: whenever the fast path takes
    /// one, its output means what ammonia's means.
    #[test]
    fn fast_path_agrees_with_ammonia_on_random_soups() {
        use rand::{Rng, SeedableRng};
        let tokens = [
            "<p>",
            "</p>",
            "<p class=\"x\">",
            "<div>",
            "</div>",
            "<ul>",
            "</ul>",
            "<ol>",
            "</ol>",
            "<li>",
            "</li>",
            "<dl>",
            "</dl>",
            "<dt>",
            "<dd>",
            "<b>",
            "</b>",
            "<em>",
            "</em>",
            "<a href=\"/x?a=1&amp;b=2\">",
            "</a>",
            "<span style=\"c\">",
            "</span>",
            "<br>",
            "<img src=\"i.png\" />",
            "<hr>",
            "<h2>",
            "</h2>",
            "<table>",
            "</table>",
            "<tr>",
            "</tr>",
            "<td>",
            "</td>",
            "<tbody>",
            "</tbody>",
            "<blockquote>",
            "</blockquote>",
            "<font size=\"2\">",
            "</font>",
            "<center>",
            "</center>",
            "<section>",
            "</section>",
            "<!-- c -->",
            "<script>x()</script>",
            "<iframe src=\"y\"></iframe>",
            "<embed src=\"z\">",
            "<style>p{}</style>",
            "text",
            " ",
            "more words",
            "&amp;",
            "&nbsp;",
            "&mdash;",
            "\n",
            "<figure>",
            "</figure>",
            "<figcaption>",
            "</figcaption>",
            "<pre>",
            "</pre>",
            "<i>",
            "</i>",
            "<script>",
            "</script>",
            "<!--",
            "-->",
            "<style>",
            "</style>",
            "<iframe>",
            "</iframe>",
            "<details>",
            "</details>",
            "<summary>",
            "</summary>",
            "</li>",
            "</dd>",
            "<a href=\"#f\">",
        ];
        let base = Url::parse("https://ishr.example/news/").unwrap();
        let s = Sanitizer::new(Some(&base));
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut taken = 0;
        for _ in 0..20_000 {
            let n = rng.random_range(1..16);
            let html: String = (0..n)
                .map(|_| tokens[rng.random_range(0..tokens.len())])
                .collect();
            if let Some(fast) = fast_clean(&html, Some(&base)) {
                taken += 1;
                assert_eq!(
                    s.ammonia(&fast),
                    s.ammonia(&html),
                    "for {html:?}\nfast: {fast:?}"
                );
            }
        }
        assert!(taken > 1_000, "the soups exercise the fast path: {taken}");
    }

    /// Inputs the fast path must refuse (ammonia handles them).
    const HOSTILE: &[&str] = &[
        "<a href=\"java&#115;cript:alert(1)\">x</a>",
        "<a href=\" javascript:alert(1)\">x</a>",
        "<a href=\"jav\tascript:alert(1)\">x</a>",
        "<img src=x onerror=alert(1)>",
        "<p>mis</em>nested</p>",
        "<p>a < b</p>",
        "<img src=\"a.png\"/ onerror=\"x\">",
        "<a href=\"x\"<script>",
        "<svg><a href=\"https://x\">x</a></svg>",
        "<p>\0</p>",
        "</br>",
        "<a href=\"data:text/html,<script>\">x</a>",
        "<a href=\"javascript&colon;alert(1)\">x</a>",
        "<a href=\"https://x.example/?a=1&copy\">x</a>",
        "<p>&copy 2026</p>",
    ];

    #[test]
    fn fast_path_agrees_with_ammonia() {
        let base = Url::parse("https://ishr.example/news/").unwrap();
        let s = Sanitizer::new(Some(&base));
        for html in SIMPLE {
            let fast = fast_clean(html, Some(&base)).unwrap_or_else(|| panic!("refused {html}"));
            assert_eq!(s.ammonia(&fast), s.ammonia(html), "for {html}");
            assert!(
                !fast.contains("onclick") && !fast.contains("style=") && !fast.contains("loading"),
                "{fast}"
            );
        }
        let rel = fast_clean(SIMPLE[4], Some(&base)).unwrap();
        assert!(
            rel.contains("href=\"https://ishr.example/relative/path\""),
            "{rel}"
        );
        assert!(
            rel.contains(
                "href=\"https://ishr.example/news/report.pdf\" title=\"t\" rel=\"noopener"
            ),
            "{rel}"
        );
    }

    #[test]
    fn fast_path_drops_what_the_url_filter_refuses() {
        let base = Url::parse("https://ishr.example/").unwrap();
        assert_eq!(
            fast_clean("<a href=\"javascript:alert(1)\" title>x</a>", Some(&base)).as_deref(),
            Some("<a title=\"\" rel=\"noopener noreferrer nofollow\">x</a>")
        );
    }

    #[test]
    fn fast_path_refuses_anything_doubtful() {
        let base = Url::parse("https://ishr.example/").unwrap();
        let s = Sanitizer::new(Some(&base));
        for html in HOSTILE {
            assert_eq!(fast_clean(html, Some(&base)), None, "accepted {html}");
            let out = s.clean(html).to_lowercase();
            assert!(
                !out.contains("<script")
                    && !out.contains("javascript:")
                    && !out.contains("onerror"),
                "{out}"
            );
        }
    }

    #[test]
    fn canonical_web_urls_skip_the_parse_and_mean_the_same() {
        let parsed = |v: &str| Url::parse(v).map(String::from).ok();
        for v in [
            "https://example.org/",
            "http://news.example.org/2026/11/a-story?utm_source=x&b=1#top",
            "https://cdn.example.com/wp-content/uploads/a-300x200.jpg",
            "https://a.example/p;x=1/(c)/%20/~u/@me:1/*/!$",
        ] {
            assert!(is_canonical_web_url(v), "{v}");
            assert_eq!(parsed(v).as_deref(), Some(v));
        }
        for v in [
            "https://example.org",
            "HTTPS://example.org/",
            "https://Example.org/",
            "https://example.org:443/",
            "https://u@example.org/",
            "https://1.2.3.4/",
            "https://example.123/",
            "https://xn--bcher-kva.example/",
            "https://example.org/a/../b",
            "https://example.org/a/%2E/b",
            "https://example.org/a b",
            "https://example.org/a\\b",
            "https://example.org/?",
            "https://example.org/#",
            "https://example.org/?q='x'",
            "https://example.org/é",
            "javascript:alert(1)",
            "/relative",
        ] {
            assert!(!is_canonical_web_url(v), "{v}");
        }
        // Random URLs made of the characters that matter: whatever the
        // check takes, the parser gives back unchanged.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let hosts = [
            "a.example",
            "x-1.b.org",
            "localhost",
            "1.a",
            "a.1",
            "a..b",
            "A.b",
            ".a",
        ];
        let alphabet: Vec<char> = "aZ09-._~!$&()*+,;=:@/%?#.. '\"<>`{}|^[]\\\t2eEé"
            .chars()
            .collect();
        let mut taken = 0;
        for _ in 0..50_000 {
            let mut v = String::from(["https://", "http://"][rng.random_range(0..2)]);
            v.push_str(hosts[rng.random_range(0..hosts.len())]);
            v.push('/');
            for _ in 0..rng.random_range(0..12) {
                v.push(alphabet[rng.random_range(0..alphabet.len())]);
            }
            if is_canonical_web_url(&v) {
                taken += 1;
                assert_eq!(parsed(&v).as_deref(), Some(v.as_str()), "{v:?}");
            }
        }
        assert!(taken > 1_000, "{taken}");
    }

    #[test]
    fn collapse_whitespace_and_excerpt_agree_with_their_slow_forms() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pieces = [
            "a", "Word", " ", "  ", "\t", "\n", "\u{0b}", "\u{0c}", "\u{a0}", "\u{2009}",
            "\u{3000}", "’", "é", "—", "…", ".", "x\u{85}y", "\u{1c}",
        ];
        for _ in 0..20_000 {
            let text: String = (0..rng.random_range(0..14))
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            let slow = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(collapse_whitespace(&text), slow, "{text:?}");
            let max = rng.random_range(0..12);
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            // The cut as written before the ASCII shortcut.
            let want = match chars.get(max) {
                None => text.clone(),
                Some(&(end, _)) => {
                    let cut = &text[..end];
                    let cut = match cut.rfind(char::is_whitespace) {
                        Some(i) if i > max / 2 => &cut[..i],
                        _ => cut,
                    };
                    format!(
                        "{}…",
                        cut.trim_end_matches(
                            |c: char| c.is_whitespace() || c.is_ascii_punctuation()
                        )
                    )
                }
            };
            assert_eq!(excerpt(&text, max), want, "{text:?} {max}");
        }
    }

    #[test]
    fn plain_relative_references_join_as_the_parser_joins_them() {
        let base = Url::parse("https://ishr.example/news/a?x=1#f").unwrap();
        for (v, want) in [
            (
                "/node/7?utm_source=rss&b=1",
                "https://ishr.example/node/7?utm_source=rss&b=1",
            ),
            ("#fn3", "https://ishr.example/news/a?x=1#fn3"),
            ("?page=2", "https://ishr.example/news/a?page=2"),
            ("b/c.jpg", "https://ishr.example/news/b/c.jpg"),
        ] {
            assert_eq!(join_plain(&base, v).as_deref(), Some(want), "{v}");
        }
        for v in [
            "//cdn.example/x",
            "../x",
            "./x",
            "a/%2E%2E/b",
            "a:b/c",
            "#",
            "?",
            "x y",
            "",
        ] {
            assert_eq!(join_plain(&base, v), None, "{v}");
        }
        // Random references against bases of every shape: whatever the
        // shortcut joins, the parser joins the same.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let bases: Vec<Url> = [
            "https://ishr.example/news/",
            "https://ishr.example/news/a?x=1#f",
            "http://a.example:8080/dir/file.html?q",
            "http://127.0.0.1/feed.xml",
            "https://[::1]/a/b",
            "https://example.org",
            "http://u:p@Example.ORG/x/",
            "https://xn--bcher-kva.example/%7Eu/",
        ]
        .iter()
        .map(|b| Url::parse(b).unwrap())
        .collect();
        let starts = ["", "/", "//", "?", "#", "./", "../", "a:", "x/", "%2e", "."];
        let alphabet: Vec<char> = "aZ09-._~!$&()*+,;=:@/%?#.. '\"<>`{}|^[]\\\t2eEé"
            .chars()
            .collect();
        let mut taken = 0;
        for _ in 0..50_000 {
            let b = &bases[rng.random_range(0..bases.len())];
            let mut v = String::from(starts[rng.random_range(0..starts.len())]);
            for _ in 0..rng.random_range(0..12) {
                v.push(alphabet[rng.random_range(0..alphabet.len())]);
            }
            if let Some(j) = join_plain(b, &v) {
                taken += 1;
                assert_eq!(Some(j), b.join(&v).ok().map(String::from), "{b} + {v:?}");
            }
        }
        assert!(taken > 1_000, "{taken}");
    }

    #[test]
    fn cite_and_every_url_attribute_go_through_the_url_filter() {
        let base = Url::parse("https://ishr.example/news/").unwrap();
        let s = Sanitizer::new(Some(&base));
        for (html, want) in [
            ("<q cite=\"javascript:alert(1)\">x</q>", "<q>x</q>"),
            (
                "<blockquote cite=\"vbscript:msgbox(1)\">x</blockquote>",
                "<blockquote>x</blockquote>",
            ),
            ("<q cite=\"data:text/html,x\">x</q>", "<q>x</q>"),
            ("<q cite=\"file:///etc/passwd\">x</q>", "<q>x</q>"),
            ("<q cite=\"jav&#x09;ascript:alert(1)\">x</q>", "<q>x</q>"),
            (
                "<q cite=\"jav&Tab;ascript&colon;alert(1)\">x</q>",
                "<q>x</q>",
            ),
            (
                "<q cite=\" &#x01;JaVa&#10;Script:alert(1)\">x</q>",
                "<q>x</q>",
            ),
            ("<q cite=jav&#13;ascript:alert(1)>x</q>", "<q>x</q>"),
            (
                "<a href=\"&#x6A;avascript:x\">x</a>",
                "<a rel=\"noopener noreferrer nofollow\">x</a>",
            ),
            ("<img src=\"java\nscript:x\">", "<img>"),
            (
                "<q cite=\"/un/report\">x</q>",
                "<q cite=\"https://ishr.example/un/report\">x</q>",
            ),
            (
                "<blockquote cite=\"https://ohchr.example/a?b=1&amp;c=2\">x</blockquote>",
                "<blockquote cite=\"https://ohchr.example/a?b=1&amp;c=2\">x</blockquote>",
            ),
            (
                "<q cite=\"mailto:press@ohchr.example\">x</q>",
                "<q cite=\"mailto:press@ohchr.example\">x</q>",
            ),
        ] {
            assert_eq!(s.clean(html), want, "clean {html}");
            assert_eq!(s.ammonia(html), want, "ammonia {html}");
        }
        // Never kept, whatever their URL: not in the allowlist.
        let out = s.clean(
            "<img srcset=\"javascript:x 1x\" longdesc=\"javascript:x\" usemap=\"#m\"><video poster=\"javascript:x\"></video>\
             <table background=\"javascript:x\"><tr><td>t</td></tr></table><del cite=\"javascript:x\">d</del>",
        );
        assert!(!out.contains("javascript"), "{out}");
        // Without a base, relative URLs stay relative, unless they read as
        // another scheme once spaces are gone.
        let s = Sanitizer::new(None);
        assert_eq!(
            s.clean("<q cite=\"report.pdf\">x</q>"),
            "<q cite=\"report.pdf\">x</q>"
        );
        assert_eq!(
            s.clean("<q cite=\"java\u{3000}script:x\">x</q>"),
            "<q>x</q>"
        );
    }

    #[test]
    fn long_text_is_cut_into_nodes_without_changing_the_output() {
        let base = Url::parse("https://ishr.example/").unwrap();
        let s = Sanitizer::new(Some(&base));
        let amps = "&amp;&&copy;\u{a0}©".repeat(700);
        for html in [
            format!("<p>{amps}</p><x>{amps}</x>"),
            format!(
                "<textarea>{amps}</textarea><title>{amps}</TITLE>{amps}<script>{amps}</script >"
            ),
            format!(
                "<!-- {amps} -->{amps}<a title='{amps}' href=\"/a?b&amp;c\">{amps}</a><plaintext>{amps}"
            ),
            format!("<svg><![CDATA[{amps}]]></svg>{amps}<q cite=\"x\"{amps}>{amps}"),
        ] {
            let split = split_long_text(&html);
            assert!(matches!(split, Cow::Owned(_)), "{html}");
            assert_eq!(
                s.builder().clean(&split).to_string(),
                s.builder().clean(&html).to_string()
            );
        }
        // Inside tags, comments and raw text, nothing is added.
        let quiet = format!("<!--{amps}--><textarea>{amps}</textarea><a title=\"{amps}\">x</a>");
        assert!(matches!(split_long_text(&quiet), Cow::Borrowed(_)));
    }

    #[test]
    fn every_kept_url_attribute_is_one_the_filter_judges() {
        // URL attributes that hold a list, which `filter_url` cannot judge.
        const URL_LIST_ATTRS: &[&str] = &["archive", "imagesrcset", "ping", "srcset"];
        for (tag, attrs) in TAG_ATTRS {
            for a in attrs.iter().chain(GENERIC_ATTRS) {
                assert!(!URL_LIST_ATTRS.contains(a), "{tag} keeps {a}");
                assert!(!a.starts_with("on") && *a != "style", "{tag} keeps {a}");
            }
        }
        for a in URL_LIST_ATTRS {
            assert!(is_url_attr(a));
        }
        let kept_urls: Vec<&str> = TAG_ATTRS
            .iter()
            .flat_map(|(_, a)| a.iter().copied())
            .filter(|a| is_url_attr(a))
            .collect();
        assert_eq!(kept_urls, ["href", "src", "cite", "cite"]);
    }

    /// Start tags: the name and the attributes (name, value).
    type StartTags = Vec<(String, Vec<(String, String)>)>;

    /// Start tags of `html` as a browser's tokenizer reads them: the name
    /// and the attributes, values decoded.
    fn start_tags(html: &str) -> StartTags {
        use html5ever::tendril::StrTendril;
        use html5ever::tokenizer::{
            BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
        };
        use std::cell::RefCell;
        #[derive(Default)]
        struct Tags(RefCell<StartTags>);
        impl TokenSink for Tags {
            type Handle = ();
            fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
                if let Token::TagToken(t) = token
                    && t.kind == TagKind::StartTag
                {
                    let attrs = t
                        .attrs
                        .iter()
                        .map(|a| {
                            let name = match &a.name.prefix {
                                Some(p) => format!("{p}:{}", a.name.local),
                                None => a.name.local.to_string(),
                            };
                            (name, a.value.to_string())
                        })
                        .collect();
                    self.0.borrow_mut().push((t.name.to_string(), attrs));
                }
                TokenSinkResult::Continue
            }
        }
        let tok = Tokenizer::new(Tags::default(), TokenizerOpts::default());
        let queue = BufferQueue::default();
        queue.push_back(StrTendril::from(html));
        let _ = tok.feed(&queue);
        tok.end();
        tok.sink.0.take()
    }

    /// The strict audit of sanitised HTML: only allowed elements, only their
    /// allowed attributes (no `on*`, no `style`), and every URL attribute
    /// an http, https or mailto URL (absolute when there is a base) even
    /// after removing every space and control a browser might skip.
    fn audit(out: &str, base: Option<&Url>) -> Result<usize, String> {
        let mut urls = 0;
        for (tag, attrs) in start_tags(out) {
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!("element {tag}"));
            }
            for (name, value) in attrs {
                if name.starts_with("on") || name == "style" {
                    return Err(format!("attribute {name} on {tag}"));
                }
                let allowed = attr_allowed(&tag, &name) == Some(name.as_str())
                    || (tag == "a" && name == "rel" && value == LINK_REL);
                if !allowed {
                    return Err(format!("attribute {name} on {tag}"));
                }
                if !is_url_attr(&name) {
                    continue;
                }
                urls += 1;
                let squeezed: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if let Some((scheme, _)) = squeezed.split_once(':')
                    && is_scheme(scheme)
                    && !URL_SCHEMES.contains(&scheme)
                {
                    return Err(format!("{name}={value:?} on {tag}"));
                }
                if base.is_some()
                    && !Url::parse(&value).is_ok_and(|u| URL_SCHEMES.contains(&u.scheme()))
                {
                    return Err(format!("{name}={value:?} on {tag} is not absolute"));
                }
            }
        }
        Ok(urls)
    }

    /// A fragment of hostile markup: elements in and out of the allowlist
    /// with URL, event and other attributes, URLs of every scheme obfuscated
    /// the ways browsers forgive, entities, comments and stray markup. A
    /// `tame` one is well-formed, with allowed elements and plain URLs of
    /// every scheme: what the fast path takes.
    fn hostile_fragment(rng: &mut impl rand::Rng, tame: bool) -> String {
        const TAG_NAMES: &[&str] = &[
            "a",
            "q",
            "blockquote",
            "img",
            "p",
            "del",
            "ins",
            "video",
            "form",
            "button",
            "input",
            "object",
            "area",
            "table",
            "td",
            "svg",
            "math",
            "iframe",
            "script",
            "style",
            "A",
            "Q",
            "BlockQuote",
            "IMG",
            "image",
            "embed",
            "x-y",
            "span",
            "time",
        ];
        const ATTRS: &[&str] = &[
            "href",
            "src",
            "cite",
            "srcset",
            "poster",
            "longdesc",
            "background",
            "action",
            "formaction",
            "xlink:href",
            "usemap",
            "data",
            "ping",
            "onclick",
            "onerror",
            "ONLOAD",
            "style",
            "title",
            "alt",
            "rel",
            "HREF",
            "CITE",
            "Src",
            "datetime",
            "width",
        ];
        const SCHEMES: &[&str] = &[
            "javascript",
            "JaVaScRiPt",
            "vbscript",
            "data",
            "file",
            "http",
            "https",
            "mailto",
            "ftp",
            "",
            "",
            "jav",
            "about",
        ];
        const SPLITS: &[&str] = &[
            "&#x09;",
            "&#9;",
            "&Tab;",
            "&NewLine;",
            "&#10;",
            "&#13;",
            "\t",
            "\n",
            "&#0;",
            "&#x0;",
            "%09",
            "\u{0}",
            "&#x20;",
            "&#X0A;",
            "&#0009;",
            "&#x000A",
        ];
        const COLONS: &[&str] = &[":", ":", ":", "&#58;", "&#x3a;", "&colon;", "&#x3A", "%3a"];
        const LEADS: &[&str] = &["", "", "", " ", "&#32;", "\u{1}", "&#x01;", "\u{a0}", "\t"];
        const RESTS: &[&str] = &[
            "alert(1)",
            "//evil.example/x",
            "text/html;base64,PHNjcmlwdD4=",
            "/etc/passwd",
            "x@example.org",
            "a?b=1&c=2",
            "a?b=1&amp;c=2",
            "../rel",
            "#frag",
            "",
            "msgbox(1)",
            "evil.example/%0a",
        ];
        const TEXT: &[&str] = &[
            "text",
            " ",
            "&amp;",
            "&",
            "&copy",
            "&lt;",
            "<",
            ">",
            "\"",
            "'",
            "=",
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "\u{0}",
            "&#x6A;avascript:",
            "é",
            "\n",
            "</",
            "<p>",
            "</p>",
            "</a>",
            "</q>",
            "<br/>",
            "</script>",
            "</blockquote>",
        ];
        const TAME_TAGS: &[&str] = &["a", "q", "blockquote", "img", "p", "span", "time", "Q"];
        const TAME_TEXT: &[&str] = &["text", " ", "&amp;", "é", "\n", "&lt;", "&#8217;"];
        let pick = |rng: &mut dyn rand::RngCore, list: &[&'static str]| -> &'static str {
            list[rand::Rng::random_range(rng, 0..list.len())]
        };
        let url = |rng: &mut dyn rand::RngCore| -> String {
            let scheme = pick(rng, SCHEMES);
            if tame {
                let colon = if scheme.is_empty() { "" } else { ":" };
                return format!("{scheme}{colon}{}", pick(rng, &RESTS[..10]));
            }
            let mut s = format!("{}{scheme}", pick(rng, LEADS));
            if !scheme.is_empty() {
                if rand::Rng::random_bool(rng, 0.5) {
                    let at = rand::Rng::random_range(rng, 0..=scheme.len());
                    s = format!(
                        "{}{}{}",
                        &s[..s.len() - scheme.len() + at],
                        pick(rng, SPLITS),
                        &s[s.len() - scheme.len() + at..]
                    );
                }
                s.push_str(pick(rng, COLONS));
            }
            s + pick(rng, RESTS)
        };
        let (tags, text) = if tame {
            (TAME_TAGS, TAME_TEXT)
        } else {
            (TAG_NAMES, TEXT)
        };
        let mut out = String::new();
        for _ in 0..rng.random_range(1..10) {
            if rng.random_bool(0.4) {
                out.push_str(pick(rng, text));
                continue;
            }
            let tag = pick(rng, tags);
            out.push('<');
            out.push_str(tag);
            for _ in 0..rng.random_range(0..4) {
                out.push(' ');
                out.push_str(pick(rng, ATTRS));
                let v = url(rng);
                match rng.random_range(if tame { 3..6 } else { 0..6 }) {
                    0 => out.push_str(&format!("='{v}'")),
                    1 => out.push_str(&format!("={}", v.replace([' ', '>'], ""))),
                    2 => {}
                    _ => out.push_str(&format!("=\"{v}\"")),
                }
            }
            out.push_str(if rng.random_bool(0.1) && !tame {
                "/>"
            } else {
                ">"
            });
            if tame && tag.eq_ignore_ascii_case("img") {
                continue;
            }
            if rng.random_bool(if tame { 1.0 } else { 0.6 }) {
                out.push_str(pick(rng, text));
                out.push_str(&format!("</{tag}>"));
            }
        }
        out
    }

    /// The fast path against ammonia on generated hostile fragments: where
    /// the fast path answers, its output means what ammonia's does; and the
    /// output of both passes the strict audit.
    #[test]
    fn fast_path_and_ammonia_agree_and_pass_the_audit_on_hostile_fragments() {
        use rand::SeedableRng;
        let base = Url::parse("https://ishr.example/news/").unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let (mut fast_taken, mut urls_kept) = (0, 0);
        for round in 0..4000 {
            let base = (round % 4 != 0).then_some(&base);
            let s = Sanitizer::new(base);
            let html = hostile_fragment(&mut rng, round % 2 == 0);
            let reference = s.ammonia(&html);
            if let Some(fast) = fast_clean(&html, base) {
                fast_taken += 1;
                assert_eq!(s.ammonia(&fast), reference, "for {html:?}");
                audit(&fast, base)
                    .unwrap_or_else(|e| panic!("fast path: {e} in {fast:?} for {html:?}"));
            }
            urls_kept += audit(&reference, base)
                .unwrap_or_else(|e| panic!("ammonia: {e} in {reference:?} for {html:?}"));
            let clean = s.clean(&html);
            audit(&clean, base).unwrap_or_else(|e| panic!("clean: {e} in {clean:?} for {html:?}"));
        }
        assert!(fast_taken > 1000, "the fast path takes many: {fast_taken}");
        assert!(urls_kept > 200, "URLs are kept where safe: {urls_kept}");
    }

    #[test]
    fn text_is_extracted_and_entities_decoded() {
        assert_eq!(
            html_to_text("<b>Rock</b> &amp; Roll&nbsp;&#8217;s <i>tour</i>"),
            "Rock & Roll ’s tour"
        );
        assert_eq!(html_to_text("a < b"), "a < b");
        assert_eq!(
            html_to_text("Rock &amp;amp; Roll &#8212; &mdash; live"),
            "Rock &amp; Roll — — live"
        );
        assert_eq!(
            html_to_text("<svg><script>x</script></svg>Safe <unknown>text</unknown>"),
            "Safe text"
        );
        assert_eq!(
            clean_html_to_text("<p>One</p><p>Two &amp; three</p>", usize::MAX),
            "One Two & three"
        );
        assert_eq!(
            clean_html_to_text("<img alt=\"a > b\">after  the\n image", usize::MAX),
            "after the image"
        );
        // Cut short, the text still gives the excerpt the whole text gives.
        let html = "<p>one  two <em>three</em>\n four</p><p>five, six &amp; seven — eight</p>";
        for max in 0..40 {
            let short = clean_html_to_text(html, max + 1);
            assert!(short.chars().count() <= max + 2, "{max}: {short:?}");
            assert_eq!(
                excerpt(&short, max),
                excerpt(&clean_html_to_text(html, usize::MAX), max),
                "{max}"
            );
        }
    }

    #[test]
    fn removing_inline_tags_adds_no_space() {
        for (html, text) in [
            ("inspire <em>you</em>.", "inspire you."),
            ("₹<b>4,000</b>", "₹4,000"),
            (
                "<p>Read <a href=\"https://x.example/\">the report</a>, then act.</p>",
                "Read the report, then act.",
            ),
            (
                "U.<abbr title=\"x\">N</abbr>. <span>Human</span> <strong>Rights</strong>",
                "U.N. Human Rights",
            ),
            ("<p>One</p><p>Two</p>", "One Two"),
            (
                "one<br>two<img src=\"https://x.example/a.png\">three",
                "one two three",
            ),
            ("<ul><li>a</li><li>b</li></ul>", "a b"),
            // The slow path (unclosed tags go through ammonia) keeps the rules.
            (
                "<p>inspire <em>you</em>.<p>Next <b>one",
                "inspire you. Next one",
            ),
        ] {
            assert_eq!(html_to_text(html), text, "{html}");
            let clean = Sanitizer::new(None).clean(html);
            assert_eq!(clean_html_to_text(&clean, usize::MAX), text, "{html}");
        }
    }

    #[test]
    fn allowed_attributes_are_exactly_the_lists() {
        let attrs = [
            "title", "lang", "dir", "href", "hreflang", "src", "alt", "width", "height", "colspan",
            "rowspan", "scope", "datetime", "cite", "start", "style", "class", "onclick", "srcset",
        ];
        for tag in TAGS.iter().chain(&["x"]) {
            for attr in attrs {
                let listed = GENERIC_ATTRS.contains(&attr)
                    || TAG_ATTRS.iter().any(|(t, a)| t == tag && a.contains(&attr));
                let want = listed.then_some(attr);
                assert_eq!(attr_allowed(tag, attr), want, "{tag} {attr}");
                assert_eq!(
                    attr_allowed(tag, &attr.to_uppercase()),
                    want,
                    "{tag} {attr}"
                );
            }
        }
    }

    #[test]
    fn tag_classes_are_exactly_their_lists() {
        for t in TAGS
            .iter()
            .chain(UNWRAP_BLOCK)
            .chain(UNWRAP_INLINE)
            .chain(&["x", "section"])
        {
            assert_eq!(closes_p(t), CLOSES_P.contains(t), "{t}");
            assert_eq!(implies_end_tags(t), IMPLIES_END_TAGS.contains(t), "{t}");
            assert_eq!(is_inline(t.as_bytes()), INLINE_TAGS.contains(t), "{t}");
            let tag = format!("<{}>", t.to_uppercase());
            assert_eq!(
                inline_tag_at(tag.as_bytes(), 0),
                INLINE_TAGS.contains(t),
                "{t}"
            );
        }
        for t in CLOSES_P.iter().chain(IMPLIES_END_TAGS) {
            assert!(
                closes_p(t) == CLOSES_P.contains(t)
                    && implies_end_tags(t) == IMPLIES_END_TAGS.contains(t)
            );
        }
    }

    #[test]
    fn allowed_tags_are_exactly_the_list() {
        for t in TAGS {
            assert_eq!(allowed_tag(t), Some(*t));
            assert_eq!(allowed_tag(&t.to_ascii_uppercase()), Some(*t));
        }
        for t in CLEAN_CONTENT_TAGS
            .iter()
            .chain(&["html", "body", "figcaptions", "x", ""])
        {
            assert_eq!(allowed_tag(t), None, "{t}");
        }
    }

    #[test]
    fn excerpt_cuts_on_a_word() {
        let e = excerpt("The Human Rights Council adopted a resolution today", 30);
        assert_eq!(e, "The Human Rights Council…");
        assert_eq!(excerpt("short", 30), "short");
    }
}
