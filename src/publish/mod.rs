//! Publishing: turns stored stories into what readers subscribe to — the
//! combined Atom feed, one Atom feed per tag, RSS 2.0 and JSON Feed
//! alternates, an HTML page per listing and the OPML list of sources.
//!
//! [`render`] builds one document from the store; [`write_dir`] writes a
//! set of them atomically. Each format lives in its own file and renders
//! from the plain [`Listing`] built here, so every format carries the same
//! stories under the same ids.

mod atom;
mod html;
mod jsonfeed;
mod opml;
mod rss;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use url::Url;

use crate::config::Config;
use crate::model::{Enclosure, FeedRow, ItemQuery, Story};
use crate::sanitize;
use crate::store::{Store, StoreError};

/// What went wrong while publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A feed writer failed.
    #[error("writing {path}: {message}")]
    Render {
        /// The document being written.
        path: String,
        /// The writer's error.
        message: String,
    },
    /// Writing a file failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// One published document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its path under the site root, e.g. `feed.atom` or `tags/china.atom`.
    pub path: String,
    /// Its media type, with charset.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: Vec<u8>,
}

/// The documents gazette publishes, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `feed.atom` or `tags/<tag>.atom`.
    Atom(Option<String>),
    /// `feed.rss`.
    Rss,
    /// `feed.json`.
    JsonFeed,
    /// `index.html` or `tags/<tag>.html`.
    Html(Option<String>),
    /// `sources.opml`.
    Opml,
}

impl Kind {
    /// The kind of document at `path` (`/feed.atom`, `tags/china.html`…),
    /// or `None` when gazette publishes nothing there. Tags must be known.
    pub fn from_path(path: &str, tags: &BTreeSet<String>) -> Option<Kind> {
        let path = path.trim_start_matches('/');
        match path {
            "" | "index.html" => return Some(Kind::Html(None)),
            "feed.atom" => return Some(Kind::Atom(None)),
            "feed.rss" => return Some(Kind::Rss),
            "feed.json" => return Some(Kind::JsonFeed),
            "sources.opml" => return Some(Kind::Opml),
            _ => {}
        }
        let file = path.strip_prefix("tags/")?;
        let (tag, ext) = file.rsplit_once('.')?;
        // Only configured tag names: nothing else reaches the store or the disk.
        let tag = tags.get(tag)?.clone();
        match ext {
            "atom" => Some(Kind::Atom(Some(tag))),
            "html" => Some(Kind::Html(Some(tag))),
            _ => None,
        }
    }

    /// Where this document lives under the site root.
    pub fn path(&self) -> String {
        match self {
            Kind::Atom(None) => "feed.atom".into(),
            Kind::Atom(Some(t)) => format!("tags/{t}.atom"),
            Kind::Rss => "feed.rss".into(),
            Kind::JsonFeed => "feed.json".into(),
            Kind::Html(None) => "index.html".into(),
            Kind::Html(Some(t)) => format!("tags/{t}.html"),
            Kind::Opml => "sources.opml".into(),
        }
    }

    fn content_type(&self) -> &'static str {
        match self {
            Kind::Atom(_) => "application/atom+xml; charset=utf-8",
            Kind::Rss => "application/rss+xml; charset=utf-8",
            Kind::JsonFeed => "application/feed+json; charset=utf-8",
            Kind::Html(_) => "text/html; charset=utf-8",
            Kind::Opml => "text/x-opml; charset=utf-8",
        }
    }
}

/// The published list of sources (`sources.opml`), with each feed's title
/// and web site from `feeds`; local (file) feeds are never given as
/// `file:///` addresses.
pub fn opml(config: &Config, feeds: &[FeedRow]) -> Vec<u8> {
    opml::render(config, feeds, false)
}

/// The configured feeds for `gazette opml export`: as [`opml`], but local
/// feeds keep their `file://` URL, so the list can be imported again.
pub fn opml_export(config: &Config, feeds: &[FeedRow]) -> Vec<u8> {
    opml::render(config, feeds, true)
}

/// Every tag a story can carry under `config`: rule names and feed tags.
pub fn tag_names(config: &Config) -> BTreeSet<String> {
    config
        .tags
        .iter()
        .map(|t| t.name.clone())
        .chain(config.feeds.iter().flat_map(|f| f.tags.iter().cloned()))
        .collect()
}

