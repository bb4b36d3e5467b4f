//! Feed bytes → normalised items. feed-rs lives here and nowhere else.
//!
//! Two steps, so that unchanged items cost almost nothing:
//! [`parse`] decodes the bytes (BOM, HTTP charset, XML declaration), runs
//! feed-rs and gives each entry its identity key and a hash of its raw
//! content; [`RawEntry::normalise`] then makes the stored [`Item`] (plain-text
//! title, absolute link, sanitised HTML, excerpt, UTC dates). The pipeline
//! only normalises entries whose hash it has not stored yet.
//!
//! RSS 2.0/0.9x and Atom 1.0 documents within what [`fast`] understands are
//! read by it, straight from quick-xml; everything else goes to feed-rs.
//! Both produce the same plain [`FeedData`], so normalising is shared.

pub mod charset;
mod date;
mod extras;
mod fast;
mod json;
mod repair;

pub use charset::decode;
pub use date::parse_date;

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Feed, FeedType};
use url::Url;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::model::{Enclosure, Item};
use crate::sanitize::{self, Sanitizer};

/// Length of the plain-text excerpt kept with each item.
pub const EXCERPT_CHARS: usize = 300;

/// Why a document could not be read as a feed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not a well-formed RSS, Atom or JSON feed.
    #[error("not a valid RSS/Atom/JSON feed: {0}")]
    Invalid(String),
    /// The parsing crate panicked on this document; contained here.
    #[error("the feed parser crashed on this document ({0}); the feed is skipped")]
    Panicked(String),
    /// Reading the document took longer than its CPU limit: abandoned.
    #[error(
        "abandoned after {} of parsing: the document costs too much to read (limit: [fetch] parse_timeout)",
        humantime::format_duration(*.0)
    )]
    TooCostly(Duration),
}

/// When the CPU-bound work on one document must stop. The work runs on a
/// blocking thread, which nothing can stop from outside: it looks at its
/// deadline between entries and every few thousand steps of long loops.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// [`ParseError::TooCostly`] once the deadline has passed.
    pub fn check(&self) -> Result<(), ParseError> {
        if self.passed() {
            Err(ParseError::TooCostly(self.limit))
        } else {
            Ok(())
        }
    }
}

/// What the parser needs to know besides the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseContext<'a> {
    /// The URL the document came from: the base for relative links.
    pub base_url: Option<&'a Url>,
    /// The Content-Type header, for its charset.
    pub content_type: Option<&'a str>,
}

/// A parsed document: feed metadata and entries not yet normalised.
#[derive(Debug)]
pub struct ParsedFeed {
    /// The feed's title.
    pub title: Option<String>,
    /// The feed's web site.
    pub site_link: Option<String>,
    /// `ttl` hint in seconds.
    pub ttl_seconds: Option<i64>,
    /// Entries in document order.
    pub entries: Vec<RawEntry>,
    /// Whether the fast path read the document (else feed-rs did).
    pub fast_path: bool,
    /// The first date in the document that could not be read (its entry
    /// keeps its first-seen time).
    pub unreadable_date: Option<String>,
}

/// One entry as the parser gave it, with its identity and raw hash.
#[derive(Debug)]
pub struct RawEntry {
    /// Identity within the feed: `guid:…`, `link:…` or `hash:…`.
    pub key: String,
    /// Hash of the raw entry; equal hashes mean nothing changed.
    pub raw_hash: i64,
    entry: EntryData,
    link: Option<String>,
    title_is_html: bool,
    base: Option<Url>,
}

/// Decodes, parses and keys a feed document. Never panics: a panic inside
/// the parsing crate becomes [`ParseError::Panicked`].
pub fn parse(bytes: &[u8], ctx: ParseContext<'_>) -> Result<ParsedFeed, ParseError> {
    contain_panics(|| parse_inner(bytes, ctx, true, None))
}

/// As [`parse`], giving up with [`ParseError::TooCostly`] once `deadline` passes.
pub fn parse_within(
    bytes: &[u8],
    ctx: ParseContext<'_>,
    deadline: Deadline,
) -> Result<ParsedFeed, ParseError> {
    contain_panics(|| parse_inner(bytes, ctx, true, Some(deadline)))
}

