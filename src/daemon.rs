//! `gazette run`: one process that polls each feed on its own schedule,
//! republishes when stories change, serves HTTP, sends the digest on its
//! cron schedule, reloads `feeds.toml` when it changes, and stops cleanly.
//!
//! All schedule state lives in the store: a feed's next poll follows from
//! its last fetch time and backoff (the `feeds` table), the digest's from
//! its recorded periods. A restart resumes where the last run was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app;
use crate::config::{Config, FeedConfig};
use crate::digest;
use crate::metrics::Metrics;
use crate::model::{FeedRow, FetchState};
use crate::pipeline::{FeedReport, FeedStatus, Ingest, Waits};
use crate::publish;
use crate::scheduler::CronSchedule;
use crate::serve::{self, Site};
use crate::store::Store;

/// How often the scheduler loop turns.
const TICK: Duration = Duration::from_millis(250);
/// How often the configuration file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Publishing happens at most this often, however fast stories arrive.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// A server hint (`ttl`, `sy:updatePeriod`) never stretches an interval beyond this.
const MAX_HINT: Duration = Duration::from_secs(24 * 3600);
/// Overdue feeds at start are spread over at most this long (no burst).
const START_SPREAD: Duration = Duration::from_secs(60);
/// While a digest period has deliveries left to retry, it is retried this often.
const DIGEST_RETRY: Duration = Duration::from_secs(600);
/// How often stories past the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// One feed's place in the schedule.
struct Plan {
    feed: FeedConfig,
    row: FeedRow,
    due: Instant,
    running: bool,
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

/// Runs the daemon until `shutdown` resolves; `hangup` (SIGHUP) asks for a
/// reload of the configuration file.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
    hangup: Arc<Notify>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = app::open_store(&config).await?;
    let metrics = Arc::new(Metrics::default());
    let site = Arc::new(Site::new(config.clone(), store.clone()).with_metrics(metrics.clone()));
    let listen = config.http.listen;
    let listener = serve::bind(listen).await.with_context(|| {
        format!(
            "cannot listen on {listen} ([http] listen in {}): is another server using it?",
            config.path.display()
        )
    })?;
    tracing::info!(address = %listener.local_addr().unwrap_or(listen), "serving HTTP");
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

    let mut d = Daemon::start(config, store.clone(), site, metrics).await?;
    let result = d.run(shutdown, hangup).await;
    stop_http.notify_one();
    // Open keep-alive connections must not hold the exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    store.close().await;
    tracing::info!("stopped");
    result
}

struct Daemon {
    config: Arc<Config>,
    store: Store,
    ingest: Ingest,
    site: Arc<Site>,
    metrics: Arc<Metrics>,
    plans: HashMap<String, Plan>,
    tasks: JoinSet<Done>,
    states: Vec<(i64, FetchState)>,
    /// Stories changed since the last publish.
    dirty: bool,
    last_publish: Option<Instant>,
    schedule: Option<CronSchedule>,
    next_digest: Option<Instant>,
    digest_task: Option<tokio::task::JoinHandle<anyhow::Result<app::SendReport>>>,
    next_prune: Instant,
    watched: Watched,
    /// For WebSub hub notifications.
    hub_client: reqwest::Client,
}

/// What the configuration file looked like when last read.
#[derive(Default, PartialEq)]
struct Watched {
    path: PathBuf,
    stamp: Option<(std::time::SystemTime, u64)>,
    text: String,
    checked: Option<Instant>,
}

