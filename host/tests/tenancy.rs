//! Namespaces, tokens and quotas through the real server: a tenant sees only
//! its own namespace, everything else answers 404, and quotas hold.

mod common;

use common::tenants::{auth_server, new_tenant, wait_token, As, ADMIN};
use serde_json::json;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The CPU-share test measures guest CPU seconds within 20 %: it runs with
/// the machine to itself, the other tests of this file beside each other.
static HOST: RwLock<()> = RwLock::new(());

fn shared_host() -> RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(|e| e.into_inner())
}

fn whole_host() -> RwLockWriteGuard<'static, ()> {
    HOST.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_tenant_sees_only_its_namespace() {
    let _host = shared_host();
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
    let _host = shared_host();
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
    let _host = shared_host();
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
    let _host = shared_host();
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
    let _host = shared_host();
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

/// `bytes` with a custom section appended: another content (another
/// digest) that behaves exactly the same.
fn same_code_other_content(mut bytes: Vec<u8>) -> Vec<u8> {
    let name = b"wharf-test";
    let payload = b"another upload";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

/// Runs `activity_type` of the module deployed on `queue` with `input`.
fn run_on(
    who: &As,
    ns: &str,
    queue: &str,
    id: &str,
    ty: &str,
    input: serde_json::Value,
) -> serde_json::Value {
    let (status, e) = who.post(
        &format!("/{ns}/activities"),
        json!({"activity_id": id, "activity_type": ty, "task_queue": queue, "input": [input],
               "start_to_close_timeout": "20s", "retry_policy": {"maximum_attempts": 1}}),
    );
    assert_eq!(status, 201, "{e}");
    let (status, r) = who.get(&format!("/{ns}/activities/{id}/result?wait=30s"));
    assert_eq!(status, 200, "{r}");
    who.get(&format!("/{ns}/activities/{id}")).1
}

#[test]
fn grants_follow_content_so_a_reupload_under_a_granted_name_gets_nothing() {
    let _host = shared_host();
    let origin = common::origin::Origin::start();
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let t = As::new(&s, &new_tenant(&admin, "acme", json!({})));
    // The admin's billing module, granted a secret and a narrowed host.
    admin.install("acme", "pay", "adversary");
    let allowed = format!("http://127.0.0.1:{}", origin.port);
    let set = admin.http.put(admin.url("/acme/config/DB_PW"));
    let (status, v) = admin.send(set.json(&json!({"value": "s3cret", "grants": ["adversary"]})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["variable"]["bound"][0]["version"], 1, "{v}");
    let patch = admin
        .http
        .patch(admin.url("/acme"))
        .json(&json!({"egress": {
        "allow_hosts": [allowed, "https://other.example.com"], "allow_private": ["127.0.0.1/32"],
        "modules": {"adversary": [allowed]}}}));
    let (status, v) = admin.send(patch);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["namespace"]["egress"]["module_bindings"]["adversary"][0]["version"], 1,
        "{v}"
    );
    let read = |id: &str| run_on(&t, "acme", "pay", id, "config-get", json!({"key": "DB_PW"}));
    let fetch = |id: &str| {
        run_on(
            &t,
            "acme",
            "pay",
            id,
            "http-get",
            json!({"url": origin.url("/ok"), "follow": 0}),
        )
    };
    let d = read("granted");
    assert_eq!(d["result"]["value"], "s3cret", "{d}");
    let d = fetch("granted-http");
    assert_eq!(d["result"]["hops"][0]["status"], 200, "{d}");

    // The tenant uploads its own content under the granted name and deploys it.
    let bytes = same_code_other_content(std::fs::read(common::rust_example("adversary")).unwrap());
    let (status, up) = t.upload_bytes("acme", "adversary", bytes);
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["module"]["version"], 2);
    assert_eq!(t.deploy("acme", "pay", "adversary").0, 200);
    let d = read("reupload");
    assert_eq!(d["result"]["denied"], true, "{d}");
    assert!(!d.to_string().contains("s3cret"), "{d}");
    let d = fetch("reupload-http");
    assert_eq!(d["result"]["error"], "ErrorCode::HttpRequestDenied", "{d}");
    let log = d["attempts"][0]["log_tail"].as_str().unwrap_or("");
    assert!(log.contains("is not on this module's allowlist"), "{log}");
    assert_eq!(
        origin.hits("/ok"),
        1,
        "only the granted version's request arrived"
    );

    // The version the admin granted still reads it.
    let put = t.http.put(t.url("/acme/task-queues/pay/deployment"));
    let (status, e) = t.send(put.json(&json!({"module": "adversary", "version": 1})));
    assert_eq!(status, 200, "{e}");
    let d = read("granted-again");
    assert_eq!(d["result"]["value"], "s3cret", "{d}");

    // Granting by name again binds the latest version; by version, that one.
    let set = admin.http.put(admin.url("/acme/config/DB_PW"));
    let (status, v) = admin.send(set.json(&json!({"value": "s3cret", "grants": ["adversary@2"]})));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["variable"]["bound"][0]["version"], 2, "{v}");
    let d = read("version-1-ungranted");
    assert_eq!(d["result"]["denied"], true, "{d}");
    let set = admin.http.put(admin.url("/acme/config/DB_PW"));
    let (status, e) = admin.send(set.json(&json!({"value": "x", "grants": ["adversary@9"]})));
    assert_eq!(status, 404, "{e}");
    let set = admin.http.put(admin.url("/acme/config/DB_PW"));
    let (status, e) = admin.send(set.json(&json!({"value": "x", "grants": ["adversary@x"]})));
    assert_eq!(status, 400, "{e}");
}

