//! The wiring point: builds the store, fetcher and tagger from a [`Config`]
//! and runs the use cases the CLI offers.

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use crate::config::Config;
use crate::fetch::{self, Fetcher};
use crate::model::{ItemQuery, StoredItem};
use crate::pipeline::{FeedReport, Ingest, Waits};
use crate::store::Store;
use crate::tag::Tagger;

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
        tagger: Arc::new(Tagger::new(&config.tags)),
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
    // The fetcher's semaphores bound network concurrency; this bounds parsing work in flight.
    let in_flight = config.fetch.concurrency * 2;
    let mut reports: Vec<(usize, FeedReport)> =
        futures::stream::iter(config.feeds.iter().zip(&rows).enumerate())
            .map(|(i, (feed, row))| async move {
                let r = ingest.refresh(feed, row, waits).await;
                on_done(&r);
                (i, r)
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

/// Lists stored stories.
pub async fn items(store: &Store, q: &ItemQuery) -> anyhow::Result<Vec<StoredItem>> {
    store.list_items(q).await.context("listing stored stories")
}
