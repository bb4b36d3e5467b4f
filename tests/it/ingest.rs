//! Fetch → parse → normalise → store against a loopback feed server.

use std::time::Duration;

use gazette::pipeline::FeedStatus;

use crate::server::{FeedServer, Route};
use crate::{Workspace, by_title, fixture, report};

const RSS: &str = "application/rss+xml";
const ATOM: &str = "application/atom+xml";

#[tokio::test]
async fn every_format_is_stored_with_plain_titles_absolute_links_and_utc_dates() {
    let server = FeedServer::start().await;
    server.set("rss2.xml", Route::feed(fixture("rss2.xml"), RSS));
    server.set("atom10.xml", Route::feed(fixture("atom10.xml"), ATOM));
    server.set("atom03.xml", Route::feed(fixture("atom03.xml"), ATOM));
    server.set("rss091.xml", Route::feed(fixture("rss091.xml"), RSS));
    server.set(
        "rss10.xml",
        Route::feed(fixture("rss10.xml"), "application/rdf+xml"),
    );
    server.set(
        "feed.json",
        Route::feed(fixture("feed.json"), "application/feed+json"),
    );
    let ws = Workspace::new();
    let names = ["rss2", "atom10", "atom03", "rss091", "rss10", "json"];
    let paths = [
        "rss2.xml",
        "atom10.xml",
        "atom03.xml",
        "rss091.xml",
        "rss10.xml",
        "feed.json",
    ];
    let feeds: Vec<_> = names
        .iter()
        .zip(paths)
        .map(|(n, p)| (*n, server.url(p)))
        .collect();
    let config = ws.write_config(&feeds, "");

    let reports = ws.poll(&config).await;
    for r in &reports {
        assert_eq!(r.status, FeedStatus::Ok, "{r:?}");
    }
    assert_eq!(report(&reports, "rss2").new, 3);
    assert_eq!(report(&reports, "atom10").new, 2);
    let items = ws.items(&config).await;
    assert_eq!(items.len(), 3 + 2 + 1 + 1 + 1 + 2);

    // RSS 2.0: CDATA title with markup, relative link against the feed URL, offset date to UTC.
    let chow = by_title(&items, "Hong Kong: Chow Hang-tung sentenced again");
    assert_eq!(
        chow.link.as_deref(),
        Some(server.url("news/chow-hang-tung").as_str())
    );
    assert_eq!(chow.published.to_rfc3339(), "2022-04-07T13:30:00+00:00");
    assert_eq!(chow.authors, vec!["Sarah M Brooks"]);
    assert_eq!(chow.categories, vec!["China", "Hong Kong"]);
    assert_eq!(
        chow.enclosures[0].url,
        "https://ishr.example/audio/chow.mp3"
    );
    assert_eq!(chow.enclosures[0].length, Some(12345));
    assert_eq!(chow.sources.len(), 1);
    assert_eq!(chow.sources[0].feed, "rss2");
    // Entities, double-escaped ampersand and numeric references decode to plain text.
    let russia = by_title(
        &items,
        "Russia & the Human Rights Council — membership suspended",
    );
    assert_eq!(russia.published.to_rfc3339(), "2022-04-07T18:00:00+00:00");
    // No date: the first-seen time stands in.
    let hope = by_title(&items, "Human rights inspire hope");
    assert!((chrono::Utc::now() - hope.published).num_minutes() < 5);
    assert!(
        hope.excerpt
            .starts_with("Human rights inspire hope. In January 2022")
    );

    // Atom 1.0: xml:base on the feed and on an entry; html title; offsets to UTC.
    let sogie = by_title(
        &items,
        "Working together to combat violence based on SOGIE & discrimination",
    );
    assert_eq!(
        sogie.link.as_deref(),
        Some("http://ohchr.example/en/press/sogie-2022")
    );
    assert_eq!(sogie.published.to_rfc3339(), "2022-04-07T15:00:00+00:00");
    assert_eq!(
        sogie.updated.unwrap().to_rfc3339(),
        "2022-04-07T17:00:00+00:00"
    );
    assert_eq!(
        sogie.guid.as_deref(),
        Some("tag:ohchr.example,2022:sogie-1")
    );
    let defenders = by_title(&items, "States have the obligation to respect defenders");
    assert_eq!(
        defenders.link.as_deref(),
        Some("http://other.example/base/defenders")
    );
    assert_eq!(
        defenders.published.to_rfc3339(),
        "2022-04-06T06:00:00+00:00"
    );

    // Atom 0.3, RSS 0.91, RSS 1.0 and JSON Feed.
    let yu = by_title(&items, "Lawyer Yu Wensheng sentenced to four years");
    assert_eq!(yu.link.as_deref(), Some("http://old.example/yu-wensheng"));
    let ho = by_title(&items, "Albert Ho: a life for democracy");
    assert_eq!(
        ho.link.as_deref(),
        Some("http://ninetyone.example/albert-ho")
    );
    let luo = by_title(
        &items,
        "Human rights defender's story: Sophie Luo from China",
    );
    assert_eq!(luo.published.to_rfc3339(), "2022-04-04T08:20:00+00:00");
    let fld = by_title(&items, "Defender released & reunited");
    assert_eq!(fld.published.to_rfc3339(), "2022-04-03T08:00:00+00:00");
    let untitled = items
        .iter()
        .find(|i| i.link.as_deref() == Some("https://fld.example/case/no-date"))
        .unwrap();
    assert!(
        untitled.title.starts_with("A story with no title"),
        "{}",
        untitled.title
    );
}

