//! Digest figures: render time for 50 and 500 stories (grouping, HTML and
//! text templates), and the send rate of `Application::send_due_digest` to a
//! loopback SMTP server (one connection per message, two store commits per
//! recipient), for 1,000 recipients.
//!
//! usage: cargo bench --bench digest -- [RECIPIENTS=1000]

#[path = "../tests/it/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::path::Path;
use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use gazette::app::Application;
use gazette::config::Config;
use gazette::digest::{self, Period};
use gazette::model::{Source, Story};
use gazette::pipeline::Waits;

fn story(i: usize, at: chrono::DateTime<Utc>) -> Story {
    let tags = match i % 4 {
        0 => vec!["china".to_string()],
        1 => vec!["un".to_string(), "defenders".to_string()],
        2 => vec!["ngo".to_string()],
        _ => vec![],
    };
    Story {
        id: i as i64,
        title: format!("UN experts alarmed by new charges against lawyers, report {i}"),
        link: Some(format!("https://example.org/news/{i}")),
        sources: vec![
            Source {
                feed: format!("Feed {}", i % 7),
                link: None,
                published: at,
                reason: "primary".into(),
                score: None,
            };
            1 + i % 3
        ],
        tags,
        published: at,
        created_at: at,
        changed_at: None,
        updated: None,
        guid: None,
        authors: vec![],
        categories: vec![],
        enclosures: vec![],
        excerpt: "GENEVA (22 November 2026) - UN experts today expressed alarm at national security charges brought against four lawyers who had represented pro-democracy defendants. ".repeat(3),
        summary_html: None,
        content_html: None,
    }
}

fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "title = \"Human Rights Defenders Watch\"\nsite_url = \"https://news.example.org/\"\ndatabase = \"sqlite://gazette.db\"\n{extra}"
    );
    let path = dir.join("feeds.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn render(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        dir.path(),
        "[digest]\nfrom = \"d@example.org\"\nto = [\"a@example.org\"]\nsections = [\"un\", \"china\"]\n",
    );
    let cfg = &c.digests[0];
    let cutoff = Utc.with_ymd_and_hms(2026, 11, 23, 7, 0, 0).unwrap();
    let stories: Vec<Story> = (0..n)
        .map(|i| story(i, cutoff - TimeDelta::minutes(10 * i as i64 + 1)))
        .collect();
    let p = Period {
        start: cutoff - TimeDelta::days(7),
        cutoff,
    };
    let to = "a@example.org".parse().unwrap();
    let u = digest::unsubscribe_for(&c, cfg, &to, "token");
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let d = digest::build(&c, cfg, &stories, p, &[]);
        let html = digest::render_html(&d, &u).unwrap();
        let text = digest::render_text(&d, &u).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = html.len() + text.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "render {n} stories: median {:.2} ms (HTML + text {} KB)",
        times[times.len() / 2],
        bytes / 1000
    );
}

async fn send(recipients: usize) {
    let server = smtp::SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // 50 stories in the period, from a local feed.
    let cutoff = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut items = String::new();
    for i in 0..50 {
        let date = (cutoff - TimeDelta::minutes(60 * i + 5)).to_rfc2822();
        items.push_str(&format!(
            "<item><title>Story {i} about China and the Human Rights Council</title><link>https://example.org/{i}</link><guid>g{i}</guid><pubDate>{date}</pubDate><description>Plain text of story {i}, long enough to need an excerpt in the digest.</description></item>"
        ));
    }
    std::fs::write(
        dir.path().join("f.xml"),
        format!("<rss version=\"2.0\"><channel><title>F</title><link>https://example.org/</link><description>d</description>{items}</channel></rss>"),
    )
    .unwrap();
    let to: Vec<String> = (0..recipients)
        .map(|i| format!("\"reader{i}@example.org\""))
        .collect();
    let c = config(
        dir.path(),
        &format!(
            "[digest]\nschedule = \"0 0 * * *\"\nfrom = \"d@example.org\"\nto = [{}]\ntransport = \"smtp\"\n[digest.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nretry_delay = \"50ms\"\n[[feeds]]\nname = \"F\"\nurl = \"f.xml\"\n",
            to.join(", "),
            server.port()
        ),
    );
    let app = Application::build(c.clone()).await.unwrap();
    app.poll(Waits::ServerRequested, &|_| {}).await.unwrap();
    // As if polled before the cutoff.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("gazette.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE stories SET created_at = ?1")
        .bind((cutoff - TimeDelta::hours(1)).timestamp())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let t = Instant::now();
    let report = app.send_due_digest().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(report.periods[0].sent.len(), recipients);
    assert_eq!(server.received().len(), recipients);
    println!(
        "send {recipients} recipients (50 stories) to loopback SMTP: {secs:.2} s, {:.0} messages/s",
        recipients as f64 / secs
    );
    app.close().await;
}

fn main() {
    let recipients: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    render(50);
    render(500);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(send(recipients));
}
