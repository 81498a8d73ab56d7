//! Reading request bodies with our own limits and error shape (axum's
//! default rejections are plain text).

use super::ApiError;
use axum::body::{to_bytes, Body};
use serde::de::DeserializeOwned;

/// Reads at most `limit` bytes; more is a 413 naming the limit.
pub(crate) async fn bytes(body: Body, limit: usize, what: &str) -> Result<bytes::Bytes, ApiError> {
    to_bytes(body, limit).await.map_err(|_| {
        ApiError::too_large(format!("{what} is larger than the limit of {limit} bytes"))
    })
}

/// Reads and parses a JSON body; an empty body parses as `{}`.
pub(crate) async fn json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    let raw = bytes(body, limit, "the request body").await?;
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &raw
    };
    let de = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(de).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {}",
            crate::service::options::path_error(&e)
        ))
    })
}