#[tokio::test]
async fn hostile_html_is_sanitised_before_it_is_stored() {
    let server = FeedServer::start().await;
    server.set("rss2.xml", Route::feed(fixture("rss2.xml"), RSS));
    server.set(
        "feed.json",
        Route::feed(fixture("feed.json"), "application/feed+json"),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("rss2", server.url("rss2.xml")),
            ("json", server.url("feed.json")),
        ],
        "",
    );
    ws.poll(&config).await;
    let store = crate::open_store(&config).await.unwrap();
    let items = store.list_stories(&Default::default()).await.unwrap();
    let mut checked = 0;
    for item in &items {
        for html in [&item.summary_html, &item.content_html]
            .into_iter()
            .flatten()
        {
            let lower = html.to_lowercase();
            assert!(!lower.contains("<script"), "{html}");
            assert!(!lower.contains("javascript:"), "{html}");
            assert!(!lower.contains("<iframe"), "{html}");
            assert!(!lower.contains(" on"), "an on* attribute survived: {html}");
            assert!(!lower.contains("style="), "{html}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} html fields checked");
    let chow = by_title(&items, "Hong Kong: Chow Hang-tung sentenced again");
    let summary = chow.summary_html.as_deref().unwrap();
    // Relative image URLs are made absolute against the feed URL.
    assert!(
        summary.contains(&format!("src=\"{}\"", server.url("img/chow.jpg"))),
        "{summary}"
    );
}

#[tokio::test]
async fn encodings_from_declaration_header_and_bom_are_decoded() {
    let server = FeedServer::start().await;
    // Four different stories (so that dedup keeps them apart), each in another encoding.
    let doc = |decl: &str, title: &str, text: &str| {
        format!(
            "{decl}<rss version=\"2.0\"><channel><title>t</title><item><title>{title}</title><guid>{title}</guid><description>{text}</description></item></channel></rss>"
        )
    };
    let cp1252 = |s: &str| encoding_rs::WINDOWS_1252.encode(s).0.to_vec();
    let t1 = "Défenseurs à Genève – “José” libérés";
    server.set(
        "cp1252.xml",
        Route::feed(
            cp1252(&doc(
                "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
                t1,
                "Le comité de l’ONU salue la libération.",
            )),
            "text/xml",
        ),
    );
    let t2 = "Procès à Zürich: l’avocate Chloé condamnée – “honte”";
    server.set(
        "alias.xml",
        Route::feed(
            cp1252(&doc(
                "<?xml version='1.0' encoding='cp1252'?>",
                t2,
                "Une peine de trois ans pour une défenseure.",
            )),
            "application/xml",
        ),
    );
    // No declaration: only the HTTP header says ISO-8859-1.
    let t3 = "Rapport du comité: Noël à Genève, Aïcha à Séoul";
    server.set(
        "header.xml",
        Route::feed(
            cp1252(&doc("", t3, "Le rapport annuel évoque des représailles.")),
            "application/rss+xml; charset=ISO-8859-1",
        ),
    );
    let t4 = "Zoë et 李 à Genève – “UPR” de la Chine";
    let mut utf16 = vec![0xFF, 0xFE];
    for u in doc(
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
        t4,
        "L’Examen périodique universel.",
    )
    .encode_utf16()
    {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    server.set("utf16.xml", Route::feed(utf16, "application/xml"));
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("cp1252", server.url("cp1252.xml")),
            ("alias", server.url("alias.xml")),
            ("header", server.url("header.xml")),
            ("utf16", server.url("utf16.xml")),
        ],
        "",
    );
    let reports = ws.poll(&config).await;
    for r in &reports {
        assert_eq!(r.status, FeedStatus::Ok, "{r:?}");
    }
    let items = ws.items(&config).await;
    for (title, feed) in [(t1, "cp1252"), (t2, "alias"), (t3, "header"), (t4, "utf16")] {
        assert_eq!(by_title(&items, title).sources[0].feed, feed);
    }
    assert!(by_title(&items, t2).excerpt.contains("défenseure"));
}

