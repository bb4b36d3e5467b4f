//! The fast path: RSS 2.0/0.9x and Atom 1.0 read straight from quick-xml
//! events into [`FeedData`], the same values feed-rs 3.0 gives for the
//! fields gazette uses.
//!
//! It mirrors feed-rs's reading rules (text = the text, CDATA and entity
//! events right after the start tag, trimmed where feed-rs trims; links made
//! absolute against `xml:base` and the document URL; dates through the
//! same [`super::date::parse_date`])
//! only where they are simple to mirror exactly. Anything else — RSS 1.0,
//! JSON, a DOCTYPE, a namespace declared below the root, an undeclared
//! prefix, markup inside a text element, Media RSS, podcast or comment
//! elements, an author with an email, malformed
//! XML — is [`Unsupported`], and the caller hands the document to feed-rs.
//! So this path may only ever be narrower than feed-rs, never different.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use quick_xml::Reader;
use quick_xml::escape::{minimal_escape, resolve_predefined_entity, unescape};
use quick_xml::events::{BytesRef, BytesStart, Event};
use url::Url;

use super::{
    CategoryData, Deadline, EntryData, FeedData, LinkData, MediaData, PersonData, TextData,
};

/// Why the fast path gave a document to feed-rs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not for the fast path: {0}")]
pub(super) struct Unsupported(pub &'static str);

type R<T> = Result<T, Unsupported>;

/// The namespaces feed-rs tells apart (the same URIs, matched exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Atom,
    Rss,
    Content,
    DublinCore,
    MediaRss,
    Itunes,
    Podcast,
    Comments,
    Unknown,
}

fn ns_of_uri(uri: &str) -> Ns {
    match uri {
        "http://purl.org/rss/1.0/" => Ns::Rss,
        "http://www.w3.org/2005/Atom" => Ns::Atom,
        "http://purl.org/rss/1.0/modules/content/" => Ns::Content,
        "http://purl.org/dc/elements/1.1/" => Ns::DublinCore,
        "http://search.yahoo.com/mrss/" => Ns::MediaRss,
        "http://www.itunes.com/dtds/podcast-1.0.dtd" => Ns::Itunes,
        "https://podcastindex.org/namespace/1.0" => Ns::Podcast,
        "http://wellformedweb.org/CommentAPI/" => Ns::Comments,
        _ => Ns::Unknown,
    }
}

/// One simplified event.
enum Ev<'a> {
    /// A start tag (an empty-element tag is a start, then an [`Ev::End`]).
    Start(BytesStart<'a>),
    /// An end tag.
    End,
    /// A piece of text, CDATA or a resolved reference.
    Text(Cow<'a, str>),
    /// A comment or processing instruction: ignored, as feed-rs does.
    Other,
}

struct Doc<'a> {
    /// The document.
    src: &'a str,
    r: Reader<&'a [u8]>,
    /// The synthetic end of an empty-element tag is due next.
    pending_end: bool,
    /// Element depth, as feed-rs counts it (root = 1).
    depth: u32,
    /// `xml:base` in scope: (depth it was declared at, URL).
    bases: Vec<(u32, Url)>,
    /// Prefixes declared on the root element.
    prefixes: Vec<(String, Ns)>,
    /// Namespace of unprefixed elements.
    default_ns: Ns,
    /// The first date that could not be read.
    bad_date: Option<String>,
    /// Something the extras pass reads was seen (see `super::extras`).
    needs_extras: bool,
    /// When to give up (the caller then sees the deadline has passed).
    deadline: Option<Deadline>,
    /// Events read, to look at the clock every so many.
    events: u32,
}