/// As [`parse`], but always through feed-rs: the reference the fast path is
/// checked against.
pub fn parse_with_feed_rs(bytes: &[u8], ctx: ParseContext<'_>) -> Result<ParsedFeed, ParseError> {
    contain_panics(|| parse_inner(bytes, ctx, false, None))
}

/// The feed fields gazette uses, as either parser gives them.
#[derive(Debug, Default)]
struct FeedData {
    title: Option<TextData>,
    is_atom: bool,
    links: Vec<LinkData>,
    ttl: Option<u32>,
    entries: Vec<EntryData>,
    /// The first date that [`parse_date`] could not read.
    bad_date: Option<String>,
    /// Whether the extras pass may find something (the fast path knows
    /// from the elements it read; otherwise the pass looks for itself).
    needs_extras: bool,
}

/// A text construct: its content, and whether its type is HTML or XML.
#[derive(Debug, Clone)]
struct TextData {
    content: String,
    html: bool,
}

/// A link with the attributes gazette reads.
#[derive(Debug, Clone)]
struct LinkData {
    href: String,
    rel: Option<String>,
    media_type: Option<String>,
    length: Option<u64>,
}

/// A media file (RSS enclosure, media:content).
#[derive(Debug, Clone)]
struct MediaData {
    url: Option<String>,
    mime: Option<String>,
    size: Option<u64>,
}

/// A person's name and email.
#[derive(Debug, Clone)]
struct PersonData {
    name: Option<String>,
    email: Option<String>,
}

/// A category's term and label.
#[derive(Debug, Clone)]
struct CategoryData {
    term: String,
    label: Option<String>,
}

/// The entry fields gazette uses.
#[derive(Debug, Default)]
struct EntryData {
    id: String,
    title: Option<TextData>,
    summary: Option<TextData>,
    /// The content's body, when it has one.
    content: Option<TextData>,
    links: Vec<LinkData>,
    categories: Vec<CategoryData>,
    authors: Vec<PersonData>,
    media: Vec<MediaData>,
    published: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    /// The `xml:base` the document sets for the entry (its own, else the
    /// feed's), when it sets one: content resolves against it.
    content_base: Option<Url>,
}

fn mime_is_html(ct: &str) -> bool {
    ct.contains("html") || ct.contains("xml")
}

impl From<&feed_rs::model::Text> for TextData {
    fn from(t: &feed_rs::model::Text) -> TextData {
        TextData {
            content: t.content.clone(),
            // As displayed (the type rebuilt from its parts), as before the fast path.
            html: {
                let ct = t.content_type.to_string();
                mime_is_html(&ct)
            },
        }
    }
}

impl From<feed_rs::model::Link> for LinkData {
    fn from(l: feed_rs::model::Link) -> LinkData {
        LinkData {
            href: l.href,
            rel: l.rel,
            media_type: l.media_type,
            length: l.length,
        }
    }
}

impl From<Entry> for EntryData {
    fn from(e: Entry) -> EntryData {
        EntryData {
            id: e.id,
            title: e.title.as_ref().map(TextData::from),
            summary: e.summary.as_ref().map(TextData::from),
            content: e.content.and_then(|c| {
                let ct = c.content_type.to_string();
                let html = mime_is_html(&ct);
                Some(TextData {
                    content: c.body?,
                    html,
                })
            }),
            links: e.links.into_iter().map(LinkData::from).collect(),
            categories: e
                .categories
                .into_iter()
                .map(|c| CategoryData {
                    term: c.term,
                    label: c.label,
                })
                .collect(),
            authors: e
                .authors
                .into_iter()
                .map(|p| PersonData {
                    name: p.name,
                    email: p.email,
                })
                .collect(),
            media: e
                .media
                .into_iter()
                .flat_map(|m| m.content)
                .map(|c| MediaData {
                    url: c.url.map(String::from),
                    mime: c.content_type.map(|m| m.to_string()),
                    size: c.size,
                })
                .collect(),
            published: e.published,
            updated: e.updated,
            content_base: None,
        }
    }
}

impl From<Feed> for FeedData {
    fn from(f: Feed) -> FeedData {
        FeedData {
            title: f.title.as_ref().map(TextData::from),
            is_atom: f.feed_type == FeedType::Atom,
            links: f.links.into_iter().map(LinkData::from).collect(),
            ttl: f.ttl,
            entries: f.entries.into_iter().map(EntryData::from).collect(),
            bad_date: None,
            needs_extras: true,
        }
    }
}

