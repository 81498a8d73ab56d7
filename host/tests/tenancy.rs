//! Namespaces, tokens and quotas through the real server: a tenant sees only
//! its own namespace, everything else answers 404, and quotas hold.

mod common;

use common::tenants::{auth_server, new_tenant, wait_token, As, ADMIN};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_tenant_sees_only_its_namespace() {
    let (s, _d) = auth_server(&[]);
    let anon = As::new(&s, "");
    let (status, e) = anon.get("/default/activities");
    assert_eq!(status, 401, "{e}");
    let (status, _) = As::new(&s, "not-a-token").get("/default/activities");
    assert_eq!(status, 401);

    let admin = As::new(&s, ADMIN);
    let a = As::new(&s, &new_tenant(&admin, "alpha", json!({})));
    let b = As::new(&s, &new_tenant(&admin, "beta", json!({})));

    assert_eq!(a.upload("alpha", "adversary").0, 201);
    assert_eq!(a.deploy("alpha", "q", "adversary").0, 200);
    let (status, started) = a.post(
        "/alpha/activities",
        json!({"activity_id": "secret", "activity_type": "async-complete", "task_queue": "q", "start_to_close_timeout": "30s"}),
    );
    assert_eq!(status, 201, "{started}");

    // Everything of alpha is invisible to beta: 404, as if it did not exist.
    for path in [
        "/alpha/activities/secret",
        "/alpha/modules",
        "/alpha/task-queues/q",
        "/alpha",
    ] {
        let (status, e) = b.get(path);
        assert_eq!(status, 404, "{path}: {e}");
        assert_eq!(
            e["error"]["message"], "namespace \"alpha\" not found",
            "{path}"
        );
    }
    let (status, _) = b.get("/beta/activities/secret");
    assert_eq!(status, 404);
    assert_eq!(b.deploy("alpha", "q", "adversary").0, 404);
    assert_eq!(b.upload("alpha", "greet").0, 404);
    // A namespace that does not exist answers the same.
    let (_, e) = b.get("/gamma/activities/x");
    assert_eq!(e["error"]["message"], "namespace \"gamma\" not found");

    // alpha's task token does nothing in beta, even through beta's own door.
    let token = wait_token(&a, "/alpha/activities/secret");
    let (status, _) = b.post(
        "/beta/activities/complete",
        json!({"task_token": token, "result": 1}),
    );
    assert_eq!(status, 404);
    let (status, _) = a.post(
        "/alpha/activities/complete",
        json!({"task_token": token, "result": 1}),
    );
    assert_eq!(status, 200);

    // Tenants cannot manage namespaces (nor read or set their own
    // configuration variables, nor their egress policy); the admin can.
    assert_eq!(a.post("", json!({"name": "mine"})).0, 403);
    assert_eq!(a.post("/alpha/tokens", json!({})).0, 403);
    assert_eq!(a.get("/alpha/config").0, 403);
    let put = a
        .http
        .put(a.url("/alpha/config/K"))
        .json(&json!({"value": "v"}));
    assert_eq!(a.send(put).0, 403);
    let patch = a
        .http
        .patch(a.url("/alpha"))
        .json(&json!({"egress": {"allow_hosts": ["*"]}}));
    assert_eq!(a.send(patch).0, 403);
    let put = admin
        .http
        .put(admin.url("/alpha/config/K"))
        .json(&json!({"value": "v", "grants": ["adversary"]}));
    assert_eq!(admin.send(put).0, 200);
    assert_eq!(admin.get("/alpha/config").0, 200);
    let (status, list) = admin.get("");
    assert_eq!(status, 200);
    let names: Vec<&str> = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "default"]);

    // A revoked token stops working at once.
    let (_, tokens) = admin.get("/beta/tokens");
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = admin.send(admin.http.delete(admin.url(&format!("/beta/tokens/{id}"))));
    assert_eq!(status, 200);
    assert_eq!(b.get("/beta/activities").0, 401);
}

#[test]
fn without_auth_the_server_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::wharf()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback only"), "{err}");
}

