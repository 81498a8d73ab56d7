//! Translation between Temporal's activity vocabulary and the engine's.
//!
//! Inward: an activity task's `Start` becomes the attempt's [`ActivityInfo`]
//! and arguments, payloads passed through byte for byte. Outward: the
//! attempt's [`Outcome`] becomes the [`Report`] to send to the server (or
//! none, where the server's own verdict stands: a timeout, a cancellation
//! the server issued because the task is gone).

use crate::engine::{ActivityInfo, Outcome};
use crate::payload::Payload;
use crate::worker::{attempt_deadline, failure_of, Failure};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_common::protos::coresdk::activity_task::{ActivityCancelReason, Start};
use temporalio_common::protos::temporal::api::common::v1::{Payload as ProtoPayload, Payloads};
use temporalio_common::protos::temporal::api::failure::v1::{
    failure::FailureInfo, ApplicationFailureInfo, Failure as ProtoFailure,
};

/// What the worker tells the server about an attempt. Stored in the outbox
/// as JSON until the server took it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    /// `RespondActivityTaskCompleted` with exactly this payload.
    Completed {
        /// The result.
        result: Payload,
    },
    /// `RespondActivityTaskFailed`: an `ApplicationFailure`, with the last
    /// heartbeat details so the next attempt resumes from them.
    Failed {
        /// The failure.
        failure: Failure,
        /// Details of the attempt's last heartbeat.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        last_heartbeat_details: Vec<Payload>,
    },
    /// `RespondActivityTaskCanceled`, after a last heartbeat carrying the
    /// latest details (a cancellation cannot carry them itself).
    Cancelled {
        /// Details of the attempt's last heartbeat.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        last_heartbeat_details: Vec<Payload>,
    },
    /// `RecordActivityTaskHeartbeat`: the last details of an attempt that
    /// will complete asynchronously, which core's throttling may have held
    /// back.
    Heartbeat {
        /// The details.
        details: Vec<Payload>,
    },
}

impl Report {
    /// Short name, as logged.
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Completed { .. } => "completed",
            Report::Failed { .. } => "failed",
            Report::Cancelled { .. } => "cancelled",
            Report::Heartbeat { .. } => "heartbeat",
        }
    }
}

/// Error type of the failure reported for a task whose activity type no
/// loaded module exports.
pub const TYPE_NOT_FOUND: &str = "ActivityTypeNotFound";

/// The failure reported for an attempt stopped because this worker shuts
/// down: retryable, so that another worker takes the next attempt at once
/// instead of waiting for a timeout (as core does for the other SDKs).
pub fn worker_shutdown_failure() -> Failure {
    Failure {
        error_type: "WorkerShutdown".into(),
        message: "the wharf worker shut down and stopped this attempt".into(),
        ..Failure::default()
    }
}

/// What a cancellation from the server means for the report.
fn cancel_reason(reason: i32) -> ActivityCancelReason {
    ActivityCancelReason::try_from(reason).unwrap_or(ActivityCancelReason::Cancelled)
}

/// The report for an attempt's outcome. `cancel` is the reason of the
/// cancellation the server issued, if it did; `last_heartbeat` the details
/// the attempt last recorded.
pub fn report_of(
    outcome: &Outcome,
    log: &str,
    last_heartbeat: Option<&[Payload]>,
    cancel: Option<i32>,
) -> Option<Report> {
    let last_heartbeat_details = last_heartbeat.map(<[Payload]>::to_vec).unwrap_or_default();
    match outcome {
        Outcome::Completed { result } => Some(Report::Completed {
            result: result.clone(),
        }),
        // Stopped at the deadline the server also keeps: its timeout stands.
        Outcome::TimedOut => None,
        Outcome::WillCompleteAsync => {
            (!last_heartbeat_details.is_empty()).then_some(Report::Heartbeat {
                details: last_heartbeat_details,
            })
        }
        Outcome::Cancelled => match cancel.map(cancel_reason) {
            Some(
                ActivityCancelReason::Cancelled
                | ActivityCancelReason::Paused
                | ActivityCancelReason::Reset,
            ) => Some(Report::Cancelled {
                last_heartbeat_details,
            }),
            Some(ActivityCancelReason::WorkerShutdown) => Some(Report::Failed {
                failure: worker_shutdown_failure(),
                last_heartbeat_details,
            }),
            // The server no longer knows the task (timed out, gone).
            Some(ActivityCancelReason::TimedOut | ActivityCancelReason::NotFound) => None,
            // Cancelled with nobody asking: the server would refuse a
            // cancellation it did not request, so it is a failure.
            None => Some(Report::Failed {
                failure: Failure {
                    error_type: "ActivityCancelled".into(),
                    message: "the activity reported itself cancelled, but no cancellation \
                              was requested"
                        .into(),
                    ..Failure::default()
                },
                last_heartbeat_details,
            }),
        },
        _ => failure_of(outcome, log).map(|failure| Report::Failed {
            failure,
            last_heartbeat_details,
        }),
    }
}

