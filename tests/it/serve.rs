//! `gazette serve`: the real binary on loopback, asked by a real HTTP client.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

use crate::publish::check_atom;
use crate::server::{FeedServer, Route};
use crate::{Workspace, fixture};

/// A `gazette serve` child process, killed on drop.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `gazette serve` on `port` and waits until it accepts connections.
fn start(ws: &Workspace, port: u16) -> Served {
    let child = Command::new(env!("CARGO_BIN_EXE_gazette"))
        .arg("--config")
        .arg(ws.config_path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gazette serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// A client that shows responses as sent: no automatic decompression.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap()
}

async fn get(
    url: &str,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(k.clone(), *v);
    }
    let resp = req.send().await.unwrap();
    let (status, h) = (resp.status(), resp.headers().clone());
    (status, h, resp.bytes().await.unwrap().to_vec())
}

fn hv(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn served_workspace(server: &FeedServer, port: u16) -> Workspace {
    server.set(
        "ishr",
        Route::feed(fixture("rss2.xml"), "application/rss+xml"),
    );
    server.set(
        "fld",
        Route::feed(fixture("feed.json"), "application/feed+json"),
    );
    let ws = Workspace::new();
    let config = ws.write_config(
        &[("ISHR", server.url("ishr")), ("Front Line Defenders", server.url("fld"))],
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[digest]\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Zurich\"\nfrom = \"Gazette <digest@example.org>\"\nto = [\"team@example.org\"]\n\n[[tags]]\nname = \"china\"\nkeywords = [\"China\", \"Hong Kong\"]\n"
        ),
    );
    ws.poll(&config).await;
    ws
}

