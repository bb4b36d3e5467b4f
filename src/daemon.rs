//! `gazette run`'s loop: polls each feed when the [`Schedule`] says it is
//! due, republishes when stories change, sends the digest on its cron
//! schedule, reloads `feeds.toml` when it changes, prunes past the
//! retention, and stops cleanly. [`crate::app::Application`] builds it and
//! serves HTTP beside it.
//!
//! All schedule state lives in the store: a feed's next poll follows from
//! its last fetch time and backoff (the `feeds` table, through
//! [`scheduler::due_in`]), the digest's from its recorded periods. A restart
//! resumes where the last run was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app;
use crate::config::{Config, FeedConfig};
use crate::delivery;
use crate::metrics::Metrics;
use crate::model::{FeedRow, FetchState, FetchStatus};
use crate::pipeline::{FeedReport, FeedStatus, Ingest, Waits};
use crate::scheduler::{self, CronSchedule, Schedule};
use crate::serve::Site;
use crate::store::Store;

/// How often the loop turns.
const TICK: Duration = Duration::from_millis(250);
/// How often the configuration file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Publishing happens at most this often, however fast stories arrive.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// While a digest period has deliveries left to retry, it is retried this often.
const DIGEST_RETRY: Duration = Duration::from_secs(600);
/// While another instance holds the digest sender's lock, this one looks
/// again this often (to finish the period if that instance dies).
const SENDER_BUSY_RETRY: Duration = Duration::from_secs(30);
/// How often stories past the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A feed lease lasts this long; the holder renews its leases every
/// [`LEASE_RENEW_EVERY`] while it works, so a dead instance's feeds are
/// free again within this long.
const LEASE_FOR: Duration = Duration::from_secs(10);
/// How often an instance renews the leases it holds.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(3);

/// A configured feed and the store's row for it.
struct Planned {
    feed: FeedConfig,
    row: FeedRow,
}

/// A finished refresh task.
struct Done {
    name: String,
    row_id: i64,
    /// The address it fetched: a state for an address since changed is dropped.
    url: String,
    took: Duration,
    report: FeedReport,
    state: Option<FetchState>,
}

/// What the configuration file looked like when last read.
#[derive(Default, PartialEq)]
struct Watched {
    path: PathBuf,
    stamp: Option<(std::time::SystemTime, u64)>,
    text: String,
    checked: Option<Instant>,
}

/// The daemon: what it runs with and what it is doing.
pub(crate) struct Daemon {
    config: Arc<Config>,
    store: Store,
    ingest: Ingest,
    site: Arc<Site>,
    metrics: Arc<Metrics>,
    feeds: HashMap<String, Planned>,
    schedule: Schedule,
    tasks: JoinSet<Done>,
    states: Vec<(i64, FetchState)>,
    /// Stories changed since the last publish.
    dirty: bool,
    last_publish: Option<Instant>,
    /// Every digest's schedule.
    cron: Vec<CronSchedule>,
    next_digest: Option<Instant>,
    digest_task: Option<tokio::task::JoinHandle<anyhow::Result<delivery::SendReport>>>,
    next_prune: Instant,
    watched: Watched,
    /// This instance's name in feed leases.
    owner: String,
    /// When its leases were last renewed.
    renewed: Instant,
}

