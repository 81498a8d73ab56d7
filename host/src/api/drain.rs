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
//! wrapped ([`Drained`], by the API's gate): dropped before its end, what is left of it
//! is read and thrown away in the background, for at most [`DRAIN_TIME`]
//! and [`DRAIN_BYTES`], and the connection then ends as it would have.
//! Nothing read this way is kept, so it takes nothing of the body budget.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Longest a refused body is read for after its answer.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Most bytes of a refused body read after its answer.
pub const DRAIN_BYTES: u64 = 1 << 30;

/// What a request body must be to be drained: read in the background
/// once its request is answered.
pub trait Drainable: http_body::Body<Data = Bytes> + Unpin + Send + 'static {}

impl<B: http_body::Body<Data = Bytes> + Unpin + Send + 'static> Drainable for B {}

/// A request body that drains what is left of itself when dropped.
pub(super) struct Drained<B: Drainable> {
    inner: Option<B>,
}

impl<B: Drainable> Drained<B> {
    pub(super) fn new(body: B) -> Self {
        Self { inner: Some(body) }
    }
}

impl<B: Drainable> http_body::Body for Drained<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), B::size_hint)
    }
}

impl<B: Drainable> Drop for Drained<B> {
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
async fn drain<B: Drainable>(mut body: B) {
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