/// Renders one document from the store.
pub async fn render(config: &Config, store: &Store, kind: &Kind) -> Result<Document, PublishError> {
    let feeds = store.feeds().await?;
    match kind {
        Kind::Opml => Ok(opml_document(config, &feeds)),
        Kind::Atom(tag) | Kind::Html(tag) => {
            format(kind, &listing(config, store, &feeds, tag.as_deref()).await?)
        }
        Kind::Rss | Kind::JsonFeed => format(kind, &listing(config, store, &feeds, None).await?),
    }
}

/// Renders every document gazette publishes under `config` — the combined
/// feeds and page, the source list, and an Atom feed and a page per tag —
/// reading each listing from the store once for all the formats that show it.
pub async fn render_all(config: &Config, store: &Store) -> Result<Vec<Document>, PublishError> {
    let feeds = store.feeds().await?;
    let main = listing(config, store, &feeds, None).await?;
    let mut docs = vec![opml_document(config, &feeds)];
    for kind in [
        Kind::Atom(None),
        Kind::Rss,
        Kind::JsonFeed,
        Kind::Html(None),
    ] {
        docs.push(format(&kind, &main)?);
    }
    for tag in tag_names(config) {
        let listing = listing(config, store, &feeds, Some(&tag)).await?;
        docs.push(format(&Kind::Atom(Some(tag.clone())), &listing)?);
        docs.push(format(&Kind::Html(Some(tag)), &listing)?);
    }
    Ok(docs)
}

fn opml_document(config: &Config, feeds: &[FeedRow]) -> Document {
    Document {
        path: Kind::Opml.path(),
        content_type: Kind::Opml.content_type(),
        body: opml(config, feeds),
    }
}

/// `listing` in the format of `kind` (not OPML, which lists feeds).
fn format(kind: &Kind, listing: &Listing) -> Result<Document, PublishError> {
    let path = kind.path();
    let body = match kind {
        Kind::Atom(_) => atom::render(listing),
        Kind::Html(_) => html::render(listing),
        Kind::Rss => rss::render(listing),
        Kind::JsonFeed => jsonfeed::render(listing),
        Kind::Opml => Err("OPML lists feeds, not stories".to_string()),
    }
    .map_err(|message| PublishError::Render {
        path: path.clone(),
        message,
    })?;
    Ok(Document {
        path,
        content_type: kind.content_type(),
        body,
    })
}

/// Writes documents under `dir` (creating it), each atomically: written to
/// a temporary file in the same folder, synced, then renamed over the old
/// one, so a reader never sees half a file. A file whose bytes would not
/// change is left alone. Returns the paths of the files written. Files
/// under `dir/tags/` of tags no longer configured are removed.
pub fn write_dir(dir: &Path, docs: &[Document]) -> Result<Vec<String>, PublishError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::Io { path, source }
    };
    let mut written = Vec::new();
    for doc in docs {
        let target = dir.join(&doc.path);
        // Unchanged bytes stay untouched: a web server serving the folder
        // keeps its Last-Modified and ETag.
        if std::fs::read(&target).is_ok_and(|old| old == doc.body) {
            continue;
        }
        let folder = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".gazette-")
            .tempfile_in(folder)
            .map_err(io(folder))?;
        tmp.write_all(&doc.body).map_err(io(&target))?;
        tmp.as_file().sync_all().map_err(io(&target))?;
        tmp.persist(&target).map_err(|e| PublishError::Io {
            path: target.clone(),
            source: e.error,
        })?;
        // Readable by the web server, like any published file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
                .map_err(io(&target))?;
        }
        written.push(doc.path.clone());
    }
    let tags_dir = dir.join("tags");
    let current: BTreeSet<&str> = docs.iter().map(|d| d.path.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(&tags_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".atom") || name.ends_with(".html");
            if ours && !current.contains(format!("tags/{name}").as_str()) {
                std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
            }
        }
    }
    Ok(written)
}

/// A list of entries with what every format needs to present it.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The listing's title: the site's, with the tag for a tag listing.
    pub title: String,
    /// The site's title.
    pub site_title: String,
    /// The site's base URL (ends with `/`).
    pub site: Url,
    /// The tag this listing is restricted to.
    pub tag: Option<String>,
    /// Every tag, for navigation.
    pub tags: Vec<String>,
    /// The newest update among the entries (the Unix epoch when there are none).
    pub updated: DateTime<Utc>,
    /// The WebSub hub, when configured.
    pub hub: Option<String>,
    /// The entries, newest first.
    pub entries: Vec<Entry>,
}

impl Listing {
    /// The absolute URL of `path` under the site.
    pub fn url(&self, path: &str) -> String {
        self.site
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.site), String::from)
    }
}