/// Parses `text` (already decoded, declaration stripped) when it is a plain
/// RSS 2.0/0.9x or Atom 1.0 document; `base` is the document URL.
pub(super) fn parse(text: &str, base: Option<&Url>, deadline: Option<Deadline>) -> R<FeedData> {
    // feed-rs sniffs the first `<` or `{` in its first 8 KiB buffer.
    match text.bytes().take(8192).position(|b| b == b'<' || b == b'{') {
        Some(p) if text.as_bytes()[p] == b'<' => {}
        _ => return Err(Unsupported("not XML")),
    }
    let mut r = Reader::from_str(text);
    let c = r.config_mut();
    c.expand_empty_elements = false;
    c.trim_markup_names_in_closing_tags = true;
    c.trim_text(false);
    let mut doc = Doc {
        src: text,
        r,
        pending_end: false,
        depth: 0,
        bases: base.map(|u| (0, u.clone())).into_iter().collect(),
        prefixes: Vec::new(),
        default_ns: Ns::Unknown,
        bad_date: None,
        needs_extras: false,
        deadline,
        events: 0,
    };
    let root = loop {
        match doc.r.read_event().map_err(|_| Unsupported("XML error"))? {
            Event::Start(s) => break s,
            Event::Text(_) | Event::Comment(_) | Event::PI(_) => {}
            _ => return Err(Unsupported("unexpected before the root")),
        }
    };
    doc.depth = 1;
    let name = root.name().0;
    if name.contains(':') {
        return Err(Unsupported("prefixed root"));
    }
    let attrs = attributes(&root)?;
    doc.declare(&attrs)?;
    doc.push_base(&attrs)?;
    match name {
        "rss" => {
            // RSS 0.91/0.92 are read as RSS 2.0, as feed-rs does.
            let version = attrs.iter().find(|(k, _)| *k == "version");
            if !matches!(
                version.map(|(_, v)| v.as_ref()),
                Some("2.0" | "" | "0.91" | "0.92")
            ) {
                return Err(Unsupported("RSS version"));
            }
            if doc.default_ns != Ns::Unknown {
                return Err(Unsupported("default namespace on rss"));
            }
            doc.default_ns = Ns::Rss;
            let mut feed = doc.rss()?;
            feed.is_atom = false;
            feed.bad_date = doc.bad_date;
            feed.needs_extras = doc.needs_extras;
            Ok(feed)
        }
        "feed" => {
            if !matches!(doc.default_ns, Ns::Unknown | Ns::Atom) {
                return Err(Unsupported("Atom namespace"));
            }
            if attrs.iter().any(|(k, _)| *k == "xmlns") && doc.default_ns != Ns::Atom {
                return Err(Unsupported("Atom namespace"));
            }
            doc.default_ns = Ns::Atom;
            let mut feed = doc.atom()?;
            feed.is_atom = true;
            feed.bad_date = doc.bad_date;
            feed.needs_extras = doc.needs_extras;
            Ok(feed)
        }
        _ => Err(Unsupported("root element")),
    }
}

/// Attributes as feed-rs keeps them: raw names, values unescaped (or raw
/// when they do not unescape). A malformed or repeated attribute is refused.
fn attributes<'s>(s: &'s BytesStart<'_>) -> R<Vec<(&'s str, Cow<'s, str>)>> {
    let mut out = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|_| Unsupported("attribute syntax"))?;
        let key: &'s str = a.key.0;
        let value = match a.value {
            Cow::Borrowed(raw) => unescape(raw).unwrap_or(Cow::Borrowed(raw)),
            Cow::Owned(raw) => match unescape(&raw) {
                Ok(v) => Cow::Owned(v.into_owned()),
                Err(_) => Cow::Owned(raw),
            },
        };
        out.push((key, value));
    }
    Ok(out)
}

