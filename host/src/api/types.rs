//! The bodies and parameters of the HTTP API, one place for the server, the
//! OpenAPI document (`api/openapi.rs`) and clients.
//!
//! Answers are typed so that the document describes exactly what is sent.
//! Where a handler parses its body in stages (a start's options are handed
//! to the service as they came, so its own messages name the bad field),
//! the type here is the documented shape (and what the CLI sends), and a
//! test checks that every field it lists is one the handler accepts.
//!
//! Answers derive `Deserialize` as well, for the CLI's client
//! (`cli/client.rs`), so the server and the CLI share one definition.

use crate::engine::EgressPolicy;
use crate::payload::Payload;
use crate::queue::gate::GateView;
use crate::queue::RateConfig;
use crate::service::grants::VarView;
use crate::service::tenant::{NamespaceView, Quotas};
use crate::service::ActivityView;
use crate::store::flow::{DeploymentRow, LimitRow};
use crate::store::modules::ModuleRecord;
use crate::store::tenancy::TokenRow;
use crate::worker::Failure;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{Schema, SchemaType};
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// Longest identifier (activity id, type, task queue, key) in bytes, as
/// Temporal's.
pub const MAX_ID_BYTES: usize = 1000;
/// Longest duration a client may give: ten years, in milliseconds.
pub const MAX_DURATION_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

// ---- errors ----

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Kind of error, stable for programs: `invalid_argument` (400),
    /// `unauthenticated` (401), `forbidden` (403), `not_found` (404),
    /// `method_not_allowed` (405), `conflict` (409), `payload_too_large`
    /// (413), `invalid_module` (422), `rate_limited` / `quota_exceeded`
    /// (429), `unavailable` (503), `internal` (500).
    pub code: String,
    /// What was wrong and what is accepted, for people.
    pub message: String,
}

// ---- shared value shapes ----

/// A duration: a humantime string (`"10s"`, `"1m 30s"`, `"250ms"`) or a
/// number of milliseconds; 1 ms to 10 years.
pub struct DurationValue;

impl PartialSchema for DurationValue {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some(
                r"^[0-9]+ ?(ns|us|ms|s|sec|m|min|h|d|w)( ?[0-9]+ ?(ns|us|ms|s|sec|m|min|h|d|w))*$",
            ))
            .max_length(Some(100))
            .examples(["10s", "1m 30s", "250ms"]);
        let millis = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(MAX_DURATION_MS as f64));
        OneOfBuilder::new()
            .item(text)
            .item(millis)
            .description(Some(
                "A duration: a humantime string (\"10s\", \"1m 30s\", \"250ms\") or \
                 integer milliseconds; 1 ms to 10 years.",
            ))
            .into()
    }
}

impl ToSchema for DurationValue {
    fn name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
}

/// Temporal's JSON form of a payload.
#[derive(ToSchema)]
#[schema(as = Payload)]
#[allow(dead_code)] // A shape for the document only; `Payload` serialises itself.
struct PayloadShape {
    /// Metadata entries, values base64 (`{"encoding": "anNvbi9wbGFpbg=="}`
    /// is `json/plain`).
    metadata: BTreeMap<String, String>,
    /// The encoded value, base64.
    data: String,
}

impl PartialSchema for Payload {
    fn schema() -> RefOr<Schema> {
        PayloadShape::schema()
    }
}

impl ToSchema for Payload {
    fn name() -> std::borrow::Cow<'static, str> {
        "Payload".into()
    }
}

