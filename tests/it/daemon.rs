//! `gazette run` as a subprocess against a loopback feed server and a
//! loopback SMTP server: polling on intervals, republishing, serving, the
//! digest on its schedule, live reloads, SIGTERM and kill -9.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{FeedServer, Route};
use crate::smtp::{Fault, SmtpServer, wait_for};
use crate::{Workspace, gazette};

const A: &str = "alice@example.org";
const B: &str = "bob@example.net";
const PASSWORD_VAR: &str = "GAZETTE_TEST_SMTP_PASSWORD";

/// A running `gazette run`, killed on drop; its log goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal without waiting for anything.
    fn signal_only(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends a signal (`-TERM`, `-KILL`) and waits up to 10 s for the exit.
    async fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(code) = self.child.try_wait().unwrap() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "gazette run did not exit within 10 s of {sig}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gazette run` on the workspace and waits for its HTTP server.
async fn start(ws: &Workspace, port: u16, run: u32) -> Daemon {
    let log = ws.dir.path().join(format!("run-{run}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .arg("run")
        .env(PASSWORD_VAR, "s3cret")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        log,
        base: format!("http://127.0.0.1:{port}"),
    };
    let up = wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    assert!(up, "gazette run did not start:\n{}", d.log());
    d
}

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Waits up to `secs` for `path` on the daemon to contain `needle`.
async fn wait_for_text(d: &Daemon, path: &str, needle: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if get(&format!("{}{path}", d.base)).await.1.contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A feed server whose feed `a` carries one story.
async fn one_story_server() -> FeedServer {
    let feeds = FeedServer::start().await;
    feeds.set(
        "a",
        Route::feed(
            rss(&[("a1", "Council adopts text on defenders")]),
            "application/rss+xml",
        ),
    );
    feeds
}

/// An RSS document of (guid, title) items without dates.
fn rss(items: &[(&str, &str)]) -> String {
    let undated: Vec<(&str, &str, Option<chrono::DateTime<chrono::Utc>>)> =
        items.iter().map(|(g, t)| (*g, *t, None)).collect();
    rss_document(&undated)
}

/// An RSS document of (guid, title, date) items.
fn rss_document(items: &[(&str, &str, Option<chrono::DateTime<chrono::Utc>>)]) -> String {
    let mut s = String::from(
        "<rss version=\"2.0\"><channel><title>Watch</title><link>https://watch.example/</link>",
    );
    for (guid, title, date) in items {
        let date = date
            .map(|d| format!("<pubDate>{}</pubDate>", d.to_rfc2822()))
            .unwrap_or_default();
        s.push_str(&format!(
            "<item><guid>{guid}</guid><title>{title}</title><link>https://watch.example/{guid}</link>{date}<description>{title}, in detail.</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

fn base_config(port: u16, smtp: Option<u16>, interval: &str) -> String {
    let mut c = format!(
        "min_interval = \"1s\"\npoll_interval = \"{interval}\"\nshutdown_timeout = \"5s\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n"
    );
    if let Some(smtp) = smtp {
        c.push_str(&format!(
            r#"
[digest]
schedule = "*/10 * * * * *"
timezone = "UTC"
from = "Test Watch <digest@news.example.org>"
to = ["{A}", "{B}"]
transport = "smtp"

[digest.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
username = "digest"
password_env = "{PASSWORD_VAR}"
timeout = "30s"
retries = 2
retry_delay = "50ms"
"#
        ));
    }
    c
}

fn add_feed(ws: &Workspace, name: &str, url: &str) {
    let text = std::fs::read_to_string(ws.config_path()).unwrap()
        + &format!("\n[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\n");
    std::fs::write(ws.config_path(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn run_polls_on_intervals_republishes_reloads_and_stops_on_sigterm() {
    let feeds = one_story_server().await;
    feeds.set(
        "b",
        Route::feed(
            rss(&[("b1", "Lawyers detained in Hong Kong")]),
            "application/rss+xml",
        ),
    );
    let port = free_port();
    let ws = Workspace::new();
    ws.write_config(&[("A", feeds.url("a"))], &base_config(port, None, "1s"));
    let mut d = start(&ws, port, 1).await;

    assert!(
        wait_for_text(&d, "/feed.atom", "Council adopts text on defenders", 15).await,
        "{}",
        d.log()
    );
    // A story added on the server shows within the feed's interval.
    feeds.set(
        "a",
        Route::feed(
            rss(&[
                ("a2", "Experts urge release of activists"),
                ("a1", "Council adopts text on defenders"),
            ]),
            "application/rss+xml",
        ),
    );
    assert!(
        wait_for_text(&d, "/feed.atom", "Experts urge release of activists", 10).await,
        "{}",
        d.log()
    );
    // The files are republished too.
    let published = ws.dir.path().join("public/feed.atom");
    let ok = wait_for(|| {
        std::fs::read_to_string(&published)
            .is_ok_and(|t| t.contains("Experts urge release of activists"))
    })
    .await;
    assert!(ok, "public/feed.atom was not republished");

    // A feed added to feeds.toml is polled without a restart, and a new tag
    // rule re-tags the stored stories.
    add_feed(&ws, "B", &feeds.url("b"));
    let text = std::fs::read_to_string(ws.config_path()).unwrap()
        + "\n[[tags]]\nname = \"defenders\"\nkeywords = [\"defenders\"]\n";
    std::fs::write(ws.config_path(), text).unwrap();
    assert!(
        wait_for_text(&d, "/feed.atom", "Lawyers detained in Hong Kong", 15).await,
        "{}",
        d.log()
    );
    assert!(wait_for_text(&d, "/sources.opml", "text=\"B\"", 5).await);
    assert!(
        wait_for_text(
            &d,
            "/tags/defenders.atom",
            "Council adopts text on defenders",
            5
        )
        .await,
        "{}",
        d.log()
    );

    // An invalid edit is rejected with file:line:col and the old configuration keeps running.
    let good = std::fs::read_to_string(ws.config_path()).unwrap();
    std::fs::write(
        ws.config_path(),
        format!(
            "{good}\n[[feeds]]\nname = \"C\"\nurl = \"{}\"\ninterval = \"soon\"\n",
            feeds.url("c")
        ),
    )
    .unwrap();
    let config_name = ws.config_path().display().to_string();
    let rejected = wait_for(|| d.log().contains(&format!("{config_name}:"))).await;
    assert!(rejected, "no file:line:col error in the log:\n{}", d.log());
    let line = d
        .log()
        .lines()
        .find(|l| l.contains(&format!("{config_name}:")))
        .unwrap()
        .to_string();
    assert!(line.contains("invalid duration \"soon\""), "{line}");
    feeds.set(
        "b",
        Route::feed(
            rss(&[
                ("b2", "Tribunal hears appeal of jailed journalist"),
                ("b1", "Lawyers detained in Hong Kong"),
            ]),
            "application/rss+xml",
        ),
    );
    assert!(
        wait_for_text(
            &d,
            "/feed.atom",
            "Tribunal hears appeal of jailed journalist",
            10
        )
        .await,
        "{}",
        d.log()
    );
    assert!(
        feeds.requests("c").is_empty(),
        "the rejected feed was never polled"
    );

    // Health and metrics.
    let (status, body) = get(&format!("{}/healthz", d.base)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, metrics) = get(&format!("{}/metrics", d.base)).await;
    assert_eq!(status, 200);
    for needle in [
        "gazette_fetches_total{outcome=\"ok\"}",
        "gazette_fetch_duration_seconds_count ",
        "gazette_stories 4",
        "gazette_feed_last_success_timestamp_seconds{feed=\"A\"}",
        "gazette_feed_last_success_timestamp_seconds{feed=\"B\"}",
        "gazette_scheduler_heartbeat_timestamp_seconds ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }

    // Polled on its interval: about once a second, not in a tight loop.
    let polls = feeds.requests("a").len();
    assert!(polls >= 3, "{polls} polls");

    // A feed removed (and SIGHUP) stops being polled; its stories stay.
    let without_a = good.replace(
        &format!("\n[[feeds]]\nname = \"A\"\nurl = \"{}\"\n", feeds.url("a")),
        "",
    );
    assert_ne!(without_a, good);
    std::fs::write(ws.config_path(), without_a).unwrap();
    d.signal_only("-HUP");
    let reloaded = wait_for(|| d.log().contains("removed from the configuration")).await;
    assert!(reloaded, "{}", d.log());
    assert!(d.log().contains("SIGHUP: reloading"), "{}", d.log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polls = feeds.requests("a").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        feeds.requests("a").len(),
        polls,
        "a removed feed is not polled"
    );
    assert!(
        get(&format!("{}/feed.atom", d.base))
            .await
            .1
            .contains("Experts urge release of activists")
    );

    let code = d.signal("-TERM").await;
    assert!(code.success(), "{code:?}\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_sends_the_digest_at_its_cron_time_once_per_recipient() {
    let smtp = SmtpServer::start().await;
    let feeds = one_story_server().await;
    let port = free_port();
    let ws = Workspace::new();
    ws.write_config(
        &[("A", feeds.url("a"))],
        &base_config(port, Some(smtp.port()), "1s"),
    );
    let mut d = start(&ws, port, 1).await;
    // The schedule fires every 10 s: the period holding the story goes out at the next one.
    let both = wait_for(|| smtp.received_by(A).len() == 1 && smtp.received_by(B).len() == 1).await;
    assert!(both, "no digest within 20 s:\n{}", d.log());
    let text = String::from_utf8_lossy(&smtp.received_by(A)[0].data).into_owned();
    assert!(text.contains("Council adopts text on defenders"), "{text}");
    // Later fire times find nothing new: skipped, not sent again.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(smtp.received_by(A).len(), 1);
    assert_eq!(smtp.received_by(B).len(), 1);
    let (_, metrics) = get(&format!("{}/metrics", d.base)).await;
    assert!(
        metrics.contains("gazette_digest_deliveries_total{outcome=\"sent\"} 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("gazette_digest_last_sent_timestamp_seconds 0\n"),
        "{metrics}"
    );
    assert!(d.signal("-TERM").await.success());
}

/// The Message-ID of each message, in the order received.
fn message_ids(messages: &[crate::smtp::Received]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.data);
            text.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

/// Titles of every stored story (excluded ones too), as `gazette items` lists them.
fn stored_titles(ws: &Workspace) -> Vec<String> {
    let out = gazette(ws, &["items", "--json", "--all"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["title"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_poll_and_mid_digest_then_restart_loses_and_repeats_nothing() {
    let smtp = SmtpServer::start().await;
    let feeds = FeedServer::start().await;
    let many: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("a{i}"),
                format!("Report number {i} on arbitrary detention"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(g, t)| (g.as_str(), t.as_str())).collect();
    feeds.set("a", Route::feed(rss(&refs), "application/rss+xml"));
    // B's feed trickles in slowly: the kill lands while it is being fetched.
    let mut slow = Route::feed(
        rss(&[("b1", "Slow feed story about reprisals")]),
        "application/rss+xml",
    );
    slow.trickle = Some(Duration::from_millis(100));
    feeds.set("b", slow);
    let port = free_port();
    let ws = Workspace::new();
    ws.write_config(
        &[("A", feeds.url("a")), ("B", feeds.url("b"))],
        &base_config(port, Some(smtp.port()), "1h"),
    );
    smtp.inject(Fault::Stall(B.into()));
    let mut d = start(&ws, port, 1).await;
    assert!(
        wait_for_text(&d, "/feed.atom", "Report number 29", 15).await,
        "{}",
        d.log()
    );
    // The digest goes to A, and hangs on B's RCPT TO; B's feed is still trickling.
    let stalled =
        wait_for(|| smtp.received_by(A).len() == 1 && smtp.stalled().iter().any(|s| s == B)).await;
    assert!(stalled, "the digest did not reach B's turn:\n{}", d.log());
    // B's fetch started (it takes 25 s to trickle in).
    let b_started = wait_for(|| !feeds.requests("b").is_empty()).await;
    assert!(b_started, "{}", d.log());
    let code = d.signal("-KILL").await;
    assert!(!code.success());
    drop(d);

    // Everything A's feed had is stored, once.
    let titles = stored_titles(&ws);
    for (_, t) in &many {
        assert_eq!(
            titles.iter().filter(|x| *x == t).count(),
            1,
            "{t}: {titles:?}"
        );
    }

    // Restart: B is fetched again (its fetch never completed), A is not
    // (fetched a moment ago, interval 1 h); B's digest is resumed.
    smtp.clear_faults();
    let a_polls = feeds.requests("a").len();
    let mut fast = Route::feed(
        rss(&[("b1", "Slow feed story about reprisals")]),
        "application/rss+xml",
    );
    fast.trickle = None;
    feeds.set("b", fast);
    let d = start(&ws, port, 2).await;
    assert!(
        wait_for_text(&d, "/feed.atom", "Slow feed story about reprisals", 15).await,
        "{}",
        d.log()
    );
    let got_b = wait_for(|| smtp.received_by(B).len() == 1).await;
    assert!(
        got_b,
        "B never got the digest after the restart:\n{}",
        d.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        feeds.requests("a").len(),
        a_polls,
        "no burst: A was not due"
    );
    // Each period goes to each recipient once (B's story, fetched after the
    // restart, may make a later period that goes to both).
    for who in [A, B] {
        let ids = message_ids(&smtp.received_by(who));
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{who} got a period twice: {ids:?}");
        assert!(ids.iter().all(|id| id.starts_with("<digest.")), "{ids:?}");
    }
    drop(d);
    let titles = stored_titles(&ws);
    assert_eq!(titles.len(), 31, "{titles:?}");
    let mut unique = titles.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), titles.len(), "no duplicate story");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_old_stories_but_not_those_of_an_unsent_digest() {
    let now = chrono::Utc::now();
    let feeds = FeedServer::start().await;
    feeds.set(
        "a",
        Route::feed(
            rss_document(&[
                (
                    "old",
                    "Archive story from last year",
                    Some(now - chrono::Duration::days(400)),
                ),
                (
                    "new",
                    "Fresh story from this week",
                    Some(now - chrono::Duration::days(2)),
                ),
            ]),
            "application/rss+xml",
        ),
    );
    for with_digest in [false, true] {
        let port = free_port();
        let ws = Workspace::new();
        let digest = if with_digest {
            "\n[digest]\nschedule = \"0 8 * * Mon\"\ntimezone = \"UTC\"\nfrom = \"digest@news.example.org\"\nto = [\"team@example.org\"]\n"
        } else {
            ""
        };
        // Stored before a retention was set.
        let config = ws.write_config(
            &[("A", feeds.url("a"))],
            &format!("poll_interval = \"1h\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{digest}"),
        );
        ws.poll(&config).await;
        assert_eq!(stored_titles(&ws).len(), 2);
        let text = std::fs::read_to_string(ws.config_path()).unwrap();
        std::fs::write(ws.config_path(), format!("retention = \"180d\"\n{text}")).unwrap();
        let mut d = start(&ws, port, 1).await;
        let pruned = wait_for(|| d.log().contains("pruned stories") || with_digest).await;
        assert!(pruned, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(d.signal("-TERM").await.success());
        let titles = stored_titles(&ws);
        if with_digest {
            // Stored minutes ago: it belongs to the digest period now building up.
            assert_eq!(titles.len(), 2, "{titles:?}");
        } else {
            assert_eq!(titles, ["Fresh story from this week"]);
            // A story past the retention is not stored again by the next poll.
            assert!(gazette(&ws, &["poll", "--force"]).status.success());
            assert_eq!(stored_titles(&ws), ["Fresh story from this week"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_notifies_the_websub_hub_of_changed_feeds() {
    let feeds = one_story_server().await;
    let port = free_port();
    let ws = Workspace::new();
    ws.write_config(
        &[("A", feeds.url("a"))],
        &format!(
            "{}\n[publish]\nhub = \"{}\"\n",
            base_config(port, None, "1h"),
            feeds.url("hub")
        ),
    );
    feeds.set("hub", Route::status(202, vec![]));
    let d = start(&ws, port, 1).await;
    assert!(wait_for_text(&d, "/feed.atom", "Council adopts text on defenders", 10).await);
    let pinged = wait_for(|| !feeds.requests("hub").is_empty()).await;
    assert!(pinged, "the hub was never notified:\n{}", d.log());
    let ping = &feeds.requests("hub")[0];
    assert_eq!(
        ping.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    // Pings follow changes only: once the story is published, they stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pings = feeds.requests("hub").len();
    assert!(
        pings <= 6,
        "{pings} pings: feed.atom, feed.rss and feed.json, twice at most"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        feeds.requests("hub").len(),
        pings,
        "no ping without a change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_due_while_the_daemon_was_down_is_sent_on_start_once() {
    let smtp = SmtpServer::start().await;
    let feeds = one_story_server().await;
    let port = free_port();
    let ws = Workspace::new();
    // Daily at midnight UTC; the story was stored before last midnight,
    // while no daemon ran.
    let config_text =
        base_config(port, Some(smtp.port()), "1h").replace("*/10 * * * * *", "0 0 * * *");
    let config = ws.write_config(&[("A", feeds.url("a"))], &config_text);
    ws.poll(&config).await;
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let db = ws.dir.path().join("gazette.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE stories SET created_at = ?1")
        .bind((midnight - chrono::Duration::hours(1)).timestamp())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let d = start(&ws, port, 1).await;
    let sent = wait_for(|| smtp.received_by(A).len() == 1 && smtp.received_by(B).len() == 1).await;
    assert!(
        sent,
        "the missed digest was not sent on start:\n{}",
        d.log()
    );
    // Killed once the deliveries are recorded (a kill between the server's
    // reply and the record is the crash window the digest tests cover).
    assert!(
        wait_for(|| d.log().contains("digest sent")).await,
        "{}",
        d.log()
    );
    drop(d);
    // Started again: that period is recorded as sent, nothing goes out twice.
    let d = start(&ws, port, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received_by(A).len(), 1, "{}", d.log());
    assert_eq!(smtp.received_by(B).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_digest_schedule_takes_effect_without_a_restart() {
    let smtp = SmtpServer::start().await;
    let feeds = one_story_server().await;
    let port = free_port();
    let ws = Workspace::new();
    // Once a year: nothing would go out during the test.
    let yearly = base_config(port, Some(smtp.port()), "1h").replace("*/10 * * * * *", "0 0 1 1 *");
    ws.write_config(&[("A", feeds.url("a"))], &yearly);
    let d = start(&ws, port, 1).await;
    assert!(wait_for_text(&d, "/feed.atom", "Council adopts text on defenders", 10).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(smtp.received().is_empty());
    // Every 5 seconds now: the next fire time sends the story.
    let text = std::fs::read_to_string(ws.config_path())
        .unwrap()
        .replace("0 0 1 1 *", "*/5 * * * * *");
    std::fs::write(ws.config_path(), text).unwrap();
    let sent = wait_for(|| smtp.received_by(A).len() == 1 && smtp.received_by(B).len() == 1).await;
    assert!(sent, "the new schedule never fired:\n{}", d.log());
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
}

/// The whole daemon in-process, through the same builder as `gazette run`,
/// on port 0: it polls the feed, serves the story, and stops when asked.
#[tokio::test]
async fn the_application_runs_in_process_on_port_zero_and_stops_when_asked() {
    let feeds = one_story_server().await;
    let ws = Workspace::new();
    let config = ws.write_config(&[("A", feeds.url("a"))], "");
    let app = gazette::app::Application::build(config.clone())
        .await
        .unwrap()
        .listen(Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let port = app.port().unwrap();
    assert_ne!(port, 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(
        async {
            let _ = stopped.await;
        },
        std::sync::Arc::new(tokio::sync::Notify::new()),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut atom = String::new();
    while Instant::now() < deadline && !atom.contains("Council adopts text on defenders") {
        tokio::time::sleep(Duration::from_millis(100)).await;
        atom = get(&format!("{base}/feed.atom")).await.1;
    }
    assert!(atom.contains("Council adopts text on defenders"), "{atom}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops within the shutdown timeout");
    ended.unwrap().unwrap();
    assert_eq!(
        get(&format!("{base}/healthz")).await.0,
        0,
        "no longer listening"
    );
    assert_eq!(ws.items(&config).await.len(), 1);
}
