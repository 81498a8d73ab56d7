//! The attempt log: stdout, stderr and `context.log` lines of one attempt,
//! kept in a bounded buffer.
//!
//! A guest that prints forever must neither exhaust host memory nor fail: its
//! writes keep succeeding, the first `limit` bytes are kept, and a marker says
//! how much was dropped.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Shared handle to one attempt's bounded log.
#[derive(Clone)]
pub struct AttemptLog {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    buf: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl AttemptLog {
    /// A log keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                buf: Vec::new(),
                limit,
                dropped: 0,
            })),
        }
    }

    /// Appends bytes, keeping what fits.
    pub fn append(&self, bytes: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let room = inner.limit.saturating_sub(inner.buf.len());
        let keep = room.min(bytes.len());
        inner.buf.extend_from_slice(&bytes[..keep]);
        inner.dropped += (bytes.len() - keep) as u64;
    }

    /// Appends one line written by the host or through `context.log`.
    pub fn line(&self, line: &str) {
        let mut s = String::with_capacity(line.len() + 1);
        s.push_str(line);
        s.push('\n');
        self.append(s.as_bytes());
    }

    /// The kept text, with a truncation marker if anything was dropped.
    pub fn contents(&self) -> String {
        let Ok(inner) = self.inner.lock() else {
            return String::new();
        };
        let mut s = String::from_utf8_lossy(&inner.buf).into_owned();
        if inner.dropped > 0 {
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&format!(
                "[wharf] log truncated: {} more bytes dropped (limit {} bytes)\n",
                inner.dropped, inner.limit
            ));
        }
        s
    }

    /// Number of bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().map(|i| i.dropped).unwrap_or(0)
    }
}

impl IsTerminal for AttemptLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for AttemptLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for AttemptLog {
    async fn ready(&mut self) {}
}

impl OutputStream for AttemptLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for AttemptLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_and_marks_the_rest() {
        let log = AttemptLog::new(8);
        log.append(b"hello ");
        log.append(b"world");
        assert_eq!(log.dropped(), 3);
        let text = log.contents();
        assert!(text.starts_with("hello wo\n[wharf] log truncated: 3 more bytes"));
    }
}
