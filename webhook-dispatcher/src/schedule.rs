//! When a failed attempt is tried again: `dispatcher.retry_schedule_secs`
//! (docs/webhooks.md: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), each delay with ±20 %
//! jitter so that receivers recovering from an outage are not hit by every
//! retry at once, and a `Retry-After` on 429 or 503 honoured when it asks
//! for longer, but never beyond the schedule's longest step
//! (RFC 9110 §10.2.3). Pure functions, so the policy is unit-tested.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Largest relative jitter applied to a scheduled delay.
pub const JITTER: f64 = 0.2;

/// The delay before the next attempt after `attempts` attempts (this one
/// included) have failed, or `None` when the schedule is exhausted.
/// `jitter` is drawn uniformly from `-1.0..=1.0` by the caller.
pub fn next_delay(
    schedule_secs: &[u64],
    attempts: i32,
    retry_after_secs: Option<u64>,
    jitter: f64,
) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = *schedule_secs.get(index)? as f64;
    let jittered = base * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
    let mut delay = Duration::from_secs_f64(jittered.max(0.0));
    if let Some(asked) = retry_after_secs.map(Duration::from_secs) {
        let ceiling = Duration::from_secs(schedule_secs.iter().copied().max().unwrap_or(0));
        if asked > delay {
            delay = asked.min(ceiling).max(delay);
        }
    }
    Some(delay)
}

/// A uniform draw from `-1.0..=1.0` for [`next_delay`].
pub fn random_jitter() -> f64 {
    rand::random_range(-1.0..=1.0)
}

/// `Retry-After` as delta-seconds or an HTTP-date, in seconds from `now`
/// (RFC 9110 §10.2.3); only 429 and 503 carry one we honour.
pub fn retry_after_secs(status: u16, value: Option<&str>, now: DateTime<Utc>) -> Option<u64> {
    if status != 429 && status != 503 {
        return None;
    }
    let value = value?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    u64::try_from((at.with_timezone(&Utc) - now).num_seconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: [u64; 3] = [5, 300, 1800];

    #[test]
    fn follows_the_schedule_then_gives_up() {
        assert_eq!(
            next_delay(&SCHEDULE, 1, None, 0.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, 0.0),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 3, None, 0.0),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(next_delay(&SCHEDULE, 4, None, 0.0), None);
        assert_eq!(next_delay(&[], 1, None, 0.0), None);
        assert_eq!(next_delay(&SCHEDULE, 0, None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, 1.0),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, -1.0),
            Some(Duration::from_secs(240))
        );
        assert_eq!(
            next_delay(&SCHEDULE, 2, None, 7.0),
            Some(Duration::from_secs(360))
        );
        for _ in 0..1000 {
            let d = next_delay(&SCHEDULE, 2, None, random_jitter()).unwrap();
            assert!((240..=360).contains(&d.as_secs()), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_only_up_to_the_schedule_maximum() {
        // Longer than the step: honoured.
        assert_eq!(
            next_delay(&SCHEDULE, 1, Some(60), 0.0),
            Some(Duration::from_secs(60))
        );
        // Shorter than the step: the schedule wins.
        assert_eq!(
            next_delay(&SCHEDULE, 2, Some(60), 0.0),
            Some(Duration::from_secs(300))
        );
        // Beyond the longest step: capped there.
        assert_eq!(
            next_delay(&SCHEDULE, 1, Some(86_400), 0.0),
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates_on_429_and_503_only() {
        let now = DateTime::parse_from_rfc3339("2026-05-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after_secs(429, Some("120"), now), Some(120));
        assert_eq!(retry_after_secs(503, Some(" 7 "), now), Some(7));
        assert_eq!(
            retry_after_secs(503, Some("Fri, 29 May 2026 12:01:00 GMT"), now),
            Some(60)
        );
        assert_eq!(retry_after_secs(500, Some("120"), now), None);
        assert_eq!(retry_after_secs(429, Some("soon"), now), None);
        assert_eq!(retry_after_secs(429, None, now), None);
    }
}
