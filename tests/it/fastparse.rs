//! The fast parser against feed-rs: every document, both paths, the same items.

use gazette::model::Item;
use gazette::parse::{self, ParseContext, ParsedFeed};
use gazette::sanitize::Sanitizer;
use url::Url;

use crate::fixture;

/// What a parsed document normalises to (feed fields, then every item).
type Normalised = (Option<String>, Option<String>, Option<i64>, Vec<Item>);

fn normalised(f: ParsedFeed, base: &Url) -> Normalised {
    let s = Sanitizer::new(Some(base));
    let items = f.entries.iter().map(|e| e.normalise(&s)).collect();
    (f.title, f.site_link, f.ttl_seconds, items)
}

/// Parses `bytes` both ways; asserts equal outcomes; returns whether the fast path took it.
fn both_ways(name: &str, bytes: &[u8]) -> bool {
    let base = Url::parse(&format!("https://feeds.example/{name}")).unwrap();
    let ctx = ParseContext {
        base_url: Some(&base),
        content_type: None,
    };
    let auto = parse::parse(bytes, ctx);
    let reference = parse::parse_with_feed_rs(bytes, ctx);
    match (auto, reference) {
        (Ok(a), Ok(r)) => {
            let fast = a.fast_path;
            assert!(!r.fast_path);
            assert_eq!(normalised(a, &base), normalised(r, &base), "{name}");
            fast
        }
        (Err(_), Err(_)) => false,
        (a, r) => panic!("{name}: fast path {a:?}, feed-rs {r:?}"),
    }
}

#[test]
fn every_fixture_gives_the_same_items_both_ways() {
    let mut fast = Vec::new();
    for name in [
        "rss2.xml",
        "atom10.xml",
        "atom03.xml",
        "rss091.xml",
        "rss10.xml",
        "feed.json",
        "hostile.xml",
        "hostile.json",
        "malformed.xml",
    ] {
        if both_ways(name, &fixture(name)) {
            fast.push(name);
        }
    }
    // RSS 2.0, Atom 1.0 (and 0.3, rewritten to 1.0 first) and RSS 0.91 take the
    // fast path; RSS 1.0, JSON and the malformed document do not.
    assert_eq!(
        fast,
        [
            "rss2.xml",
            "atom10.xml",
            "atom03.xml",
            "rss091.xml",
            "hostile.xml"
        ]
    );
}

