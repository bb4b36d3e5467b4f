//! The archive of sent digests: every sent period's issue is kept in the
//! store (rendered once, when the period is recorded: the whole digest,
//! without per-reader parts or links), and shown as `/digests/` (each
//! digest and its past issues, newest first), `/digests/NAME/PERIOD.html`
//! (one issue; also without `.html`) and `/digests/NAME.atom` (a feed of
//! the issues). `publish` writes the same files. Reads only.

use askama::Template;
use atom_syndication::{Content, Feed, Generator, Link, Person, Text};
use chrono::{DateTime, Timelike, Utc};

use crate::config::{Config, DigestConfig};
use crate::model::Issue;
use crate::publish::{Document, PublishError};
use crate::store::{Store, StoreError};

/// Issues in each digest's Atom feed.
pub const FEED_ISSUES: i64 = 20;

/// Issues listed per digest on `/digests/` (and written by `publish`).
pub const LISTED_ISSUES: i64 = 500;

/// The address of the issue closed at `cutoff` under `/digests/NAME/`: the
/// cutoff in the digest's time zone, `2026-11-23-0800` (seconds appended
/// when the schedule has them).
pub fn slug(cfg: &DigestConfig, cutoff: DateTime<Utc>) -> String {
    let local = cutoff.with_timezone(&cfg.timezone());
    if local.second() == 0 {
        local.format("%Y-%m-%d-%H%M").to_string()
    } else {
        local.format("%Y-%m-%d-%H%M%S").to_string()
    }
}

/// `{site_url}digests/NAME/SLUG.html`.
pub fn issue_url(config: &Config, name: &str, slug: &str) -> String {
    format!("{}{}", config.site_url, issue_path(name, slug))
}

/// `digests/NAME/SLUG.html`.
pub fn issue_path(name: &str, slug: &str) -> String {
    format!("digests/{name}/{slug}.html")
}

/// `{site_url}digests/NAME.atom`.
pub fn feed_url(config: &Config, name: &str) -> String {
    format!("{}digests/{name}.atom", config.site_url)
}

/// An archive address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/digests/` (or `/digests/index.html`).
    Index,
    /// `/digests/NAME.atom`.
    Feed(String),
    /// `/digests/NAME/SLUG` or `/digests/NAME/SLUG.html`.
    Issue(String, String),
}

/// The archive address `path` names, if any. Only safe names (letters,
/// digits, `-`, `_`) get through.
pub fn route(path: &str) -> Option<Route> {
    let rest = path.trim_start_matches('/').strip_prefix("digests")?;
    let rest = rest.strip_prefix('/').or((rest.is_empty()).then_some(""))?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    match rest {
        "" | "index.html" => Some(Route::Index),
        _ => {
            if let Some(name) = rest.strip_suffix(".atom") {
                return safe(name).then(|| Route::Feed(name.to_string()));
            }
            let (name, slug) = rest.split_once('/')?;
            let slug = slug.strip_suffix(".html").unwrap_or(slug);
            (safe(name) && safe(slug)).then(|| Route::Issue(name.to_string(), slug.to_string()))
        }
    }
}

#[derive(Template)]
#[template(path = "digests.html")]
struct IndexPage<'a> {
    site_title: &'a str,
    digests: Vec<DigestView>,
}

struct DigestView {
    name: String,
    title: String,
    schedule: String,
    feed: String,
    issues: Vec<IssueView>,
}

struct IssueView {
    subject: String,
    href: String,
    date: String,
}

/// `/digests/`: every configured digest with its past issues, newest first.
/// Links are relative, so the page works from a folder on disk too.
pub async fn index(config: &Config, store: &Store) -> Result<String, PublishError> {
    let mut digests = Vec::new();
    for cfg in &config.digests {
        let issues = store.issues(Some(&cfg.name), LISTED_ISSUES, false).await?;
        let tz = cfg.timezone();
        digests.push(DigestView {
            name: cfg.name.clone(),
            title: cfg.title.clone(),
            schedule: format!("{} ({})", cfg.schedule.expression(), tz),
            feed: format!("{}.atom", cfg.name),
            issues: issues
                .into_iter()
                .map(|i| IssueView {
                    href: format!("{}/{}.html", i.digest, i.slug),
                    date: i
                        .cutoff
                        .with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M")
                        .to_string(),
                    subject: i.subject,
                })
                .collect(),
        });
    }
    IndexPage {
        site_title: &config.title,
        digests,
    }
    .render()
    .map_err(|e| PublishError::Render {
        path: "digests/index.html".into(),
        message: e.to_string(),
    })
}

/// One archived issue's page, when the digest is configured and the issue kept.
pub async fn issue_page(
    config: &Config,
    store: &Store,
    name: &str,
    slug: &str,
) -> Result<Option<String>, StoreError> {
    if config.digest_named(name).is_none() {
        return Ok(None);
    }
    Ok(store.issue(name, slug).await?.and_then(|i| i.html))
}