/// A story as published.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The permanent id (a `tag:` URI); see [`entry_id`].
    pub id: String,
    /// Plain-text title, never empty.
    pub title: String,
    /// Absolute http(s) link to the story, when it has a usable one,
    /// without tracking parameters.
    pub link: Option<String>,
    /// The story's date.
    pub published: DateTime<Utc>,
    /// When the story last changed (never before `published`).
    pub updated: DateTime<Utc>,
    /// Author names: the primary item's, else its feed's name.
    pub authors: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Plain-text excerpt.
    pub excerpt: String,
    /// Sanitised HTML body (content, else summary, else the excerpt), without the sources.
    pub body_html: String,
    /// Where the story was reported, primary first.
    pub sources: Vec<EntrySource>,
    /// Attached media with absolute http(s) URLs.
    pub enclosures: Vec<Enclosure>,
}

impl Entry {
    /// The body followed by a line listing the sources with their links.
    pub fn content_with_sources(&self) -> String {
        let mut html = self.body_html.clone();
        html.push_str("\n<p>Sources: ");
        for (i, s) in self.sources.iter().enumerate() {
            if i > 0 {
                html.push_str(" · ");
            }
            let name = sanitize::escape_html(&s.name);
            match &s.link {
                Some(l) => html.push_str(&format!(
                    "<a href=\"{}\">{name}</a>",
                    sanitize::escape_html(l)
                )),
                None => html.push_str(&name),
            }
        }
        html.push_str("</p>");
        html
    }
}

/// One source of an entry.
#[derive(Debug, Clone)]
pub struct EntrySource {
    /// The feed's name in `feeds.toml`.
    pub name: String,
    /// The feed's own title, else its name.
    pub feed_title: String,
    /// The item's link in that feed (absolute http(s)).
    pub link: Option<String>,
    /// The item's date.
    pub published: DateTime<Utc>,
    /// The feed's web site (absolute http(s)).
    pub feed_home: Option<String>,
    /// The feed's URL, when it is http(s).
    pub feed_url: Option<String>,
}

/// The permanent id of a story: a `tag:` URI (RFC 4151) made of the site's
/// host, the day the story was first stored, this store's random key and
/// the story's id. A story keeps its store id when later duplicates join
/// it, so its entry id never changes.
pub fn entry_id(site: &Url, story: &Story, store_key: &str) -> String {
    // RFC 4151 wants a DNS name: an IPv6 literal falls back to localhost.
    let host = site
        .host_str()
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or("localhost");
    let day: NaiveDate = story.created_at.date_naive();
    format!(
        "tag:{host},{}:{store_key}:{}",
        day.format("%Y-%m-%d"),
        story.id
    )
}

/// The stories of one listing, as entries.
async fn listing(
    config: &Config,
    store: &Store,
    feeds: &[FeedRow],
    tag: Option<&str>,
) -> Result<Listing, PublishError> {
    let stories = store
        .list_stories(&ItemQuery {
            tag: tag.map(str::to_string),
            since: None,
            limit: Some(config.publish.entries),
            include_excluded: false,
        })
        .await?;
    let store_key = store.store_key().await?;
    let by_name: HashMap<&str, &FeedRow> = feeds.iter().map(|f| (f.name.as_str(), f)).collect();
    let strip = &config.dedup.strip_params;
    let entries: Vec<Entry> = stories
        .iter()
        .map(|s| entry(&config.site_url, s, &store_key, &by_name, strip))
        .collect();
    let updated = entries
        .iter()
        .map(|e| e.updated)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH);
    Ok(Listing {
        title: match tag {
            Some(t) => xml_safe(&format!("{} — {t}", config.title)),
            None => xml_safe(&config.title),
        },
        site_title: xml_safe(&config.title),
        site: config.site_url.clone(),
        tag: tag.map(str::to_string),
        tags: tag_names(config).into_iter().collect(),
        updated,
        hub: config.publish.hub.as_ref().map(Url::to_string),
        entries,
    })
}

