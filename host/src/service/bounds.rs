//! The ranges of everything a client sends: durations, rates, bursts,
//! weights, priorities, identifiers and list lengths, in one place so that
//! the API, the CLI, recovery and the API document agree. A value outside
//! its range is refused (HTTP 400) with a message naming the field and the
//! range; stored state is held to the same ranges when it is loaded.
//!
//! Also the arithmetic on instants and durations that must never panic:
//! every bound here keeps sums far from overflow, and the helpers saturate
//! for what was stored before the bounds existed.

use std::time::Duration;

/// Shortest duration accepted for a timeout or retry interval.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// Longest duration accepted anywhere (timeouts, intervals, delays): ten
/// years of 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);
/// How the duration range reads in messages.
pub const DURATION_RANGE: &str = "1 ms to 10 years (3650 days)";
/// Shortest retention of closed activities.
pub const MIN_RETENTION: Duration = Duration::from_secs(1);
/// How the retention range reads in messages.
pub const RETENTION_RANGE: &str = "1 s to 10 years (3650 days)";
/// Longest a result request waits for the activity to close.
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(60);

/// Longest identifier (activity id, type, task queue, namespace, module
/// name, configuration key), in bytes; Temporal's limit for ids.
pub const MAX_ID_BYTES: usize = 1000;
/// Longest fairness or concurrency key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Most entries of `retry_policy.non_retryable_error_types`.
pub const MAX_ERROR_TYPES: usize = 100;
/// Most modules a configuration variable is granted to.
pub const MAX_GRANTS: usize = 100;
/// Most arguments of one activity.
pub const MAX_INPUTS: usize = 100;
/// Most starts in one batch (`activities:batch`).
pub const MAX_BATCH_STARTS: usize = 1000;
/// Largest body of a batch of starts, unless one start's own limit is larger.
pub const MAX_BATCH_BODY: usize = 64 << 20;

/// Largest retry backoff coefficient (the smallest is 1).
pub const MAX_BACKOFF_COEFFICIENT: f64 = 100.0;
/// Smallest non-zero rate (tasks or starts per second): one per 1000 s.
pub const MIN_RATE: f64 = 0.001;
/// Largest rate, per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Largest burst of a queue's rate limit (the smallest is 1).
pub const MAX_BURST: f64 = 1_000_000.0;
/// Fairness weights, smallest and largest.
pub const FAIRNESS_WEIGHT: (f32, f32) = (0.001, 1000.0);
/// Priorities, highest and lowest.
pub const PRIORITY: (u8, u8) = (1, 5);
/// Largest concurrency number (worker slots, concurrency limits).
pub const MAX_CONCURRENT: u32 = 1_000_000;
/// Range of a namespace's `max_stored_bytes`: 1 KiB to 1 TiB.
pub const STORED_BYTES: (u64, u64) = (1 << 10, 1 << 40);
/// A namespace's CPU weight, smallest and largest.
pub const CPU_WEIGHT: (u32, u32) = (1, 1000);

/// Checks a timeout or interval: [`MIN_DURATION`] to [`MAX_DURATION`].
pub fn duration(field: &str, d: Duration) -> Result<(), String> {
    duration_from(field, d, MIN_DURATION, DURATION_RANGE)
}

/// Checks `d` is `min` to [`MAX_DURATION`]; `range` says so in the message.
fn duration_from(field: &str, d: Duration, min: Duration, range: &str) -> Result<(), String> {
    if (min..=MAX_DURATION).contains(&d) {
        Ok(())
    } else {
        Err(format!(
            "{field} is {}; it must be {range}",
            humantime::format_duration(d)
        ))
    }
}

/// Checks a retention period: [`MIN_RETENTION`] to [`MAX_DURATION`].
pub fn retention(field: &str, d: Duration) -> Result<(), String> {
    duration_from(field, d, MIN_RETENTION, RETENTION_RANGE)
}

/// A number as a message shows it: `1e-300`, not three hundred zeros.
pub fn show(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e9).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Checks a rate: 0 (whose meaning the caller gives in `zero`) or
/// [`MIN_RATE`] to [`MAX_RATE`] per second.
pub fn rate(field: &str, r: f64, zero: &str) -> Result<(), String> {
    if r == 0.0 || (MIN_RATE..=MAX_RATE).contains(&r) {
        Ok(())
    } else {
        Err(format!(
            "{field} is {}; it must be 0 ({zero}) or {MIN_RATE} to {MAX_RATE} per second",
            show(r)
        ))
    }
}

/// Checks a burst: 1 to [`MAX_BURST`].
pub fn burst(field: &str, b: f64) -> Result<(), String> {
    if (1.0..=MAX_BURST).contains(&b) {
        Ok(())
    } else {
        Err(format!(
            "{field} is {}; it must be 1 to {MAX_BURST}",
            show(b)
        ))
    }
}

