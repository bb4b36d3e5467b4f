//! Decides when things are due: a feed's next poll (from its stored fetch
//! state, its interval and the server's hints), backoff after failures,
//! and the digest's cron schedule. Never fetches, parses or runs SQL.
//!
//! Feed times are kept in the runtime's clock ([`tokio::time::Instant`]),
//! so tests run the schedule with paused time instead of sleeping.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Utc};
use rand::Rng;
use tokio::time::Instant;

use crate::model::{FetchState, FetchStatus};

/// A server hint (`ttl`, `sy:updatePeriod`) never stretches an interval beyond this.
pub const MAX_HINT: Duration = Duration::from_secs(24 * 3600);
/// Overdue feeds at start are spread over at most this long (no burst).
pub const START_SPREAD: Duration = Duration::from_secs(60);
/// A feed never fetched (a first run, a feed just added) starts within this long.
pub const NEW_FEED_SPREAD: Duration = Duration::from_secs(2);
/// How long a feed marked gone waits: until its url changes, in practice.
const GONE_WAIT: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A feed's polling interval: its own (`interval`, else the default),
/// stretched by the feed's own hint, never below `min_interval`.
pub fn interval_of(interval: Duration, min_interval: Duration, st: &FetchState) -> Duration {
    let hint = st.ttl.map(|t| t.min(MAX_HINT)).unwrap_or_default();
    interval.max(hint).max(min_interval)
}

/// How long from `now` until a feed is due, from its stored fetch state:
/// its interval after the last fetch (with ±10% jitter so feeds drift
/// apart), or later when a backoff or Retry-After says so, but never sooner
/// than `min_interval` after the last fetch. An overdue feed is due at once,
/// spread over a short window: at `start` of the daemon over the first
/// minute, otherwise (and for a feed never fetched) over two seconds. A
/// feed marked gone is not due again.
pub fn due_in(
    interval: Duration,
    min_interval: Duration,
    st: &FetchState,
    now: DateTime<Utc>,
    start: bool,
    rng: &mut impl Rng,
) -> Duration {
    if st.status == FetchStatus::Gone {
        return GONE_WAIT;
    }
    let interval = interval_of(interval, min_interval, st);
    let at = match st.last_fetch_at {
        Some(last) => last + interval.mul_f64(rng.random_range(0.9..1.1)),
        None => now,
    };
    let at = match st.next_fetch_at {
        Some(next) => next.max(st.last_fetch_at.unwrap_or(now) + min_interval),
        None => at,
    };
    if let Ok(wait) = (at - now).to_std()
        && !wait.is_zero()
    {
        return wait;
    }
    let window = if start && st.last_fetch_at.is_some() {
        interval.min(START_SPREAD)
    } else {
        interval.min(NEW_FEED_SPREAD)
    };
    window.mul_f64(rng.random_range(0.0..1.0))
}

/// Which feeds are due when, and which are being refreshed: the daemon's
/// feed schedule, in the runtime's clock.
#[derive(Debug, Default)]
pub struct Schedule {
    feeds: HashMap<String, Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    due: Instant,
    running: bool,
}

impl Schedule {
    /// Plans `feed` due `wait` from now (unless it is being refreshed: its
    /// end plans it again).
    pub fn plan(&mut self, feed: &str, wait: Duration) {
        let due = Instant::now() + wait;
        match self.feeds.get_mut(feed) {
            Some(s) if s.running => {}
            Some(s) => s.due = due,
            None => {
                self.feeds.insert(
                    feed.to_string(),
                    Slot {
                        due,
                        running: false,
                    },
                );
            }
        }
    }

    /// Forgets every feed `keep` says no to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.feeds.retain(|name, _| keep(name));
    }

    /// Whether `feed` is planned.
    pub fn contains(&self, feed: &str) -> bool {
        self.feeds.contains_key(feed)
    }

    /// Whether `feed` is being refreshed.
    pub fn is_running(&self, feed: &str) -> bool {
        self.feeds.get(feed).is_some_and(|s| s.running)
    }

    /// Up to `limit` feeds due now, earliest first, marked running.
    pub fn take_due(&mut self, limit: usize) -> Vec<String> {
        let now = Instant::now();
        let mut due: Vec<(Instant, &String)> = self
            .feeds
            .iter()
            .filter(|(_, s)| !s.running && s.due <= now)
            .map(|(name, s)| (s.due, name))
            .collect();
        due.sort();
        let names: Vec<String> = due
            .into_iter()
            .take(limit)
            .map(|(_, n)| n.clone())
            .collect();
        for n in &names {
            if let Some(s) = self.feeds.get_mut(n) {
                s.running = true;
            }
        }
        names
    }

    /// Records the end of `feed`'s refresh and plans the next one `wait` from now.
    pub fn finished(&mut self, feed: &str, wait: Duration) {
        if let Some(s) = self.feeds.get_mut(feed) {
            s.running = false;
            s.due = Instant::now() + wait;
        }
    }

    /// When the next feed that is not running falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.feeds
            .values()
            .filter(|s| !s.running)
            .map(|s| s.due)
            .min()
    }

    /// How many feeds are planned.
    pub fn len(&self) -> usize {
        self.feeds.len()
    }

    /// Whether no feed is planned.
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }
}

