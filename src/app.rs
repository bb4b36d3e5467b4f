//! The one application: [`Application::build`] opens the store and builds
//! the fetcher and tag rules from a [`Config`]; the CLI commands, the daemon
//! and the tests all start from it. [`Application::listen`] binds the HTTP
//! port, [`Application::run_until_stopped`] runs the daemon (polling,
//! publishing, the digest) beside the web server, and the use cases the CLI
//! offers are methods (or the functions below, which the daemon shares).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::delivery;
use crate::fetch::{self, Fetcher};
use crate::metrics::Metrics;
use crate::model::{FetchState, ItemQuery, Story};
use crate::pipeline::{FeedReport, Ingest, Waits};
use crate::publish;
use crate::serve::{self, Site};
use crate::store::Store;
use crate::tag::{self, Tagger, Tagging};

/// gazette, built from a configuration: its store, HTTP client and rules,
/// and (once [`Application::listen`] bound it) its web server's socket.
pub struct Application {
    ingest: Ingest,
    listener: Option<tokio::net::TcpListener>,
}

impl Application {
    /// Opens (creating and migrating when needed) the configured store and
    /// builds the fetcher and the tag rules.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let store = Store::open(&config.database).await.with_context(|| {
            format!("opening the store configured in {}", config.path.display())
        })?;
        let ingest = match ingest(config, store.clone()) {
            Ok(i) => i,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        Ok(Application {
            ingest,
            listener: None,
        })
    }

    /// Binds the web server's socket: `addr`, else `[http] listen`. Port 0
    /// picks a free port (see [`Application::port`]).
    pub async fn listen(mut self, addr: Option<SocketAddr>) -> anyhow::Result<Application> {
        let config = self.config();
        let addr = addr.unwrap_or(config.http.listen);
        let listener = serve::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} ([http] listen in {}, or --listen): is another server using it?",
                config.path.display()
            )
        })?;
        self.listener = Some(listener);
        Ok(self)
    }

    /// The address the web server listens on, once bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The port the web server listens on, once bound.
    pub fn port(&self) -> Option<u16> {
        self.local_addr().map(|a| a.port())
    }

    /// The configuration it runs with.
    pub fn config(&self) -> Arc<Config> {
        self.ingest.config.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.ingest.store
    }

    /// What a refresh needs (configuration, store, fetcher, tag rules).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// `gazette run`: the daemon (polling on schedule, publishing, the
    /// digest, reloads) beside the web server, until `shutdown` resolves;
    /// `hangup` asks for a reload of the configuration file. Closes the
    /// store at the end.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
        hangup: Arc<Notify>,
    ) -> anyhow::Result<()> {
        if self.listener.is_none() {
            self = self.listen(None).await?;
        }
        let listener = self.listener.take().expect("bound above");
        let store = self.store().clone();
        let metrics = Arc::new(Metrics::default());
        let site = Arc::new(Site::new(self.config(), store.clone()).with_metrics(metrics.clone()));
        tracing::info!(address = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "serving HTTP");
        let stop_http = Arc::new(Notify::new());
        let http = {
            let (site, stop) = (site.clone(), stop_http.clone());
            tokio::spawn(async move {
                let stopped = async move { stop.notified().await };
                if let Err(e) = serve::serve(site, listener, stopped).await {
                    tracing::error!(error = %e, "the HTTP server stopped");
                }
            })
        };
        let result = match Daemon::start(self.ingest.clone(), site, metrics).await {
            Ok(mut d) => {
                d.run(shutdown, hangup).await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        stop_http.notify_one();
        // Open keep-alive connections must not hold the exit.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), http).await;
        store.close().await;
        tracing::info!("stopped");
        result
    }

    /// `gazette serve`: only the web server, until `shutdown` resolves.
    pub async fn serve_until_stopped(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if self.listener.is_none() {
            self = self.listen(None).await?;
        }
        let listener = self.listener.take().expect("bound above");
        let site = Arc::new(Site::new(self.config(), self.store().clone()));
        let served = serve::serve(site, listener, shutdown)
            .await
            .context("serving HTTP");
        self.close().await;
        served
    }

    /// Fetches every configured feed once (see [`poll`]).
    pub async fn poll(
        &self,
        waits: Waits,
        on_done: &(dyn Fn(&FeedReport) + Sync),
    ) -> anyhow::Result<Vec<FeedReport>> {
        poll(&self.ingest, waits, on_done).await
    }

    /// Re-tags every stored item (see [`retag`]).
    pub async fn retag(&self) -> anyhow::Result<usize> {
        retag(&self.ingest).await
    }

    /// Stored stories.
    pub async fn items(&self, q: &ItemQuery) -> anyhow::Result<Vec<Story>> {
        self.store()
            .list_stories(q)
            .await
            .context("listing stored stories")
    }

    /// Writes every published document under `out` (see [`publish`]).
    pub async fn publish(&self, out: &std::path::Path) -> anyhow::Result<Published> {
        publish(&self.config(), self.store(), out).await
    }

    /// Sends every digest that is due now, exactly once per recipient (see
    /// [`delivery::send_due_digests`]).
    pub async fn send_due_digest(&self) -> anyhow::Result<delivery::SendReport> {
        self.send_due_digests(None).await
    }

    /// Sends the digests that are due now (only the one named `only`, when
    /// given), exactly once per recipient.
    pub async fn send_due_digests(
        &self,
        only: Option<&str>,
    ) -> anyhow::Result<delivery::SendReport> {
        let config = self.config();
        delivery::send_due_digests(&config, self.store(), chrono::Utc::now(), only).await
    }

    /// Closes the store (SQLite: empties the WAL).
    pub async fn close(self) {
        self.ingest.store.close().await;
    }
}

/// Builds the ingest context for `config`.
pub fn ingest(config: Arc<Config>, store: Store) -> anyhow::Result<Ingest> {
    let ua = config
        .fetch
        .user_agent
        .clone()
        .unwrap_or_else(|| fetch::default_user_agent(&config.site_url));
    let fetcher = Fetcher::new(&config.fetch, &ua).context("building the HTTP client")?;
    Ok(Ingest {
        tagger: Arc::new(Tagger::new(&config.tags, &config.exclude)),
        fetcher: Arc::new(fetcher),
        store,
        config,
    })
}

/// Fetches every configured feed once. `on_done` is called as each feed
/// finishes; the reports come back in configuration order.
pub async fn poll(
    ingest: &Ingest,
    waits: Waits,
    on_done: &(dyn Fn(&FeedReport) + Sync),
) -> anyhow::Result<Vec<FeedReport>> {
    let config = ingest.config.clone();
    let rows = ingest
        .store
        .sync_feeds(&config.feeds)
        .await
        .context("recording the configured feeds in the store")?;
    if let Some(n) = retag_if_rules_changed(ingest).await? {
        tracing::info!(items = n, "tag rules changed: stored stories re-tagged");
    }
    // The fetcher's semaphores bound network concurrency; this bounds the
    // documents held in memory (fetched, parsed or waiting to be stored).
    // Twice the fetches: documents queued for the store's single writer do
    // not hold up the fetching and parsing of the next ones.
    let in_flight = 2 * config.fetch.concurrency + 2;
    let mut done = futures::stream::iter(config.feeds.iter().zip(&rows).enumerate())
        .map(|(i, (feed, row))| {
            // Each refresh is its own task: it makes progress (and releases the
            // store's write lock) while this loop records fetch states.
            let (task_ingest, feed, row) = (ingest.clone(), feed.clone(), row.clone());
            let id = row.id;
            let name = feed.name.clone();
            async move {
                let task =
                    tokio::spawn(async move { task_ingest.refresh(&feed, &row, waits).await });
                let out = task
                    .await
                    .unwrap_or_else(|e| (FeedReport::crashed(&name, &e.to_string()), None));
                (i, id, out)
            }
        })
        .buffer_unordered(in_flight)
        // Fetch states of the feeds finished meanwhile are recorded in one transaction.
        .ready_chunks(256);
    let mut reports: Vec<(usize, FeedReport)> = Vec::with_capacity(rows.len());
    while let Some(batch) = done.next().await {
        // When each is next due, for a daemon running on the same store.
        let now = chrono::Utc::now();
        let states: Vec<(i64, FetchState)> = batch
            .iter()
            .filter_map(|(i, id, (_, st))| {
                let mut st = st.clone()?;
                let wait = crate::scheduler::due_in(
                    config.feeds[*i].interval,
                    config.min_interval,
                    &st,
                    now,
                    false,
                    &mut rand::rng(),
                );
                st.due_at = Some(now + wait);
                Some((*id, st))
            })
            .collect();
        let saved = ingest.store.save_fetch_states(&states, None).await;
        for (i, _, (mut r, _)) in batch {
            if let Err(e) = &saved {
                r.message = Some(format!("recording its fetch state failed: {e}"));
            }
            on_done(&r);
            reports.push((i, r));
        }
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// Re-computes the tags and exclusion of every stored item from the current
/// rules, without fetching anything; returns how many items changed.
pub async fn retag(ingest: &Ingest) -> anyhow::Result<usize> {
    let config = &ingest.config;
    let feed_tags: HashMap<&str, &[String]> = config
        .feeds
        .iter()
        .map(|f| (f.name.as_str(), f.tags.as_slice()))
        .collect();
    let (mut after, mut changed) = (0, 0);
    loop {
        let batch = ingest
            .store
            .items_for_tagging(after, 1000)
            .await
            .context("reading stored items")?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.item_id;
        let tagged: Vec<(i64, Tagging)> = batch
            .iter()
            .map(|i| {
                let feed_tags = feed_tags.get(i.feed.as_str()).copied().unwrap_or(&[]);
                let t = ingest.tagger.apply_html(
                    feed_tags,
                    &i.title,
                    i.summary_html.as_deref(),
                    i.content_html.as_deref(),
                    &i.categories,
                );
                (i.item_id, t)
            })
            .collect();
        changed += ingest
            .store
            .set_tagging(&tagged)
            .await
            .context("storing new tags")?;
    }
    ingest
        .store
        .set_tag_rules(&tag::rules_fingerprint(config))
        .await
        .context("recording the tag rules")?;
    Ok(changed)
}

/// Re-tags the store when the rules changed since it was last tagged;
/// how many items changed, or `None` when the rules are the same.
pub async fn retag_if_rules_changed(ingest: &Ingest) -> anyhow::Result<Option<usize>> {
    let current = tag::rules_fingerprint(&ingest.config);
    let stored = ingest
        .store
        .tag_rules()
        .await
        .context("reading the store's tag rules")?;
    if stored.as_deref() == Some(current.as_str()) {
        return Ok(None);
    }
    Ok(Some(retag(ingest).await?))
}

/// What a publish did: every document's path, and those whose bytes changed.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Every published path, relative to the folder.
    pub all: Vec<String>,
    /// The paths written because their content changed.
    pub changed: Vec<String>,
}

/// Renders every published document (the digest archive included) and
/// writes the changed ones under `out`.
pub async fn publish(
    config: &Config,
    store: &Store,
    out: &std::path::Path,
) -> anyhow::Result<Published> {
    let mut docs = publish::render_all(config, store)
        .await
        .context("rendering the published documents")?;
    docs.extend(
        crate::archive::documents(config, store)
            .await
            .context("rendering the digest archive")?,
    );
    let changed = publish::write_dir(out, &docs)?;
    Ok(Published {
        all: docs.into_iter().map(|d| d.path).collect(),
        changed,
    })
}

/// Copies every table of `from` into `to` (`gazette db copy`), keeping ids,
/// keys, fetch state, HTTP validators, tombstones, the digest ledger and
/// the store key, so published entry ids do not change when a user moves
/// their store. Refuses a target that holds anything. `progress` is told
/// the rows copied so far and the total, after every batch. Returns the
/// rows copied per table.
pub async fn copy_store(
    from: &Store,
    to: &Store,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    for name in ["feeds", "stories", "items", "digest_periods"] {
        let table = crate::store::Table::named(name).expect("a copied table");
        let n = to
            .count_rows(table)
            .await
            .context("reading the target store")?;
        if n > 0 {
            anyhow::bail!(
                "the target store is not empty (it holds {n} {name}): copy into an empty database"
            );
        }
    }
    let mut total = 0;
    for table in crate::store::TABLES {
        total += from
            .count_rows(table)
            .await
            .context("reading the store")?
            .max(0) as u64;
    }
    let (mut done, mut copied) = (0, Vec::new());
    for table in crate::store::TABLES {
        let mut after = None;
        let mut n = 0;
        loop {
            let rows = from
                .read_rows(table, after, COPY_BATCH)
                .await
                .with_context(|| format!("reading {}", table.name))?;
            let Some(last) = rows.last() else {
                break;
            };
            after = Some(table.key_of(last));
            to.write_rows(table, &rows)
                .await
                .with_context(|| format!("writing {}", table.name))?;
            n += rows.len() as u64;
            done += rows.len() as u64;
            progress(done, total);
        }
        copied.push((table.name, n));
    }
    to.finish_copy().await.context("finishing the copy")?;
    Ok(copied)
}

/// Rows read and written at a time by [`copy_store`].
const COPY_BATCH: i64 = 2000;
