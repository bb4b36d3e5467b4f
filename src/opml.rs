//! `gazette opml import`: reads the feeds of an OPML file (any version, nested
//! outlines) and appends the new ones to `feeds.toml` as `[[feeds]]` tables.
//! (Writing OPML is part of publishing: see `publish::opml`.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use quick_xml::events::Event;

use crate::config::Config;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The OPML is not well-formed.
    #[error("{}: not valid OPML at byte {position}: {message}", path.display())]
    Xml {
        /// The file.
        path: PathBuf,
        /// Where the reader stopped.
        position: u64,
        /// The reader's error.
        message: String,
    },
    /// The configuration with the imported feeds would not be valid.
    #[error("the imported feeds would make the configuration invalid ({0}); nothing was written")]
    Invalid(String),
}

/// A feed found in an OPML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpmlFeed {
    /// Its `text` (else `title`) attribute.
    pub name: String,
    /// Its `xmlUrl`.
    pub url: String,
    /// Tags from its `category` attribute (lower-case slugs only).
    pub tags: Vec<String>,
}

/// The feeds (outlines with an `xmlUrl`) of an OPML document, in document order.
pub fn read_feeds(path: &Path, xml: &str) -> Result<Vec<OpmlFeed>, OpmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut feeds = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| OpmlError::Xml {
            path: path.to_path_buf(),
            position: reader.buffer_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "outline" => {
                let attr = |name: &str| -> Option<String> {
                    e.attributes().flatten().find_map(|a| {
                        a.key
                            .local_name()
                            .as_ref()
                            .eq_ignore_ascii_case(name)
                            .then(|| {
                                a.normalized_value(quick_xml::XmlVersion::default())
                                    .map(|v| v.trim().to_string())
                                    .unwrap_or_default()
                            })
                    })
                };
                let Some(url) = attr("xmlUrl").filter(|u| !u.is_empty()) else {
                    continue;
                };
                let name = attr("text")
                    .filter(|t| !t.is_empty())
                    .or_else(|| attr("title").filter(|t| !t.is_empty()))
                    .unwrap_or_else(|| url.clone());
                let tags = attr("category")
                    .unwrap_or_default()
                    .split([',', '/'])
                    .map(|t| t.trim().to_lowercase())
                    .filter(|t| {
                        !t.is_empty()
                            && !t.starts_with('-')
                            && t.chars().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                            })
                    })
                    .collect::<Vec<_>>();
                let mut unique = Vec::new();
                for t in tags {
                    if !unique.contains(&t) {
                        unique.push(t);
                    }
                }
                feeds.push(OpmlFeed {
                    name,
                    url,
                    tags: unique,
                });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(feeds)
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Names of the feeds added.
    pub added: Vec<String>,
    /// URLs already configured, left alone.
    pub skipped: Vec<String>,
}

/// Appends the feeds of the OPML file at `opml` that `config` does not have
/// yet (by URL) to the configuration file, keeping its text and comments.
/// The new text is validated before it replaces the old one atomically.
pub fn import(config: &Config, opml: &Path) -> Result<Imported, OpmlError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpmlError::Io { path, source }
    };
    let xml = std::fs::read_to_string(opml).map_err(io(opml))?;
    let found = read_feeds(opml, &xml)?;
    let mut urls: HashSet<String> = config
        .feeds
        .iter()
        .map(|f| f.source.as_url_string())
        .collect();
    let mut names: HashSet<String> = config.feeds.iter().map(|f| f.name.clone()).collect();
    let mut text = std::fs::read_to_string(&config.path).map_err(io(&config.path))?;
    let mut done = Imported::default();
    let mut block = String::new();
    for f in found {
        let normalised = url::Url::parse(&f.url).map_or_else(|_| f.url.clone(), String::from);
        if !urls.insert(normalised) {
            done.skipped.push(f.url);
            continue;
        }
        let mut name = f.name.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{} ({n})", f.name);
            n += 1;
        }
        names.insert(name.clone());
        block.push_str(&format!(
            "\n[[feeds]]\nname = {}\nurl = {}\n",
            toml_string(&name),
            toml_string(&f.url)
        ));
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| toml_string(t)).collect();
            block.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
        done.added.push(name);
    }
    if done.added.is_empty() {
        return Ok(done);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("\n# Imported from {}\n", opml.display()));
    text.push_str(&block);
    Config::parse(&config.path, &text).map_err(|e| OpmlError::Invalid(e.to_string()))?;
    let folder = config
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(folder).map_err(io(folder))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io(&config.path))?;
    // The new file keeps the old one's permissions (a daemon user may read it).
    if let Ok(meta) = std::fs::metadata(&config.path) {
        std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(io(&config.path))?;
    }
    tmp.persist(&config.path).map_err(|e| OpmlError::Io {
        path: config.path.clone(),
        source: e.error,
    })?;
    Ok(done)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_outlines_with_categories() {
        let xml = r#"<?xml version="1.0"?>
<opml version="1.0"><head><title>subs</title></head><body>
  <outline text="NGOs">
    <outline text="ISHR &amp; friends" type="rss" xmlUrl="https://ishr.ch/feed/" category="/NGO,un"/>
    <outline title="No text" xmlUrl="https://example.org/rss"></outline>
  </outline>
  <outline text="A folder without feeds"/>
</body></opml>"#;
        let feeds = read_feeds(Path::new("subs.opml"), xml).unwrap();
        assert_eq!(
            feeds,
            vec![
                OpmlFeed {
                    name: "ISHR & friends".into(),
                    url: "https://ishr.ch/feed/".into(),
                    tags: vec!["ngo".into(), "un".into()],
                },
                OpmlFeed {
                    name: "No text".into(),
                    url: "https://example.org/rss".into(),
                    tags: vec![],
                },
            ]
        );
    }

    #[test]
    fn malformed_opml_names_the_file() {
        let err = read_feeds(
            Path::new("bad.opml"),
            "<opml><body><outline xmlUrl=\"x\"></body>",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("bad.opml: not valid OPML"),
            "{err}"
        );
    }
}
