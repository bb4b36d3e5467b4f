//! Publishing: every output parsed back and held to its spec (RFC 4287 for
//! Atom), stable entry ids, sanitised HTML everywhere, and the HTTP server.

use std::collections::HashSet;
use std::path::Path;

use chrono::DateTime;

use crate::server::{FeedServer, Route};
use crate::{Workspace, fixture, gazette};

const ATOM: &str = "http://www.w3.org/2005/Atom";

/// What the tests need of an Atom entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AtomEntry {
    pub id: String,
    pub title: String,
    pub published: String,
    pub content: String,
    pub categories: Vec<String>,
}

fn children<'a>(
    n: roxmltree::Node<'a, 'a>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> {
    n.children().filter(move |c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == Some(ATOM)
    })
}

fn one<'a>(n: roxmltree::Node<'a, 'a>, name: &'a str, what: &str) -> roxmltree::Node<'a, 'a> {
    let all: Vec<_> = children(n, name).collect();
    assert_eq!(all.len(), 1, "{what} must have exactly one atom:{name}");
    all[0]
}

fn text(n: roxmltree::Node) -> String {
    n.text().unwrap_or("").to_string()
}

fn assert_date(n: roxmltree::Node, what: &str) -> String {
    let t = text(n);
    assert!(
        DateTime::parse_from_rfc3339(&t).is_ok(),
        "{what}: {t:?} is not an RFC 3339 date"
    );
    t
}

fn assert_iri(s: &str, what: &str) {
    let u = url::Url::parse(s).unwrap_or_else(|e| panic!("{what}: {s:?} is not an IRI: {e}"));
    assert!(!u.scheme().is_empty(), "{what}: {s:?} has no scheme");
}

/// Holds an Atom document to the MUSTs of RFC 4287 (and parses it with
/// feed-rs, as readers would); its entries.
pub fn check_atom(xml: &[u8]) -> Vec<AtomEntry> {
    let s = std::str::from_utf8(xml).expect("Atom is UTF-8");
    let doc = roxmltree::Document::parse(s).expect("Atom is well-formed XML");
    let feed = doc.root_element();
    assert_eq!(feed.tag_name().name(), "feed");
    assert_eq!(feed.tag_name().namespace(), Some(ATOM));
    assert_iri(&text(one(feed, "id", "feed")), "feed id");
    one(feed, "title", "feed");
    assert_date(one(feed, "updated", "feed"), "feed updated");
    one(feed, "generator", "feed");
    let links: Vec<_> = children(feed, "link").collect();
    let rel = |l: &roxmltree::Node| l.attribute("rel").unwrap_or("alternate").to_string();
    let selfs: Vec<_> = links.iter().filter(|l| rel(l) == "self").collect();
    assert_eq!(selfs.len(), 1, "feed must have one rel=self link");
    assert_iri(selfs[0].attribute("href").unwrap(), "self link");
    assert!(
        links
            .iter()
            .any(|l| rel(l) == "alternate" && l.attribute("type") == Some("text/html")),
        "feed must link to its web page"
    );
    let feed_has_author = children(feed, "author").next().is_some();
    let mut ids = HashSet::new();
    let mut updates = HashSet::new();
    let mut entries = Vec::new();
    let mut last_published: Option<DateTime<chrono::FixedOffset>> = None;
    for e in children(feed, "entry") {
        let id = text(one(e, "id", "entry"));
        assert_iri(&id, "entry id");
        assert!(ids.insert(id.clone()), "entry id {id} appears twice");
        let title = one(e, "title", "entry");
        assert_ne!(title.attribute("type"), Some("xhtml"));
        let updated = assert_date(one(e, "updated", "entry"), "entry updated");
        // The W3C validator warns "Two entries with the same value for atom:updated".
        assert!(
            updates.insert(updated.clone()),
            "entry {id}: another entry has the same updated {updated}"
        );
        let published: Vec<_> = children(e, "published").collect();
        assert!(published.len() <= 1);
        let published = published
            .first()
            .map(|p| assert_date(*p, "entry published"))
            .unwrap_or_else(|| updated.clone());
        let p = DateTime::parse_from_rfc3339(&published).unwrap();
        assert!(
            DateTime::parse_from_rfc3339(&updated).unwrap() >= p,
            "entry {id} updated before it was published"
        );
        if let Some(last) = last_published {
            assert!(p <= last, "entries are newest first");
        }
        last_published = Some(p);
        let authors: Vec<_> = children(e, "author").collect();
        assert!(
            feed_has_author || !authors.is_empty(),
            "entry {id} has no author"
        );
        for a in &authors {
            assert!(!text(one(*a, "name", "author")).trim().is_empty());
        }
        let contents: Vec<_> = children(e, "content").collect();
        assert!(contents.len() <= 1);
        let alternates: Vec<_> = children(e, "link")
            .filter(|l| rel(l) == "alternate")
            .collect();
        assert!(
            !contents.is_empty() || !alternates.is_empty(),
            "entry {id} needs content or an alternate link"
        );
        for l in children(e, "link") {
            let href = l.attribute("href").expect("link has href");
            assert_iri(href, "entry link");
            assert!(href.starts_with("http"), "entry link {href} is not http(s)");
        }
        assert!(children(e, "summary").count() <= 1);
        for src in children(e, "source") {
            one(src, "title", "source");
            assert_iri(&text(one(src, "id", "source")), "source id");
        }
        let categories: Vec<String> = children(e, "category")
            .map(|c| {
                c.attribute("term")
                    .expect("category has a term")
                    .to_string()
            })
            .collect();
        let content = contents.first().map(|c| text(*c)).unwrap_or_default();
        if let Some(c) = contents.first() {
            assert_eq!(c.attribute("type"), Some("html"));
        }
        entries.push(AtomEntry {
            id,
            title: text(title),
            published,
            content,
            categories,
        });
    }
    let parsed = feed_rs::parser::parse(xml).expect("feed-rs reads the Atom feed");
    assert_eq!(parsed.entries.len(), entries.len());
    entries
}

