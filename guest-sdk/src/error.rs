//! Activity failures: what an activity returns instead of a result.
//!
//! [`ActivityError`] mirrors the WIT `activity-error` variant: an
//! [`ApplicationError`] (Temporal's `ApplicationFailure`: message, type,
//! non-retryable flag, details, next retry delay), a cancellation, or the
//! promise to complete asynchronously. Common error types convert into a
//! retryable application error of the generic type, so `?` works in activity
//! code.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::__private::bindings::wharf::activity::types as wit;
use crate::payload::{Payload, PayloadError};

/// Why an activity did not return a result.
///
/// ```
/// use std::time::Duration;
/// use wharf_guest::ActivityError;
///
/// let err = ActivityError::retryable("payment service unavailable")
///     .with_type("Unavailable")
///     .with_details(&serde_json::json!({"service": "payments"}))
///     .with_next_retry_delay(Duration::from_secs(30));
/// assert_eq!(err.to_string(), "Unavailable: payment service unavailable");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum ActivityError {
    /// The attempt failed; the retry policy decides what happens next.
    Failed(ApplicationError),
    /// The activity saw a cancellation request and stopped; no retry.
    Cancelled,
    /// The result will be reported later, by task token or activity id.
    WillCompleteAsync,
}

/// A failure raised by activity code, as Temporal's `ApplicationFailure`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ApplicationError {
    /// Human-readable description of what went wrong.
    pub message: String,
    /// Names the kind of failure; retry policies list non-retryable types by
    /// this exact string. Empty means the generic `Error` type.
    pub error_type: String,
    /// When true, no further attempt is made whatever the retry policy.
    pub non_retryable: bool,
    /// Structured data about the failure, handed to the caller unchanged.
    pub details: Vec<Payload>,
    /// Overrides the retry policy's backoff for the next attempt only
    /// (sent in whole milliseconds).
    pub next_retry_delay: Option<Duration>,
}

impl ActivityError {
    /// A failure that the retry policy may retry. `message` may be any
    /// `Display` value, so `.map_err(ActivityError::retryable)` works on any
    /// error.
    pub fn retryable(message: impl fmt::Display) -> ActivityError {
        ActivityError::Failed(ApplicationError {
            message: message.to_string(),
            ..ApplicationError::default()
        })
    }

    /// A failure that is never retried, whatever the retry policy.
    pub fn non_retryable(message: impl fmt::Display) -> ActivityError {
        ActivityError::Failed(ApplicationError {
            message: message.to_string(),
            non_retryable: true,
            ..ApplicationError::default()
        })
    }

    /// The activity saw a cancellation request (see [`crate::heartbeat`]) and
    /// stopped.
    pub fn cancelled() -> ActivityError {
        ActivityError::Cancelled
    }

    /// The attempt stays open: some other process completes, fails or
    /// heartbeats it later by task token ([`crate::ActivityInfo::task_token`])
    /// or activity id.
    pub fn will_complete_async() -> ActivityError {
        ActivityError::WillCompleteAsync
    }

    /// Sets the error type that retry policies match against (exact string).
    /// Has no effect on `Cancelled` and `WillCompleteAsync`; the same holds
    /// for the other `with_` methods.
    pub fn with_type(mut self, error_type: impl Into<String>) -> ActivityError {
        if let ActivityError::Failed(e) = &mut self {
            e.error_type = error_type.into();
        }
        self
    }

    /// Appends `details`, encoded as one `json/plain` payload, to the
    /// failure's details. Should the value not encode as JSON (a map with
    /// non-string keys, say), a JSON string describing the problem is
    /// appended instead, so the failure itself is never lost.
    pub fn with_details<T: Serialize + ?Sized>(self, details: &T) -> ActivityError {
        let payload = Payload::json(details).unwrap_or_else(|e| {
            Payload::json(&format!("unencodable details: {e}")).unwrap_or_else(|_| Payload::null())
        });
        self.with_details_payload(payload)
    }

    /// Appends a payload, unchanged, to the failure's details.
    pub fn with_details_payload(mut self, payload: Payload) -> ActivityError {
        if let ActivityError::Failed(e) = &mut self {
            e.details.push(payload);
        }
        self
    }

    /// Asks for the next attempt to start after `delay` instead of the
    /// retry policy's backoff.
    pub fn with_next_retry_delay(mut self, delay: Duration) -> ActivityError {
        if let ActivityError::Failed(e) = &mut self {
            e.next_retry_delay = Some(delay);
        }
        self
    }

