//! The HTTP server (`gazette serve`, and later the daemon): every published
//! document rendered from the store, cached until the store's content
//! changes, with validators, conditional GET and precompressed bodies.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use askama::Template;

use crate::archive;
use crate::config::{Config, DigestConfig};
use crate::metrics::Metrics;
use crate::publish::{self, Kind};
use crate::store::{HttpValidator, Store};
use crate::unsubscribe::{Claim, Signer};

/// How long a cached document is served before the store is asked whether
/// its content changed: a change shows over HTTP within this time.
const RECHECK: Duration = Duration::from_secs(1);

/// A document ready to serve: its bytes in each encoding and its validators.
#[derive(Debug)]
struct Rendered {
    content_type: &'static str,
    identity: Bytes,
    gzip: Bytes,
    br: Bytes,
    /// Hash of the identity body; an encoding gets a suffix.
    etag: String,
    last_modified: DateTime<Utc>,
}

/// What the server keeps between requests.
#[derive(Default)]
struct Cache {
    /// The store's content version the documents were rendered at.
    version: Option<i64>,
    checked: Option<Instant>,
    docs: HashMap<String, Arc<Rendered>>,
    /// Bumped whenever cached documents are dropped: a rendering started
    /// before is not cached.
    generation: u64,
}

/// The site: configuration, store and rendered documents.
pub struct Site {
    settings: RwLock<Settings>,
    store: Store,
    cache: Mutex<Cache>,
    /// One rendering at a time: concurrent requests after a change wait for
    /// it instead of each rendering the same document.
    render_lock: tokio::sync::Mutex<()>,
    /// The daemon's metrics and heartbeat, when a daemon runs this site.
    metrics: Option<Arc<Metrics>>,
    /// Checks unsubscribe tokens; made on first use (its key may come from the store).
    signer: tokio::sync::OnceCell<Signer>,
}

/// The configuration a site serves, and the tags it knows.
struct Settings {
    config: Arc<Config>,
    tags: BTreeSet<String>,
}

/// The scheduler counts as alive while its heartbeat is younger than this.
const HEARTBEAT_STALE_SECS: i64 = 30;

impl Site {
    /// A site serving `config`'s documents from `store`.
    pub fn new(config: Arc<Config>, store: Store) -> Site {
        Site {
            settings: RwLock::new(Settings {
                tags: publish::tag_names(&config),
                config,
            }),
            store,
            cache: Mutex::default(),
            render_lock: tokio::sync::Mutex::new(()),
            metrics: None,
            signer: tokio::sync::OnceCell::new(),
        }
    }

