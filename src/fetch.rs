//! Fetching feed documents: conditional GET, limits, redirects, classified
//! errors. reqwest lives here and nowhere else.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, redirect};
use tokio::sync::Semaphore;
use url::Url;

use crate::config::{FeedSource, FetchConfig};
use crate::model::{FailureKind, FetchStatus};

/// At most this many redirects are followed.
pub const MAX_REDIRECTS: usize = 5;
/// A server's Retry-After is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Validators from the previous successful fetch.
#[derive(Debug, Clone, Default)]
pub struct Conditional {
    /// Sent as If-None-Match.
    pub etag: Option<String>,
    /// Sent as If-Modified-Since.
    pub last_modified: Option<String>,
}

/// A successful fetch.
// One value per fetch, moved once into the parser: boxing the body's
// headers would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Fetched {
    /// A new document.
    Body {
        /// The (decompressed) document.
        body: Vec<u8>,
        /// Content-Type header, for the charset.
        content_type: Option<String>,
        /// The URL the body came from after redirects (the base for relative links).
        final_url: Option<Url>,
        /// The Content-Location header: the document's own address, which
        /// relative links resolve against before `final_url`.
        content_location: Option<String>,
        /// ETag to send next time.
        etag: Option<String>,
        /// Last-Modified to send next time.
        last_modified: Option<String>,
        /// Where a permanent redirect pointed, when one was followed.
        moved_permanently: Option<Url>,
    },
    /// 304: the document has not changed since the validators were issued.
    NotModified {
        /// Where a permanent redirect pointed, when one was followed.
        moved_permanently: Option<Url>,
    },
}

/// Why a fetch failed. [`FetchError::kind`] gives the stored classification.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The whole request, body included, took too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection broke or the response was unreadable.
    #[error("network error: {0}")]
    Network(String),
    /// 410 Gone.
    #[error("HTTP 410 Gone: the publisher removed this feed; remove it from feeds.toml")]
    Gone,
    /// 429 Too Many Requests or 503 Service Unavailable.
    #[error("HTTP {status}: server asks to slow down{}", fmt_retry(.retry_after))]
    Throttled {
        /// 429 or 503.
        status: u16,
        /// The server's Retry-After, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Any other non-success status.
    #[error("HTTP {status}{}", if *.status == 404 { " Not Found: check the feed's url" } else { "" })]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body is larger than `max_body_size`.
    #[error(
        "response larger than {limit} bytes: raise [fetch] max_body_size if this feed is legitimately that big"
    )]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// A redirect chain longer than [`MAX_REDIRECTS`].
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    /// A redirect without a usable Location.
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    /// A local feed file could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
}

fn fmt_retry(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (Retry-After {}s)", d.as_secs()))
        .unwrap_or_default()
}

impl FetchError {
    /// The fetch status this failure leaves the feed in.
    pub fn status(&self) -> FetchStatus {
        use FailureKind::*;
        FetchStatus::Failed(match self {
            FetchError::Timeout(_) => Timeout,
            FetchError::Connect(_) => Connect,
            FetchError::Network(_) => Network,
            FetchError::Gone => return FetchStatus::Gone,
            // Only an explicit Retry-After makes a feed wait; without one it is a plain error.
            FetchError::Throttled {
                retry_after: Some(_),
                ..
            } => return FetchStatus::Throttled,
            FetchError::Throttled { status: 503, .. } => Http5xx,
            FetchError::Throttled { .. } => Http4xx,
            FetchError::Status { status, .. } if *status >= 500 => Http5xx,
            FetchError::Status { .. } => Http4xx,
            FetchError::TooLarge { .. } => TooLarge,
            FetchError::TooManyRedirects | FetchError::BadRedirect(_) => Redirect,
            FetchError::File { .. } => File,
        })
    }