/// Files under `dir` (recursively) whose name contains `part`.
fn files_named(dir: &std::path::Path, part: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_named(&p, part));
        } else if e.file_name().to_string_lossy().contains(part) {
            found.push(p.display().to_string());
        }
    }
    found
}

#[test]
fn a_deleted_namespace_leaves_nothing_and_a_recreated_one_starts_empty() {
    let _host = shared_host();
    let (s, dir) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let t = As::new(&s, &new_tenant(&admin, "acme", json!({})));
    // Content only acme has, and content another namespace has too.
    let own = same_code_other_content(std::fs::read(common::rust_example("adversary")).unwrap());
    let (status, up) = t.upload_bytes("acme", "mine", own);
    assert_eq!(status, 201, "{up}");
    let own_sha = up["module"]["sha256"].as_str().unwrap().to_owned();
    t.install("acme", "q", "greet");
    let other = As::new(&s, &new_tenant(&admin, "other", json!({})));
    let (status, up) = other.upload("other", "greet");
    assert_eq!(status, 201, "{up}");
    let shared_sha = up["module"]["sha256"].as_str().unwrap().to_owned();
    let d = run_on(&t, "acme", "q", "old", "greet", json!("old-input"));
    assert_eq!(d["state"], "completed", "{d}");
    let set = admin.http.put(admin.url("/acme/config/K"));
    assert_eq!(
        admin
            .send(set.json(&json!({"value": "v", "grants": ["*"]})))
            .0,
        200
    );
    let put = admin.http.put(admin.url("/acme/concurrency-limits"));
    assert_eq!(
        admin
            .send(put.json(&json!({"key": "type:greet", "max_concurrent": 2})))
            .0,
        200
    );
    let put = admin.http.put(admin.url("/acme/task-queues/q"));
    assert_eq!(admin.send(put.json(&json!({"rate": 7.0}))).0, 200);
    let data = dir.path().join("data");
    assert!(
        !files_named(&data, &own_sha).is_empty(),
        "acme's module is on disk"
    );

    let del = admin.http.delete(admin.url("/acme?force=true"));
    assert_eq!(admin.send(del).0, 200);
    assert!(
        files_named(&data, &own_sha).is_empty(),
        "acme's own module files are gone: {:?}",
        files_named(&data, &own_sha)
    );
    assert!(
        !files_named(&data, &shared_sha).is_empty(),
        "content another namespace has stays"
    );
    assert_eq!(t.get("/acme/activities").0, 401, "its tokens are gone");

    let check_empty = |s: &common::Server| {
        let admin = As::new(s, ADMIN);
        let (status, _) = admin.get("/acme");
        assert_eq!(status, 404);
        let t2 = As::new(s, &new_tenant(&admin, "acme", json!({})));
        let (_, list) = t2.get("/acme/activities");
        assert_eq!(list["activities"], json!([]), "{list}");
        assert!(!list.to_string().contains("old-input"), "{list}");
        let (status, d) = t2.get("/acme/activities/old");
        assert_eq!(status, 404, "{d}");
        let (_, m) = t2.get("/acme/modules");
        assert_eq!(m["modules"], json!([]), "{m}");
        let (_, c) = admin.get("/acme/config");
        assert_eq!(c["config"], json!([]), "{c}");
        let (_, l) = t2.get("/acme/concurrency-limits");
        assert_eq!(l["limits"], json!([]), "{l}");
        let (_, q) = t2.get("/acme/task-queues/q");
        assert_eq!(q["deployment"], serde_json::Value::Null, "{q}");
        assert_eq!(q["rate_limit"]["rate"], serde_json::Value::Null, "{q}");
        assert_eq!(q["backlog"], 0, "{q}");
        let del = admin.http.delete(admin.url("/acme?force=true"));
        assert_eq!(admin.send(del).0, 200);
    };
    check_empty(&s);
    let other_token = other.token.clone();
    drop((admin, t, other));
    // Still gone after a crash and a restart; the other namespace is intact.
    s.kill();
    let token_file = dir.path().join("admin-token");
    let s = common::Server::start(&data, &["--admin-token-file", token_file.to_str().unwrap()]);
    check_empty(&s);
    let other = As::new(&s, &other_token);
    let (_, m) = other.get("/other/modules");
    assert_eq!(m["modules"][0]["sha256"], shared_sha.as_str(), "{m}");
}