    /// The same site, also answering `/metrics` and reporting the
    /// scheduler's heartbeat in `/healthz`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Site {
        self.metrics = Some(metrics);
        self
    }

    /// Serves a new configuration (a reload) from the next request on.
    pub fn reconfigure(&self, config: Arc<Config>) {
        *self.settings.write().expect("settings lock") = Settings {
            tags: publish::tag_names(&config),
            config,
        };
        self.invalidate();
    }

    fn config(&self) -> Arc<Config> {
        self.settings.read().expect("settings lock").config.clone()
    }

    /// Forgets every rendered document: the next request renders afresh.
    /// For writers in the same process (the daemon) that just changed the store.
    pub fn invalidate(&self) {
        let mut c = self.cache.lock().expect("cache lock");
        c.docs.clear();
        c.checked = None;
        c.generation += 1;
    }

    /// The cached rendering of `kind`, rendering it when the store changed.
    async fn document(&self, kind: &Kind) -> Result<Arc<Rendered>, String> {
        let path = kind.path();
        if let Some(doc) = self.cached(&path).await? {
            return Ok(doc);
        }
        let _one = self.render_lock.lock().await;
        if let Some(doc) = self.cached(&path).await? {
            return Ok(doc);
        }
        let generation = self.cache.lock().expect("cache lock").generation;
        // Read before rendering: the rendering shows this version or a later one.
        let version = self
            .store
            .content_version()
            .await
            .map(Some)
            .map_err(|e| e.to_string())?;
        let doc = publish::render(&self.config(), &self.store, kind)
            .await
            .map_err(|e| e.to_string())?;
        let etag = format!(
            "\"{:016x}\"",
            xxhash_rust::xxh3::xxh3_64(&doc.body) ^ doc.content_type.len() as u64
        );
        let last_modified = self.last_modified(&path, &etag).await;
        let rendered = Arc::new(Rendered {
            content_type: doc.content_type,
            gzip: gzip(&doc.body).into(),
            br: brotli(&doc.body).into(),
            identity: doc.body.into(),
            etag,
            last_modified,
        });
        let mut c = self.cache.lock().expect("cache lock");
        // Cached only if nothing newer was seen meanwhile (another request
        // noticed a change, or the daemon invalidated): never a stale copy.
        if c.generation == generation {
            if c.version != version {
                c.docs.clear();
                c.version = version;
                c.generation += 1;
            }
            c.docs.insert(path, rendered.clone());
        }
        Ok(rendered)
    }

    /// When the bytes with `etag` at `path` were first served. Kept in the
    /// store, so it survives restarts and never goes back: new bytes get
    /// the current time, the same bytes their first time.
    async fn last_modified(&self, path: &str, etag: &str) -> DateTime<Utc> {
        let stored = self.store.http_validator(path).await.ok().flatten();
        let now = Utc::now();
        let at = match stored {
            Some(v) if v.etag == etag => return v.first_served,
            Some(v) => now.max(v.first_served + chrono::TimeDelta::seconds(1)),
            None => now,
        };
        let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or_default();
        let store = self.store.clone();
        let (path, v) = (
            path.to_string(),
            HttpValidator {
                etag: etag.to_string(),
                first_served: at,
            },
        );
        // Recorded in the background: a busy writer elsewhere must not hold the response.
        tokio::spawn(async move {
            if let Err(e) = store.set_http_validator(&path, &v).await {
                tracing::warn!(error = %e, "recording HTTP validators failed");
            }
        });
        at
    }

    /// The cached document at `path` unless the store changed since.
    async fn cached(&self, path: &str) -> Result<Option<Arc<Rendered>>, String> {
        let fresh = {
            let c = self.cache.lock().expect("cache lock");
            c.checked.is_some_and(|t| t.elapsed() < RECHECK)
        };
        if !fresh {
            let version = self
                .store
                .content_version()
                .await
                .map(Some)
                .map_err(|e| e.to_string())?;
            let mut c = self.cache.lock().expect("cache lock");
            if c.version != version {
                c.docs.clear();
                c.version = version;
                c.generation += 1;
            }
            c.checked = Some(Instant::now());
        }
        Ok(self
            .cache
            .lock()
            .expect("cache lock")
            .docs
            .get(path)
            .cloned())
    }
}

/// The router serving every published path (see PRODUCT.md's table).
pub fn router(site: Arc<Site>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/digest", axum::routing::get(upcoming_digest))
        .route("/digest/{name}", axum::routing::get(upcoming_named))
        .route(
            "/unsubscribe/{token}",
            axum::routing::get(unsubscribe_page).post(unsubscribe_now),
        )
        .route("/metrics", axum::routing::get(metrics))
        .fallback(published)
        .with_state(site)
}

/// Serves `site` on `listener` until `shutdown` resolves, within the
/// configuration's `[http]` limits: a client must send a request's headers
/// within `header_read_timeout` (also the longest a keep-alive connection
/// waits for its next request), and at most `max_connections` are open at
/// once. At the cap, the connection idle for longest (no request in
/// progress: a client that sent nothing, a slow or a kept-alive one) is
/// closed to make room, so idle sockets can neither exhaust file
/// descriptors nor keep anyone out; when every connection is busy, new ones
/// wait in the listen queue. On shutdown, connections finish the request
/// they are serving, then close.
pub async fn serve(
    site: Arc<Site>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = site.config().http.clone();
    let router = router(site);
    let tracker = Arc::new(Tracker::new(limits.max_connections));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let sock = tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (id, close) = tokio::select! {
            admitted = tracker.admit() => admitted,
            () = &mut shutdown => break,
        };
        let service = {
            let (router, tracker) = (router.clone(), tracker.clone());
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let busy = tracker.busy(id);
                let call = tower_call(router.clone(), req);
                async move {
                    let response = call.await;
                    drop(busy);
                    response
                }
            })
        };
        let conn = http1.serve_connection(hyper_util::rt::TokioIo::new(sock), service);
        let (tracker, mut stopped) = (tracker.clone(), stopped.clone());
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Evicted: dropping the connection closes the socket.
                _ = close => {}
                // The only change is to `true`: shutting down.
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            tracker.remove(id);
        });
    }
    let _ = stop.send(true);
    Ok(())
}