/// Runs `f`, turning a panic into [`ParseError::Panicked`] with its message.
fn contain_panics<T>(f: impl FnOnce() -> Result<T, ParseError>) -> Result<T, ParseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ParseError::Panicked(msg))
        }
    }
}

fn parse_inner(
    bytes: &[u8],
    ctx: ParseContext<'_>,
    allow_fast: bool,
    deadline: Option<Deadline>,
) -> Result<ParsedFeed, ParseError> {
    let check = || deadline.as_ref().map_or(Ok(()), Deadline::check);
    let text = decode(bytes, ctx.content_type);
    let text = strip_xml_declaration(&text);
    let text = repair::prepare(text);
    let base = ctx
        .base_url
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let is_json = text.trim_start().starts_with('{');
    let fast = if allow_fast && !is_json {
        fast::parse(&text, base, deadline).ok()
    } else {
        None
    };
    let fast_path = fast.is_some();
    let mut text = text;
    let feed = match fast {
        Some(feed) => feed,
        None if is_json => json::parse(&text)?,
        None => {
            check()?;
            match with_feed_rs(&text, base) {
                Ok(feed) => feed,
                // Refused: repaired (odd text types, a truncated end), then read again.
                Err(e) => match repair::repair(&text) {
                    Some(fixed) => {
                        let feed = with_feed_rs(&fixed, base).map_err(|_| e)?;
                        text = Cow::Owned(fixed);
                        feed
                    }
                    None => return Err(e),
                },
            }
        }
    };

    let site_link = feed
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .map(|l| l.href.clone());
    // Relative links resolve against the document URL, else the feed's own site link.
    let base: Option<Url> = base
        .cloned()
        .or_else(|| site_link.as_deref().and_then(|s| Url::parse(s).ok()));
    let site_link = site_link.and_then(|s| web_link(&s, base.as_ref()));
    let title_is_html = !feed.is_atom;
    // What neither parser reads: origLink, rdf:about, dc:title, Dublin Core
    // dates, the xml:base of content.
    let extras = (!is_json && (!fast_path || feed.needs_extras))
        .then(|| extras::scan(&text, base.as_ref()))
        .flatten()
        .filter(|x| x.len() == feed.entries.len());
    let mut bad_date = feed.bad_date;
    check()?;
    let mut entries = Vec::with_capacity(feed.entries.len());
    for (i, mut entry) in feed.entries.into_iter().enumerate() {
        if i % 256 == 0 {
            check()?;
        }
        if let Some(x) = extras.as_ref().map(|x| &x[i]) {
            apply_extra(&mut entry, x, &mut bad_date);
            if x.content_base.is_some() {
                entry.content_base = x.content_base.clone();
            }
        }
        entries.push(RawEntry::new(entry, base.clone(), title_is_html));
    }
    Ok(ParsedFeed {
        title: feed.title.map(|t| text_to_plain(&t, title_is_html)),
        site_link,
        // The longer of RSS `ttl` and the syndication module's period.
        ttl_seconds: feed
            .ttl
            .map(|m| i64::from(m) * 60)
            .max(update_period(&text)),
        entries,
        fast_path,
        unreadable_date: bad_date,
    })
}

/// The document read by feed-rs, dates through [`parse_date`].
fn with_feed_rs(text: &str, base: Option<&Url>) -> Result<FeedData, ParseError> {
    let bad_date = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = bad_date.clone();
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base.map(Url::as_str))
        .id_generator(|_, _, _| String::new())
        .timestamp_parser(move |raw| {
            let d = parse_date(raw);
            if d.is_none() && !raw.trim().is_empty() {
                let mut first = seen.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| raw.trim().to_string());
            }
            d
        })
        .build();
    let mut feed = FeedData::from(
        parser
            .parse(text.as_bytes())
            .map_err(|e| ParseError::Invalid(e.to_string()))?,
    );
    feed.bad_date = bad_date.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(feed)
}

