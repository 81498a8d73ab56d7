//! Who is calling: bearer tokens and what they may touch.
//!
//! Without an admin token configured the server is in single-tenant dev
//! mode and every request acts as admin (the server then listens on
//! loopback only). With one, every request needs a token: the admin token
//! manages namespaces; a namespace token acts in its namespace only, and
//! anything of another namespace answers 404 exactly as if it did not
//! exist. Tokens are kept as SHA-256 hashes, in the database and here; they
//! are made and revoked by the service (`service/tokens.rs`).

use super::ApiError;
use crate::service::tokens::hash;
use crate::store::Db;
use axum::http::{HeaderMap, Method, Request, StatusCode};
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

    fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if self.admin.is_none() {
            return Ok(Principal::Admin);
        }
        let token = headers
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

    /// Whether a request may go on to the router; the error is its answer.
    ///
    /// In dev mode, only requests addressed to a loopback name pass (see
    /// [`loopback_host`]), to every path. Otherwise every path but the
    /// public ones needs a token, and a namespace token reaches only its
    /// own namespace. A tenant's principal is left in the request's
    /// extensions for handlers that record who acted; none there means the
    /// admin.
    pub(crate) fn admit<B>(&self, req: &mut Request<B>) -> Result<(), ApiError> {
        if !self.enabled() {
            loopback_host(req.headers())?;
        }
        let path = req.uri().path();
        if path == "/healthz" || is_public(path) {
            return Ok(());
        }
        let Principal::Tenant(own) = self.principal(req.headers())? else {
            return Ok(());
        };
        let Some(rest) = path.strip_prefix("/api/v1/namespaces") else {
            // /metrics and the like: host-wide, admin only.
            return Err(forbidden("this needs the admin token"));
        };
        let mut segments = rest.split('/').filter(|s| !s.is_empty());
        let Some(ns) = segments.next() else {
            return Err(forbidden("managing namespaces needs the admin token"));
        };
        let ns = urlencoding::decode(ns).unwrap_or_default();
        if ns != own.as_str() {
            return Err(ApiError::not_found(format!("namespace {ns:?} not found")));
        }
        let sub = segments.next();
        // Configuration holds secrets: only the admin sets or reads it.
        let admin_only = matches!(sub, Some("tokens" | "config"))
            || (sub.is_none() && req.method() != Method::GET);
        if admin_only {
            return Err(forbidden("this needs the admin token"));
        }
        req.extensions_mut().insert(Principal::Tenant(own));
        Ok(())
    }
}

/// Dev mode answers only requests addressed to a loopback name or address.
/// A web page can point a name it controls at 127.0.0.1 (DNS rebinding);
/// the browser then sends that name as `Host`, and without this check the
/// page would reach a developer's unauthenticated server.
fn loopback_host(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(host) = headers.get(axum::http::header::HOST) else {
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

/// Paths anyone may fetch: the API's description, and the dashboard,
/// which asks for a token on its own login page.
fn is_public(path: &str) -> bool {
    path == "/api/v1/openapi.json" || path == "/ui" || path.starts_with("/ui/")
}

fn forbidden(msg: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}

#[cfg(test)]
mod tests {
    use super::{hash, is_loopback_authority, Auth, Principal};
    use axum::http::{Request, StatusCode};
    use std::collections::HashMap;
    use std::sync::RwLock;

    fn auth(admin: Option<&str>) -> Auth {
        let tokens = HashMap::from([(hash("t1"), ("id1".to_owned(), "ns1".to_owned()))]);
        Auth {
            admin: admin.map(hash),
            tokens: RwLock::new(tokens),
        }
    }

    /// What `admit` says of a request: its refusal's status, or the
    /// principal it left for the handlers (None: the admin, or no one).
    fn admit(
        auth: &Auth,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<Option<Principal>, StatusCode> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:7070");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let mut req = b.body(()).unwrap();
        match auth.admit(&mut req) {
            Ok(()) => Ok(req.extensions().get::<Principal>().cloned()),
            Err(e) => Err(e.into_parts().0),
        }
    }

    #[test]
    fn tokens_reach_what_they_may_and_public_paths_need_none() {
        let a = auth(Some("adm"));
        let ns1 = "/api/v1/namespaces/ns1/activities";
        let tenant = Ok(Some(Principal::Tenant("ns1".into())));
        for public in ["/healthz", "/api/v1/openapi.json", "/ui", "/ui/activities"] {
            assert_eq!(admit(&a, "GET", public, None), Ok(None), "{public}");
        }
        assert_eq!(admit(&a, "GET", ns1, None), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            admit(&a, "GET", "/nowhere", None),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            admit(&a, "GET", ns1, Some("t2")),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            admit(&a, "GET", "/uix", None),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(admit(&a, "POST", ns1, Some("adm")), Ok(None));
        assert_eq!(admit(&a, "GET", "/metrics", Some("adm")), Ok(None));
        assert_eq!(admit(&a, "POST", ns1, Some("t1")), tenant);
        assert_eq!(
            admit(&a, "GET", "/api/v1/namespaces/ns%31", Some("t1")),
            tenant
        );
        let refused = [
            (
                "GET",
                "/api/v1/namespaces/ns2/activities",
                StatusCode::NOT_FOUND,
            ),
            ("GET", "/metrics", StatusCode::FORBIDDEN),
            ("GET", "/api/v1/namespaces", StatusCode::FORBIDDEN),
            ("DELETE", "/api/v1/namespaces/ns1", StatusCode::FORBIDDEN),
            (
                "GET",
                "/api/v1/namespaces/ns1/tokens",
                StatusCode::FORBIDDEN,
            ),
            (
                "PUT",
                "/api/v1/namespaces/ns1/config/k",
                StatusCode::FORBIDDEN,
            ),
        ];
        for (method, path, status) in refused {
            assert_eq!(
                admit(&a, method, path, Some("t1")),
                Err(status),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn dev_mode_answers_loopback_hosts_only_on_every_path() {
        let a = auth(None);
        let ns1 = "/api/v1/namespaces/ns1/activities";
        assert_eq!(admit(&a, "GET", ns1, None), Ok(None));
        for path in [ns1, "/healthz", "/ui", "/api/v1/openapi.json"] {
            let mut req = Request::get(path)
                .header("host", "evil.example.com")
                .body(())
                .unwrap();
            let refused = a.admit(&mut req).map_err(|e| e.into_parts().0);
            assert_eq!(refused, Err(StatusCode::FORBIDDEN), "{path}");
        }
    }

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