#[tokio::test]
async fn second_poll_sends_validators_gets_304_and_stores_nothing() {
    let server = FeedServer::start().await;
    let lm = "Thu, 07 Apr 2022 18:00:00 GMT";
    server.set(
        "etag.xml",
        Route::feed(fixture("rss2.xml"), RSS).with_validators("\"v1\"", lm),
    );
    let mut gz = Route::feed(fixture("atom10.xml"), ATOM).with_validators("W/\"a1\"", lm);
    gz.gzip = true;
    server.set("gzip.atom", gz);
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("etag", server.url("etag.xml")),
            ("gzip", server.url("gzip.atom")),
        ],
        "",
    );

    let first = ws.poll(&config).await;
    assert_eq!(report(&first, "etag").new, 3);
    assert_eq!(report(&first, "gzip").new, 2, "gzip body decoded");
    let first_req = &server.requests("etag.xml")[0];
    assert!(first_req.headers.get("if-none-match").is_none());
    let ua = first_req
        .headers
        .get("user-agent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        ua.starts_with("gazette/") && ua.contains("https://news.example.org/"),
        "{ua}"
    );

    let second = ws.poll(&config).await;
    for name in ["etag", "gzip"] {
        let r = report(&second, name);
        assert_eq!(r.status, FeedStatus::NotModified, "{r:?}");
        assert_eq!((r.new, r.updated), (0, 0));
    }
    let req = &server.requests("etag.xml")[1];
    assert_eq!(req.headers.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(req.headers.get("if-modified-since").unwrap(), lm);
    assert_eq!(
        server.requests("gzip.atom")[1]
            .headers
            .get("if-none-match")
            .unwrap(),
        "W/\"a1\""
    );
    assert_eq!(ws.items(&config).await.len(), 5);
}

#[tokio::test]
async fn a_changed_item_updates_in_place_and_unchanged_items_are_skipped() {
    let server = FeedServer::start().await;
    let body = String::from_utf8(fixture("rss2.xml")).unwrap();
    server.set("f.xml", Route::feed(body.clone(), RSS));
    let ws = Workspace::new();
    let config = ws.write_config(&[("f", server.url("f.xml"))], "");
    assert_eq!(report(&ws.poll(&config).await, "f").new, 3);
    // No validators: the same document again is parsed but nothing is rewritten.
    let again = ws.poll(&config).await;
    let r = report(&again, "f");
    assert_eq!((r.new, r.updated, r.unchanged), (0, 0, 3), "{r:?}");
    // An edited title updates the same item.
    server.set(
        "f.xml",
        Route::feed(
            body.replace(
                "Human rights inspire hope",
                "Human rights still inspire hope",
            ),
            RSS,
        ),
    );
    let edited = ws.poll(&config).await;
    let r = report(&edited, "f");
    assert_eq!((r.new, r.updated, r.unchanged), (0, 1, 2), "{r:?}");
    let items = ws.items(&config).await;
    assert_eq!(items.len(), 3);
    by_title(&items, "Human rights still inspire hope");
}