impl PartialSchema for crate::service::grants::EgressView {
    /// The policy's fields plus `deny_all`, in one object: a derived
    /// schema would be an `allOf` whose policy part forbids `deny_all`.
    fn schema() -> RefOr<Schema> {
        let mut schema = EgressPolicy::schema();
        if let RefOr::T(Schema::Object(o)) = &mut schema {
            o.additional_properties = None;
            o.description = Some("The egress policy as shown.".into());
            o.properties.insert(
                "deny_all".into(),
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Boolean))
                    .description(Some(
                        "True while no host is allowed (every request is denied).",
                    ))
                    .into(),
            );
            o.required.push("deny_all".into());
            let mut bindings = <std::collections::BTreeMap<
                String,
                Vec<crate::service::grants::Binding>,
            > as PartialSchema>::schema();
            if let RefOr::T(Schema::Object(b)) = &mut bindings {
                b.description =
                    Some("The module versions each entry of `modules` is bound to.".into());
            }
            o.properties.insert("module_bindings".into(), bindings);
            o.required.push("module_bindings".into());
        }
        schema
    }
}

impl ToSchema for crate::service::grants::EgressView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // The policy's schema refers to its limits by name.
        <EgressPolicy as ToSchema>::schemas(schemas);
        schemas.push((
            crate::service::grants::Binding::name().into_owned(),
            <crate::service::grants::Binding as PartialSchema>::schema(),
        ));
        schemas.push((
            crate::engine::EgressLimits::name().into_owned(),
            crate::engine::EgressLimits::schema(),
        ));
    }
}

// ---- path parameters ----

/// A namespace in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamespacePath {
    /// Namespace: 1-64 letters, digits, `-` and `_`.
    #[param(max_length = 64)]
    pub ns: String,
}

/// A task queue of a namespace.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// Namespace.
    #[param(max_length = 64)]
    pub ns: String,
    /// Task queue, up to 1000 bytes.
    #[param(max_length = 1000)]
    pub queue: String,
}

/// An activity of a namespace.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ActivityPath {
    /// Namespace.
    #[param(max_length = 64)]
    pub ns: String,
    /// Activity id, up to 1000 bytes.
    #[param(max_length = 1000)]
    pub id: String,
}

/// A token of a namespace.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// Namespace.
    #[param(max_length = 64)]
    pub ns: String,
    /// Token id, as listed.
    #[param(max_length = 1000)]
    pub id: String,
}

/// A configuration variable of a namespace.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConfigPath {
    /// Namespace.
    #[param(max_length = 64)]
    pub ns: String,
    /// Variable name.
    #[param(max_length = 1000)]
    pub key: String,
}

// ---- namespaces ----

/// Creates a namespace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    /// 1-64 letters, digits, `-` and `_`.
    #[schema(max_length = 64)]
    pub name: String,
    /// Quotas; defaults for those not given.
    #[serde(default)]
    #[schema(value_type = Option<Quotas>)]
    pub quotas: Option<Value>,
}

/// Changes a namespace: quotas (only those given change) and/or the egress
/// policy (replaced whole). A bare quotas object is accepted too.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNamespaceRequest {
    /// Quotas to change.
    #[serde(default)]
    pub quotas: Option<Quotas>,
    /// The new outbound HTTP policy.
    #[serde(default)]
    pub egress: Option<EgressPolicy>,
}

/// One namespace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceResponse {
    /// The namespace.
    pub namespace: NamespaceView,
}

/// Every namespace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceList {
    /// The namespaces.
    pub namespaces: Vec<NamespaceView>,
}

/// A namespace was deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceDeleted {
    /// Its name.
    pub deleted: String,
}

/// A new namespace token; the secret is shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// Public id, for listing and revoking.
    pub id: String,
    /// Namespace it grants.
    pub namespace: String,
    /// The bearer token.
    pub token: String,
    /// A reminder that only the hash is kept.
    pub note: String,
}

/// A namespace's tokens (never their secrets).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens, revoked ones included.
    pub tokens: Vec<TokenRow>,
}

/// A token was revoked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRevoked {
    /// Its id.
    pub revoked: String,
}

/// A namespace's configuration variables.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigList {
    /// The variables; values only when asked for.
    pub config: Vec<VarView>,
}

/// Sets a configuration variable.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVarRequest {
    /// The value.
    pub value: String,
    /// Modules that may read the variable (`*`: all of the namespace's).
    #[serde(default)]
    pub grants: Vec<String>,
}

