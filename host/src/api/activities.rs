//! Activity endpoints: start, list, describe, result, cancel, and completion
//! from outside (complete, fail, heartbeat by task token or activity id).

use super::{body, ApiError, AppState};
use crate::payload::Payload;
use crate::service::bounds;
use crate::service::options::{duration, ActivityOptions};
use crate::service::{Completion, StartRequest, Target};
use crate::store::activities::ActivityFilter;
use crate::worker::Failure;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

fn json_limit(app: &AppState) -> usize {
    // Several arguments of up to the payload limit each, base64 inflated.
    app.service.config().payload_limit * 4 + (64 << 10)
}

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

pub(super) async fn start(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Response, ApiError> {
    let b: StartBody = body::json(req, json_limit(&app)).await?;
    let options = ActivityOptions::from_value(Value::Object(b.options))
        .map_err(|e| ApiError::bad_request(format!("invalid options: {e}")))?;
    let started = app
        .service
        .start(
            &ns,
            StartRequest {
                activity_id: b.activity_id,
                activity_type: b.activity_type,
                task_queue: b.task_queue,
                input: b.input.into_iter().map(Payload::from_user_json).collect(),
                options,
            },
        )
        .await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)).into_response())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    #[serde(rename = "type")]
    activity_type: Option<String>,
    task_queue: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q: ListQuery = body::query(&uri)?;
    let filter = ActivityFilter {
        state: q.state,
        activity_type: q.activity_type,
        task_queue: q.task_queue,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    let list = app.service.list(&ns, &filter)?;
    Ok(Json(json!({ "activities": list })))
}

pub(super) async fn describe(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(app.service.describe(&ns, &id)?)))
}

#[derive(Deserialize)]
pub(super) struct ResultQuery {
    #[serde(default, with = "duration::option")]
    wait: Option<Duration>,
}

pub(super) async fn result(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q: ResultQuery = body::query(&uri)?;
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
    Ok(Json(json!({
        "closed": closed,
        "state": view.state,
        "result": view.result,
        "result_payload": view.result_payload,
        "failure": view.last_failure.as_ref().filter(|_| closed),
        "attempt": view.attempt,
    })))
}

pub(super) async fn cancel(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(app.service.cancel(&ns, &id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Addressed<T> {
    task_token: Option<String>,
    activity_id: Option<String>,
    #[serde(flatten)]
    rest: T,
}

impl<T> Addressed<T> {
    fn target(&self) -> Result<Target, ApiError> {
        match (&self.task_token, &self.activity_id) {
            (Some(t), None) => {
                bounds::id("task_token", t).map_err(ApiError::bad_request)?;
                Ok(Target::Token(t.clone()))
            }
            (None, Some(id)) => {
                bounds::id("activity_id", id).map_err(ApiError::bad_request)?;
                Ok(Target::Id(id.clone()))
            }
            _ => Err(ApiError::bad_request(
                "give exactly one of task_token or activity_id",
            )),
        }
    }
}

#[derive(Deserialize)]
struct CompleteBody {
    #[serde(default)]
    result: Value,
}

pub(super) async fn complete(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: Addressed<CompleteBody> = body::json(req, json_limit(&app)).await?;
    let completion = Completion::Completed(Payload::from_user_json(b.rest.result.clone()));
    Ok(Json(json!(
        app.service.complete(&ns, b.target()?, completion).await?
    )))
}

#[derive(Deserialize)]
struct FailBody {
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    cancelled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    message: String,
    #[serde(default, rename = "type")]
    error_type: Option<String>,
    #[serde(default)]
    non_retryable: bool,
    #[serde(default)]
    details: Vec<Value>,
    #[serde(default, with = "duration::option")]
    next_retry_delay: Option<Duration>,
}

pub(super) async fn fail(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let raw: Value = body::json(req, json_limit(&app)).await?;
    // Parsed apart first: through `flatten`, serde loses the path of a
    // field inside `error`, and the message would not name it.
    if let Some(e) = raw.get("error").filter(|e| !e.is_null()) {
        serde_path_to_error::deserialize::<_, ErrorBody>(e).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid JSON body: error.{}",
                crate::service::options::path_error(&e)
            ))
        })?;
    }
    let b: Addressed<FailBody> = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let target = b.target()?;
    let completion = match (b.rest.cancelled, b.rest.error) {
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
    Ok(Json(json!(
        app.service.complete(&ns, target, completion).await?
    )))
}

#[derive(Deserialize)]
struct HeartbeatBody {
    #[serde(default)]
    details: Vec<Value>,
}

pub(super) async fn heartbeat(
    State(app): State<AppState>,
    Path(ns): Path<String>,
    req: Body,
) -> Result<Json<Value>, ApiError> {
    let b: Addressed<HeartbeatBody> = body::json(req, json_limit(&app)).await?;
    let details = b
        .rest
        .details
        .iter()
        .cloned()
        .map(Payload::from_user_json)
        .collect();
    let cancel_requested = app.service.heartbeat(&ns, b.target()?, details).await?;
    Ok(Json(json!({ "cancel_requested": cancel_requested })))
}
