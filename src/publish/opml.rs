//! The OPML 2.0 list of sources (<http://opml.org/spec2.opml>).

use std::collections::HashMap;

use quick_xml::escape::escape;

use crate::config::{Config, FeedSource};
use crate::model::FeedRow;

/// The configured feeds as an OPML 2.0 document, in configuration order,
/// with each feed's own title and web site as the store knows them. A local
/// feed (a file) is listed with its `file://` URL only when `local_files`
/// (the editor's own export); published, it is a link to its web site when
/// the store knows one, else left out: a `file:///` address means nothing
/// to a reader and tells about the server.
pub(super) fn render(config: &Config, feeds: &[FeedRow], local_files: bool) -> Vec<u8> {
    let rows: HashMap<&str, &FeedRow> = feeds.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n",
    );
    out.push_str(&format!(
        "    <title>{}</title>\n    <docs>http://opml.org/spec2.opml</docs>\n  </head>\n  <body>\n",
        escape(super::xml_safe(&format!("{} — sources", config.title)).as_str())
    ));
    for f in &config.feeds {
        let name = super::xml_safe(&f.name);
        let row = rows.get(f.name.as_str());
        let title = row
            .and_then(|r| r.state.title.as_deref())
            .map(super::xml_safe)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| name.clone());
        let home = row
            .and_then(|r| r.state.site_link.as_deref())
            .and_then(super::web_url);
        if matches!(f.source, FeedSource::File(_)) && !local_files {
            let Some(home) = home else { continue };
            out.push_str(&format!(
                "    <outline type=\"link\" text=\"{}\" title=\"{}\" url=\"{}\"",
                escape(name.as_str()),
                escape(title.as_str()),
                escape(home.as_str()),
            ));
        } else {
            out.push_str(&format!(
                "    <outline type=\"rss\" text=\"{}\" title=\"{}\" xmlUrl=\"{}\"",
                escape(name.as_str()),
                escape(title.as_str()),
                escape(super::xml_safe(&f.source.as_url_string()).as_str()),
            ));
            if let Some(home) = home {
                out.push_str(&format!(" htmlUrl=\"{}\"", escape(home.as_str())));
            }
        }
        if !f.tags.is_empty() {
            out.push_str(&format!(
                " category=\"{}\"",
                escape(f.tags.join(",").as_str())
            ));
        }
        out.push_str("/>\n");
    }
    out.push_str("  </body>\n</opml>\n");
    out.into_bytes()
}