/// The syndication module's hint (`sy:updatePeriod` / `sy:updateFrequency`)
/// in seconds between updates, when the document carries one.
fn update_period(text: &str) -> Option<i64> {
    // The elements belong to the channel, ahead of its first item: only
    // that head is searched, and only when it declares the module.
    let b = text.as_bytes();
    let head_end = [&b"<item>"[..], b"<item ", b"<entry>", b"<entry "]
        .iter()
        .filter_map(|tag| memchr::memmem::find(b, tag))
        .min()
        .unwrap_or(b.len());
    let text = &text[..head_end];
    memchr::memmem::find(text.as_bytes(), b"modules/syndication")?;
    let element = |name: &str| -> Option<&str> {
        let start = text.find(&format!(":{name}>"))? + name.len() + 2;
        let len = text[start..].find('<')?;
        Some(text[start..start + len].trim())
    };
    let period = match element("updatePeriod")?.to_ascii_lowercase().as_str() {
        "hourly" => 3600,
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        "monthly" => 30 * 86_400,
        "yearly" => 365 * 86_400,
        _ => return None,
    };
    let frequency = element("updateFrequency")
        .and_then(|f| f.parse::<i64>().ok())
        .filter(|f| *f > 0)
        .unwrap_or(1);
    Some(period / frequency)
}

/// Fills in what the parser left out of `entry` from its [`extras::Extra`].
fn apply_extra(entry: &mut EntryData, x: &extras::Extra, bad_date: &mut Option<String>) {
    let link = |href: &str| LinkData {
        href: href.to_string(),
        rel: None,
        media_type: None,
        length: None,
    };
    // FeedBurner-style proxies: the item's real address is in `origLink`.
    if let Some(l) = x.orig_link.as_deref().filter(|l| l.starts_with("http")) {
        entry.links.insert(0, link(l));
    }
    // RSS 1.0: `rdf:about` is the item's id, and its link when it has none.
    if let Some(about) = &x.about {
        if entry.id.trim().is_empty() {
            entry.id = about.clone();
        }
        if entry.links.is_empty() {
            entry.links.push(link(about));
        }
    }
    if entry
        .title
        .as_ref()
        .is_none_or(|t| t.content.trim().is_empty())
        && let Some(t) = &x.dc_title
    {
        entry.title = Some(TextData {
            content: t.clone(),
            html: false,
        });
    }
    if x.dates_apply {
        let mut date = |raw: &Option<String>| {
            let raw = raw.as_deref()?;
            let d = parse_date(raw);
            if d.is_none() {
                bad_date.get_or_insert_with(|| raw.to_string());
            }
            d
        };
        let published = date(&x.published).or_else(|| date(&x.created));
        let updated = date(&x.updated);
        if published.is_some() || updated.is_some() {
            entry.published = published;
            entry.updated = updated;
        }
    }
}

impl RawEntry {
    fn new(entry: EntryData, base: Option<Url>, title_is_html: bool) -> RawEntry {
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .or_else(|| entry.links.first())
            .and_then(|l| web_link(&l.href, base.as_ref()));
        let raw_hash = raw_hash(&entry);
        let key = if !entry.id.trim().is_empty() {
            format!("guid:{}", entry.id.trim())
        } else if let Some(l) = &link {
            format!("link:{l}")
        } else {
            let mut body = String::new();
            if let Some(t) = &entry.title {
                body.push_str(&t.content);
            }
            body.push('\u{1f}');
            if let Some(c) = &entry.content {
                body.push_str(&c.content);
            }
            if let Some(s) = &entry.summary {
                body.push_str(&s.content);
            }
            format!("hash:{:032x}", xxh3_128(body.as_bytes()))
        };
        RawEntry {
            key,
            raw_hash,
            entry,
            link,
            title_is_html,
            base,
        }
    }

