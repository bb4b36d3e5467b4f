//! The wiring point: builds the store, fetcher and tagger from a [`Config`]
//! and runs the use cases the CLI offers.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use chrono::{DateTime, Utc};

use crate::config::{Config, DatabaseUrl};
use crate::digest::{self, DigestError};
use crate::fetch::{self, Fetcher};
use crate::mail::{self, Mailer, Outgoing};
use crate::model::{
    Delivery, DeliveryState, DigestPeriod, FetchState, ItemQuery, PeriodStatus, Story,
};
use crate::pipeline::{FeedReport, Ingest, Waits};
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

/// What a publish did: every document's path, and those whose bytes changed.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Every published path, relative to the folder.
    pub all: Vec<String>,
    /// The paths written because their content changed.
    pub changed: Vec<String>,
}

/// Renders every published document and writes the changed ones under `out`.
pub async fn publish(
    config: &Config,
    store: &Store,
    out: &std::path::Path,
) -> anyhow::Result<Published> {
    let docs = publish::render_all(config, store)
        .await
        .context("rendering the published documents")?;
    let changed = publish::write_dir(out, &docs)?;
    Ok(Published {
        all: docs.into_iter().map(|d| d.path).collect(),
        changed,
    })
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

/// What one `digest send` did for one period.
#[derive(Debug, Clone)]
pub struct PeriodReport {
    /// The period.
    pub period: DigestPeriod,
    /// Recorded as skipped (no stories and `send_when_empty = false`).
    pub skipped: bool,
    /// Recipients that got it in this run, with the server's reply.
    pub sent: Vec<(String, String)>,
    /// Recipients it failed for in this run, with the reply; `true` when permanent.
    pub failed: Vec<(String, String, bool)>,
    /// Deliveries found `pending` (interrupted mid-send) and sent again.
    pub resumed: Vec<String>,
}

/// What a `digest send` did: one report per period it touched.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Unfinished earlier periods first, then the newly due one.
    pub periods: Vec<PeriodReport>,
}

impl SendReport {
    /// Any delivery failed in this run.
    pub fn has_failures(&self) -> bool {
        self.periods.iter().any(|p| !p.failed.is_empty())
    }
}

/// Sends the digest that is due at `now`, exactly once per recipient.
///
/// First finishes periods left open (a crash, a kill, temporary failures),
/// then records the newly due period, if any, with a queued delivery per
/// recipient, and sends those. Each delivery is marked `pending` in the
/// store before the transport is called and `sent` (or `failed`) right
/// after, so a rerun only sends what was not confirmed.
///
/// A delivery found `pending` had its outcome lost: the process died while
/// the server held the message. It is sent again with the same Message-ID.
/// The alternative, never resending it, would silently skip recipients
/// whenever the process dies before the server accepted the message (the
/// common case: the send is much longer than the instant between the
/// server's 250 and the store's commit); resending at worst duplicates a
/// message the receiving side can recognise by its Message-ID.
pub async fn send_due_digest(
    config: &Config,
    store: &Store,
    mailer: &Mailer,
    now: DateTime<Utc>,
) -> anyhow::Result<SendReport> {
    let cfg = digest::settings(config)?;
    let schedule = digest::schedule(cfg)?;
    // One sender at a time: another one's `pending` rows are in flight, not
    // interrupted. The OS drops the lock when its holder dies, even by kill -9.
    let _lock = sender_lock(config)?;
    let mut report = SendReport::default();
    for period in store.open_digest_periods().await? {
        report
            .periods
            .push(deliver_period(config, store, mailer, period).await?);
    }
    let last = store.digest_periods(1).await?.first().map(|p| p.cutoff);
    let Some(due) = digest::due_period(&schedule, last, now) else {
        return Ok(report);
    };
    let stories = digest::stories(store, due).await?;
    let recipients = digest::recipients(cfg)?;
    if recipients.is_empty() {
        return Err(DigestError::NoRecipients.into());
    }
    let send = !stories.is_empty() || cfg.send_when_empty;
    let from_domain = mail::mailbox(&cfg.from)?.email.domain().to_string();
    let rows: Vec<(String, String)> = if send {
        recipients
            .iter()
            .map(|m| (m.to_string(), new_message_id(due.cutoff, &from_domain)))
            .collect()
    } else {
        Vec::new()
    };
    let (period, _) = store
        .create_digest_period(
            due.start.timestamp(),
            due.cutoff.timestamp(),
            stories.len() as i64,
            &rows,
            Utc::now().timestamp(),
        )
        .await
        .context("recording the digest period")?;
    if period.status == PeriodStatus::Skipped {
        report.periods.push(PeriodReport {
            period,
            skipped: true,
            sent: vec![],
            failed: vec![],
            resumed: vec![],
        });
    } else if period.status == PeriodStatus::Open {
        report
            .periods
            .push(deliver_period(config, store, mailer, period).await?);
    }
    Ok(report)
}