/// Delay before retrying a feed after `errors` consecutive failures:
/// `floor · 2^(errors-1)`, capped at `cap`, with ±20% jitter so failing
/// feeds do not retry in lockstep.
pub fn backoff(errors: u32, floor: Duration, cap: Duration) -> Duration {
    let exp = errors.saturating_sub(1).min(20);
    let base = floor.saturating_mul(1u32 << exp).min(cap);
    let jitter = rand::rng().random_range(0.8..1.2);
    base.mul_f64(jitter).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const HOUR: Duration = Duration::from_secs(3600);
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    fn ago(secs: i64) -> Option<DateTime<Utc>> {
        Some(now() - chrono::TimeDelta::seconds(secs))
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn intervals_follow_hints_within_bounds() {
        let mut st = FetchState::default();
        assert_eq!(interval_of(HOUR, FIVE_MIN, &st), HOUR);
        st.ttl = Some(2 * HOUR);
        assert_eq!(interval_of(HOUR, FIVE_MIN, &st), 2 * HOUR);
        st.ttl = Some(30 * 24 * HOUR);
        assert_eq!(interval_of(HOUR, FIVE_MIN, &st), MAX_HINT);
        let fast = Duration::from_secs(10);
        assert_eq!(
            interval_of(fast, FIVE_MIN, &FetchState::default()),
            FIVE_MIN
        );
    }

    #[test]
    fn due_times_resume_from_the_store() {
        let mut rng = rng();
        let due = |st: &FetchState, start: bool, rng: &mut rand::rngs::StdRng| {
            due_in(HOUR, FIVE_MIN, st, now(), start, rng).as_secs()
        };
        // Fetched 10 minutes ago with a 1 h interval: due in about 50 minutes.
        let st = FetchState {
            last_fetch_at: ago(600),
            ..Default::default()
        };
        let wait = due(&st, true, &mut rng);
        assert!((2640..=3360).contains(&wait), "{wait}");
        // Overdue at start: within the first minute, not all at once.
        let overdue = FetchState {
            last_fetch_at: ago(86_400),
            ..Default::default()
        };
        let waits: Vec<u64> = (0..50).map(|_| due(&overdue, true, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= 60), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "spread, not a burst");
        // Overdue later (a reload): within seconds.
        assert!(due(&overdue, false, &mut rng) <= 2);
        // Never fetched: within seconds.
        assert!(due(&FetchState::default(), true, &mut rng) <= 2);
        // Retry-After beyond the interval wins.
        let st = FetchState {
            last_fetch_at: ago(600),
            next_fetch_at: Some(now() + chrono::TimeDelta::seconds(7200)),
            status: FetchStatus::Throttled,
            ..Default::default()
        };
        assert_eq!(due(&st, true, &mut rng), 7200);
        // A backoff shorter than the floor waits the floor.
        let st = FetchState {
            last_fetch_at: ago(10),
            next_fetch_at: Some(now() + chrono::TimeDelta::seconds(5)),
            ..Default::default()
        };
        assert_eq!(due(&st, false, &mut rng), 290);
        // Gone feeds wait for a new url.
        let st = FetchState {
            status: FetchStatus::Gone,
            ..Default::default()
        };
        assert!(due(&st, true, &mut rng) > 365 * 86_400);
    }

    #[tokio::test(start_paused = true)]
    async fn the_schedule_hands_out_due_feeds_earliest_first_once() {
        let mut s = Schedule::default();
        s.plan("hourly", HOUR);
        s.plan("soon", Duration::from_secs(10));
        s.plan("now", Duration::ZERO);
        assert_eq!(s.take_due(10), vec!["now"]);
        assert!(
            s.take_due(10).is_empty(),
            "running feeds are not handed out twice"
        );
        assert_eq!(s.next_due(), Some(Instant::now() + Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(s.take_due(10), vec!["soon"]);
        // A reload re-plans a running feed: its end decides.
        s.plan("soon", Duration::ZERO);
        assert!(s.take_due(10).is_empty());
        s.finished("now", 2 * HOUR);
        s.finished("soon", Duration::from_secs(1800));
        tokio::time::advance(HOUR).await;
        assert_eq!(
            s.take_due(1),
            vec!["soon"],
            "the earliest, at most the limit"
        );
        assert_eq!(s.take_due(10), vec!["hourly"]);
        tokio::time::advance(HOUR).await;
        assert_eq!(s.take_due(10), vec!["now"]);
        s.retain(|n| n != "hourly");
        assert_eq!(s.len(), 2);
        assert!(s.is_running("now") && !s.contains("hourly"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_spreads_overdue_feeds_over_the_first_minute() {
        let mut rng = rng();
        let mut s = Schedule::default();
        let overdue = FetchState {
            last_fetch_at: ago(86_400),
            ..Default::default()
        };
        for i in 0..100 {
            s.plan(
                &format!("f{i}"),
                due_in(HOUR, FIVE_MIN, &overdue, now(), true, &mut rng),
            );
        }
        let mut seen = 0;
        let mut seconds_with_some = 0;
        for _ in 0..61 {
            let n = s.take_due(1000).len();
            seen += n;
            seconds_with_some += usize::from(n > 0);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(seen, 100, "all due within the first minute");
        assert!(
            seconds_with_some >= 30,
            "spread: {seconds_with_some} seconds"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let floor = Duration::from_secs(300);
        let cap = Duration::from_secs(24 * 3600);
        let first = backoff(1, floor, cap);
        assert!(first >= Duration::from_secs(240) && first <= Duration::from_secs(360));
        let fourth = backoff(4, floor, cap);
        assert!(fourth >= Duration::from_secs(1920) && fourth <= Duration::from_secs(2880));
        assert!(backoff(30, floor, cap) <= cap);
    }
}

/// Why a cron schedule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not a valid 5-field cron expression.
    #[error("invalid cron expression {expr:?}: {reason}")]
    Cron {
        /// The expression as written.
        expr: String,
        /// What the parser said.
        reason: String,
    },
    /// Not an IANA time zone name.
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Zurich or UTC")]
    TimeZone(String),
}

/// A standard 5-field cron expression evaluated in a time zone.
///
/// The expression is matched against wall-clock time in `tz`, so `0 8 * * Mon`
/// stays at 08:00 local time across DST changes. A wall-clock time that a
/// spring-forward change skips fires at the first instant after the gap (as
/// classic cron does); a time that an autumn change repeats fires once, the
/// first time.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: cron::Schedule,
    tz: chrono_tz::Tz,
    /// The expression as written.
    expr: String,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.tz == other.tz
    }
}

/// How far (in wall-clock time) a DST change can move a fire time; bounds searches.
const DST_SLACK: chrono::TimeDelta = chrono::TimeDelta::hours(3);

impl CronSchedule {
    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// Parses `expr` (minute hour day-of-month month day-of-week; day-of-week
    /// 0–7 or names, 0 and 7 are Sunday) for the IANA zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, ScheduleError> {
        let tz: chrono_tz::Tz = tz
            .trim()
            .parse()
            .map_err(|_| ScheduleError::TimeZone(tz.to_string()))?;
        let err = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        let mut fields: Vec<&str> = expr.split_whitespace().collect();
        // An extension: a sixth, leading field gives the seconds (handy for tests).
        let seconds = if fields.len() == 6 {
            fields.remove(0)
        } else {
            "0"
        };
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            )));
        }
        let dow = standard_day_of_week(fields[4]).map_err(err)?;
        // The cron crate wants seconds first and counts weekdays from Sunday = 1.
        let six = format!(
            "{seconds} {} {} {} {} {dow}",
            fields[0], fields[1], fields[2], fields[3]
        );
        let schedule: cron::Schedule = six
            .parse()
            .map_err(|e: cron::error::Error| err(e.to_string()))?;
        Ok(CronSchedule {
            schedule,
            tz,
            expr: expr.trim().to_string(),
        })
    }

    /// The time zone the expression is evaluated in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// The latest fire time at or before `now`.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.wall(now) + DST_SLACK;
        self.schedule
            .after(&start.and_utc())
            .rev()
            .take(100_000)
            .map(|w| self.instant(w.naive_utc()))
            .find(|t| *t <= now)
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.wall(t) - DST_SLACK;
        self.schedule
            .after(&start.and_utc())
            .take(100_000)
            .map(|w| self.instant(w.naive_utc()))
            .find(|x| *x > t)
    }

    /// Wall-clock time in the zone.
    fn wall(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    /// The instant of a wall-clock time: the first of two when the time is
    /// repeated, the end of the gap when it is skipped.
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        use chrono::TimeZone;
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // The first wall-clock minute after the gap (gaps are at most a day).
                let mut probe = wall;
                for _ in 0..(24 * 60) {
                    probe += chrono::TimeDelta::minutes(1);
                    if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                        return t.with_timezone(&Utc);
                    }
                }
                wall.and_utc()
            }
        }
    }
}