/// Documents written to probe the rules the fast path mirrors.
const PROBES: &[(&str, bool)] = &[
    // Entities, CDATA, comments inside text, white space, relative links.
    (
        r#"<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title> T &amp; <![CDATA[<b>x</b>]]> </title><link>/site/</link><ttl>30</ttl>
        <item><title>  A &#8212; <!-- c -->B &unknown; </title><link> rel/a?x=1&amp;y=2 </link><guid isPermaLink="false">  g1  </guid>
        <description>&lt;p&gt;Para &amp;amp; more&lt;/p&gt;</description><content:encoded><![CDATA[<p>Body <a href="/x">x</a></p>]]></content:encoded>
        <dc:creator> Jane Roe </dc:creator><author>John</author><category> Rights </category><category/>
        <pubDate>Tue, 3 Nov 2026 09:05:00 -0500</pubDate><dc:date>2026-11-03T10:00:00Z</dc:date>
        <enclosure url="/ep.mp3" length="123" type="audio/mpeg"/><enclosure url="https://cdn.example/b.pdf"/></item>
        <item><description>No title, only text</description><pubDate>Wed, 04 Nov 2026 00:00:00 +0000</pubDate></item>
        </channel></rss>"#,
        true,
    ),
    (
        r#"<rss version="2.0"><channel><title>T</title><item><title>a</title><pubDate>not a date</pubDate></item></channel></rss>"#,
        true,
    ),
    (
        r#"<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>T</title><atom:link href="https://feeds.example/self" rel="self"/><link>https://site.example/</link>
        <item xml:base="https://other.example/dir/"><title>A &lt;em&gt;b&lt;/em&gt;</title><link>rel/a</link><guid>g1</guid>
        <description><![CDATA[<p>x</p>]]></description><content:encoded></content:encoded><category>a</category><category>b</category>
        <pubDate>Tue, 03 Nov 2026 09:05:00 GMT</pubDate><atom:updated>2026-11-04T10:00:00.25+01:00</atom:updated>
        <enclosure url="ep.mp3" length="x" type="audio/mpeg"/></item>
        <item><title>Second</title><link>https://site.example/2</link></item></channel></rss>"#,
        true,
    ),
    // Atom: xml:base on feed, entry and content; xhtml; text types; categories; persons.
    (
        r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://atom.example/news/"><title type="html">Feed &lt;b&gt;x&lt;/b&gt;</title><subtitle>s</subtitle>
        <link href="/"/><link rel="self" href="feed.atom"/>
        <entry xml:base="sub/"><id> urn:1 </id><title>  Plain  &amp; simple </title><link href="a.html"/><link rel="enclosure" href="f.mp3" type="audio/mpeg" length="99"/>
        <published>2026-11-03T10:00:00+02:00</published><updated>2026-11-03T11:00:00Z</updated>
        <author><name> Ann </name><uri>https://ann.example/</uri></author><author><email>b@example.org</email></author><contributor><name>C</name></contributor>
        <category term=" t1 " label="T One"/><category term="t2"/><category label="no term"/>
        <summary type="text">A &lt; B</summary><content type="html" xml:base="https://elsewhere.example/">&lt;p&gt;Body &lt;a href="rel"&gt;r&lt;/a&gt;&lt;/p&gt;</content></entry>
        <entry><id>urn:2</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">X <b>html</b> title</div></title>
        <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>One</p></div><p>Two</p></content><updated>2026-11-02T00:00:00Z</updated></entry>
        <entry><id>urn:3</id><content>plain text

second paragraph</content></entry>
        </feed>"#,
        true,
    ),
    // Things the fast path leaves to feed-rs.
    (
        r#"<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>T</title><item><title>a</title><media:content url="https://x.example/a.jpg" type="image/jpeg"/></item></channel></rss>"#,
        false,
    ),
    (
        r#"<rss version="2.0"><channel><title>T</title><item><title>a</title><author>someone@example.org (Some One)</author><comments>https://x.example/c</comments></item></channel></rss>"#,
        false,
    ),
    (
        r#"<rss version="2.0"><channel><title>T</title><item><title>a</title><pubDate>Tuesday, 03 Nov 2026 09:05:00 UTC</pubDate></item></channel></rss>"#,
        // Both parsers read dates through the same function.
        true,
    ),
    (
        r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id><content type="text/plain">x</content></entry></feed>"#,
        false,
    ),
    (
        r#"<rss version="2.0"><channel><title>T</title><item><title>a</title><link>https://x.example/a</link></item></channel></rss><trailing>"#,
        true,
    ),
    (
        "<rss version=\"2.0\"><channel><title>T</title><item><title>a",
        false,
    ),
    (
        r#"<feed xmlns="http://www.w3.org/2005/Atom"><title type="xhtml"/><entry><id>e</id><content type="xhtml"/><title type="html"/><link href="https://x.example/e"/></entry></feed>"#,
        true,
    ),
    (
        r#"<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"><channel><title>t</title>
        <item><title>a</title><link>http://feedproxy.example/~r/a</link><feedburner:origLink>https://ishr.example/a?x=1&amp;y=2</feedburner:origLink></item>
        <item><title>b</title><link>https://ishr.example/b</link></item></channel></rss>"#,
        true,
    ),
    ("", false),
];

#[test]
fn probes_give_the_same_items_both_ways() {
    for (i, (doc, expect_fast)) in PROBES.iter().enumerate() {
        let fast = both_ways(&format!("probe{i}.xml"), doc.as_bytes());
        assert_eq!(fast, *expect_fast, "probe {i}: fast path taken = {fast}");
    }
}

#[test]
fn hostile_bytes_never_panic_and_agree() {
    // Every prefix of a rich document: truncated input is the common hostile case.
    let doc = PROBES[3].0.as_bytes();
    for cut in (0..doc.len()).step_by(7) {
        both_ways("cut.xml", &doc[..cut]);
    }
    let doc = PROBES[2].0.as_bytes();
    for cut in (0..doc.len()).step_by(5) {
        both_ways("cut.xml", &doc[..cut]);
    }
}

#[test]
fn real_world_fixtures_give_the_same_items_both_ways() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realworld");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".opml"))
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let mut fast = 0;
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        fast += usize::from(both_ways(name, &bytes));
        // Every prefix of each: truncated real-world input never panics
        // and both ways agree.
        for cut in (0..bytes.len()).step_by(97) {
            both_ways(name, &bytes[..cut]);
        }
    }
    assert!(fast >= 5, "{fast} fixtures took the fast path");
}
