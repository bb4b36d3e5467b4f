//! Several gazette instances on one real PostgreSQL database (the server
//! `GAZETTE_TEST_POSTGRES_URL` names; without it these tests do nothing):
//! shared polling with leases, takeover after a kill, the same documents
//! on every instance, race-free filing, the digest sent once per recipient,
//! health while the database is away, and every command on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gazette::app::Application;
use gazette::config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::contract::PgDb;
use crate::server::{FeedServer, Route};
use crate::smtp::{SmtpServer, wait_for};

/// An RSS document of (guid, title) items without dates.
fn rss(items: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "<rss version=\"2.0\"><channel><title>Watch</title><link>https://watch.example/</link>",
    );
    for (guid, title) in items {
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>\
             <link>https://watch.example/{guid}</link><description>{title}: the full text of the statement.</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

/// Writes `feeds.toml` number `n` in `dir` for an instance on `database`.
fn write_config(
    dir: &Path,
    n: usize,
    database: &str,
    feeds: &[(String, String)],
    extra: &str,
) -> PathBuf {
    let mut text = format!(
        "title = \"PG Watch\"\nsite_url = \"https://news.example.org/\"\ndatabase = \"{database}\"\n\
         min_interval = \"1s\"\nshutdown_timeout = \"5s\"\n{extra}\n[publish]\ndir = \"public-{n}\"\n"
    );
    for (name, url) in feeds {
        text.push_str(&format!(
            "\n[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\n"
        ));
    }
    let path = dir.join(format!("feeds-{n}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// One `gazette run` in this process, on a port of its own.
struct Instance {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    async fn start(config: &Path) -> Instance {
        let config = Config::load(config).unwrap();
        let app = Application::build(config)
            .await
            .unwrap()
            .listen(Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(
            async {
                let _ = stopped.await;
            },
            Arc::new(Notify::new()),
        ));
        Instance {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        match reqwest::get(format!("{}{path}", self.base)).await {
            Ok(r) => {
                let etag = r
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                (
                    r.status().as_u16(),
                    r.text().await.unwrap_or_default(),
                    etag,
                )
            }
            Err(_) => (0, String::new(), None),
        }
    }

    /// A counter or gauge from `/metrics` (summed over labels).
    async fn metric(&self, name: &str) -> f64 {
        let (_, text, _) = self.get("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let ended = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        ended.expect("stops").unwrap().unwrap();
    }
}

/// Waits up to `secs` for `cond` to hold.
async fn eventually<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Entry ids of an Atom document, in order.
fn entry_ids(atom: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(atom).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("entry"))
        .filter_map(|e| {
            e.children()
                .find(|c| c.has_tag_name("id"))
                .and_then(|c| c.text())
                .map(String::from)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_the_feeds_and_fetch_each_once_per_interval() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let server = FeedServer::start().await;
    let feeds: Vec<(String, String)> = (0..8)
        .map(|i| {
            let path = format!("f{i}");
            server.set(
                &path,
                Route::feed(
                    rss(&[(&format!("g{i}"), &format!("Statement number {i}"))]),
                    "application/rss+xml",
                ),
            );
            (format!("Feed {i}"), server.url(&path))
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for n in 0..3 {
        let path = write_config(dir.path(), n, db.url(), &feeds, "poll_interval = \"3s\"");
        instances.push(Instance::start(&path).await);
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(14)).await;
    let mut fetches_by_instance = Vec::new();
    for i in &instances {
        fetches_by_instance.push(i.metric("gazette_fetches_total").await);
    }
    for i in instances {
        i.stop().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for i in 0..8 {
        let seen = server.requests(&format!("f{i}"));
        let times: Vec<Instant> = seen.iter().map(|s| s.at).collect();
        // Every feed is polled about every 3 s by some instance ...
        assert!(
            times.len() >= 3 && times.len() as f64 <= elapsed / 2.5 + 1.0,
            "feed {i}: {} fetches in {elapsed:.1} s",
            times.len()
        );
        // ... and never twice in one interval (±10% jitter: 2.7 s at least).
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(2400),
                "feed {i} fetched twice {gap:?} apart"
            );
        }
    }
    let busy = fetches_by_instance.iter().filter(|n| **n > 0.0).count();
    assert!(busy >= 2, "the work is shared: {fetches_by_instance:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_story_stored_by_one_instance_is_served_by_all_with_the_same_ids_and_etag() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let server = FeedServer::start().await;
    server.set(
        "a",
        Route::feed(
            rss(&[("a1", "Council adopts text on defenders")]),
            "application/rss+xml",
        ),
    );
    let feeds = vec![("A".to_string(), server.url("a"))];
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for n in 0..3 {
        let path = write_config(dir.path(), n, db.url(), &feeds, "poll_interval = \"1h\"");
        instances.push(Instance::start(&path).await);
    }
    for i in &instances {
        let shown = eventually(30, || async {
            i.get("/feed.atom")
                .await
                .1
                .contains("Council adopts text on defenders")
        })
        .await;
        assert!(shown, "not on {}", i.base);
    }
    assert_eq!(
        server.requests("a").len(),
        1,
        "fetched once, by one instance"
    );
    // A second story, then every instance serves the same bytes.
    server.set(
        "a",
        Route::feed(
            rss(&[
                ("a2", "Experts urge release of lawyer"),
                ("a1", "Council adopts text on defenders"),
            ]),
            "application/rss+xml",
        ),
    );
    let poller = write_config(dir.path(), 9, db.url(), &feeds, "");
    let app = Application::build(Config::load(&poller).unwrap())
        .await
        .unwrap();
    app.poll(gazette::pipeline::Waits::Ignore, &|_| {})
        .await
        .unwrap();
    app.close().await;
    let mut seen = Vec::new();
    for i in &instances {
        let shown = eventually(30, || async {
            i.get("/feed.atom")
                .await
                .1
                .contains("Experts urge release of lawyer")
        })
        .await;
        assert!(shown, "not on {}", i.base);
        let (_, body, etag) = i.get("/feed.atom").await;
        seen.push((body, etag));
    }
    let ids = entry_ids(&seen[0].0);
    assert_eq!(ids.len(), 2);
    for (body, etag) in &seen {
        assert_eq!(entry_ids(body), ids, "the same entry ids everywhere");
        assert_eq!(etag, &seen[0].1, "equal content, equal ETag");
    }
    for i in instances {
        i.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_handles_storing_the_same_story_at_the_same_moment_make_one_story() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let url = gazette::config::DatabaseUrl::Postgres(db.url().to_string());
    let a = gazette::store::Store::open(&url).await.unwrap();
    let b = gazette::store::Store::open(&url).await.unwrap();
    let configs: Vec<gazette::config::FeedConfig> = ["one", "two"]
        .iter()
        .map(|n| gazette::config::FeedConfig {
            name: n.to_string(),
            source: gazette::config::FeedSource::Http(
                format!("https://{n}.example/feed").parse().unwrap(),
            ),
            tags: vec![],
            interval: Duration::from_secs(3600),
            priority: 0,
        })
        .collect();
    let rows = a.sync_feeds(&configs).await.unwrap();
    let now = chrono::Utc::now();
    let item = |feed: &str, round: usize, same_link: bool| {
        let title =
            format!("Round {round}: the court sentenced the lawyer to {round} years in prison");
        let text =
            format!("{title}. Diplomats were turned away from the hearing in round {round}.");
        let link = if same_link {
            format!("https://news.example/round-{round}")
        } else {
            format!("https://{feed}.example/round-{round}")
        };
        gazette::model::Item {
            key: format!("{feed}-{round}"),
            raw_hash: round as i64,
            guid: None,
            canonical_link: gazette::dedup::canonical_link(&link, &[]),
            link: Some(link),
            signature: gazette::dedup::signature(&title, &text),
            title,
            summary_html: None,
            content_html: None,
            excerpt: text,
            authors: vec![],
            categories: vec![],
            enclosures: vec![],
            published: Some(now),
            updated: None,
            tags: vec![],
            excluded: false,
        }
    };
    let doc = |feed_id: i64, it: gazette::model::Item| gazette::store::Document {
        feed_id,
        listed: vec![it.key.clone()],
        items: vec![gazette::store::Prepared::new(it)],
        now,
        policy: gazette::filing::Policy {
            window_secs: 7 * 86_400,
            threshold: 0.5,
        },
    };
    for round in 0..12 {
        // Even rounds share a link, odd rounds are near duplicates.
        let same_link = round % 2 == 0;
        let (x, y) = tokio::join!(
            a.file_document(doc(rows[0].id, item("one", round, same_link))),
            b.file_document(doc(rows[1].id, item("two", round, same_link)))
        );
        assert_eq!(x.unwrap().new + y.unwrap().new, 2);
    }
    let stories = a
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(stories.len(), 12, "one story per round");
    assert!(stories.iter().all(|s| s.sources.len() == 2));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_recipients_get_each_digest_once_with_three_instances_racing() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let smtp = SmtpServer::start().await;
    let server = FeedServer::start().await;
    server.set(
        "a",
        Route::feed(
            rss(&[("a1", "Council adopts text on defenders")]),
            "application/rss+xml",
        ),
    );
    let recipients: Vec<String> = (0..20).map(|i| format!("reader{i}@example.org")).collect();
    let to: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
    let digest = format!(
        "poll_interval = \"1h\"\n[digest]\nschedule = \"*/10 * * * * *\"\nfrom = \"Watch <digest@news.example.org>\"\n\
         to = [{}]\ntransport = \"smtp\"\n[digest.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nretry_delay = \"50ms\"\n",
        to.join(", "),
        smtp.port()
    );
    let feeds = vec![("A".to_string(), server.url("a"))];
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for n in 0..3 {
        let path = write_config(dir.path(), n, db.url(), &feeds, &digest);
        instances.push(Instance::start(&path).await);
    }
    // The story is stored at once; a fire time within 10 s puts it in a period.
    let all = wait_for(|| recipients.iter().all(|r| !smtp.received_by(r).is_empty())).await;
    assert!(all, "not everyone got the digest");
    // Two more fire times: nothing new, nothing sent again.
    tokio::time::sleep(Duration::from_secs(21)).await;
    for i in instances {
        i.stop().await;
    }
    for r in &recipients {
        let got = smtp.received_by(r);
        assert_eq!(got.len(), 1, "{r} got {} copies", got.len());
        let text = String::from_utf8_lossy(&got[0].data);
        assert!(text.contains("Council adopts text on defenders"));
    }
    assert_eq!(smtp.received().len(), 20);
}

/// A TCP proxy in front of the database that a test can cut and restore.
struct Proxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (target, cut) = (target.clone(), cut2.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Proxy { port, up, cut }
    }

    /// Refuses new connections and drops the open ones.
    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_fails_while_the_database_is_away_and_recovers_by_itself() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let mut url = url::Url::parse(db.url()).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 0, url.as_str(), &[], "");
    let i = Instance::start(&path).await;
    let up = eventually(10, || async { i.get("/healthz").await.0 == 200 }).await;
    assert!(up, "healthz never answered 200");
    proxy.cut();
    let down = eventually(20, || async { i.get("/healthz").await.0 == 503 }).await;
    assert!(down, "healthz still answers 200 without a database");
    proxy.restore();
    let back = eventually(30, || async { i.get("/healthz").await.0 == 200 }).await;
    assert!(back, "healthz did not recover");
    i.stop().await;
}

/// `gazette run` as a subprocess (for kill -9), serving on `port`.
fn spawn_run(config: &Path, port: u16, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(config)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instances_feeds_are_taken_over_within_a_minute() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let server = FeedServer::start().await;
    // The feed answers slowly: the kill lands while instance A fetches it.
    let mut slow = Route::feed(
        rss(&[("s1", "Slow statement on reprisals")]),
        "application/rss+xml",
    );
    slow.delay = Some(Duration::from_secs(60));
    server.set("slow", slow);
    let feeds = vec![("Slow".to_string(), server.url("slow"))];
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 0, db.url(), &feeds, "poll_interval = \"1h\"");
    let mut a = spawn_run(&config, free_port(), &dir.path().join("a.log"));
    assert!(
        wait_for(|| !server.requests("slow").is_empty()).await,
        "A never fetched"
    );
    a.kill().unwrap();
    a.wait().unwrap();
    let killed = Instant::now();
    server.set(
        "slow",
        Route::feed(
            rss(&[("s1", "Slow statement on reprisals")]),
            "application/rss+xml",
        ),
    );
    let b = Instance::start(&config).await;
    let taken = eventually(60, || async {
        b.get("/feed.atom")
            .await
            .1
            .contains("Slow statement on reprisals")
    })
    .await;
    let took = killed.elapsed();
    assert!(taken, "B never took the feed over");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(server.requests("slow").len(), 2, "A's fetch, then B's");
    assert_eq!(b.metric("gazette_lease_takeovers_total").await, 1.0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_works_on_postgres_and_the_environment_overrides_the_file() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let server = FeedServer::start().await;
    server.set(
        "a",
        Route::feed(
            rss(&[("a1", "Council adopts text on defenders")]),
            "application/rss+xml",
        ),
    );
    let ws = crate::Workspace::new();
    // The file names an SQLite store; the environment variable wins.
    ws.write_config(&[("A", server.url("a"))], "");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gazette"))
            .arg("--config")
            .arg(ws.config_path())
            .args(args)
            .env("GAZETTE_DATABASE_URL", db.url())
            .output()
            .unwrap()
    };
    let out = run(&["check"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["poll"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 new"));
    let out = run(&["items", "--json"]);
    let items = String::from_utf8_lossy(&out.stdout);
    assert!(
        items.contains("Council adopts text on defenders"),
        "{items}"
    );
    let out = run(&[
        "publish",
        "--out",
        ws.dir.path().join("pub").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let atom = std::fs::read_to_string(ws.dir.path().join("pub/feed.atom")).unwrap();
    assert!(atom.contains("Council adopts text on defenders"));
    let out = run(&["retag"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !ws.dir.path().join("gazette.db").exists(),
        "the file's store was not used"
    );
    // A URL that names nothing reachable: one error with host, port and database.
    let closed = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .arg("items")
        .env(
            "GAZETTE_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{closed}/newsdb"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{closed}")) && err.contains("newsdb"),
        "{err}"
    );
    // A malformed one is a configuration error naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .arg("check")
        .env("GAZETTE_DATABASE_URL", "postgres://nohost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GAZETTE_DATABASE_URL"));
}

#[tokio::test(flavor = "multi_thread")]
async fn db_copy_moves_a_store_to_postgres_and_back_keeping_ids_and_entry_ids() {
    let Some(db) = PgDb::new().await else {
        return;
    };
    let server = FeedServer::start().await;
    server.set(
        "a",
        Route::feed(
            rss(&[
                ("a1", "Council adopts text on defenders"),
                ("a2", "Experts urge release of lawyer"),
                ("a3", "An old story the retention prunes"),
            ]),
            "application/rss+xml",
        ),
    );
    server.set(
        "b",
        Route::feed(
            rss(&[("a1", "Council adopts text on defenders")]),
            "application/rss+xml",
        ),
    );
    let ws = crate::Workspace::new();
    let digest = format!(
        "[digest]\nschedule = \"0 0 * * *\"\nfrom = \"d@example.org\"\nto = [\"a@example.org\"]\noutbox = \"{}\"\nsend_when_empty = true\n",
        ws.dir.path().join("outbox").display()
    );
    let config = ws.write_config(&[("A", server.url("a")), ("B", server.url("b"))], &digest);
    let gazette = |env: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gazette"));
        c.arg("--config").arg(ws.config_path()).args(args);
        if let Some(url) = env {
            c.env("GAZETTE_DATABASE_URL", url);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gazette(None, &["poll"]);
    gazette(None, &["digest", "send"]);
    // A tombstone: the third story is pruned (the newest is never pruned).
    let store = crate::open_store(&config).await.unwrap();
    let stories = store
        .list_stories(&gazette::model::ItemQuery::default())
        .await
        .unwrap();
    assert_eq!(stories.len(), 3);
    let far = chrono::Utc::now() + chrono::TimeDelta::days(1);
    store.prune_stories(far, far).await.unwrap();
    store.close().await;
    let entry_ids_of = |dir: &str, env: Option<&str>| {
        let out = ws.dir.path().join(dir);
        gazette(env, &["publish", "--out", out.to_str().unwrap()]);
        entry_ids(&std::fs::read_to_string(out.join("feed.atom")).unwrap())
    };
    let items = gazette(None, &["items", "--json", "--all"]);
    let status = gazette(None, &["digest", "status"]);
    let ids = entry_ids_of("pub-sqlite", None);
    assert!(!ids.is_empty());

    let out = gazette(None, &["db", "copy", "--to", db.url()]);
    assert!(out.contains("feeds: 2 rows"), "{out}");
    assert!(out.contains("digest_periods: 1 rows"), "{out}");
    assert!(out.contains("pruned_items: "), "{out}");
    assert_eq!(
        gazette(Some(db.url()), &["items", "--json", "--all"]),
        items
    );
    assert_eq!(gazette(Some(db.url()), &["digest", "status"]), status);
    assert_eq!(entry_ids_of("pub-pg", Some(db.url())), ids);
    // The pruned story's tombstone came along: polling again stores nothing.
    let polled = gazette(Some(db.url()), &["poll", "--force"]);
    assert!(polled.contains("0 new"), "{polled}");
    assert_eq!(
        gazette(Some(db.url()), &["items", "--json", "--all"]),
        items
    );

    // A store that holds something is not a copy's target.
    let again = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .args(["db", "copy", "--to", db.url()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // And back into a new SQLite file.
    let back = ws.dir.path().join("back.db");
    let back_url = format!("sqlite://{}", back.display());
    gazette(Some(db.url()), &["db", "copy", "--to", &back_url]);
    assert_eq!(
        gazette(Some(&back_url), &["items", "--json", "--all"]),
        items
    );
    assert_eq!(entry_ids_of("pub-back", Some(&back_url)), ids);
    assert_eq!(gazette(Some(&back_url), &["digest", "status"]), status);
}