/// Takes the digest sender's lock, a file beside the SQLite database.
fn sender_lock(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    let DatabaseUrl::Sqlite(db) = &config.database else {
        return Ok(None);
    };
    let mut path = db.clone().into_os_string();
    path.push(".digest-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the digest lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another `gazette digest send` (or the daemon) is sending the digest of this database"
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// `digest send` runs in which a delivery that keeps failing temporarily is
/// tried (each with the SMTP retries) before it is given up as failed.
pub const MAX_DELIVERY_RUNS: i64 = 5;

fn new_message_id(cutoff: DateTime<Utc>, domain: &str) -> String {
    let r: u64 = rand::random();
    format!(
        "<digest.{}.{r:016x}@{domain}>",
        cutoff.format("%Y%m%dT%H%MZ")
    )
}

/// Sends every unconfirmed delivery of an open period, in recipient order.
async fn deliver_period(
    config: &Config,
    store: &Store,
    mailer: &Mailer,
    period: DigestPeriod,
) -> anyhow::Result<PeriodReport> {
    let cfg = digest::settings(config)?;
    let range = digest::Period {
        start: period.start,
        cutoff: period.cutoff,
    };
    let stories = digest::stories(store, range).await?;
    let content = digest::build(config, cfg, &stories, range);
    let from = mail::mailbox(&cfg.from)?;
    let mut report = PeriodReport {
        period: period.clone(),
        skipped: false,
        sent: vec![],
        failed: vec![],
        resumed: vec![],
    };
    let deliveries = store.deliveries(period.id).await?;
    for d in &deliveries {
        let due = match d.state {
            DeliveryState::Queued => true,
            DeliveryState::Pending => {
                tracing::warn!(recipient = %d.recipient, message_id = %d.message_id,
                    "delivery was interrupted; sending it again with the same Message-ID");
                report.resumed.push(d.recipient.clone());
                true
            }
            DeliveryState::Failed => !d.permanent,
            DeliveryState::Sent => false,
        };
        if !due {
            continue;
        }
        let to = mail::mailbox(&d.recipient)?;
        let unsubscribe = digest::unsubscribe_for(cfg, &to);
        let message = mail::build_message(&Outgoing {
            from: from.clone(),
            to: to.clone(),
            subject: content.subject.clone(),
            message_id: d.message_id.clone(),
            date: std::time::SystemTime::now(),
            html: digest::render_html(&content, &unsubscribe)?,
            text: digest::render_text(&content, &unsubscribe)?,
            list_id: cfg.list_id.clone(),
            unsubscribe_url: unsubscribe.url.clone(),
            unsubscribe_mailto: unsubscribe.mailto.clone(),
        })?;
        let claimed = store
            .claim_delivery(d, Utc::now().timestamp())
            .await
            .context("recording a delivery as pending")?;
        if !claimed {
            // Another `digest send` (or the daemon) took it meanwhile.
            continue;
        }
        match mailer.send(&message).await {
            Ok(reply) => {
                store
                    .finish_delivery(
                        period.id,
                        &d.recipient,
                        DeliveryState::Sent,
                        Some(&reply),
                        false,
                        Utc::now().timestamp(),
                    )
                    .await
                    .context("recording a sent delivery")?;
                report.sent.push((d.recipient.clone(), reply));
            }
            Err(e) => {
                tracing::warn!(recipient = %d.recipient, error = %e.reply, "digest delivery failed");
                // A temporary failure is tried again by later sends, up to a point.
                let give_up = !e.permanent && !e.stops_run && d.attempts + 1 >= MAX_DELIVERY_RUNS;
                let reply = if give_up {
                    format!("gave up after {MAX_DELIVERY_RUNS} sends: {}", e.reply)
                } else {
                    e.reply.clone()
                };
                let permanent = e.permanent || give_up;
                store
                    .finish_delivery(
                        period.id,
                        &d.recipient,
                        DeliveryState::Failed,
                        Some(&reply),
                        permanent,
                        Utc::now().timestamp(),
                    )
                    .await
                    .context("recording a failed delivery")?;
                report.failed.push((d.recipient.clone(), reply, permanent));
                if e.stops_run {
                    // A TLS failure: every other recipient would fail alike.
                    break;
                }
            }
        }
    }
    let after = store.deliveries(period.id).await?;
    let finished = after.iter().all(|d| {
        d.state == DeliveryState::Sent || (d.state == DeliveryState::Failed && d.permanent)
    });
    if finished {
        store.close_digest_period(period.id).await?;
        report.period.status = PeriodStatus::Done;
    }
    Ok(report)
}

/// The most recent digest periods with their deliveries, newest first.
pub async fn digest_status(
    store: &Store,
    limit: i64,
) -> anyhow::Result<Vec<(DigestPeriod, Vec<Delivery>)>> {
    let mut out = Vec::new();
    for p in store.digest_periods(limit).await? {
        let d = store.deliveries(p.id).await?;
        out.push((p, d));
    }
    Ok(out)
}

/// Builds the mailer the `[digest]` section configures.
pub fn mailer(config: &Config) -> anyhow::Result<Mailer> {
    let cfg = digest::settings(config)?;
    Ok(Mailer::new(cfg)?)
}
