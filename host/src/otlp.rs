//! Traces of activities and attempts, exported to an OpenTelemetry
//! collector over OTLP/HTTP with the JSON encoding (`wharf serve
//! --otlp-endpoint URL` posts to `URL/v1/traces`).
//!
//! The service describes what happened once it is written ([`Span`]s from
//! `service::commit`); this module only carries them out: a bounded queue
//! (a span that finds it full is dropped and counted, never waited for),
//! and one task that posts batches of up to [`BATCH`] spans at least every
//! [`EVERY`]. An export that fails is logged and its batch dropped: traces
//! are for looking, and the activity's own record is in SQLite.
//!
//! Ids are derived, not drawn: every span of a run shares a trace id made
//! from its namespace, run id and first scheduling time, so that the spans
//! written before and after a restart are one trace.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans waiting for export at most; more are dropped.
const QUEUE: usize = 10_000;
/// Spans per request at most.
const BATCH: usize = 512;
/// Longest wait before a partial batch is sent.
const EVERY: Duration = Duration::from_secs(1);

/// Where a run's spans belong: its trace and the span of the activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunTrace {
    trace_id: [u8; 16],
}

impl RunTrace {
    /// The trace of run `run_id` of namespace `ns`, first scheduled at
    /// `scheduled_ms`.
    pub fn of(ns: &str, run_id: i64, scheduled_ms: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"wharf-trace\0");
        h.update(ns.as_bytes());
        h.update(b"\0");
        h.update(run_id.to_le_bytes());
        h.update(scheduled_ms.to_le_bytes());
        let d = h.finalize();
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&d[..16]);
        Self { trace_id }
    }

    /// The id of a span of this trace, from what it is (e.g. `activity`,
    /// `attempt/2`, `attempt/2/run`).
    pub fn span_id(&self, what: &str) -> [u8; 8] {
        let mut h = Sha256::new();
        h.update(self.trace_id);
        h.update(what.as_bytes());
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }
}

/// An attribute's value.
#[derive(Clone, Debug)]
pub enum Attr {
    Str(String),
    Int(i64),
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace: RunTrace,
    /// What it is, for its id (see [`RunTrace::span_id`]).
    pub what: String,
    /// The `what` of its parent, if any.
    pub parent: Option<String>,
    pub name: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// Ended in error (an attempt that failed, an activity that did not
    /// complete).
    pub error: bool,
}

impl Span {
    fn to_json(&self) -> Value {
        let attrs: Vec<Value> = self
            .attributes
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Attr::Str(s) => json!({ "stringValue": s }),
                    // OTLP/JSON carries 64-bit integers as strings.
                    Attr::Int(i) => json!({ "intValue": i.to_string() }),
                };
                json!({ "key": k, "value": value })
            })
            .collect();
        let ns = |ms: u64| ms.saturating_mul(1_000_000).to_string();
        let mut span = json!({
            "traceId": hex::encode(self.trace.trace_id),
            "spanId": hex::encode(self.trace.span_id(&self.what)),
            "name": self.name,
            // SPAN_KIND_INTERNAL
            "kind": 1,
            "startTimeUnixNano": ns(self.start_ms),
            "endTimeUnixNano": ns(self.end_ms.max(self.start_ms)),
            "attributes": attrs,
            // STATUS_CODE_ERROR or STATUS_CODE_OK
            "status": { "code": if self.error { 2 } else { 1 } },
        });
        if let Some(p) = &self.parent {
            span["parentSpanId"] = json!(hex::encode(self.trace.span_id(p)));
        }
        span
    }
}

/// The export queue; cloned into the service.
#[derive(Debug)]
pub struct Exporter {
    tx: mpsc::Sender<Span>,
    dropped: AtomicU64,
}

/// An endpoint that is not an `http(s)://` URL.
#[derive(Debug, thiserror::Error)]
#[error("--otlp-endpoint {0:?} is not an http:// or https:// URL")]
pub struct BadEndpoint(String);

impl Exporter {
    /// Starts exporting to `endpoint` (the collector's base URL; spans go to
    /// `endpoint/v1/traces`). Needs a Tokio runtime.
    pub fn start(endpoint: &str) -> Result<Arc<Self>, BadEndpoint> {
        let base = endpoint.trim_end_matches('/');
        let ok = reqwest::Url::parse(base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(BadEndpoint(endpoint.to_owned()));
        }
        let url = format!("{base}/v1/traces");
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(export(url, rx));
        Ok(Arc::new(Self {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Queues a finished span; drops it if the queue is full.
    pub fn emit(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n + 1, "trace export queue full; spans dropped");
            }
        }
    }
}

/// Posts batches until the service is gone (the last sender dropped).
async fn export(url: String, mut rx: mpsc::Receiver<Span>) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("no HTTP client for trace export: {e}");
            return;
        }
    };
    let mut failures = 0u64;
    // A batch starts with the first span after the last one was sent and
    // closes when full or [`EVERY`] later.
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let spans: Vec<Value> = batch.iter().map(Span::to_json).collect();
        let body = json!({ "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "wharf" } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
            ]},
            "scopeSpans": [{ "scope": { "name": "wharf" }, "spans": spans }],
        }]});
        let failed = match http.post(&url).json(&body).send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("answered {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            failures += 1;
            if failures.is_power_of_two() {
                tracing::warn!(failures, "trace export to {url} failed: {why}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_run_and_differ_between_runs_and_spans() {
        let a = RunTrace::of("ns", 7, 1000);
        assert_eq!(a, RunTrace::of("ns", 7, 1000));
        assert_ne!(a, RunTrace::of("ns", 8, 1000));
        assert_ne!(a, RunTrace::of("other", 7, 1000));
        assert_ne!(a.span_id("activity"), a.span_id("attempt/1"));
        let span = Span {
            trace: a,
            what: "attempt/1".into(),
            parent: Some("activity".into()),
            name: "attempt".into(),
            start_ms: 5,
            end_ms: 7,
            attributes: vec![("wharf.attempt", Attr::Int(1))],
            error: true,
        };
        let j = span.to_json();
        assert_eq!(j["parentSpanId"], json!(hex::encode(a.span_id("activity"))));
        assert_eq!(j["startTimeUnixNano"], json!("5000000"));
        assert_eq!(j["status"]["code"], json!(2));
        assert_eq!(j["attributes"][0]["value"]["intValue"], json!("1"));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        for bad in ["", "localhost:4318", "ftp://x", "http://"] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _guard = rt.enter();
            assert!(Exporter::start(bad).is_err(), "{bad}");
        }
    }
}
