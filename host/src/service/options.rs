//! What a caller asks for when starting an activity: timeouts, retry policy,
//! id reuse. Validated once at start; stored with the activity as JSON.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Durations travel as strings such as `"10s"` or `"1m 30s"` (or as numbers
/// of milliseconds).
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Millis(u64),
    }

    fn parse<E: serde::de::Error>(w: Wire) -> Result<Duration, E> {
        match w {
            Wire::Millis(ms) => Ok(Duration::from_millis(ms)),
            Wire::Text(s) => humantime::parse_duration(&s)
                .map_err(|e| E::custom(format!("{s:?} is not a duration (try \"10s\"): {e}"))),
        }
    }

    /// Serialises as a humantime string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Parses a string or milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parse(Wire::deserialize(d)?)
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        /// Serialises as a humantime string or null.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Parses a string, milliseconds or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<Wire>::deserialize(d)? {
                Some(w) => parse(w).map(Some),
                None => Ok(None),
            }
        }
    }
}

/// Temporal's retry policy, with Temporal's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    #[serde(with = "duration")]
    pub initial_interval: Duration,
    /// Each further delay is the previous one times this.
    pub backoff_coefficient: f64,
    /// Cap on the delay; defaults to 100 × the initial interval.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub maximum_interval: Option<Duration>,
    /// Attempts in all, including the first; 0 is unlimited.
    pub maximum_attempts: u32,
    /// Failure types never retried (exact match).
    pub non_retryable_error_types: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: None,
            maximum_attempts: 0,
            non_retryable_error_types: Vec::new(),
        }
    }
}

/// What happens when an activity id is already taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdReusePolicy {
    /// The existing run is returned, open or closed: starting is idempotent.
    #[default]
    RejectDuplicate,
    /// A closed run may be followed by a new one; an open one is returned.
    AllowDuplicate,
    /// As `allow_duplicate`, but only after a run that did not complete.
    AllowDuplicateFailedOnly,
}

/// Everything a start request may set besides type, queue and input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityOptions {
    /// Limit on one attempt.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub start_to_close_timeout: Option<Duration>,
    /// Limit on the whole activity, all attempts and backoffs; not retried.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub schedule_to_close_timeout: Option<Duration>,
    /// Limit on waiting in the backlog for a worker; not retried.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub schedule_to_start_timeout: Option<Duration>,
    /// An attempt without a heartbeat for this long times out (retried).
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<Duration>,
    /// Retry policy; Temporal's defaults when absent.
    pub retry_policy: RetryPolicy,
    /// Id reuse policy.
    pub id_reuse_policy: IdReusePolicy,
    /// 1 (highest) to 5 (lowest); within a queue, higher priorities are
    /// dispatched first.
    pub priority: u8,
    /// Lane within the priority: keys share the queue by their weights, so
    /// one key's burst does not starve the others. `None` is the shared lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    /// The key's share relative to other keys (default 1; the latest weight
    /// given for a key is the one in force).
    pub fairness_weight: f32,
    /// Counts the activity against the namespace's limit for this key (see
    /// `key:` concurrency limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
}

impl Default for ActivityOptions {
    fn default() -> Self {
        Self {
            start_to_close_timeout: None,
            schedule_to_close_timeout: None,
            schedule_to_start_timeout: None,
            heartbeat_timeout: None,
            retry_policy: RetryPolicy::default(),
            id_reuse_policy: IdReusePolicy::default(),
            priority: 3,
            fairness_key: None,
            fairness_weight: 1.0,
            concurrency_key: None,
        }
    }
}

impl ActivityOptions {
    /// Checks what Temporal checks: a per-attempt or an overall limit is
    /// required, and the numbers make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.start_to_close_timeout.is_none() && self.schedule_to_close_timeout.is_none() {
            return Err(
                "either start_to_close_timeout or schedule_to_close_timeout is required".into(),
            );
        }
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        if zero(self.start_to_close_timeout)
            || zero(self.schedule_to_close_timeout)
            || zero(self.schedule_to_start_timeout)
            || zero(self.heartbeat_timeout)
        {
            return Err("timeouts must be greater than zero".into());
        }
        if !(1..=5).contains(&self.priority) {
            return Err("priority must be 1 (highest) to 5 (lowest)".into());
        }
        if !(0.001..=1000.0).contains(&self.fairness_weight) {
            return Err("fairness_weight must be between 0.001 and 1000".into());
        }
        for (name, key) in [
            ("fairness_key", &self.fairness_key),
            ("concurrency_key", &self.concurrency_key),
        ] {
            if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
                return Err(format!("{name} must be 1 to 256 bytes"));
            }
        }
        let p = &self.retry_policy;
        if p.initial_interval.is_zero() {
            return Err("retry_policy.initial_interval must be greater than zero".into());
        }
        if !(p.backoff_coefficient >= 1.0 && p.backoff_coefficient.is_finite()) {
            return Err("retry_policy.backoff_coefficient must be at least 1".into());
        }
        if p.maximum_interval.is_some_and(|m| m < p.initial_interval) {
            return Err("retry_policy.maximum_interval must not be below initial_interval".into());
        }
        Ok(())
    }

    /// The per-attempt limit: start-to-close, else schedule-to-close.
    pub fn attempt_timeout(&self) -> Duration {
        self.start_to_close_timeout
            .or(self.schedule_to_close_timeout)
            .unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_required() {
        assert!(ActivityOptions::default().validate().is_err());
        let o: ActivityOptions =
            serde_json::from_value(serde_json::json!({"start_to_close_timeout": "5s"})).unwrap();
        assert_eq!(o.start_to_close_timeout, Some(Duration::from_secs(5)));
        assert!(o.validate().is_ok());
    }

    #[test]
    fn durations_accept_text_and_millis() {
        let o: ActivityOptions = serde_json::from_value(
            serde_json::json!({"start_to_close_timeout": 1500, "heartbeat_timeout": "2s"}),
        )
        .unwrap();
        assert_eq!(o.start_to_close_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(o.heartbeat_timeout, Some(Duration::from_secs(2)));
    }
}
