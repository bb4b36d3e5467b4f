//! The RSS 2.0 alternate, for readers that predate Atom; same stories and
//! ids (`guid isPermaLink="false"`) as the Atom feed.

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Guid, Item, Source};

use super::Listing;

/// `listing` as an RSS 2.0 document.
pub(super) fn render(listing: &Listing) -> Result<Vec<u8>, String> {
    let items = listing
        .entries
        .iter()
        .map(|e| Item {
            title: Some(e.title.clone()),
            link: e.link.clone(),
            description: Some(e.content_with_sources()),
            guid: Some(Guid {
                value: e.id.clone(),
                permalink: false,
            }),
            pub_date: Some(e.published.to_rfc2822()),
            categories: e
                .tags
                .iter()
                .map(|t| Category {
                    name: t.clone(),
                    domain: Some(listing.url("tags/")),
                })
                .collect(),
            // RSS's <author> must be an email address: names go to dc:creator.
            dublin_core_ext: Some(DublinCoreExtension {
                creators: e.authors.clone(),
                ..Default::default()
            }),
            source: e.sources.first().and_then(|s| {
                Some(Source {
                    url: s.feed_url.clone()?,
                    title: Some(s.feed_title.clone()),
                })
            }),
            enclosure: e.enclosures.first().map(|enc| rss::Enclosure {
                url: enc.url.clone(),
                length: enc.length.unwrap_or(0).to_string(),
                mime_type: enc
                    .mime
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
            }),
            ..Default::default()
        })
        .collect();
    let channel = Channel {
        title: listing.title.clone(),
        link: listing.site.to_string(),
        description: format!("Stories gathered by {}", listing.title),
        last_build_date: Some(listing.updated.to_rfc2822()),
        generator: Some(format!("gazette {}", env!("CARGO_PKG_VERSION"))),
        atom_ext: Some(AtomExtension {
            links: vec![Link {
                href: listing.url("feed.rss"),
                rel: "self".into(),
                mime_type: Some("application/rss+xml".into()),
                ..Default::default()
            }],
        }),
        items,
        ..Default::default()
    };
    channel.write_to(Vec::new()).map_err(|e| e.to_string())
}
