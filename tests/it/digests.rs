//! Several digests (issue 16): each with its own tags, schedule and readers,
//! per-reader topics, one-click unsubscribe served by gazette, and the
//! archive of sent issues. Real SMTP on loopback, messages parsed; the HTTP
//! server is the application's own, in-process on a loopback port.

use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mail_parser::{Message, MessageParser};

use crate::publish::check_atom;
use crate::smtp::SmtpServer;
use crate::{Workspace, open_store};
use gazette::app::Application;

const A: &str = "alice@example.org";
const B: &str = "bob@example.net";
const C: &str = "carol@example.org";
const D: &str = "dan@example.org";
const E: &str = "erin@example.org";
const SITE: &str = "https://news.example.org/";

/// Today's midnight, UTC: the cutoff of `0 0 * * *`.
fn cutoff() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// Four stories: China and a lawyer (hostile markup), the Council, Hong
/// Kong (China), and an untagged one; tags china, lawyers, un, and climate
/// (which no story has).
fn write_feed(ws: &Workspace) -> String {
    let stories = [
        (
            "China detains a lawyer",
            "&lt;p onclick=\"steal()\"&gt;A lawyer was detained.&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&lt;/p&gt;",
        ),
        (
            "Council session opens",
            "The Human Rights Council opened its session.",
        ),
        ("Hong Kong verdict", "A verdict in China's courts."),
        ("Football results", "Nothing about rights."),
    ];
    let mut items = String::new();
    for (i, (title, body)) in stories.iter().enumerate() {
        let date = (cutoff() - TimeDelta::hours(6 + 5 * i as i64)).to_rfc2822();
        items.push_str(&format!(
            "<item><title>{title}</title><link>https://example.org/s/{i}?utm_source=x</link><guid>s{i}</guid><pubDate>{date}</pubDate><description>{body}</description></item>\n"
        ));
    }
    let rss = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Watch</title><link>https://example.org/</link><description>d</description>\n{items}</channel></rss>"
    );
    let path = ws.dir.path().join("watch.xml");
    std::fs::write(&path, rss).unwrap();
    path.display().to_string()
}

const TAGS: &str = r#"
[[tags]]
name = "china"
keywords = ["China"]

[[tags]]
name = "lawyers"
keywords = ["lawyer"]

[[tags]]
name = "un"
keywords = ["Human Rights Council"]

[[tags]]
name = "climate"
keywords = ["glacier"]
"#;

/// `[digests.smtp]` to the loopback server.
fn smtp(server: &SmtpServer) -> String {
    format!(
        "transport = \"smtp\"\n[digests.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nretry_delay = \"50ms\"\n",
        server.port()
    )
}

/// Moves every story's first-stored time to an hour before `cutoff()`.
async fn backdate(ws: &Workspace) {
    let db = ws.dir.path().join("gazette.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE stories SET created_at = ?1")
        .bind((cutoff() - TimeDelta::hours(1)).timestamp())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

fn run(ws: &Workspace, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_gazette"))
            .arg("--config")
            .arg(ws.config_path())
            .args(args)
            .env_remove("GAZETTE_SECRET")
            .output()
            .unwrap()
    })
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The section headings of a digest's HTML, in order.
fn sections(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"text-transform:uppercase;color:#1a1a1a;">([^<]+)</td>"#).unwrap();
    re.captures_iter(html).map(|c| c[1].to_string()).collect()
}

