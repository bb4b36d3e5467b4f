//! The wiring point: builds the store, fetcher and tagger from a [`Config`]
//! and runs the use cases the CLI offers.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use crate::config::Config;
use crate::fetch::{self, Fetcher};
use crate::model::{FetchState, ItemQuery, Story};
use crate::pipeline::{self, FeedReport, Ingest, Waits};
use crate::publish;
use crate::serve;
use crate::store::Store;
use crate::tag::{self, Tagger, Tagging};

/// Opens the configured store (creating and migrating it when needed).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.database)
        .await
        .with_context(|| format!("opening the store configured in {}", config.path.display()))
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
    // Items rarely arrive more than a window late: stories older than two
    // windows leave the near-duplicate index.
    let horizon = chrono::Utc::now().timestamp() - 2 * config.dedup.window.as_secs() as i64;
    ingest
        .store
        .prune_bands(horizon)
        .await
        .context("pruning the near-duplicate index")?;
    // The fetcher's semaphores bound network concurrency; this bounds the
    // documents held in memory (fetched, parsed or waiting to be stored).
    let in_flight = config.fetch.concurrency + 2;
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
        let states: Vec<(i64, FetchState)> = batch
            .iter()
            .filter_map(|(_, id, (_, st))| Some((*id, st.clone()?)))
            .collect();
        let saved = ingest.store.save_fetch_states(&states).await;
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

/// The `meta` key under which the store keeps the fingerprint of the tag rules it applied.
const TAG_RULES_KEY: &str = "tag_rules";

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
                let t = pipeline::tag_item(
                    &ingest.tagger,
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
        .set_meta(TAG_RULES_KEY, &tag::rules_fingerprint(config))
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
        .meta(TAG_RULES_KEY)
        .await
        .context("reading the store's tag rules")?;
    if stored.as_deref() == Some(current.as_str()) {
        return Ok(None);
    }
    Ok(Some(retag(ingest).await?))
}

/// Lists stored stories.
pub async fn items(store: &Store, q: &ItemQuery) -> anyhow::Result<Vec<Story>> {
    store
        .list_stories(q)
        .await
        .context("listing stored stories")
}

/// Renders every published document and writes them under `out`; their
/// paths, relative to `out`.
pub async fn publish(
    config: &Config,
    store: &Store,
    out: &std::path::Path,
) -> anyhow::Result<Vec<String>> {
    let mut docs = Vec::new();
    for kind in publish::all_kinds(config) {
        docs.push(
            publish::render(config, store, &kind)
                .await
                .with_context(|| format!("rendering {}", kind.path()))?,
        );
    }
    publish::write_dir(out, &docs)?;
    Ok(docs.into_iter().map(|d| d.path).collect())
}

/// Serves the published documents over HTTP on the configured address
/// until `shutdown` resolves.
pub async fn serve(
    config: Arc<Config>,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let addr = config.http.listen;
    let listener = serve::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} ([http] listen in {}): is another server using it?",
            config.path.display()
        )
    })?;
    on_listening(listener.local_addr().unwrap_or(addr));
    let site = Arc::new(serve::Site::new(config, store));
    serve::serve(site, listener, shutdown)
        .await
        .context("serving HTTP")
}