fn entry(
    site: &Url,
    s: &Story,
    store_key: &str,
    feeds: &HashMap<&str, &FeedRow>,
    strip: &[String],
) -> Entry {
    // Readers get links without click trackers.
    let link = |l: &str| web_url(l).map(|u| crate::dedup::strip_tracking(&u, strip));
    let excerpt = xml_safe(&s.excerpt);
    let mut title = xml_safe(s.title.trim());
    if title.is_empty() {
        title = sanitize::excerpt(&excerpt, 80);
    }
    if title.is_empty() {
        title = "(untitled)".into();
    }
    let body_html = match s.content_html.as_deref().or(s.summary_html.as_deref()) {
        Some(h) if !h.trim().is_empty() => xml_safe(h),
        _ => format!("<p>{}</p>", sanitize::escape_html(&excerpt)),
    };
    let sources: Vec<EntrySource> = s
        .sources
        .iter()
        .map(|src| {
            let row = feeds.get(src.feed.as_str());
            let state = row.map(|r| &r.state);
            EntrySource {
                name: xml_safe(&src.feed),
                feed_title: state
                    .and_then(|st| st.title.as_deref())
                    .map(|t| xml_safe(t.trim()))
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| xml_safe(&src.feed)),
                link: src.link.as_deref().and_then(link),
                published: src.published,
                feed_home: state
                    .and_then(|st| st.site_link.as_deref())
                    .and_then(web_url),
                feed_url: row
                    .and_then(|r| web_url(r.state.permanent_url.as_deref().unwrap_or(&r.url))),
            }
        })
        .collect();
    let mut authors: Vec<String> = s
        .authors
        .iter()
        .map(|a| xml_safe(a.trim()))
        .filter(|a| !a.is_empty())
        .collect();
    if authors.is_empty() {
        authors.push(
            sources
                .first()
                .map_or_else(|| title.clone(), |p| p.name.clone()),
        );
    }
    let updated = [Some(s.published), s.updated, s.changed_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(s.published);
    Entry {
        id: entry_id(site, s, store_key),
        title,
        link: s.link.as_deref().and_then(link),
        published: s.published,
        updated,
        authors,
        tags: s.tags.iter().map(|t| xml_safe(t)).collect(),
        excerpt,
        body_html,
        sources,
        enclosures: s
            .enclosures
            .iter()
            .filter_map(|e| {
                Some(Enclosure {
                    url: web_url(&e.url)?,
                    mime: e
                        .mime
                        .as_deref()
                        .filter(|m| is_media_type(m))
                        .map(str::to_string),
                    length: e.length,
                })
            })
            .collect(),
    }
}

/// Whether `m` has the `type/subtype` shape RFC 4287 wants of a link's
/// type (feeds send `mp3`, empty strings and worse).
fn is_media_type(m: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = m.split(';').next().unwrap_or("").trim();
    matches!(essence.split_once('/'), Some((t, s)) if token(t) && token(s))
}

/// `s` when it is an absolute http(s) URL, in normalised form.
fn web_url(s: &str) -> Option<String> {
    let u = Url::parse(s.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

/// `s` without the characters XML 1.0 forbids (C0 controls other than tab,
/// newline and carriage return; U+FFFE and U+FFFF): a hostile feed's
/// `&#1;` must not make the published feed ill-formed.
pub fn xml_safe(s: &str) -> String {
    let ok = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    if s.chars().all(ok) {
        s.to_string()
    } else {
        s.chars().filter(|&c| ok(c)).collect()
    }
}

/// An HTTP date for documents and headers (RFC 9110 IMF-fixdate).
pub fn http_date(d: DateTime<Utc>) -> String {
    d.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_media_types_reach_link_types() {
        assert!(is_media_type("audio/mpeg"));
        assert!(is_media_type("application/vnd.ms-excel; charset=x"));
        for bad in ["", "mp3", "audio/", "/mpeg", "audio/mp eg", "a/b/c"] {
            assert!(!is_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn xml_safe_drops_forbidden_characters_only() {
        assert_eq!(xml_safe("a\u{1}b\u{b}c\u{FFFF}d"), "abcd");
        assert_eq!(xml_safe("tab\tnl\n é 🎉"), "tab\tnl\n é 🎉");
    }

    #[test]
    fn paths_map_to_kinds_and_back() {
        let tags: BTreeSet<String> = ["china".to_string()].into();
        for (path, kind) in [
            ("/", Kind::Html(None)),
            ("/feed.atom", Kind::Atom(None)),
            ("tags/china.atom", Kind::Atom(Some("china".into()))),
            ("/tags/china.html", Kind::Html(Some("china".into()))),
            ("/sources.opml", Kind::Opml),
        ] {
            assert_eq!(Kind::from_path(path, &tags), Some(kind.clone()), "{path}");
            if path != "/" {
                assert_eq!(kind.path(), path.trim_start_matches('/'));
            }
        }
        for bad in [
            "/tags/russia.atom",
            "/tags/../feeds.toml",
            "/tags/china.xml",
            "/tags/china",
            "/gazette.db",
        ] {
            assert_eq!(Kind::from_path(bad, &tags), None, "{bad}");
        }
    }
}