/// A Temporal payload as ours: same bytes, metadata sorted by key (a proto
/// map has no order).
pub fn payload_from_proto(p: ProtoPayload) -> Payload {
    let mut metadata: Vec<(String, Vec<u8>)> = p.metadata.into_iter().collect();
    metadata.sort();
    Payload {
        metadata,
        data: p.data,
    }
}

/// Our payload as Temporal's.
pub fn payload_to_proto(p: &Payload) -> ProtoPayload {
    ProtoPayload {
        metadata: p.metadata.iter().cloned().collect(),
        data: p.data.clone(),
        ..ProtoPayload::default()
    }
}

/// A list of payloads as Temporal's optional `Payloads`.
pub fn payloads_to_proto(ps: &[Payload]) -> Option<Payloads> {
    (!ps.is_empty()).then(|| Payloads {
        payloads: ps.iter().map(payload_to_proto).collect(),
    })
}

/// A failure as Temporal's `ApplicationFailure`.
pub fn failure_to_proto(f: &Failure) -> ProtoFailure {
    ProtoFailure {
        message: f.message.clone(),
        source: "wharf".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                r#type: f.error_type.clone(),
                non_retryable: f.non_retryable,
                details: payloads_to_proto(&f.details),
                next_retry_delay: f
                    .next_retry_delay_ms
                    .and_then(|ms| Duration::from_millis(ms).try_into().ok()),
                ..ApplicationFailureInfo::default()
            },
        )),
        ..ProtoFailure::default()
    }
}

/// Where the task came from, for the parts of `activity-info` the task
/// itself does not carry.
pub struct TaskOrigin<'a> {
    /// Namespace the worker serves.
    pub namespace: &'a str,
    /// Queue the task was polled from.
    pub task_queue: &'a str,
    /// This process's own queue.
    pub worker_task_queue: &'a str,
}

/// Milliseconds since the Unix epoch of a protobuf timestamp (0 if unset
/// or before the epoch).
fn ts_ms(seconds: i64, nanos: i32) -> u64 {
    let ms = seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(nanos) / 1_000_000);
    u64::try_from(ms).unwrap_or(0)
}

/// Milliseconds of a protobuf duration; `None` when unset or zero (the
/// server sends zero for "no timeout").
fn dur_ms(seconds: i64, nanos: i32) -> Option<u64> {
    let ms = seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(nanos) / 1_000_000);
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