/// The router's response to one request.
async fn tower_call(
    router: Router,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, std::convert::Infallible> {
    use tower_service::Service;
    let mut router = router;
    router.call(req.map(Body::new)).await
}

/// An accept error: connection-level ones (the client gave up) are
/// ignored; others (out of file descriptors) are logged and waited out.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting an HTTP connection failed; waiting 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The open connections, and whether each is serving a request.
struct Tracker {
    max: usize,
    inner: Mutex<TrackerInner>,
    /// A connection closed or went idle: room may be made.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct TrackerInner {
    next_id: u64,
    conns: HashMap<u64, Slot>,
}

struct Slot {
    /// Requests in progress.
    busy: usize,
    /// Since when it has had none.
    idle_since: Instant,
    /// Closes the connection when sent (or dropped).
    close: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Tracker {
    fn new(max: usize) -> Tracker {
        Tracker {
            max: max.max(1),
            inner: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Room for one more connection: its id, and what closes it. At the
    /// cap, closes the connection idle longest, or waits for one to be.
    async fn admit(&self) -> (u64, tokio::sync::oneshot::Receiver<()>) {
        loop {
            let changed = self.changed.notified();
            {
                let mut inner = self.inner.lock().expect("tracker lock");
                if inner.conns.len() >= self.max {
                    let oldest = inner
                        .conns
                        .iter()
                        .filter(|(_, s)| s.busy == 0)
                        .min_by_key(|(_, s)| s.idle_since)
                        .map(|(id, _)| *id);
                    if let Some(id) = oldest
                        && let Some(mut slot) = inner.conns.remove(&id)
                    {
                        slot.close.take().map(|c| c.send(()));
                    }
                }
                if inner.conns.len() < self.max {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let id = inner.next_id;
                    inner.next_id += 1;
                    inner.conns.insert(
                        id,
                        Slot {
                            busy: 0,
                            idle_since: Instant::now(),
                            close: Some(tx),
                        },
                    );
                    return (id, rx);
                }
            }
            changed.await;
        }
    }

    /// Marks a request in progress on connection `id`.
    fn busy(self: &Arc<Self>, id: u64) -> BusyGuard {
        if let Some(s) = self.inner.lock().expect("tracker lock").conns.get_mut(&id) {
            s.busy += 1;
        }
        BusyGuard {
            tracker: self.clone(),
            id,
        }
    }

    /// Forgets connection `id` (closed).
    fn remove(&self, id: u64) {
        self.inner.lock().expect("tracker lock").conns.remove(&id);
        self.changed.notify_one();
    }
}

/// A request in progress on a connection; it is idle again when dropped.
struct BusyGuard {
    tracker: Arc<Tracker>,
    id: u64,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut inner = self.tracker.inner.lock().expect("tracker lock");
        if let Some(s) = inner.conns.get_mut(&self.id) {
            s.busy = s.busy.saturating_sub(1);
            s.idle_since = Instant::now();
        }
        drop(inner);
        self.tracker.changed.notify_one();
    }
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn healthz(State(site): State<Arc<Site>>) -> Response {
    if let Err(e) = site.store.content_version().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response();
    }
    if let Some(m) = &site.metrics {
        let age = Utc::now().timestamp() - m.last_beat();
        if age > HEARTBEAT_STALE_SECS {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("scheduler stalled: last turn {age} s ago\n"),
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn metrics(State(site): State<Arc<Site>>) -> Response {
    let Some(m) = &site.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are served by `gazette run`\n",
        )
            .into_response();
    };
    let stories = site.store.story_count().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(stories),
    )
        .into_response()
}

/// The (first) digest as it stands now (not cached: it follows the clock too).
async fn upcoming_digest(State(site): State<Arc<Site>>) -> Response {
    let config = site.config();
    match config.digests.first() {
        Some(cfg) => upcoming(&site, &config, cfg).await,
        None => (
            StatusCode::NOT_FOUND,
            "no digest: the configuration has no [digest] section\n",
        )
            .into_response(),
    }
}

/// The digest named in the path as it stands now.
async fn upcoming_named(
    State(site): State<Arc<Site>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let config = site.config();
    match config.digest_named(&name) {
        Some(cfg) => upcoming(&site, &config, cfg).await,
        None => (StatusCode::NOT_FOUND, "no digest of this name\n").into_response(),
    }
}

async fn upcoming(site: &Site, config: &Config, cfg: &DigestConfig) -> Response {
    match crate::digest::upcoming_html(config, cfg, &site.store, Utc::now()).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the digest page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the digest could not be rendered; see the server log\n",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage<'a> {
    heading: &'a str,
    message: &'a str,
    form: bool,
}

/// A small page that no cache, search engine or referrer keeps.
fn small_page(status: StatusCode, heading: &str, message: &str, form: bool) -> Response {
    let body = UnsubscribePage {
        heading,
        message,
        form,
    }
    .render()
    .unwrap_or_else(|_| format!("{heading}\n{message}\n"));
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// What a token says, when it is valid; `Err` is the response to give.
async fn check_token(site: &Site, token: &str) -> Result<Option<Claim>, Response> {
    let signer = site
        .signer
        .get_or_try_init(|| Signer::for_store(&site.store))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot check unsubscribe links");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "unsubscribing is not possible right now; see the server log\n",
            )
                .into_response()
        })?;
    Ok(signer.verify(token))
}

/// The digest's title, for pages.
fn digest_title(config: &Config, claim: &Claim) -> String {
    config
        .digest_named(&claim.digest)
        .map_or_else(|| claim.digest.clone(), |d| d.title.clone())
}

/// `GET /unsubscribe/TOKEN`: one button, nothing changed (mail scanners
/// fetch links); 404 for an invalid token.
async fn unsubscribe_page(
    State(site): State<Arc<Site>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let claim = match check_token(&site, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    let title = digest_title(&site.config(), &claim);
    small_page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "Stop sending the digest \u{201c}{title}\u{201d} to {}?",
            claim.recipient
        ),
        true,
    )
}

