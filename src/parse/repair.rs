//! Making odd real-world documents readable, so that one odd element never
//! costs a whole feed.
//!
//! [`prepare`] runs on every document and only touches its root: RSS
//! without a `version` (or `0.93`, `0.94`) is read as RSS 2.0, RSS 2.0 in
//! the old UserLand or Harvard namespace and RSS 0.90 in Netscape's are
//! moved to the namespaces the parsers know, Atom 0.3 is renamed into Atom
//! 1.0. Both parsers then see the same text.
//!
//! [`repair`] runs only on a document the parsers refused: Atom text
//! constructs whose `type` is a MIME type (`text/plain`, `text/html`,
//! `application/xhtml+xml`), empty, or base64 (`mode="base64"`) are
//! rewritten to `text`, `html` or `xhtml` (base64 decoded); empty text
//! constructs are dropped; and a truncated or broken document is cut after
//! its last complete item or entry and closed, so the items before the
//! break are kept.

use std::borrow::Cow;

use base64::Engine;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The Atom 0.3 namespace.
const ATOM_03_NS: &str = "http://purl.org/atom/ns#";
/// Namespaces RSS 2.0 was once published in; feeds still use them.
const RSS2_OLD_NS: &[&str] = &[
    "http://backend.userland.com/rss2",
    "http://backend.userland.com/rss",
    "http://blogs.law.harvard.edu/tech/rss",
];
/// The RSS 0.90 namespace, read as RSS 1.0 (the same elements).
const RSS_090_NS: &str = "http://my.netscape.com/rdf/simple/0.9/";

/// The document with its root made readable (see the module doc); most
/// documents come back borrowed, untouched.
pub(super) fn prepare(text: &str) -> Cow<'_, str> {
    let head = &text[..text.floor_char_boundary(4096.min(text.len()))];
    let mut out = Cow::Borrowed(text);
    if head.contains(ATOM_03_NS) {
        out = Cow::Owned(atom03_as_atom10(&out));
    }
    if head.contains(RSS_090_NS) {
        out = Cow::Owned(out.replace(RSS_090_NS, "http://purl.org/rss/1.0/"));
    }
    if let Some(fixed) = rss_root(&out) {
        out = Cow::Owned(fixed);
    }
    if (head.contains("RDF") && head.contains("purl.org/rss/1.0") || head.contains(RSS_090_NS))
        && let Some(fixed) = rdf_item_links(&out)
    {
        out = Cow::Owned(fixed);
    }
    out
}

