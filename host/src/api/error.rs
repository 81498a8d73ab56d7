//! API errors: one JSON shape, one status per kind of mistake.

use crate::registry::RegistryError;
use crate::service::ServiceError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// 507 `storage_full`, whichever file had no room: nothing of the
    /// request was kept, and it may be sent again once space is freed.
    fn storage_full(cause: &str, what: &str) -> Self {
        tracing::error!("{cause}");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            format!(
                "the server's disk is full, so {what}; nothing was changed, retry once space \
                 is freed (no restart is needed)"
            ),
        )
    }

    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tells the client to retry after `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The status and the body's detail, for an answer that carries
    /// several errors (a batch's).
    pub(crate) fn into_parts(self) -> (StatusCode, super::types::ErrorDetail) {
        let detail = super::types::ErrorDetail {
            code: self.code.to_owned(),
            message: self.message,
        };
        (self.status, detail)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// The HTTP status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// What was wrong, for a person.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let (status, error) = self.into_parts();
        let body = super::types::ErrorResponse { error };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        let message = e.to_string();
        match e {
            E::NamespaceNotFound(_)
            | E::ActivityNotFound(_)
            | E::TokenNotFound
            | E::ModuleNotFound(_) => Self::not_found(message),
            E::InvalidArgument(_) => Self::bad_request(message),
            E::PayloadTooLarge(_) => Self::too_large(message),
            E::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            E::ShuttingDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
            E::RateLimited(d) => {
                let mut r = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                r.retry_after = Some(d.as_secs_f64().ceil().max(1.0) as u64);
                r
            }
            E::QuotaExceeded(_) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
            }
            E::StoredBytesExceeded(_) => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "stored_bytes_quota_exceeded",
                message,
            ),
            E::Registry(r) => r.into(),
            // Nothing was changed (a failed write is undone): the request
            // may be sent again once the database can write.
            E::Store(e) if e.is_full() => {
                Self::storage_full(&message, "the database cannot record this")
            }
            E::Store(_) => {
                tracing::error!("{message}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("the database cannot record this now ({message}); nothing was changed, retry later"),
                )
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let message = e.to_string();
        match e {
            E::NotWasm(_)
            | E::CoreModule
            | E::WrongWorld { .. }
            | E::WrongVersion { .. }
            | E::Invalid(_)
            | E::Link(_)
            | E::ActivityTypes(_)
            | E::OverPoolShare(_)
            | E::Remembered(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_module", message)
            }
            E::Throttled { retry_after } => {
                let mut r = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                r.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
                r
            }
            E::NotFound(_) | E::NamespaceGone(_) => Self::not_found(message),
            // A full disk is the same answer whichever file had no room;
            // nothing was kept, and the upload is not remembered as refused.
            E::Store(e) => ServiceError::Store(e).into(),
            E::Io { ref source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                Self::storage_full(&message, "the module cannot be stored")
            }
            E::Io { .. } => {
                tracing::error!("{message}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}
