//! The email digest through the real binary, delivered to a real SMTP server
//! on loopback, under faults.

use std::process::{Command, Output, Stdio};

use chrono::{DateTime, TimeDelta, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use crate::smtp::{Fault, SmtpServer, TestCa, TlsMode, wait_for};
use crate::{Workspace, gazette};
use gazette::digest;

const A: &str = "alice@example.org";
const B: &str = "bob@example.net";
const PASSWORD_VAR: &str = "GAZETTE_TEST_SMTP_PASSWORD";

/// The cutoff of the `0 0 * * *` UTC schedule the tests use: today's midnight.
fn cutoff() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// An RSS file with `n` stories dated within the period before `cutoff()`
/// (one about China, one with hostile markup), and one story after it.
fn write_feed(ws: &Workspace, n: usize) -> String {
    let mut items = String::new();
    for i in 0..n {
        let date = (cutoff() - TimeDelta::hours(6 + 20 * i as i64)).to_rfc2822();
        let (title, body) = match i {
            0 => (
                "China detains a lawyer".to_string(),
                "&lt;p onclick=\"steal()\"&gt;A lawyer was detained in Xinjiang.&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;".to_string(),
            ),
            _ => (
                format!("Story number {i}"),
                format!("Plain story {i} about the Human Rights Council."),
            ),
        };
        items.push_str(&format!(
            "<item><title>{title}</title><link>https://example.org/story/{i}</link><guid>s{i}</guid><pubDate>{date}</pubDate><description>{body}</description></item>\n"
        ));
    }
    let late = (cutoff() + TimeDelta::minutes(1)).to_rfc2822();
    items.push_str(&format!(
        "<item><title>After the cutoff</title><link>https://example.org/late</link><guid>late</guid><pubDate>{late}</pubDate><description>Next period.</description></item>\n"
    ));
    let rss = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Watch</title><link>https://example.org/</link><description>d</description>\n{items}</channel></rss>"
    );
    let path = ws.dir.path().join("watch.xml");
    std::fs::write(&path, rss).unwrap();
    path.display().to_string()
}

/// Moves the stories' first-stored time to an hour before `cutoff()`, as if
/// polled then (all but the story dated after the cutoff, which stays "now").
async fn backdate(ws: &Workspace) {
    let db = ws.dir.path().join("gazette.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE stories SET created_at = ?1
         WHERE id NOT IN (SELECT story_id FROM items WHERE guid = 'late')",
    )
    .bind((cutoff() - TimeDelta::hours(1)).timestamp())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// A workspace with `n` stories polled and a digest to A and B over SMTP.
async fn setup(server: &SmtpServer, n: usize, digest_extra: &str) -> Workspace {
    let smtp = "host = \"127.0.0.1\"\nsecurity = \"none\"\nretry_delay = \"50ms\"";
    setup_smtp(server, n, digest_extra, smtp, None).await
}

/// As [`setup`], with `smtp` lines (host, security, retry_delay…) in
/// `[digest.smtp]`, and `ca_pem` written to `ca.pem` beside the configuration.
async fn setup_smtp(
    server: &SmtpServer,
    n: usize,
    digest_extra: &str,
    smtp: &str,
    ca_pem: Option<&str>,
) -> Workspace {
    let ws = Workspace::new();
    if let Some(pem) = ca_pem {
        std::fs::write(ws.dir.path().join("ca.pem"), pem).unwrap();
    }
    let feed = write_feed(&ws, n);
    let extra = format!(
        r#"
[[tags]]
name = "china"
keywords = ["China"]

[digest]
schedule = "0 0 * * *"
timezone = "UTC"
from = "Test Watch <digest@news.example.org>"
to = ["Alice <{A}>", "{B}"]
transport = "smtp"
unsubscribe_url = "https://news.example.org/unsubscribe?email={{email}}"
unsubscribe_mailto = "leave@news.example.org"
{digest_extra}

[digest.smtp]
port = {port}
username = "digest"
password_env = "{PASSWORD_VAR}"
timeout = "10s"
retries = 3
{smtp}
"#,
        port = server.port()
    );
    let config = ws.write_config(&[("Watch Feed", feed)], &extra);
    ws.poll(&config).await;
    backdate(&ws).await;
    ws
}

/// `gazette ARGS` with the SMTP password in the environment.
fn run(ws: &Workspace, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_gazette"))
            .arg("--config")
            .arg(ws.config_path())
            .args(args)
            .env(PASSWORD_VAR, "s3cret")
            .output()
            .unwrap()
    })
}