/// The attempt's info and arguments from a `Start` task.
pub fn info_of(task_token: &[u8], start: &Start, origin: &TaskOrigin<'_>) -> ActivityInfo {
    let scheduled_ms = start
        .scheduled_time
        .as_ref()
        .map_or(0, |t| ts_ms(t.seconds, t.nanos));
    let started_ms = start
        .started_time
        .as_ref()
        .map_or_else(crate::now_ms, |t| ts_ms(t.seconds, t.nanos));
    let start_to_close = start
        .start_to_close_timeout
        .as_ref()
        .and_then(|d| dur_ms(d.seconds, d.nanos));
    let schedule_to_close = start
        .schedule_to_close_timeout
        .as_ref()
        .and_then(|d| dur_ms(d.seconds, d.nanos));
    let deadline_ms = attempt_deadline(
        scheduled_ms,
        started_ms,
        start_to_close.map(Duration::from_millis),
        schedule_to_close.map(Duration::from_millis),
    );
    let workflow = start.workflow_execution.as_ref();
    ActivityInfo {
        namespace: if start.workflow_namespace.is_empty() {
            origin.namespace.to_owned()
        } else {
            start.workflow_namespace.clone()
        },
        task_queue: origin.task_queue.to_owned(),
        activity_id: start.activity_id.clone(),
        activity_type: start.activity_type.clone(),
        attempt: start.attempt.max(1),
        task_token: task_token.to_vec(),
        scheduled_ms,
        started_ms,
        deadline_ms,
        heartbeat_timeout_ms: start
            .heartbeat_timeout
            .as_ref()
            .and_then(|d| dur_ms(d.seconds, d.nanos)),
        heartbeat_details: start
            .heartbeat_details
            .iter()
            .cloned()
            .map(payload_from_proto)
            .collect(),
        workflow_id: workflow
            .map(|w| w.workflow_id.clone())
            .filter(|s| !s.is_empty()),
        workflow_type: Some(start.workflow_type.clone()).filter(|s| !s.is_empty()),
        worker_task_queue: origin.worker_task_queue.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ApplicationError;
    use serde_json::json;

    #[test]
    fn payloads_pass_through_byte_for_byte() {
        let proto = ProtoPayload {
            metadata: [
                ("encoding".to_owned(), b"binary/plain".to_vec()),
                ("x-custom".to_owned(), vec![0, 255]),
            ]
            .into_iter()
            .collect(),
            data: vec![1, 2, 3, 0, 254],
            ..ProtoPayload::default()
        };
        let ours = payload_from_proto(proto.clone());
        assert_eq!(ours.encoding(), Some("binary/plain"));
        assert_eq!(payload_to_proto(&ours), proto);
    }

    #[test]
    fn application_errors_keep_type_details_and_delay() {
        let outcome = Outcome::Failed {
            error: ApplicationError {
                message: "order rejected".into(),
                error_type: "InvalidOrder".into(),
                non_retryable: true,
                details: vec![Payload::json(&json!({"reason": "x"}))],
                next_retry_delay_ms: Some(1500),
            },
        };
        let Some(Report::Failed { failure, .. }) = report_of(&outcome, "", None, None) else {
            panic!("not a failure");
        };
        let proto = failure_to_proto(&failure);
        let Some(FailureInfo::ApplicationFailureInfo(info)) = proto.failure_info else {
            panic!("not an application failure");
        };
        assert_eq!(info.r#type, "InvalidOrder");
        assert!(info.non_retryable);
        assert_eq!(info.details.map(|d| d.payloads.len()), Some(1));
        let delay = info.next_retry_delay.expect("delay");
        assert_eq!((delay.seconds, delay.nanos), (1, 500_000_000));
    }

    #[test]
    fn host_failures_are_typed_and_carry_the_log_tail() {
        let outcome = Outcome::Trapped {
            message: "wasm trap: unreachable".into(),
        };
        let Some(Report::Failed { failure, .. }) =
            report_of(&outcome, "guest said goodbye\n", None, None)
        else {
            panic!("not a failure");
        };
        assert_eq!(failure.error_type, "WasmTrap");
        assert!(!failure.non_retryable);
        assert!(failure.message.contains("guest said goodbye"));
    }

    #[test]
    fn the_servers_verdict_stands_for_timeouts() {
        assert_eq!(report_of(&Outcome::TimedOut, "", None, None), None);
        let timed_out = ActivityCancelReason::TimedOut as i32;
        assert_eq!(
            report_of(&Outcome::Cancelled, "", None, Some(timed_out)),
            None
        );
    }

    #[test]
    fn cancellations_keep_their_heartbeat_and_shutdown_is_retryable() {
        let hb = [Payload::json(&json!({"next": 3}))];
        let requested = ActivityCancelReason::Cancelled as i32;
        assert_eq!(
            report_of(&Outcome::Cancelled, "", Some(&hb), Some(requested)),
            Some(Report::Cancelled {
                last_heartbeat_details: hb.to_vec()
            })
        );
        let shutdown = ActivityCancelReason::WorkerShutdown as i32;
        let Some(Report::Failed { failure, .. }) =
            report_of(&Outcome::Cancelled, "", None, Some(shutdown))
        else {
            panic!("not a failure");
        };
        assert_eq!(failure.error_type, "WorkerShutdown");
        assert!(!failure.non_retryable);
    }

    #[test]
    fn reports_survive_the_outbox() {
        let report = Report::Failed {
            failure: Failure {
                error_type: "FlakyError".into(),
                details: vec![Payload {
                    metadata: vec![("encoding".into(), b"binary/plain".to_vec())],
                    data: vec![0, 159, 146, 150],
                }],
                ..Failure::default()
            },
            last_heartbeat_details: vec![Payload::null()],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
    }

    #[test]
    fn info_maps_times_and_deadline() {
        let ts = |ms: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let d = |ms: u64| std::time::Duration::from_millis(ms).try_into().ok();
        let start = Start {
            workflow_namespace: "ns".into(),
            workflow_type: "Order".into(),
            activity_id: "7".into(),
            activity_type: "greet".into(),
            attempt: 2,
            scheduled_time: Some(ts(1_000).into()),
            started_time: Some(ts(5_000).into()),
            start_to_close_timeout: d(10_000),
            schedule_to_close_timeout: d(12_000),
            heartbeat_timeout: d(0),
            heartbeat_details: vec![payload_to_proto(&Payload::json(&json!({"next": 2})))],
            ..Start::default()
        };
        let origin = TaskOrigin {
            namespace: "default",
            task_queue: "q",
            worker_task_queue: "wq",
        };
        let info = info_of(b"tok", &start, &origin);
        assert_eq!(info.namespace, "ns");
        assert_eq!((info.scheduled_ms, info.started_ms), (1_000, 5_000));
        // schedule-to-close (1 s + 12 s) ends before start-to-close (5 s + 10 s).
        assert_eq!(info.deadline_ms, Some(13_000));
        assert_eq!(info.heartbeat_timeout_ms, None);
        assert_eq!(info.attempt, 2);
        assert_eq!(info.workflow_type.as_deref(), Some("Order"));
        assert_eq!(info.workflow_id, None);
        assert_eq!(info.heartbeat_details[0].to_json(), json!({"next": 2}));
        assert_eq!(
            (info.task_queue.as_str(), info.worker_task_queue.as_str()),
            ("q", "wq")
        );
    }
}