    /// Converts into the WIT type returned by `run`.
    pub(crate) fn into_wit(self) -> wit::ActivityError {
        match self {
            ActivityError::Failed(e) => wit::ActivityError::Failed(wit::ApplicationError {
                message: e.message,
                error_type: e.error_type,
                non_retryable: e.non_retryable,
                details: e.details.into_iter().map(Into::into).collect(),
                next_retry_delay_ms: e
                    .next_retry_delay
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }),
            ActivityError::Cancelled => wit::ActivityError::Cancelled,
            ActivityError::WillCompleteAsync => wit::ActivityError::WillCompleteAsync,
        }
    }
}

impl fmt::Display for ActivityError {
    /// `message`, prefixed by `error_type: ` when a type is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivityError::Failed(e) if e.error_type.is_empty() => f.write_str(&e.message),
            ActivityError::Failed(e) => write!(f, "{}: {}", e.error_type, e.message),
            ActivityError::Cancelled => f.write_str("activity cancelled"),
            ActivityError::WillCompleteAsync => {
                f.write_str("activity will complete asynchronously")
            }
        }
    }
}

impl std::error::Error for ActivityError {}

impl From<ApplicationError> for ActivityError {
    fn from(e: ApplicationError) -> ActivityError {
        ActivityError::Failed(e)
    }
}

impl From<String> for ActivityError {
    /// A retryable failure of the generic type with this message.
    fn from(message: String) -> ActivityError {
        ActivityError::Failed(ApplicationError {
            message,
            ..ApplicationError::default()
        })
    }
}

impl From<&str> for ActivityError {
    /// A retryable failure of the generic type with this message.
    fn from(message: &str) -> ActivityError {
        ActivityError::retryable(message)
    }
}

/// `From` impls turning common errors into retryable failures of the generic
/// type. (A blanket impl over `std::error::Error` would rule out the
/// `String` and `&str` impls, so the list is explicit; for anything else use
/// `.map_err(ActivityError::retryable)`.)
macro_rules! retryable_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for ActivityError {
            /// A retryable failure of the generic type with the error's message.
            fn from(e: $ty) -> ActivityError {
                ActivityError::retryable(e)
            }
        }
    )*};
}

retryable_from!(
    PayloadError,
    serde_json::Error,
    std::io::Error,
    std::fmt::Error,
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::num::TryFromIntError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    Box<dyn std::error::Error + Send + Sync>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_failure(err: ActivityError) -> wit::ApplicationError {
        match err.into_wit() {
            wit::ActivityError::Failed(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn builds_a_full_application_error() {
        let err = ActivityError::non_retryable("order rejected: no stock")
            .with_type("InvalidOrder")
            .with_details(&serde_json::json!({"reason": "no stock"}))
            .with_details_payload(Payload::binary(vec![1]))
            .with_next_retry_delay(Duration::from_millis(1500));
        assert_eq!(err.to_string(), "InvalidOrder: order rejected: no stock");
        let e = wit_failure(err);
        assert_eq!(e.message, "order rejected: no stock");
        assert_eq!(e.error_type, "InvalidOrder");
        assert!(e.non_retryable);
        assert_eq!(e.next_retry_delay_ms, Some(1500));
        assert_eq!(e.details.len(), 2);
        assert_eq!(e.details[0].data, br#"{"reason":"no stock"}"#);
        assert_eq!(
            e.details[0].metadata,
            vec![("encoding".to_string(), b"json/plain".to_vec())]
        );
        assert_eq!(e.details[1].data, vec![1]);
    }

    #[test]
    fn conversions_are_retryable_and_generic() {
        fn parse(s: &str) -> Result<i64, ActivityError> {
            Ok(s.parse::<i64>()?)
        }
        let e = wit_failure(parse("x").unwrap_err());
        assert!(!e.non_retryable);
        assert_eq!(e.error_type, "");
        assert_eq!(e.message, "invalid digit found in string");
        assert_eq!(e.next_retry_delay_ms, None);

        let io = std::io::Error::other("disk on fire");
        assert_eq!(
            ActivityError::from(io),
            ActivityError::retryable("disk on fire")
        );
        assert_eq!(
            ActivityError::from("boom"),
            ActivityError::retryable("boom")
        );
        assert_eq!(
            ActivityError::from(String::from("boom")),
            ActivityError::retryable("boom")
        );
    }

    #[test]
    fn builders_leave_cancel_and_async_alone() {
        let err = ActivityError::cancelled()
            .with_type("X")
            .with_details(&1)
            .with_next_retry_delay(Duration::from_secs(1));
        assert_eq!(err, ActivityError::Cancelled);
        assert!(matches!(err.into_wit(), wit::ActivityError::Cancelled));
        assert!(matches!(
            ActivityError::will_complete_async().into_wit(),
            wit::ActivityError::WillCompleteAsync
        ));
    }
}