impl<'a> Doc<'a> {
    /// Records the root's namespace declarations.
    fn declare(&mut self, attrs: &[(&str, Cow<'_, str>)]) -> R<()> {
        for (k, v) in attrs {
            if *k == "xmlns" {
                self.default_ns = ns_of_uri(v);
                if self.default_ns == Ns::Unknown {
                    return Err(Unsupported("default namespace"));
                }
            } else if let Some(p) = k.strip_prefix("xmlns:") {
                if p.is_empty() || p == "xml" || p == "xmlns" || v.is_empty() || p.contains(':') {
                    return Err(Unsupported("namespace declaration"));
                }
                if v.as_ref() == "http://www.w3.org/XML/1998/namespace"
                    || v.as_ref() == "http://www.w3.org/2000/xmlns/"
                {
                    return Err(Unsupported("namespace declaration"));
                }
                if self.prefixes.iter().any(|(q, _)| q == p) {
                    return Err(Unsupported("namespace declared twice"));
                }
                self.prefixes.push((p.to_string(), ns_of_uri(v)));
            }
        }
        Ok(())
    }

    /// Pushes the element's `xml:base`, as feed-rs does (its parse errors are ours).
    fn push_base(&mut self, attrs: &[(&str, Cow<'_, str>)]) -> R<()> {
        let Some((_, b)) = attrs.iter().find(|(k, _)| *k == "xml:base") else {
            return Ok(());
        };
        match Url::parse(b) {
            Ok(u) => self.bases.push((self.depth, u)),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                if let Some(u) = self.bases.last().and_then(|(_, l)| l.join(b).ok()) {
                    self.bases.push((self.depth, u));
                }
            }
            Err(_) => return Err(Unsupported("xml:base")),
        }
        Ok(())
    }

    /// A date read by the one date function both parsers share; the first
    /// that cannot be read is remembered for the poll's warning.
    fn date(&mut self, raw: &str) -> Option<DateTime<Utc>> {
        let d = super::date::parse_date(raw);
        if d.is_none() && self.bad_date.is_none() && !raw.trim().is_empty() {
            self.bad_date = Some(raw.trim().to_string());
        }
        d
    }

    /// The base URL in scope.
    fn base(&self) -> Option<Url> {
        self.bases.last().map(|(_, u)| u.clone())
    }

    /// The next event, with depth and `xml:base` kept. Namespace declarations
    /// below the root are refused.
    fn next(&mut self) -> R<Ev<'a>> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(self.end());
        }
        self.tick()?;
        let ev = self.r.read_event().map_err(|_| Unsupported("XML error"))?;
        Ok(match ev {
            Event::Start(s) => self.start(s, false)?,
            Event::Empty(s) => self.start(s, true)?,
            Event::End(_) => self.end(),
            Event::Text(t) => Ev::Text(t.into_inner()),
            Event::CData(t) => Ev::Text(t.into_inner()),
            Event::GeneralRef(r) => Ev::Text(resolve_ref(&r)?),
            Event::Comment(_) | Event::PI(_) => Ev::Other,
            Event::Decl(_) | Event::DocType(_) => return Err(Unsupported("declaration or DTD")),
            Event::Eof => return Err(Unsupported("unexpected end of document")),
        })
    }

    /// Counts an event; every 4096, gives up if the deadline has passed.
    fn tick(&mut self) -> R<()> {
        self.events = self.events.wrapping_add(1);
        if self.events.is_multiple_of(4096) && self.deadline.is_some_and(|d| d.passed()) {
            return Err(Unsupported("deadline passed"));
        }
        Ok(())
    }

    fn start(&mut self, s: BytesStart<'a>, empty: bool) -> R<Ev<'a>> {
        self.depth += 1;
        self.note_extras(&s);
        if s.attributes_raw().trim_ascii().is_empty() {
            self.pending_end = empty;
            return Ok(Ev::Start(s));
        }
        let attrs = attributes(&s)?;
        if attrs
            .iter()
            .any(|(k, _)| *k == "xmlns" || k.starts_with("xmlns:"))
        {
            return Err(Unsupported("namespace declared below the root"));
        }
        self.push_base(&attrs)?;
        self.pending_end = empty;
        Ok(Ev::Start(s))
    }

    /// Notes elements and attributes that only the extras pass reads:
    /// `origLink`, `dc:title`, Dublin Core dates, DC Terms, `rdf:about`.
    fn note_extras(&mut self, s: &BytesStart<'_>) {
        if self.needs_extras {
            return;
        }
        let q = s.name().0;
        let local = local_name(q);
        self.needs_extras = matches!(local, "origLink" | "origlink")
            || q == "dc:title"
            || q == "dc:date"
            || q.starts_with("dcterms:")
            || (local == "item" && s.attributes_raw().contains(":about"));
    }

    /// The `xml:base` the document sets for the entry just opened (of the
    /// entry, else of the feed): content resolves against it.
    fn entry_base(&self) -> Option<Url> {
        self.bases
            .last()
            .filter(|(d, _)| *d > 0)
            .map(|(_, u)| u.clone())
    }

    fn end(&mut self) -> Ev<'a> {
        self.depth = self.depth.saturating_sub(1);
        while self.bases.last().is_some_and(|(d, _)| *d > self.depth) {
            self.bases.pop();
        }
        Ev::End
    }

    /// Namespace and local name of an element.
    fn name<'s>(&self, s: &'s BytesStart<'_>) -> R<(Ns, &'s str)> {
        let qname: &'s str = s.name().0;
        match qname.split_once(':') {
            None => Ok((self.default_ns, qname)),
            Some((p, local)) => {
                if local.contains(':') {
                    return Err(Unsupported("qualified name"));
                }
                let ns = self
                    .prefixes
                    .iter()
                    .find(|(q, _)| q == p)
                    .map(|(_, ns)| *ns)
                    .ok_or(Unsupported("undeclared prefix"))?;
                Ok((ns, local))
            }
        }
    }

