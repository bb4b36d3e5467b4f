//! Real-world feeds, one fixture per failure class: every document is served
//! on loopback, polled into a real SQLite file, and its stories' title,
//! link, date and id checked exactly.

use chrono::{DateTime, Utc};
use gazette::model::Story;
use gazette::pipeline::FeedStatus;
use gazette::publish::Kind;

use crate::server::{FeedServer, Route};
use crate::{Workspace, by_title, report};

fn realworld(name: &str) -> Vec<u8> {
    crate::fixture(&format!("realworld/{name}"))
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// Asserts a story's title (by which it is found), link, date and id.
fn check(items: &[Story], title: &str, link: &str, published: &str, guid: Option<&str>) -> Story {
    let s = by_title(items, title);
    assert_eq!(s.link.as_deref(), Some(link), "link of {title}");
    assert_eq!(s.published, at(published), "date of {title}");
    assert_eq!(s.guid.as_deref(), guid, "id of {title}");
    s.clone()
}

fn is_recent(s: &Story) -> bool {
    (Utc::now() - s.published).num_minutes().abs() < 10
}

/// Serves `files` (name, content type, extra headers), polls them, returns the stories.
async fn poll_all(
    files: &[(&str, &str)],
) -> (
    Workspace,
    gazette::config::Config,
    Vec<gazette::pipeline::FeedReport>,
    Vec<Story>,
    FeedServer,
) {
    let server = FeedServer::start().await;
    for (name, ct) in files {
        let mut route = Route::feed(realworld(name), ct);
        if *name == "located.xml" {
            route
                .headers
                .push(("content-location", "/mirror/feed.xml".to_string()));
        }
        server.set(name, route);
    }
    let ws = Workspace::new();
    let feeds: Vec<(&str, String)> = files.iter().map(|(n, _)| (*n, server.url(n))).collect();
    let config = ws.write_config(&feeds, "");
    let reports = ws.poll(&config).await;
    let items = ws.items(&config).await;
    (ws, config, reports, items, server)
}

#[tokio::test]
async fn documents_feed_rs_refused_are_read() {
    const RSS: &str = "application/rss+xml";
    let (_ws, _config, reports, items, _server) = poll_all(&[
        ("rss-noversion.xml", RSS),
        ("rss-094.xml", RSS),
        ("rss-userland.xml", RSS),
        ("atom-types.xml", "application/atom+xml"),
        ("atom03-attrs.xml", "application/atom+xml"),
        ("jsonfeed-v1.json", "application/json"),
        ("rss10-nolink.rdf", "application/rdf+xml"),
        ("rss090.rdf", "application/rdf+xml"),
        ("truncated.xml", RSS),
    ])
    .await;
    for r in &reports {
        assert_eq!(r.status, FeedStatus::Ok, "{r:?}");
    }
    // RSS without a version, 0.94, and RSS 2.0 in UserLand's namespace.
    check(
        &items,
        "Rights council opens its session",
        "https://nov.example/a",
        "2026-11-02T10:00:00Z",
        Some("nov-a"),
    );
    check(
        &items,
        "Old version, new story",
        "https://r094.example/a",
        "2026-11-02T10:00:00Z",
        Some("r094-a"),
    );
    check(
        &items,
        "Story in the UserLand namespace",
        "https://ul.example/a",
        "2026-11-02T12:00:00Z",
        Some("ul-a"),
    );
    // Atom text constructs typed as MIME types, empty, or base64.
    let plain = check(
        &items,
        "Plain typed title",
        "https://odd.example/1",
        "2026-11-02T10:00:00Z",
        Some("urn:odd:1"),
    );
    assert!(
        plain
            .summary_html
            .as_deref()
            .is_some_and(|h| h.contains("<b>html</b>")),
        "{plain:?}"
    );
    let xhtml = check(
        &items,
        "Empty typed title",
        "https://odd.example/2",
        "2026-11-02T11:00:00Z",
        Some("urn:odd:2"),
    );
    assert_eq!(xhtml.excerpt, "XHTML body");
    let b64 = check(
        &items,
        "Bold typed title",
        "https://odd.example/3",
        "2026-11-02T12:00:00Z",
        Some("urn:odd:3"),
    );
    assert_eq!(b64.excerpt, "Hello from base64");
    // Atom 0.3 whose tagline, copyright and info carry attributes.
    let old = check(
        &items,
        "Old format story",
        "https://a03.example/1",
        "2026-11-02T08:00:00Z",
        Some("tag:a03.example,2026:1"),
    );
    assert_eq!(old.excerpt, "Escaped body");
    // JSON Feed 1.0 under its http:// version, fields of the wrong type.
    let j = check(
        &items,
        "Numeric id and tags as a string",
        "https://j1.example/42",
        "2026-11-02T09:00:00Z",
        Some("42"),
    );
    assert_eq!(j.categories, vec!["UN", "China"]);
    assert_eq!(j.authors, vec!["Ann"]);
    let odd = check(
        &items,
        "Fields of the wrong type",
        "https://j1.example/b",
        "2026-11-02T11:00:00Z",
        Some("b"),
    );
    assert_eq!(odd.categories, vec!["1", "x"]);
    assert_eq!(odd.authors, vec!["Bo"]);
    // RSS 1.0: rdf:about is the id, and the link of an item without one;
    // dc:title stands in for a missing title.
    check(
        &items,
        "Only an rdf:about",
        "https://r1.example/about-only",
        "2026-11-02T10:00:00Z",
        Some("https://r1.example/about-only"),
    );
    check(
        &items,
        "Titled by Dublin Core",
        "https://r1.example/dc-title-link",
        "2026-11-02T11:00:00Z",
        Some("https://r1.example/dc-title"),
    );
    // RSS 0.90 (Netscape's namespace): read; undated, so first-seen.
    let ninety = by_title(&items, "Netscape era story");
    assert_eq!(ninety.link.as_deref(), Some("https://r090.example/1"));
    assert!(is_recent(ninety));
    // A truncated document keeps the stories before the break.
    check(
        &items,
        "First whole story",
        "https://cut.example/1",
        "2026-11-02T08:00:00Z",
        Some("cut-1"),
    );
    check(
        &items,
        "Second whole story",
        "https://cut.example/2",
        "2026-11-02T09:00:00Z",
        Some("cut-2"),
    );
    assert!(!items.iter().any(|s| s.title.starts_with("Third story")));
    assert_eq!(report(&reports, "truncated.xml").new, 2);
}

#[tokio::test]
async fn dates_in_real_shapes_and_an_unreadable_one_warned_once() {
    let (_ws, _config, reports, items, _server) =
        poll_all(&[("dates.xml", "application/rss+xml")]).await;
    let r = report(&reports, "dates.xml");
    assert_eq!(r.status, FeedStatus::Ok);
    assert_eq!(r.new, 9);
    let warning = r.warning.as_deref().unwrap_or_default();
    assert!(warning.contains("\"sometime soon\""), "{r:?}");
    let date = |title: &str| by_title(&items, title).published;
    for title in [
        "ISO without seconds or zone",
        "Slashes and a short hour",
        "Malformed offset",
        "Two-digit year",
        "DC Terms issued and modified",
        "pubDate and dc:date",
    ] {
        assert_eq!(date(title), at("2018-01-06T08:00:00Z"), "{title}");
    }
    assert_eq!(
        date("Month first, 12-hour clock"),
        at("2018-01-06T20:00:00Z")
    );
    assert_eq!(date("DC Terms created only"), at("2018-01-05T08:00:00Z"));
    // dc:date is the update date (as feedparser reads it), pubDate the publication.
    assert_eq!(
        by_title(&items, "pubDate and dc:date").updated,
        Some(at("2018-01-09T00:00:00Z"))
    );
    assert_eq!(
        by_title(&items, "DC Terms issued and modified").updated,
        Some(at("2018-01-07T08:00:00Z"))
    );
    // The unreadable date keeps the first-seen time.
    assert!(is_recent(by_title(&items, "Unreadable date")));
}

#[tokio::test]
async fn charsets_by_python_labels_code_pages_utf32_and_sniffing() {
    let (_ws, _config, reports, items, _server) = poll_all(&[
        ("cp1251.xml", "application/rss+xml"),
        ("cp437.xml", "application/rss+xml"),
        ("maccyr.xml", "application/rss+xml"),
        ("unknown-label.xml", "application/rss+xml"),
        ("utf32be.xml", "application/rss+xml"),
    ])
    .await;
    for r in &reports {
        assert_eq!(r.status, FeedStatus::Ok, "{r:?}");
    }
    for (title, link, guid) in [
        (
            "Права человека в Москве",
            "https://cs.example/1251",
            "cs-1251",
        ),
        ("Café ½ price", "https://cs.example/437", "cs-437"),
        (
            "Новости правозащитников",
            "https://cs.example/mac",
            "cs-mac",
        ),
        (
            "Правозащитники в Москве требуют освобождения задержанных активистов",
            "https://cs.example/unk",
            "cs-unk",
        ),
        ("Zürich in UTF-32", "https://cs.example/32", "cs-32"),
    ] {
        let s = by_title(&items, title);
        assert_eq!(s.link.as_deref(), Some(link));
        assert_eq!(s.guid.as_deref(), Some(guid));
    }
}

#[tokio::test]
async fn text_keeps_literal_brackets_adds_no_spaces_and_caps_titles() {
    let (ws, config, _reports, items, _server) = poll_all(&[
        ("text.xml", "application/atom+xml"),
        ("text-rss.xml", "application/rss+xml"),
    ])
    .await;
    // A plain-text title keeps its brackets, in Atom and in RSS.
    let atom = by_title(&items, "Die Rückkehr von <i> und <b>");
    assert_eq!(atom.guid.as_deref(), Some("urn:text:1"));
    assert_eq!(
        atom.excerpt,
        "Stories that inspire you. Fines of ₹4,000 were paid."
    );
    let rss = items
        .iter()
        .find(|s| s.guid.as_deref() == Some("tr-1"))
        .unwrap();
    assert_eq!(rss.title, "Die Rückkehr von <i> und <b>");
    // HTML titles lose their tags, and no space where they were.
    let fines = by_title(&items, "Fines of ₹4,000 for inspiring you");
    assert_eq!(fines.excerpt, "They inspire you.");
    // A 60,000-character title is cut on a word, with an ellipsis.
    let long = items
        .iter()
        .find(|s| s.guid.as_deref() == Some("urn:text:2"))
        .unwrap();
    assert!(long.title.chars().count() <= 1001, "{}", long.title.len());
    assert!(
        long.title.ends_with("word…"),
        "{}",
        &long.title[long.title.len() - 20..]
    );
    // The published page and feed escape the literal brackets.
    let store = crate::open_store(&config).await.unwrap();
    let page = gazette::publish::render(&config, &store, &Kind::Html(None))
        .await
        .unwrap();
    let page = String::from_utf8(page.body).unwrap();
    assert!(
        page.contains("Die Rückkehr von &lt;i&gt; und &lt;b&gt;")
            || page.contains("Die Rückkehr von &#60;i&#62; und &#60;b&#62;"),
        "{page}"
    );
    assert!(
        page.contains("Stories that inspire you. Fines of ₹4,000"),
        "{page}"
    );
    store.close().await;
    drop(ws);
}

#[tokio::test]
async fn links_resolve_against_xml_base_and_content_location_and_lose_trackers() {
    let (ws, mut config, _reports, items, server) = poll_all(&[
        ("xmlbase.xml", "application/atom+xml"),
        ("located.xml", "application/rss+xml"),
    ])
    .await;
    // xml:base of the entry, then of the feed.
    let entry = check(
        &items,
        "Entry base",
        "https://base.example/news/2026/story.html?utm_source=rss&id=1&fbclid=x",
        "2026-11-02T10:00:00Z",
        Some("urn:base:1"),
    );
    let content = entry.content_html.as_deref().unwrap();
    assert!(
        content.contains("href=\"https://base.example/news/2026/report.pdf\""),
        "{content}"
    );
    assert!(
        content.contains("src=\"https://base.example/news/2026/img/a.png\""),
        "{content}"
    );
    let feed = check(
        &items,
        "Feed base",
        "https://base.example/feed/two.html",
        "2026-11-02T09:00:00Z",
        Some("urn:base:2"),
    );
    assert!(
        feed.content_html
            .as_deref()
            .unwrap()
            .contains("href=\"https://base.example/feed/doc.pdf\""),
        "{feed:?}"
    );
    // Content-Location before the document URL.
    let located = check(
        &items,
        "Relative by Content-Location",
        &server.url("mirror/stories/1.html"),
        "2026-11-02T10:00:00Z",
        Some("loc-1"),
    );
    assert!(
        located
            .summary_html
            .as_deref()
            .unwrap()
            .contains(&format!("href=\"{}\"", server.url("mirror/files/x.pdf"))),
        "{located:?}"
    );
    // Published links carry no trackers; a local feed is no file:/// in sources.opml.
    let local = ws.dir.path().join("local.xml");
    std::fs::write(&local, realworld("rss-noversion.xml")).unwrap();
    config.feeds.push(gazette::config::FeedConfig {
        name: "local".into(),
        source: gazette::config::FeedSource::File(local.clone()),
        ..config.feeds[0].clone()
    });
    let store = crate::open_store(&config).await.unwrap();
    for kind in [
        Kind::Atom(None),
        Kind::Rss,
        Kind::JsonFeed,
        Kind::Html(None),
    ] {
        let doc = gazette::publish::render(&config, &store, &kind)
            .await
            .unwrap();
        let body = String::from_utf8(doc.body).unwrap();
        assert!(!body.contains("utm_source"), "{kind:?}: {body}");
        assert!(!body.contains("fbclid"), "{kind:?}: {body}");
        assert!(body.contains("story.html?id=1"), "{kind:?}: {body}");
    }
    let opml = gazette::publish::render(&config, &store, &Kind::Opml)
        .await
        .unwrap();
    let opml = String::from_utf8(opml.body).unwrap();
    assert!(!opml.contains("file:"), "{opml}");
    assert!(opml.contains(&server.url("xmlbase.xml")), "{opml}");
    store.close().await;
}

#[test]
fn a_real_reader_export_imports_with_folders_duplicates_and_twins() {
    let ws = Workspace::new();
    ws.write_config(&[("ISHR", "https://ishr.ch/feed/".into())], "");
    let opml = ws.dir.path().join("export.opml");
    std::fs::write(&opml, realworld("export.opml")).unwrap();
    let out = crate::gazette(&ws, &["opml", "import", opml.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("4 feeds added, 2 already configured, 1 renamed, 1 refused"),
        "{said}"
    );
    // Why each entry was skipped or renamed is printed.
    assert!(
        said.contains("https://www.natashatherobot.com/feed: already configured"),
        "{said}"
    );
    assert!(
        said.contains("http://www.ishr.ch/feed: already configured"),
        "{said}"
    );
    assert!(
        said.contains("\"news\" added as \"news (other.example)\""),
        "{said}"
    );
    assert!(
        said.contains("javascript:alert(1): not an http(s) address"),
        "{said}"
    );
    let config = gazette::config::Config::load(&ws.config_path()).unwrap();
    let feeds: Vec<(String, String, Vec<String>)> = config
        .feeds
        .iter()
        .map(|f| (f.name.clone(), f.source.to_string(), f.tags.clone()))
        .collect();
    let feed = |n: &str, u: &str, t: &[&str]| {
        (
            n.to_string(),
            u.to_string(),
            t.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        feeds,
        vec![
            feed("ISHR", "https://ishr.ch/feed/", &[]),
            feed(
                "Natasha the Robot",
                "http://natashatherobot.com/feed/",
                &["ios-dev"]
            ),
            feed(
                "News",
                "https://news.un.example/feed/rss",
                &["un", "geneva", "droits-humains-ong"]
            ),
            feed(
                "news (other.example)",
                "https://other.example/news.xml",
                &["droits-humains-ong", "nested"]
            ),
            feed("No folder", "https://nofolder.example/feed", &[]),
        ]
    );
    // Importing again adds nothing and fails nothing.
    let out = crate::gazette(&ws, &["opml", "import", opml.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 feeds added, 6 already configured"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