#[test]
fn refused_uploads_leave_no_file_are_remembered_and_throttled() {
    let _host = shared_host();
    let (s, dir) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let t = As::new(&s, &new_tenant(&admin, "up", json!({})));
    let artifacts = dir.path().join("data").join("artifacts");
    let components = dir.path().join("data").join("components");
    // Compiles, then fails validation: nothing of it stays on disk.
    let refused = std::fs::read(common::rust_example("not-an-activity")).unwrap();
    let (status, e) = t.upload_bytes("up", "cmd", refused.clone());
    assert_eq!(status, 422, "{e}");
    assert!(
        files_named(&artifacts, "").is_empty(),
        "{:?}",
        files_named(&artifacts, "")
    );
    assert!(files_named(&components, "").is_empty());
    // The same bytes again: the remembered refusal, without compiling.
    let (status, e) = t.upload_bytes("up", "cmd", refused);
    assert_eq!(status, 422, "{e}");
    let msg = e["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("refused before (not compiled again)"), "{msg}");
    assert!(msg.contains("not a wharf activity module"), "{msg}");
    // Refusal after refusal: throttled with Retry-After, naming the reason.
    let mut throttled = None;
    for i in 0..20u8 {
        let resp = t
            .http
            .post(t.url("/up/modules?name=junk"))
            .bearer_auth(&t.token)
            .body(vec![i; 64])
            .send()
            .unwrap();
        if resp.status().as_u16() == 429 {
            let retry = resp.headers().get("retry-after").cloned();
            throttled = Some((retry, resp.json::<serde_json::Value>().unwrap()));
            break;
        }
        assert_eq!(resp.status().as_u16(), 422);
    }
    let (retry, e) = throttled.expect("throttled within 20 refusals");
    assert!(retry.is_some(), "{e}");
    let msg = e["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("too many refused uploads"), "{msg}");
    // Another namespace is not held back.
    let o = As::new(&s, &new_tenant(&admin, "fine", json!({})));
    assert_eq!(o.upload("fine", "greet").0, 201);
    assert!(
        !files_named(&artifacts, "").is_empty(),
        "an accepted module keeps its artifact"
    );
}

#[test]
fn guest_cpu_goes_by_cpu_weight_and_a_light_tenant_is_not_held_up() {
    let _host = whole_host();
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let one = As::new(&s, &new_tenant(&admin, "one", json!({})));
    let three = As::new(&s, &new_tenant(&admin, "three", json!({"cpu_weight": 3})));
    let light = As::new(&s, &new_tenant(&admin, "light", json!({})));
    let (status, e) = admin.send(
        admin
            .http
            .patch(admin.url("/one"))
            .json(&json!({"quotas": {"cpu_weight": 1001}})),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("cpu_weight"), "{e}");
    for (t, ns) in [(&one, "one"), (&three, "three"), (&light, "light")] {
        t.install(ns, "q", "adversary");
    }

    // Both heavy tenants keep more busy loops than the host has cores
    // running for 3 s, started interleaved so they overlap throughout.
    for i in 0..6 {
        for (t, ns) in [(&one, "one"), (&three, "three")] {
            let (status, e) = t.post(
                &format!("/{ns}/activities"),
                json!({"activity_id": format!("loop{i}"), "activity_type": "loop", "task_queue": "q",
                       "start_to_close_timeout": "3s", "retry_policy": {"maximum_attempts": 1}}),
            );
            assert_eq!(status, 201, "{e}");
        }
    }
    // Meanwhile a light tenant's short activities run one after another,
    // each well within the time the loops hold the host.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        let t = Instant::now();
        let (status, _) = light.post(
            "/light/activities",
            json!({"activity_id": format!("e{i}"), "activity_type": "echo", "task_queue": "q",
                   "input": [i], "start_to_close_timeout": "5s"}),
        );
        assert_eq!(status, 201);
        let (_, r) = light.get(&format!("/light/activities/e{i}/result?wait=5s"));
        assert_eq!(r["state"], "completed", "{r}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "light waited {:?}",
            t.elapsed()
        );
    }

    for (t, ns) in [(&one, "one"), (&three, "three")] {
        for i in 0..6 {
            let (_, r) = t.get(&format!("/{ns}/activities/loop{i}/result?wait=20s"));
            assert_eq!(r["closed"], true, "{r}");
        }
    }
    let cpu = |ns: &str| {
        let (_, d) = admin.get(&format!("/{ns}"));
        d["namespace"]["usage"]["guest_cpu_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("no guest_cpu_seconds in {d}"))
    };
    let (c1, c3) = (cpu("one"), cpu("three"));
    assert!(c1 > 0.1, "weight 1 ran {c1} s");
    let ratio = c3 / c1;
    eprintln!("weights 1:3 gave {c1:.3} s : {c3:.3} s ({ratio:.2})");
    assert!(
        (2.4..=3.6).contains(&ratio),
        "weights 1:3 gave {c1:.3} s : {c3:.3} s ({ratio:.2})"
    );

    let (_, d) = three.get("/three/activities/loop0");
    let attempt_cpu = d["attempts"][0]["guest_cpu_seconds"].as_f64().unwrap();
    assert!(attempt_cpu > 0.0 && attempt_cpu <= c3, "{d}");
    let (_, metrics) = s.send(
        admin
            .http
            .get(format!("{}/metrics", s.base))
            .bearer_auth(ADMIN),
    );
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains("wharf_namespace_guest_cpu_seconds_total{namespace=\"three\"}"),
        "{metrics}"
    );
}
