//! Outbound HTTP and configuration variables through the real server: a
//! namespace's modules reach only the hosts its policy allows, never a
//! private address unless that range is allowed too, within the body and
//! time limits; each request is logged and counted; and a module reads only
//! the configuration variables granted to it.

mod common;

use common::origin::Origin;
use common::{data_dir_sharing_artifacts, precompiled, rust_example, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;

/// A server (dev mode: every request is admin) with the adversary uploaded
/// and deployed to queue `q` of each namespace in `namespaces`, created
/// unless `default`.
fn server(namespaces: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = data_dir_sharing_artifacts();
    let s = Server::start(dir.path(), &[]);
    let wasm = std::fs::read(precompiled(&rust_example("adversary"))).unwrap();
    for ns in namespaces {
        if *ns != "default" {
            let (status, b) = s.send(
                reqwest::blocking::Client::new()
                    .post(format!("{}/api/v1/namespaces", s.base))
                    .json(&json!({"name": ns})),
            );
            assert_eq!(status, 201, "{b}");
        }
        let http = reqwest::blocking::Client::new();
        let (status, b) = s.send(
            http.post(s.ns_url(ns, "modules?name=adversary"))
                .body(wasm.clone()),
        );
        assert!(status == 201 || status == 200, "{b}");
        let (status, b) = s.send(
            http.put(s.ns_url(ns, "task-queues/q/deployment"))
                .json(&json!({"module": "adversary"})),
        );
        assert_eq!(status, 200, "{b}");
    }
    (s, dir)
}

fn set_egress(s: &Server, ns: &str, egress: Value) -> Value {
    let (status, b) = s.send(
        reqwest::blocking::Client::new()
            .patch(s.ns_url(ns, ""))
            .json(&json!({ "egress": egress })),
    );
    assert_eq!(status, 200, "{b}");
    b
}

/// Runs `http-get` in `ns`; returns its result and the attempt's log.
fn get(s: &Server, ns: &str, url: &str, follow: u32) -> (Value, String) {
    let d = s.run_in_namespace(ns, "http-get", json!({"url": url, "follow": follow}));
    assert_eq!(d["state"], "completed", "{d}");
    let log = d["attempts"][0]["log_tail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (d["result"].clone(), log)
}

fn usage(s: &Server, ns: &str) -> (u64, u64) {
    let (_, d) = s.send(reqwest::blocking::Client::new().get(s.ns_url(ns, "")));
    let u = &d["namespace"]["usage"];
    (
        u["egress_requests"].as_u64().unwrap(),
        u["egress_denied"].as_u64().unwrap(),
    )
}

#[test]
fn without_a_policy_every_request_is_denied_logged_and_counted() {
    let origin = Origin::start();
    let (s, _d) = server(&["default"]);
    let url = origin.url("/ok");
    let (r, log) = get(&s, "default", &url, 0);
    assert_eq!(r["denied"], true, "{r}");
    assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{r}");
    assert!(
        log.contains(&format!(
            "[wharf] outbound HTTP GET {url} denied: no hosts are granted to this module"
        )),
        "{log}"
    );
    assert_eq!(origin.hits("/ok"), 0);
    assert_eq!(usage(&s, "default"), (1, 1));
    let metrics = reqwest::blocking::get(format!("{}/metrics", s.base))
        .and_then(|r| r.text())
        .unwrap();
    for line in [
        "wharf_namespace_egress_requests_total{namespace=\"default\"} 1",
        "wharf_namespace_egress_denied_total{namespace=\"default\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let (_, d) = s.send(reqwest::blocking::Client::new().get(s.ns_url("default", "")));
    assert_eq!(d["namespace"]["egress"]["deny_all"], true, "{d}");
}

#[test]
fn allowed_hosts_are_reached_and_every_hop_is_checked_again() {
    let origin = Origin::start();
    let (s, _d) = server(&["alpha", "beta"]);
    let allowed = format!("http://127.0.0.1:{}", origin.port);
    set_egress(
        &s,
        "alpha",
        json!({"allow_hosts": [allowed], "allow_private": ["127.0.0.0/8"]}),
    );

    let (r, log) = get(&s, "alpha", &origin.url("/ok"), 0);
    assert_eq!(r["denied"], false, "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body_bytes"], "hello, egress".len(), "{r}");
    let line = format!(
        "[wharf] outbound HTTP GET {} -> 200 (13 B, ",
        origin.url("/ok")
    );
    assert!(log.contains(&line), "{log}");

    // A redirect within the allowlist is followed: two requests, two checks.
    let (r, _) = get(&s, "alpha", &origin.url("/redirect-ok"), 3);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["hops"].as_array().unwrap().len(), 2, "{r}");

    // Hosts and ports not on the list.
    for url in [
        format!("http://127.0.0.2:{}/ok", origin.port),
        format!("http://127.0.0.1:{}/ok", origin.port + 1),
        format!("https://127.0.0.1:{}/ok", origin.port),
    ] {
        let (r, log) = get(&s, "alpha", &url, 0);
        assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{url}: {r}");
        assert!(
            log.contains(&format!("GET {url} denied: ")) && log.contains("allowlist"),
            "{log}"
        );
    }

    // An allowed host redirecting elsewhere: the first hop reaches it, the
    // second is refused before any connection.
    for (path, error) in [
        ("/redirect-away", "ErrorCode::HttpRequestDenied"),
        ("/redirect-other-port", "ErrorCode::HttpRequestDenied"),
        ("/redirect-metadata", "ErrorCode::HttpRequestDenied"),
    ] {
        let (r, log) = get(&s, "alpha", &origin.url(path), 5);
        let hops = r["hops"].as_array().unwrap();
        assert_eq!(hops.len(), 2, "{path}: {r}");
        assert_eq!(hops[0]["status"], 302, "{path}: {r}");
        assert_eq!(r["error"], error, "{path}: {r}");
        assert_eq!(origin.hits(path), 1, "{path}");
        assert!(log.contains(" -> 302 (0 B, "), "{log}");
        assert!(log.contains("denied: "), "{log}");
    }
    assert_eq!(origin.hits("/ok"), 2, "only the allowed requests arrived");

    // 1 + 2 (redirect followed) + 3 refused + 3 x (302 + refused hop).
    assert_eq!(usage(&s, "alpha"), (12, 6));

    // beta has no policy: alpha's does not leak to it.
    let (r, _) = get(&s, "beta", &origin.url("/ok"), 0);
    assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{r}");
    assert_eq!(usage(&s, "beta"), (1, 1));
    assert_eq!(origin.hits("/ok"), 2);

    // A module narrowed to other hosts is refused what the namespace allows.
    set_egress(
        &s,
        "alpha",
        json!({"allow_hosts": [allowed], "allow_private": ["127.0.0.0/8"],
               "modules": {"adversary": ["https://api.example.com"]}}),
    );
    let (r, log) = get(&s, "alpha", &origin.url("/ok"), 0);
    assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{r}");
    assert!(log.contains("is not on this module's allowlist"), "{log}");
}

#[test]
fn private_addresses_are_refused_even_when_the_host_matches() {
    let origin = Origin::start();
    let (s, _d) = server(&["open"]);
    let port = origin.port;
    set_egress(
        &s,
        "open",
        json!({"allow_hosts": ["*:*", format!("http://127.0.0.1:{port}")]}),
    );
    for (url, what) in [
        (origin.url("/ok"), "127.0.0.1 is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is a link-local address",
        ),
        (
            format!("http://[::1]:{port}/ok"),
            "::1 is a loopback address",
        ),
        (
            format!("http://localhost:{port}/ok"),
            "localhost resolves to ",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/ok"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://10.1.2.3/".to_owned(),
            "10.1.2.3 is a private address",
        ),
    ] {
        let (r, log) = get(&s, "open", &url, 0);
        assert_eq!(r["denied"], true, "{url}: {r}");
        assert_eq!(
            r["error"], "ErrorCode::DestinationIpProhibited",
            "{url}: {r}"
        );
        assert!(
            log.contains(&format!("GET {url} denied: ")) && log.contains(what),
            "{url}: {log}"
        );
    }
    assert_eq!(origin.hits("/ok"), 0, "no request reached loopback");
    assert_eq!(usage(&s, "open"), (6, 6));
}

#[test]
fn body_and_time_limits_stop_a_response_with_a_typed_error() {
    let origin = Origin::start();
    let (s, _d) = server(&["limited"]);
    set_egress(
        &s,
        "limited",
        json!({"allow_hosts": [format!("http://127.0.0.1:{}", origin.port)],
               "allow_private": ["127.0.0.1/32"],
               "limits": {"max_response_bytes": 65536, "max_request_bytes": 1024,
                          "first_byte_timeout_ms": 500, "total_timeout_ms": 1000}}),
    );
    let (r, log) = get(&s, "limited", &origin.url("/huge"), 0);
    assert_eq!(r["status"], 200, "{r}");
    // wasmtime-wasi-http 48 hands body errors to the guest as a message,
    // not an `error-code`.
    let error = r["body_error"].as_str().unwrap_or("");
    assert!(
        error.contains("body size exceeds limit: 65536 bytes"),
        "{r}"
    );
    assert!(r["body_bytes"].as_u64().unwrap() <= 65536, "{r}");
    assert!(log.contains("stopped: "), "{log}");

    let (r, log) = get(&s, "limited", &origin.url("/slow"), 0);
    assert_eq!(r["denied"], true, "{r}");
    assert_eq!(r["error"], "ErrorCode::HttpResponseTimeout", "{r}");
    assert!(
        log.contains(&format!("GET {} failed: ", origin.url("/slow"))),
        "{log}"
    );

    let (r, _) = get(&s, "limited", &origin.url("/slow-body"), 0);
    assert_eq!(r["status"], 200, "{r}");
    assert!(
        r["body_error"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP response timeout"),
        "{r}"
    );
    assert_eq!(r["body_bytes"], 10, "{r}");

    // A request body over the limit is cut off; nothing past it is sent.
    let d = s.run_in_namespace(
        "limited",
        "http-get",
        json!({"url": origin.url("/ok"), "post_bytes": 200_000}),
    );
    let r = &d["result"];
    assert_eq!(r["denied"], true, "{d}");
    assert_eq!(
        r["error"], "ErrorCode::HttpRequestBodySize(Some(1024))",
        "{d}"
    );

    // Limits are not denials.
    assert_eq!(usage(&s, "limited"), (4, 0));
}

#[test]
fn a_module_reads_only_the_config_granted_to_it() {
    let (s, _d) = server(&["alpha", "beta"]);
    let http = reqwest::blocking::Client::new();
    let set = |ns: &str, key: &str, value: &str, grants: Value| {
        let (status, b) = s.send(
            http.put(s.ns_url(ns, &format!("config/{key}")))
                .json(&json!({"value": value, "grants": grants})),
        );
        assert_eq!(status, 200, "{b}");
        assert!(!b.to_string().contains(value), "a set echoes no value: {b}");
    };
    set("alpha", "API_KEY", "s3cret-alpha", json!(["adversary"]));
    set("alpha", "OTHER", "not-for-you", json!(["billing"]));
    set("beta", "BETA_ONLY", "s3cret-beta", json!(["*"]));

    let read = |ns: &str, key: &str| {
        let d = s.run_in_namespace(ns, "config-get", json!({"key": key}));
        (
            d["result"].clone(),
            d["attempts"][0]["log_tail"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    };
    let (r, _) = read("alpha", "API_KEY");
    assert_eq!(
        r,
        json!({"denied": false, "value": "s3cret-alpha", "granted": ["API_KEY"]})
    );
    let (r, log) = read("alpha", "OTHER");
    assert_eq!(r["denied"], true, "{r}");
    assert!(!r.to_string().contains("not-for-you"), "{r}");
    assert!(
        log.contains("[wharf] config \"OTHER\" denied: not granted to this module"),
        "{log}"
    );
    // Another namespace's variable does not exist here.
    let (r, _) = read("alpha", "BETA_ONLY");
    assert_eq!(r["value"], Value::Null, "{r}");
    assert_eq!(r["denied"], false, "{r}");
    let (r, _) = read("beta", "BETA_ONLY");
    assert_eq!(r["value"], "s3cret-beta", "{r}");

    // Never through the environment.
    let d = s.run_in_namespace("alpha", "read-env", json!(null));
    assert_eq!(d["result"]["vars"], json!([]), "{d}");

    // Listed without values unless asked; describe shows names only.
    let (_, list) = s.send(http.get(s.ns_url("alpha", "config")));
    assert_eq!(list["config"][0]["key"], "API_KEY", "{list}");
    assert!(!list.to_string().contains("s3cret"), "{list}");
    let (_, d) = s.send(http.get(s.ns_url("alpha", "")));
    assert!(!d.to_string().contains("s3cret"), "{d}");
    let (_, list) = s.send(http.get(s.ns_url("alpha", "config?values=true")));
    assert_eq!(list["config"][0]["value"], "s3cret-alpha", "{list}");

    let (status, _) = s.send(http.delete(s.ns_url("alpha", "config/API_KEY")));
    assert_eq!(status, 200);
    let (r, _) = read("alpha", "API_KEY");
    assert_eq!(r["value"], Value::Null, "{r}");
}

#[test]
fn the_cli_sets_the_policy_and_config_and_describe_shows_them() {
    let origin = Origin::start();
    let (s, _d) = server(&["gamma"]);
    let cli = |args: &[&str]| common::cli(&s.base, args);
    let allowed = format!("http://127.0.0.1:{}", origin.port);
    cli(&[
        "namespace",
        "update",
        "gamma",
        "--allow-host",
        &allowed,
        "--allow-host",
        "*.example.com:8443",
        "--allow-private",
        "127.0.0.0/8",
        "--egress-limit",
        "max_requests_per_attempt=1",
    ]);
    cli(&[
        "namespace",
        "config",
        "set",
        "gamma",
        "TOKEN",
        "t0ken",
        "--grant",
        "adversary",
    ]);

    // One request per attempt: the redirect's second hop is refused.
    let (r, log) = get(&s, "gamma", &origin.url("/redirect-ok"), 5);
    assert_eq!(r["hops"][0]["status"], 302, "{r}");
    assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{r}");
    assert!(
        log.contains("the attempt already sent its maximum of 1 requests"),
        "{log}"
    );

    let text = cli(&["namespace", "describe", "gamma"]);
    assert!(text.contains(&allowed), "{text}");
    assert!(text.contains("*.example.com:8443"), "{text}");
    assert!(
        text.contains("egress_requests") && text.contains("TOKEN"),
        "{text}"
    );
    assert!(!text.contains("t0ken"), "{text}");
    let text = cli(&["namespace", "config", "list", "gamma"]);
    assert!(
        text.contains("TOKEN") && text.contains("(hidden)"),
        "{text}"
    );
    let text = cli(&["namespace", "config", "list", "gamma", "--show-values"]);
    assert!(text.contains("t0ken"), "{text}");

    // An invalid pattern is refused with the reason, nothing changes.
    let out = common::wharf()
        .args(["namespace", "update", "gamma", "--allow-host", "ftp://x"])
        .args(["--server", &s.base])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the scheme must be http or https"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli(&["namespace", "update", "gamma", "--deny-egress"]);
    let (r, _) = get(&s, "gamma", &origin.url("/ok"), 0);
    assert_eq!(r["error"], "ErrorCode::HttpRequestDenied", "{r}");
}

#[test]
fn wharf_run_grants_hosts_and_config_from_flags() {
    let origin = Origin::start();
    let allowed = format!("http://127.0.0.1:{}", origin.port);
    let input = json!({"url": origin.url("/ok")}).to_string();
    let wasm = rust_example("adversary");
    let r = common::run(
        &wasm,
        "http-get",
        &["--input", &input, "--allow-host", &allowed],
    );
    assert_eq!(
        r.json["result"]["error"], "ErrorCode::DestinationIpProhibited",
        "{}",
        r.json
    );
    let r = common::run(
        &wasm,
        "http-get",
        &[
            "--input",
            &input,
            "--allow-host",
            &allowed,
            "--allow-private",
            "127.0.0.1",
        ],
    );
    assert_eq!(r.json["result"]["status"], 200, "{}", r.json);
    assert_eq!(r.json["egress_requests"], 1, "{}", r.json);
    let r = common::run(
        &wasm,
        "config-get",
        &["--input", r#"{"key": "K"}"#, "--config", "K=v"],
    );
    assert_eq!(r.json["result"]["value"], "v", "{}", r.json);
}

#[test]
fn policies_and_config_survive_a_restart() {
    let origin = Origin::start();
    let (s, dir) = server(&["delta"]);
    set_egress(
        &s,
        "delta",
        json!({"allow_hosts": [format!("http://127.0.0.1:{}", origin.port)],
               "allow_private": ["127.0.0.0/8"]}),
    );
    let (status, b) = s.send(
        reqwest::blocking::Client::new()
            .put(s.ns_url("delta", "config/K"))
            .json(&json!({"value": "kept", "grants": ["*"]})),
    );
    assert_eq!(status, 200, "{b}");
    s.kill();

    let s = Server::start(dir.path(), &[]);
    let (r, _) = get(&s, "delta", &origin.url("/ok"), 0);
    assert_eq!(r["status"], 200, "{r}");
    let d = s.run_in_namespace("delta", "config-get", json!({"key": "K"}));
    assert_eq!(d["result"]["value"], "kept", "{d}");
}

/// Runs `cmd`, panicking with its output unless it succeeds.
fn sh(cmd: &mut std::process::Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HTTPS through rustls: a certificate chaining to a trusted root is
/// accepted, one from an unknown issuer is a TLS error. The test's own CA
/// is the only root (`SSL_CERT_FILE`, read by rustls-native-certs); the
/// server is Python's `ssl` (openssl makes the certificates).
#[test]
fn https_is_verified_against_the_trusted_roots() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let openssl = || {
        let mut c = std::process::Command::new("openssl");
        c.current_dir(dir.path());
        c
    };
    sh(openssl().args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wharf test ca",
    ]));
    sh(openssl().args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(openssl().args([
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello over tls"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", server, &port.to_string()])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let _server = Child(child);
    assert_eq!(ready.trim(), "ready");

    let url = format!("https://localhost:{port}/x");
    let get = |roots: &str| {
        let out = common::wharf()
            .env("SSL_CERT_FILE", roots)
            .arg("run")
            .arg(precompiled(&rust_example("adversary")))
            .args(["http-get", "--json", "--data-dir"])
            .arg(common::shared_data_dir())
            .args(["--input", &json!({"url": url}).to_string()])
            .args(["--allow-host", &format!("https://localhost:{port}")])
            .args(["--allow-private", "127.0.0.0/8", "--allow-private", "::1"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["result"].clone()
    };
    let r = get(&p("ca.pem"));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body_bytes"], 14, "{r}");
    // The leaf itself is no root, and its issuer is unknown.
    let r = get(&p("cert.pem"));
    assert_eq!(r["error"], "ErrorCode::TlsProtocolError", "{r}");
}