/// `POST /unsubscribe/TOKEN`: unsubscribes at once (RFC 8058: no login, no
/// confirmation) and answers 200; 404 for an invalid token.
async fn unsubscribe_now(
    State(site): State<Arc<Site>>,
    axum::extract::Path(token): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let claim = match check_token(&site, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    // A mailbox provider's one-click POST says so; the page's button does not.
    let how = if memchr::memmem::find(&body, b"List-Unsubscribe=One-Click").is_some() {
        "one-click"
    } else {
        "web"
    };
    match site
        .store
        .suppress(&claim.digest, &claim.recipient, how, Utc::now())
        .await
    {
        Ok(new) => {
            if new {
                tracing::info!(digest = %claim.digest, recipient = %claim.recipient, how, "reader unsubscribed");
            }
            let title = digest_title(&site.config(), &claim);
            small_page(
                StatusCode::OK,
                "Unsubscribed",
                &format!(
                    "{} will not receive \u{201c}{title}\u{201d} any more.",
                    claim.recipient
                ),
                false,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "recording an unsubscription failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "60")],
                "unsubscribing failed; please try again in a minute\n",
            )
                .into_response()
        }
    }
}

/// An archive page or feed (see [`crate::archive`]); read from the store
/// on each request (issues are few and change once a period).
async fn archived(site: &Site, route: archive::Route, head: bool) -> Response {
    let config = site.config();
    let found: Result<Option<(&'static str, Vec<u8>)>, String> = match &route {
        archive::Route::Index => archive::index(&config, &site.store)
            .await
            .map(|h| Some(("text/html; charset=utf-8", h.into_bytes())))
            .map_err(|e| e.to_string()),
        archive::Route::Feed(name) => archive::feed(&config, &site.store, name)
            .await
            .map(|f| f.map(|b| ("application/atom+xml; charset=utf-8", b)))
            .map_err(|e| e.to_string()),
        archive::Route::Issue(name, slug) => archive::issue_page(&config, &site.store, name, slug)
            .await
            .map(|p| p.map(|h| ("text/html; charset=utf-8", h.into_bytes())))
            .map_err(|e| e.to_string()),
    };
    match found {
        Ok(Some((content_type, body))) => {
            let len = body.len().to_string();
            let body = if head {
                Body::empty()
            } else {
                Body::from(body)
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "public, max-age=60"),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:",
                    ),
                    (header::CONTENT_LENGTH, len.as_str()),
                ],
                body,
            )
                .into_response()
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the digest archive failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log\n",
            )
                .into_response()
        }
    }
}

async fn published(State(site): State<Arc<Site>>, req: Request) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed\n",
        )
            .into_response();
    }
    if let Some(route) = archive::route(req.uri().path()) {
        return archived(&site, route, *req.method() == Method::HEAD).await;
    }
    let kind = {
        let settings = site.settings.read().expect("settings lock");
        Kind::from_path(req.uri().path(), &settings.tags)
    };
    let Some(kind) = kind else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let doc = match site.document(&kind).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(path = %req.uri().path(), error = %e, "rendering failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log\n",
            )
                .into_response();
        }
    };
    respond(&doc, req.headers(), *req.method() == Method::HEAD)
}