#[tokio::test]
async fn failing_feeds_are_reported_by_name_and_the_others_are_stored() {
    let server = FeedServer::start().await;
    let good = [
        "rss2.xml",
        "atom10.xml",
        "rss10.xml",
        "rss091.xml",
        "feed.json",
    ];
    for g in good {
        server.set(g, Route::feed(fixture(g), RSS));
    }
    server.set("500", Route::status(500, vec![]));
    // 404: no route at all.
    let mut slow = Route::feed(fixture("rss2.xml"), RSS);
    slow.trickle = Some(Duration::from_millis(50));
    server.set("slow", slow);
    let mut huge = Route::feed(
        format!(
            "<rss version=\"2.0\"><channel><title>big</title>{}</channel></rss>",
            "<item><title>x</title></item>".repeat(20_000)
        ),
        RSS,
    );
    huge.chunked = true;
    server.set("huge", huge);
    server.set("malformed", Route::feed(fixture("malformed.xml"), RSS));
    let ws = Workspace::new();
    let mut feeds: Vec<(&str, String)> = good.iter().map(|g| (*g, server.url(g))).collect();
    feeds.extend([
        ("Server Error", server.url("500")),
        ("Missing", server.url("404")),
        ("Trickle", server.url("slow")),
        ("Huge", server.url("huge")),
        ("Malformed", server.url("malformed")),
    ]);
    let config = ws.write_config(
        &feeds,
        "[fetch]\ntimeout = \"2s\"\nmax_body_size = \"256KB\"\n",
    );

    let reports = ws.poll(&config).await;
    let expect = [
        ("Server Error", "http_5xx", "HTTP 500"),
        ("Missing", "http_4xx", "HTTP 404"),
        ("Trickle", "timeout", "timed out"),
        ("Huge", "too_large", "larger than 256000 bytes"),
        ("Malformed", "parse", "not a valid"),
    ];
    for (name, kind, msg) in expect {
        let r = report(&reports, name);
        assert_eq!(r.status, FeedStatus::Failed(kind.into()), "{r:?}");
        assert!(r.message.as_deref().unwrap().contains(msg), "{r:?}");
    }
    for g in good {
        assert_eq!(report(&reports, g).status, FeedStatus::Ok, "{g}");
    }
    let items = ws.items(&config).await;
    assert_eq!(
        items.len(),
        3 + 2 + 1 + 1 + 2,
        "the five good feeds are stored in full"
    );
}

/// A document that costs more CPU than `[fetch] parse_timeout` allows is
/// abandoned with an error naming the feed, and does not hold the poll: the
/// other feed of the same poll stores its items.
#[tokio::test]
async fn a_document_past_its_cpu_limit_is_abandoned_and_the_other_feeds_are_stored() {
    let server = FeedServer::start().await;
    server.set("rss2.xml", Route::feed(fixture("rss2.xml"), RSS));
    // About 6 MB: 2,000 items, each a CDATA description of 3,000 bare `&`.
    let item = |i: usize| {
        format!(
            "<item><title>t{i}</title><guid>g{i}</guid><description><![CDATA[{}]]></description></item>",
            "&".repeat(3000)
        )
    };
    let huge: String = (0..2000).map(item).collect();
    server.set(
        "huge",
        Route::feed(
            format!("<rss version=\"2.0\"><channel><title>big</title>{huge}</channel></rss>"),
            RSS,
        ),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("Fine", server.url("rss2.xml")),
            ("Costly", server.url("huge")),
        ],
        "[fetch]\nparse_timeout = \"300ms\"\n",
    );
    assert_eq!(config.fetch.parse_timeout, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let reports = ws.poll(&config).await;
    let took = started.elapsed();
    let costly = report(&reports, "Costly");
    assert_eq!(
        costly.status,
        FeedStatus::Failed("parse".into()),
        "{costly:?}"
    );
    assert_eq!(
        costly.message.as_deref(),
        Some(
            "abandoned after 300ms of parsing: the document costs too much to read (limit: [fetch] parse_timeout)"
        ),
    );
    assert_eq!(report(&reports, "Fine").status, FeedStatus::Ok);
    let items = ws.items(&config).await;
    assert_eq!(
        items.len(),
        3,
        "the fine feed's three stories, none of the costly one"
    );
    assert!(took < Duration::from_secs(10), "the poll took {took:?}");
}