/// Rewrites a standard day-of-week field (0–7, 0 and 7 Sunday) with names,
/// which the cron crate reads unambiguously.
fn standard_day_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let name = |s: &str| -> Result<String, String> {
        match s.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(NAMES[n].to_string()),
            Ok(n) => Err(format!("day of week {n} is out of range 0-7")),
            Err(_) => Ok(s.to_string()),
        }
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let range = match range.split_once('-') {
            // `5-7` (Friday to Sunday) does not wrap in the cron crate: split it.
            Some((a, "7")) if step.is_none() && a != "0" => {
                format!("{}-SAT,SUN", name(a)?)
            }
            Some((a, b)) => format!("{}-{}", name(a)?, name(b)?),
            None => name(range)?,
        };
        parts.push(match step {
            Some(s) => format!("{range}/{s}"),
            None => range,
        });
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod cron_tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn weekly_schedule_keeps_local_time_across_both_dst_changes_in_zurich() {
        let s = CronSchedule::parse("0 8 * * Mon", "Europe/Zurich").unwrap();
        // Autumn: CEST ends on Sunday 25 Oct 2026.
        let before = s.latest_at_or_before(utc(2026, 10, 25, 12, 0)).unwrap();
        assert_eq!(before, utc(2026, 10, 19, 6, 0), "08:00 CEST");
        let after = s.next_after(before).unwrap();
        assert_eq!(after, utc(2026, 10, 26, 7, 0), "08:00 CET");
        assert_eq!(after - before, chrono::TimeDelta::hours(7 * 24 + 1));
        // Spring: CEST starts on Sunday 29 Mar 2026.
        let before = s.latest_at_or_before(utc(2026, 3, 29, 12, 0)).unwrap();
        assert_eq!(before, utc(2026, 3, 23, 7, 0), "08:00 CET");
        let after = s.next_after(before).unwrap();
        assert_eq!(after, utc(2026, 3, 30, 6, 0), "08:00 CEST");
        assert_eq!(after - before, chrono::TimeDelta::hours(7 * 24 - 1));
        // The fire time itself is due at that instant, not a second later.
        assert_eq!(s.latest_at_or_before(after), Some(after));
        assert_eq!(
            s.latest_at_or_before(after - chrono::TimeDelta::seconds(1)),
            Some(before)
        );
    }

    #[test]
    fn skipped_and_repeated_wall_times_fire_once() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Zurich").unwrap();
        // 02:30 does not exist on 29 Mar 2026: it fires when the clock jumps to 03:00 CEST.
        let t = s.next_after(utc(2026, 3, 28, 12, 0)).unwrap();
        assert_eq!(t, utc(2026, 3, 29, 1, 0));
        assert_eq!(s.next_after(t).unwrap(), utc(2026, 3, 30, 0, 30));
        // 02:30 happens twice on 25 Oct 2026: it fires the first time only.
        let t = s.next_after(utc(2026, 10, 24, 12, 0)).unwrap();
        assert_eq!(t, utc(2026, 10, 25, 0, 30), "02:30 CEST");
        assert_eq!(
            s.next_after(t).unwrap(),
            utc(2026, 10, 26, 1, 30),
            "next day, CET"
        );
    }

    #[test]
    fn standard_weekday_numbers_and_errors() {
        // 1 is Monday in standard cron (the cron crate alone would read Sunday).
        let s = CronSchedule::parse("0 8 * * 1", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc(2026, 11, 24, 0, 0)).unwrap(),
            utc(2026, 11, 30, 8, 0)
        );
        let s = CronSchedule::parse("0 8 * * 5-7", "UTC").unwrap();
        let fires: Vec<_> =
            std::iter::successors(s.next_after(utc(2026, 11, 23, 0, 0)), |t| s.next_after(*t))
                .take(4)
                .collect();
        assert_eq!(
            fires,
            [
                utc(2026, 11, 27, 8, 0),
                utc(2026, 11, 28, 8, 0),
                utc(2026, 11, 29, 8, 0),
                utc(2026, 12, 4, 8, 0)
            ]
        );
        assert!(matches!(
            CronSchedule::parse("0 8 * * Mon", "Mars/Olympus"),
            Err(ScheduleError::TimeZone(_))
        ));
        assert!(matches!(
            CronSchedule::parse("0 25 * * *", "UTC"),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(CronSchedule::parse("0 8 * *", "UTC").is_err());
        assert!(CronSchedule::parse("0 0 8 * * Mon *", "UTC").is_err());
    }

    #[test]
    fn a_leading_sixth_field_gives_seconds() {
        let s = CronSchedule::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc(2026, 11, 24, 8, 0)).unwrap(),
            utc(2026, 11, 24, 8, 0) + chrono::Duration::seconds(15)
        );
    }
}