/// Checks a concurrency number: 1 to [`MAX_CONCURRENT`].
pub fn concurrent(field: &str, n: u32) -> Result<(), String> {
    if (1..=MAX_CONCURRENT).contains(&n) {
        Ok(())
    } else {
        Err(format!("{field} is {n}; it must be 1 to {MAX_CONCURRENT}"))
    }
}

/// Checks a quota of stored bytes: within [`STORED_BYTES`].
pub fn stored_bytes(field: &str, n: u64) -> Result<(), String> {
    let (min, max) = STORED_BYTES;
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "{field} is {n}; it must be {min} (1 KiB) to {max} (1 TiB) bytes"
        ))
    }
}

/// Longest reason an operator gives for failing an activity by hand.
pub const MAX_REASON_BYTES: usize = 4000;

/// Checks a namespace's CPU weight: [`CPU_WEIGHT`].
pub fn cpu_weight(field: &str, w: u32) -> Result<(), String> {
    let (min, max) = CPU_WEIGHT;
    if (min..=max).contains(&w) {
        Ok(())
    } else {
        Err(format!("{field} is {w}; it must be {min} to {max}"))
    }
}

/// Checks an identifier: 1 to `max` bytes, no control characters.
pub fn name(field: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{field} must not be empty (1 to {max} bytes)"));
    }
    if s.len() > max {
        return Err(format!(
            "{field} is {} bytes; it must be 1 to {max} bytes",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// Checks an identifier of up to [`MAX_ID_BYTES`].
pub fn id(field: &str, s: &str) -> Result<(), String> {
    name(field, s, MAX_ID_BYTES)
}

/// Checks a list's length: at most `max` entries.
pub fn count(field: &str, n: usize, max: usize) -> Result<(), String> {
    if n <= max {
        Ok(())
    } else {
        Err(format!(
            "{field} has {n} entries; at most {max} are accepted"
        ))
    }
}

/// `at + d`, saturating: a sum past what the clock can hold becomes the
/// latest instant reachable (a timer that never fires in practice).
pub fn later(at: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(MAX_DURATION))
        .unwrap_or(at)
}

/// As [`later`], for `std` instants.
pub fn later_std(at: std::time::Instant, d: Duration) -> std::time::Instant {
    later(at.into(), d).into_std()
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A stored byte count as a `usize`, saturating.
pub fn size(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// `seconds` as a duration, clamped to 0 ..= [`MAX_DURATION`] (NaN is 0):
/// `Duration::from_secs_f64` panics on what this accepts.
pub fn secs_f64(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds)
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_saturate() {
        let now = tokio::time::Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let far = later(now, Duration::MAX);
        assert!(far >= now + MAX_DURATION);
        let _ = later_std(std::time::Instant::now(), Duration::MAX);
    }

    #[test]
    fn float_seconds_never_panic() {
        assert_eq!(secs_f64(f64::NAN), Duration::ZERO);
        assert_eq!(secs_f64(-1.0), Duration::ZERO);
        assert_eq!(secs_f64(f64::INFINITY), MAX_DURATION);
        assert_eq!(secs_f64(1e300), MAX_DURATION);
        assert_eq!(secs_f64(1.5), Duration::from_millis(1500));
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn ranges_name_the_field() {
        assert!(duration("x", Duration::ZERO)
            .unwrap_err()
            .contains("x is 0s"));
        assert!(duration("x", MAX_DURATION).is_ok());
        assert!(duration("x", MAX_DURATION + MIN_DURATION).is_err());
        assert!(rate("rate", 1e-300, "pause").unwrap_err().contains("rate"));
        assert!(rate("rate", f64::NAN, "pause").is_err());
        assert!(rate("rate", 0.0, "pause").is_ok());
        assert!(burst("burst", f64::INFINITY).is_err());
        assert_eq!(show(1e-300), "1e-300");
        assert_eq!(show(1e300), "1e300");
        assert_eq!(show(2.5), "2.5");
        assert_eq!(show(0.0), "0");
        assert!(id("activity_id", &"a".repeat(1001))
            .unwrap_err()
            .contains("1001 bytes"));
        assert!(id("activity_id", "a\nb").is_err());
        assert!(id("activity_id", "").is_err());
        assert!(id("activity_id", "ünïcode ok").is_ok());
        assert!(cpu_weight("cpu_weight", 0)
            .unwrap_err()
            .contains("cpu_weight is 0; it must be 1 to 1000"));
        assert!(cpu_weight("cpu_weight", 1000).is_ok());
        assert!(cpu_weight("cpu_weight", 1001).is_err());
    }
}