#[tokio::test]
async fn retry_after_is_honoured_and_gone_feeds_are_marked() {
    let server = FeedServer::start().await;
    server.set(
        "busy",
        Route::status(429, vec![("retry-after", "3600".into())]),
    );
    server.set("gone", Route::status(410, vec![]));
    let ws = Workspace::new();
    let config = ws.write_config(
        &[("Busy", server.url("busy")), ("Gone", server.url("gone"))],
        "",
    );
    let first = ws.poll(&config).await;
    let busy = report(&first, "Busy");
    assert_eq!(busy.status, FeedStatus::Failed("throttled".into()));
    assert!(
        busy.message
            .as_deref()
            .unwrap()
            .contains("Retry-After 3600s"),
        "{busy:?}"
    );
    assert_eq!(report(&first, "Gone").status, FeedStatus::Gone);

    let second = ws.poll(&config).await;
    assert!(
        matches!(report(&second, "Busy").status, FeedStatus::Deferred(_)),
        "{second:?}"
    );
    assert_eq!(
        server.requests("busy").len(),
        1,
        "not retried before Retry-After"
    );
    assert_eq!(report(&second, "Gone").status, FeedStatus::Gone);
    assert_eq!(
        server.requests("gone").len(),
        1,
        "a gone feed is not fetched again"
    );
}

#[tokio::test]
async fn permanent_redirects_are_reported_and_followed_next_time() {
    let server = FeedServer::start().await;
    server.set("old", Route::status(301, vec![("location", "/new".into())]));
    server.set(
        "new",
        Route::feed(fixture("rss10.xml"), RSS)
            .with_validators("\"n\"", "Mon, 04 Apr 2022 08:20:00 GMT"),
    );
    server.set(
        "temp",
        Route::status(302, vec![("location", "/new".into())]),
    );
    server.set(
        "loop",
        Route::status(307, vec![("location", "/loop".into())]),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("Moved", server.url("old")),
            ("Temp", server.url("temp")),
            ("Loop", server.url("loop")),
        ],
        "",
    );
    let first = ws.poll(&config).await;
    let moved = report(&first, "Moved");
    assert_eq!(moved.status, FeedStatus::Ok);
    assert!(
        moved
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("moved permanently to {}", server.url("new")))
    );
    let temp = report(&first, "Temp");
    assert_eq!(temp.status, FeedStatus::Ok);
    assert!(temp.message.is_none(), "a temporary redirect is not a move");
    let lp = report(&first, "Loop");
    assert_eq!(lp.status, FeedStatus::Failed("redirect".into()));
    assert_eq!(
        server.requests("loop").len(),
        6,
        "five redirects followed, then stop"
    );

    ws.poll(&config).await;
    assert_eq!(
        server.requests("old").len(),
        1,
        "the new address is used directly"
    );
}

#[tokio::test]
async fn stored_stories_survive_reopening_the_database() {
    let server = FeedServer::start().await;
    server.set("rss2.xml", Route::feed(fixture("rss2.xml"), RSS));
    let ws = Workspace::new();
    let config = ws.write_config(&[("ISHR", server.url("rss2.xml"))], "");
    ws.poll(&config).await;
    let before = ws.items(&config).await;
    // A fresh process would reload the file from disk: so does this.
    let reloaded = gazette::config::Config::load(&ws.config_path()).unwrap();
    let after = ws.items(&reloaded).await;
    assert_eq!(before, after);
    assert_eq!(after.len(), 3);
    assert!(ws.dir.path().join("gazette.db").exists());
}

