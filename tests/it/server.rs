//! A real HTTP server on loopback that serves feed fixtures with ETags,
//! redirects, errors, slowness and gzip, and records every request.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

/// How one path answers.
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    /// Send the body one byte at a time with this pause between bytes.
    pub trickle: Option<Duration>,
    /// Send the body in chunks without a Content-Length.
    pub chunked: bool,
    /// Gzip the body when the client accepts it.
    pub gzip: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Route {
    /// A 200 with the given body and validators.
    pub fn feed(body: impl Into<Vec<u8>>, content_type: &str) -> Route {
        Route {
            status: 200,
            body: body.into(),
            content_type: content_type.into(),
            etag: None,
            last_modified: None,
            headers: Vec::new(),
            trickle: None,
            chunked: false,
            gzip: false,
            delay: None,
        }
    }

    /// A bare status with extra headers.
    pub fn status(status: u16, headers: Vec<(&'static str, String)>) -> Route {
        Route {
            status,
            headers,
            ..Route::feed(Vec::new(), "text/plain")
        }
    }

    pub fn with_validators(mut self, etag: &str, last_modified: &str) -> Route {
        self.etag = Some(etag.into());
        self.last_modified = Some(last_modified.into());
        self
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Route>,
    log: Vec<Seen>,
    in_flight: usize,
    max_in_flight: usize,
}

/// The running server.
#[derive(Clone)]
pub struct FeedServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FeedServer {
    pub async fn start() -> FeedServer {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FeedServer { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn set(&self, path: &str, route: Route) {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.inner.lock().unwrap().routes.insert(path, route);
    }

    /// The most requests this server was answering at once (delayed routes only).
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    /// Requests made to `path` so far.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        let path = format!("/{}", path.trim_start_matches('/'));
        let inner = self.inner.lock().unwrap();
        inner
            .log
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let route = {
        let mut inner = inner.lock().unwrap();
        inner.log.push(Seen {
            path: path.clone(),
            headers: headers.clone(),
            at: std::time::Instant::now(),
        });
        inner.routes.get(&path).cloned()
    };
    let Some(route) = route else {
        return Response::builder()
            .status(404)
            .body(Body::from("not found"))
            .unwrap();
    };
    if let Some(delay) = route.delay {
        {
            let mut i = inner.lock().unwrap();
            i.in_flight += 1;
            i.max_in_flight = i.max_in_flight.max(i.in_flight);
        }
        tokio::time::sleep(delay).await;
        inner.lock().unwrap().in_flight -= 1;
    }
    let mut b = Response::builder().status(route.status);
    for (k, v) in &route.headers {
        b = b.header(*k, v);
    }
    if route.status != 200 {
        return b.body(Body::from(route.body)).unwrap();
    }
    if let Some(etag) = &route.etag {
        b = b.header(header::ETAG, etag);
    }
    if let Some(lm) = &route.last_modified {
        b = b.header(header::LAST_MODIFIED, lm);
    }
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let ims = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    let etag_match = route.etag.is_some() && inm == route.etag.as_deref();
    let lm_match =
        inm.is_none() && route.last_modified.is_some() && ims == route.last_modified.as_deref();
    if etag_match || lm_match {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap();
    }
    b = b.header(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&route.content_type).unwrap(),
    );
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let mut body = route.body.clone();
    if route.gzip && accepts_gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&body).unwrap();
        body = enc.finish().unwrap();
        b = b.header(header::CONTENT_ENCODING, "gzip");
    }
    if let Some(pause) = route.trickle {
        let stream = futures::stream::unfold(0usize, move |i| {
            let body = body.clone();
            async move {
                if i >= body.len() {
                    return None;
                }
                tokio::time::sleep(pause).await;
                Some((Ok::<_, std::io::Error>(vec![body[i]]), i + 1))
            }
        });
        return b.body(Body::from_stream(stream)).unwrap();
    }
    if route.chunked {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(8192).map(|c| Ok(c.to_vec())).collect();
        return b
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap();
    }
    b.body(Body::from(body)).unwrap()
}
