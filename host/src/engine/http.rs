//! Outbound HTTP (`wasi:http/outgoing-handler`) for guests.
//!
//! The interface is linked so that components built with HTTP support (the
//! default of componentize-js, for one) instantiate, but every request is
//! refused with `HTTP-request-denied` until a namespace is granted hosts.

use super::log::AttemptLog;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Refuses every outbound request, noting each in the attempt log.
pub(crate) struct DenyOutboundHttp {
    pub(crate) log: AttemptLog,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for DenyOutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        let line = format!(
            "[wharf] outbound HTTP {} {} denied: no hosts are granted to this module",
            request.method(),
            request.uri()
        );
        tracing::debug!("{line}");
        self.log.line(&line);
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
