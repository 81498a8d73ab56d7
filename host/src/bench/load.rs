//! The benchmarks' load: starts sent as fast as the server takes them, by
//! a client that takes as little as it can of the machine it shares with
//! the server.
//!
//! The load runs on a thread of its own under a single-threaded runtime,
//! and each of its senders owns one HTTP/1 connection (hyper's client
//! connection: no pool) that its own task drives, so that no request
//! crosses between tasks or threads on the client's side. Through
//! reqwest on the CLI's multi-threaded runtime, each request went from its
//! sender's task to its connection's task and back, often from one thread
//! to the other; see the README's benchmark section for what the client
//! cost before and after.
//!
//! [`super::start_many`] sends its starts through [`send_all`], flat out
//! or paced (the half-load run of `bench throughput`); the idle loop of
//! `bench throughput` sends its requests one at a time over one [`Conn`].

use super::harness::{self, Prepared};
use crate::api::listen::CLIENT_IDLE_TIMEOUT;
use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A server as the lean client reaches it: the address to connect to and
/// the headers every request repeats.
#[derive(Clone)]
pub(super) struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    /// The server of `url` (on this machine: its host is an address), with
    /// `token` if it needs one.
    pub(super) fn new(url: &reqwest::Url, token: Option<&str>) -> anyhow::Result<Self> {
        let addr = url
            .socket_addrs(|| None)
            .ok()
            .and_then(|a| a.into_iter().next())
            .with_context(|| format!("no address for {url}"))?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(Self {
            addr,
            host: HeaderValue::try_from(host)?,
            authorization: token
                .map(|t| HeaderValue::try_from(format!("Bearer {t}")))
                .transpose()?,
        })
    }

    /// A `method` request for `path` (with its query) carrying the JSON
    /// `body` (none if empty).
    pub(super) fn request(
        &self,
        method: http::Method,
        path: http::Uri,
        body: Bytes,
    ) -> http::Request<Full<Bytes>> {
        let json = !body.is_empty();
        let mut r = http::Request::new(Full::new(body));
        *r.method_mut() = method;
        *r.uri_mut() = path;
        let headers = r.headers_mut();
        headers.insert(HOST, self.host.clone());
        if json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(a) = &self.authorization {
            headers.insert(AUTHORIZATION, a.clone());
        }
        r
    }
}

/// The path (with its query) of `url`, as a request names it.
pub(super) fn path_of(url: &reqwest::Url) -> anyhow::Result<http::Uri> {
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    path.parse().with_context(|| format!("bad path {path}"))
}

/// A prepared POST as the lean client sends it, again and again.
#[derive(Clone)]
pub(super) struct Target {
    endpoint: Endpoint,
    path: http::Uri,
    body: Bytes,
}

impl Target {
    /// `request` to a server on this machine, with `token` if it needs one.
    pub(super) fn new(request: &Prepared, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(request.url(), token)?,
            path: path_of(request.url())?,
            body: request.body().clone(),
        })
    }

    fn request(&self) -> http::Request<Full<Bytes>> {
        self.endpoint
            .request(http::Method::POST, self.path.clone(), self.body.clone())
    }
}

/// One keep-alive connection, driven by the task that sends on it.
///
/// One left unused for [`CLIENT_IDLE_TIMEOUT`] is opened again before it
/// sends, as the API's other clients do: the server closes a connection
/// that sends no request for a while, and a paced sender can wait that long
/// for its turn.
pub(super) struct Conn {
    addr: SocketAddr,
    used: Instant,
    sender: http1::SendRequest<Full<Bytes>>,
    conn: Pin<Box<http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

impl Conn {
    /// A connection to `endpoint`.
    pub(super) async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Self::to(endpoint.addr).await
    }

    async fn to(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Self {
            addr,
            used: Instant::now(),
            sender,
            conn: Box::pin(conn),
        })
    }

    /// Sends `request` and reads the answer to its end (which readies the
    /// connection for the next): its status and body.
    pub(super) async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        if self.used.elapsed() >= CLIENT_IDLE_TIMEOUT {
            *self = Self::to(self.addr).await?;
        }
        let answer = self.exchange(request).await;
        self.used = Instant::now();
        answer
    }

    async fn exchange(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let Self { sender, conn, .. } = self;
        let exchange = async {
            sender.ready().await?;
            let answer = sender.send_request(request).await?;
            let status = answer.status().as_u16();
            let body = answer.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::select! {
            done = exchange => done,
            ended = conn.as_mut() => match ended {
                Ok(()) => anyhow::bail!("the server closed the connection"),
                Err(e) => Err(e).context("the connection failed"),
            },
        }
    }
}

/// How a load's requests go out.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pace {
    /// Each sender sends its next request as soon as its last is answered.
    Flat,
    /// One request per period, as long as a sender is free; periods missed
    /// while all were busy are made up at once.
    Every(Duration),
}

/// Sends `n` starts over `senders` connections, as `whole` requests of
/// `batch` starts each (single starts when `batch` is 1), the last `short`
/// if `n` is not a multiple of `batch`, at `pace`; counts the starts
/// answered in `done`. Refused unless every start was created or existed.
pub(super) async fn send_all(
    whole: Target,
    short: Option<Target>,
    (n, batch): (usize, usize),
    senders: usize,
    pace: Pace,
    done: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    super::on_own_thread("bench-load", move || async move {
        let (whole, short) = (Arc::new(whole), Arc::new(short));
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        let requests = n.div_ceil(batch);
        let what = if batch == 1 { "start" } else { "batch start" };
        let paced = match pace {
            Pace::Flat => None,
            Pace::Every(period) => {
                let due = Arc::new(Semaphore::new(0));
                let ticks = due.clone();
                tasks.spawn(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    for _ in 0..requests {
                        tick.tick().await;
                        ticks.add_permits(1);
                    }
                    anyhow::Ok(())
                });
                Some(due)
            }
        };
        // No more senders than requests, each connecting only when it has
        // one to send: a short load with many in flight opens few sockets.
        for _ in 0..senders.min(requests) {
            let (whole, short, paced) = (whole.clone(), short.clone(), paced.clone());
            let (next, done) = (next.clone(), done.clone());
            tasks.spawn(async move {
                let mut conn = None;
                loop {
                    let from = next.fetch_add(batch, Ordering::Relaxed);
                    if from >= n {
                        break;
                    }
                    if let Some(due) = &paced {
                        due.acquire().await?.forget();
                    }
                    let count = batch.min(n - from);
                    let target = match short.as_ref() {
                        Some(short) if count < batch => short,
                        _ => &whole,
                    };
                    let conn = match &mut conn {
                        Some(c) => c,
                        None => conn.insert(Conn::open(&whole.endpoint).await?),
                    };
                    let (status, body) = conn.send(target.request()).await?;
                    let body = harness::successful(what, status, body)?;
                    if batch > 1 {
                        harness::all_started(&body)?;
                    }
                    done.fetch_add(count, Ordering::Relaxed);
                }
                anyhow::Ok(())
            });
        }
        while let Some(sent) = tasks.join_next().await {
            sent??;
        }
        Ok(())
    })
    .await
}
