//! Decides when a feed may be fetched again. Never fetches, parses or runs SQL.

use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Utc};
use rand::Rng;

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
}

/// How far (in wall-clock time) a DST change can move a fire time; bounds searches.
const DST_SLACK: chrono::TimeDelta = chrono::TimeDelta::hours(3);

impl CronSchedule {
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
        Ok(CronSchedule { schedule, tz })
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
