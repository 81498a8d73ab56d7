//! Reading request bodies with our own limits and error shape (axum's
//! default rejections are plain text).
//!
//! Besides each route's own limit, every body is read out of one budget of
//! the host ([`BodyBudget`], `wharf serve --max-body-memory`): a body with
//! a declared length takes that many bytes of it before it is read, one
//! without takes its bytes as they arrive, and both give them back when the
//! handler is done with them. Without it, many large uploads at once (each
//! within its own limit) could hold more memory than the host has, since
//! an upload waits for its turn to compile with its bytes in hand. A body
//! that finds the budget spent is refused at once with a 503 and
//! `Retry-After` rather than waiting, so that a slow sender cannot queue
//! others behind it. A body that stops arriving for the budget's idle time
//! (`--body-idle-timeout`) is cut off with a 408, so a sender that stalls
//! cannot keep its bytes of the budget either.

use super::ApiError;
use axum::body::Body;
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Smallest and largest `--max-body-memory`.
pub const BODY_MEMORY_RANGE: std::ops::RangeInclusive<usize> = (1 << 20)..=(1 << 40);

/// Shortest and longest `--body-idle-timeout`.
pub const BODY_IDLE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);

/// Bytes of request bodies the host holds at once, over all requests, and
/// how long a body may stop arriving.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    idle: Duration,
}

impl BodyBudget {
    /// A budget of `total` bytes and an idle time, each clamped to its range
    /// ([`BODY_MEMORY_RANGE`], [`BODY_IDLE_RANGE`]).
    pub fn new(total: usize, idle: Duration) -> Arc<Self> {
        let total = total.clamp(*BODY_MEMORY_RANGE.start(), *BODY_MEMORY_RANGE.end());
        let idle = idle.clamp(*BODY_IDLE_RANGE.start(), *BODY_IDLE_RANGE.end());
        Arc::new(Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            idle,
        })
    }

    /// Bytes held by bodies now.
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.bytes.available_permits())
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Takes `n` bytes of the budget, or answers why not.
    fn take(&self, n: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n).map_err(|_| self.spent())?;
        self.bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| self.spent())
    }

    fn spent(&self) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bodies_memory_full",
            format!(
                "the server holds request bodies up to its limit of {} bytes \
                 (--max-body-memory) for other requests now; retry shortly",
                self.total
            ),
        )
        .retry_after(1)
    }
}

/// A body read into memory, holding its bytes of the budget until dropped.
pub(crate) struct Held {
    pub(crate) bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Reads at most `limit` bytes out of `budget`; more is a 413 naming the
/// limit, a spent budget a 503.
pub(crate) async fn bytes(
    budget: &BodyBudget,
    mut body: Body,
    limit: usize,
    what: &str,
) -> Result<Held, ApiError> {
    let too_large =
        || ApiError::too_large(format!("{what} is larger than the limit of {limit} bytes"));
    let mut buf = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    // A declared length takes its bytes of the budget, and its buffer, at
    // once: the budget then counts what is allocated, and a body refused
    // for the budget has cost nothing. (The server's HTTP layer ends a body
    // at its declared length.)
    let declared = body.size_hint().exact();
    if let Some(declared) = declared {
        let declared = usize::try_from(declared).unwrap_or(usize::MAX);
        if declared > limit {
            return Err(too_large());
        }
        if declared > budget.total {
            return Err(ApiError::too_large(format!(
                "{what} ({declared} bytes) is larger than all the memory the server gives \
                 request bodies ({} bytes, --max-body-memory)",
                budget.total
            )));
        }
        held = Some(budget.take(declared)?);
        buf.reserve(declared);
    }
    let stalled = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_stalled",
            format!(
                "{what} stopped arriving for {} s (--body-idle-timeout); send it again",
                budget.idle.as_secs()
            ),
        )
    };
    while let Some(frame) = tokio::time::timeout(budget.idle, body.frame())
        .await
        .map_err(|_| stalled())?
    {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read {what}: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len().saturating_add(data.len()) > limit {
            return Err(too_large());
        }
        // Without a declared length, the bytes are taken as they arrive.
        if declared.is_none() {
            let taken = budget.take(data.len())?;
            match &mut held {
                Some(h) => h.merge(taken),
                None => held = Some(taken),
            }
        }
        buf.extend_from_slice(&data);
    }
    Ok(Held {
        bytes: buf.freeze(),
        _budget: held,
    })
}

/// Reads and parses a JSON body; an empty body parses as `{}`. Its bytes
/// go back to the budget once parsed.
pub(crate) async fn json<T: DeserializeOwned>(
    budget: &BodyBudget,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let held = bytes(budget, body, limit, "the request body").await?;
    let raw: &[u8] = if held.bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &held.bytes
    };
    crate::service::options::from_slice_naming(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
