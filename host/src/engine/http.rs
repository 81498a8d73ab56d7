//! Outbound HTTP (`wasi:http/outgoing-handler`) for guests, under the
//! attempt's [`EgressRules`].
//!
//! wasmtime-wasi-http turns the guest's `handle` call into an
//! `http::Request` and hands it to [`OutboundHttp::send_request`]; that is
//! the one place every request passes, so the policy is checked here on
//! every request. Guests follow redirects themselves, so each hop is a new
//! request and is checked again. The sender resolves the name itself,
//! refuses it if any resolved address is not public (unless the namespace
//! allows that range), and connects to the checked address, never to the
//! name again, so a second DNS answer cannot slip a private address in.
//! Bodies are bounded in size and the whole exchange in time; every request
//! leaves one line in the attempt log.

use super::egress::{Denial, EgressRules};
use super::log::AttemptLog;
use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Requests an attempt sent and how many of them the policy refused.
#[derive(Default, Debug)]
pub(crate) struct EgressStats {
    pub(crate) requests: AtomicU64,
    pub(crate) denied: AtomicU64,
}

/// The attempt's `wasi:http` sender.
pub(crate) struct OutboundHttp {
    pub(crate) log: AttemptLog,
    pub(crate) rules: Arc<EgressRules>,
    pub(crate) stats: Arc<EgressStats>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>;

/// Where a request goes, as the policy judged it.
struct Target {
    https: bool,
    /// Lower case; an IPv6 literal without brackets.
    host: String,
    port: u16,
}

/// A request that did not get a response.
enum Failure {
    Denied(Denial),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// The wasi:http error a guest sees for a refusal.
fn denial_code(d: &Denial) -> Error {
    match d {
        Denial::PrivateAddress { .. } => Error::DestinationIpProhibited,
        Denial::BadUrl(_) => Error::HttpRequestUriInvalid,
        _ => Error::HttpRequestDenied,
    }
}

impl OutboundHttp {
    fn target(&self, uri: &http::Uri) -> Result<Target, Denial> {
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Denial::BadUrl("the request has no host".into()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        self.rules.check_url(https, &host, port)?;
        Ok(Target { https, host, port })
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let what = format!("outbound HTTP {} {}", request.method(), request.uri());
        let (log, stats, shown) = (self.log.clone(), self.stats.clone(), what.clone());
        let deny = move |d: Denial| {
            let what = &shown;
            let line = format!("[wharf] {what} denied: {d}");
            tracing::debug!("{line}");
            log.line(&line);
            stats.denied.fetch_add(1, Ordering::Relaxed);
            denial_code(&d)
        };
        let sent = self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let max = self.rules.limits.max_requests_per_attempt;
        let target = match self.target(request.uri()) {
            Ok(_) if sent >= u64::from(max) => Err(Denial::TooManyRequests(max)),
            t => t,
        };
        let target = match target {
            Ok(t) => t,
            Err(d) => {
                let e = deny(d);
                return Box::new(async move { Err(e) });
            }
        };
        let rules = self.rules.clone();
        let log = self.log.clone();
        Box::new(async move {
            let started = Instant::now();
            match send(request, &target, &rules, options).await {
                Ok((response, io)) => {
                    let report = Report {
                        log,
                        what: format!("{what} -> {}", response.status().as_u16()),
                        started,
                    };
                    let limit = rules.limits.max_response_bytes;
                    let deadline = started + Duration::from_millis(rules.limits.total_timeout_ms);
                    let response = response.map(|b| {
                        Bounded::new(b, limit, Error::HttpResponseBodySize)
                            .until(deadline)
                            .reporting(report)
                            .boxed_unsync()
                    });
                    Ok((response, io))
                }
                Err(Failure::Denied(d)) => Err(deny(d)),
                Err(Failure::Error(e)) => {
                    let line = format!(
                        "[wharf] {what} failed: {e} ({} ms)",
                        started.elapsed().as_millis()
                    );
                    tracing::debug!("{line}");
                    log.line(&line);
                    Err(e)
                }
            }
        })
    }
}

/// The tighter of the guest's wish and the namespace's limit.
fn tighter(guest: Option<Duration>, ms: u64) -> Duration {
    let limit = Duration::from_millis(ms);
    guest.map_or(limit, |g| g.min(limit))
}

async fn send(
    request: http::Request<WasiBody>,
    target: &Target,
    rules: &EgressRules,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Failure> {
    let limits = &rules.limits;
    let connect_timeout = tighter(
        options.and_then(|o| o.connect_timeout),
        limits.connect_timeout_ms,
    );
    let first_byte_timeout = tighter(
        options.and_then(|o| o.first_byte_timeout),
        limits.first_byte_timeout_ms,
    );
    let total = Duration::from_millis(limits.total_timeout_ms);
    let connecting = async {
        let tcp = connect(target, rules).await?;
        let io: Box<dyn Io> = if target.https {
            Box::new(tls(target, tcp).await?)
        } else {
            Box::new(tcp)
        };
        hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(io))
            .await
            .map_err(|e| Failure::Error(e.into()))
    };
    let (mut sender, conn) = tokio::time::timeout(connect_timeout.min(total), connecting)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for
    // proxies (the Host header, set by wasi-http, names the host).
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    // A declared length over the limit is refused before anything is sent;
    // a streamed body is cut off by `Bounded` when it passes the limit.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_request_bytes) {
        return Err(Error::HttpRequestBodySize(Some(limits.max_request_bytes)).into());
    }
    let body =
        Bounded::new(body, limits.max_request_bytes, Error::HttpRequestBodySize).boxed_unsync();
    let request = http::Request::from_parts(parts, body);

