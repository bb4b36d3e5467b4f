//! The Atom 1.0 feed (RFC 4287), written with `atom_syndication`.

use atom_syndication::{Category, Content, Feed, Generator, Link, Person, Source, Text};
use chrono::{DateTime, FixedOffset, Utc};

use super::{Entry, Listing};

/// `listing` as an Atom document.
pub(super) fn render(listing: &Listing) -> Result<Vec<u8>, String> {
    let self_path = match &listing.tag {
        Some(t) => format!("tags/{t}.atom"),
        None => "feed.atom".into(),
    };
    let alternate = match &listing.tag {
        Some(t) => listing.url(&format!("tags/{t}.html")),
        None => listing.site.to_string(),
    };
    let self_url = listing.url(&self_path);
    let mut links = vec![
        link(&self_url, "self", "application/atom+xml"),
        link(&alternate, "alternate", "text/html"),
    ];
    if let Some(hub) = &listing.hub {
        links.push(Link {
            href: hub.clone(),
            rel: "hub".into(),
            ..Default::default()
        });
    }
    let feed = Feed {
        title: Text::plain(listing.title.clone()),
        // The self URL is the feed's identity: it is derived from site_url only.
        id: self_url,
        updated: fixed(listing.updated),
        generator: Some(Generator {
            value: "gazette".into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        links,
        entries: listing.entries.iter().map(|e| entry(listing, e)).collect(),
        ..Default::default()
    };
    feed.write_to(Vec::new()).map_err(|e| e.to_string())
}

fn entry(listing: &Listing, e: &Entry) -> atom_syndication::Entry {
    let mut links = Vec::new();
    if let Some(l) = &e.link {
        links.push(link(l, "alternate", "text/html"));
    }
    for enc in &e.enclosures {
        links.push(Link {
            href: enc.url.clone(),
            rel: "enclosure".into(),
            mime_type: enc.mime.clone(),
            length: enc.length.map(|l| l.to_string()),
            ..Default::default()
        });
    }
    let source = e.sources.first().map(|s| {
        let mut links = Vec::new();
        if let Some(home) = &s.feed_home {
            links.push(link(home, "alternate", "text/html"));
        }
        if let Some(url) = &s.feed_url {
            links.push(Link {
                href: url.clone(),
                rel: "self".into(),
                ..Default::default()
            });
        }
        Source {
            title: Text::plain(s.feed_title.clone()),
            // The feed's own URL, else a name within this site's source list.
            id: s.feed_url.clone().unwrap_or_else(|| {
                let name: String =
                    url::form_urlencoded::byte_serialize(s.name.as_bytes()).collect();
                format!("{}#{name}", listing.url("sources.opml"))
            }),
            updated: fixed(s.published),
            links,
            ..Default::default()
        }
    });
    atom_syndication::Entry {
        title: Text::plain(e.title.clone()),
        id: e.id.clone(),
        updated: fixed(e.updated),
        published: Some(fixed(e.published)),
        authors: e
            .authors
            .iter()
            .map(|a| Person {
                name: a.clone(),
                ..Default::default()
            })
            .collect(),
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                term: t.clone(),
                scheme: Some(listing.url("tags/")),
                label: Some(t.clone()),
            })
            .collect(),
        links,
        source,
        summary: (!e.excerpt.is_empty()).then(|| Text::plain(e.excerpt.clone())),
        content: Some(Content {
            value: Some(e.content_with_sources()),
            content_type: Some("html".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn link(href: &str, rel: &str, mime: &str) -> Link {
    Link {
        href: href.into(),
        rel: rel.into(),
        mime_type: Some(mime.into()),
        ..Default::default()
    }
}

fn fixed(d: DateTime<Utc>) -> DateTime<FixedOffset> {
    d.fixed_offset()
}
