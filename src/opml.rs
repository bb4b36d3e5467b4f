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
    /// Tags: its `category` attribute and the folders (parent outlines) it
    /// sits in, as feed readers export categories, slugged to the tag rules.
    pub tags: Vec<String>,
}

/// `s` as a tag name: lower-case ASCII letters and digits, accents
/// dropped, other characters as `-` ("Droits humains & ONG" →
/// `droits-humains-ong`); `None` when nothing is left.
pub fn slug(s: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let mut out = String::new();
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// The feeds (outlines with an `xmlUrl`) of an OPML document, in document
/// order, with the folders they sit in as tags.
pub fn read_feeds(path: &Path, xml: &str) -> Result<Vec<OpmlFeed>, OpmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut feeds = Vec::new();
    // Open outlines: the folder tag each gives (None for a feed or an untitled one).
    let mut folders: Vec<Option<String>> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| OpmlError::Xml {
            path: path.to_path_buf(),
            position: reader.buffer_position(),
            message: e.to_string(),
        })?;
        let (e, empty) = match event {
            Event::Start(e) if e.local_name().as_ref() == "outline" => (e, false),
            Event::Empty(e) if e.local_name().as_ref() == "outline" => (e, true),
            Event::End(e) if e.local_name().as_ref() == "outline" => {
                folders.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
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
        let title = attr("text")
            .filter(|t| !t.is_empty())
            .or_else(|| attr("title").filter(|t| !t.is_empty()));
        let Some(url) = attr("xmlUrl").filter(|u| !u.is_empty()) else {
            // A folder (Feedly, Inoreader, NetNewsWire, Miniflux categories).
            if !empty {
                folders.push(title.as_deref().and_then(slug));
            }
            continue;
        };
        let mut tags: Vec<String> = Vec::new();
        let categories = attr("category").unwrap_or_default();
        let from_category = categories.split([',', '/']).filter_map(slug);
        let from_folders = folders.iter().flatten().cloned();
        for t in from_category.chain(from_folders) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        feeds.push(OpmlFeed {
            name: title.unwrap_or_else(|| url.clone()),
            url,
            tags,
        });
        if !empty {
            folders.push(None);
        }
    }
    Ok(feeds)
}

/// What an import did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Names of the feeds added.
    pub added: Vec<String>,
    /// Feeds added under another name, because theirs was taken: (name in
    /// the OPML, name given).
    pub renamed: Vec<(String, String)>,
    /// URLs already configured (or twice in the file), left alone.
    pub skipped: Vec<String>,
    /// Entries that could not be added: (URL, why).
    pub refused: Vec<(String, String)>,
}

/// The same feed under `http`/`https`, with or without `www.` and a
/// trailing slash: one key.
pub fn feed_key(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
            let mut key = format!("{host}{}", u.path().trim_end_matches('/'));
            if let Some(q) = u.query() {
                key.push('?');
                key.push_str(q);
            }
            key
        }
        Ok(u) => u.to_string(),
        Err(_) => url.trim().to_string(),
    }
}

/// Appends the feeds of the OPML file at `opml` that `config` does not have
/// yet to the configuration file, keeping its text and comments. One bad
/// entry never fails the import: a name already taken (names compare
/// without case) gets the feed's host added; the same feed under another
/// scheme, `www.` or trailing slash counts as configured; an entry that
/// would still make the configuration invalid is refused with the reason.
/// The new text is validated before it replaces the old one atomically.
pub fn import(config: &Config, opml: &Path) -> Result<Imported, OpmlError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpmlError::Io { path, source }
    };
    let xml = std::fs::read_to_string(opml).map_err(io(opml))?;
    let found = read_feeds(opml, &xml)?;
    let mut keys: HashSet<String> = config
        .feeds
        .iter()
        .map(|f| feed_key(&f.source.as_url_string()))
        .collect();
    let mut names: HashSet<String> = config.feeds.iter().map(|f| f.name.to_lowercase()).collect();
    let mut text = std::fs::read_to_string(&config.path).map_err(io(&config.path))?;
    let mut done = Imported::default();
    let mut blocks: Vec<(String, String, String)> = Vec::new();
    for f in found {
        let web = url::Url::parse(&f.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(web) = web else {
            done.refused.push((f.url, "not an http(s) address".into()));
            continue;
        };
        if !keys.insert(feed_key(&f.url)) {
            done.skipped.push(f.url);
            continue;
        }
        let host = web.host_str().unwrap_or("feed");
        let host = host.strip_prefix("www.").unwrap_or(host);
        let mut name = f.name.trim().to_string();
        if name.is_empty() {
            name = host.to_string();
        }
        if names.contains(&name.to_lowercase()) {
            let base = format!("{} ({host})", f.name.trim());
            name = base.clone();
            let mut n = 2;
            while names.contains(&name.to_lowercase()) {
                name = format!("{base} {n}");
                n += 1;
            }
            done.renamed.push((f.name.clone(), name.clone()));
        }
        names.insert(name.to_lowercase());
        let mut block = format!(
            "\n[[feeds]]\nname = {}\nurl = {}\n",
            toml_string(&name),
            toml_string(&f.url)
        );
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| toml_string(t)).collect();
            block.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
        blocks.push((name, f.url, block));
    }
    if blocks.is_empty() {
        return Ok(done);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("\n# Imported from {}\n", opml.display()));
    let all: String = blocks.iter().map(|(_, _, b)| b.as_str()).collect();
    if Config::parse(&config.path, &format!("{text}{all}")).is_ok() {
        text.push_str(&all);
        done.added
            .extend(blocks.into_iter().map(|(name, _, _)| name));
    } else {
        // Some entry is still not acceptable: add them one by one.
        for (name, url, block) in blocks {
            let candidate = format!("{text}{block}");
            match Config::parse(&config.path, &candidate) {
                Ok(_) => {
                    text = candidate;
                    done.added.push(name);
                }
                Err(e) => {
                    done.renamed.retain(|(_, n)| *n != name);
                    let why: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
                    done.refused.push((url, why.join("; ")));
                }
            }
        }
        if done.added.is_empty() {
            return Ok(done);
        }
    }
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
                    tags: vec!["ngo".into(), "un".into(), "ngos".into()],
                },
                OpmlFeed {
                    name: "No text".into(),
                    url: "https://example.org/rss".into(),
                    tags: vec!["ngos".into()],
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