#[tokio::test]
async fn local_files_are_feeds_too() {
    let ws = Workspace::new();
    std::fs::write(ws.dir.path().join("local.xml"), fixture("rss091.xml")).unwrap();
    let config = ws.write_config(
        &[
            ("Local", "local.xml".into()),
            // A file:// URL is taken as given: its absence is the feed's
            // failure at fetch time (a bare path must exist: `check`).
            (
                "Absent",
                url::Url::from_file_path(ws.dir.path().join("absent.xml"))
                    .unwrap()
                    .to_string(),
            ),
        ],
        "",
    );
    let reports = ws.poll(&config).await;
    assert_eq!(report(&reports, "Local").new, 1);
    let absent = report(&reports, "Absent");
    assert_eq!(absent.status, FeedStatus::Failed("file".into()));
    assert!(absent.message.as_deref().unwrap().contains("absent.xml"));
    // Unchanged file: nothing parsed the second time.
    assert_eq!(
        report(&ws.poll(&config).await, "Local").status,
        FeedStatus::NotModified
    );
}

#[tokio::test]
async fn fetches_respect_the_per_host_limit() {
    let server = FeedServer::start().await;
    let mut feeds = Vec::new();
    let names: Vec<String> = (0..6).map(|i| format!("feed{i}")).collect();
    for name in &names {
        let mut r = Route::feed(fixture("rss091.xml"), RSS);
        r.delay = Some(Duration::from_millis(300));
        // Each feed a distinct document so that all six are stored.
        r.body = String::from_utf8(r.body)
            .unwrap()
            .replace("albert-ho", name)
            .into_bytes();
        server.set(name, r);
        feeds.push((name.as_str(), server.url(name)));
    }
    let ws = Workspace::new();
    let config = ws.write_config(&feeds, "[fetch]\nconcurrency = 8\nper_host = 2\n");
    let reports = ws.poll(&config).await;
    assert!(
        reports.iter().all(|r| r.status == FeedStatus::Ok),
        "{reports:?}"
    );
    assert_eq!(server.max_in_flight(), 2, "two at a time from one host");
    // The same text in six feeds: one story with six sources.
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 1);
    assert_eq!(stories[0].sources.len(), 6);
}

#[tokio::test]
async fn failures_back_off_exponentially_and_are_recorded() {
    let server = FeedServer::start().await;
    server.set("down", Route::status(500, vec![]));
    let ws = Workspace::new();
    let config = ws.write_config(&[("Down", server.url("down"))], "min_interval = \"10m\"\n");
    ws.poll(&config).await;
    ws.poll(&config).await;
    let store = crate::open_store(&config).await.unwrap();
    let row = store.sync_feeds(&config.feeds).await.unwrap().remove(0);
    store.close().await;
    assert_eq!(row.state.error_count, 2);
    assert_eq!(row.state.status.as_str(), "http_5xx");
    assert_eq!(row.state.last_error.as_deref(), Some("HTTP 500"));
    // Second failure: 10 min · 2, with ±20% jitter.
    let wait = (row.state.next_fetch_at.unwrap() - row.state.last_fetch_at.unwrap()).num_seconds();
    assert!((960..=1440).contains(&wait), "waited {wait}s");
    // A manual poll still tries it (only a server's Retry-After defers a manual poll).
    assert_eq!(server.requests("down").len(), 2);
}

#[tokio::test]
async fn a_poll_of_many_feeds_finishes_and_stores_every_feed() {
    let server = FeedServer::start().await;
    let body = String::from_utf8(fixture("rss2.xml")).unwrap();
    let names: Vec<String> = (0..80).map(|i| format!("feed-{i}")).collect();
    for name in &names {
        // Distinct guids and links per feed.
        let doc = body
            .replace("ishr-1001", &format!("{name}-1"))
            .replace("?p=2002", &format!("?p={name}"));
        server.set(name, Route::feed(doc, RSS));
    }
    let ws = Workspace::new();
    let feeds: Vec<_> = names.iter().map(|n| (n.as_str(), server.url(n))).collect();
    let config = ws.write_config(&feeds, "[fetch]\nconcurrency = 4\n");
    let reports = tokio::time::timeout(Duration::from_secs(60), ws.poll(&config))
        .await
        .expect("the poll finishes");
    assert_eq!(reports.len(), 80);
    assert!(
        reports
            .iter()
            .all(|r| r.status == FeedStatus::Ok && r.new == 3),
        "{reports:?}"
    );
    // The same three stories in eighty feeds.
    let stories = ws.items(&config).await;
    assert_eq!(stories.len(), 3);
    assert!(stories.iter().all(|s| s.sources.len() == 80));
    // Every fetch state was recorded: the next poll sends validators... none here, so all unchanged.
    let again = ws.poll(&config).await;
    assert!(again.iter().all(|r| r.unchanged == 3 && r.new == 0));
}

