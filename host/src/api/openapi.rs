//! The OpenAPI 3.1 document of the HTTP API, served at
//! `GET /api/v1/openapi.json` without a token.
//!
//! Operations come from the handlers' `#[utoipa::path]` attributes as the
//! router mounts them (`api::routes`), bodies from their types
//! (`api/types.rs`); this module adds what is common to all: the bearer
//! token scheme and the answers of the authentication layer.

use super::types::ErrorResponse;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

/// Name of the bearer token scheme in the document.
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Wharf",
        description = "Runs Temporal-style activities compiled to WebAssembly components.\n\n\
            Every operation but `/healthz` and this document takes a bearer token when the \
            server was started with `--admin-token-file`: the admin token manages namespaces; \
            a namespace token acts in its namespace only, and anything of another namespace \
            answers 404. Without an admin token (dev mode, loopback only) no token is needed.\n\n\
            Errors are `{\"error\": {\"code\", \"message\"}}`. Durations are humantime strings \
            (\"10s\") or integer milliseconds, 1 ms to 10 years; identifiers are at most 1000 \
            bytes; payloads are JSON values or Temporal's `{metadata, data}` in base64.",
    ),
    tags(
        (name = "namespaces", description = "Tenants: quotas, egress policy, tokens, configuration variables"),
        (name = "modules", description = "Uploaded components, versioned by content"),
        (name = "task-queues", description = "Queues: state, rate, deployment, rollback; concurrency limits"),
        (name = "activities", description = "Start, list, describe, result, cancel; completion from outside"),
        (name = "host", description = "Health and metrics"),
    ),
)]
struct ApiDoc;

/// The document before operations are added.
pub(super) fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// Adds the bearer scheme, makes it the default, and documents the
/// authentication layer's answers on every operation that needs a token.
pub(super) fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The admin token (`--admin-token-file`) or a namespace token; not needed \
                     in dev mode.",
                ))
                .build(),
        )),
    );
    components
        .schemas
        .insert(ErrorResponse::name().into_owned(), ErrorResponse::schema());
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            ErrorResponse::name(),
                        ))))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            // `security(())` marks an operation open to anyone.
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
            if public {
                continue;
            }
            let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let r = &mut op.responses.responses;
            if has_params {
                // The path and query extractors refuse what does not parse.
                r.entry("400".into())
                    .or_insert_with(|| error("A path or query parameter does not parse"));
            }
            r.entry("401".into())
                .or_insert_with(|| error("No token, or an invalid or revoked one"));
            // A namespace token is refused what only the admin may do:
            // anything outside its namespace's resources, its tokens and
            // configuration, and changes to the namespace itself.
            let tenant_may = path.starts_with("/api/v1/namespaces/{ns}/")
                && !path.starts_with("/api/v1/namespaces/{ns}/tokens")
                && !path.starts_with("/api/v1/namespaces/{ns}/config");
            if !tenant_may {
                r.entry("403".into())
                    .or_insert_with(|| error("This needs the admin token"));
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        // Serialising the document's own types cannot fail.
        super::openapi().to_pretty_json().unwrap_or_default()
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "host",
    security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)),
)]
pub(super) async fn serve() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut ops = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                ops += 1;
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path} documents no success"
                );
                let public = path == "/healthz" || path == "/api/v1/openapi.json";
                assert_eq!(
                    responses.contains_key("401"),
                    !public,
                    "{method} {path}: 401 documented exactly where a token is needed"
                );
            }
        }
        // 31 operations on namespaces, the document, /healthz, /metrics.
        assert_eq!(ops, 34, "{:#?}", paths.keys().collect::<Vec<_>>());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
