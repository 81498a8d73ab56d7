//! What `/metrics` reports, kept with `prometheus-client` and encoded by
//! it (OpenMetrics text).
//!
//! The service records into one [`ActivityMetrics`] (latencies and task
//! counters labelled by namespace, task queue and activity type, under
//! the names Temporal's SDKs and server use where they mean the same
//! thing); the API builds a [`Registry`] on each scrape from those and the
//! service's snapshot values (counters, slots, backlogs) and encodes it.
//!
//! Cardinality is bounded: at most [`MAX_LABEL_SETS`] distinct
//! (namespace, task queue, activity type) sets are kept; an activity of a
//! set beyond that is recorded under its namespace with `task_queue` and
//! `activity_type` both [`OTHER`]. Namespaces are made by the admin only,
//! so the overflow sets are at most one per namespace. Backlog gauges are
//! reported for at most [`MAX_LABEL_SETS`] queues, the largest backlogs
//! first.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most distinct (namespace, task queue, activity type) label sets kept.
pub const MAX_LABEL_SETS: usize = 1000;

/// The `task_queue` and `activity_type` of label sets past the cap.
pub const OTHER: &str = "_other";

/// Upper bounds of the schedule-to-start buckets, in seconds: 50 µs to
/// 10 min (the benchmarks read sub-millisecond dispatch from them).
const DISPATCH_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005,
    0.01, 0.02, 0.05, 0.1, 1.0, 10.0, 60.0, 600.0,
];

/// Upper bounds of the execution and end-to-end buckets, in seconds: 1 ms
/// to 1 h.
const RUN_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

fn dispatch_histogram() -> Histogram {
    Histogram::new(DISPATCH_BUCKETS.iter().copied())
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS.iter().copied())
}

/// Whom an activity's figures are counted for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActivityLabels {
    /// The namespace.
    pub namespace: String,
    /// The task queue, or [`OTHER`].
    pub task_queue: String,
    /// The activity type, or [`OTHER`].
    pub activity_type: String,
}

/// A task queue, for backlog gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The namespace.
    pub namespace: String,
    /// The task queue.
    pub task_queue: String,
}

type Latency = Family<ActivityLabels, Histogram, fn() -> Histogram>;

/// Figures of activities that the service records as they happen.
pub struct ActivityMetrics {
    /// The label sets resolved so far, by a hash of their labels: their
    /// own sets (at most [`MAX_LABEL_SETS`]) and namespaces' overflow sets.
    seen: Mutex<Seen>,
    /// From entering the backlog to a worker taking the task, by labels.
    schedule_to_start: Latency,
    /// From entering the backlog to a worker taking the task, unlabelled
    /// (`wharf_schedule_to_start_seconds`, which the benchmarks read).
    schedule_to_start_all: Histogram,
    /// How long an attempt ran.
    execution: Latency,
    /// From the activity's first scheduling to its close.
    end_to_end: Latency,
    /// Tasks taken by a worker (attempts started).
    tasks: Family<ActivityLabels, Counter>,
    /// Attempts that ended other than completed (failed, timed out,
    /// trapped, over a limit, lost, cancelled).
    execution_failed: Family<ActivityLabels, Counter>,
}

#[derive(Default)]
struct Seen {
    by_hash: HashMap<u64, Vec<Arc<ActivityFigures>>>,
    /// Own (not overflow) label sets among them.
    own: usize,
    hasher: RandomState,
}

impl Seen {
    fn hash(&self, namespace: &str, task_queue: &str, activity_type: &str) -> u64 {
        self.hasher.hash_one((namespace, task_queue, activity_type))
    }

    fn find(&self, hash: u64, ns: &str, tq: &str, ty: &str) -> Option<Arc<ActivityFigures>> {
        let same = |f: &&Arc<ActivityFigures>| {
            let l = &f.labels;
            l.namespace == ns && l.task_queue == tq && l.activity_type == ty
        };
        self.by_hash.get(&hash)?.iter().find(same).cloned()
    }
}

/// One label set's figures, resolved once for an activity: recording an
/// attempt's figures then looks nothing up by labels (the families' maps
/// are read when a label set is first used, not for every activity).
pub struct ActivityFigures {
    labels: ActivityLabels,
    schedule_to_start: Histogram,
    execution: Histogram,
    end_to_end: Histogram,
    tasks: Counter,
}

impl Default for ActivityMetrics {
    fn default() -> Self {
        Self {
            seen: Mutex::new(Seen::default()),
            schedule_to_start: Family::new_with_constructor(dispatch_histogram),
            schedule_to_start_all: dispatch_histogram(),
            execution: Family::new_with_constructor(run_histogram),
            end_to_end: Family::new_with_constructor(run_histogram),
            tasks: Family::default(),
            execution_failed: Family::default(),
        }
    }
}

