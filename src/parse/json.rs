//! JSON Feed 1.0 and 1.1 (<https://jsonfeed.org/>) → [`FeedData`], read
//! leniently: a field of the wrong type is skipped (or read for what it
//! holds: `tags` as one string, `author` as a name, a numeric `id`), never a
//! reason to drop the whole feed. Both `https://` and the older `http://`
//! version URLs are accepted.
//!
//! feed-rs reads JSON Feed with strict serde types and refuses the whole
//! document on one odd field, so gazette reads it itself from
//! `serde_json::Value`.

use serde_json::{Map, Value};

use super::{CategoryData, EntryData, FeedData, LinkData, ParseError, PersonData, TextData};

/// Reads a JSON Feed document; `bad_date` gets the first date that could not be read.
pub(super) fn parse(text: &str) -> Result<FeedData, ParseError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Invalid(format!("JSON: {e}")))?;
    let Value::Object(feed) = doc else {
        return Err(ParseError::Invalid("JSON, but not an object".into()));
    };
    let version = string(&feed, "version").unwrap_or_default();
    let is_json_feed = version.contains("jsonfeed.org/version/")
        || (version.is_empty() && feed.get("items").is_some_and(Value::is_array));
    if !is_json_feed {
        return Err(ParseError::Invalid(format!(
            "JSON, but not a JSON Feed (version {version:?})"
        )));
    }
    let mut out = FeedData {
        title: string(&feed, "title").map(|t| TextData {
            content: t,
            html: false,
        }),
        needs_extras: false,
        ..FeedData::default()
    };
    for key in ["home_page_url", "feed_url"] {
        if let Some(u) = string(&feed, key) {
            out.links.push(link(u, None));
        }
    }
    let feed_authors = authors(&feed);
    let items = match feed.get("items") {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    for item in items {
        let Value::Object(item) = item else { continue };
        let mut e = entry(item, &mut out.bad_date);
        if e.authors.is_empty() {
            e.authors = feed_authors.clone();
        }
        out.entries.push(e);
    }
    Ok(out)
}

fn entry(item: &Map<String, Value>, bad_date: &mut Option<String>) -> EntryData {
    let mut e = EntryData {
        id: match item.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        },
        title: string(item, "title").map(|t| TextData {
            content: t,
            html: false,
        }),
        ..EntryData::default()
    };
    for key in ["url", "external_url"] {
        if let Some(u) = string(item, key) {
            e.links.push(link(u, None));
        }
    }
    let html = string(item, "content_html").map(|c| TextData {
        content: c.trim().to_string(),
        html: true,
    });
    let text = string(item, "content_text").map(|c| TextData {
        content: c.trim().to_string(),
        html: false,
    });
    e.summary = string(item, "summary").map(|s| TextData {
        content: s,
        html: false,
    });
    match (html, text) {
        (Some(h), Some(t)) => {
            e.content = Some(h);
            if e.summary.is_none() {
                e.summary = Some(t);
            }
        }
        (h, t) => e.content = h.or(t),
    }
    let mut date = |key: &str| {
        let raw = string(item, key)?;
        let d = super::parse_date(&raw);
        if d.is_none() && bad_date.is_none() && !raw.trim().is_empty() {
            *bad_date = Some(raw.trim().to_string());
        }
        d
    };
    e.published = date("date_published");
    e.updated = date("date_modified");
    e.authors = authors(item);
    e.categories = match item.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(|t| match t {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        // `"tags": "a, b"`: one string where a list belongs.
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .map(|term| CategoryData { term, label: None })
    .collect();
    if let Some(Value::Array(attachments)) = item.get("attachments") {
        for a in attachments {
            let Value::Object(a) = a else { continue };
            let Some(url) = string(a, "url") else {
                continue;
            };
            let mut l = link(url, Some("enclosure"));
            l.media_type = string(a, "mime_type");
            l.length = a.get("size_in_bytes").and_then(Value::as_u64);
            e.links.push(l);
        }
    }
    e
}

/// `author` (1.0) and `authors` (1.1), as objects, or names given as strings.
fn authors(obj: &Map<String, Value>) -> Vec<PersonData> {
    let mut out: Vec<PersonData> = Vec::new();
    let mut add = |v: &Value| {
        let name = match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => string(o, "name"),
            _ => None,
        };
        if let Some(name) = name.filter(|n| !n.trim().is_empty())
            && !out.iter().any(|p| p.name.as_deref() == Some(name.as_str()))
        {
            out.push(PersonData {
                name: Some(name),
                email: None,
            });
        }
    };
    if let Some(a) = obj.get("author") {
        add(a);
    }
    match obj.get("authors") {
        Some(Value::Array(list)) => list.iter().for_each(&mut add),
        Some(other) => add(other),
        None => {}
    }
    out
}

/// A string field; other types (numbers excepted) count as absent.
fn string(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn link(href: String, rel: Option<&str>) -> LinkData {
    LinkData {
        href: href.trim().to_string(),
        rel: rel.map(str::to_string),
        media_type: None,
        length: None,
    }
}