#[tokio::test]
async fn items_pruned_by_retention_are_not_stored_again() {
    let server = FeedServer::start().await;
    let items: String = (0..4)
        .map(|i| format!("<item><guid>p{i}</guid><title>Undated report {i} on detention</title><link>https://p.example/{i}</link><description>Report {i}.</description></item>"))
        .collect();
    server.set(
        "p",
        Route::feed(
            format!("<rss version=\"2.0\"><channel><title>p</title><link>https://p.example/</link>{items}</channel></rss>"),
            "application/rss+xml",
        ),
    );
    let ws = Workspace::new();
    let config = ws.write_config(&[("P", server.url("p"))], "");
    ws.poll(&config).await;
    assert_eq!(ws.items(&config).await.len(), 4);
    // Prune everything (the newest story stays: its id must not be reused).
    let store = crate::open_store(&config).await.unwrap();
    let far = chrono::Utc::now() + chrono::TimeDelta::days(1);
    assert_eq!(store.prune_stories(far, far).await.unwrap(), 3);
    store.close().await;
    // The feed still carries them: they do not come back as new stories.
    let reports = ws.poll(&config).await;
    assert_eq!(reports[0].new, 0, "{reports:?}");
    assert_eq!(ws.items(&config).await.len(), 1);
}

/// An item for saving straight into the store.
fn stored_item(key: &str, title: &str) -> gazette::model::Item {
    gazette::model::Item {
        key: key.into(),
        raw_hash: 1,
        guid: Some(key.into()),
        link: Some(format!("https://example.org/{key}")),
        title: title.into(),
        summary_html: None,
        content_html: Some(format!("<p>{title}</p>")),
        excerpt: title.into(),
        authors: vec![],
        categories: vec![],
        enclosures: vec![],
        published: Some(chrono::Utc::now()),
        updated: None,
        tags: vec![],
        canonical_link: Some(format!("https://example.org/{key}")),
        signature: gazette::dedup::signature(title, title),
        excluded: false,
    }
}

#[tokio::test]
async fn saves_arriving_together_share_a_commit_and_a_failing_one_fails_alone() {
    let ws = Workspace::new();
    let feeds: Vec<(String, String)> = (0..12)
        .map(|i| (format!("f{i}"), format!("https://example.org/f{i}.xml")))
        .collect();
    let refs: Vec<(&str, String)> = feeds.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    let config = ws.write_config(&refs, "");
    let store = crate::open_store(&config).await.unwrap();
    let rows = store.sync_feeds(&config.feeds).await.unwrap();
    let policy = gazette::filing::Policy {
        window_secs: 86_400,
        threshold: 0.5,
    };
    let now = chrono::Utc::now();
    // Twelve feeds' saves at once, and one for a feed the store does not
    // know (a foreign-key failure) among them.
    let mut saves: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let item = stored_item(
                &format!("k{i}"),
                &format!("Distinct story number {i} about courts {}", "x".repeat(i)),
            );
            let store = store.clone();
            let id = row.id;
            tokio::spawn(async move {
                store
                    .file_document(gazette::store::Document {
                        feed_id: id,
                        items: vec![gazette::store::Prepared::new(item)],
                        listed: vec![],
                        now,
                        policy,
                    })
                    .await
            })
        })
        .collect();
    let bad_store = store.clone();
    saves.insert(
        6,
        tokio::spawn(async move {
            bad_store
                .file_document(gazette::store::Document {
                    feed_id: 999_999,
                    items: vec![gazette::store::Prepared::new(stored_item(
                        "bad",
                        "Orphan item",
                    ))],
                    listed: vec![],
                    now,
                    policy,
                })
                .await
        }),
    );
    let results: Vec<_> = futures::future::join_all(saves)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        results[6].is_err(),
        "the orphan's save fails: {:?}",
        results[6]
    );
    for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 6) {
        assert_eq!(r.as_ref().unwrap().new, 1, "save {i}: {r:?}");
    }
    let stories = store
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(stories.len(), 12);
    assert!(stories.iter().all(|s| s.title != "Orphan item"));
    store.close().await;
    // Closing checkpoints everything into the file and empties the WAL.
    let gazette::config::DatabaseUrl::Sqlite(db) = &config.database else {
        panic!("an SQLite store");
    };
    let wal = db.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "{} is not empty",
        wal.display()
    );
    let reopened = crate::open_store(&config).await.unwrap();
    let again = reopened
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(again.len(), 12);
    reopened.close().await;
}