fn header(m: &Message, name: &str) -> String {
    m.header_raw(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .trim()
        .to_string()
}

/// The one message `rcpt` got from `server`, parsed.
fn only_message(server: &SmtpServer, rcpt: &str) -> Vec<u8> {
    let got = server.received_by(rcpt);
    assert_eq!(got.len(), 1, "{rcpt} got {} messages", got.len());
    got[0].data.clone()
}

/// The two digests of the NGO: the China desk daily at midnight (china and
/// lawyers stories) and the board at 23:30 (everything but China).
async fn two_digests(server: &SmtpServer) -> Workspace {
    let ws = Workspace::new();
    let feed = write_feed(&ws);
    std::fs::write(
        ws.dir.path().join("china-desk.txt"),
        format!("# the desk\nCarol <{C}> lawyers\n"),
    )
    .unwrap();
    std::fs::write(
        ws.dir.path().join("board.txt"),
        format!("{D} climate\n{E}, un\n"),
    )
    .unwrap();
    let extra = format!(
        r#"{TAGS}
[[digests]]
name = "china"
title = "China desk"
schedule = "0 0 * * *"
timezone = "UTC"
tags = ["china", "lawyers"]
from = "Desk <desk@news.example.org>"
to = ["{A}"]
subscribers = "china-desk.txt"
{china_smtp}
[[digests]]
name = "board"
title = "Board overview"
schedule = "30 23 * * *"
timezone = "UTC"
exclude_tags = ["china"]
from = "Board <board@news.example.org>"
to = ["{B}"]
subscribers = "board.txt"
{board_smtp}"#,
        china_smtp = smtp(server),
        board_smtp = smtp(server),
    );
    let config = ws.write_config(&[("Watch Feed", feed)], &extra);
    ws.poll(&config).await;
    backdate(&ws).await;
    ws
}

/// The application's HTTP server on a loopback port, stopped on drop.
struct Web {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Web {
    async fn start(ws: &Workspace) -> Web {
        let config = gazette::config::Config::load(&ws.config_path()).unwrap();
        let app = Application::build(config)
            .await
            .unwrap()
            .listen(Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Web {
            base,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The local address of a `{site_url}…` link.
    fn local(&self, link: &str) -> String {
        let path = link
            .strip_prefix(SITE)
            .unwrap_or_else(|| panic!("{link} is not under {SITE}"));
        format!("{}/{path}", self.base)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.take().unwrap().await;
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(url: &str, body: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn parse(raw: &[u8]) -> Message<'static> {
    MessageParser::default().parse(raw).unwrap().into_owned()
}

/// The https URL of a List-Unsubscribe header.
fn unsubscribe_link(m: &Message) -> String {
    let h = header(m, "List-Unsubscribe");
    let first = h.split(',').next().unwrap().trim();
    first
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_digests_reach_their_own_readers_once_with_their_topics() {
    let server = SmtpServer::start().await;
    let ws = two_digests(&server).await;
    // Preview as one reader: only their topics.
    let preview = ok(&run(
        &ws,
        &[
            "digest", "preview", "--digest", "china", "--to", C, "--text",
        ],
    ));
    assert!(
        preview.contains("== lawyers ==") && !preview.contains("== china =="),
        "{preview}"
    );
    assert!(
        preview.contains(&format!("{SITE}unsubscribe/")),
        "{preview}"
    );
    let out = ok(&run(&ws, &["digest", "send"]));
    assert!(
        out.contains("china: ") && out.contains("board: "),
        "one line per digest: {out}"
    );
    // A and C get the China desk, B and E the board; D's topic had nothing.
    for rcpt in [A, B, C, E] {
        only_message(&server, rcpt);
    }
    assert!(server.received_by(D).is_empty(), "no story on D's topics");
    assert_eq!(server.received().len(), 4);

    let a = only_message(&server, A);
    let a = parse(&a);
    assert!(a.subject().unwrap().starts_with("China desk — 2 stories, "));
    assert_eq!(
        a.from().unwrap().first().unwrap().address().unwrap(),
        "desk@news.example.org"
    );
    let html = a.body_html(0).unwrap();
    assert_eq!(sections(&html), ["china"], "{html}");
    assert!(html.contains("China detains a lawyer") && html.contains("Hong Kong verdict"));
    assert!(!html.contains("Council session") && !html.contains("Football"));

    // C reads only about lawyers: one story, in the lawyers section.
    let c = only_message(&server, C);
    let c = parse(&c);
    assert!(c.subject().unwrap().starts_with("China desk — 1 story, "));
    let html = c.body_html(0).unwrap();
    assert_eq!(sections(&html), ["lawyers"], "{html}");
    assert!(html.contains("China detains a lawyer") && !html.contains("Hong Kong"));
    let text = c.body_text(0).unwrap();
    let lawyers = text.find("== lawyers ==").expect("a lawyers section");
    assert!(
        text[lawyers..].contains("* China detains a lawyer"),
        "{text}"
    );
    assert!(!text.contains("== china =="), "{text}");

    // The board: no China; B gets every section, E only the UN.
    let b = only_message(&server, B);
    let b = parse(&b);
    assert!(
        b.subject()
            .unwrap()
            .starts_with("Board overview — 2 stories, ")
    );
    assert_eq!(sections(&b.body_html(0).unwrap()), ["un", "Other"]);
    let e = only_message(&server, E);
    let e = parse(&e);
    assert_eq!(sections(&e.body_html(0).unwrap()), ["un"]);
    assert!(!e.body_html(0).unwrap().contains("Football"));

    // Each list has its own List-Id.
    assert_eq!(
        header(&a, "List-Id"),
        "China desk <china.digest.news.example.org>"
    );
    assert_eq!(
        header(&b, "List-Id"),
        "Board overview <board.digest.news.example.org>"
    );

    // Status, per digest: D is recorded as skipped, with why.
    let status = ok(&run(&ws, &["digest", "status"]));
    assert!(status.contains("== china ==") && status.contains("== board =="));
    let d = status.lines().find(|l| l.contains(D)).unwrap();
    assert!(
        d.trim_start().starts_with("skipped") && d.contains("no story on their topics"),
        "{d}"
    );
    assert!(d.contains("[climate]"), "{d}");
    let board_only = ok(&run(&ws, &["digest", "status", "--digest", "board"]));
    assert!(
        !board_only.contains(A) && board_only.contains(B),
        "{board_only}"
    );

    // Exactly once: a second send delivers nothing.
    let again = ok(&run(&ws, &["digest", "send"]));
    assert!(again.contains("nothing due"), "{again}");
    assert_eq!(server.received().len(), 4);

    // Who gets what.
    let subs = ok(&run(&ws, &["digest", "subscribers"]));
    assert!(
        subs.contains("china (China desk): 2 active, 0 unsubscribed"),
        "{subs}"
    );
    assert!(
        subs.lines().any(|l| l.contains(C) && l.contains("lawyers")),
        "{subs}"
    );
    assert!(
        subs.lines()
            .any(|l| l.contains(A) && l.contains("all sections")),
        "{subs}"
    );

    let refused = run(&ws, &["digest", "preview", "--to", C]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("several digests are configured"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let stranger = run(&ws, &["digest", "preview", "--digest", "board", "--to", A]);
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("is not a recipient"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_are_rfc_8058_and_the_archive_is_sanitised_with_valid_feeds() {
    let server = SmtpServer::start().await;
    let ws = two_digests(&server).await;
    ok(&run(&ws, &["digest", "send"]));
    let raw = only_message(&server, A);
    let raw_text = String::from_utf8_lossy(&raw).into_owned();
    let m = MessageParser::default().parse(&raw).unwrap();
    // One List-Unsubscribe-Post, exactly the RFC 8058 value; the https URL
    // first in List-Unsubscribe, then a mailto.
    assert_eq!(
        raw_text
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("list-unsubscribe-post:"))
            .count(),
        1
    );
    assert_eq!(
        header(&m, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let lu = header(&m, "List-Unsubscribe");
    let parts: Vec<&str> = lu.split(',').map(str::trim).collect();
    assert_eq!(parts.len(), 2, "{lu}");
    assert!(
        parts[0].starts_with(&format!("<{SITE}unsubscribe/")),
        "{lu}"
    );
    assert_eq!(
        parts[1], "<mailto:desk@news.example.org?subject=unsubscribe>",
        "{lu}"
    );
    // The token names neither the address in clear nor another reader's.
    let link = unsubscribe_link(&m);
    assert!(!link.contains("alice"), "{link}");
    let c = parse(&only_message(&server, C));
    assert_ne!(unsubscribe_link(&c), link);

    // "View in your browser" leads to this issue in the archive.
    let html = m.body_html(0).unwrap();
    let view = regex::Regex::new(r#"<a class="link" href="([^"]+)"[^>]*>View in your browser</a>"#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("no browser link: {html}"))[1]
        .to_string();
    let slug = cutoff().format("%Y-%m-%d-0000").to_string();
    assert_eq!(view, format!("{SITE}digests/china/{slug}.html"));
    assert!(
        m.body_text(0)
            .unwrap()
            .contains(&format!("View in your browser: {view}"))
    );

    let web = Web::start(&ws).await;
    let (status, page) = get(&web.local(&view)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        get(&web.local(&view).replace(".html", "")).await,
        (200, page.clone())
    );
    // The whole digest, sanitised, without tracking or per-reader parts.
    assert!(page.contains("China detains a lawyer") && page.contains("Hong Kong verdict"));
    let lower = page.to_lowercase();
    assert!(
        !lower.contains("<script") && !lower.contains("<img"),
        "{page}"
    );
    let on_attr = regex::Regex::new(r#"(?i)<[^>]*\son[a-z]+\s*="#).unwrap();
    assert!(!on_attr.is_match(&page), "{page}");
    assert!(!page.contains("utm_source"), "tracking parameters stripped");
    assert!(
        !page.contains("unsubscribe") && !page.contains(A) && !page.contains(C),
        "no per-reader parts: {page}"
    );

    // The index lists both digests and their issues; each feed is valid Atom.
    let (status, index) = get(&format!("{}/digests/", web.base)).await;
    assert_eq!(status, 200);
    assert!(
        index.contains("China desk") && index.contains("Board overview"),
        "{index}"
    );
    assert!(
        index.contains(&format!("href=\"china/{slug}.html\"")),
        "{index}"
    );
    for name in ["china", "board"] {
        let r = reqwest::get(format!("{}/digests/{name}.atom", web.base))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/atom+xml")
        );
        let body = r.bytes().await.unwrap();
        let entries = check_atom(&body);
        assert_eq!(entries.len(), 1, "{name}");
        assert!(
            !String::from_utf8_lossy(&body)
                .to_lowercase()
                .contains("<script")
        );
    }
    for missing in [
        "/digests/nope.atom",
        "/digests/china/1999-01-01-0000",
        "/digests/../feeds.toml",
    ] {
        assert_eq!(
            get(&format!("{}{missing}", web.base)).await.0,
            404,
            "{missing}"
        );
    }
    web.stop().await;

    // `publish` writes the same files.
    let out = ws.dir.path().join("site");
    ok(&run(&ws, &["publish", "--out", out.to_str().unwrap()]));
    let written = std::fs::read_to_string(out.join(format!("digests/china/{slug}.html"))).unwrap();
    assert_eq!(written, page);
    assert!(out.join("digests/index.html").is_file());
    check_atom(&std::fs::read(out.join("digests/board.atom")).unwrap());
}

/// Two digests to A and B sent every second (no minimum of stories).
async fn every_second(server: &SmtpServer) -> Workspace {
    let ws = Workspace::new();
    let mut extra = String::new();
    for name in ["x", "y"] {
        extra.push_str(&format!(
            "[[digests]]\nname = \"{name}\"\nschedule = \"* * * * * *\"\nmin_stories = 0\nfrom = \"{name}@news.example.org\"\nto = [\"{A}\", \"{B}\"]\n{}\n",
            smtp(server)
        ));
    }
    ws.write_config(&[], &extra);
    ws
}

/// Waits into the next second, so `* * * * * *` has a new fire time.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

fn count(server: &SmtpServer, rcpt: &str, from: &str) -> usize {
    server
        .received_by(rcpt)
        .iter()
        .filter(|r| r.from == from)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_click_post_stops_that_digest_only_and_get_or_a_bad_token_change_nothing() {
    let server = SmtpServer::start().await;
    let ws = every_second(&server).await;
    ok(&run(&ws, &["digest", "send"]));
    assert_eq!(server.received().len(), 4);
    let x = server
        .received_by(A)
        .into_iter()
        .find(|r| r.from == "x@news.example.org")
        .unwrap();
    let m = MessageParser::default().parse(&x.data).unwrap();
    let link = unsubscribe_link(&m);
    let web = Web::start(&ws).await;
    let url = web.local(&link);

    // GET shows one button and changes nothing (scanners prefetch links).
    let (status, page) = get(&url).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<form method=\"post\">") && page.contains(A),
        "{page}"
    );
    // Bad tokens: forged, truncated, another digest's name under A's signature.
    let (payload, sig) = link.rsplit_once('/').unwrap().1.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let other = b64.encode(format!("y\n{A}"));
    let bob = b64.encode(format!("x\n{B}"));
    for bad in [
        format!("{payload}.{}", &sig[..sig.len() - 2]),
        format!("{other}.{sig}"),
        format!("{bob}.{sig}"),
        "nonsense".to_string(),
    ] {
        let bad_url = format!("{}/unsubscribe/{bad}", web.base);
        assert_eq!(get(&bad_url).await.0, 404, "{bad}");
        assert_eq!(
            post(&bad_url, "List-Unsubscribe=One-Click").await.0,
            404,
            "{bad}"
        );
    }
    let subs = ok(&run(&ws, &["digest", "subscribers", "--digest", "x"]));
    assert!(subs.contains("2 active, 0 unsubscribed"), "{subs}");
    next_second().await;
    ok(&run(&ws, &["digest", "send"]));
    assert_eq!(
        count(&server, A, "x@news.example.org"),
        2,
        "GET changed nothing"
    );

    // The one-click POST unsubscribes at once, from x only.
    let (status, page) = post(&url, "List-Unsubscribe=One-Click").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("will not receive"), "{page}");
    assert_eq!(
        post(&url, "List-Unsubscribe=One-Click").await.0,
        200,
        "idempotent"
    );
    let subs = ok(&run(&ws, &["digest", "subscribers", "--digest", "x"]));
    assert!(subs.contains("1 active, 1 unsubscribed"), "{subs}");
    assert!(
        subs.lines()
            .any(|l| l.contains("unsubscribed") && l.contains(A) && l.contains("one-click")),
        "{subs}"
    );
    next_second().await;
    let before = server.received().len();
    ok(&run(&ws, &["digest", "send"]));
    assert_eq!(server.received().len(), before + 3);
    assert_eq!(
        count(&server, A, "x@news.example.org"),
        2,
        "never mailed by x again"
    );
    assert_eq!(count(&server, A, "y@news.example.org"), 3, "y still comes");
    assert_eq!(count(&server, B, "x@news.example.org"), 3);

    // Resubscribing undoes it.
    let out = ok(&run(&ws, &["digest", "resubscribe", "--digest", "x", A]));
    assert!(out.contains("gets x again"), "{out}");
    next_second().await;
    ok(&run(&ws, &["digest", "send"]));
    assert_eq!(count(&server, A, "x@news.example.org"), 3);
    web.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_who_leaves_after_the_period_is_recorded_is_not_mailed_on_resume() {
    let server = SmtpServer::start().await;
    let ws = every_second(&server).await;
    // A refuses for now (a 4xx on every try): the period stays open for A.
    server.inject(crate::smtp::Fault::TempFail(A.into()));
    let out = run(&ws, &["digest", "send", "--digest", "x"]);
    assert_eq!(out.status.code(), Some(1));
    server.clear_faults();
    let config = gazette::config::Config::load(&ws.config_path()).unwrap();
    let store = open_store(&config).await.unwrap();
    store.suppress("x", A, "cli", Utc::now()).await.unwrap();
    store.close().await;
    let out = ok(&run(&ws, &["digest", "send", "--digest", "x"]));
    assert!(out.contains("1 skipped"), "{out}");
    assert_eq!(count(&server, A, "x@news.example.org"), 0);
    let status = ok(&run(&ws, &["digest", "status", "--digest", "x"]));
    let a = status.lines().find(|l| l.contains(A)).unwrap();
    assert!(a.contains("skipped") && a.contains("unsubscribed"), "{a}");
    assert!(status.contains("  done  "), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_topics_and_duplicate_names_are_errors_naming_file_and_line() {
    let ws = Workspace::new();
    std::fs::write(
        ws.dir.path().join("s.txt"),
        format!("{A} china\n{B} chna\n"),
    )
    .unwrap();
    ws.write_config(
        &[],
        &format!(
            "{TAGS}\n[[digests]]\nname = \"d\"\nfrom = \"d@news.example.org\"\nsubscribers = \"s.txt\"\n"
        ),
    );
    let out = run(&ws, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s.txt:2: topic \"chna\" is not a tag of this digest"),
        "{err}"
    );
    std::fs::write(
        ws.config_path(),
        "[[digests]]\nname = \"d\"\nfrom = \"d@x.org\"\n\n[[digests]]\nname = \"d\"\nfrom = \"e@x.org\"\n",
    )
    .unwrap();
    let out = run(&ws, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("feeds.toml:6:") && err.contains("already configured"),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_from_before_several_digests_keeps_its_ledger_under_the_name_digest() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
        let mut files: Vec<_> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
        )
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap() < "0009")
        .collect();
        files.sort();
        assert_eq!(files.len(), 8);
        for f in files {
            sqlx::raw_sql(&std::fs::read_to_string(f).unwrap())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql(
            "PRAGMA user_version = 8;
             INSERT INTO digest_periods (id, start_at, cutoff_at, stories, status, created_at)
                 VALUES (7, 1000, 2000, 3, 'done', 2001);
             INSERT INTO digest_deliveries (period_id, recipient, position, state, message_id, attempts, updated_at)
                 VALUES (7, 'a@example.org', 0, 'sent', '<m@x>', 1, 2002);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let store = gazette::store::Store::open(&gazette::config::DatabaseUrl::Sqlite(path))
        .await
        .unwrap();
    let periods = store.periods(Some("digest"), 5).await.unwrap();
    assert_eq!(periods.len(), 1);
    assert_eq!((periods[0].id, periods[0].stories), (7, 3));
    let d = store.deliveries(7).await.unwrap();
    assert_eq!(
        (d[0].recipient.as_str(), d[0].state, d[0].topics.len()),
        ("a@example.org", gazette::model::DeliveryState::Sent, 0)
    );
    let t = |s| DateTime::from_timestamp(s, 0).unwrap();
    let (same, created) = store
        .create_digest_period(t(1000), t(2000), 1, &[], t(3000))
        .await
        .unwrap();
    assert!(!created, "the old period is the single digest's");
    assert_eq!(same.id, 7);
    store.close().await;
}