impl Daemon {
    async fn start(
        config: Arc<Config>,
        store: Store,
        site: Arc<Site>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Daemon> {
        let ingest = app::ingest(config.clone(), store.clone())?;
        let config_for_ua = config.site_url.clone();
        let mut d = Daemon {
            watched: Watched {
                path: config.path.clone(),
                stamp: file_stamp(&config.path),
                text: std::fs::read_to_string(&config.path).unwrap_or_default(),
                checked: Some(Instant::now()),
            },
            schedule: None,
            next_digest: None,
            digest_task: None,
            config,
            store,
            ingest,
            site,
            metrics,
            plans: HashMap::new(),
            tasks: JoinSet::new(),
            states: Vec::new(),
            dirty: true,
            last_publish: None,
            next_prune: Instant::now(),
            hub_client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .user_agent(crate::fetch::default_user_agent(&config_for_ua))
                .build()
                .context("building the HTTP client for the WebSub hub")?,
        };
        d.plan_feeds(true).await?;
        if let Some(n) = app::retag_if_rules_changed(&d.ingest).await? {
            tracing::info!(items = n, "tag rules changed: stored stories re-tagged");
        }
        d.plan_digest(true)?;
        Ok(d)
    }

    /// Makes the plan match the configuration; `starting` spreads overdue
    /// feeds, a reload polls new feeds promptly.
    async fn plan_feeds(&mut self, starting: bool) -> anyhow::Result<()> {
        let rows = self
            .store
            .sync_feeds(&self.config.feeds)
            .await
            .context("recording the configured feeds in the store")?;
        let now = Utc::now();
        let mut plans = HashMap::with_capacity(rows.len());
        for (feed, row) in self.config.feeds.iter().zip(rows) {
            let plan = match self.plans.remove(&feed.name) {
                // Same feed, same address: keep its place (and a running refresh).
                Some(mut p) if p.row.url == row.url && p.row.id == row.id => {
                    if p.feed.interval != feed.interval && !p.running {
                        p.due = due_from_state(&self.config, feed, &p.row.state, now, false);
                    }
                    p.feed = feed.clone();
                    p
                }
                _ => {
                    if row.state.status == "gone" {
                        tracing::warn!(feed = %feed.name,
                            "marked gone (HTTP 410) earlier: not polled; change its url or remove it");
                    }
                    Plan {
                        due: due_from_state(&self.config, feed, &row.state, now, starting),
                        feed: feed.clone(),
                        row,
                        running: false,
                    }
                }
            };
            plans.insert(feed.name.clone(), plan);
        }
        for gone in self.plans.keys() {
            tracing::info!(feed = %gone, "removed from the configuration: no longer polled (its stories stay)");
            self.metrics.forget_feed(gone);
        }
        self.plans = plans;
        Ok(())
    }

    /// Reads the digest schedule; `starting` sends a digest whose time
    /// passed while the daemon was down.
    fn plan_digest(&mut self, starting: bool) -> anyhow::Result<()> {
        self.schedule = match &self.config.digest {
            Some(cfg) => Some(digest::schedule(cfg)?),
            None => None,
        };
        let pending_retry = self.next_digest.filter(|_| !starting);
        self.next_digest = match &self.schedule {
            Some(_) if starting => Some(Instant::now()),
            // A retry of failed deliveries already planned stays, if sooner.
            Some(s) => match (next_fire(s), pending_retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            None => None,
        };
        if let Some(at) = self
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(Utc::now()))
        {
            tracing::info!(next = %at, "digest scheduled");
        }
        Ok(())
    }

    async fn run(
        &mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
        hangup: Arc<Notify>,
    ) -> anyhow::Result<()> {
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
        Ok(())
    }

    /// One turn of the loop: everything that is due.
    async fn turn(&mut self) {
        let now = Instant::now();
        self.metrics.beat(Utc::now().timestamp());
        if self.watched.checked.is_none_or(|t| now - t >= WATCH_EVERY) {
            self.reload(false).await;
        }
        self.flush_states().await;
        self.start_due_feeds(now);
        if self.dirty && self.last_publish.is_none_or(|t| now - t >= PUBLISH_EVERY) {
            self.publish().await;
        }
        self.digest_turn(now).await;
        if self.config.retention.is_some() && now >= self.next_prune {
            self.next_prune = now + PRUNE_EVERY;
            self.prune().await;
        }
    }

    fn start_due_feeds(&mut self, now: Instant) {
        let limit = self.config.fetch.concurrency + 2;
        let mut due: Vec<&mut Plan> = self
            .plans
            .values_mut()
            .filter(|p| !p.running && p.due <= now)
            .collect();
        due.sort_by_key(|p| p.due);
        for p in due {
            if self.tasks.len() >= limit {
                break;
            }
            p.running = true;
            let (ingest, feed, row) = (self.ingest.clone(), p.feed.clone(), p.row.clone());
            self.tasks.spawn(async move {
                let started = Instant::now();
                let name = feed.name.clone();
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
        // The feed may have been removed or given a new address meanwhile:
        // then the old address's state (validators, redirects) means nothing.
        let current = self
            .plans
            .get(&d.name)
            .is_some_and(|p| p.row.id == d.row_id && p.row.url == d.url);
        if !current {
            return;
        }
        if let Some(st) = &d.state {
            self.states.push((d.row_id, st.clone()));
        }
        if let Some(p) = self.plans.get_mut(&d.name) {
            p.running = false;
            let failed_unrecorded = d.state.is_none() && d.report.is_error();
            if let Some(st) = d.state {
                p.row.state = st;
            }
            p.due = if failed_unrecorded {
                // The store failed or the task crashed: no state to go by, so
                // wait the floor instead of retrying at once.
                Instant::now() + self.config.min_interval
            } else {
                due_from_state(&self.config, &p.feed, &p.row.state, now, false)
            };
        }
    }

    async fn flush_states(&mut self) {
        if self.states.is_empty() {
            return;
        }
        let states = std::mem::take(&mut self.states);
        if let Err(e) = self.store.save_fetch_states(&states).await {
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
        let client = self.hub_client.clone();
        tokio::spawn(async move {
            match publish::notify_hub(&client, &hub, &topics).await {
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
            let retry = match task.await {
                Ok(Ok(report)) => self.digest_done(&report),
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "sending the digest failed");
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "the digest task failed");
                    true
                }
            };
            let next = self.schedule.as_ref().and_then(next_fire);
            self.next_digest = match (retry, next) {
                (true, Some(n)) => Some(n.min(Instant::now() + DIGEST_RETRY)),
                (true, None) => Some(Instant::now() + DIGEST_RETRY),
                (false, n) => n,
            };
            return;
        }
        if self.next_digest.is_some_and(|t| t <= now) {
            self.next_digest = None;
            let (config, store) = (self.config.clone(), self.store.clone());
            self.digest_task = Some(tokio::spawn(async move {
                let mailer = app::mailer(&config)?;
                app::send_due_digest(&config, &store, &mailer, Utc::now()).await
            }));
        }
    }

    /// Logs and counts a digest run; whether deliveries are left to retry.
    fn digest_done(&self, report: &app::SendReport) -> bool {
        let mut retry = false;
        for p in &report.periods {
            if p.skipped {
                tracing::info!(cutoff = %p.period.cutoff, "digest period had no stories: skipped");
                continue;
            }
            self.metrics.delivered("sent", p.sent.len());
            self.metrics.delivered("failed", p.failed.len());
            if !p.sent.is_empty() {
                self.metrics.digest_sent(Utc::now().timestamp());
                tracing::info!(cutoff = %p.period.cutoff, recipients = p.sent.len(), "digest sent");
            }
            for (to, reply, permanent) in &p.failed {
                tracing::warn!(recipient = %to, reply = %reply, permanent, "digest delivery failed");
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
        let dated_before = now.timestamp() - retention.as_secs() as i64;
        // Never a story still inside an unsent digest period.
        let created_before = match self.unsent_since().await {
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

    /// The start of the oldest digest period not yet sent (unix seconds).
    async fn unsent_since(&self) -> anyhow::Result<i64> {
        if self.config.digest.is_none() {
            return Ok(i64::MAX);
        }
        let mut since = match self.store.digest_periods(1).await?.first() {
            Some(last) => last.cutoff.timestamp(),
            // The first digest covers the last 7 days.
            None => Utc::now().timestamp() - 7 * 86_400,
        };
        for p in self.store.open_digest_periods().await? {
            since = since.min(p.start.timestamp());
        }
        Ok(since)
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
        if let Err(e) = self.plan_digest(false) {
            tracing::error!(error = %format!("{e:#}"), "the digest schedule cannot be used");
        }
        self.site.reconfigure(config);
        self.dirty = true;
        tracing::info!(feeds = self.plans.len(), "configuration reloaded");
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

/// When a feed is next due, from its stored fetch state: its interval after
/// the last fetch (stretched by the feed's own `ttl` / `sy:updatePeriod`
/// hint, never below `min_interval`), or later when a backoff or
/// Retry-After says so. `spread` scatters overdue feeds over the first
/// minute instead of firing them together.
fn due_from_state(
    config: &Config,
    feed: &FeedConfig,
    st: &FetchState,
    now: DateTime<Utc>,
    spread: bool,
) -> Instant {
    if st.status == "gone" {
        return Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    }
    let interval = interval_of(config, feed, st);
    let mut rng = rand::rng();
    let at = match st.last_fetch_at {
        Some(last) => {
            // ±10% so feeds with the same interval drift apart.
            let jittered = interval.mul_f64(rng.random_range(0.9..1.1));
            last + jittered.as_secs() as i64
        }
        None => now.timestamp(),
    };
    let at = match st.next_fetch_at {
        // A backoff or Retry-After, but never sooner than the floor.
        Some(next) => next.max(
            st.last_fetch_at.unwrap_or(now.timestamp()) + config.min_interval.as_secs() as i64,
        ),
        None => at,
    };
    let wait = at - now.timestamp();
    if wait > 0 {
        return Instant::now() + Duration::from_secs(wait as u64);
    }
    // Overdue feeds after a restart spread over the first minute; feeds
    // never fetched (a first run, a feed just added) start within seconds.
    let window = if spread && st.last_fetch_at.is_some() {
        interval.min(START_SPREAD)
    } else {
        interval.min(Duration::from_secs(2))
    };
    Instant::now() + window.mul_f64(rng.random_range(0.0..1.0))
}

/// A feed's polling interval: its own (or the default), stretched by the
/// feed's hint, never below `min_interval`.
fn interval_of(config: &Config, feed: &FeedConfig, st: &FetchState) -> Duration {
    let hint = st
        .ttl_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64).min(MAX_HINT))
        .unwrap_or_default();
    feed.interval.max(hint).max(config.min_interval)
}

/// The next fire time of `s` as an instant of the runtime's clock.
fn next_fire(s: &CronSchedule) -> Option<Instant> {
    let now = Utc::now();
    let at = s.next_after(now)?;
    let wait = (at - now).to_std().unwrap_or_default();
    Some(Instant::now() + wait)
}

fn file_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        Config::parse(
            Path::new("feeds.toml"),
            &format!("min_interval = \"5m\"\npoll_interval = \"1h\"\n{extra}\n[[feeds]]\nname = \"a\"\nurl = \"https://a.example/feed\"\n"),
        )
        .unwrap()
    }

    fn secs_until(i: Instant) -> i64 {
        (i - Instant::now()).as_secs() as i64
    }

    #[test]
    fn intervals_follow_hints_within_bounds() {
        let c = config("");
        let f = &c.feeds[0];
        let mut st = FetchState::default();
        assert_eq!(interval_of(&c, f, &st), Duration::from_secs(3600));
        st.ttl_seconds = Some(7200);
        assert_eq!(interval_of(&c, f, &st), Duration::from_secs(7200));
        st.ttl_seconds = Some(30 * 86_400);
        assert_eq!(interval_of(&c, f, &st), MAX_HINT);
        let fast = config("[fetch]\n").feeds[0].clone();
        let mut fast = fast;
        fast.interval = Duration::from_secs(10);
        assert_eq!(
            interval_of(&c, &fast, &FetchState::default()),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn due_times_resume_from_the_store() {
        let c = config("");
        let f = &c.feeds[0];
        let now = Utc::now();
        // Fetched 10 minutes ago with a 1 h interval: due in about 50 minutes.
        let st = FetchState {
            last_fetch_at: Some(now.timestamp() - 600),
            ..Default::default()
        };
        let wait = secs_until(due_from_state(&c, f, &st, now, true));
        assert!((2600..=3400).contains(&wait), "{wait}");
        // Overdue at start: within the first minute, not all at once.
        let overdue = FetchState {
            last_fetch_at: Some(now.timestamp() - 86_400),
            ..Default::default()
        };
        let waits: Vec<i64> = (0..50)
            .map(|_| secs_until(due_from_state(&c, f, &overdue, now, true)))
            .collect();
        assert!(waits.iter().all(|w| (0..=60).contains(w)));
        assert!(waits.iter().any(|w| *w != waits[0]), "spread, not a burst");
        // Never fetched: within seconds.
        let wait = secs_until(due_from_state(&c, f, &FetchState::default(), now, true));
        assert!((0..=2).contains(&wait), "{wait}");
        // Retry-After beyond the interval wins.
        let st = FetchState {
            last_fetch_at: Some(now.timestamp() - 600),
            next_fetch_at: Some(now.timestamp() + 7200),
            status: "throttled".into(),
            ..Default::default()
        };
        let wait = secs_until(due_from_state(&c, f, &st, now, true));
        assert!((7190..=7200).contains(&wait), "{wait}");
        // Gone feeds wait for a new url.
        let st = FetchState {
            status: "gone".into(),
            ..Default::default()
        };
        assert!(secs_until(due_from_state(&c, f, &st, now, true)) > 365 * 86_400);
    }
}