    /// Skips the rest of an element whose start was just read.
    fn skip(&mut self) -> R<()> {
        let mut open = 1u32;
        while open > 0 {
            match self.next()? {
                Ev::Start(_) => open += 1,
                Ev::End => open -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// The element's text, as feed-rs's `child_as_text` reads it (untrimmed;
    /// `None` when there is none), consuming the element. Markup inside is refused.
    fn text(&mut self) -> R<Option<String>> {
        if let Some(text) = self.text_to_end_tag()? {
            return Ok(text);
        }
        // Escaped text runs to the next `<`: its length is a good capacity.
        let pos = usize::try_from(self.r.buffer_position()).unwrap_or(usize::MAX);
        let hint = self
            .src
            .get(pos..)
            .and_then(|rest| memchr::memchr(b'<', rest.as_bytes()))
            .unwrap_or(0);
        let mut out: Option<String> = None;
        loop {
            match self.next()? {
                Ev::End => return Ok(out),
                Ev::Start(_) => return Err(Unsupported("markup inside a text element")),
                // feed-rs drops empty pieces (a reference is never empty).
                Ev::Text(t) if !t.is_empty() => match &mut out {
                    Some(o) => o.push_str(&t),
                    None if hint > t.len() => {
                        let mut o = String::with_capacity(hint);
                        o.push_str(&t);
                        out = Some(o);
                    }
                    None => out = Some(t.into_owned()),
                },
                Ev::Text(_) => {}
                Ev::Other => {}
            }
        }
    }

    /// [`Doc::text`] of an element that holds only text and references up
    /// to its end tag, read in one pass: quick-xml reports every reference
    /// as an event, and escaped HTML holds thousands. The references split
    /// and resolve as the events would (an `&` without its `;` is the same
    /// error). `None`: anything else, left to the events.
    fn text_to_end_tag(&mut self) -> R<Option<Option<String>>> {
        if self.pending_end {
            return Ok(None);
        }
        let pos = usize::try_from(self.r.buffer_position()).unwrap_or(usize::MAX);
        let Some(rest) = self.src.get(pos..) else {
            return Ok(None);
        };
        let Some(lt) = memchr::memchr(b'<', rest.as_bytes()) else {
            return Ok(None);
        };
        if !rest[lt..].starts_with("</") {
            return Ok(None);
        }
        let raw = &rest[..lt];
        let mut out = String::with_capacity(raw.len());
        let mut text = raw;
        while let Some(amp) = memchr::memchr(b'&', text.as_bytes()) {
            out.push_str(&text[..amp]);
            let after = &text[amp + 1..];
            match memchr::memchr2(b';', b'&', after.as_bytes()) {
                Some(semi) if after.as_bytes()[semi] == b';' => {
                    out.push_str(&resolve_ref(&BytesRef::new(&after[..semi]))?);
                    text = &after[semi + 1..];
                }
                _ => return Err(Unsupported("XML error")),
            }
        }
        out.push_str(text);
        // Past the text, as if its events had been read; then the end tag.
        std::io::BufRead::consume(&mut self.r.stream(), lt);
        match self.next()? {
            Ev::End => Ok(Some((!raw.is_empty()).then_some(out))),
            _ => Err(Unsupported("XML error")),
        }
    }

    /// An Atom text construct (`type` text, html or xhtml), as feed-rs's
    /// `atom::handle_text` reads it, trimmed.
    fn atom_text(&mut self, s: &BytesStart<'a>) -> R<TextData> {
        let attrs = attributes(s)?;
        let ty = attrs
            .iter()
            .find(|(k, _)| *k == "type")
            .map_or("text", |(_, v)| v.as_ref());
        let (content, html) = match ty {
            "text" => (self.text()?.unwrap_or_default(), false),
            "html" | "text/html" => (self.text()?.unwrap_or_default(), true),
            "xhtml" => (self.xhtml()?, true),
            _ => return Err(Unsupported("text construct type")),
        };
        Ok(TextData {
            content: trimmed(content),
            html,
        })
    }

    /// Checks an Atom text construct feed-rs would read but gazette does not use.
    fn atom_text_skipped(&mut self, s: &BytesStart<'a>) -> R<()> {
        self.atom_text(s).map(drop)
    }

    /// XHTML content serialised as feed-rs's `children_as_xhtml` does: local
    /// names, attribute values unescaped and unquoted-as-is, text minimally
    /// escaped, one wrapping `<div>` removed.
    fn xhtml(&mut self) -> R<String> {
        if self.pending_end {
            // `<content type="xhtml"/>`: nothing inside.
            self.pending_end = false;
            self.end();
            return Ok(String::new());
        }
        let mut buf = String::new();
        let mut depth = 0u32;
        let mut first_element = true;
        let mut div_open: Option<usize> = None;
        let mut div_close: Option<usize> = None;
        loop {
            self.tick()?;
            let (start, empty) = match self.r.read_event() {
                Err(_) => return Err(Unsupported("XML error")),
                Ok(Event::Start(s)) => (Some(s), false),
                Ok(Event::Empty(s)) => (Some(s), true),
                Ok(Event::End(e)) => {
                    if depth == 0 {
                        self.end();
                        break;
                    }
                    depth -= 1;
                    let close_start = buf.len();
                    buf.push_str("</");
                    buf.push_str(local_name(e.name().0));
                    buf.push('>');
                    if depth == 0 && div_open.is_some() {
                        div_close = Some(close_start);
                    }
                    continue;
                }
                Ok(Event::Text(t)) => {
                    self.xhtml_text(
                        &t,
                        depth,
                        &mut buf,
                        &mut first_element,
                        &mut div_open,
                        &mut div_close,
                    );
                    continue;
                }
                Ok(Event::CData(t)) => {
                    self.xhtml_text(
                        &t,
                        depth,
                        &mut buf,
                        &mut first_element,
                        &mut div_open,
                        &mut div_close,
                    );
                    continue;
                }
                Ok(Event::GeneralRef(r)) => {
                    let t = resolve_ref(&r)?;
                    self.xhtml_text(
                        &t,
                        depth,
                        &mut buf,
                        &mut first_element,
                        &mut div_open,
                        &mut div_close,
                    );
                    continue;
                }
                Ok(Event::Comment(_) | Event::PI(_)) => continue,
                Ok(_) => return Err(Unsupported("unexpected in xhtml")),
            };
            let s = start.expect("a start tag");
            if depth == 0 {
                if first_element {
                    if local_name(s.name().0) != "div" {
                        first_element = false;
                    }
                } else {
                    div_open = None;
                    div_close = None;
                }
            }
            depth += 1;
            buf.push('<');
            let qname = s.name();
            buf.push_str(local_name(qname.0));
            for (k, v) in attributes(&s)? {
                buf.push(' ');
                buf.push_str(k);
                buf.push_str("=\"");
                buf.push_str(&v);
                buf.push('"');
            }
            buf.push('>');
            if first_element {
                first_element = false;
                div_open = Some(buf.len());
            }
            if empty {
                depth -= 1;
                let close_start = buf.len();
                buf.push_str("</");
                buf.push_str(local_name(qname.0));
                buf.push('>');
                if depth == 0 && div_open.is_some() {
                    div_close = Some(close_start);
                }
            }
        }
        if let (Some(open), Some(close)) = (div_open, div_close) {
            buf.truncate(close);
            buf.drain(..open);
        }
        Ok(buf)
    }

    fn xhtml_text(
        &self,
        t: &str,
        depth: u32,
        buf: &mut String,
        first_element: &mut bool,
        div_open: &mut Option<usize>,
        div_close: &mut Option<usize>,
    ) {
        if depth == 0 && t.bytes().any(|c| !c.is_ascii_whitespace()) {
            *first_element = false;
            *div_open = None;
            *div_close = None;
        }
        buf.push_str(&minimal_escape(t));
    }

    /// `<rss>`: the first `channel` child, then nothing more is read (as in feed-rs).
    fn rss(&mut self) -> R<FeedData> {
        loop {
            match self.next()? {
                Ev::Start(s) => {
                    let (_, local) = self.name(&s)?;
                    if local == "channel" {
                        return self.channel();
                    }
                    self.skip()?;
                }
                Ev::End => return Err(Unsupported("no channel")),
                _ => {}
            }
        }
    }

    fn channel(&mut self) -> R<FeedData> {
        let mut feed = FeedData::default();
        loop {
            let s = match self.next()? {
                Ev::Start(s) => s,
                Ev::End => return Ok(feed),
                _ => continue,
            };
            match self.name(&s)? {
                (Ns::Rss, "title") => {
                    feed.title = self.text()?.map(|t| TextData {
                        content: trimmed(t),
                        html: false,
                    })
                }
                (Ns::Rss, "link") => {
                    let base = self.base();
                    if let Some(t) = self.text()? {
                        feed.links.push(link_new(&t, base.as_ref()));
                    }
                }
                (Ns::Atom, "link") => {
                    if let Some(l) = self.atom_link(&s)? {
                        feed.links.push(l);
                    }
                }
                (Ns::Rss, "ttl") => {
                    if let Some(t) = self.text()?
                        && let Ok(ttl) = t.parse::<u32>()
                    {
                        feed.ttl = Some(ttl);
                    }
                }
                (Ns::Rss, "item") => feed.entries.push(self.rss_item()?),
                (Ns::Podcast, _) => return Err(Unsupported("podcast namespace")),
                _ => self.skip()?,
            }
        }
    }

    fn rss_item(&mut self) -> R<EntryData> {
        let mut e = EntryData {
            content_base: self.entry_base(),
            ..EntryData::default()
        };
        loop {
            let s = match self.next()? {
                Ev::Start(s) => s,
                Ev::End => break,
                _ => continue,
            };
            match self.name(&s)? {
                (Ns::Rss, "title") => {
                    e.title = self.text()?.map(|t| TextData {
                        content: trimmed(t),
                        html: false,
                    })
                }
                (Ns::Rss, "link") => {
                    let base = self.base();
                    if let Some(t) = self.text()? {
                        e.links.push(link_new(&t, base.as_ref()));
                    }
                }
                (Ns::Rss, "description") => {
                    e.summary = self.text()?.map(|t| TextData {
                        content: trimmed(t),
                        html: true,
                    })
                }
                (Ns::Rss, "author") | (Ns::DublinCore, "creator") => {
                    if let Some(t) = self.text()? {
                        e.authors.push(person(&t)?);
                    }
                }
                (Ns::Rss, "category") => {
                    if let Some(t) = self.text()? {
                        e.categories.push(CategoryData {
                            term: t.trim().to_string(),
                            label: None,
                        });
                    }
                }
                (Ns::Rss, "guid") => {
                    if let Some(t) = self.text()? {
                        e.id = t.trim().to_string();
                    }
                }
                (Ns::Rss, "enclosure") => {
                    let attrs = attributes(&s)?;
                    let base = self.base();
                    let mut m = MediaData {
                        url: None,
                        mime: None,
                        size: None,
                    };
                    for (k, v) in &attrs {
                        match *k {
                            "url" => m.url = parse_uri(v, base.as_ref()).map(String::from),
                            "length" => m.size = v.parse::<u64>().ok(),
                            "type" => m.mime = Some(simple_mime(v)?),
                            _ => {}
                        }
                    }
                    if m.url.is_some() {
                        e.media.push(m);
                    }
                    self.skip()?;
                }
                (Ns::Rss, "pubDate") | (Ns::DublinCore, "date") => {
                    e.published = match self.text()? {
                        Some(t) => self.date(&t),
                        None => None,
                    }
                }
                (Ns::Rss, "updated") | (Ns::Atom, "updated") => {
                    e.updated = match self.text()? {
                        Some(t) => self.date(&t),
                        None => None,
                    }
                }
                (Ns::Content, "encoded") => {
                    e.content = self.text()?.filter(|t| !t.is_empty()).map(|t| TextData {
                        content: t,
                        html: true,
                    })
                }
                (Ns::Itunes, "title" | "summary") => {
                    return Err(Unsupported("itunes text construct"));
                }
                (Ns::MediaRss | Ns::Podcast | Ns::Comments, _) => {
                    return Err(Unsupported("media, podcast or comment element"));
                }
                (Ns::Rss, "comments") => return Err(Unsupported("comments link")),
                _ => self.skip()?,
            }
        }
        if e.updated.is_none() && e.published.is_some() {
            e.updated = e.published;
        }
        Ok(e)
    }

    /// An Atom `<link>`: `None` without `href`.
    fn atom_link(&mut self, s: &BytesStart<'a>) -> R<Option<LinkData>> {
        let attrs = attributes(s)?;
        let base = self.base();
        self.skip()?;
        let Some((_, href)) = attrs.iter().find(|(k, _)| *k == "href") else {
            return Ok(None);
        };
        let mut link = link_new(href, base.as_ref());
        for (k, v) in &attrs {
            match *k {
                "rel" => link.rel = Some(v.to_string()),
                "type" => link.media_type = Some(v.to_string()),
                "length" => link.length = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        if link.rel.is_none() {
            link.rel = Some("alternate".into());
        }
        Ok(Some(link))
    }

    fn atom(&mut self) -> R<FeedData> {
        let mut feed = FeedData::default();
        loop {
            let s = match self.next()? {
                Ev::Start(s) => s,
                Ev::End => return Ok(feed),
                _ => continue,
            };
            match self.name(&s)? {
                (Ns::Atom, "title") => feed.title = Some(self.atom_text(&s)?),
                (Ns::Atom, "rights" | "subtitle") => self.atom_text_skipped(&s)?,
                (Ns::Atom, "link") => {
                    if let Some(l) = self.atom_link(&s)? {
                        feed.links.push(l);
                    }
                }
                (Ns::Atom, "entry") => feed.entries.push(self.atom_entry()?),
                _ => self.skip()?,
            }
        }
    }

    fn atom_entry(&mut self) -> R<EntryData> {
        let mut e = EntryData {
            content_base: self.entry_base(),
            ..EntryData::default()
        };
        loop {
            let s = match self.next()? {
                Ev::Start(s) => s,
                Ev::End => return Ok(e),
                _ => continue,
            };
            match self.name(&s)? {
                (Ns::Atom, "id") => {
                    if let Some(t) = self.text()? {
                        e.id = t;
                    }
                }
                (Ns::Atom, "title") => e.title = Some(self.atom_text(&s)?),
                (Ns::Atom, "summary") => e.summary = Some(self.atom_text(&s)?),
                (Ns::Atom, "rights") => self.atom_text_skipped(&s)?,
                (Ns::Atom, "updated") => {
                    if let Some(t) = self.text()? {
                        e.updated = self.date(&t);
                    }
                }
                (Ns::Atom, "published" | "pubDate") => {
                    if let Some(t) = self.text()? {
                        e.published = self.date(&t);
                    }
                }
                (Ns::Atom, "author") => {
                    if let Some(p) = self.atom_person()? {
                        e.authors.push(p);
                    }
                }
                (Ns::Atom, "contributor") => {
                    self.atom_person()?;
                }
                (Ns::Atom, "content") => {
                    let attrs = attributes(&s)?;
                    if attrs.iter().any(|(k, _)| *k == "src") {
                        return Err(Unsupported("content with src"));
                    }
                    match attrs
                        .iter()
                        .find(|(k, _)| *k == "type")
                        .map(|(_, v)| v.as_ref())
                    {
                        None | Some("text" | "html" | "xhtml" | "text/html") => {}
                        Some(_) => return Err(Unsupported("content type")),
                    }
                    e.content = Some(self.atom_text(&s)?);
                }
                (Ns::Atom, "link") => {
                    if let Some(l) = self.atom_link(&s)? {
                        e.links.push(l);
                    }
                }
                (Ns::Atom, "category") => {
                    let attrs = attributes(&s)?;
                    self.skip()?;
                    if let Some((_, term)) = attrs.iter().find(|(k, _)| *k == "term") {
                        e.categories.push(CategoryData {
                            term: term.trim().to_string(),
                            label: attrs
                                .iter()
                                .find(|(k, _)| *k == "label")
                                .map(|(_, v)| v.to_string()),
                        });
                    }
                }
                (Ns::MediaRss | Ns::Comments, _) => {
                    return Err(Unsupported("media or comment element"));
                }
                _ => self.skip()?,
            }
        }
    }

    /// An Atom person: `None` without a name or an email.
    fn atom_person(&mut self) -> R<Option<PersonData>> {
        let (mut name, mut email) = (None, None);
        loop {
            let s = match self.next()? {
                Ev::Start(s) => s,
                Ev::End => break,
                _ => continue,
            };
            let local = local_name(s.name().0);
            let text = self.text()?;
            match (local, text) {
                ("name", Some(n)) => name = Some(n),
                ("email", t) => email = t,
                _ => {}
            }
        }
        Ok((name.is_some() || email.is_some()).then_some(PersonData { name, email }))
    }
}

/// `s.trim()`, without a copy.
fn trimmed(mut s: String) -> String {
    let end = s.trim_end().len();
    s.truncate(end);
    let start = s.len() - s.trim_start().len();
    s.drain(..start);
    s
}

/// The part of a qualified name after its last colon (feed-rs's element names).
fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// A reference as feed-rs resolves it: characters and the five predefined
/// entities; any other name is kept as written.
fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> R<Cow<'static, str>> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
        Ok(None) => {
            let name: &str = r;
            Ok(match resolve_predefined_entity(name) {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(format!("&{name};")),
            })
        }
        Err(_) => Err(Unsupported("bad character reference")),
    }
}

/// feed-rs's `parse_uri`: absolute as it is, else joined to the base.
fn parse_uri(uri: &str, base: Option<&Url>) -> Option<Url> {
    match Url::parse(uri) {
        Ok(u) => Some(u),
        Err(url::ParseError::RelativeUrlWithoutBase) => base.and_then(|b| b.join(uri).ok()),
        Err(_) => None,
    }
}

/// feed-rs's `Link::new`.
fn link_new(href: &str, base: Option<&Url>) -> LinkData {
    let href = if crate::sanitize::is_canonical_web_url(href) {
        // What the parse would give back.
        href.to_string()
    } else {
        match parse_uri(href, base) {
            Some(u) => String::from(u).trim().to_string(),
            None => href.trim().to_string(),
        }
    };
    LinkData {
        href,
        rel: None,
        media_type: None,
        length: None,
    }
}

/// feed-rs's `Person::parse` when there is no email in the text (no `@`):
/// the trimmed text is the name. With an `@`, feed-rs's regex decides.
fn person(raw: &str) -> R<PersonData> {
    if raw.contains('@') {
        return Err(Unsupported("person with an email"));
    }
    Ok(PersonData {
        name: Some(raw.trim().to_string()),
        email: None,
    })
}

/// A MIME type in the plain `type/subtype` shape, which feed-rs's media-type
/// parser accepts and prints back unchanged.
fn simple_mime(v: &str) -> R<String> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 60
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'+' | b'-')
            })
    };
    match v.split_once('/') {
        Some((t, s)) if ok(t) && ok(s) => Ok(v.to_string()),
        _ => Err(Unsupported("MIME type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusual_documents_are_refused() {
        for doc in [
            "{\"version\": \"https://jsonfeed.org/version/1.1\"}",
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"></rdf:RDF>",
            "<rss version=\"2.0\"><channel><item><media:content xmlns:media=\"http://search.yahoo.com/mrss/\" url=\"x\"/></item></channel></rss>",
            "<rss version=\"2.0\"><channel><item><x:title>t</x:title></item></channel></rss>",
            "<rss version=\"2.0\"><channel><item><title>a<b>b</b></title></item></channel></rss>",
            "<rss version=\"2.0\"><channel><item><author>a@b.example (A)</author></item></channel></rss>",
            "<!DOCTYPE rss [<!ENTITY x \"y\">]><rss version=\"2.0\"><channel></channel></rss>",
            "<rss version=\"2.0\"><channel><item><title>&#xD800;</title></item></channel></rss>",
            "<rss version=\"2.0\"><channel><item><title>t</title>",
            "<rss version=\"3.0\"><channel></channel></rss>",
            "<feed xmlns=\"http://purl.org/atom/ns#\"></feed>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><content src=\"https://x.example/a\"/></entry></feed>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title type=\"odd\">t</title></entry></feed>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry xml:base=\"http://[::1\"><id>1</id></entry></feed>",
        ] {
            assert!(parse(doc, None, None).is_err(), "{doc}");
        }
    }

    #[test]
    fn text_read_in_one_pass_is_what_the_events_give() {
        let doc = |title: &str| {
            format!(
                "<rss version=\"2.0\"><channel><item><title>{title}</title><guid>g</guid></item></channel></rss>"
            )
        };
        for (title, want) in [
            (
                "a &amp; b &lt;i&gt; &#x41;&#66; &quot;q&quot;",
                Some("a & b <i> AB \"q\""),
            ),
            ("&unknown; x", Some("&unknown; x")),
            ("", None),
            (" ", Some(" ")),
            ("\n\t", Some("")),
            // Markup inside: read by the events, same result.
            ("x<![CDATA[ & y]]>&amp;<!-- c -->z", Some("x & y&z")),
        ] {
            let f = parse(&doc(title), None, None).unwrap();
            let got = f.entries[0].title.as_ref().map(|t| t.content.as_str());
            // Titles are trimmed as feed-rs trims them.
            assert_eq!(got, want.map(str::trim), "{title}");
        }
        // An `&` without its `;` is an XML error either way.
        for title in ["a & b", "a &amp b", "&"] {
            assert!(parse(&doc(title), None, None).is_err(), "{title}");
        }
        // The end tag after the text must match.
        let bad = "<rss version=\"2.0\"><channel><item><title>t</guid></item></channel></rss>";
        assert!(parse(bad, None, None).is_err());
    }

    #[test]
    fn xhtml_loses_its_wrapping_div() {
        let doc = "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><content type=\"xhtml\"> <div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &amp; <img src=\"x.png\"/></p></div> </content></entry></feed>";
        let f = parse(doc, None, None).unwrap();
        let c = f.entries[0].content.as_ref().unwrap();
        assert_eq!(c.content, "<p>a &amp; <img src=\"x.png\"></img></p>");
        assert!(c.html);
    }
}
