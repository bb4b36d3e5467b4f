//! Issue 16 figures: several digests with per-reader topics, and the
//! unsubscribe and archive endpoints under load.
//!
//! 1. 10 digests × 1,000 recipients (two thirds of them with one or two
//!    topics), 50 stories, sent by the real binary (`gazette digest send`)
//!    to a loopback SMTP sink in this process: wall time and the child's
//!    peak RSS (getrusage).
//! 2. `gazette serve` (the real binary) under a small closed-loop load
//!    generator (wrk is not installed here): `POST /unsubscribe/TOKEN`
//!    (every request a distinct reader: one store write each) and
//!    `GET /digests/NAME.atom`, CONNECTIONS keep-alive connections for
//!    SECONDS each: requests/s and p50/p99 latency.
//!
//! usage: cargo bench --bench digests -- [DIGESTS=10] [RECIPIENTS=1000]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CONNECTIONS: usize = 32;
const SECONDS: u64 = 10;
const SECRET: &str = "benchmark-secret-0123456789";
const TOPICS: [&str; 4] = ["china", "un", "ngo", "defenders"];

/// A loopback SMTP server that accepts everything and keeps only a count.
async fn smtp_sink() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                if w.write_all(b"220 sink ESMTP\r\n").await.is_err() {
                    return;
                }
                let mut line = String::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            c.fetch_add(1, Ordering::Relaxed);
                            let _ = w.write_all(b"250 2.0.0 queued\r\n").await;
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, count)
}

/// A workspace: a feed of 50 stories, `digests` digests of `recipients`
/// readers each (a third without topics, the others with one or two).
fn workspace(dir: &Path, digests: usize, recipients: usize, smtp_port: u16) {
    let cutoff = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut items = String::new();
    for i in 0..50 {
        let date = (cutoff - TimeDelta::minutes(60 * i + 5)).to_rfc2822();
        let about = match i % 4 {
            0 => "China",
            1 => "the Human Rights Council",
            2 => "an NGO",
            _ => "human rights defenders",
        };
        items.push_str(&format!(
            "<item><title>Story {i} about {about}</title><link>https://example.org/{i}</link><guid>g{i}</guid><pubDate>{date}</pubDate><description>Plain text of story {i} about {about}, long enough to need an excerpt in the digest.</description></item>"
        ));
    }
    std::fs::write(
        dir.join("f.xml"),
        format!("<rss version=\"2.0\"><channel><title>F</title><link>https://example.org/</link><description>d</description>{items}</channel></rss>"),
    )
    .unwrap();
    let mut text = String::from(
        "title = \"Bench Watch\"\nsite_url = \"https://news.example.org/\"\ndatabase = \"sqlite://gazette.db\"\n\
         [[feeds]]\nname = \"F\"\nurl = \"f.xml\"\n\
         [[tags]]\nname = \"china\"\nkeywords = [\"China\"]\n\
         [[tags]]\nname = \"un\"\nkeywords = [\"Human Rights Council\"]\n\
         [[tags]]\nname = \"ngo\"\nkeywords = [\"NGO\"]\n\
         [[tags]]\nname = \"defenders\"\nkeywords = [\"defenders\"]\n",
    );
    for d in 0..digests {
        let mut subs = String::new();
        for r in 0..recipients {
            subs.push_str(&format!("reader{r}.d{d}@example.org"));
            match r % 3 {
                0 => {}
                1 => subs.push_str(&format!(" {}", TOPICS[r % 4])),
                _ => subs.push_str(&format!(" {} {}", TOPICS[r % 4], TOPICS[(r + 1) % 4])),
            }
            subs.push('\n');
        }
        std::fs::write(dir.join(format!("d{d}.txt")), subs).unwrap();
        text.push_str(&format!(
            "[[digests]]\nname = \"d{d}\"\nschedule = \"0 0 * * *\"\nfrom = \"d{d}@example.org\"\nsubscribers = \"d{d}.txt\"\ntransport = \"smtp\"\n[digests.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\n"
        ));
    }
    std::fs::write(dir.join("feeds.toml"), text).unwrap();
}

fn gazette(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gazette"));
    c.arg("--config")
        .arg(dir.join("feeds.toml"))
        .args(args)
        .env("GAZETTE_SECRET", SECRET);
    c
}

/// Peak RSS of the largest child waited for so far, in MB.
fn children_peak_rss_mb() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

async fn send(dir: &Path, digests: usize, recipients: usize) {
    let (port, count) = smtp_sink().await;
    workspace(dir, digests, recipients, port);
    let out = gazette(dir, &["poll"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As if polled before today's cutoff.
    let cutoff = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("gazette.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE stories SET created_at = ?1")
        .bind((cutoff - TimeDelta::hours(1)).timestamp())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let before = children_peak_rss_mb();
    let t = Instant::now();
    let out = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || gazette(&dir, &["digest", "send"]).output().unwrap()
    })
    .await
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = count.load(Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let skipped: usize = stdout
        .lines()
        .filter_map(|l| l.split(", ").find(|p| p.ends_with(" skipped")))
        .filter_map(|p| p.trim_end_matches(" skipped").parse::<usize>().ok())
        .sum();
    println!(
        "send {digests} digests x {recipients} recipients (topics) to loopback SMTP: {secs:.2} s, {sent} messages ({:.0}/s), {skipped} readers skipped (no story on their topics); peak RSS of `gazette digest send` {:.0} MB (poll before it: {before:.0} MB)",
        sent as f64 / secs,
        children_peak_rss_mb()
    );
}

/// Runs `request` on CONNECTIONS tasks for SECONDS; requests/s and latencies.
async fn load<F, Fut>(name: &str, request: F)
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next, request) = (client.clone(), next.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bad = 0usize;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let status = request(client.clone(), i).await;
                lat.push(t.elapsed());
                if status != 200 {
                    bad += 1;
                }
            }
            (lat, bad)
        }));
    }
    let mut all = Vec::new();
    let mut bad = 0;
    for t in tasks {
        let (l, b) = t.await.unwrap();
        all.extend(l);
        bad += b;
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{name}: {:.0} req/s over {SECONDS} s, {CONNECTIONS} connections; p50 {:.2} ms, p99 {:.2} ms; {} requests, {bad} not 200",
        all.len() as f64 / SECONDS as f64,
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        all.len()
    );
}

async fn http(dir: &Path, digests: usize) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = gazette(dir, &["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://127.0.0.1:{port}");
    let signer = gazette::unsubscribe::Signer::new(SECRET.as_bytes());
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..1_000_000)
            .map(|i| signer.token(&format!("d{}", i % digests), &format!("r{i}@example.org")))
            .collect(),
    );
    let b = base.clone();
    load(
        "POST /unsubscribe/TOKEN (a new reader each)",
        move |c, i| {
            let url = format!("{b}/unsubscribe/{}", tokens[i % tokens.len()]);
            async move {
                c.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("List-Unsubscribe=One-Click")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        },
    )
    .await;
    let b = base.clone();
    load("GET /digests/d0.atom", move |c, _| {
        let url = format!("{b}/digests/d0.atom");
        async move {
            match c.get(url).send().await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            }
        }
    })
    .await;
    let _ = server.kill();
    let _ = server.wait();
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse::<usize>().ok());
    let digests = args.next().unwrap_or(10);
    let recipients = args.next().unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        send(dir.path(), digests, recipients).await;
        http(dir.path(), digests).await;
    });
}
