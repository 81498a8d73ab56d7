//! What a caller asks for when starting an activity: timeouts, retry policy,
//! id reuse. Validated once at start; stored with the activity as JSON.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Durations travel as strings such as `"10s"` or `"1m 30s"`, or as whole
/// numbers of milliseconds (a string of digits too); anything longer than
/// [`MAX_DURATION`](super::bounds::MAX_DURATION) is refused while parsing.
pub mod duration {
    use crate::service::bounds::{DURATION_RANGE, MAX_DURATION};
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;
    use std::time::Duration;

    const USE: &str = "use a string such as \"10s\" or a whole number of milliseconds";

    struct Wire;

    fn bounded<E: de::Error>(shown: &dyn fmt::Display, d: Duration) -> Result<Duration, E> {
        if d > MAX_DURATION {
            Err(E::custom(format!(
                "{shown} is longer than the longest duration accepted ({DURATION_RANGE})"
            )))
        } else {
            Ok(d)
        }
    }

    fn not_a_duration<E: de::Error>(shown: &dyn fmt::Display) -> E {
        E::custom(format!(
            "{shown} is not a duration; {USE} ({DURATION_RANGE})"
        ))
    }

    impl Visitor<'_> for Wire {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a duration: {USE} ({DURATION_RANGE})")
        }

        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
            bounded(&ms, Duration::from_millis(ms))
        }

        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
            match u64::try_from(ms) {
                Ok(ms) => self.visit_u64(ms),
                Err(_) => Err(not_a_duration(&ms)),
            }
        }

        fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Duration, E> {
            // Only whole, non-negative numbers; `as` saturates, and anything
            // that large is refused by `bounded`.
            if ms.is_finite() && ms >= 0.0 && ms.fract() == 0.0 {
                self.visit_u64(ms as u64)
            } else {
                Err(not_a_duration(&ms))
            }
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            let shown = format!("{s:?}");
            let text = s.trim();
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                return match text.parse::<u64>() {
                    Ok(ms) => bounded(&shown, Duration::from_millis(ms)),
                    Err(_) => bounded(&shown, Duration::MAX),
                };
            }
            match humantime::parse_duration(text) {
                Ok(d) => bounded(&shown, d),
                // humantime refuses sums past `Duration::MAX` as overflow.
                Err(humantime::DurationError::NumberOverflow) => bounded(&shown, Duration::MAX),
                Err(_) => Err(not_a_duration(&shown)),
            }
        }
    }

    /// Serialises as a humantime string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Parses a string or milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Wire)
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        struct MaybeWire;

        impl<'de> Visitor<'de> for MaybeWire {
            type Value = Option<Duration>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                Wire.expecting(f)?;
                f.write_str(" or null")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }

        /// Serialises as a humantime string or null.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Parses a string, milliseconds or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            d.deserialize_option(MaybeWire)
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
    /// Checks what Temporal checks (a per-attempt or an overall limit is
    /// required) and that every value is within its range (see
    /// [`bounds`](super::bounds)).
    pub fn validate(&self) -> Result<(), String> {
        use super::bounds;
        if self.start_to_close_timeout.is_none() && self.schedule_to_close_timeout.is_none() {
            return Err(
                "either start_to_close_timeout or schedule_to_close_timeout is required".into(),
            );
        }
        for (field, d) in [
            ("start_to_close_timeout", self.start_to_close_timeout),
            ("schedule_to_close_timeout", self.schedule_to_close_timeout),
            ("schedule_to_start_timeout", self.schedule_to_start_timeout),
            ("heartbeat_timeout", self.heartbeat_timeout),
        ] {
            if let Some(d) = d {
                bounds::duration(field, d)?;
            }
        }
        let (high, low) = bounds::PRIORITY;
        if !(high..=low).contains(&self.priority) {
            return Err(format!(
                "priority is {}; it must be {high} (highest) to {low} (lowest)",
                self.priority
            ));
        }
        let (light, heavy) = bounds::FAIRNESS_WEIGHT;
        if !(light..=heavy).contains(&self.fairness_weight) {
            return Err(format!(
                "fairness_weight is {}; it must be {light} to {heavy}",
                bounds::show(f64::from(self.fairness_weight))
            ));
        }
        for (field, key) in [
            ("fairness_key", &self.fairness_key),
            ("concurrency_key", &self.concurrency_key),
        ] {
            if let Some(k) = key {
                bounds::name(field, k, bounds::MAX_KEY_BYTES)?;
            }
        }
        let p = &self.retry_policy;
        bounds::duration("retry_policy.initial_interval", p.initial_interval)?;
        if !(1.0..=bounds::MAX_BACKOFF_COEFFICIENT).contains(&p.backoff_coefficient) {
            return Err(format!(
                "retry_policy.backoff_coefficient is {}; it must be 1 to {}",
                bounds::show(p.backoff_coefficient),
                bounds::MAX_BACKOFF_COEFFICIENT
            ));
        }
        if let Some(m) = p.maximum_interval {
            bounds::duration("retry_policy.maximum_interval", m)?;
            if m < p.initial_interval {
                return Err(
                    "retry_policy.maximum_interval must not be below initial_interval".into(),
                );
            }
        }
        bounds::count(
            "retry_policy.non_retryable_error_types",
            p.non_retryable_error_types.len(),
            bounds::MAX_ERROR_TYPES,
        )?;
        for t in &p.non_retryable_error_types {
            bounds::id("retry_policy.non_retryable_error_types[]", t)?;
        }
        Ok(())
    }

    /// As [`parse`](Self::parse), from a JSON value.
    pub fn from_value(json: serde_json::Value) -> Result<Self, String> {
        let options: Self = from_value_naming(json)?;
        options.validate()?;
        Ok(options)
    }

    /// Parses and validates options; errors name the field (`retry_policy.
    /// initial_interval: ...`). Used for requests and for stored rows alike.
    pub fn parse(json: &str) -> Result<Self, String> {
        let options: Self = from_slice_naming(json.as_bytes())?;
        options.validate()?;
        Ok(options)
    }

    /// The per-attempt limit: start-to-close, else schedule-to-close.
    pub fn attempt_timeout(&self) -> Duration {
        self.start_to_close_timeout
            .or(self.schedule_to_close_timeout)
            .unwrap_or(Duration::from_secs(60))
    }
}