/// `digest send` started in the background, to be killed mid-send.
fn spawn_send(ws: &Workspace) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .args(["digest", "send"])
        .env(PASSWORD_VAR, "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status(ws: &Workspace) -> String {
    stdout(&run(ws, &["digest", "status"]))
}

/// The status line of `rcpt`.
fn status_of(status: &str, rcpt: &str) -> String {
    status
        .lines()
        .find(|l| l.contains(rcpt))
        .unwrap_or_else(|| panic!("{rcpt} missing from status:\n{status}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_recipients_get_one_correct_message_each_and_a_second_send_delivers_nothing() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 3, "").await;
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 stories; 2 sent, 0 failed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(server.received().len(), 2);
    assert_eq!(
        server.auth(),
        vec![("digest".to_string(), "s3cret".to_string()); 2],
        "AUTH with the password from the environment, on each message's connection"
    );
    let on_attr = regex::Regex::new(r#"(?i)<[^>]*\son[a-z]+\s*="#).unwrap();
    let mut ids = Vec::new();
    for rcpt in [A, B] {
        let got = server.received_by(rcpt);
        assert_eq!(got.len(), 1, "{rcpt}");
        assert_eq!(
            got[0].rcpt,
            vec![rcpt.to_string()],
            "one recipient per message"
        );
        assert_eq!(got[0].from, "digest@news.example.org");
        let raw = &got[0].data;
        let raw_text = String::from_utf8_lossy(raw);
        let subject_line = raw_text
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap();
        assert!(
            subject_line.contains("=?utf-8?"),
            "RFC 2047: {subject_line}"
        );
        let m = MessageParser::default().parse(raw).unwrap();
        let subject = m.subject().unwrap();
        assert!(subject.starts_with("Test Watch — 3 stories, "), "{subject}");
        assert!(m.date().is_some());
        let id = m.message_id().unwrap().to_string();
        assert!(id.ends_with("@news.example.org"), "{id}");
        ids.push(id);
        let to = m.to().unwrap().first().unwrap();
        assert_eq!(to.address().unwrap(), rcpt);
        assert_eq!(
            m.from().unwrap().first().unwrap().address().unwrap(),
            "digest@news.example.org"
        );
        let header = |name: &str| {
            m.header_raw(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .trim()
                .to_string()
        };
        assert_eq!(header("List-Id"), "Test Watch <digest.news.example.org>");
        let unsub = header("List-Unsubscribe");
        let encoded = rcpt.replace('@', "%40");
        assert!(
            unsub.contains(&format!(
                "<https://news.example.org/unsubscribe?email={encoded}>"
            )) && unsub.contains("<mailto:leave@news.example.org?subject=unsubscribe>"),
            "{unsub}"
        );
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        // multipart/alternative with a plain and an HTML part, in that order.
        let ct = m.content_type().unwrap();
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("alternative"))
        );
        let kinds: Vec<String> = m
            .parts
            .iter()
            .skip(1)
            .map(|p| {
                let c = p.content_type().unwrap();
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(kinds, ["text/plain", "text/html"]);
        let html = m.body_html(0).unwrap();
        let text = m.body_text(0).unwrap();
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!on_attr.is_match(&html), "{html}");
        assert!(
            !lower.contains("<link") && !lower.contains("@import"),
            "no external CSS"
        );
        assert!(html.contains("China detains a lawyer") && html.contains("Story number 2"));
        assert!(
            !html.contains("After the cutoff"),
            "a story stored after the cutoff is left for the next period"
        );
        assert!(
            html.contains(">china</td>") && html.contains(">Other</td>"),
            "{html}"
        );
        assert!(html.contains("https://news.example.org/feed.atom"));
        assert!(text.contains("* China detains a lawyer") && text.contains("Unsubscribe:"));
    }
    assert_ne!(ids[0], ids[1]);

    let again = run(&ws, &["digest", "send"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("nothing due"), "{}", stdout(&again));
    assert_eq!(
        server.received().len(),
        2,
        "the second send delivers nothing"
    );
    let st = status(&ws);
    assert!(st.contains("done  3 stories"), "{st}");
    for (rcpt, id) in [A, B].iter().zip(&ids) {
        let line = status_of(&st, rcpt);
        assert!(line.trim_start().starts_with("sent"), "{line}");
        assert!(line.contains(id.as_str()), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_failure_is_retried_and_delivered_once() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::TempFailOnce(A.into()));
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The retry is a warning at the default log level, naming the server.
    let warning = format!(
        "temporary SMTP failure from 127.0.0.1:{}: transient error (451): 4.7.1 Greylisted, try again later; retry 1 of 3 in 50ms",
        server.port()
    );
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("WARN") && l.contains(&warning)),
        "{err}"
    );
    assert_eq!(server.rcpt_count(A), 2, "451, then accepted");
    assert_eq!(server.received_by(A).len(), 1);
    assert_eq!(server.received_by(B).len(), 1);
    assert!(status_of(&status(&ws), A).trim_start().starts_with("sent"));
}

/// `[digest.smtp]` lines for a TLS server on loopback.
fn tls_smtp(security: &str, ca_file: bool) -> String {
    let ca = if ca_file { "ca_file = \"ca.pem\"" } else { "" };
    format!("host = \"127.0.0.1\"\nsecurity = \"{security}\"\nretry_delay = \"30s\"\n{ca}")
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_implicit_tls_deliver_with_auth_to_a_server_of_a_private_ca() {
    for (mode, security) in [(TlsMode::Starttls, "starttls"), (TlsMode::Implicit, "tls")] {
        let ca = TestCa::new();
        let server = SmtpServer::start_tls(mode, &ca).await;
        let ws = setup_smtp(&server, 2, "", &tls_smtp(security, true), Some(&ca.ca_pem)).await;
        let out = run(&ws, &["digest", "send"]);
        assert!(out.status.success(), "{security}: {}", stderr(&out));
        let got = server.received();
        assert_eq!(got.len(), 2, "{security}");
        assert!(
            got.iter().all(|m| m.tls),
            "{security}: every message over TLS"
        );
        assert_eq!(
            server.auth(),
            vec![("digest".to_string(), "s3cret".to_string()); 2],
            "{security}: AUTH inside TLS, once per message"
        );
    }
}

/// A certificate from a CA the machine does not trust is a failure of the
/// run, not of one message: reported at once (no 30 s retries) naming the
/// server and the cause, exit 1, the other recipient left for the next
/// send; which delivers once the CA is configured.
#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_fails_fast_naming_the_server_and_the_cause() {
    for (mode, security) in [(TlsMode::Starttls, "starttls"), (TlsMode::Implicit, "tls")] {
        let ca = TestCa::new();
        let server = SmtpServer::start_tls(mode, &ca).await;
        let ws = setup_smtp(&server, 2, "", &tls_smtp(security, false), Some(&ca.ca_pem)).await;
        let started = std::time::Instant::now();
        let out = run(&ws, &["digest", "send"]);
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{security}: {}", stderr(&out));
        assert!(
            took < std::time::Duration::from_secs(10),
            "{security}: no retry after 30 s: {took:?}"
        );
        let err = stderr(&out);
        let want = format!(
            "TLS with 127.0.0.1:{} failed: invalid peer certificate: UnknownIssuer",
            server.port()
        );
        assert!(err.contains(&want), "{security}: {err}");
        assert!(err.contains("ca_file"), "{security}: the hint: {err}");
        assert!(server.received().is_empty());
        let st = status(&ws);
        assert!(status_of(&st, A).contains("failed"), "{st}");
        assert!(status_of(&st, B).contains("queued"), "not tried: {st}");
        // Trusting the CA delivers both, once.
        let text = std::fs::read_to_string(ws.config_path()).unwrap();
        std::fs::write(
            ws.config_path(),
            text.replace(
                "retry_delay = \"30s\"",
                "retry_delay = \"30s\"\nca_file = \"ca.pem\"",
            ),
        )
        .unwrap();
        let out = run(&ws, &["digest", "send"]);
        assert!(out.status.success(), "{security}: {}", stderr(&out));
        assert_eq!(server.received_by(A).len(), 1);
        assert_eq!(server.received_by(B).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_refusal_is_recorded_and_the_other_recipient_still_gets_it() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::Reject(A.into()));
    let out = run(&ws, &["digest", "send"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "failures are reported in the exit code"
    );
    let err = stderr(&out);
    assert!(err.contains(A) && err.contains("550"), "{err}");
    assert_eq!(server.rcpt_count(A), 1, "a 5xx is not retried");
    assert!(server.received_by(A).is_empty());
    assert_eq!(server.received_by(B).len(), 1);
    let st = status(&ws);
    let a = status_of(&st, A);
    assert!(
        a.trim_start().starts_with("failed") && a.contains("550"),
        "{a}"
    );
    assert!(status_of(&st, B).trim_start().starts_with("sent"));
    // The refusal is final: a later send neither retries it nor resends B.
    let again = run(&ws, &["digest", "send"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(server.rcpt_count(A), 1);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_dropped_mid_data_is_retried_without_a_duplicate() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::DropInDataOnce(A.into()));
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.rcpt_count(A), 2, "sent again after the drop");
    assert_eq!(server.received_by(A).len(), 1);
    assert_eq!(server.received_by(B).len(), 1);
    let line = status_of(&status(&ws), A);
    assert!(line.trim_start().starts_with("sent"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_recipients_then_rerun_gives_each_recipient_exactly_one() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::Stall(B.into()));
    let mut child = spawn_send(&ws);
    let stalled = wait_for(|| server.stalled().iter().any(|s| s == B)).await;
    assert!(stalled, "the second recipient's RCPT never arrived");
    assert_eq!(server.received_by(A).len(), 1);
    // A second sender meanwhile must not take B's in-flight delivery for a crashed one.
    let concurrent = run(&ws, &["digest", "send"]);
    assert!(!concurrent.status.success());
    assert!(
        stderr(&concurrent).contains("another `gazette digest send`"),
        "{}",
        stderr(&concurrent)
    );
    assert_eq!(server.rcpt_count(B), 1);
    child.kill().unwrap(); // SIGKILL
    tokio::task::block_in_place(|| child.wait().unwrap());
    let st = status(&ws);
    assert!(status_of(&st, A).trim_start().starts_with("sent"), "{st}");
    assert!(
        status_of(&st, B).trim_start().starts_with("pending"),
        "{st}"
    );
    assert!(st.contains("open"), "{st}");

    server.clear_faults();
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 sent"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("interrupted earlier"),
        "{}",
        stdout(&out)
    );
    assert_eq!(server.received_by(A).len(), 1, "A is not sent twice");
    assert_eq!(server.received_by(B).len(), 1);
    let st = status(&ws);
    assert!(st.contains("done"), "{st}");
    assert!(status_of(&st, B).trim_start().starts_with("sent"), "{st}");
    let again = run(&ws, &["digest", "send"]);
    assert!(again.status.success());
    assert_eq!(server.received().len(), 2);
}

/// The duplicate window: a delivery is recorded `sent` as soon as the
/// server's 250 arrives, before anything else is said on the connection, so
/// a kill while the server sits on the next command loses nothing and
/// duplicates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_is_recorded_sent_before_the_next_smtp_command() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::HoldAfterData(A.into()));
    let mut child = spawn_send(&ws);
    let held = wait_for(|| server.stalled().iter().any(|s| s == A)).await;
    assert!(held, "the command after A's message never arrived");
    assert_eq!(server.received_by(A).len(), 1);
    let st = status(&ws);
    assert!(
        status_of(&st, A).trim_start().starts_with("sent"),
        "recorded while the server holds the next command: {st}"
    );
    child.kill().unwrap(); // SIGKILL
    tokio::task::block_in_place(|| child.wait().unwrap());

    server.clear_faults();
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received_by(A).len(), 1, "A is not sent twice");
    assert_eq!(server.received_by(B).len(), 1);
    assert!(status(&ws).contains("done"), "{}", status(&ws));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_period_is_recorded_as_skipped_and_not_sent() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 0, "").await;
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("recorded as skipped"),
        "{}",
        stdout(&out)
    );
    assert!(server.received().is_empty());
    assert!(
        status(&ws).contains("skipped  0 stories"),
        "{}",
        status(&ws)
    );
    let again = run(&ws, &["digest", "send"]);
    assert!(stdout(&again).contains("nothing due"), "{}", stdout(&again));
}

#[tokio::test(flavor = "multi_thread")]
async fn send_when_empty_sends_an_empty_digest() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 0, "send_when_empty = true").await;
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received().len(), 2);
    let received = server.received();
    let m = MessageParser::default().parse(&received[0].data).unwrap();
    assert!(m.subject().unwrap().contains("0 stories"));
    assert!(m.body_text(0).unwrap().contains("No new stories"));
}

