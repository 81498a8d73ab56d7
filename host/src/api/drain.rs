//! Refused requests still have their bodies read, so that their senders get
//! to read the answer.
//!
//! A request can be answered before its body is read: a 401 or 404 from
//! its head, a 413 from its declared length, a 503 when the body budget is
//! spent, a 413 part-way through. The handler then drops the body, and the
//! HTTP layer closes the connection with the rest of it unread; the kernel
//! answers those bytes with a reset. A client that sends its whole body
//! before reading (most do, unless they use `Expect: 100-continue`) then
//! sees a broken pipe instead of the answer. So every request body is
//! wrapped ([`on_drop_drain`]): dropped before its end, what is left of it
//! is read and thrown away in the background, for at most [`DRAIN_TIME`]
//! and [`DRAIN_BYTES`], and the connection then ends as it would have.
//! Nothing read this way is kept, so it takes nothing of the body budget.

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Longest a refused body is read for after its answer.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Most bytes of a refused body read after its answer.
pub const DRAIN_BYTES: u64 = 1 << 30;

/// Wraps the request's body (a layer of the router).
pub(super) async fn on_drop_drain(req: Request) -> Request {
    req.map(|body| Body::new(Drained { inner: Some(body) }))
}

/// A request body that drains what is left of itself when dropped.
struct Drained {
    inner: Option<Body>,
}

impl http_body::Body for Drained {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        // A body read to its end, or one that never had any (a GET), is
        // the common case and costs nothing here.
        if body.is_end_stream() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(body));
        }
    }
}

/// Reads `body` to its end, or until [`DRAIN_TIME`] has passed or
/// [`DRAIN_BYTES`] were read, keeping nothing.
async fn drain(mut body: Body) {
    let until = tokio::time::Instant::now() + DRAIN_TIME;
    let mut left = DRAIN_BYTES;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await {
        let n = frame.data_ref().map_or(0, Bytes::len);
        left = left.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        if left == 0 {
            break;
        }
    }
}
