//! The `gazette` binary as a user runs it.

use std::process::Command;

use crate::server::{FeedServer, Route};
use crate::{Workspace, fixture, gazette};

#[test]
fn check_reports_file_line_and_column() {
    let ws = Workspace::new();
    std::fs::write(
        ws.config_path(),
        "title = \"x\"\n\n[[feeds]]\nname = \"ISHR\"\nurl = \"https://ishr.ch/feed/\"\ninterval = \"soon\"\n",
    )
    .unwrap();
    let out = gazette(&ws, &["check"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let expected = format!("{}:6:12: invalid duration", ws.config_path().display());
    assert!(err.starts_with(&expected), "{err}");

    std::fs::write(ws.config_path(), "title = \"x\"\ntitel = \"y\"\n").unwrap();
    let err = String::from_utf8(gazette(&ws, &["poll"]).stderr).unwrap();
    assert!(
        err.contains("feeds.toml:2:1: unknown key `titel`; did you mean `title`?"),
        "{err}"
    );
}

#[test]
fn check_prints_every_error_sorted_by_line_and_warns_below_min_interval() {
    let ws = Workspace::new();
    std::fs::write(ws.dir.path().join("local.xml"), fixture("rss2.xml")).unwrap();
    std::fs::write(
        ws.config_path(),
        r#"title = "x"
min_interval = "10m"

[[feeds]]
name = "Typo"
url = "not a url at all"

[[feeds]]
name = "Local"
url = "local.xml"
interval = "1m"

[[feeds]]
name = "Slow"
url = "https://slow.example/feed"
interval = "later"
colour = "red"
"#,
    )
    .unwrap();
    let out = gazette(&ws, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let file = ws.config_path().display().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    let expected = [
        format!("{file}:6:7: feed url \"not a url at all\" is neither"),
        format!("{file}:11:12: warning: interval 1m is below min_interval 10m"),
        format!("{file}:16:12: invalid duration"),
        format!("{file}:17:1: unknown key `colour`"),
    ];
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line}\nwanted {want}\n{err}"
        );
    }
    // Other commands refuse the file with the same list.
    let poll = gazette(&ws, &["poll"]);
    assert_eq!(poll.status.code(), Some(2));
    assert_eq!(String::from_utf8(poll.stderr).unwrap(), err);

    // Fixed: check passes and still shows the warning.
    let text = std::fs::read_to_string(ws.config_path()).unwrap();
    let fixed = text
        .replace("not a url at all", "https://typo.example/feed")
        .replace("\"later\"", "\"2h\"")
        .replace("colour = \"red\"\n", "");
    std::fs::write(ws.config_path(), fixed).unwrap();
    let out = gazette(&ws, &["check"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "{file}:11:12: warning: interval 1m is below min_interval 10m: polled every 10m instead"
        )
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("ok (3 feeds")
    );
}

#[test]
fn check_accepts_the_shipped_configs() {
    for path in ["feeds.toml", "examples/demo.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_gazette"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--config", path, "check"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_exits_zero_with_a_summary_when_a_feed_fails_and_items_lists_json() {
    let server = FeedServer::start().await;
    server.set(
        "ok.xml",
        Route::feed(fixture("rss2.xml"), "application/rss+xml"),
    );
    let ws = Workspace::new();
    ws.write_config(
        &[
            ("Good Feed", server.url("ok.xml")),
            ("Broken Feed", server.url("missing")),
        ],
        "",
    );
    let out = tokio::task::block_in_place(|| gazette(&ws, &["poll"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let broken = table
        .lines()
        .find(|l| l.starts_with("Broken Feed"))
        .unwrap();
    assert!(
        broken.contains("error") && broken.contains("HTTP 404"),
        "{table}"
    );
    let good = table.lines().find(|l| l.starts_with("Good Feed")).unwrap();
    assert!(good.contains("ok") && good.contains(" 3 "), "{table}");

    let out =
        tokio::task::block_in_place(|| gazette(&ws, &["items", "--json", "--tag", "nonexistent"]));
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out =
        tokio::task::block_in_place(|| gazette(&ws, &["items", "--json", "--since", "2022-04-07"]));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        for key in ["id", "title", "link", "sources", "tags", "published"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    assert_eq!(
        lines[2]["title"], "Hong Kong: Chow Hang-tung sentenced again",
        "newest first"
    );
}

#[test]
fn unusable_database_is_a_clear_failure() {
    let ws = Workspace::new();
    // A PostgreSQL server that is not there: one error naming where.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        ws.config_path(),
        format!("database = \"postgres://u@127.0.0.1:{closed}/newsdb\"\n"),
    )
    .unwrap();
    let out = gazette(&ws, &["poll"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "PostgreSQL at 127.0.0.1:{closed}, database newsdb"
        )),
        "{err}"
    );
    std::fs::create_dir(ws.dir.path().join("gazette.db")).unwrap();
    std::fs::write(ws.config_path(), "database = \"sqlite://gazette.db\"\n").unwrap();
    let out = gazette(&ws, &["poll"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot open the database")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_beside_another_process_writing_does_not_wait_out_the_busy_timeout() {
    use sqlx::{ConnectOptions, Connection};
    let server = FeedServer::start().await;
    server.set(
        "ok.xml",
        Route::feed(fixture("rss2.xml"), "application/rss+xml"),
    );
    let ws = Workspace::new();
    let config = ws.write_config(&[("Good Feed", server.url("ok.xml"))], "");
    let out = tokio::task::block_in_place(|| gazette(&ws, &["poll"]));
    assert!(out.status.success());
    // Another process's writer (a daemon storing a feed) holds the lock.
    let gazette::config::DatabaseUrl::Sqlite(db) = &config.database else {
        panic!("an SQLite store");
    };
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    let mut tx = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE meta SET value = value WHERE key = 'store_key'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = tokio::task::block_in_place(|| gazette(&ws, &["items", "--json"]));
    let took = started.elapsed();
    tx.commit().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);
    // The final checkpoint gives up on the lock after a moment instead of
    // waiting for the 10 s busy timeout.
    assert!(
        took < std::time::Duration::from_secs(5),
        "items took {took:?}"
    );
}