    /// The normalised item. `sanitizer` must have been built for this feed's base URL.
    pub fn normalise(&self, sanitizer: &Sanitizer) -> Item {
        let e = &self.entry;
        // Relative URLs in content resolve against its xml:base first.
        let clean = |html: &str| match &e.content_base {
            Some(b) => sanitizer.clean_at(html, b),
            None => sanitizer.clean(html),
        };
        let content_html = e
            .content
            .as_ref()
            .map(|c| html_of(&c.content, c.html))
            .filter(|s| !s.trim().is_empty())
            .map(|h| clean(&h));
        let summary_html = e
            .summary
            .as_ref()
            .map(|t| html_of(&t.content, t.html || self.title_is_html))
            .filter(|s| !s.trim().is_empty())
            .map(|h| clean(&h));
        let body_text = content_html
            .as_deref()
            .or(summary_html.as_deref())
            .map(|h| sanitize::clean_html_to_text(h, EXCERPT_CHARS + 1))
            .unwrap_or_default();
        let excerpt = sanitize::excerpt(&body_text, EXCERPT_CHARS);
        let title = e
            .title
            .as_ref()
            .map(|t| text_to_plain(t, self.title_is_html))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| {
                if excerpt.is_empty() {
                    self.link.clone().unwrap_or_else(|| "(untitled)".into())
                } else {
                    sanitize::excerpt(&body_text, 80)
                }
            });
        let mut enclosures: Vec<Enclosure> = e
            .media
            .iter()
            .filter_map(|c| {
                Some(Enclosure {
                    url: web_link(c.url.as_deref()?, None)?,
                    mime: c.mime.clone(),
                    length: c.size,
                })
            })
            .collect();
        for l in e
            .links
            .iter()
            .filter(|l| l.rel.as_deref() == Some("enclosure"))
        {
            let Some(url) = web_link(&l.href, self.base.as_ref()) else {
                continue;
            };
            if !enclosures.iter().any(|x| x.url == url) {
                enclosures.push(Enclosure {
                    url,
                    mime: l.media_type.clone(),
                    length: l.length,
                });
            }
        }
        let authors = e
            .authors
            .iter()
            .filter_map(|p| {
                let n = p.name.as_deref().map(plain_name).filter(|n| !n.is_empty());
                n.or_else(|| p.email.as_deref().map(plain_name))
                    .filter(|n| !n.is_empty())
            })
            .collect();
        let categories = e
            .categories
            .iter()
            .map(|c| plain_name(c.label.as_deref().unwrap_or(&c.term)))
            .filter(|c| !c.is_empty())
            .collect();
        let authors: Vec<String> = authors;
        let categories: Vec<String> = categories;
        let now = Utc::now();
        Item {
            key: self.key.clone(),
            raw_hash: self.raw_hash,
            guid: Some(e.id.trim().to_string()).filter(|g| !g.is_empty()),
            link: self.link.clone(),
            title: sanitize::strip_controls(title),
            summary_html: summary_html.map(sanitize::strip_controls),
            content_html: content_html.map(sanitize::strip_controls),
            excerpt: sanitize::strip_controls(excerpt),
            authors: authors.into_iter().map(sanitize::strip_controls).collect(),
            categories: categories
                .into_iter()
                .map(sanitize::strip_controls)
                .collect(),
            enclosures,
            published: e.published.or(e.updated).map(|d| trim_future(d, now)),
            updated: e.updated.map(|d| trim_future(d, now)),
            tags: Vec::new(),
            canonical_link: None,
            signature: None,
            excluded: false,
        }
    }
}

/// Dates more than a day ahead are publisher clock or time-zone mistakes: clamp them to now.
fn trim_future(d: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if d > now + chrono::Duration::days(1) {
        now
    } else {
        d
    }
}

/// Longest title kept, in characters; longer ones are cut on a word.
pub const MAX_TITLE_CHARS: usize = 1000;

/// Text of a title. Atom says whether it is text or HTML; RSS and JSON
/// titles are HTML only when they look like it, as feedparser reads them
/// (a closing tag or a character reference): "Die Rückkehr von <i> und
/// <b>" is text and keeps its brackets, "<b>Bold</b> news" loses its tags.
fn text_to_plain(t: &TextData, html_by_default: bool) -> String {
    let html = t.html || (html_by_default && looks_like_html(&t.content));
    let plain = if html {
        sanitize::html_to_text(&t.content)
    } else {
        sanitize::collapse_whitespace(&t.content)
    };
    if plain.len() > MAX_TITLE_CHARS {
        sanitize::excerpt(&plain, MAX_TITLE_CHARS)
    } else {
        plain
    }
}

