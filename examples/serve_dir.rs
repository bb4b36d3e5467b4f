//! A loopback static server for benchmarks: serves every file of a folder
//! from memory with a strong ETag and Last-Modified, answering 304 to
//! matching conditional requests.
//!
//! usage: cargo run --release --example serve_dir -- DIR [ADDR=127.0.0.1:18473] [--no-validators] [--log FILE]
//!
//! `--log FILE` appends one line per request: Unix time in milliseconds,
//! the path with its query, the status.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

struct Files {
    by_name: HashMap<String, (Vec<u8>, String)>,
    validators: bool,
    log: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

const LAST_MODIFIED: &str = "Mon, 23 Nov 2026 08:00:00 GMT";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .expect("usage: serve_dir DIR [ADDR] [--no-validators]");
    let addr = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or("127.0.0.1:18473".into());
    let log = args
        .iter()
        .position(|a| a == "--log")
        .and_then(|i| args.get(i + 1))
        .map(|path| {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("writable log file");
            Mutex::new(std::io::BufWriter::new(f))
        });
    let validators = !args.iter().any(|a| a == "--no-validators");
    let mut by_name = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.unwrap().path();
        if path.is_file() {
            let body = std::fs::read(&path).unwrap();
            let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body));
            by_name.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                (body, etag),
            );
        }
    }
    eprintln!(
        "serving {} files on {addr} (validators: {validators})",
        by_name.len()
    );
    let files = Arc::new(Files {
        by_name,
        validators,
        log,
    });
    if files.log.is_some() {
        // The log reaches the disk every second.
        let f = files.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Some(l) = &f.log {
                    let _ = l.lock().unwrap().flush();
                }
            }
        });
    }
    let app = axum::Router::new()
        .route("/{*name}", axum::routing::get(serve))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

async fn serve(
    State(files): State<Arc<Files>>,
    Path(name): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let r = respond(&files, &name, &headers);
    if let Some(l) = &files.log {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let _ = writeln!(l.lock().unwrap(), "{ms} {uri} {}", r.status().as_u16());
    }
    r
}

fn respond(files: &Files, name: &str, headers: &HeaderMap) -> Response {
    let Some((body, etag)) = files.by_name.get(name) else {
        return Response::builder().status(404).body(Body::empty()).unwrap();
    };
    let mut b = Response::builder().header(header::CONTENT_TYPE, "application/xml");
    if files.validators {
        b = b
            .header(header::ETAG, etag)
            .header(header::LAST_MODIFIED, LAST_MODIFIED);
        if headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str())
        {
            return b
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .unwrap();
        }
    }
    b.body(Body::from(body.clone())).unwrap()
}
