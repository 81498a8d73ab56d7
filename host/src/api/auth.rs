//! Who is calling: bearer tokens and what they may touch.
//!
//! Without an admin token configured the server is in single-tenant dev
//! mode and every request acts as admin (the server then listens on
//! loopback only). With one, every request needs a token: the admin token
//! manages namespaces; a namespace token acts in its namespace only, and
//! anything of another namespace answers 404 exactly as if it did not
//! exist. Tokens are kept as SHA-256 hashes, in the database and here; they
//! are made and revoked by the service (`service/tokens.rs`).

use super::{ApiError, AppState};
use crate::service::tokens::hash;
use crate::store::Db;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::RwLock;

/// Settings key of the admin token's hash.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// The caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// May do anything.
    Admin,
    /// May act in this namespace.
    Tenant(String),
}

/// Known tokens.
pub struct Auth {
    admin: Option<String>,
    /// Token hash -> (token id, namespace).
    tokens: RwLock<HashMap<String, (String, String)>>,
}

impl Auth {
    /// Loads the admin token hash and the live namespace tokens.
    pub fn load(db: &Db) -> Result<Self, crate::store::StoreError> {
        let admin = db.setting(ADMIN_TOKEN_SETTING)?;
        let tokens = db
            .tokens()?
            .into_iter()
            .filter(|t| t.revoked_ms.is_none())
            .map(|t| (t.sha256, (t.id, t.namespace)))
            .collect();
        Ok(Self {
            admin,
            tokens: RwLock::new(tokens),
        })
    }

    /// Whether requests need a token.
    pub fn enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// Makes a new namespace token usable.
    pub fn add(&self, sha256: String, id: String, namespace: String) {
        if let Ok(mut t) = self.tokens.write() {
            t.insert(sha256, (id, namespace));
        }
    }

    /// Makes a token unusable, by namespace and id; or all of a namespace.
    pub fn remove(&self, namespace: &str, id: Option<&str>) {
        if let Ok(mut t) = self.tokens.write() {
            t.retain(|_, (tid, ns)| !(ns == namespace && id.is_none_or(|id| id == tid)));
        }
    }

    fn principal(&self, req: &Request) -> Result<Principal, ApiError> {
        if self.admin.is_none() {
            return Ok(Principal::Admin);
        }
        let token = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("this server requires a bearer token (--token or WHARF_TOKEN)")
            })?;
        self.principal_of_token(token)
            .ok_or_else(|| unauthorized("invalid or revoked token"))
    }

    /// Whom a token stands for, if it is the admin token or a live
    /// namespace token (the dashboard's session cookie holds one).
    pub(crate) fn principal_of_token(&self, token: &str) -> Option<Principal> {
        let admin = self.admin.as_ref()?;
        let h = hash(token);
        if &h == admin {
            return Some(Principal::Admin);
        }
        self.tokens
            .read()
            .ok()
            .and_then(|t| t.get(&h).map(|(_, ns)| Principal::Tenant(ns.clone())))
    }
}

/// Middleware over every route, the public ones too: in dev mode, refuses
/// requests not addressed to a loopback name (see [`loopback_host`]).
pub(crate) async fn dev_mode_host(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !app.auth.enabled() {
        if let Err(e) = loopback_host(&req) {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// Dev mode answers only requests addressed to a loopback name or address.
/// A web page can point a name it controls at 127.0.0.1 (DNS rebinding);
/// the browser then sends that name as `Host`, and without this check the
/// page would reach a developer's unauthenticated server.
fn loopback_host(req: &Request) -> Result<(), ApiError> {
    let Some(host) = req.headers().get(axum::http::header::HOST) else {
        // Browsers always send Host; a client that does not is no web page.
        return Ok(());
    };
    let host = host.to_str().unwrap_or("");
    if is_loopback_authority(host) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden_host",
        "this server is in dev mode (no --admin-token-file) and answers only requests \
         addressed to localhost, 127.0.0.0/8 or [::1]",
    ))
}

/// Whether a `Host` value (`name[:port]`) names the loopback interface.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", msg)
}

/// Middleware: authenticates, then lets a request through only to what its
/// principal may see.
pub(crate) async fn authorize(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return next.run(req).await;
    }
    let principal = match app.auth.principal(&req) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(principal.clone());
    let Principal::Tenant(own) = &principal else {
        return next.run(req).await;
    };
    let Some(rest) = path.strip_prefix("/api/v1/namespaces") else {
        // /metrics and the like: host-wide, admin only.
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the admin token",
        )
        .into_response();
    };
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    let Some(ns) = segments.next() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "managing namespaces needs the admin token",
        )
        .into_response();
    };
    let ns = urlencoding::decode(ns)
        .map(|c| c.into_owned())
        .unwrap_or_default();
    if &ns != own {
        return ApiError::not_found(format!("namespace {ns:?} not found")).into_response();
    }
    let sub = segments.next();
    // Configuration holds secrets: only the admin sets or reads it.
    let admin_only =
        matches!(sub, Some("tokens" | "config")) || (sub.is_none() && req.method() != Method::GET);
    if admin_only {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the admin token",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::is_loopback_authority;

    #[test]
    fn only_loopback_hosts_pass_in_dev_mode() {
        for ok in [
            "localhost",
            "localhost:7070",
            "LocalHost.",
            "app.localhost:1",
            "127.0.0.1:7070",
            "127.1.2.3",
            "[::1]:7070",
            "[::1]",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:7070",
            "localhost.evil.com",
            "127.0.0.1.evil.com",
            "10.0.0.1:7070",
            "[::2]:7070",
            "[::1]x",
            "",
            "0.0.0.0:7070",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }
}