/// Deserializes JSON text; an error names the field it is about
/// ([`path_error`]). Read first without tracking the path, which costs an
/// allocation per key read, and again with it only when that fails: both
/// reads take and refuse the same documents.
pub fn from_slice_naming<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, String> {
    T::deserialize(&mut serde_json::Deserializer::from_slice(json)).or_else(|_| {
        let de = &mut serde_json::Deserializer::from_slice(json);
        serde_path_to_error::deserialize(de).map_err(|e| path_error(&e))
    })
}

/// As [`from_slice_naming`], from a JSON value.
pub fn from_value_naming<T: serde::de::DeserializeOwned>(
    json: serde_json::Value,
) -> Result<T, String> {
    match T::deserialize(&json) {
        Ok(v) => Ok(v),
        Err(_) => serde_path_to_error::deserialize(json).map_err(|e| path_error(&e)),
    }
}

/// A serde error with the path of the field it is about, without serde's
/// position suffix (` at line 1 column 42`), which means nothing to a caller.
pub fn path_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = e.inner();
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        return inner.to_string();
    }
    let message = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message);
    format!("{path}: {message}")
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

    /// Text and values read alike: the same documents taken, the same
    /// refusal, naming the field, for one that is not.
    #[test]
    fn text_and_values_are_read_alike_and_refusals_name_the_field() {
        let read = |json: &str| {
            let value = serde_json::from_str(json).expect("JSON");
            (
                from_slice_naming::<ActivityOptions>(json.as_bytes()),
                from_value_naming::<ActivityOptions>(value),
            )
        };
        let (text, value) = read(r#"{"retry_policy": {"initial_interval": "1s"}}"#);
        assert!(text.is_ok() && text == value, "{text:?} {value:?}");
        let (text, value) = read(r#"{"retry_policy": {"initial_interval": -1}}"#);
        let e = text.expect_err("a negative interval");
        assert!(e.starts_with("retry_policy.initial_interval: "), "{e}");
        assert_eq!(value, Err(e));
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_field() {
        let refused = |json: &str, field: &str| {
            let e = ActivityOptions::parse(json).unwrap_err();
            assert!(e.contains(field), "{json}: {e}");
            e
        };
        let e = refused(
            r#"{"start_to_close_timeout": -1}"#,
            "start_to_close_timeout",
        );
        assert!(
            e.contains("-1 is not a duration") && e.contains("10s"),
            "{e}"
        );
        let e = refused(
            r#"{"schedule_to_close_timeout": "10000000000000000000s"}"#,
            "schedule_to_close_timeout",
        );
        assert!(e.contains("longest duration"), "{e}");
        refused(
            r#"{"start_to_close_timeout": 1.5}"#,
            "start_to_close_timeout",
        );
        refused(
            r#"{"start_to_close_timeout": "0s"}"#,
            "start_to_close_timeout",
        );
        refused(
            r#"{"start_to_close_timeout": "1s", "retry_policy": {"backoff_coefficient": 1e308}}"#,
            "retry_policy.backoff_coefficient",
        );
        refused(
            r#"{"start_to_close_timeout": "1s", "retry_policy": {"initial_interval": "3651days"}}"#,
            "retry_policy.initial_interval",
        );
        refused(
            r#"{"start_to_close_timeout": "1s", "fairness_weight": 1e30}"#,
            "fairness_weight",
        );
        let many = serde_json::json!({"start_to_close_timeout": "1s",
            "retry_policy": {"non_retryable_error_types": vec!["E"; 101]}});
        refused(&many.to_string(), "non_retryable_error_types");
        let ok = ActivityOptions::parse(r#"{"start_to_close_timeout": "3650days"}"#).unwrap();
        assert_eq!(
            ok.start_to_close_timeout,
            Some(super::super::bounds::MAX_DURATION)
        );
        // Stored as humantime text, read back at recovery: the round trip
        // must stay within range.
        let stored = serde_json::to_string(&ok).unwrap();
        assert_eq!(ActivityOptions::parse(&stored).unwrap(), ok);
        assert_eq!(
            ActivityOptions::parse(r#"{"start_to_close_timeout": "250"}"#)
                .unwrap()
                .start_to_close_timeout,
            Some(Duration::from_millis(250))
        );
    }
}