/// No script, event handler or javascript: URL in `text` (HTML, or the
/// HTML carried inside a feed once unescaped).
pub fn assert_no_active_content(text: &str, what: &str) {
    let lower = text.to_ascii_lowercase();
    for bad in [
        "<script",
        "javascript:",
        "vbscript:",
        "<iframe",
        "<object",
        "<form",
        "<svg",
        "<style",
    ] {
        assert!(!lower.contains(bad), "{what} contains {bad}: {text}");
    }
    let on_attr = regex::Regex::new(r"(?i)<[^>]*\son[a-z]+\s*=").unwrap();
    assert!(
        !on_attr.is_match(text),
        "{what} has an on* attribute: {text}"
    );
    // A URL attribute with another scheme, as a browser reads it: every
    // space and control dropped (`jav&#x09;ascript:` is `javascript:`).
    let squeezed: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let bad_url = regex::Regex::new(
        r#"(?i)(href|src|cite|srcset|poster|longdesc|background|action|usemap)=["']?(javascript|vbscript|data|file):"#,
    )
    .unwrap();
    assert!(
        !bad_url.is_match(&squeezed),
        "{what} has a URL attribute with another scheme: {text}"
    );
}

/// Quotations whose `cite` is hostile, plainly and obfuscated the ways
/// browsers forgive (issue 15: 95 of 2,000 generated items got through).
const HOSTILE_CITE: &str = r#"<rss version="2.0"><channel><title>Quotes</title><link>https://quotes.example/</link>
<item><guid>cite-1</guid><title>Quotes from defenders at the council</title><link>https://quotes.example/1</link>
<description><![CDATA[<p><q cite="javascript:alert(1)">one</q> <q cite="jav&#x09;ascript:alert(2)">two</q>
<blockquote cite="vbscript:msgbox(3)">three</blockquote> <blockquote cite="data:text/html,&lt;script&gt;alert(4)&lt;/script&gt;">four</blockquote>
<q cite="file:///etc/passwd">five</q> <q cite=" &#x01;JaVa&#10;Script&colon;alert(6)">six</q>
<q cite="/reports/7">seven</q> <a href="jav&#13;ascript:alert(8)">eight</a></p>]]></description></item>
</channel></rss>"#;

/// Every text node and attribute value of an XML document, unescaped.
fn xml_texts(xml: &[u8]) -> String {
    let s = std::str::from_utf8(xml).unwrap();
    let doc = roxmltree::Document::parse(s).unwrap();
    let mut out = String::new();
    for n in doc.descendants() {
        if let Some(t) = n.text() {
            out.push_str(t);
            out.push('\n');
        }
        for a in n.attributes() {
            out.push_str(a.value());
            out.push('\n');
        }
    }
    out
}

const TAGS: &str = r#"
[[tags]]
name = "china"
keywords = ["China", "Hong Kong"]

[[tags]]
name = "defenders"
keywords = ["defender", "defenders"]
"#;

