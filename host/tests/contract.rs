//! The API contract: the OpenAPI document the server publishes at
//! `/api/v1/openapi.json` describes every operation it serves, and a fuzzer
//! (schemathesis) driving every operation with generated requests, as the
//! admin and as a tenant, finds no server error, no answer the document
//! does not allow, no crash; the server then still answers and comes back
//! up on the same data directory.

mod common;

use common::tenants::{auth_server, new_tenant, As, ADMIN};
use common::Server;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// The fuzzer, as `scripts/test` installs it.
const SCHEMATHESIS: &str = "st";
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Namespace the tenant's token acts in; its operations are fuzzed with it.
const TENANT_NS: &str = "fuzz";

#[test]
fn the_document_is_openapi_3_1_and_every_operation_answers_as_documented() {
    let (s, _dir) = auth_server(&[]);
    // No token needed for the document.
    let (status, doc) =
        s.send(reqwest::blocking::Client::new().get(format!("{}/api/v1/openapi.json", s.base)));
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let admin = As::new(&s, ADMIN);
    let (status, e) = admin.post("", json!({"name": "docs"}));
    assert_eq!(status, 201, "{e}");
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (template, item) in paths {
        let path = template
            .replace("{ns}", "docs")
            .replace("{queue}", "q")
            .replace("{id}", "missing")
            .replace("{key}", "K");
        for (method, op) in item.as_object().expect("operation") {
            // Deleting the namespace would leave nothing for the others.
            let path = if template == "/api/v1/namespaces/{ns}" && method == "delete" {
                path.replace("docs", "absent")
            } else {
                path.clone()
            };
            // A minimal request: documented answers include the refusal of
            // an empty body, so any documented status is fine; what must
            // not happen is an undocumented one, or a route that is missing
            // (axum's 404 / 405 for a path or method it does not serve).
            let url = format!("{}{path}", s.base);
            let req = admin
                .http
                .request(method.to_uppercase().parse().expect("method"), &url)
                .bearer_auth(ADMIN);
            let req = if matches!(method.as_str(), "post" | "put" | "patch") {
                req.header("content-type", "application/json").body("{}")
            } else {
                req
            };
            let resp = req.send().expect("request");
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp.text().unwrap_or_default();
            let documented = &op["responses"][status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {template}: {status} is not documented ({body})"
            );
            assert!(
                !(body.contains("no such endpoint") || status == 405),
                "{method} {template} is documented but not served: {status} {body}"
            );
            let want = documented["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned())
                .unwrap_or_default();
            assert!(
                ctype.starts_with(&want),
                "{method} {template}: {status} answered {ctype:?}, documented {want:?}"
            );
            if want == "application/json" && status >= 400 {
                let e: Value = serde_json::from_str(&body).expect("JSON error");
                assert!(
                    e["error"]["code"].is_string() && e["error"]["message"].is_string(),
                    "{method} {template}: {body}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 34, "every operation of the API is documented");

    // Extractor refusals are JSON errors too, not axum's plain text.
    for (url, what) in [
        (admin.url("/docs/activities?limit=x"), "invalid query"),
        (admin.url("/docs/config?values=maybe"), "invalid query"),
        (admin.url("/docs/activities/%FF"), "invalid path"),
    ] {
        let (status, e) = admin.send(admin.http.get(&url));
        assert_eq!(status, 400, "{url}: {e}");
        assert_eq!(e["error"]["code"], "invalid_argument", "{url}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap_or("").contains(what),
            "{url}: {e}"
        );
    }
    // A method a path does not take: JSON too, with the methods it does.
    let resp = admin
        .http
        .delete(admin.url("/docs/activities"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert!(resp.headers().get("allow").is_some(), "{resp:?}");
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "method_not_allowed", "{e}");
}

/// Runs schemathesis against the server with one token; returns whether
/// it passed. Its report goes to the test's output once it ends, so two
/// runs at once do not interleave.
fn fuzz(s: &Server, token: &str, ns: &str, seconds: u32, who: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    // Path parameters `ns` of the runs are the namespace the token may act
    // in, so operations get past authorization to their own checks.
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.ns\" = \"{ns}\"\n\n[output.sanitization]\nenabled = false\n"),
    )
    .unwrap();
    eprintln!("==> schemathesis as {who}, up to {seconds}s");
    let started = Instant::now();
    let out = Command::new(SCHEMATHESIS)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", s.base))
        .args(["--url", &s.base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25"])
        .args(["--max-time", &seconds.to_string()])
        .args(["--request-timeout", "30"])
        .args(["--workers", "1"])
        .args(["--seed", "12"])
        .args(["--suppress-health-check", "all"])
        .args(["--no-color"])
        .current_dir(dir.path())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!(
            "schemathesis ({SCHEMATHESIS}) could not be run: {e}. Install it with \
             `python3 -m pip install schemathesis=={SCHEMATHESIS_VERSION}` \
             (./scripts/test does)"
        ),
    };
    eprintln!(
        "==> schemathesis as {who}: {} in {:.0?}\n{}{}",
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

fn healthy(s: &Server) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = reqwest::blocking::Client::new()
            .get(format!("{}/healthz", s.base))
            .timeout(Duration::from_secs(10))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok || Instant::now() > deadline {
            return ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fuzzing_every_operation_finds_no_server_error_and_no_undocumented_answer() {
    let (mut s, dir) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let tenant = new_tenant(&admin, TENANT_NS, json!({}));
    let (status, e) = admin.post("", json!({"name": "fuzz-admin"}));
    assert_eq!(status, 201, "{e}");
    // Something to find: a deployed module and an activity on its queue.
    let tenant_as = As::new(&s, &tenant);
    tenant_as.install(TENANT_NS, "q", "greet");
    let (status, e) = tenant_as.post(
        &format!("/{TENANT_NS}/activities"),
        json!({"activity_id": "a1", "activity_type": "greet", "task_queue": "q",
               "input": ["x"], "start_to_close_timeout": "10s"}),
    );
    assert_eq!(status, 201, "{e}");

    // Both at once: the tenant's and the admin's requests interleave, as
    // they would in production, in half the wall time.
    let (tenant_ok, admin_ok) = std::thread::scope(|scope| {
        let tenant_run = scope.spawn(|| fuzz(&s, &tenant, TENANT_NS, 80, "a tenant"));
        let admin_ok = fuzz(&s, ADMIN, "fuzz-admin", 80, "the admin");
        (tenant_run.join().expect("the tenant's run"), admin_ok)
    });
    assert!(
        healthy(&s),
        "the server stopped answering after the fuzzing"
    );
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the server exited during the fuzzing"
    );

    // Whatever the fuzzer stored, a restart comes up on it.
    let data = s.data_dir.clone();
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let token_file = dir.path().join("admin-token");
    s = Server::start(&data, &["--admin-token-file", token_file.to_str().unwrap()]);
    assert!(
        healthy(&s),
        "the server did not come back up on the fuzzed data"
    );
    let (status, e) = As::new(&s, ADMIN).get("");
    assert_eq!(status, 200, "namespaces after the restart: {e}");

    assert!(tenant_ok, "schemathesis found failures as a tenant (above)");
    assert!(admin_ok, "schemathesis found failures as the admin (above)");
}