    // hyper's connection future does the I/O; it must be polled while we
    // wait for the response head, and afterwards (for the body) by whoever
    // reads the response: wasi-http spawns it as the returned I/O future.
    let mut response = pin!(tokio::time::timeout(
        first_byte_timeout.min(total),
        sender.send_request(request)
    ));
    let mut conn = Some(conn);
    let head = poll_fn(|cx| {
        if let Poll::Ready(r) = response.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if let Some(c) = conn.as_mut() {
            // The connection ending before the head arrived is answered by
            // `send_request` itself (with its error) on the next poll.
            let _ = ready!(Pin::new(c).poll(cx));
            conn = None;
            return response.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
    .map_err(|_| Error::HttpResponseTimeout)?
    .map_err(from_hyper)?;
    let io: IoFuture = Box::new(async move {
        match conn {
            Some(c) => c.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((head.map(|b| b.map_err(Error::from).boxed_unsync()), io))
}

/// hyper's error, or ours when it carries one: a request body we cut off
/// (too large) reaches us as hyper's "user body" error, and the guest should
/// see the size error, not a protocol error.
fn from_hyper(e: hyper::Error) -> Error {
    let ours = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>());
    match ours {
        Some(Error::HttpRequestBodySize(limit)) => Error::HttpRequestBodySize(*limit),
        _ => Error::from(e),
    }
}

/// Resolves the host (unless it is an address), checks every address, and
/// connects to the first that answers.
async fn connect(target: &Target, rules: &EgressRules) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound.into());
    }
    // Any refused address refuses the host: an attacker's name may answer
    // with a public and a private address and let the order decide.
    for a in &addrs {
        rules
            .check_ip(&target.host, a.ip())
            .map_err(Failure::Denied)?;
    }
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map_or(Error::DestinationUnavailable, Error::Connect)
        .into())
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// TLS client configuration: the system's root certificates, ring.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                // A certificate the store cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::InternalError(Some(format!("TLS setup: {e}"))))
}

async fn tls(
    target: &Target,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| Failure::Error(Error::Tls(e)))
}

/// Writes the request's log line when its response body ends, fails or is
/// dropped unread.
struct Report {
    log: AttemptLog,
    what: String,
    started: Instant,
}

impl Report {
    fn write(&self, bytes: u64, how: &str) {
        let line = format!(
            "[wharf] {} ({bytes} B{how}, {} ms)",
            self.what,
            self.started.elapsed().as_millis()
        );
        tracing::debug!("{line}");
        self.log.line(&line);
    }
}

/// A body that stops with an error past `limit` bytes or past its deadline.
struct Bounded<B> {
    inner: B,
    limit: u64,
    seen: u64,
    too_big: fn(Option<u64>) -> Error,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    report: Option<Report>,
    failed: bool,
}

impl<B> Bounded<B> {
    fn new(inner: B, limit: u64, too_big: fn(Option<u64>) -> Error) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            too_big,
            deadline: None,
            report: None,
            failed: false,
        }
    }

    fn until(mut self, deadline: Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline.into())));
        self
    }

    fn reporting(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
    }

    fn end(&mut self, how: &str) {
        if let Some(r) = self.report.take() {
            r.write(self.seen, how);
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.end(&format!(", stopped: {e}"));
        self.failed = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl<B: Body<Data = Bytes, Error = Error> + Unpin> Body for Bounded<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.failed {
            // Nothing more is read from a failed body.
            return Poll::Ready(None);
        }
        if let Some(d) = this.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                return this.fail(Error::HttpResponseTimeout);
            }
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        let limit = this.limit;
                        return this.fail((this.too_big)(Some(limit)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => this.fail(e),
            None => {
                this.end("");
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Bounded<B> {
    fn drop(&mut self) {
        self.end(", body not read to the end");
    }
}