#[tokio::test]
async fn serve_answers_every_path_with_types_validators_304_and_compression() {
    let server = FeedServer::start().await;
    let port = free_port();
    let ws = served_workspace(&server, port).await;
    let s = start(&ws, port);

    let (status, h, atom) = get(&format!("{}/feed.atom", s.base), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        hv(&h, header::CONTENT_TYPE),
        "application/atom+xml; charset=utf-8"
    );
    let entries = check_atom(&atom);
    assert!(entries.len() >= 4);
    let etag = hv(&h, header::ETAG).to_string();
    let last_modified = hv(&h, header::LAST_MODIFIED).to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    // Conditional GETs: the ETag, or the date.
    let (status, h304, body) = get(
        &format!("{}/feed.atom", s.base),
        &[(header::IF_NONE_MATCH, &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(hv(&h304, header::ETAG), etag);
    let (status, _, _) = get(
        &format!("{}/feed.atom", s.base),
        &[(header::IF_MODIFIED_SINCE, &last_modified)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = get(
        &format!("{}/feed.atom", s.base),
        &[(header::IF_NONE_MATCH, "\"something-else\"")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The same document again: the same validators.
    let (_, again, _) = get(&format!("{}/feed.atom", s.base), &[]).await;
    assert_eq!(hv(&again, header::ETAG), etag);
    assert_eq!(hv(&again, header::LAST_MODIFIED), last_modified);

    // gzip and brotli when asked; the bytes decode to the same document.
    let (status, hz, gz) = get(
        &format!("{}/feed.atom", s.base),
        &[(header::ACCEPT_ENCODING, "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hv(&hz, header::CONTENT_ENCODING), "gzip");
    assert!(hv(&hz, header::VARY).contains("Accept-Encoding"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, atom);
    assert!(gz.len() < atom.len());
    // The compressed variant's ETag revalidates too.
    let (status, _, _) = get(
        &format!("{}/feed.atom", s.base),
        &[
            (header::ACCEPT_ENCODING, "gzip"),
            (header::IF_NONE_MATCH, hv(&hz, header::ETAG)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (_, hb, br) = get(
        &format!("{}/feed.atom", s.base),
        &[(header::ACCEPT_ENCODING, "gzip, deflate, br")],
    )
    .await;
    assert_eq!(hv(&hb, header::CONTENT_ENCODING), "br");
    let mut plain = Vec::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, atom);

    // HEAD: the headers of a GET, no body.
    let head = client()
        .head(format!("{}/feed.atom", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(hv(head.headers(), header::ETAG), etag);
    assert_eq!(
        hv(head.headers(), header::CONTENT_LENGTH),
        atom.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // Every path of the table, with its type.
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/tags/china.atom", "application/atom+xml; charset=utf-8"),
        ("/tags/china.html", "text/html; charset=utf-8"),
        ("/feed.rss", "application/rss+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/sources.opml", "text/x-opml; charset=utf-8"),
    ] {
        let (status, h, body) = get(&format!("{}{path}", s.base), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(hv(&h, header::CONTENT_TYPE), ty, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    let china = check_atom(&get(&format!("{}/tags/china.atom", s.base), &[]).await.2);
    assert!(!china.is_empty() && china.len() < entries.len());
    // The upcoming digest: what was stored this period, as email-safe HTML.
    let (status, h, body) = get(&format!("{}/digest", s.base), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hv(&h, header::CONTENT_TYPE), "text/html; charset=utf-8");
    let digest = String::from_utf8(body).unwrap();
    // The fixtures' dated stories are years old: only the undated ones (dated
    // when first seen) are this week's.
    assert!(digest.contains("<title>Test Watch — 2 stories"), "{digest}");
    crate::publish::assert_no_active_content(
        digest.split_once("</head>").map_or(&digest[..], |(_, b)| b),
        "/digest",
    );
    let (status, _, body) = get(&format!("{}/healthz", s.base), &[]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok\n"[..]));

    // Unknown tags and anything outside the published set: 404.
    for path in [
        "/tags/unknown.atom",
        "/tags/china.xml",
        "/tags/..%2Ffeeds.toml",
        "/tags/../feeds.toml",
        "/feeds.toml",
        "/gazette.db",
        "/public/feed.atom",
    ] {
        let (status, _, _) = get(&format!("{}{path}", s.base), &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let post = client()
        .post(format!("{}/feed.atom", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn served_feed_changes_with_the_store_and_keeps_ids_across_restarts() {
    let server = FeedServer::start().await;
    let port = free_port();
    let ws = served_workspace(&server, port).await;
    let s = start(&ws, port);
    let url = format!("{}/feed.atom", s.base);
    let (_, h, body) = get(&url, &[]).await;
    let etag = hv(&h, header::ETAG).to_string();
    let before = check_atom(&body);

    // A new story arrives through a poll by another process.
    server.set(
        "ishr",
        Route::feed(
            String::from_utf8(fixture("rss2.xml")).unwrap().replace(
                "<item>",
                "<item><guid>new-1</guid><title>UN experts urge release of detained lawyers</title><link>https://ishr.example/news/new-1</link><description>Fresh.</description></item><item>",
            ),
            "application/rss+xml",
        ),
    );
    let config = gazette::config::Config::load(&ws.config_path()).unwrap();
    ws.poll(&config).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (status, h, body) = get(&url, &[(header::IF_NONE_MATCH, &etag)]).await;
        if status == StatusCode::OK {
            assert_ne!(hv(&h, header::ETAG), etag);
            break check_atom(&body);
        }
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(Instant::now() < deadline, "the new story never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after.len(), before.len() + 1);
    assert!(
        after
            .iter()
            .any(|e| e.title == "UN experts urge release of detained lawyers")
    );
    for e in &before {
        assert!(after.contains(e), "entry {} changed", e.id);
    }

    // A restart serves the same ids, and the same validators for the same bytes.
    let (_, before_restart, _) = get(&url, &[]).await;
    // Validators are recorded in the background: give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let s = start(&ws, port);
    let (_, h, body) = get(&format!("{}/feed.atom", s.base), &[]).await;
    let restarted = check_atom(&body);
    assert_eq!(
        restarted.iter().map(|e| &e.id).collect::<Vec<_>>(),
        after.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    assert_eq!(hv(&h, header::ETAG), hv(&before_restart, header::ETAG));
    assert_eq!(
        hv(&h, header::LAST_MODIFIED),
        hv(&before_restart, header::LAST_MODIFIED),
        "Last-Modified changes only with the content"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let server = FeedServer::start().await;
    let port = free_port();
    let ws = served_workspace(&server, port).await;
    let mut s = start(&ws, port);
    let (status, _, _) = get(&format!("{}/feed.atom", s.base), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let killed = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "serve did not stop within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ws = Workspace::new();
    ws.write_config(&[], &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let out = crate::gazette(&ws, &["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("listen"),
        "{err}"
    );
}

/// Raises this process's soft limit on open files to at least `want`
/// (up to the hard limit): the test holds thousands of sockets.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= want,
        "this test needs {want} open files; the hard limit is {}",
        lim.rlim_max
    );
}

/// Idle sockets cannot exhaust the server: with 5,000 connections open and
/// silent, `/healthz` answers within a second and the server keeps at most
/// `max_connections` (the default, 512) of them; a client that never
/// finishes its headers is dropped after `header_read_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_capped_and_timed_out_and_healthz_still_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raise_fd_limit(12_000);
    let ws = Workspace::new();
    let port = free_port();
    ws.write_config(&[], &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    let s = start(&ws, port);
    let mut idle = Vec::new();
    for _ in 0..5000 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    let t = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(1),
        client().get(format!("{}/healthz", s.base)).send(),
    )
    .await
    .expect("/healthz within 1 s with 5,000 idle connections open")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The server closed the longest-idle ones to stay within its cap.
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        // End of stream (or a reset): closed; `WouldBlock`: still open.
        let closed = idle
            .iter()
            .filter(|c| match c.try_read(&mut [0u8; 1]) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            })
            .count();
        if closed >= 5000 - 512 || Instant::now() > deadline {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        closed >= 5000 - 512,
        "only {closed} of 5,000 idle connections were closed"
    );
    drop(idle);
    drop(s);

    // A client that never finishes its headers, and one that sends nothing.
    let port = free_port();
    ws.write_config(
        &[],
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\nheader_read_timeout = \"500ms\"\n"),
    );
    let _s = start(&ws, port);
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let t = Instant::now();
    for c in [&mut slow, &mut silent] {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("closed by the header read timeout")
            .ok();
    }
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
}
