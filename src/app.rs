//! The wiring point: builds the store, fetcher and tagger from a [`Config`]
//! and runs the use cases the CLI offers.

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use crate::config::Config;
use crate::fetch::{self, Fetcher};
use crate::model::{FetchState, ItemQuery, Story};
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

/// Lists stored stories.
pub async fn items(store: &Store, q: &ItemQuery) -> anyhow::Result<Vec<Story>> {
    store
        .list_stories(q)
        .await
        .context("listing stored stories")
}