impl ActivityMetrics {
    /// The figures to record an activity under: its own label set while
    /// fewer than [`MAX_LABEL_SETS`] are in use, else its namespace's
    /// overflow set.
    pub fn figures(
        &self,
        namespace: &str,
        task_queue: &str,
        activity_type: &str,
    ) -> Arc<ActivityFigures> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let hash = seen.hash(namespace, task_queue, activity_type);
        if let Some(f) = seen.find(hash, namespace, task_queue, activity_type) {
            return f;
        }
        let (labels, hash) = if seen.own < MAX_LABEL_SETS {
            seen.own += 1;
            let labels = ActivityLabels {
                namespace: namespace.to_owned(),
                task_queue: task_queue.to_owned(),
                activity_type: activity_type.to_owned(),
            };
            (labels, hash)
        } else {
            let hash = seen.hash(namespace, OTHER, OTHER);
            if let Some(f) = seen.find(hash, namespace, OTHER, OTHER) {
                return f;
            }
            (overflow(namespace), hash)
        };
        let figures = Arc::new(ActivityFigures {
            schedule_to_start: self.schedule_to_start.get_or_create(&labels).clone(),
            execution: self.execution.get_or_create(&labels).clone(),
            end_to_end: self.end_to_end.get_or_create(&labels).clone(),
            tasks: self.tasks.get_or_create(&labels).clone(),
            labels,
        });
        seen.by_hash.entry(hash).or_default().push(figures.clone());
        figures
    }

    /// A worker took an activity's task after `waited` seconds in the
    /// backlog.
    pub fn task_taken(&self, f: &ActivityFigures, waited: f64) {
        self.schedule_to_start_all.observe(waited);
        f.schedule_to_start.observe(waited);
        f.tasks.inc();
    }

    /// An attempt ran for `seconds`; `failed` if it ended other than
    /// completed.
    pub fn attempt_ran(&self, f: &ActivityFigures, seconds: f64, failed: bool) {
        f.execution.observe(seconds);
        if failed {
            // Made at the first failure: a label set that never failed
            // reports no series, as before.
            self.execution_failed.get_or_create(&f.labels).inc();
        }
    }

    /// An activity closed `seconds` after it was first scheduled.
    pub fn closed(&self, f: &ActivityFigures, seconds: f64) {
        f.end_to_end.observe(seconds);
    }

    /// Adds these figures to a scrape's registry (the families are shared,
    /// not copied).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "activity_schedule_to_start_latency_seconds",
            "Time from entering the backlog to a worker taking the task.",
            self.schedule_to_start.clone(),
        );
        r.register(
            "activity_execution_latency_seconds",
            "How long an attempt ran.",
            self.execution.clone(),
        );
        r.register(
            "activity_end_to_end_latency_seconds",
            "Time from an activity's first scheduling to its close, over all attempts.",
            self.end_to_end.clone(),
        );
        r.register(
            "activity_task",
            "Tasks taken by a worker (attempts started).",
            self.tasks.clone(),
        );
        r.register(
            "activity_execution_failed",
            "Attempts that ended other than completed (failed, timed out, trapped, over a limit, lost, cancelled).",
            self.execution_failed.clone(),
        );
        r.register(
            "wharf_schedule_to_start_seconds",
            "Time from entering the backlog to a worker taking the task (all queues).",
            self.schedule_to_start_all.clone(),
        );
    }
}

fn overflow(namespace: &str) -> ActivityLabels {
    ActivityLabels {
        namespace: namespace.to_owned(),
        task_queue: OTHER.to_owned(),
        activity_type: OTHER.to_owned(),
    }
}

/// A duration in seconds, for a histogram.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Encodes a registry as OpenMetrics text.
pub fn encode(r: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, r);
    out
}

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_past_the_cap_fall_into_their_namespaces_overflow_set() {
        let m = ActivityMetrics::default();
        for i in 0..MAX_LABEL_SETS {
            let f = m.figures("ns", &format!("q{i}"), "t");
            assert_eq!(f.labels.task_queue, format!("q{i}"));
        }
        let first = m.figures("ns", "q0", "t");
        assert_eq!(first.labels.task_queue, "q0");
        assert!(Arc::ptr_eq(&first, &m.figures("ns", "q0", "t")));
        let past = m.figures("other-ns", "q", "t");
        assert!(Arc::ptr_eq(&past, &m.figures("other-ns", "q2", "t2")));
        let past = &past.labels;
        assert_eq!(
            (
                past.namespace.as_str(),
                past.task_queue.as_str(),
                past.activity_type.as_str()
            ),
            ("other-ns", OTHER, OTHER)
        );
    }
}