/// A variable as set.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VarResponse {
    /// The variable (without its value).
    pub variable: VarView,
}

/// A variable was deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VarDeleted {
    /// Its name.
    pub deleted: String,
}

// ---- modules ----

/// An uploaded module version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleUploaded {
    /// False when the namespace already had this content under the name.
    pub created: bool,
    /// The version.
    pub module: ModuleRecord,
}

/// A namespace's module versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleList {
    /// The versions.
    pub modules: Vec<ModuleRecord>,
}

/// A module of a namespace.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModulePath {
    /// Namespace.
    #[param(max_length = 64)]
    pub ns: String,
    /// Module name.
    #[param(max_length = 100)]
    pub name: String,
}

/// A deleted module, or deleted version of one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleDeleted {
    /// Module name.
    pub name: String,
    /// The versions deleted.
    pub versions: Vec<u32>,
}

// ---- task queues and limits ----

/// Deploys a module version on a task queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Module name.
    pub module: String,
    /// Version; the newest when absent.
    #[serde(default)]
    pub version: Option<u32>,
    /// Most attempts at once on this queue.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// Percent of activities the version takes during a rollout (1-100);
    /// absent deploys it for all.
    #[serde(default)]
    #[schema(maximum = 100)]
    pub ramp_percent: Option<u8>,
}

/// A queue's deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentResponse {
    /// The deployment now in force.
    pub deployment: DeploymentRow,
}

/// Sets a queue's dispatch rate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfigRequest {
    /// Tasks per second, finite, up to 1 000 000; 0 pauses the queue; null
    /// or absent clears the limit.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1_000_000.0)]
    pub rate: Option<f64>,
    /// Tasks that may go at once after a quiet spell (at least 1, up to
    /// 1 000 000).
    #[serde(default)]
    #[schema(minimum = 1.0, maximum = 1_000_000.0)]
    pub burst: Option<f64>,
}

/// A queue's dispatch rate as set.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateLimitResponse {
    /// The rate limit now in force.
    pub rate_limit: RateConfig,
}

/// Sets or clears a concurrency limit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimitRequest {
    /// `type:T`, `key:K` or `queue:Q/type:T`.
    #[schema(max_length = 2100)]
    pub key: String,
    /// Most attempts at once; null removes the limit.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
}

/// A concurrency limit as set.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LimitResponse {
    /// The limit; null once removed.
    pub limit: Option<LimitRow>,
}

/// A namespace's concurrency limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LimitList {
    /// The limits with their current use.
    pub limits: Vec<GateView>,
}

// ---- activities ----

/// What happens when an activity id is already taken.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdReusePolicy {
    /// The existing run is returned, open or closed (the default).
    RejectDuplicate,
    /// A closed run may be followed by a new one.
    AllowDuplicate,
    /// As `allow_duplicate`, only after a run that did not complete.
    AllowDuplicateFailedOnly,
}

/// Temporal's retry policy; Temporal's defaults for what is absent.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the second attempt (default 1s).
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_interval: Option<String>,
    /// Each further delay is the previous one times this: 1 to 100
    /// (default 2).
    #[schema(minimum = 1.0, maximum = 100.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_coefficient: Option<f64>,
    /// Cap on the delay (default 100 × the initial interval).
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_interval: Option<String>,
    /// Attempts in all, including the first; 0 (the default) is unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_attempts: Option<u32>,
    /// Failure types never retried (exact match).
    #[schema(max_items = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_retryable_error_types: Option<Vec<String>>,
}

