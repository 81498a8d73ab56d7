//! Accepting the API's connections: our own loop over hyper in place of
//! `axum::serve`, for two bounds it does not set.
//!
//! * A connection must send a request's headers within
//!   [`HEADER_READ_TIMEOUT`] of waiting for them, idle keep-alive included,
//!   or it is closed: without a timer hyper waits for ever, so connections
//!   that never send anything would stay open until the process runs out
//!   of file descriptors, and then no one could connect.
//! * At most `max_connections` are served at once; more wait in the
//!   kernel's listen queue until one closes.
//!
//! Shutdown stops accepting, asks each connection to finish its request
//! in flight, and waits for them, as `axum::serve`'s graceful shutdown did.

use super::Gate;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a connection may take to send a request's headers, counted
/// from when the server starts waiting for them.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long our own clients (the CLI, the benchmarks, the test harness)
/// keep an idle connection for another request: well under
/// [`HEADER_READ_TIMEOUT`], after which the server closes it. A client
/// that has not yet seen that close (its runtime was not running while it
/// waited) would otherwise send on the closed connection and fail with
/// "connection closed before message completed".
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A builder for a client of this API that keeps idle connections only
/// [`CLIENT_IDLE_TIMEOUT`].
pub fn client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(CLIENT_IDLE_TIMEOUT)
}

/// Smallest and largest `--max-connections`.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// connections finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    app: Gate,
    max_connections: u32,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(max_connections.max(1) as usize));
    // HTTP/1.1 only, as the router is built: a protocol-detecting server
    // would first wait, with no timeout, for bytes to tell the version by.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), app.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
