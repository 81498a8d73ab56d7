//! `GET /metrics`: the host's figures in OpenMetrics text, through
//! `prometheus-client` (see [`crate::metrics`] for the names, labels and
//! how their number is bounded).
//!
//! Each scrape builds a registry from the service's live families and a
//! snapshot of its counters, slots, namespace usage and queue backlogs, so
//! that a queue or namespace that is gone leaves no stale series.

use super::AppState;
use crate::metrics::{self, QueueLabels, MAX_LABEL_SETS};
use crate::service::tenant::UsageView;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads one counter of a namespace's usage.
type UsageField = fn(&UsageView) -> u64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct NamespaceLabel {
    namespace: String,
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    responses((status = 200, description = "Counters, gauges and histograms in OpenMetrics text form", content_type = "application/openmetrics-text", body = String)),
)]
pub(super) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let c = app.service.counters();
    let mut r = Registry::default();
    // Registered without `_total`: the encoder adds it to counters.
    for (name, help, v) in [
        (
            "wharf_activities_started",
            "Activities started.",
            &c.started,
        ),
        ("wharf_attempts", "Attempts run.", &c.attempts),
        (
            "wharf_activities_completed",
            "Activities completed.",
            &c.completed,
        ),
        ("wharf_activities_failed", "Activities failed.", &c.failed),
        (
            "wharf_activities_cancelled",
            "Activities cancelled.",
            &c.cancelled,
        ),
        (
            "wharf_activities_timed_out",
            "Activities timed out.",
            &c.timed_out,
        ),
    ] {
        r.register(name, help, ConstCounter::new(v.load(Ordering::Relaxed)));
    }
    let (running, capacity, waiting) = app.service.host_slots();
    for (name, help, v) in [
        (
            "wharf_host_attempts_running",
            "Attempts holding a host slot.",
            running,
        ),
        (
            "wharf_host_attempt_slots",
            "Attempts the host runs at once.",
            capacity,
        ),
        (
            "wharf_host_attempts_waiting",
            "Attempts waiting for a host slot (namespaces take turns).",
            waiting,
        ),
        (
            "wharf_task_queues",
            "Task queues held in memory (a queue with nothing deployed, waiting, running or configured is dropped within seconds).",
            app.service.queue_count(),
        ),
        (
            "wharf_request_body_bytes",
            "Bytes of request bodies held in memory now.",
            app.bodies.held(),
        ),
        (
            "wharf_request_body_bytes_limit",
            "Most bytes of request bodies held in memory at once (--max-body-memory).",
            app.bodies.total(),
        ),
    ] {
        r.register(name, help, ConstGauge::new(gauge(v)));
    }
    let namespaces = app.service.list_namespaces();
    let per_namespace: [(&str, &str, UsageField); 5] = [
        (
            "wharf_namespace_attempts",
            "Attempts run, by namespace.",
            |u| u.attempts,
        ),
        (
            "wharf_namespace_fuel_used",
            "Fuel (CPU) used by attempts, by namespace.",
            |u| u.fuel_used,
        ),
        (
            "wharf_namespace_starts_rate_limited",
            "Starts refused by the namespace's start rate.",
            |u| u.starts_rate_limited,
        ),
        (
            "wharf_namespace_egress_requests",
            "Outbound HTTP requests of attempts (refused ones included), by namespace.",
            |u| u.egress_requests,
        ),
        (
            "wharf_namespace_egress_denied",
            "Outbound HTTP requests the egress policy refused, by namespace.",
            |u| u.egress_denied,
        ),
    ];
    for (name, help, get) in per_namespace {
        let family = Family::<NamespaceLabel, Counter>::default();
        for n in &namespaces {
            let label = NamespaceLabel {
                namespace: n.name.clone(),
            };
            family.get_or_create(&label).inc_by(get(&n.usage));
        }
        r.register(name, help, family);
    }
    let cpu = Family::<NamespaceLabel, Counter<f64, AtomicU64>>::default();
    for n in &namespaces {
        let label = NamespaceLabel {
            namespace: n.name.clone(),
        };
        cpu.get_or_create(&label).inc_by(n.usage.guest_cpu_seconds);
    }
    r.register(
        "wharf_namespace_guest_cpu_seconds",
        "CPU time of the guest threads running attempts, by namespace.",
        cpu,
    );
    c.activity.register(&mut r);
    register_backlogs(&mut r, app.service.queue_backlogs());
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::encode(&r))
}

/// The backlog gauges of at most [`MAX_LABEL_SETS`] queues, the largest
/// backlogs first.
fn register_backlogs(r: &mut Registry, mut queues: Vec<(String, String, usize, u64)>) {
    queues.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)));
    queues.truncate(MAX_LABEL_SETS);
    let count = Family::<QueueLabels, Gauge>::default();
    let age = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
    for (namespace, task_queue, len, age_ms) in queues {
        let labels = QueueLabels {
            namespace,
            task_queue,
        };
        count.get_or_create(&labels).set(gauge(len));
        age.get_or_create(&labels).set(age_ms as f64 / 1000.0);
    }
    r.register(
        "approximate_backlog_count",
        "Tasks waiting for a worker on a task queue (in its backlog or at a full concurrency limit).",
        count,
    );
    r.register(
        "approximate_backlog_age_seconds",
        "Age of the oldest task in a task queue's backlog.",
        age,
    );
}

fn gauge(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
