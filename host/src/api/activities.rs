//! Activity endpoints: start (alone or in a batch), list, describe,
//! result; an operator's actions (cancel, run now, fail by hand); and
//! completion from outside (complete, fail, heartbeat by task token or
//! activity id).

use super::extract::{Path, Query};
use super::types::{
    ActivityList, ActivityPath, BatchOutcome, BatchStartRequest, BatchStartResponse,
    BatchStartResult, CompleteRequest, ErrorResponse, FailByHandRequest, FailRequest,
    HeartbeatRequest, HeartbeatResponse, NamespacePath, ResultResponse, StartActivityRequest,
};
use super::{body, ApiError, AppState};
use crate::payload::Payload;
use crate::service::bounds;
use crate::service::options::{duration, ActivityOptions};
use crate::service::ActivityView;
use crate::service::{Completion, ServiceError, StartRequest, Started, Target};
use crate::store::activities::ActivityFilter;
use crate::worker::Failure;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::Duration;
use utoipa::IntoParams;

fn json_limit(app: &AppState) -> usize {
    // Several arguments of up to the payload limit each, base64 inflated.
    app.service.config().payload_limit * 4 + (64 << 10)
}

/// A start's body: its own fields, and every other key left for the
/// options to read (and refuse by name if they do not know it).
#[derive(Deserialize)]
struct StartBody {
    activity_id: Option<String>,
    activity_type: String,
    task_queue: String,
    #[serde(default)]
    input: Vec<Value>,
    #[serde(flatten)]
    options: Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities",
    tag = "activities",
    params(NamespacePath),
    request_body = StartActivityRequest,
    responses(
        (status = 201, description = "Started", body = Started),
        (status = 200, description = "An activity with this id exists (its run is returned)", body = Started),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "An argument is over the payload limit", body = ErrorResponse),
        (status = 429, description = "The namespace's start rate or open activities quota is exhausted", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The input would take the namespace's open activities over its max_stored_bytes quota (code stored_bytes_quota_exceeded), or the server's disk is full (code storage_full)", body = ErrorResponse),
    ),
)]
pub(super) async fn start(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Response, ApiError> {
    let b: StartBody = body::json(&app.bodies, req, json_limit(&app)).await?;
    let started = app.service.start(&ns, start_request(b)?).await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)).into_response())
}

/// The states an activity is stored in, as `?state=` takes them.
pub(crate) use crate::store::activities::STATES;

/// The `?state=` of open activities past their first attempt.
pub(crate) const RETRYING: &str = "retrying";

/// A start's body as the service takes it.
fn start_request(b: StartBody) -> Result<StartRequest, ServiceError> {
    let options = ActivityOptions::from_value(Value::Object(b.options))
        .map_err(|e| ServiceError::InvalidArgument(format!("invalid options: {e}")))?;
    Ok(StartRequest {
        activity_id: b.activity_id,
        activity_type: b.activity_type,
        task_queue: b.task_queue,
        input: b.input.into_iter().map(Payload::from_user_json).collect(),
        options,
    })
}