/// Starts an activity. At least one of `start_to_close_timeout` and
/// `schedule_to_close_timeout` is required.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartActivityRequest {
    /// Activity id (up to 1000 bytes), the idempotency key in the
    /// namespace; when absent, a new id is made: 32 hex digits, the start's
    /// time in milliseconds then 80 random bits, so ids sort by start time.
    #[schema(max_length = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    /// Activity type, up to 1000 bytes.
    #[schema(max_length = 1000)]
    pub activity_type: String,
    /// Task queue, up to 1000 bytes.
    #[schema(max_length = 1000)]
    pub task_queue: String,
    /// Arguments: JSON values (sent as `json/plain` payloads) or raw
    /// payloads `{"metadata", "data"}` in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<Value>>,
    /// Limit on one attempt.
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_to_close_timeout: Option<String>,
    /// Limit on the whole activity, all attempts and backoffs; not retried.
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_to_close_timeout: Option<String>,
    /// Limit on waiting in the backlog for a worker; not retried.
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_to_start_timeout: Option<String>,
    /// An attempt without a heartbeat for this long times out (retried).
    #[schema(value_type = Option<DurationValue>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<String>,
    /// Retry policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// What happens when the id is taken (default `reject_duplicate`:
    /// the existing run is returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_reuse_policy: Option<IdReusePolicy>,
    /// 1 (highest) to 5 (lowest); default 3.
    #[schema(minimum = 1, maximum = 5)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Lane within the priority (1-256 bytes): keys share the queue by
    /// their weights.
    #[schema(min_length = 1, max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
    /// The key's share relative to other keys: 0.001 to 1000 (default 1).
    #[schema(minimum = 0.001, maximum = 1000.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness_weight: Option<f32>,
    /// Counts the activity against the namespace's `key:` concurrency
    /// limit of this key (1-256 bytes).
    #[schema(min_length = 1, max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
}

/// The answer to a start.
pub use crate::service::{ActivityRef, Started};

/// Starts many activities in one request; each start is checked and
/// answered on its own, and every new run is committed in one transaction
/// before the answer.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BatchStartRequest {
    /// The starts, each the body of a single start; at most 1000.
    #[schema(max_items = 1000)]
    pub starts: Vec<StartActivityRequest>,
}

/// How one start of a batch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchOutcome {
    /// This request created the run.
    Created,
    /// A run with the id existed (as a single start, it is returned).
    Existing,
    /// The start was refused; `error` says why.
    Error,
}

/// One start's answer in a batch, in the order of the request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchStartResult {
    /// Created, existing or refused.
    pub outcome: BatchOutcome,
    /// The status a single start would have answered: 201, 200 or the
    /// error's.
    pub status: u16,
    /// The run, unless refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<ActivityRef>,
    /// Why it was refused: the code and message a single start gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The answer to a batch of starts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchStartResponse {
    /// Runs created.
    pub created: u32,
    /// Starts that named an existing run.
    pub existing: u32,
    /// Starts refused.
    pub failed: u32,
    /// One answer per start, in order.
    pub results: Vec<BatchStartResult>,
}

/// Activities of a namespace, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityList {
    /// The activities (without attempt history).
    pub activities: Vec<ActivityView>,
    /// True when more activities matched within the limit than one answer
    /// carries (16 MiB of payloads; at least one activity is always
    /// given): the page ends before them. Ask for the rest with
    /// `scheduled_before` set to the last one's scheduled time, or a
    /// narrower filter.
    #[serde(default)]
    pub truncated: bool,
}

/// An activity's result, or its state while it is open.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResultResponse {
    /// True once the activity is closed.
    pub closed: bool,
    /// State.
    pub state: String,
    /// The result, decoded, once completed.
    pub result: Option<Value>,
    /// The result as the raw payload, once completed.
    pub result_payload: Option<Payload>,
    /// Why it did not complete, once closed otherwise.
    pub failure: Option<Failure>,
    /// Current or last attempt.
    pub attempt: u32,
}

/// Completes the attempt of a task token, or the current attempt of an
/// activity id (give exactly one).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// Task token of the attempt.
    #[serde(default)]
    pub task_token: Option<String>,
    /// Or the activity id.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub activity_id: Option<String>,
    /// The result: a JSON value or a raw payload.
    #[serde(default)]
    pub result: Value,
}

