//! What neither parser reads, per item or entry in document order, from
//! one extra quick-xml pass over documents that may hold it: FeedBurner's
//! `origLink`, RSS 1.0's `rdf:about`, `dc:title`, the dates of Dublin Core
//! and DC Terms as feedparser reads them (`pubDate` and `dcterms:issued`
//! are published, `dc:date` and `dcterms:modified` updated), and the
//! `xml:base` the document sets for an entry. Applied after either parser,
//! so both give the same entries.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use url::Url;

/// The extras of one item or entry.
#[derive(Debug, Default, Clone)]
pub(super) struct Extra {
    /// FeedBurner's `origLink`: the item's real address.
    pub orig_link: Option<String>,
    /// RSS 1.0's `rdf:about`: the item's id, and its link when it has none.
    pub about: Option<String>,
    /// `dc:title`, for an item without a title.
    pub dc_title: Option<String>,
    /// Raw publication date (`pubDate`, `dcterms:issued`, Atom `published`).
    pub published: Option<String>,
    /// Raw creation date (`dcterms:created`), when nothing says published.
    pub created: Option<String>,
    /// Raw update date (`dc:date`, `dcterms:modified`, Atom `updated`).
    pub updated: Option<String>,
    /// Whether the dates above replace the parser's (a Dublin Core or DC
    /// Terms date is present).
    pub dates_apply: bool,
    /// The `xml:base` the document sets for the entry (its own, else the
    /// feed's), when it sets one.
    pub content_base: Option<Url>,
}

/// Which field an element's text goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    OrigLink,
    DcTitle,
    Published,
    Created,
    Updated,
}

/// The extras of every item and entry, or `None` when the document holds
/// none of what they read (the common case costs a few substring searches).
pub(super) fn scan(text: &str, doc_base: Option<&Url>) -> Option<Vec<Extra>> {
    let has = |s: &str| memchr::memmem::find(text.as_bytes(), s.as_bytes()).is_some();
    let dc_dates = has("dcterms") || (has(":date>") && (has("pubDate") || has(":issued")));
    let wanted =
        has("origLink") || has("rdf:about") || has("dc:title") || has("xml:base") || dc_dates;
    if !wanted {
        return None;
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out: Vec<Extra> = Vec::new();
    // Open items: their depth. Elements: their depth and the xml:base they set.
    let mut items: Vec<u32> = Vec::new();
    let mut bases: Vec<(u32, Url)> = doc_base.map(|u| (0, u.clone())).into_iter().collect();
    let mut depth = 0u32;
    let mut field: Option<(Field, u32, String)> = None;
    loop {
        let (start, empty) = match reader.read_event() {
            Ok(Event::Start(s)) => (s, false),
            Ok(Event::Empty(s)) => (s, true),
            Ok(Event::End(_)) => {
                if let Some((f, _, text)) = field.take_if(|(_, d, _)| *d == depth)
                    && let Some(e) = out.last_mut()
                {
                    let t = text.trim().to_string();
                    if !t.is_empty() {
                        let slot = match f {
                            Field::OrigLink => &mut e.orig_link,
                            Field::DcTitle => &mut e.dc_title,
                            Field::Published => &mut e.published,
                            Field::Created => &mut e.created,
                            Field::Updated => &mut e.updated,
                        };
                        slot.get_or_insert(t);
                    }
                }
                if items.last() == Some(&depth) {
                    items.pop();
                }
                while bases.last().is_some_and(|(d, _)| *d >= depth && *d > 0) {
                    bases.pop();
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            Ok(Event::Text(t)) => {
                if let Some((_, _, buf)) = &mut field {
                    buf.push_str(&quick_xml::escape::unescape(t.as_ref()).unwrap_or_default());
                }
                continue;
            }
            Ok(Event::CData(t)) => {
                if let Some((_, _, buf)) = &mut field {
                    buf.push_str(t.as_ref());
                }
                continue;
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some((_, _, buf)) = &mut field {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => buf.push(c),
                        _ => {
                            buf.push_str(resolve_predefined_entity(r.as_ref()).unwrap_or_default())
                        }
                    }
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => continue,
        };
        depth += 1;
        let qname = start.name().0;
        let local = qname.rsplit(':').next().unwrap_or(qname);
        let mut about = None;
        for a in start.attributes().with_checks(false).flatten() {
            match a.key.0 {
                "xml:base" => {
                    let v = quick_xml::escape::unescape(&a.value).unwrap_or_default();
                    let resolved = match Url::parse(&v) {
                        Ok(u) => Some(u),
                        Err(_) => bases.last().and_then(|(_, b)| b.join(&v).ok()),
                    };
                    if let Some(u) = resolved {
                        bases.push((depth, u));
                    }
                }
                k if k.ends_with(":about") || k == "about" => {
                    about = Some(
                        quick_xml::escape::unescape(&a.value)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    );
                }
                _ => {}
            }
        }
        if matches!(local, "item" | "entry") {
            items.push(depth);
            out.push(Extra {
                about: about.filter(|a| !a.is_empty()),
                dates_apply: dc_dates,
                content_base: bases.last().filter(|(d, _)| *d > 0).map(|(_, u)| u.clone()),
                ..Extra::default()
            });
        } else if !items.is_empty() && depth == items.last().copied().unwrap_or(0) + 1 {
            let f = match (qname, local) {
                (_, "origLink" | "origlink") => Some(Field::OrigLink),
                ("dc:title", _) => Some(Field::DcTitle),
                ("pubDate" | "dcterms:issued" | "published" | "atom:published", _) => {
                    Some(Field::Published)
                }
                ("dcterms:created", _) => Some(Field::Created),
                (
                    "dc:date" | "dcterms:modified" | "dcterms:date" | "updated" | "atom:updated",
                    _,
                ) => Some(Field::Updated),
                _ => None,
            };
            if let Some(f) = f
                && !empty
            {
                field = Some((f, depth, String::new()));
            }
        }
        if empty {
            if items.last() == Some(&depth) {
                items.pop();
            }
            while bases.last().is_some_and(|(d, _)| *d >= depth && *d > 0) {
                bases.pop();
            }
            depth -= 1;
        }
    }
    Some(out)
}