/// `/digests/NAME.atom`: the newest issues of a configured digest, each
/// with its page as content; `None` for an unknown digest.
pub async fn feed(
    config: &Config,
    store: &Store,
    name: &str,
) -> Result<Option<Vec<u8>>, PublishError> {
    let Some(cfg) = config.digest_named(name) else {
        return Ok(None);
    };
    let issues = store.issues(Some(name), FEED_ISSUES, true).await?;
    let key = store.store_key().await?;
    Ok(Some(render_feed(config, cfg, &issues, &key)?))
}

fn render_feed(
    config: &Config,
    cfg: &DigestConfig,
    issues: &[Issue],
    store_key: &str,
) -> Result<Vec<u8>, PublishError> {
    let self_url = feed_url(config, &cfg.name);
    let host = config.site_url.host_str().unwrap_or("localhost");
    let updated = issues
        .first()
        .map(|i| i.cutoff)
        .unwrap_or(DateTime::UNIX_EPOCH);
    let author = Person {
        name: cfg.title.clone(),
        ..Default::default()
    };
    let entries = issues
        .iter()
        .map(|i| {
            let url = issue_url(config, &i.digest, &i.slug);
            atom_syndication::Entry {
                title: Text::plain(i.subject.clone()),
                // Never changes: the store's key and the digest's name and period.
                id: format!(
                    "tag:{host},{}:{store_key}:digests/{}/{}",
                    i.cutoff.format("%Y-%m-%d"),
                    i.digest,
                    i.slug
                ),
                updated: i.cutoff.fixed_offset(),
                published: Some(i.cutoff.fixed_offset()),
                links: vec![Link {
                    href: url,
                    rel: "alternate".into(),
                    mime_type: Some("text/html".into()),
                    ..Default::default()
                }],
                content: i.html.as_deref().map(|h| Content {
                    value: Some(body_of(h).to_string()),
                    content_type: Some("html".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let feed = Feed {
        title: Text::plain(cfg.title.clone()),
        id: self_url.clone(),
        updated: updated.fixed_offset(),
        authors: vec![author],
        generator: Some(Generator {
            value: "gazette".into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        links: vec![
            Link {
                href: self_url,
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Default::default()
            },
            Link {
                href: format!("{}digests/#{}", config.site_url, cfg.name),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Default::default()
            },
        ],
        entries,
        ..Default::default()
    };
    feed.write_to(Vec::new()).map_err(|e| PublishError::Render {
        path: format!("digests/{}.atom", cfg.name),
        message: e.to_string(),
    })
}

/// What is between `<body…>` and `</body>` (the whole text when there is no body).
fn body_of(html: &str) -> &str {
    let Some(open) = html.find("<body") else {
        return html;
    };
    let Some(start) = html[open..].find('>').map(|i| open + i + 1) else {
        return html;
    };
    let end = html
        .rfind("</body>")
        .filter(|e| *e >= start)
        .unwrap_or(html.len());
    &html[start..end]
}

/// Every archive document `publish` writes: `digests/index.html`, each
/// digest's feed and each listed issue's page.
pub async fn documents(config: &Config, store: &Store) -> Result<Vec<Document>, PublishError> {
    if config.digests.is_empty() {
        return Ok(Vec::new());
    }
    let mut docs = vec![Document {
        path: "digests/index.html".into(),
        content_type: "text/html; charset=utf-8",
        body: index(config, store).await?.into_bytes(),
    }];
    let key = store.store_key().await?;
    for cfg in &config.digests {
        let issues = store.issues(Some(&cfg.name), LISTED_ISSUES, true).await?;
        let newest: Vec<Issue> = issues.iter().take(FEED_ISSUES as usize).cloned().collect();
        docs.push(Document {
            path: format!("digests/{}.atom", cfg.name),
            content_type: "application/atom+xml; charset=utf-8",
            body: render_feed(config, cfg, &newest, &key)?,
        });
        for i in issues {
            docs.push(Document {
                path: issue_path(&i.digest, &i.slug),
                content_type: "text/html; charset=utf-8",
                body: i.html.unwrap_or_default().into_bytes(),
            });
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_take_only_safe_names() {
        assert_eq!(route("/digests/"), Some(Route::Index));
        assert_eq!(route("/digests"), Some(Route::Index));
        assert_eq!(route("/digests/index.html"), Some(Route::Index));
        assert_eq!(
            route("/digests/china.atom"),
            Some(Route::Feed("china".into()))
        );
        assert_eq!(
            route("/digests/china/2026-11-23-0800"),
            Some(Route::Issue("china".into(), "2026-11-23-0800".into()))
        );
        assert_eq!(
            route("/digests/china/2026-11-23-0800.html"),
            Some(Route::Issue("china".into(), "2026-11-23-0800".into()))
        );
        for bad in [
            "/digests/../etc.atom",
            "/digests/a/../../x",
            "/digests/a/b/c",
            "/digestsx",
            "/digests/.atom",
            "/feed.atom",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
        assert_eq!(body_of("<html><body class=\"x\">hi</body></html>"), "hi");
        assert_eq!(body_of("plain"), "plain");
    }
}
