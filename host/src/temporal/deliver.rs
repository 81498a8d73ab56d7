//! Sends [`Report`]s to the server with Temporal's own gRPC client.
//!
//! Why not core's `complete_activity_task`? Core logs a failed completion RPC
//! and forgets it, so a result computed while the server was unreachable
//! would be lost. The bridge therefore tells core that each attempt "will
//! complete asynchronously" (which frees core's slot and stops its tracking
//! without any RPC) and reports the outcome itself, by task token, through
//! the same `RespondActivityTask*` calls core would make, keeping the answer
//! so that the [outbox](super::outbox) can re-send what did not arrive.

use super::activity::{failure_to_proto, payload_to_proto, payloads_to_proto, Report};
use super::outbox::{Deliver, DeliveryError};
use crate::payload::Payload;
use crate::store::temporal::AttemptKey;
use std::time::Duration;
use temporalio_client::grpc::WorkflowService;
use temporalio_client::request_extensions::RetryConfigForCall;
use temporalio_client::tonic::{self, Code};
use temporalio_client::{Connection, RetryOptions};
use temporalio_common::protos::temporal::api::common::v1::Payloads;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    RecordActivityTaskHeartbeatRequest, RespondActivityTaskCanceledRequest,
    RespondActivityTaskCompletedRequest, RespondActivityTaskFailedRequest,
};

/// A request with a short retry budget of its own: a blip is retried here,
/// an outage is the outbox's to wait out (with its row saying so), rather
/// than the client's.
fn with_budget<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.extensions_mut().insert(RetryConfigForCall(
        RetryOptions::builder()
            .initial_interval(Duration::from_millis(100))
            .max_interval(Duration::from_secs(1))
            .max_elapsed_time(Some(Duration::from_secs(3)))
            .max_retries(5)
            .build(),
    ));
    r
}

/// Delivers reports over a connection to the server.
#[derive(Clone)]
pub struct RpcDelivery {
    connection: Connection,
    identity: String,
}

impl RpcDelivery {
    /// Delivery over `connection`, reporting as `identity`.
    pub fn new(connection: Connection, identity: String) -> Self {
        Self {
            connection,
            identity,
        }
    }

    async fn heartbeat(&self, key: &AttemptKey, details: &[Payload]) -> Result<(), tonic::Status> {
        let request = RecordActivityTaskHeartbeatRequest {
            task_token: key.task_token.clone(),
            details: Some(Payloads {
                payloads: details.iter().map(payload_to_proto).collect(),
            }),
            identity: self.identity.clone(),
            namespace: key.namespace.clone(),
            ..Default::default()
        };
        let mut c = self.connection.clone();
        WorkflowService::record_activity_task_heartbeat(&mut c, with_budget(request))
            .await
            .map(drop)
    }

    async fn send(&self, key: &AttemptKey, report: &Report) -> Result<(), tonic::Status> {
        let mut c = self.connection.clone();
        let (token, ns, identity) = (
            key.task_token.clone(),
            key.namespace.clone(),
            self.identity.clone(),
        );
        match report {
            Report::Completed { result } => {
                let request = RespondActivityTaskCompletedRequest {
                    task_token: token,
                    result: Some(Payloads {
                        payloads: vec![payload_to_proto(result)],
                    }),
                    identity,
                    namespace: ns,
                    ..Default::default()
                };
                WorkflowService::respond_activity_task_completed(&mut c, with_budget(request))
                    .await
                    .map(drop)
            }
            Report::Failed {
                failure,
                last_heartbeat_details,
            } => {
                let request = RespondActivityTaskFailedRequest {
                    task_token: token,
                    failure: Some(failure_to_proto(failure)),
                    identity,
                    namespace: ns,
                    last_heartbeat_details: payloads_to_proto(last_heartbeat_details),
                    ..Default::default()
                };
                WorkflowService::respond_activity_task_failed(&mut c, with_budget(request))
                    .await
                    .map(drop)
            }
            Report::Cancelled {
                last_heartbeat_details,
            } => {
                if !last_heartbeat_details.is_empty() {
                    self.heartbeat(key, last_heartbeat_details).await?;
                }
                let request = RespondActivityTaskCanceledRequest {
                    task_token: token,
                    identity,
                    namespace: ns,
                    ..Default::default()
                };
                WorkflowService::respond_activity_task_canceled(&mut c, with_budget(request))
                    .await
                    .map(drop)
            }
            Report::Heartbeat { details } => self.heartbeat(key, details).await,
        }
    }
}

/// Whether a failed call may succeed when tried again later: the server was
/// unreachable or overloaded, rather than refusing this report.
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::Internal
            | Code::ResourceExhausted
    )
}

impl Deliver for RpcDelivery {
    async fn deliver(&self, key: &AttemptKey, report: &Report) -> Result<(), DeliveryError> {
        self.send(key, report).await.map_err(|status| {
            let why = format!("{:?}: {}", status.code(), status.message());
            if is_transient(status.code()) {
                DeliveryError::Unreachable(why)
            } else {
                DeliveryError::Rejected(why)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_is_transient_and_not_found_is_final() {
        assert!(is_transient(Code::Unavailable));
        assert!(is_transient(Code::DeadlineExceeded));
        assert!(!is_transient(Code::NotFound));
        assert!(!is_transient(Code::InvalidArgument));
    }
}