async fn polled_workspace(server: &FeedServer) -> Workspace {
    server.set(
        "ishr",
        Route::feed(fixture("rss2.xml"), "application/rss+xml"),
    );
    server.set(
        "ohchr",
        Route::feed(fixture("atom10.xml"), "application/atom+xml"),
    );
    server.set(
        "fld",
        Route::feed(fixture("feed.json"), "application/feed+json"),
    );
    server.set(
        "hostile",
        Route::feed(fixture("hostile.xml"), "application/rss+xml"),
    );
    server.set(
        "hostile-json",
        Route::feed(fixture("hostile.json"), "application/feed+json"),
    );
    server.set(
        "hostile-cite",
        Route::feed(HOSTILE_CITE, "application/rss+xml"),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[
            ("ISHR", server.url("ishr")),
            ("OHCHR", server.url("ohchr")),
            ("Front Line Defenders", server.url("fld")),
            ("Hostile", server.url("hostile")),
            ("Hostile JSON", server.url("hostile-json")),
            ("Hostile cite", server.url("hostile-cite")),
        ],
        &format!("[publish]\ndir = \"public\"\nhub = \"https://hub.example/\"\n{TAGS}"),
    );
    let reports = ws.poll(&config).await;
    assert!(reports.iter().all(|r| !r.is_error()), "{reports:#?}");
    ws
}