/// The response to a GET or HEAD of `doc` given the request's headers.
fn respond(doc: &Rendered, headers: &HeaderMap, head: bool) -> Response {
    let (encoding, body) = match negotiate(headers) {
        Encoding::Br => (Some("br"), &doc.br),
        Encoding::Gzip => (Some("gzip"), &doc.gzip),
        Encoding::Identity => (None, &doc.identity),
    };
    let etag = match encoding {
        Some(enc) => format!("{}-{enc}\"", doc.etag.trim_end_matches('"')),
        None => doc.etag.clone(),
    };
    let last_modified = publish::http_date(doc.last_modified);
    let mut h = HeaderMap::new();
    let put = |h: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(&mut h, header::ETAG, &etag);
    put(&mut h, header::LAST_MODIFIED, &last_modified);
    put(&mut h, header::VARY, "Accept-Encoding");
    put(&mut h, header::CACHE_CONTROL, "public, max-age=60");
    if not_modified(doc, headers) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    put(&mut h, header::CONTENT_TYPE, doc.content_type);
    if let Some(enc) = encoding {
        put(&mut h, header::CONTENT_ENCODING, enc);
    }
    put(&mut h, header::CONTENT_LENGTH, &body.len().to_string());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body.clone())
    };
    (StatusCode::OK, h, body).into_response()
}

/// Whether the request's validators match the current document
/// (RFC 9110 §13.1: If-None-Match wins over If-Modified-Since).
fn not_modified(doc: &Rendered, headers: &HeaderMap) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let base = doc.etag.trim_matches('"');
        return inm.split(',').any(|tag| {
            let tag = tag.trim();
            if tag == "*" {
                return true;
            }
            // Weak comparison; any encoding of the same bytes matches.
            let tag = tag.trim_start_matches("W/").trim_matches('"');
            tag == base || tag.strip_prefix(base).is_some_and(|s| s.starts_with('-'))
        });
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
    {
        return doc.last_modified <= since.with_timezone(&Utc);
    }
    false
}

enum Encoding {
    Br,
    Gzip,
    Identity,
}

/// The best encoding the client accepts (`q=0` refuses one).
fn negotiate(headers: &HeaderMap) -> Encoding {
    let Some(accept) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Identity;
    };
    let accepts = |name: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case(name) || coding == "*") && q > 0.0
        })
    };
    if accepts("br") {
        Encoding::Br
    } else if accepts("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        let _ = w.write_all(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Rendered {
        Rendered {
            content_type: "application/atom+xml; charset=utf-8",
            identity: Bytes::from_static(b"x"),
            gzip: Bytes::new(),
            br: Bytes::new(),
            etag: "\"abc\"".into(),
            last_modified: DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn conditional_requests() {
        let d = doc();
        let inm = |v| not_modified(&d, &headers(&[(header::IF_NONE_MATCH, v)]));
        assert!(inm("\"abc\""));
        assert!(inm("W/\"abc\""));
        assert!(inm("\"zzz\", \"abc-gzip\""));
        assert!(inm("*"));
        assert!(!inm("\"abcd\""));
        assert!(!inm("\"other\""));
        let ims = |v| not_modified(&d, &headers(&[(header::IF_MODIFIED_SINCE, v)]));
        assert!(ims("Fri, 20 Nov 2026 10:00:00 GMT"));
        assert!(ims("Sat, 21 Nov 2026 10:00:00 GMT"));
        assert!(!ims("Fri, 20 Nov 2026 09:59:59 GMT"));
        assert!(!ims("yesterday"));
        // If-None-Match wins: a stale tag with a recent date is a 200.
        assert!(!not_modified(
            &d,
            &headers(&[
                (header::IF_NONE_MATCH, "\"old\""),
                (header::IF_MODIFIED_SINCE, "Sat, 21 Nov 2026 10:00:00 GMT")
            ])
        ));
    }

    #[test]
    fn encoding_negotiation() {
        let neg = |v| match negotiate(&headers(&[(header::ACCEPT_ENCODING, v)])) {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        };
        assert_eq!(neg("gzip, deflate"), "gzip");
        assert_eq!(neg("gzip, deflate, br"), "br");
        assert_eq!(neg("br;q=0, gzip;q=0.5"), "gzip");
        assert_eq!(neg("identity"), "identity");
        assert_eq!(neg("gzip;q=0"), "identity");
    }
}