#[test]
fn quotas_limit_payloads_rates_and_concurrency_per_namespace() {
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let a = As::new(
        &s,
        &new_tenant(
            &admin,
            "small",
            json!({"max_concurrent_attempts": 1, "max_payload_bytes": 1024, "max_starts_per_second": 5.0}),
        ),
    );
    let b = As::new(&s, &new_tenant(&admin, "other", json!({})));
    a.install("small", "q", "adversary");
    b.install("other", "q", "adversary");

    let (status, e) = a.post(
        "/small/activities",
        json!({"activity_type": "echo", "task_queue": "q", "input": ["x".repeat(2000)], "start_to_close_timeout": "5s"}),
    );
    assert_eq!(status, 413, "{e}");

    // One attempt at a time in "small": three 300 ms sleeps run one after another.
    for i in 0..3 {
        let (status, e) = a.post(
            "/small/activities",
            json!({"activity_id": format!("s{i}"), "activity_type": "sleep", "task_queue": "q",
                   "input": [{"ms": 300}], "start_to_close_timeout": "10s"}),
        );
        assert_eq!(status, 201, "{e}");
    }
    // Meanwhile "other" is not held up by it.
    let t = Instant::now();
    let (status, _) = b.post(
        "/other/activities",
        json!({"activity_id": "quick", "activity_type": "echo", "task_queue": "q", "input": [1], "start_to_close_timeout": "5s"}),
    );
    assert_eq!(status, 201);
    let (_, r) = b.get("/other/activities/quick/result?wait=5s");
    assert_eq!(r["state"], "completed", "{r}");
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "other waited {:?}",
        t.elapsed()
    );

    let mut spans = Vec::new();
    for i in 0..3 {
        let (_, r) = a.get(&format!("/small/activities/s{i}/result?wait=10s"));
        assert_eq!(r["state"], "completed", "{r}");
        let (_, d) = a.get(&format!("/small/activities/s{i}"));
        let at = &d["attempts"][0];
        spans.push((
            at["started_ms"].as_u64().unwrap(),
            at["ended_ms"].as_u64().unwrap(),
        ));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "attempts overlapped: {spans:?}");
    }

    // The rate quota: 5 starts per second, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..20 {
        let resp = a
            .http
            .post(a.url("/small/activities"))
            .bearer_auth(&a.token)
            .json(&json!({"activity_type": "echo", "task_queue": "q", "input": [1], "start_to_close_timeout": "5s"}))
            .send()
            .unwrap();
        if resp.status().as_u16() == 429 {
            limited = Some(
                resp.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned()),
            );
            break;
        }
    }
    assert_eq!(limited, Some(Some("1".to_owned())));

    let (_, d) = admin.get("/small");
    let n = &d["namespace"];
    assert_eq!(n["quotas"]["max_concurrent_attempts"], 1);
    assert!(n["usage"]["attempts"].as_u64().unwrap() >= 3, "{d}");
    assert!(n["usage"]["fuel_used"].as_u64().unwrap() > 0, "{d}");
    assert!(
        n["usage"]["starts_rate_limited"].as_u64().unwrap() >= 1,
        "{d}"
    );
}

#[test]
fn a_namespace_with_open_activities_is_deleted_only_by_force() {
    let (s, _d) = auth_server(&["--cancel-grace", "200ms"]);
    let admin = As::new(&s, ADMIN);
    let t = As::new(&s, &new_tenant(&admin, "doomed", json!({})));
    assert_eq!(t.upload("doomed", "adversary").0, 201);
    assert_eq!(t.deploy("doomed", "q", "adversary").0, 200);
    let (status, _) = t.post(
        "/doomed/activities",
        json!({"activity_id": "w", "activity_type": "sleep", "task_queue": "nobody-serves-this",
               "input": [{"ms": 10}], "start_to_close_timeout": "5s"}),
    );
    assert_eq!(status, 201);
    let del = |force: bool| {
        admin.send(
            admin
                .http
                .delete(admin.url(&format!("/doomed?force={force}"))),
        )
    };
    let (status, e) = del(false);
    assert_eq!(status, 409, "{e}");
    let (status, _) = del(true);
    assert_eq!(status, 200);
    assert_eq!(admin.get("/doomed").0, 404);
    assert_eq!(t.get("/doomed/activities").0, 401);
}

#[test]
fn the_module_quota_refuses_new_versions_but_answers_a_repeated_upload() {
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let t = As::new(&s, &new_tenant(&admin, "one", json!({"max_modules": 1})));
    let (status, first) = t.upload("one", "greet");
    assert_eq!(status, 201, "{first}");
    // The same content again makes no new version: answered at the quota.
    let (status, again) = t.upload("one", "greet");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["module"]["version"], first["module"]["version"]);
    // New content would: refused, and nothing is recorded.
    let (status, e) = t.upload("one", "noop");
    assert_eq!(status, 429, "{e}");
    assert_eq!(e["error"]["code"], "quota_exceeded", "{e}");
    let (_, list) = t.get("/one/modules");
    assert_eq!(list["modules"].as_array().map(Vec::len), Some(1), "{list}");
}