fn read(dir: &Path, path: &str) -> Vec<u8> {
    std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn publish_writes_every_output_and_they_carry_the_same_stories_under_the_same_ids() {
    let server = FeedServer::start().await;
    let ws = polled_workspace(&server).await;
    let out = gazette(&ws, &["publish"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = ws.dir.path().join("public");

    let atom = read(&dir, "feed.atom");
    let entries = check_atom(&atom);
    let stories = gazette(&ws, &["items", "--json"]);
    let story_count = String::from_utf8_lossy(&stories.stdout).lines().count();
    assert!(story_count >= 8, "{story_count} stories");
    assert_eq!(entries.len(), story_count);
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with("tag:news.example.org,20")),
        "{ids:?}"
    );
    let xml = String::from_utf8_lossy(&atom);
    assert!(xml.contains(r#"<link href="https://hub.example/" rel="hub"/>"#));
    assert!(xml.contains(r#"<link href="https://news.example.org/feed.atom" rel="self""#));

    // Sources are named in each entry: the syndicated story lists its feed.
    let chow = entries
        .iter()
        .find(|e| e.title.contains("Chow Hang-tung"))
        .expect("the ISHR story is published");
    assert!(chow.content.contains("Sources: "), "{}", chow.content);
    assert!(chow.categories.contains(&"china".to_string()));

    // Per-tag feeds: only stories carrying the tag.
    let china = check_atom(&read(&dir, "tags/china.atom"));
    assert!(!china.is_empty());
    assert!(china.len() < entries.len());
    for e in &china {
        assert!(e.categories.contains(&"china".to_string()), "{e:?}");
        assert!(
            ids.contains(&e.id.as_str()),
            "tag feed ids are the main feed's"
        );
    }

    // RSS 2.0: same stories, same ids, guid isPermaLink="false".
    let rss = read(&dir, "feed.rss");
    let doc_text = String::from_utf8(rss.clone()).unwrap();
    let doc = roxmltree::Document::parse(&doc_text).unwrap();
    assert_eq!(doc.root_element().attribute("version"), Some("2.0"));
    let guids: Vec<(&str, Option<&str>)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("guid"))
        .map(|n| (n.text().unwrap(), n.attribute("isPermaLink")))
        .collect();
    assert_eq!(guids.iter().map(|g| g.0).collect::<Vec<_>>(), ids);
    assert!(guids.iter().all(|g| g.1 == Some("false")));
    let parsed = feed_rs::parser::parse(&rss[..]).expect("feed-rs reads the RSS feed");
    assert_eq!(parsed.entries.len(), ids.len());

    // JSON Feed 1.1: same ids.
    let json: serde_json::Value = serde_json::from_slice(&read(&dir, "feed.json")).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["feed_url"], "https://news.example.org/feed.json");
    let json_ids: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(json_ids, ids);
    assert_eq!(json["hubs"][0]["url"], "https://hub.example/");

    // The page: every story, tag links, feed autodiscovery, no scripts.
    let html = String::from_utf8(read(&dir, "index.html")).unwrap();
    assert!(html.contains(r#"<link rel="alternate" type="application/atom+xml""#));
    assert!(html.contains(r#"href="tags/china.html""#));
    assert!(html.contains("Chow Hang-tung"));
    assert_eq!(html.matches("<article>").count(), ids.len());
    let china_page = String::from_utf8(read(&dir, "tags/china.html")).unwrap();
    assert_eq!(china_page.matches("<article>").count(), china.len());
    assert!(china_page.contains(r#"href="../feed.atom""#));

    // OPML 2.0: every configured feed.
    let opml_text = String::from_utf8(read(&dir, "sources.opml")).unwrap();
    let opml = roxmltree::Document::parse(&opml_text).unwrap();
    assert_eq!(opml.root_element().attribute("version"), Some("2.0"));
    let outlines: Vec<_> = opml
        .descendants()
        .filter(|n| n.has_tag_name("outline"))
        .collect();
    assert_eq!(outlines.len(), 6);
    assert!(outlines.iter().all(|o| {
        o.attribute("xmlUrl")
            .is_some_and(|u| u.starts_with("http://127.0.0.1"))
    }));
    assert!(
        outlines
            .iter()
            .any(|o| o.attribute("text") == Some("Front Line Defenders"))
    );

    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".gazette-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test]
async fn hostile_feeds_leave_no_script_handler_or_javascript_url_in_any_output() {
    let server = FeedServer::start().await;
    let ws = polled_workspace(&server).await;
    let out = gazette(&ws, &["publish"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = ws.dir.path().join("public");
    let mut files = vec![
        "feed.atom".to_string(),
        "feed.rss".into(),
        "feed.json".into(),
        "index.html".into(),
        "sources.opml".into(),
    ];
    for t in ["china", "defenders"] {
        files.push(format!("tags/{t}.atom"));
        files.push(format!("tags/{t}.html"));
    }
    for f in &files {
        let bytes = read(&dir, f);
        let raw = String::from_utf8(bytes.clone()).unwrap();
        // The bytes themselves (after the page's own <head>), and the HTML
        // carried (escaped) inside them.
        let raw = match raw.split_once("</head>") {
            Some((_, body)) if f.ends_with(".html") => body.to_string(),
            _ => raw,
        };
        assert_no_active_content(&raw, f);
        let inner = if f.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap()
                .to_string()
        } else if f.ends_with(".html") {
            raw.clone()
        } else {
            xml_texts(&bytes)
        };
        assert_no_active_content(&inner, &format!("{f} (unescaped)"));
        assert!(
            !inner.contains('\u{1}') && !inner.contains('\u{b}'),
            "{f}: control characters"
        );
    }
    let entries = check_atom(&read(&dir, "feed.atom"));
    let hostile = entries
        .iter()
        .find(|e| e.title.contains("Council adopts resolution on defenders"))
        .expect("the hostile story is published, cleaned");
    assert!(
        hostile
            .content
            .contains("The Human Rights Council adopted a resolution")
    );
    // Its relative link was made absolute against the feed's address.
    let abs = format!("href=\"{}\"", server.url("relative/path"));
    assert!(hostile.content.contains(&abs), "{}", hostile.content);
    let quotes = entries
        .iter()
        .find(|e| e.title == "Quotes from defenders at the council")
        .expect("the story with hostile quotations is published, cleaned");
    assert!(quotes.content.contains("<q>one</q>"), "{}", quotes.content);
    let cite = format!("<q cite=\"{}\">seven</q>", server.url("reports/7"));
    assert!(quotes.content.contains(&cite), "{}", quotes.content);
    let ctl = entries
        .iter()
        .find(|e| e.title.starts_with("Control characters"))
        .expect("the JSON story with control characters is published");
    assert_eq!(ctl.title, "Control characters in a title");
}

/// Entry ids of the combined Atom feed.
fn atom_ids(dir: &Path) -> Vec<String> {
    check_atom(&read(dir, "feed.atom"))
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[tokio::test]
async fn entry_ids_survive_republishing_restarts_and_a_merged_duplicate() {
    let server = FeedServer::start().await;
    let ws = polled_workspace(&server).await;
    let dir = ws.dir.path().join("public");
    assert!(gazette(&ws, &["publish"]).status.success());
    let first = atom_ids(&dir);
    let first_atom = read(&dir, "feed.atom");
    // A second run of the binary (a restart): byte-identical output, and
    // files that did not change are not rewritten.
    let mtime = |p: &str| std::fs::metadata(dir.join(p)).unwrap().modified().unwrap();
    let before = mtime("feed.atom");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(gazette(&ws, &["publish"]).status.success());
    assert_eq!(mtime("feed.atom"), before);
    assert_eq!(atom_ids(&dir), first);
    assert_eq!(
        read(&dir, "feed.atom"),
        first_atom,
        "nothing changed: same bytes"
    );

    // A new feed syndicates the Chow Hang-tung story with a tracking link.
    let chow_before = check_atom(&first_atom)
        .into_iter()
        .find(|e| e.title.contains("Chow Hang-tung"))
        .unwrap();
    let partner_link = format!("{}?utm_source=partner", server.url("news/chow-hang-tung"));
    server.set(
        "partner",
        Route::feed(
            r#"<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
            <item><guid>partner-77</guid><title>Hong Kong: Chow Hang-tung is a human rights defender</title>
            <link>PARTNER_LINK</link>
            <pubDate>Wed, 18 Nov 2026 10:00:00 GMT</pubDate>
            <description>Reposted from ISHR.</description></item></channel></rss>"#
                .replace("PARTNER_LINK", &partner_link.replace('&', "&amp;")),
            "application/rss+xml",
        ),
    );
    let mut text = std::fs::read_to_string(ws.config_path()).unwrap();
    text.push_str(&format!(
        "\n[[feeds]]\nname = \"Partner\"\nurl = \"{}\"\n",
        server.url("partner")
    ));
    std::fs::write(ws.config_path(), text).unwrap();
    let config = gazette::config::Config::load(&ws.config_path()).unwrap();
    ws.poll(&config).await;
    assert!(gazette(&ws, &["publish"]).status.success());
    let after = check_atom(&read(&dir, "feed.atom"));
    let ids: Vec<&str> = after.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        first.len(),
        "the duplicate did not become an entry: {}",
        String::from_utf8_lossy(&gazette(&ws, &["items", "--json"]).stdout)
    );
    let mut sorted_first = first.clone();
    sorted_first.sort();
    let mut sorted_after: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted_after.sort();
    assert_eq!(sorted_after, sorted_first);
    let chow = after.iter().find(|e| e.id == chow_before.id).unwrap();
    assert!(
        chow.content.contains("Partner"),
        "the merged source is listed: {}",
        chow.content
    );
}

#[test]
fn publish_reports_an_unwritable_folder() {
    let ws = Workspace::new();
    ws.write_config(&[], "");
    let blocker = ws.dir.path().join("blocker");
    std::fs::write(&blocker, "a file, not a folder").unwrap();
    let out = gazette(&ws, &["publish", "--out", blocker.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocker"), "{err}");
}

#[test]
fn opml_export_then_import_round_trips_the_feed_list() {
    let from = Workspace::new();
    from.write_config(
        &[
            ("ISHR", "https://ishr.ch/feed/".into()),
            (
                "UN News & Views <en>",
                "https://news.un.org/feed/rss".into(),
            ),
            ("Amnesty", "https://www.amnesty.org/en/feed/".into()),
        ],
        "",
    );
    let text = std::fs::read_to_string(from.config_path())
        .unwrap()
        .replace(
            "name = \"ISHR\"\n",
            "name = \"ISHR\"\ntags = [\"ngo\", \"un\"]\n",
        );
    std::fs::write(from.config_path(), text).unwrap();
    let out = gazette(&from, &["opml", "export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opml_path = from.dir.path().join("export.opml");
    std::fs::write(&opml_path, &out.stdout).unwrap();

    let to = Workspace::new();
    to.write_config(
        &[("Amnesty", "https://www.amnesty.org/en/feed/".into())],
        "# keep this comment\n",
    );
    let out = gazette(&to, &["opml", "import", opml_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("2 feeds added, 1 already configured"),
        "{said}"
    );
    let text = std::fs::read_to_string(to.config_path()).unwrap();
    assert!(text.contains("# keep this comment"));
    let config = gazette::config::Config::load(&to.config_path()).unwrap();
    let feeds: Vec<(String, String, Vec<String>)> = config
        .feeds
        .iter()
        .map(|f| (f.name.clone(), f.source.to_string(), f.tags.clone()))
        .collect();
    assert_eq!(
        feeds,
        vec![
            (
                "Amnesty".into(),
                "https://www.amnesty.org/en/feed/".into(),
                vec![]
            ),
            (
                "ISHR".into(),
                "https://ishr.ch/feed/".into(),
                vec!["ngo".into(), "un".into()]
            ),
            (
                "UN News & Views <en>".into(),
                "https://news.un.org/feed/rss".into(),
                vec![]
            ),
        ]
    );
    // A second import adds nothing.
    let out = gazette(&to, &["opml", "import", opml_path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 feeds added, 3 already configured"));

    // A broken file is a clear error that names it, and the configuration stays.
    let bad = to.dir.path().join("bad.opml");
    std::fs::write(
        &bad,
        "<opml><body><outline xmlUrl='https://x.example/'></body>",
    )
    .unwrap();
    let out = gazette(&to, &["opml", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.opml"));
    assert_eq!(std::fs::read_to_string(to.config_path()).unwrap(), text);
}