/// RSS 1.0 and 0.90 items without a `<link>` get their `rdf:about` as one
/// (feed-rs drops items without a link; feedparser links them so).
fn rdf_item_links(text: &str) -> Option<String> {
    let mut r = Reader::from_str(text);
    // Insertions: (byte offset, element text).
    let mut inserts: Vec<(usize, String)> = Vec::new();
    // The open item: its depth, where its start tag ends, its prefix, its about.
    let mut item: Option<(u32, usize, String, String)> = None;
    let mut has_link = false;
    let mut depth = 0u32;
    loop {
        let ev = r.read_event().ok()?;
        let end = r.buffer_position() as usize;
        match ev {
            Event::Start(s) => {
                depth += 1;
                let qname = s.name().0;
                if local(qname) == "item" && item.is_none() {
                    let about = s
                        .attributes()
                        .with_checks(false)
                        .flatten()
                        .find(|a| a.key.0.ends_with(":about") || a.key.0 == "about")
                        .map(|a| a.value.trim().to_string())
                        .unwrap_or_default();
                    let prefix = qname.strip_suffix("item").unwrap_or("").to_string();
                    item = Some((depth, end, prefix, about));
                    has_link = false;
                } else if item.as_ref().is_some_and(|(d, ..)| depth == d + 1)
                    && local(qname) == "link"
                {
                    has_link = true;
                }
            }
            Event::Empty(s)
                if item.as_ref().is_some_and(|(d, ..)| depth == *d)
                    && local(s.name().0) == "link" =>
            {
                has_link = true;
            }
            Event::End(_) => {
                if let Some((_, at, prefix, about)) = item.take_if(|(d, ..)| *d == depth)
                    && !has_link
                    && about.starts_with("http")
                {
                    inserts.push((at, format!("<{prefix}link>{about}</{prefix}link>")));
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if inserts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + inserts.len() * 64);
    let mut from = 0;
    for (at, link) in inserts {
        out.push_str(&text[from..at]);
        out.push_str(&link);
        from = at;
    }
    out.push_str(&text[from..]);
    Some(out)
}

/// Rewrites an Atom 0.3 document into the Atom 1.0 vocabulary: the
/// namespace, `issued` → `published`, `modified` → `updated`, `tagline` →
/// `subtitle`, `copyright` → `rights` (start tags with attributes too).
fn atom03_as_atom10(text: &str) -> String {
    let mut t = text.replace(ATOM_03_NS, "http://www.w3.org/2005/Atom");
    for (old, new) in [
        ("issued", "published"),
        ("modified", "updated"),
        ("tagline", "subtitle"),
        ("copyright", "rights"),
    ] {
        for (from, to) in [("<", "<"), ("</", "</")] {
            for end in [">", " ", "\t", "\n", "\r", "/"] {
                t = t.replace(&format!("{from}{old}{end}"), &format!("{to}{new}{end}"));
            }
        }
    }
    t
}

/// An `<rss>` root whose `version` the parsers refuse (missing, `0.93`,
/// `0.94`…) or that sits in an old RSS 2.0 namespace, rewritten as
/// `<rss version="2.0">` with its other attributes; `None` when fine.
fn rss_root(text: &str) -> Option<String> {
    let mut r = Reader::from_str(text);
    let (start, root) = loop {
        let before = r.buffer_position() as usize;
        match r.read_event().ok()? {
            Event::Start(s) | Event::Empty(s) => break (before, s),
            Event::Eof => return None,
            _ => {}
        }
    };
    let end = r.buffer_position() as usize;
    if root.name().0 != "rss" {
        return None;
    }
    let mut attrs: Vec<(String, String)> = Vec::new();
    for a in root.attributes().with_checks(false) {
        let a = a.ok()?;
        let key = a.key.0.to_string();
        let value = a.value.to_string();
        attrs.push((key, value));
    }
    let version_ok = attrs
        .iter()
        .any(|(k, v)| k == "version" && matches!(v.as_str(), "2.0" | "" | "0.91" | "0.92"));
    let old_ns = attrs
        .iter()
        .any(|(k, v)| k == "xmlns" && RSS2_OLD_NS.contains(&v.trim_end_matches('/')));
    if version_ok && !old_ns {
        return None;
    }
    let mut tag = String::from("<rss version=\"2.0\"");
    for (k, v) in &attrs {
        if k == "version" || (k == "xmlns" && old_ns) {
            continue;
        }
        push_attr(&mut tag, k, v);
    }
    tag.push_str(
        if matches!(text.as_bytes().get(end.wrapping_sub(2)), Some(b'/')) {
            "/>"
        } else {
            ">"
        },
    );
    Some(format!("{}{tag}{}", &text[..start], &text[end..]))
}

/// ` key="value"`, with the value's quotes kept as they were escaped.
fn push_attr(out: &mut String, key: &str, raw_value: &str) {
    let q = if raw_value.contains('"') { '\'' } else { '"' };
    out.push(' ');
    out.push_str(key);
    out.push('=');
    out.push(q);
    out.push_str(raw_value);
    out.push(q);
}

/// The local part of a qualified name.
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Atom text constructs and content.
const TEXT_CONSTRUCTS: &[&str] = &["title", "subtitle", "summary", "content", "rights"];

/// What an odd text construct's type becomes.
enum Fix {
    /// Keep the element as it is.
    Keep,
    /// The same element with this `type` (and no `mode`).
    Type(&'static str),
    /// Base64 content: decoded, then given this `type`.
    Base64(&'static str),
}

fn fix_for(s: &BytesStart<'_>) -> Fix {
    let mut ty: Option<String> = None;
    let mut mode: Option<String> = None;
    for a in s.attributes().with_checks(false).flatten() {
        match a.key.0 {
            "type" => ty = Some(a.value.trim().to_ascii_lowercase()),
            "mode" => mode = Some(a.value.trim().to_ascii_lowercase()),
            _ => {}
        }
    }
    let as_text = match ty.as_deref() {
        None | Some("text" | "html" | "xhtml") if mode.is_none() => return Fix::Keep,
        None | Some("text" | "text/plain" | "plain" | "") => "text",
        Some("html" | "text/html") => "html",
        Some("xhtml" | "application/xhtml+xml") => "xhtml",
        Some(t) if t.starts_with("text/") => "text",
        Some(_) => "text",
    };
    match mode.as_deref() {
        Some("base64") => Fix::Base64(if as_text == "xhtml" { "html" } else { as_text }),
        Some("escaped") if as_text == "text" && ty.is_none() => Fix::Type("html"),
        Some("xml") => Fix::Type("xhtml"),
        _ => Fix::Type(as_text),
    }
}

/// A refused document rewritten so that the parsers can read what it
/// holds (see the module doc), or `None` when there is nothing to repair.
pub(super) fn repair(text: &str) -> Option<String> {
    let mut r = Reader::from_str(text);
    r.config_mut().check_end_names = true;
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<String> = Vec::new();
    // Where the output is whole after the last complete item or entry, and
    // the elements open there.
    let mut last_good: Option<(usize, Vec<String>)> = None;
    let mut atom = false;
    let mut changed = false;
    // A text construct just opened: where its start tag begins in `out`.
    let mut opened: Option<usize> = None;
    let mut pos = 0usize;
    let broken = loop {
        let ev = match r.read_event() {
            Ok(ev) => ev,
            Err(_) => break true,
        };
        let end = (r.buffer_position() as usize).min(text.len());
        let span = &text[pos..end];
        let just_opened = opened.take();
        match ev {
            Event::Eof => break !stack.is_empty(),
            Event::Start(s) => {
                let name = s.name().0.to_string();
                if stack.is_empty() && local(&name) == "feed" {
                    atom = true;
                }
                let is_text = atom && !stack.is_empty() && TEXT_CONSTRUCTS.contains(&local(&name));
                let fix = if is_text { fix_for(&s) } else { Fix::Keep };
                match fix {
                    Fix::Keep => {
                        if is_text {
                            opened = Some(out.len());
                        }
                        out.push_str(span);
                        stack.push(name);
                    }
                    Fix::Type(t) => {
                        changed = true;
                        opened = Some(out.len());
                        out.push_str(&retyped(&s, &name, t));
                        stack.push(name);
                    }
                    Fix::Base64(t) => {
                        changed = true;
                        // Read the encoded text up to the element's end.
                        let mut encoded = String::new();
                        loop {
                            match r.read_event() {
                                Ok(Event::Text(t)) => encoded.push_str(t.as_ref()),
                                Ok(Event::CData(t)) => encoded.push_str(t.as_ref()),
                                Ok(Event::End(_)) => break,
                                Ok(Event::Comment(_)) => {}
                                _ => return None,
                            }
                        }
                        let compact: String = encoded.split_whitespace().collect();
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(compact.as_bytes())
                            .unwrap_or_default();
                        let decoded = String::from_utf8_lossy(&bytes);
                        if !decoded.trim().is_empty() {
                            out.push_str(&retyped(&s, &name, t));
                            out.push_str(&quick_xml::escape::escape(decoded.as_ref()));
                            out.push_str(&format!("</{name}>"));
                        }
                        pos = (r.buffer_position() as usize).min(text.len());
                        continue;
                    }
                }
            }
            Event::Empty(s) => {
                let name = local(s.name().0).to_string();
                if atom && !stack.is_empty() && TEXT_CONSTRUCTS.contains(&name.as_str()) {
                    // `<title/>`: an empty text construct says nothing.
                    changed = true;
                } else {
                    out.push_str(span);
                }
            }
            Event::End(e) => {
                let name = local(e.name().0).to_string();
                stack.pop();
                match just_opened {
                    // `<title></title>`: dropped with its start tag.
                    Some(at) if atom => {
                        out.truncate(at);
                        changed = true;
                    }
                    _ => out.push_str(span),
                }
                if matches!(name.as_str(), "item" | "entry") {
                    last_good = Some((out.len(), stack.clone()));
                }
            }
            _ => out.push_str(span),
        }
        pos = end;
    };
    if broken {
        let (cut, open) = last_good?;
        out.truncate(cut);
        for name in open.iter().rev() {
            out.push_str(&format!("</{name}>"));
        }
        return Some(out);
    }
    changed.then_some(out)
}

/// The start tag `s` (named `name`) with `type="ty"` and no `mode`.
fn retyped(s: &BytesStart<'_>, name: &str, ty: &str) -> String {
    let mut tag = format!("<{name}");
    for a in s.attributes().with_checks(false).flatten() {
        if matches!(a.key.0, "type" | "mode") {
            continue;
        }
        push_attr(&mut tag, a.key.0, &a.value);
    }
    tag.push_str(&format!(" type=\"{ty}\">"));
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_roots_the_parsers_refuse_are_rewritten() {
        assert_eq!(
            prepare("<?xml version=\"1.0\"?>\n<rss><channel/></rss>"),
            "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel/></rss>"
        );
        assert_eq!(
            prepare(
                "<rss version=\"0.94\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel/></rss>"
            ),
            "<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel/></rss>"
        );
        assert_eq!(
            prepare(
                "<rss version=\"2.0\" xmlns=\"http://backend.userland.com/rss2\"><channel/></rss>"
            ),
            "<rss version=\"2.0\"><channel/></rss>"
        );
        let fine = "<rss version=\"2.0\"><channel/></rss>";
        assert!(matches!(prepare(fine), Cow::Borrowed(_)));
    }

    #[test]
    fn odd_text_types_are_mapped_and_empty_ones_dropped() {
        let doc = "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"text/plain\">T</title><entry><title type=\"\"/><summary type=\"application/xhtml+xml\"><div>x</div></summary><content type=\"application/octet-stream\" mode=\"base64\">PGI+aGk8L2I+</content><rights></rights></entry></feed>";
        let fixed = repair(doc).unwrap();
        assert_eq!(
            fixed,
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"text\">T</title><entry><summary type=\"xhtml\"><div>x</div></summary><content type=\"text\">&lt;b&gt;hi&lt;/b&gt;</content></entry></feed>"
        );
        assert_eq!(
            repair("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>T</title></feed>"),
            None
        );
    }

    #[test]
    fn a_truncated_document_keeps_its_complete_items() {
        let doc = "<rss version=\"2.0\"><channel><title>T</title><item><title>one</title></item><item><title>two</title></item><item><title>thr";
        assert_eq!(
            repair(doc).unwrap(),
            "<rss version=\"2.0\"><channel><title>T</title><item><title>one</title></item><item><title>two</title></item></channel></rss>"
        );
        assert_eq!(
            repair("<rss version=\"2.0\"><channel><title>T</title><item><ti"),
            None
        );
    }
}
