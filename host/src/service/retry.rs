//! Whether and when an attempt that ended badly is retried (Temporal's rules).

use super::bounds;
use super::options::RetryPolicy;
use std::time::Duration;

/// What the service knows about a failed attempt when deciding.
pub struct Failure<'a> {
    /// The failure type (application error type, or the host's own kind).
    pub error_type: &'a str,
    /// The error said it must not be retried.
    pub non_retryable: bool,
    /// The error asked for this delay instead of the policy's.
    pub next_retry_delay: Option<Duration>,
}

/// Delay before the attempt after `attempt`, or `None` when there is none.
pub fn next_delay(policy: &RetryPolicy, attempt: u32, failure: &Failure<'_>) -> Option<Duration> {
    if failure.non_retryable
        || policy
            .non_retryable_error_types
            .iter()
            .any(|t| t == failure.error_type)
    {
        return None;
    }
    if policy.maximum_attempts != 0 && attempt >= policy.maximum_attempts {
        return None;
    }
    // The delay a guest or caller asks for is theirs to choose, within the
    // longest duration accepted anywhere.
    if let Some(d) = failure.next_retry_delay {
        return Some(d.min(bounds::MAX_DURATION));
    }
    let max = policy
        .maximum_interval
        .unwrap_or_else(|| policy.initial_interval.saturating_mul(100))
        .min(bounds::MAX_DURATION);
    let exp = attempt.saturating_sub(1).min(1000) as i32;
    // Infinite or NaN for coefficients stored out of range; `secs_f64`
    // clamps, then the maximum interval applies.
    let secs = policy.initial_interval.as_secs_f64() * policy.backoff_coefficient.powi(exp);
    Some(bounds::secs_f64(secs).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Failure<'static> {
        Failure {
            error_type: "Boom",
            non_retryable: false,
            next_retry_delay: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy::default();
        let d: Vec<_> = (1..=9)
            .map(|a| next_delay(&p, a, &plain()).unwrap().as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
    }

    #[test]
    fn limits_and_types_stop_retries() {
        let p = RetryPolicy {
            maximum_attempts: 3,
            non_retryable_error_types: vec!["Fatal".into()],
            ..RetryPolicy::default()
        };
        assert!(next_delay(&p, 2, &plain()).is_some());
        assert!(next_delay(&p, 3, &plain()).is_none());
        let fatal = Failure {
            error_type: "Fatal",
            ..plain()
        };
        assert!(next_delay(&p, 1, &fatal).is_none());
        let flagged = Failure {
            non_retryable: true,
            ..plain()
        };
        assert!(next_delay(&p, 1, &flagged).is_none());
    }

    #[test]
    fn the_error_may_choose_the_delay() {
        let f = Failure {
            next_retry_delay: Some(Duration::from_millis(1234)),
            ..plain()
        };
        let d = next_delay(&RetryPolicy::default(), 5, &f);
        assert_eq!(d, Some(Duration::from_millis(1234)));
        let huge = Failure {
            next_retry_delay: Some(Duration::from_millis(u64::MAX)),
            ..plain()
        };
        let d = next_delay(&RetryPolicy::default(), 1, &huge);
        assert_eq!(d, Some(bounds::MAX_DURATION));
    }

    #[test]
    fn policies_out_of_range_never_panic() {
        let p = RetryPolicy {
            initial_interval: Duration::MAX,
            backoff_coefficient: 1e308,
            ..RetryPolicy::default()
        };
        for attempt in [1, 2, 1000, u32::MAX] {
            let d = next_delay(&p, attempt, &plain()).unwrap();
            assert!(d <= bounds::MAX_DURATION);
        }
        let nan = RetryPolicy {
            backoff_coefficient: f64::NAN,
            initial_interval: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(next_delay(&nan, 3, &plain()), Some(Duration::ZERO));
    }
}