#[derive(Deserialize)]
struct BatchBody {
    /// Each start's JSON text, read on its own so that one start's error
    /// is its answer alone, and without first building a JSON value of it.
    starts: Vec<Box<RawValue>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities:batch",
    tag = "activities",
    params(NamespacePath),
    request_body = BatchStartRequest,
    responses(
        (status = 200, description = "Each start's answer in order (created, existing, or its error); every created run is committed", body = BatchStartResponse),
        (status = 400, description = "Invalid body or more than 1000 starts", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
        (status = 413, description = "The body is over the batch limit", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
    ),
)]
pub(super) async fn start_batch(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<BatchStartResponse>, ApiError> {
    let limit = json_limit(&app).max(bounds::MAX_BATCH_BODY);
    let b: BatchBody = body::json(&app.bodies, req, limit).await?;
    bounds::count("starts", b.starts.len(), bounds::MAX_BATCH_STARTS)
        .map_err(ApiError::bad_request)?;
    let reqs = b
        .starts
        .into_iter()
        .map(|raw| {
            let b: StartBody = crate::service::options::from_slice_naming(raw.get().as_bytes())
                .map_err(|e| ServiceError::InvalidArgument(format!("invalid start: {e}")))?;
            start_request(b)
        })
        .collect();
    let answers = app.service.start_batch(&ns, reqs).await?;
    let (mut created, mut existing, mut failed) = (0, 0, 0);
    let results = answers
        .into_iter()
        .map(|a| match a {
            Ok(Started {
                created: true,
                activity,
            }) => {
                created += 1;
                BatchStartResult {
                    outcome: BatchOutcome::Created,
                    status: StatusCode::CREATED.as_u16(),
                    activity: Some(activity),
                    error: None,
                }
            }
            Ok(Started { activity, .. }) => {
                existing += 1;
                BatchStartResult {
                    outcome: BatchOutcome::Existing,
                    status: StatusCode::OK.as_u16(),
                    activity: Some(activity),
                    error: None,
                }
            }
            Err(e) => {
                failed += 1;
                let (status, detail) = ApiError::from(e).into_parts();
                BatchStartResult {
                    outcome: BatchOutcome::Error,
                    status: status.as_u16(),
                    activity: None,
                    error: Some(detail),
                }
            }
        })
        .collect();
    Ok(Json(BatchStartResponse {
        created,
        existing,
        failed,
        results,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only activities in this state (`scheduled`, `started`, `completed`,
    /// `failed`, `cancelled`, `timed_out`), or `retrying`: open and past
    /// their first attempt (in a backoff, or running attempt 2 or later).
    state: Option<String>,
    /// Only activities of this type.
    #[serde(rename = "type")]
    activity_type: Option<String>,
    /// Only activities on this task queue.
    task_queue: Option<String>,
    /// Only activities whose id starts with this (up to 1000 bytes).
    #[param(min_length = 1, max_length = 1000)]
    id_prefix: Option<String>,
    /// Only activities first scheduled at or after this time (RFC 3339,
    /// e.g. `2026-11-29T20:00:00Z`).
    scheduled_after: Option<String>,
    /// Only activities first scheduled before this time (RFC 3339).
    scheduled_before: Option<String>,
    /// Most activities listed: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Milliseconds since the Unix epoch of an RFC 3339 time in `field`.
fn rfc3339_ms(field: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let t = humantime::parse_rfc3339_weak(v).map_err(|e| {
        ApiError::bad_request(format!(
            "{field} {v:?} is not an RFC 3339 time such as 2026-11-29T20:00:00Z ({e})"
        ))
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(Some(ms))
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/activities",
    tag = "activities",
    params(NamespacePath, ListQuery),
    responses(
        (status = 200, description = "Activities, newest first", body = ActivityList),
        (status = 400, description = "Invalid query (e.g. an unknown state)", body = ErrorResponse),
        (status = 404, description = "No such namespace", body = ErrorResponse),
    ),
)]
pub(super) async fn list(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ActivityList>, ApiError> {
    let retrying = q.state.as_deref() == Some(RETRYING);
    if let Some(s) = q.state.as_deref().filter(|s| *s != RETRYING) {
        if !STATES.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "state {s:?} is not one of {}, {RETRYING}",
                STATES.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is out of range: 1 to 1000 activities"
        )));
    }
    let filter = ActivityFilter {
        state: q.state.filter(|_| !retrying),
        retrying,
        activity_type: q.activity_type,
        task_queue: q.task_queue,
        id_prefix: q.id_prefix,
        scheduled_after_ms: rfc3339_ms("scheduled_after", q.scheduled_after.as_deref())?,
        scheduled_before_ms: rfc3339_ms("scheduled_before", q.scheduled_before.as_deref())?,
        limit,
    };
    let page = app.service.list(&ns, &filter)?;
    Ok(Json(ActivityList {
        activities: page.activities,
        truncated: page.truncated,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/activities/{id}",
    tag = "activities",
    params(ActivityPath),
    responses(
        (status = 200, description = "The activity's newest run with its attempts", body = ActivityView),
        (status = 400, description = "Invalid activity id", body = ErrorResponse),
        (status = 404, description = "No such namespace or activity", body = ErrorResponse),
    ),
)]
pub(super) async fn describe(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<ActivityView>, ApiError> {
    Ok(Json(app.service.describe(&ns, &id)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ResultQuery {
    /// Long poll: wait up to this long (at most 60s) for the activity to
    /// close; a humantime string or milliseconds.
    #[serde(default, with = "duration::option")]
    #[param(value_type = Option<String>)]
    wait: Option<Duration>,
}

#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{ns}/activities/{id}/result",
    tag = "activities",
    params(ActivityPath, ResultQuery),
    responses(
        (status = 200, description = "The result once closed, else the state", body = ResultResponse),
        (status = 400, description = "Invalid wait or activity id", body = ErrorResponse),
        (status = 404, description = "No such namespace or activity", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
    ),
)]
pub(super) async fn result(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    Query(q): Query<ResultQuery>,
) -> Result<Json<ResultResponse>, ApiError> {
    let wait = q.wait.unwrap_or_default();
    if wait > bounds::MAX_RESULT_WAIT {
        return Err(ApiError::bad_request(format!(
            "wait is {}; it must be 0 to {}",
            humantime::format_duration(wait),
            humantime::format_duration(bounds::MAX_RESULT_WAIT)
        )));
    }
    let view = app.service.result(&ns, &id, wait).await?;
    let closed = view.closed_ms.is_some();
    Ok(Json(ResultResponse {
        closed,
        state: view.state,
        result: view.result,
        result_payload: view.result_payload,
        failure: view.last_failure.filter(|_| closed),
        attempt: view.attempt,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/{id}/cancel",
    tag = "activities",
    params(ActivityPath),
    responses(
        (status = 200, description = "Cancellation requested (or the activity was already cancelled)", body = ActivityView),
        (status = 400, description = "Invalid activity id", body = ErrorResponse),
        (status = 404, description = "No such namespace or activity", body = ErrorResponse),
        (status = 409, description = "The activity is closed", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn cancel(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<ActivityView>, ApiError> {
    Ok(Json(app.service.cancel(&ns, &id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/{id}/run-now",
    tag = "activities",
    params(ActivityPath),
    responses(
        (status = 200, description = "The next attempt is queued now instead of after its backoff", body = ActivityView),
        (status = 400, description = "Invalid activity id", body = ErrorResponse),
        (status = 404, description = "No such namespace or activity", body = ErrorResponse),
        (status = 409, description = "The activity is closed or not waiting out a retry backoff", body = ErrorResponse),
        (status = 503, description = "The server is shutting down", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn run_now(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<ActivityView>, ApiError> {
    Ok(Json(app.service.run_now(&ns, &id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/{id}/fail",
    tag = "activities",
    params(ActivityPath),
    request_body = FailByHandRequest,
    responses(
        (status = 200, description = "Closed as failed; an attempt in progress is stopped", body = ActivityView),
        (status = 400, description = "Invalid activity id, reason or type", body = ErrorResponse),
        (status = 404, description = "No such namespace or activity", body = ErrorResponse),
        (status = 409, description = "The activity is closed", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn fail_by_hand(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    req: Body,
) -> Result<Json<ActivityView>, ApiError> {
    let b: FailByHandRequest = body::json(&app.bodies, req, 64 << 10).await?;
    Ok(Json(
        app.service
            .fail_by_hand(&ns, &id, b.reason, b.error_type)
            .await?,
    ))
}

/// The attempt a completion addresses: by task token or by activity id.
fn target(task_token: Option<String>, activity_id: Option<String>) -> Result<Target, ApiError> {
    match (task_token, activity_id) {
        (Some(t), None) => {
            bounds::id("task_token", &t).map_err(ApiError::bad_request)?;
            Ok(Target::Token(t))
        }
        (None, Some(id)) => {
            bounds::id("activity_id", &id).map_err(ApiError::bad_request)?;
            Ok(Target::Id(id))
        }
        _ => Err(ApiError::bad_request(
            "give exactly one of task_token or activity_id",
        )),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/complete",
    tag = "activities",
    params(NamespacePath),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Completed", body = ActivityView),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace, activity or live task token", body = ErrorResponse),
        (status = 409, description = "The attempt is over or the activity closed", body = ErrorResponse),
        (status = 413, description = "The result is over the payload limit", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn complete(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<ActivityView>, ApiError> {
    let b: CompleteRequest = body::json(&app.bodies, req, json_limit(&app)).await?;
    let target = target(b.task_token, b.activity_id)?;
    let completion = Completion::Completed(Payload::from_user_json(b.result));
    Ok(Json(app.service.complete(&ns, target, completion).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/fail",
    tag = "activities",
    params(NamespacePath),
    request_body = FailRequest,
    responses(
        (status = 200, description = "Failed (retried per the policy) or cancelled", body = ActivityView),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace, activity or live task token", body = ErrorResponse),
        (status = 409, description = "The attempt is over or the activity closed", body = ErrorResponse),
        (status = 413, description = "The details are over the payload limit", body = ErrorResponse),
        (status = 503, description = "The server is shutting down, or holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn fail(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<ActivityView>, ApiError> {
    let b: FailRequest = body::json(&app.bodies, req, json_limit(&app)).await?;
    let target = target(b.task_token, b.activity_id)?;
    let completion = match (b.cancelled, b.error) {
        (true, None) => Completion::Cancelled,
        (false, Some(e)) => Completion::Failed(Failure {
            error_type: match e.error_type {
                Some(t) => {
                    bounds::id("error.type", &t).map_err(ApiError::bad_request)?;
                    t
                }
                None => "Error".into(),
            },
            message: e.message,
            non_retryable: e.non_retryable,
            details: e.details.into_iter().map(Payload::from_user_json).collect(),
            // At most ten years (checked while parsing).
            next_retry_delay_ms: e.next_retry_delay.map(bounds::millis),
            timeout_type: None,
        }),
        _ => {
            return Err(ApiError::bad_request(
                "give either an error or \"cancelled\": true",
            ))
        }
    };
    Ok(Json(app.service.complete(&ns, target, completion).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/namespaces/{ns}/activities/heartbeat",
    tag = "activities",
    params(NamespacePath),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Recorded; says whether cancellation was requested", body = HeartbeatResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "No such namespace, activity or live task token", body = ErrorResponse),
        (status = 409, description = "The attempt is over or the activity closed", body = ErrorResponse),
        (status = 413, description = "The details are over the heartbeat limit", body = ErrorResponse),
        (status = 503, description = "The server holds its limit of request bodies in memory for other requests (code bodies_memory_full; retry after Retry-After)", body = ErrorResponse),
        (status = 408, description = "The body stopped arriving for the server's idle time (code body_stalled)", body = ErrorResponse),
        (status = 507, description = "The server's disk is full (code storage_full); nothing was changed", body = ErrorResponse),
    ),
)]
pub(super) async fn heartbeat(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let b: HeartbeatRequest = body::json(&app.bodies, req, json_limit(&app)).await?;
    let target = target(b.task_token, b.activity_id)?;
    let details = b.details.into_iter().map(Payload::from_user_json).collect();
    let cancel_requested = app.service.heartbeat(&ns, target, details).await?;
    Ok(Json(HeartbeatResponse { cancel_requested }))
}

#[cfg(test)]
mod tests {
    use super::{BatchBody, StartBody};
    use crate::service::options::from_slice_naming;

    fn read(json: &str) -> Result<StartBody, String> {
        from_slice_naming(json.as_bytes())
    }

    #[test]
    fn a_start_body_keeps_its_fields_and_leaves_the_rest_to_the_options() {
        let b = read(
            r#"{"priority": 2, "activity_type": "t", "input": [1, "x"], "task_queue": "q",
                "activity_id": null, "retry_policy": {"maximum_attempts": 3}}"#,
        )
        .unwrap();
        assert_eq!(
            (b.activity_type.as_str(), b.task_queue.as_str()),
            ("t", "q")
        );
        assert_eq!(b.activity_id, None);
        assert_eq!(b.input, vec![serde_json::json!(1), serde_json::json!("x")]);
        let mut keys: Vec<&str> = b.options.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["priority", "retry_policy"]);
        let b = read(r#"{"activity_id": "a", "activity_type": "t", "task_queue": "q"}"#).unwrap();
        assert_eq!((b.activity_id.as_deref(), b.input.len()), (Some("a"), 0));
        assert!(b.options.is_empty());
    }

    #[test]
    fn a_bad_start_body_is_refused_naming_what_is_wrong() {
        let refused = [
            (r#"{"task_queue": "q"}"#, "missing field `activity_type`"),
            (r#"{"activity_type": "t"}"#, "missing field `task_queue`"),
            (
                r#"{"activity_type": 5, "task_queue": "q"}"#,
                "activity_type: invalid type",
            ),
            (
                r#"{"activity_type": "t", "task_queue": "q", "input": 3}"#,
                "input: invalid type",
            ),
            (
                r#"{"activity_type": "t", "task_queue": "q", "activity_type": "u"}"#,
                "duplicate field `activity_type`",
            ),
            (r#"["t", "q"]"#, "expected struct StartBody"),
            ("5", "expected struct StartBody"),
        ];
        for (json, says) in refused {
            let e = read(json)
                .err()
                .unwrap_or_else(|| panic!("{json} was taken"));
            assert!(e.contains(says), "{json}: {e}");
        }
    }

    #[test]
    fn a_batch_is_refused_whole_only_when_it_is_no_list_of_json_values() {
        let b: BatchBody = from_slice_naming(br#"{"starts": [5, {"a": [1]}, "x", null]}"#).unwrap();
        let texts: Vec<&str> = b.starts.iter().map(|r| r.get()).collect();
        assert_eq!(texts, ["5", r#"{"a": [1]}"#, r#""x""#, "null"]);
        for (json, says) in [
            (r#"{"starts": 5}"#, "starts: invalid type: integer `5`"),
            (r#"{"starts": [1, {]}"#, "starts[1]"),
            (r#"{}"#, "missing field `starts`"),
        ] {
            let e = from_slice_naming::<BatchBody>(json.as_bytes()).err();
            let e = e.unwrap_or_else(|| panic!("{json} was taken"));
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
