//! The OPML 2.0 list of sources (<http://opml.org/spec2.opml>).

use std::collections::HashMap;

use quick_xml::escape::escape;

use crate::config::Config;
use crate::model::FeedRow;

/// The configured feeds as an OPML 2.0 document, in configuration order,
/// with each feed's own title and web site as the store knows them.
pub(super) fn render(config: &Config, feeds: &[FeedRow]) -> Vec<u8> {
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
        out.push_str(&format!(
            "    <outline type=\"rss\" text=\"{}\" title=\"{}\" xmlUrl=\"{}\"",
            escape(name.as_str()),
            escape(title.as_str()),
            escape(super::xml_safe(&f.source.as_url_string()).as_str()),
        ));
        if let Some(home) = row
            .and_then(|r| r.state.site_link.as_deref())
            .and_then(super::web_url)
        {
            out.push_str(&format!(" htmlUrl=\"{}\"", escape(home.as_str())));
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
