//! The JSON Feed 1.1 alternate (<https://jsonfeed.org/version/1.1>); same
//! stories and ids as the Atom feed.

use serde::Serialize;

use super::Listing;

#[derive(Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: String,
    feed_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    title: &'a str,
    content_html: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    date_published: String,
    date_modified: String,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Attachment<'a> {
    url: &'a str,
    mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

/// `listing` as a JSON Feed document.
pub(super) fn render(listing: &Listing) -> Result<Vec<u8>, String> {
    let feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: &listing.title,
        home_page_url: listing.site.to_string(),
        feed_url: listing.url("feed.json"),
        hubs: listing
            .hub
            .iter()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items: listing
            .entries
            .iter()
            .map(|e| Item {
                id: &e.id,
                url: e.link.as_deref(),
                title: &e.title,
                content_html: e.content_with_sources(),
                summary: &e.excerpt,
                date_published: e.published.to_rfc3339(),
                date_modified: e.updated.to_rfc3339(),
                authors: e.authors.iter().map(|name| Author { name }).collect(),
                tags: &e.tags,
                attachments: e
                    .enclosures
                    .iter()
                    .map(|a| Attachment {
                        url: &a.url,
                        mime_type: a.mime.as_deref().unwrap_or("application/octet-stream"),
                        size_in_bytes: a.length,
                    })
                    .collect(),
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&feed).map_err(|e| e.to_string())?;
    // `<` and `>` only occur inside strings: escaped, no byte of a title
    // can look like markup to a careless consumer.
    Ok(json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .into_bytes())
}