/// feedparser's test for text that may be HTML: a closing tag (`</b>`) or
/// a character reference (`&amp;`, `&#8217;`).
fn looks_like_html(s: &str) -> bool {
    let b = s.as_bytes();
    let closing_tag = memchr::memmem::find_iter(b, b"</").any(|p| {
        let name = &b[p + 2..];
        let n = name
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        n > 0 && name.get(n) == Some(&b'>')
    });
    closing_tag
        || memchr::memchr_iter(b'&', b).any(|p| {
            let r = &b[p + 1..];
            let n = r
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
                .count();
            n > 0 && r.get(n) == Some(&b';')
        })
}

/// Whether plain text carries tags (`<img onerror=…>` as an author name):
/// such text is reduced to its words, so no output ever carries markup it
/// did not sanitise.
fn looks_like_markup(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'))
}

/// A name or category as plain text.
fn plain_name(s: &str) -> String {
    if looks_like_markup(s) {
        sanitize::html_to_text(s)
    } else {
        s.trim().to_string()
    }
}

/// Content as HTML: plain text is escaped, paragraphs kept.
fn html_of(body: &str, is_html: bool) -> Cow<'_, str> {
    if is_html {
        Cow::Borrowed(body)
    } else {
        Cow::Owned(
            body.split("\n\n")
                .map(|p| format!("<p>{}</p>", sanitize::escape_html(p.trim())))
                .collect(),
        )
    }
}

/// `href` made absolute, when it then is an http(s) URL: `javascript:`,
/// `data:` and their kind never become a story's link.
fn web_link(href: &str, base: Option<&Url>) -> Option<String> {
    let href = href.trim();
    if sanitize::is_canonical_web_url(href) {
        return Some(href.to_string());
    }
    let web = |u: &Url| matches!(u.scheme(), "http" | "https");
    match Url::parse(href) {
        // An absolute href is kept as written.
        Ok(u) => web(&u).then(|| href.to_string()),
        Err(_) => {
            let u = base?.join(href).ok()?;
            web(&u).then(|| String::from(u))
        }
    }
}

fn raw_hash(e: &EntryData) -> i64 {
    let mut h = Xxh3::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update(&[0x1f]);
    };
    put(&e.id);
    if let Some(t) = &e.title {
        put(&t.content);
    }
    if let Some(s) = &e.summary {
        put(&s.content);
    }
    if let Some(c) = &e.content {
        put(&c.content);
    }
    for l in &e.links {
        put(&l.href);
    }
    for c in &e.categories {
        put(&c.term);
    }
    for a in &e.authors {
        put(a.name.as_deref().unwrap_or_default());
    }
    for m in &e.media {
        put(m.url.as_deref().unwrap_or_default());
    }
    put(&e
        .published
        .map(|d| d.timestamp())
        .unwrap_or_default()
        .to_string());
    put(&e
        .updated
        .map(|d| d.timestamp())
        .unwrap_or_default()
        .to_string());
    h.digest() as i64
}