    /// A short, stable classification shown in summaries (`timeout`, `http_5xx`…).
    pub fn kind(&self) -> &'static str {
        self.status().as_str()
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Fetches feed documents under global and per-host concurrency limits.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: FetchConfig,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Fetcher {
    /// Tells a WebSub hub that `topics` (absolute feed URLs) changed: one
    /// `hub.mode=publish` POST per topic, as PubSubHubbub hubs expect. The
    /// hub then fetches the feeds and pushes them to its subscribers.
    pub async fn notify_hub(&self, hub: &Url, topics: &[String]) -> Result<(), String> {
        for topic in topics {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("hub.mode", "publish")
                .append_pair("hub.url", topic)
                .finish();
            let resp = self
                .client
                .post(hub.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{hub}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{hub} answered {} for {topic}", resp.status()));
            }
        }
        Ok(())
    }

    /// Builds the HTTP client. `user_agent` names gazette and the site.
    pub fn new(limits: &FetchConfig, user_agent: &str) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .pool_max_idle_per_host(limits.per_host)
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .build()
            .map_err(|e| FetchError::Network(error_chain(&e)))?;
        Ok(Fetcher {
            client,
            limits: limits.clone(),
            global: Arc::new(Semaphore::new(limits.concurrency)),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches `source`, sending the validators, within the configured limits.
    pub async fn fetch(
        &self,
        source: &FeedSource,
        cond: &Conditional,
    ) -> Result<Fetched, FetchError> {
        match source {
            FeedSource::File(path) => self.fetch_file(path, cond).await,
            FeedSource::Http(url) => {
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                let host_sem = {
                    let mut hosts = self.hosts.lock().expect("host map poisoned");
                    hosts
                        .entry(host)
                        .or_insert_with(|| Arc::new(Semaphore::new(self.limits.per_host)))
                        .clone()
                };
                let _host = host_sem.acquire().await.expect("semaphore closed");
                let _global = self.global.acquire().await.expect("semaphore closed");
                let timeout = self.limits.timeout;
                tokio::time::timeout(timeout, self.fetch_http(url.clone(), cond))
                    .await
                    .unwrap_or(Err(FetchError::Timeout(timeout)))
            }
        }
    }

    async fn fetch_http(&self, start: Url, cond: &Conditional) -> Result<Fetched, FetchError> {
        let mut url = start;
        let mut all_permanent = true;
        let mut moved = None;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.client.get(url.clone());
            if let Some(etag) = &cond.etag {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &cond.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm);
            }
            let resp = req.send().await.map_err(|e| self.classify(e))?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        FetchError::BadRedirect(format!("HTTP {status} without Location"))
                    })?;
                let next = url
                    .join(loc)
                    .map_err(|e| FetchError::BadRedirect(format!("Location {loc:?}: {e}")))?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(FetchError::BadRedirect(format!(
                        "redirect to {next} is not http(s)"
                    )));
                }
                all_permanent &= matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                );
                if all_permanent {
                    moved = Some(next.clone());
                }
                url = next;
                continue;
            }
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified {
                    moved_permanently: moved,
                });
            }
            if status == StatusCode::GONE {
                return Err(FetchError::Gone);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                return Err(FetchError::Throttled {
                    status: status.as_u16(),
                    retry_after: retry_after(resp.headers(), SystemTime::now()),
                });
            }
            if !status.is_success() {
                return Err(FetchError::Status {
                    status: status.as_u16(),
                });
            }
            let headers = resp.headers().clone();
            let body = self.read_capped(resp).await?;
            return Ok(Fetched::Body {
                body,
                content_type: header_string(&headers, header::CONTENT_TYPE),
                final_url: Some(url),
                content_location: header_string(&headers, header::CONTENT_LOCATION),
                etag: header_string(&headers, header::ETAG),
                last_modified: header_string(&headers, header::LAST_MODIFIED),
                moved_permanently: moved,
            });
        }
        Err(FetchError::TooManyRedirects)
    }

    /// Streams the body and stops as soon as it passes the cap.
    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let limit = self.limits.max_body_size;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut body =
            Vec::with_capacity(resp.content_length().unwrap_or(64 * 1024).min(limit) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn fetch_file(
        &self,
        path: &std::path::Path,
        cond: &Conditional,
    ) -> Result<Fetched, FetchError> {
        let file_err = |e: std::io::Error| FetchError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let meta = tokio::fs::metadata(path).await.map_err(file_err)?;
        let limit = self.limits.max_body_size;
        if meta.len() > limit {
            return Err(FetchError::TooLarge { limit });
        }
        // The file's mtime plays the part of Last-Modified.
        let stamp = meta.modified().ok().map(|m| {
            let d: DateTime<Utc> = m.into();
            format!(
                "{}.{:09}",
                d.format("%a, %d %b %Y %H:%M:%S GMT"),
                d.timestamp_subsec_nanos()
            )
        });
        if stamp.is_some() && stamp == cond.last_modified {
            return Ok(Fetched::NotModified {
                moved_permanently: None,
            });
        }
        let body = tokio::fs::read(path).await.map_err(file_err)?;
        Ok(Fetched::Body {
            body,
            content_type: None,
            final_url: None,
            content_location: None,
            etag: None,
            last_modified: stamp,
            moved_permanently: None,
        })
    }

    fn classify(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.limits.timeout)
        } else if e.is_connect() {
            FetchError::Connect(error_chain(&e))
        } else {
            FetchError::Network(error_chain(&e))
        }
    }
}

/// The default User-Agent: names gazette, its version and the site running it.
pub fn default_user_agent(site_url: &Url) -> String {
    format!("gazette/{} (+{site_url})", env!("CARGO_PKG_VERSION"))
}

fn header_string(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

/// Parses Retry-After as seconds or an HTTP date, relative to `now`.
pub fn retry_after(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?;
        let at: SystemTime = at.with_timezone(&Utc).into();
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// An error and its causes on one line: reqwest's top message alone says little.
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(120))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(60)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn errors_say_what_to_do() {
        assert!(
            FetchError::Gone
                .to_string()
                .contains("remove it from feeds.toml")
        );
        assert_eq!(FetchError::Status { status: 503 }.kind(), "http_5xx");
        let t = FetchError::Throttled {
            status: 429,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            t.to_string(),
            "HTTP 429: server asks to slow down (Retry-After 30s)"
        );
    }
}