/// Fails (or reports cancelled) the attempt of a task token or activity id.
/// Give exactly one of `task_token` and `activity_id`, and either `error`
/// or `"cancelled": true`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// Task token of the attempt.
    #[serde(default)]
    pub task_token: Option<String>,
    /// Or the activity id.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub activity_id: Option<String>,
    /// The application error.
    #[serde(default)]
    pub error: Option<ApplicationError>,
    /// The attempt acknowledges cancellation.
    #[serde(default)]
    pub cancelled: bool,
}

/// Fails an open activity by hand, whatever attempt it is in: it closes
/// as failed (never retried) with this failure, and an attempt in
/// progress is stopped.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailByHandRequest {
    /// Why: the failure's message (1 to 4000 bytes, no control characters).
    #[schema(max_length = 4000)]
    pub reason: String,
    /// The failure's type; `FailedByOperator` if absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub error_type: Option<String>,
}

/// An application error, as Temporal's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationError {
    /// What went wrong.
    pub message: String,
    /// Failure type, matched against `non_retryable_error_types` (default
    /// `Error`).
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    /// Never retried.
    #[serde(default)]
    pub non_retryable: bool,
    /// Structured details: JSON values or raw payloads.
    #[serde(default)]
    pub details: Vec<Value>,
    /// Delay before the next attempt, instead of the retry policy's.
    #[serde(default, with = "crate::service::options::duration::option")]
    #[schema(value_type = Option<DurationValue>)]
    pub next_retry_delay: Option<std::time::Duration>,
}

/// Records a heartbeat of the attempt of a task token or activity id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// Task token of the attempt.
    #[serde(default)]
    pub task_token: Option<String>,
    /// Or the activity id.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub activity_id: Option<String>,
    /// Progress details: JSON values or raw payloads.
    #[serde(default)]
    pub details: Vec<Value>,
}

/// The answer to a heartbeat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    /// Cancellation was requested: the attempt should stop.
    pub cancel_requested: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::options::{ActivityOptions, RetryPolicy as Policy};
    use std::collections::BTreeSet;

    fn properties<T: PartialSchema>() -> BTreeSet<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// The documented start request lists exactly the fields the handler
    /// takes and the service's options accept.
    #[test]
    fn the_documented_start_request_is_what_the_service_parses() {
        let options = serde_json::json!({
            "start_to_close_timeout": "1s", "schedule_to_close_timeout": 2000,
            "schedule_to_start_timeout": "3s", "heartbeat_timeout": "4s",
            "retry_policy": {"initial_interval": "1s", "backoff_coefficient": 2.0,
                "maximum_interval": "10s", "maximum_attempts": 3,
                "non_retryable_error_types": ["E"]},
            "id_reuse_policy": "allow_duplicate", "priority": 2,
            "fairness_key": "k", "fairness_weight": 2.0, "concurrency_key": "c",
        });
        let parsed: ActivityOptions = serde_json::from_value(options.clone()).unwrap();
        let shown = serde_json::to_value(&parsed).unwrap();
        assert_eq!(keys(&shown), keys(&options));
        let mut documented = properties::<StartActivityRequest>();
        for own in ["activity_id", "activity_type", "task_queue", "input"] {
            assert!(documented.remove(own), "{own}");
        }
        assert_eq!(documented, keys(&options));
        assert_eq!(
            properties::<RetryPolicy>(),
            keys(&serde_json::to_value(&parsed.retry_policy).unwrap())
        );
        let _: Policy = serde_json::from_value(options["retry_policy"].clone()).unwrap();
    }

    /// The document's payload shape is the one payloads serialise to.
    #[test]
    fn the_documented_payload_is_what_is_sent() {
        let p = serde_json::to_value(Payload::json(&serde_json::json!(1))).unwrap();
        assert_eq!(properties::<Payload>(), keys(&p));
        assert!(p["metadata"]["encoding"].is_string() && p["data"].is_string());
    }
}