#[tokio::test(flavor = "multi_thread")]
async fn file_transport_writes_eml_files_and_preview_records_nothing() {
    let ws = Workspace::new();
    let feed = write_feed(&ws, 2);
    let config = ws.write_config(
        &[("Watch Feed", feed)],
        &format!(
            "[digest]\nschedule = \"0 0 * * *\"\nfrom = \"digest@news.example.org\"\nto = [\"{A}\", \"{B}\"]\n"
        ),
    );
    ws.poll(&config).await;
    backdate(&ws).await;
    let html_path = ws.dir.path().join("preview.html");
    let out = gazette(
        &ws,
        &["digest", "preview", "--out", html_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("Story number 1"));
    let text = stdout(&gazette(&ws, &["digest", "preview", "--text"]));
    assert!(
        text.contains("2 stories") && text.contains("* Story number 1"),
        "{text}"
    );
    assert!(stdout(&gazette(&ws, &["digest", "status"])).contains("no digest recorded yet"));

    let out = gazette(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let emls: Vec<_> = std::fs::read_dir(ws.dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(emls.len(), 2);
    let mut to: Vec<String> = emls
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            let m = MessageParser::default().parse(&raw).unwrap();
            assert!(m.body_html(0).is_some() && m.body_text(0).is_some());
            m.to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_string()
        })
        .collect();
    to.sort();
    assert_eq!(to, [A, B]);
    gazette(&ws, &["digest", "send"]);
    assert_eq!(
        std::fs::read_dir(ws.dir.path().join("outbox"))
            .unwrap()
            .count(),
        2,
        "nothing written twice"
    );
}

#[test]
fn bad_subscriber_line_is_reported_with_file_and_line() {
    let ws = Workspace::new();
    std::fs::write(
        ws.dir.path().join("subscribers.txt"),
        "# readers\nc@example.org\nnot-an-address\n",
    )
    .unwrap();
    ws.write_config(
        &[],
        "[digest]\nschedule = \"0 0 * * *\"\nfrom = \"digest@news.example.org\"\nsubscribers = \"subscribers.txt\"\nsend_when_empty = true\n",
    );
    for cmd in [&["digest", "send"][..], &["check"]] {
        let out = gazette(&ws, cmd);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("subscribers.txt:3: \"not-an-address\" is not an email address"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_delivery_is_claimed_by_one_sender_only_and_periods_are_recorded_once() {
    let ws = Workspace::new();
    let config = ws.write_config(&[], "");
    let store = crate::open_store(&config).await.unwrap();
    let rows = vec![(A.to_string(), "<m1@x.org>".to_string())];
    let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
    let (p, created) = store
        .create_digest_period(t(100), t(200), 3, &rows, t(300))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = store
        .create_digest_period(t(150), t(200), 9, &rows, t(300))
        .await
        .unwrap();
    assert!(!created, "the same cutoff is one period");
    assert_eq!(
        (again.id, again.start.timestamp(), again.stories),
        (p.id, 100, 3)
    );
    let seen = store.deliveries(p.id).await.unwrap().remove(0);
    assert_eq!(seen.message_id, "<m1@x.org>");
    // Two senders read the same queued row: only one may send it.
    assert!(store.claim_delivery(&seen, t(400)).await.unwrap());
    assert!(!store.claim_delivery(&seen, t(400)).await.unwrap());
    let now = store.deliveries(p.id).await.unwrap().remove(0);
    assert_eq!(
        (now.state, now.attempts),
        (gazette::model::DeliveryState::Pending, 1)
    );
    store.close().await;
}

#[tokio::test]
async fn a_story_fetched_after_its_period_goes_in_the_next_and_old_archives_stay_out() {
    let ws = Workspace::new();
    let recent = (Utc::now() - TimeDelta::days(2)).to_rfc2822();
    let archive = (Utc::now() - TimeDelta::days(40)).to_rfc2822();
    std::fs::write(
        ws.dir.path().join("f.xml"),
        format!(
            "<rss version=\"2.0\"><channel><title>F</title><link>https://example.org/</link><description>d</description>\
             <item><title>Published two days ago</title><link>https://example.org/1</link><pubDate>{recent}</pubDate></item>\
             <item><title>From the archive</title><link>https://example.org/2</link><pubDate>{archive}</pubDate></item>\
             </channel></rss>"
        ),
    )
    .unwrap();
    let config = ws.write_config(&[("F", "f.xml".to_string())], "");
    ws.poll(&config).await;
    let store = crate::open_store(&config).await.unwrap();
    let now = Utc::now();
    // Published inside this period, but stored only after its cutoff.
    let before = digest::Period {
        start: now - TimeDelta::days(3),
        cutoff: now - TimeDelta::hours(1),
    };
    assert!(digest::stories(&store, before).await.unwrap().is_empty());
    let next = digest::Period {
        start: before.cutoff,
        cutoff: now + TimeDelta::hours(1),
    };
    let titles: Vec<String> = digest::stories(&store, next)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.title)
        .collect();
    assert_eq!(titles, ["Published two days ago"]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_shows_the_digest_building_up_when_the_due_one_is_empty() {
    let server = SmtpServer::start().await;
    let ws = Workspace::new();
    let feed = write_feed(&ws, 2);
    let config = ws.write_config(
        &[("Watch Feed", feed)],
        &format!(
            "[digest]\nschedule = \"0 0 * * *\"\nfrom = \"d@news.example.org\"\nto = [\"{A}\"]\ntransport = \"smtp\"\n[digest.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
            server.port()
        ),
    );
    // Polled now, after today's cutoff: the due period is empty.
    ws.poll(&config).await;
    let text = stdout(&run(&ws, &["digest", "preview", "--text"]));
    assert!(
        text.contains("3 stories") && text.contains("* After the cutoff"),
        "{text}"
    );
    let out = run(&ws, &["digest", "send"]);
    assert!(
        stdout(&out).contains("recorded as skipped"),
        "{}",
        stdout(&out)
    );
    assert!(server.received().is_empty());
    let after = stdout(&run(&ws, &["digest", "preview", "--text"]));
    assert_eq!(after, text, "the stories wait for the next period");
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_failure_beyond_the_retries_is_sent_by_the_next_send() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::TempFail(A.into()));
    let out = run(&ws, &["digest", "send"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("will retry on the next send"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.rcpt_count(A), 4, "the first try and 3 retries");
    let st = status(&ws);
    assert!(st.contains("open"), "{st}");
    assert!(status_of(&st, A).contains("451"), "{st}");
    server.clear_faults();
    let out = run(&ws, &["digest", "send"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.received_by(A).len(), 1);
    assert_eq!(server.received_by(B).len(), 1, "B is not sent again");
    assert!(status(&ws).contains("done"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_that_keeps_failing_temporarily_is_given_up_after_five_sends() {
    let server = SmtpServer::start().await;
    let ws = setup(&server, 2, "").await;
    server.inject(Fault::TempFail(A.into()));
    for _ in 0..5 {
        assert_eq!(run(&ws, &["digest", "send"]).status.code(), Some(1));
    }
    let st = status(&ws);
    assert!(st.contains("done"), "{st}");
    let a = status_of(&st, A);
    assert!(
        a.contains("failed") && a.contains("gave up after 5 sends"),
        "{a}"
    );
    let seen = server.rcpt_count(A);
    assert!(run(&ws, &["digest", "send"]).status.success());
    assert_eq!(server.rcpt_count(A), seen, "no sixth try");
    assert_eq!(server.received_by(B).len(), 1);
}
