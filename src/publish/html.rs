//! The HTML page of a listing (`index.html`, `tags/<tag>.html`), from the
//! askama template `templates/index.html`: no scripts, no external assets.

use askama::Template;

use super::Listing;
use crate::sanitize;

#[derive(Template)]
#[template(path = "index.html")]
struct Page<'a> {
    title: &'a str,
    site_title: &'a str,
    /// Relative path back to the site root: pages work from a folder on disk too.
    root: &'static str,
    tag: Option<&'a str>,
    tags: &'a [String],
    stories: Vec<StoryView<'a>>,
}

struct StoryView<'a> {
    title: &'a str,
    link: Option<&'a str>,
    date: String,
    date_iso: String,
    sources: Vec<SourceView<'a>>,
    tags: &'a [String],
    excerpt: String,
}

struct SourceView<'a> {
    name: &'a str,
    link: Option<&'a str>,
}

/// `listing` as an HTML page.
pub(super) fn render(listing: &Listing) -> Result<Vec<u8>, String> {
    let page = Page {
        title: &listing.title,
        site_title: &listing.site_title,
        root: if listing.tag.is_some() { "../" } else { "" },
        tag: listing.tag.as_deref(),
        tags: &listing.tags,
        stories: listing
            .entries
            .iter()
            .map(|e| StoryView {
                title: &e.title,
                link: e.link.as_deref(),
                date: e.published.format("%-d %b %Y").to_string(),
                date_iso: e.published.to_rfc3339(),
                sources: e
                    .sources
                    .iter()
                    .map(|s| SourceView {
                        name: &s.name,
                        link: s.link.as_deref(),
                    })
                    .collect(),
                tags: &e.tags,
                excerpt: sanitize::excerpt(&e.excerpt, 300),
            })
            .collect(),
    };
    page.render()
        .map(String::into_bytes)
        .map_err(|e| e.to_string())
}
