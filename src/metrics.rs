//! The daemon's counters and gauges, written in the Prometheus text format
//! for `/metrics`. Plain atomics and a mutex: no registry needed for a
//! dozen series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the fetch latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Everything `/metrics` reports, updated by the daemon as it works.
#[derive(Default)]
pub struct Metrics {
    fetches: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    items_new: AtomicU64,
    items_updated: AtomicU64,
    last_success: Mutex<BTreeMap<String, i64>>,
    deliveries: Mutex<BTreeMap<String, u64>>,
    last_digest: AtomicI64,
    heartbeat: AtomicI64,
    leased: AtomicU64,
    takeovers: AtomicU64,
}

impl Metrics {
    /// Records one fetch: its outcome (`ok`, `not_modified`, `timeout`…) and how long it took.
    pub fn fetched(&self, outcome: &str, took: Duration) {
        *self
            .fetches
            .lock()
            .expect("metrics lock")
            .entry(outcome.to_string())
            .or_default() += 1;
        let secs = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records items stored by a refresh.
    pub fn stored(&self, new: usize, updated: usize) {
        self.items_new.fetch_add(new as u64, Ordering::Relaxed);
        self.items_updated
            .fetch_add(updated as u64, Ordering::Relaxed);
    }

    /// Records a feed's last successful fetch (unix seconds).
    pub fn feed_succeeded(&self, feed: &str, at: i64) {
        self.last_success
            .lock()
            .expect("metrics lock")
            .insert(feed.to_string(), at);
    }

    /// Forgets a feed removed from the configuration.
    pub fn forget_feed(&self, feed: &str) {
        self.last_success.lock().expect("metrics lock").remove(feed);
    }

    /// Records digest deliveries by outcome (`sent`, `failed`).
    pub fn delivered(&self, outcome: &str, n: usize) {
        if n == 0 {
            return;
        }
        *self
            .deliveries
            .lock()
            .expect("metrics lock")
            .entry(outcome.to_string())
            .or_default() += n as u64;
    }

    /// How many feeds this instance holds leases on (is refreshing) now.
    pub fn leased(&self, n: usize) {
        self.leased.store(n as u64, Ordering::Relaxed);
    }

    /// Records feeds taken over from a lease that expired (another
    /// instance died or stalled with them).
    pub fn took_over(&self, n: usize) {
        self.takeovers.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records the time a digest was last sent (unix seconds).
    pub fn digest_sent(&self, at: i64) {
        self.last_digest.store(at, Ordering::Relaxed);
    }

    /// The scheduler loop calls this on every turn.
    pub fn beat(&self, at: i64) {
        self.heartbeat.store(at, Ordering::Relaxed);
    }

    /// When the scheduler last turned (unix seconds; 0 before it started).
    pub fn last_beat(&self) -> i64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition (format 0.0.4); `stories` is the
    /// store's current count.
    pub fn render(&self, stories: Option<i64>) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        head(
            &mut out,
            "gazette_fetches_total",
            "counter",
            "Feed fetches by outcome.",
        );
        for (outcome, n) in self.fetches.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gazette_fetches_total{{outcome=\"{}\"}} {n}",
                label(outcome)
            );
        }

        head(
            &mut out,
            "gazette_feeds_leased",
            "gauge",
            "Feeds this instance holds leases on (refreshing now).",
        );
        let _ = writeln!(
            out,
            "gazette_feeds_leased {}",
            self.leased.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "gazette_lease_takeovers_total",
            "counter",
            "Feeds this instance took over from another instance's expired lease.",
        );
        let _ = writeln!(
            out,
            "gazette_lease_takeovers_total {}",
            self.takeovers.load(Ordering::Relaxed)
        );

        head(
            &mut out,
            "gazette_fetch_duration_seconds",
            "histogram",
            "Time to fetch, parse and store one feed.",
        );
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "gazette_fetch_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "gazette_fetch_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             gazette_fetch_duration_seconds_sum {}\n\
             gazette_fetch_duration_seconds_count {count}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );

        head(
            &mut out,
            "gazette_items_stored_total",
            "counter",
            "Items stored since start, new or updated in place.",
        );
        let _ = writeln!(
            out,
            "gazette_items_stored_total{{kind=\"new\"}} {}\ngazette_items_stored_total{{kind=\"updated\"}} {}",
            self.items_new.load(Ordering::Relaxed),
            self.items_updated.load(Ordering::Relaxed)
        );

        if let Some(n) = stories {
            head(
                &mut out,
                "gazette_stories",
                "gauge",
                "Stories in the store.",
            );
            let _ = writeln!(out, "gazette_stories {n}");
        }

        head(
            &mut out,
            "gazette_feed_last_success_timestamp_seconds",
            "gauge",
            "When each feed last answered 200 or 304.",
        );
        for (feed, at) in self.last_success.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gazette_feed_last_success_timestamp_seconds{{feed=\"{}\"}} {at}",
                label(feed)
            );
        }

        head(
            &mut out,
            "gazette_digest_deliveries_total",
            "counter",
            "Digest deliveries by outcome.",
        );
        for (outcome, n) in self.deliveries.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "gazette_digest_deliveries_total{{outcome=\"{}\"}} {n}",
                label(outcome)
            );
        }

        head(
            &mut out,
            "gazette_digest_last_sent_timestamp_seconds",
            "gauge",
            "When a digest was last sent (0: not since start).",
        );
        let _ = writeln!(
            out,
            "gazette_digest_last_sent_timestamp_seconds {}",
            self.last_digest.load(Ordering::Relaxed)
        );
        head(
            &mut out,
            "gazette_scheduler_heartbeat_timestamp_seconds",
            "gauge",
            "When the scheduler loop last turned.",
        );
        let _ = writeln!(
            out,
            "gazette_scheduler_heartbeat_timestamp_seconds {}",
            self.last_beat()
        );
        out
    }
}

/// A label value escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_escaped_labels() {
        let m = Metrics::default();
        m.fetched("ok", Duration::from_millis(80));
        m.fetched("ok", Duration::from_secs(3));
        m.fetched("timeout", Duration::from_secs(31));
        m.stored(5, 1);
        m.feed_succeeded("UN \"News\"\\", 1_700_000_000);
        m.delivered("sent", 2);
        let text = m.render(Some(42));
        assert!(text.contains("gazette_fetches_total{outcome=\"ok\"} 2\n"));
        assert!(text.contains("gazette_fetches_total{outcome=\"timeout\"} 1\n"));
        assert!(text.contains("gazette_fetch_duration_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("gazette_fetch_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("gazette_fetch_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("gazette_fetch_duration_seconds_count 3\n"));
        assert!(text.contains("gazette_items_stored_total{kind=\"new\"} 5\n"));
        assert!(text.contains("gazette_stories 42\n"));
        assert!(text.contains(
            "gazette_feed_last_success_timestamp_seconds{feed=\"UN \\\"News\\\"\\\\\"} 1700000000\n"
        ));
        assert!(text.contains("gazette_digest_deliveries_total{outcome=\"sent\"} 2\n"));
        assert!(text.contains("# TYPE gazette_fetch_duration_seconds histogram\n"));
    }
}
