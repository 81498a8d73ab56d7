//! A `wharf serve` with authentication, and requests made as one of its
//! tokens (the admin's or a tenant's).

use super::{rust_example, Server};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The admin token the servers of these tests are started with.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// Requests made with one bearer token.
pub struct As<'a> {
    pub s: &'a Server,
    pub token: String,
    pub http: Client,
}

impl<'a> As<'a> {
    pub fn new(s: &'a Server, token: &str) -> Self {
        // No connection reuse: a request refused before its body is read
        // (an upload to a namespace that is not ours) closes its connection.
        let http = Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        Self {
            s,
            token: token.to_owned(),
            http,
        }
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/namespaces{path}", self.s.base)
    }
    pub fn send(&self, r: RequestBuilder) -> (u16, Value) {
        self.s.send(r.bearer_auth(&self.token))
    }
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path)))
    }
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).json(&body))
    }
    /// Uploads the built Rust example `name` to `ns`.
    pub fn upload(&self, ns: &str, name: &str) -> (u16, Value) {
        self.upload_bytes(ns, name, std::fs::read(rust_example(name)).unwrap())
    }
    /// Uploads any bytes as module `name` of `ns`.
    pub fn upload_bytes(&self, ns: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(&format!("/{ns}/modules?name={name}")))
                .body(bytes),
        )
    }
    /// Uploads the Rust example `name` to `ns` and deploys it to `queue`;
    /// panics unless both succeed.
    pub fn install(&self, ns: &str, queue: &str, name: &str) {
        let (status, e) = self.upload(ns, name);
        assert_eq!(status, 201, "upload {name} to {ns}: {e}");
        let (status, e) = self.deploy(ns, queue, name);
        assert_eq!(status, 200, "deploy {name} in {ns}: {e}");
    }
    pub fn deploy(&self, ns: &str, queue: &str, module: &str) -> (u16, Value) {
        self.send(
            self.http
                .put(self.url(&format!("/{ns}/task-queues/{queue}/deployment")))
                .json(&json!({"module": module})),
        )
    }
}

/// A server requiring tokens, [`ADMIN`] being the admin's, on a fresh data
/// dir (kept as long as the returned directory).
pub fn auth_server(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, ADMIN).unwrap();
    let mut args = vec!["--admin-token-file", token_file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let data = dir.path().join("data");
    (Server::start(&data, &args), dir)
}

/// Creates namespace `name` with `quotas`; returns a new token of it.
pub fn new_tenant(admin: &As, name: &str, quotas: Value) -> String {
    let (status, body) = admin.post("", json!({"name": name, "quotas": quotas}));
    assert_eq!(status, 201, "{body}");
    let (status, t) = admin.post(&format!("/{name}/tokens"), json!({}));
    assert_eq!(status, 201, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// The task token an `async-complete` attempt printed to its log.
pub fn wait_token(who: &As, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, a) = who.get(path);
        let log = a["attempts"][0]["log_tail"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if let Some(t) = log.lines().find_map(|l| l.strip_prefix("task-token: ")) {
            return t.to_owned();
        }
        assert!(Instant::now() < deadline, "no task token in {a}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