/// Drops the XML declaration: the text is UTF-8 now, whatever it said.
fn strip_xml_declaration(text: &str) -> &str {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with("<?xml")
        && let Some(end) = trimmed.find("?>")
    {
        return &trimmed[end + 2..];
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(xml: &[u8], ct: Option<&str>) -> Item {
        let base = Url::parse("https://example.org/feed/").unwrap();
        let f = parse(
            xml,
            ParseContext {
                base_url: Some(&base),
                content_type: ct,
            },
        )
        .unwrap();
        f.entries[0].normalise(&Sanitizer::new(Some(&base)))
    }

    #[test]
    fn windows_1252_declared_is_decoded() {
        let mut xml = b"<?xml version=\"1.0\" encoding=\"cp1252\"?><rss version=\"2.0\"><channel><title>t</title><item><title>Gen\xe8ve \x93quotes\x94</title><link>https://x.org/a</link></item></channel></rss>".to_vec();
        let item = one(&xml, None);
        assert_eq!(item.title, "Genève “quotes”");
        // The same bytes labelled by the server win over a missing declaration.
        xml = xml.split_off(xml.iter().position(|b| *b == b'>').unwrap() + 1);
        let item = one(&xml, Some("application/rss+xml; charset=latin1"));
        assert_eq!(item.title, "Genève “quotes”");
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let s = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><entry><id>1</id><title>Zürich</title><link href=\"/z\"/></entry></feed>";
        let mut bytes = vec![0xff, 0xfe];
        for u in s.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let item = one(&bytes, None);
        assert_eq!(item.title, "Zürich");
        assert_eq!(item.link.as_deref(), Some("https://example.org/z"));
    }

    #[test]
    fn server_charset_lie_on_utf8_is_ignored() {
        let xml = "<rss version=\"2.0\"><channel><title>t</title><item><title>Genève</title><guid>g</guid></item></channel></rss>";
        let item = one(xml.as_bytes(), Some("text/xml; charset=ISO-8859-1"));
        assert_eq!(item.title, "Genève");
        assert_eq!(item.key, "guid:g");
    }

    #[test]
    fn keys_fall_back_from_guid_to_link_to_hash() {
        let xml = b"<rss version=\"2.0\"><channel><title>t</title>
            <item><title>a</title><link>/a?x=1</link></item>
            <item><title>b</title><description>only text</description></item>
            </channel></rss>";
        let base = Url::parse("https://example.org/feed/").unwrap();
        let f = parse(
            xml,
            ParseContext {
                base_url: Some(&base),
                content_type: None,
            },
        )
        .unwrap();
        assert_eq!(f.entries[0].key, "link:https://example.org/a?x=1");
        assert!(f.entries[1].key.starts_with("hash:"));
    }

    #[test]
    fn a_panic_in_the_parser_becomes_an_error() {
        let r: Result<(), ParseError> =
            contain_panics(|| panic!("index out of bounds in a hostile feed"));
        match r {
            Err(e @ ParseError::Panicked(_)) => {
                assert!(
                    e.to_string()
                        .contains("index out of bounds in a hostile feed"),
                    "{e}"
                );
                assert!(e.to_string().contains("the feed is skipped"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn feedburner_orig_links_are_preferred() {
        let xml = br#"<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"><channel><title>t</title>
            <item><title>a</title><guid>1</guid><link>http://feedproxy.google.com/~r/ishr/~3/abc/</link>
              <feedburner:origLink>https://ishr.ch/news/a?x=1&amp;y=2</feedburner:origLink></item>
            <item><title>b</title><guid>2</guid><link>https://ishr.ch/news/b</link></item>
            </channel></rss>"#;
        let f = parse(xml, ParseContext::default()).unwrap();
        let s = Sanitizer::new(None);
        assert_eq!(
            f.entries[0].normalise(&s).link.as_deref(),
            Some("https://ishr.ch/news/a?x=1&y=2")
        );
        assert_eq!(
            f.entries[1].normalise(&s).link.as_deref(),
            Some("https://ishr.ch/news/b")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            parse(b"<html><body>nope", ParseContext::default()),
            Err(ParseError::Invalid(_))
        ));
        assert!(parse(b"", ParseContext::default()).is_err());
        assert!(parse(b"{\"version\": 1}", ParseContext::default()).is_err());
    }

    #[test]
    fn syndication_hints_give_seconds_between_updates() {
        let doc = |p: &str, f: &str| {
            format!(
                "<rss xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\"><channel><sy:updatePeriod> {p} </sy:updatePeriod>{f}</channel></rss>"
            )
        };
        assert_eq!(update_period(&doc("hourly", "")), Some(3600));
        assert_eq!(
            update_period(&doc("daily", "<sy:updateFrequency>4</sy:updateFrequency>")),
            Some(21_600)
        );
        assert_eq!(update_period(&doc("sometimes", "")), None);
        assert_eq!(update_period("<rss><channel/></rss>"), None);
        // RSS 1.0: the channel's <items> list comes before the hint.
        let rdf = "<rdf:RDF xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\"><channel><items><rdf:Seq/></items><sy:updatePeriod>weekly</sy:updatePeriod></channel><item rdf:about=\"x\"/></rdf:RDF>";
        assert_eq!(update_period(rdf), Some(7 * 86_400));
        // Only the channel's own: an item's text is not searched, nor a
        // document that does not declare the module.
        let late = "<rss xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\"><channel><item><description>&lt;sy:updatePeriod>hourly&lt;/sy:updatePeriod></description></item></channel></rss>";
        assert_eq!(update_period(late), None);
        assert_eq!(
            update_period("<rss><channel><x:updatePeriod>hourly</x:updatePeriod></channel></rss>"),
            None
        );
    }
}
