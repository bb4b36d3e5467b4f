//! Decides when a feed may be fetched again. Never fetches, parses or runs SQL.

use std::time::Duration;

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