#[tokio::test]
async fn a_store_written_before_compression_and_new_bands_still_reads_after_upgrade() {
    use sqlx::ConnectOptions;
    let ws = Workspace::new();
    let config = ws.write_config(&[("ISHR", "https://ishr.ch/feed/".to_string())], "");
    let gazette::config::DatabaseUrl::Sqlite(db) = &config.database else {
        panic!("an SQLite store");
    };
    // A database as schema version 5 left it: plain TEXT HTML, old band rows.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for name in [
        "0001_init.sql",
        "0002_stories.sql",
        "0003_exclusion_and_meta.sql",
        "0004_digest.sql",
        "0005_publish.sql",
    ] {
        let sql = std::fs::read_to_string(dir.join(name)).unwrap();
        sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql(
        "PRAGMA user_version = 5;
         INSERT INTO feeds (id, name, url) VALUES (1, 'ISHR', 'https://ishr.ch/feed/');
         INSERT INTO stories (id, signature, sort_date, created_at) VALUES (1, x'00', 1700000000, 1700000000);
         INSERT INTO story_bands (band, hash, story_id) VALUES (1, 2, 1);
         INSERT INTO items (id, feed_id, item_key, raw_hash, title, summary_html, content_html,
           excerpt, authors, categories, enclosures, first_seen, sort_date, story_id, merge_reason)
         VALUES (1, 1, 'guid:old', 1, 'Old story', '<p>old summary</p>', '<p>old content</p>',
           'old', '[]', '[]', '[]', 1700000000, 1700000000, 1, 'first');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let store = crate::open_store(&config).await.unwrap();
    let stories = store
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(stories.len(), 1);
    assert_eq!(stories[0].title, "Old story");
    assert_eq!(
        stories[0].content_html.as_deref(),
        Some("<p>old content</p>")
    );
    assert_eq!(
        stories[0].summary_html.as_deref(),
        Some("<p>old summary</p>")
    );
    // A new item (compressed when long) sits beside the old one.
    let rows = store.sync_feeds(&config.feeds).await.unwrap();
    let mut item = stored_item("new", "A new story about detained lawyers");
    item.content_html = Some(format!(
        "<p>{}</p>",
        "Detained lawyers in court. ".repeat(40)
    ));
    let long = item.content_html.clone();
    store
        .file_document(gazette::store::Document {
            feed_id: rows[0].id,
            items: vec![gazette::store::Prepared::new(item)],
            listed: vec![],
            now: chrono::Utc::now(),
            policy: gazette::filing::Policy {
                window_secs: 86_400,
                threshold: 0.5,
            },
        })
        .await
        .unwrap();
    let stories = store
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(stories.len(), 2);
    let new = stories
        .iter()
        .find(|s| s.title.starts_with("A new story"))
        .unwrap();
    assert_eq!(new.content_html, long);
    store.close().await;
    // The band table is gone: the index lives in memory since schema 7.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let (version, bands): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_master WHERE name = 'story_bands')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (version, bands),
        (10, 0),
        "the latest schema (10: undated stories take seconds of their own)"
    );
}