/// A name for this process in feed leases: host, process id and a random
/// part (a restarted process is another owner).
fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "gazette".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Daemon {
    /// Plans every feed from its stored state (overdue ones spread over the
    /// first minute), re-tags when the rules changed, and plans the digest
    /// (a fire time missed while down is sent at once).
    pub(crate) async fn start(
        ingest: Ingest,
        site: Arc<Site>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Daemon> {
        let config = ingest.config.clone();
        let mut d = Daemon {
            watched: Watched {
                path: config.path.clone(),
                stamp: file_stamp(&config.path),
                text: std::fs::read_to_string(&config.path).unwrap_or_default(),
                checked: Some(Instant::now()),
            },
            cron: Vec::new(),
            next_digest: None,
            digest_task: None,
            store: ingest.store.clone(),
            config,
            ingest,
            site,
            metrics,
            feeds: HashMap::new(),
            schedule: Schedule::default(),
            tasks: JoinSet::new(),
            states: Vec::new(),
            dirty: true,
            last_publish: None,
            next_prune: Instant::now(),
            owner: owner_name(),
            renewed: Instant::now(),
        };
        d.plan_feeds(true).await?;
        if let Some(n) = app::retag_if_rules_changed(&d.ingest).await? {
            tracing::info!(items = n, "tag rules changed: stored stories re-tagged");
        }
        d.plan_digest(true);
        Ok(d)
    }

    /// Runs until `shutdown` resolves; `hangup` (SIGHUP) asks for a reload
    /// of the configuration file.
    pub(crate) async fn run(
        &mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
        hangup: Arc<Notify>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = hangup.notified() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    self.watched.stamp = None;
                    self.watched.checked = None;
                    self.reload(true).await;
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match done {
                        Ok(done) => self.finished(done),
                        Err(e) => tracing::error!(error = %e, "a refresh task failed"),
                    }
                }
                _ = tick.tick() => {}
            }
            self.turn().await;
        }
        self.stop().await;
    }

    /// When feed `f` is next due, from its fetch state.
    fn wait_for(&self, f: &FeedConfig, st: &FetchState, start: bool) -> Duration {
        scheduler::due_in(
            f.interval,
            self.config.min_interval,
            st,
            Utc::now(),
            start,
            &mut rand::rng(),
        )
    }

    /// Makes the plan match the configuration; `starting` spreads overdue
    /// feeds, a reload polls new feeds promptly.
    async fn plan_feeds(&mut self, starting: bool) -> anyhow::Result<()> {
        let rows = self
            .store
            .sync_feeds(&self.config.feeds)
            .await
            .map_err(|e| anyhow::anyhow!("recording the configured feeds in the store: {e}"))?;
        let mut feeds = HashMap::with_capacity(rows.len());
        for (feed, row) in self.config.feeds.iter().zip(rows) {
            let same = self
                .feeds
                .remove(&feed.name)
                .filter(|p| p.row.url == row.url && p.row.id == row.id);
            let planned = match same {
                // Same feed, same address: keep its place (and a running refresh).
                Some(mut p) => {
                    if p.feed.interval != feed.interval {
                        let wait = self.wait_for(feed, &p.row.state, false);
                        self.schedule.plan(&feed.name, wait);
                    }
                    p.feed = feed.clone();
                    p
                }
                None => {
                    if row.state.status == FetchStatus::Gone {
                        tracing::warn!(feed = %feed.name,
                            "marked gone (HTTP 410) earlier: not polled; change its url or remove it");
                    }
                    let wait = self.wait_for(feed, &row.state, starting);
                    self.schedule.plan(&feed.name, wait);
                    Planned {
                        feed: feed.clone(),
                        row,
                    }
                }
            };
            feeds.insert(feed.name.clone(), planned);
        }
        for gone in self.feeds.keys() {
            tracing::info!(feed = %gone, "removed from the configuration: no longer polled (its stories stay)");
            self.metrics.forget_feed(gone);
        }
        self.schedule.retain(|name| feeds.contains_key(name));
        self.feeds = feeds;
        Ok(())
    }

    /// Reads the digest schedule; `starting` sends a digest whose time
    /// passed while the daemon was down.
    fn plan_digest(&mut self, starting: bool) {
        self.cron = self
            .config
            .digests
            .iter()
            .map(|d| d.schedule.clone())
            .collect();
        let pending_retry = self.next_digest.filter(|_| !starting);
        self.next_digest = if self.cron.is_empty() {
            None
        } else if starting {
            Some(Instant::now())
        } else {
            // A retry of failed deliveries already planned stays, if sooner.
            match (next_fire(&self.cron), pending_retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        for d in &self.config.digests {
            if let Some(at) = d.schedule.next_after(Utc::now()) {
                tracing::info!(digest = %d.name, next = %at, "digest scheduled");
            }
        }
    }

    /// One turn of the loop: everything that is due.
    async fn turn(&mut self) {
        let now = Instant::now();
        self.metrics.beat(Utc::now().timestamp());
        if self.watched.checked.is_none_or(|t| now - t >= WATCH_EVERY) {
            self.reload(false).await;
        }
        self.flush_states().await;
        self.renew_leases().await;
        self.start_due_feeds().await;
        if self.dirty && self.last_publish.is_none_or(|t| now - t >= PUBLISH_EVERY) {
            self.publish().await;
        }
        self.digest_turn(now).await;
        if self.config.retention.is_some() && now >= self.next_prune {
            self.next_prune = now + PRUNE_EVERY;
            self.prune().await;
        }
    }

    /// Leases the feeds the schedule says are due and refreshes them; those
    /// another instance holds or fetched meanwhile are planned again from
    /// the state it left.
    async fn start_due_feeds(&mut self) {
        let room = (self.config.fetch.concurrency + 2).saturating_sub(self.tasks.len());
        let due = self.schedule.take_due(room);
        if due.is_empty() {
            return;
        }
        let ids: Vec<i64> = due
            .iter()
            .filter_map(|n| self.feeds.get(n).map(|p| p.row.id))
            .collect();
        let now = Utc::now();
        let until = now + LEASE_FOR;
        let leases = match self.store.lease_feeds(&ids, &self.owner, now, until).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "leasing due feeds failed; will retry");
                for name in &due {
                    self.schedule.finished(name, Duration::from_secs(1));
                }
                return;
            }
        };
        self.metrics.took_over(leases.taken_over);
        for (row, lease_until) in leases.elsewhere {
            let Some(p) = self.feeds.values_mut().find(|p| p.row.id == row.id) else {
                continue;
            };
            p.row = row;
            // Due again when the other instance's lease ends or its next
            // poll comes, whichever is later; a moment later when neither
            // says (another instance is taking it right now).
            let at = [lease_until, p.row.state.due_at]
                .into_iter()
                .flatten()
                .max();
            let wait = at.and_then(|t| (t - now).to_std().ok()).unwrap_or_default()
                + Duration::from_millis(rand::random_range(500..2500));
            let name = p.feed.name.clone();
            self.schedule.finished(&name, wait);
        }
        for row in leases.leased {
            let Some(p) = self.feeds.values_mut().find(|p| p.row.id == row.id) else {
                continue;
            };
            p.row = row;
            let (ingest, feed, row) = (self.ingest.clone(), p.feed.clone(), p.row.clone());
            let name = feed.name.clone();
            self.tasks.spawn(async move {
                let started = Instant::now();
                let (row_id, url) = (row.id, row.url.clone());
                // Its own task: a panic is contained to this feed.
                let (report, state) =
                    tokio::spawn(async move { ingest.refresh(&feed, &row, Waits::All).await })
                        .await
                        .unwrap_or_else(|e| (FeedReport::crashed(&name, &e.to_string()), None));
                Done {
                    name: report.name.clone(),
                    row_id,
                    url,
                    took: started.elapsed(),
                    report,
                    state,
                }
            });
        }
        self.metrics.leased(self.tasks.len());
    }

    /// Keeps this instance's leases while it works on them.
    async fn renew_leases(&mut self) {
        if self.tasks.is_empty() || self.renewed.elapsed() < LEASE_RENEW_EVERY {
            return;
        }
        self.renewed = Instant::now();
        if let Err(e) = self
            .store
            .renew_leases(&self.owner, Utc::now() + LEASE_FOR)
            .await
        {
            tracing::warn!(error = %e, "renewing feed leases failed; will retry");
        }
    }

    fn finished(&mut self, d: Done) {
        let now = Utc::now();
        let outcome = match &d.report.status {
            FeedStatus::Ok => "ok".to_string(),
            FeedStatus::NotModified => "not_modified".into(),
            FeedStatus::Deferred(_) => "deferred".into(),
            FeedStatus::Gone => "gone".into(),
            FeedStatus::Failed(kind) => kind.clone(),
        };
        if !matches!(d.report.status, FeedStatus::Deferred(_)) || d.state.is_some() {
            self.metrics.fetched(&outcome, d.took);
        }
        self.metrics.stored(d.report.new, d.report.updated);
        if matches!(d.report.status, FeedStatus::Ok | FeedStatus::NotModified) {
            self.metrics.feed_succeeded(&d.name, now.timestamp());
        }
        if d.report.new + d.report.updated > 0 {
            tracing::info!(feed = %d.name, new = d.report.new, updated = d.report.updated, "stored");
            self.dirty = true;
        }
        let Some(p) = self.feeds.get(&d.name) else {
            // Removed from the configuration meanwhile.
            return;
        };
        // The feed may have a new address meanwhile: then the old address's
        // state (validators, redirects) means nothing, and the next poll
        // follows the new row's state.
        let current = p.row.id == d.row_id && p.row.url == d.url;
        let failed_unrecorded = current && d.state.is_none() && d.report.is_error();
        let (feed, mut st) = (
            p.feed.clone(),
            d.state.unwrap_or_else(|| p.row.state.clone()),
        );
        let wait = if failed_unrecorded {
            // The store failed or the task crashed: no state to go by, so
            // wait the floor instead of retrying at once.
            self.config.min_interval
        } else {
            self.wait_for(&feed, &st, false)
        };
        st.due_at = Some(now + wait);
        if current {
            self.states.push((d.row_id, st.clone()));
            if let Some(p) = self.feeds.get_mut(&d.name) {
                p.row.state = st;
            }
        }
        self.schedule.finished(&d.name, wait);
        self.metrics.leased(self.tasks.len());
    }

    async fn flush_states(&mut self) {
        if self.states.is_empty() {
            return;
        }
        let states = std::mem::take(&mut self.states);
        if let Err(e) = self
            .store
            .save_fetch_states(&states, Some(&self.owner))
            .await
        {
            tracing::error!(error = %e, feeds = states.len(), "recording fetch states failed; will retry");
            self.states = states;
        }
    }

    async fn publish(&mut self) {
        self.last_publish = Some(Instant::now());
        self.dirty = false;
        self.site.invalidate();
        let dir = self.config.publish.dir.clone();
        match app::publish(&self.config, &self.store, &dir).await {
            Ok(p) => {
                tracing::debug!(changed = p.changed.len(), dir = %dir.display(), "published");
                self.ping_hub(&p.changed);
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "publishing failed; will retry");
                self.dirty = true;
            }
        }
    }

    /// Tells the WebSub hub (if any) which feeds changed, in the background.
    fn ping_hub(&self, changed: &[String]) {
        let Some(hub) = self.config.publish.hub.clone() else {
            return;
        };
        let topics: Vec<String> = changed
            .iter()
            .filter(|p| p.ends_with(".atom") || p.ends_with(".rss") || p.ends_with(".json"))
            .map(|p| {
                self.config
                    .site_url
                    .join(p)
                    .map_or_else(|_| p.clone(), String::from)
            })
            .collect();
        if topics.is_empty() {
            return;
        }
        let fetcher = self.ingest.fetcher.clone();
        tokio::spawn(async move {
            match fetcher.notify_hub(&hub, &topics).await {
                Ok(()) => tracing::debug!(hub = %hub, topics = topics.len(), "hub notified"),
                Err(e) => tracing::warn!(error = %e, "notifying the WebSub hub failed"),
            }
        });
    }

    async fn digest_turn(&mut self, now: Instant) {
        if let Some(task) = &self.digest_task {
            if !task.is_finished() {
                return;
            }
            let task = self.digest_task.take().expect("checked above");
            let mut retry_in = DIGEST_RETRY;
            let retry = match task.await {
                Ok(Ok(report)) => self.digest_done(&report),
                Ok(Err(e))
                    if matches!(
                        e.downcast_ref::<crate::store::StoreError>(),
                        Some(crate::store::StoreError::SenderBusy)
                    ) =>
                {
                    // Another instance is sending it: look again soon, in
                    // case it dies before it is done.
                    tracing::debug!("another instance is sending the digest");
                    retry_in = SENDER_BUSY_RETRY;
                    true
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "sending the digest failed");
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "the digest task failed");
                    true
                }
            };
            let next = next_fire(&self.cron);
            self.next_digest = match (retry, next) {
                (true, Some(n)) => Some(n.min(Instant::now() + retry_in)),
                (true, None) => Some(Instant::now() + retry_in),
                (false, n) => n,
            };
            return;
        }
        if self.next_digest.is_some_and(|t| t <= now) {
            self.next_digest = None;
            let (config, store) = (self.config.clone(), self.store.clone());
            self.digest_task = Some(tokio::spawn(async move {
                delivery::send_due_digests(&config, &store, Utc::now(), None).await
            }));
        }
    }

    /// Logs and counts a digest run; whether deliveries are left to retry.
    fn digest_done(&mut self, report: &delivery::SendReport) -> bool {
        let mut retry = false;
        for (digest, e) in &report.errors {
            tracing::error!(digest = %digest, error = %e, "sending the digest failed");
            retry = true;
        }
        for p in &report.periods {
            let digest = &p.period.digest;
            if p.skipped {
                tracing::info!(digest = %digest, cutoff = %p.period.cutoff, "digest period had too few stories: skipped");
                continue;
            }
            // A new issue in the archive: the published files follow.
            self.dirty = true;
            self.metrics.delivered("sent", p.sent.len());
            self.metrics.delivered("failed", p.failed.len());
            if !p.sent.is_empty() {
                self.metrics.digest_sent(Utc::now().timestamp());
                tracing::info!(digest = %digest, cutoff = %p.period.cutoff, recipients = p.sent.len(), "digest sent");
            }
            for (to, reply, permanent) in &p.failed {
                tracing::warn!(digest = %digest, recipient = %to, reply = %reply, permanent, "digest delivery failed");
                retry |= !permanent;
            }
        }
        retry
    }

    async fn prune(&mut self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let now = Utc::now();
        let dated_before = now - retention;
        // Never a story still inside an unsent digest period.
        let created_before = match delivery::unsent_since(&self.config, &self.store, now).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "pruning skipped: digest periods unreadable");
                return;
            }
        };
        match self.store.prune_stories(dated_before, created_before).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(stories = n, "pruned stories past the retention");
                self.dirty = true;
            }
            Err(e) => tracing::error!(error = %e, "pruning failed"),
        }
    }

    /// Re-reads the configuration file when it changed (or when `forced`)
    /// and applies it; an invalid file is reported and the running
    /// configuration stays.
    async fn reload(&mut self, forced: bool) {
        self.watched.checked = Some(Instant::now());
        let stamp = file_stamp(&self.watched.path);
        if !forced && stamp == self.watched.stamp {
            return;
        }
        self.watched.stamp = stamp;
        let Ok(text) = std::fs::read_to_string(&self.watched.path) else {
            tracing::error!(file = %self.watched.path.display(), "cannot read the configuration; the running one stays");
            return;
        };
        if text == self.watched.text && !forced {
            return;
        }
        self.watched.text = text.clone();
        let config = match Config::parse(&self.watched.path, &text) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}; the running configuration stays");
                return;
            }
        };
        if config.http.listen != self.config.http.listen {
            tracing::warn!(listen = %config.http.listen, "[http] listen changed: restart gazette to use it");
        }
        let config = Arc::new(config);
        let ingest = match app::ingest(config.clone(), self.store.clone()) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the new configuration cannot run; the running one stays");
                return;
            }
        };
        let old = std::mem::replace(&mut self.config, config.clone());
        let old_ingest = std::mem::replace(&mut self.ingest, ingest);
        if let Err(e) = self.plan_feeds(false).await {
            tracing::error!(error = %format!("{e:#}"), "applying the new feed list failed; the running one stays, will retry");
            self.config = old;
            self.ingest = old_ingest;
            // Read the file again on the next check.
            self.watched.text.clear();
            self.watched.stamp = None;
            return;
        }
        match app::retag_if_rules_changed(&self.ingest).await {
            Ok(Some(n)) => tracing::info!(items = n, "tag rules changed: stored stories re-tagged"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "re-tagging failed"),
        }
        self.plan_digest(false);
        self.site.reconfigure(config);
        self.dirty = true;
        tracing::info!(feeds = self.feeds.len(), "configuration reloaded");
    }

    /// Stops taking work and lets in-flight work finish within the
    /// configured time; what does not finish is abandoned safely (its
    /// store transaction never commits; a digest delivery left `pending`
    /// is resent by the next run with the same Message-ID).
    async fn stop(&mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        tracing::info!(in_flight = self.tasks.len(), "stopping");
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok(done))) => self.finished(done),
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        abandoned = self.tasks.len(),
                        "in-flight fetches did not finish in time"
                    );
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        self.flush_states().await;
        if let Some(task) = self.digest_task.take() {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(report))) => {
                    self.digest_done(&report);
                }
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    "the digest delivery did not finish in time; the next run resumes it"
                ),
            }
        }
    }
}

/// The next fire time of any of `schedules` as an instant of the runtime's clock.
fn next_fire(schedules: &[CronSchedule]) -> Option<Instant> {
    let now = Utc::now();
    let at = schedules.iter().filter_map(|s| s.next_after(now)).min()?;
    let wait = (at - now).to_std().unwrap_or_default();
    Some(Instant::now() + wait)
}

fn file_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
