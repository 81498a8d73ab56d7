//! The adversarial suite: one `wharf serve`, two tenants at once. Tenant A
//! runs every kind of misbehaving code and request we know of; tenant B runs
//! a steady load of short activities. Each of A's cases must be contained
//! with a typed outcome in its attempt history (or a denial the guest saw),
//! the server must stay up, and B must neither lose an activity nor be
//! starved (its latency beside A is a benchmark: `wharf bench isolation`).

mod common;

use common::origin::Origin;
use common::tenants::{auth_server, new_tenant, wait_token, As, ADMIN};
use common::wait_for;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Tenant A's fuel budget per attempt: about 0.3 - 1 s of a busy loop here,
/// so `loop` with a 250 ms deadline times out first and with a long one
/// runs out of fuel.
const FUEL: u64 = 10_000_000_000;
/// Tenant A's largest module upload.
const MAX_MODULE: usize = 2 << 20;

/// One row of the printed table.
struct Row {
    case: String,
    expected: String,
    observed: String,
    ok: bool,
}

/// A misbehaving activity of tenant A, and what must become of it.
struct Case {
    name: &'static str,
    activity_type: &'static str,
    input: Value,
    start_to_close: &'static str,
    expect: Expect,
}

enum Expect {
    /// The only attempt ended with this outcome and failure type.
    Outcome(&'static str, &'static str),
    /// The activity completed; its result satisfies the check.
    Result(&'static str, fn(&Value) -> bool),
}

fn cases(origin: &Origin) -> Vec<Case> {
    let port = origin.port;
    let denied = |r: &Value| r["error"] == "ErrorCode::HttpRequestDenied";
    let http = |name, url: String, follow: u32, expect| Case {
        name,
        activity_type: "http-get",
        input: json!({"url": url, "follow": follow}),
        start_to_close: "10s",
        expect,
    };
    let fail = |name, activity_type, input, start_to_close, outcome, ty| Case {
        name,
        activity_type,
        input,
        start_to_close,
        expect: Expect::Outcome(outcome, ty),
    };
    let res = |name, activity_type, input, what, check| Case {
        name,
        activity_type,
        input,
        start_to_close: "10s",
        expect: Expect::Result(what, check),
    };
    vec![
        fail(
            "infinite loop",
            "loop",
            json!(null),
            "250ms",
            "timed_out",
            "StartToCloseTimeout",
        ),
        fail(
            "fuel burn",
            "loop",
            json!(null),
            "30s",
            "fuel_exhausted",
            "WasmFuelExhausted",
        ),
        fail(
            "memory bomb",
            "memory-bomb",
            json!(null),
            "10s",
            "memory_limit_exceeded",
            "WasmMemoryLimitExceeded",
        ),
        fail(
            "deep recursion",
            "recurse",
            json!(null),
            "10s",
            "trapped",
            "WasmTrap",
        ),
        fail(
            "stdout flood",
            "stdout-flood",
            json!(null),
            "300ms",
            "timed_out",
            "StartToCloseTimeout",
        ),
        fail(
            "huge result (4 MiB)",
            "huge-result",
            json!({"mib": 4}),
            "10s",
            "output_too_large",
            "WasmOutputTooLarge",
        ),
        fail(
            "huge heartbeat (4 MiB)",
            "big-heartbeat",
            json!({"mib": 4}),
            "10s",
            "output_too_large",
            "WasmOutputTooLarge",
        ),
        fail("panic", "panic", json!(null), "10s", "trapped", "WasmTrap"),
        res(
            "heartbeat flood (100k)",
            "heartbeat-flood",
            json!({"count": 100_000}),
            "completed, {count: 100000}",
            |r| r["count"] == 100_000,
        ),
        res(
            "spawn a thread (fork bomb)",
            "spawn-thread",
            json!(null),
            "spawned: false",
            |r| r["spawned"] == false,
        ),
        res(
            "read /etc/passwd",
            "read-file",
            json!({"path": "/etc/passwd"}),
            "denied",
            |r| r["denied"] == true,
        ),
        res(
            "write /tmp/wharf-adversary-was-here",
            "write-file",
            json!(null),
            "denied",
            |r| r["denied"] == true,
        ),
        res(
            "read the host's root dir",
            "read-file",
            json!({"path": "/"}),
            "denied",
            |r| r["denied"] == true,
        ),
        res(
            "read environment",
            "read-env",
            json!(null),
            "no vars, no args beyond argv[0]",
            |r| r["vars"] == json!([]) && r["args"].as_array().is_some_and(|a| a.len() <= 1),
        ),
        res(
            "raw TCP socket to loopback",
            "connect",
            json!({"addr": format!("127.0.0.1:{port}")}),
            "denied",
            |r| r["denied"] == true,
        ),
        http(
            "HTTP to the allowed host (control)",
            origin.url("/ok"),
            0,
            Expect::Result("status 200", |r| r["status"] == 200),
        ),
        http(
            "HTTP to a host not allowed",
            format!("http://127.0.0.2:{port}/ok"),
            0,
            Expect::Result("HttpRequestDenied", denied),
        ),
        http(
            "HTTP redirect to a disallowed host",
            origin.url("/redirect-away"),
            5,
            Expect::Result("302, then HttpRequestDenied", |r| {
                r["hops"][0]["status"] == 302 && r["error"] == "ErrorCode::HttpRequestDenied"
            }),
        ),
        http(
            "HTTP redirect to 169.254.169.254",
            origin.url("/redirect-metadata"),
            5,
            Expect::Result("302, then HttpRequestDenied", |r| {
                r["hops"][0]["status"] == 302 && r["error"] == "ErrorCode::HttpRequestDenied"
            }),
        ),
        http(
            "HTTP to 127.0.0.1, port not allowed",
            format!("http://127.0.0.1:{}/ok", port + 1),
            0,
            Expect::Result("HttpRequestDenied", denied),
        ),
        http(
            "HTTP to 169.254.169.254",
            "http://169.254.169.254/latest/meta-data/".into(),
            0,
            Expect::Result("HttpRequestDenied", denied),
        ),
        http(
            "HTTP to [::1]",
            format!("http://[::1]:{port}/ok"),
            0,
            Expect::Result("HttpRequestDenied", denied),
        ),
    ]
}

/// Starts tenant B's load: `n` `echo` activities at `per_second`, then
/// waits for all; returns each one's schedule-to-start in ms (its first
/// attempt's start minus its scheduling, both in ms as the server records).
fn b_load(b: &As, prefix: &str, n: usize, per_second: u32) -> Vec<u64> {
    let gap = Duration::from_secs(1) / per_second;
    let t0 = Instant::now();
    for i in 0..n {
        if let Some(wait) = (t0 + gap * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (status, e) = b.post(
            "/b/activities",
            json!({"activity_id": format!("{prefix}{i}"), "activity_type": "echo", "task_queue": "q",
                   "input": [i], "start_to_close_timeout": "10s"}),
        );
        assert_eq!(status, 201, "{e}");
    }
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i}");
            let (_, r) = b.get(&format!("/b/activities/{id}/result?wait=30s"));
            assert_eq!(r["state"], "completed", "B's {id}: {r}");
            let (_, d) = b.get(&format!("/b/activities/{id}"));
            let started = d["attempts"][0]["started_ms"].as_u64().expect("started_ms");
            started - d["scheduled_ms"].as_u64().expect("scheduled_ms")
        })
        .collect()
}

/// The 99th percentile (nearest rank) of some samples.
fn p99(samples: &[u64]) -> u64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    wharf::bench::harness::percentile(&v, 99).expect("samples")
}

/// Hostile uploads: (case, bytes, expected status).
fn hostile_modules() -> Vec<(&'static str, Vec<u8>, u16)> {
    use wasm_encoder::{
        CodeSection, Component, ComponentExportKind, ComponentExportSection, ComponentTypeSection,
        ComponentValType, ExportKind, ExportSection, Function, FunctionSection, Module,
        ModuleSection, PrimitiveValType, TypeSection,
    };
    // A core module of 10 000 exported functions.
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut funcs = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    for i in 0..10_000u32 {
        funcs.function(0);
        exports.export(&format!("f{i}"), ExportKind::Func, i);
        let mut f = Function::new([]);
        f.instructions().end();
        code.function(&f);
    }
    module
        .section(&types)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    let core = module.clone().finish();
    let mut wide = Component::new();
    wide.section(&ModuleSection(&module));
    // A component whose types nest 2 000 deep: list<list<...<u8>...>>,
    // the outermost one exported so that a validator must look at it.
    let mut nested = Component::new();
    let mut defined = ComponentTypeSection::new();
    defined
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U8));
    for i in 1..2_000u32 {
        defined.defined_type().list(ComponentValType::Type(i - 1));
    }
    nested.section(&defined);
    let mut export = ComponentExportSection::new();
    export.export("deep", ComponentExportKind::Type, 1_999, None);
    nested.section(&export);
    let mut garbage = vec![0u8; 64 << 10];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    // A component that instantiates one empty core module 1 000 times: far
    // more of the shared instance pool than a module may take.
    let mut greedy = Component::new();
    greedy.section(&ModuleSection(&Module::new()));
    let mut instances = wasm_encoder::InstanceSection::new();
    for _ in 0..1_000 {
        instances.instantiate(0, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
    }
    greedy.section(&instances);
    let read = |name: &str| std::fs::read(common::rust_example(name)).unwrap();
    vec![
        ("upload over the size quota", vec![0u8; MAX_MODULE + 1], 413),
        ("upload of garbage bytes", garbage.clone(), 422),
        ("upload of a core module (10 000 exports)", core, 422),
        (
            "upload of a component, core module with 10 000 exports",
            wide.finish(),
            422,
        ),
        (
            "upload of a component with types nested 2 000 deep",
            nested.finish(),
            422,
        ),
        (
            "upload of 1 000 core instances (over the pool share)",
            greedy.finish(),
            422,
        ),
        (
            "upload: activity-types() spins (A's fuel, 5 s)",
            read("spin_types"),
            422,
        ),
        (
            "upload: activity-types() allocates (A's 64 MiB)",
            read("hog_types"),
            422,
        ),
        (
            "the same garbage again: remembered, not compiled",
            garbage,
            422,
        ),
    ]
}

#[test]
fn a_hostile_tenant_neither_crashes_the_server_nor_slows_another() {
    let origin = Origin::start();
    let (s, _d) = auth_server(&[]);
    let admin = As::new(&s, ADMIN);
    let a = As::new(
        &s,
        &new_tenant(
            &admin,
            "a",
            json!({"max_concurrent_attempts": 4, "max_memory_per_attempt": 64 << 20,
                   "fuel_per_attempt": FUEL, "max_module_bytes": MAX_MODULE}),
        ),
    );
    let b = As::new(&s, &new_tenant(&admin, "b", json!({})));
    a.install("a", "q", "adversary");
    b.install("b", "q", "adversary");
    let patch = admin.http.patch(admin.url("/a")).json(&json!({"egress": {
        "allow_hosts": [format!("http://127.0.0.1:{}", origin.port)],
        "allow_private": ["127.0.0.1/32"]}}));
    assert_eq!(admin.send(patch).0, 200);

    // Baseline: B alone, after a few activities that instantiate B's
    // module for the first time (not what is measured).
    let (n, rate) = (150, 50);
    b_load(&b, "warm-", 10, rate);
    let alone = b_load(&b, "alone-", n, rate);

    // B's asynchronous activity, whose task token and id A will try to use.
    let (status, e) = b.post(
        "/b/activities",
        json!({"activity_id": "b-secret", "activity_type": "async-complete", "task_queue": "q",
               "start_to_close_timeout": "60s"}),
    );
    assert_eq!(status, 201, "{e}");
    let b_token = wait_token(&b, "/b/activities/b-secret");

    // The attack: every case at once, plus loops and memory bombs enough
    // to keep A's four slots busy for longer than B's run.
    let cases = cases(&origin);
    let t_attack = Instant::now();
    for (i, c) in cases.iter().enumerate() {
        let (status, e) = a.post(
            "/a/activities",
            json!({"activity_id": format!("case{i}"), "activity_type": c.activity_type,
                   "input": [c.input], "task_queue": "q", "start_to_close_timeout": c.start_to_close,
                   "retry_policy": {"maximum_attempts": 1}}),
        );
        assert_eq!(status, 201, "{}: {e}", c.name);
    }
    for i in 0..16u32 {
        let ty = if i.is_multiple_of(2) {
            "loop"
        } else {
            "memory-bomb"
        };
        let (status, e) = a.post(
            "/a/activities",
            json!({"activity_id": format!("pressure{i}"), "activity_type": ty, "task_queue": "q",
                   "start_to_close_timeout": "1s", "retry_policy": {"maximum_attempts": 1}}),
        );
        assert_eq!(status, 201, "{e}");
    }
    let mut rows = Vec::new();
    let b_thread = std::thread::scope(|scope| {
        let load = scope.spawn(|| b_load(&b, "attacked-", n, rate));

        // Meanwhile, A's requests against B and its hostile uploads.
        let mut check = |case: &str, expected: &str, observed: String, ok: bool| {
            rows.push(Row {
                case: case.into(),
                expected: expected.into(),
                observed,
                ok,
            });
        };
        for (case, path, body) in [
            (
                "complete B's task token in A",
                "/a/activities/complete",
                json!({"task_token": b_token, "result": 1}),
            ),
            (
                "complete B's task token in B",
                "/b/activities/complete",
                json!({"task_token": b_token, "result": 1}),
            ),
            (
                "complete B's activity id in B",
                "/b/activities/complete",
                json!({"activity_id": "b-secret", "result": 1}),
            ),
        ] {
            let (status, e) = a.post(path, body);
            check(
                case,
                "404",
                format!("{status} {}", e["error"]["code"]),
                status == 404,
            );
        }
        let (status, _) = a.get("/b/activities/b-secret");
        check(
            "describe B's activity",
            "404",
            status.to_string(),
            status == 404,
        );
        for (case, bytes, expected) in hostile_modules() {
            let (status, e) = a.upload_bytes("a", "hostile", bytes);
            let msg: String = e["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            check(
                case,
                &expected.to_string(),
                format!("{status} {msg}"),
                status == expected,
            );
        }
        // A valid module that is large where a host might not expect it:
        // 10 000 activity types, 10 000 more core exports.
        let (status, m) = a.upload("a", "sprawl");
        let types = m["module"]["activity_types"].as_array().map_or(0, Vec::len);
        check(
            "upload: 10 000 activity types + 10 000 core exports",
            "201, 10000 types",
            format!("{status}, {types} types"),
            status == 201 && types == 10_000,
        );
        load.join().expect("B's load")
    });
    let attacked = b_thread;

    // Every case of A is contained, with a typed outcome or a denial.
    for (i, c) in cases.iter().enumerate() {
        let (_, r) = a.get(&format!("/a/activities/case{i}/result?wait=60s"));
        let (_, d) = a.get(&format!("/a/activities/case{i}"));
        let attempts = d["attempts"].as_array().map_or(0, Vec::len);
        let at = &d["attempts"][0];
        let (expected, observed, ok) = match &c.expect {
            Expect::Outcome(outcome, ty) => {
                let observed = format!(
                    "{} / {} ({} attempt)",
                    at["outcome"], at["failure_type"], attempts
                );
                let ok = r["closed"] == true
                    && at["outcome"] == *outcome
                    && at["failure_type"] == *ty
                    && r["failure"]["type"] == *ty
                    && attempts == 1;
                (format!("{outcome} / {ty}"), observed, ok)
            }
            Expect::Result(what, check) => {
                let mut observed = d["result"].to_string();
                observed.truncate(70);
                let ok = d["state"] == "completed" && check(&d["result"]);
                (what.to_string(), observed, ok)
            }
        };
        rows.push(Row {
            case: c.name.into(),
            expected,
            observed,
            ok,
        });
    }
    assert_eq!(
        origin.hits("/ok"),
        1,
        "only the control request reached the origin"
    );
    let written = std::path::Path::new("/tmp/wharf-adversary-was-here").exists();
    rows.push(Row {
        case: "write-file: nothing on the host's disk".into(),
        expected: "no file".into(),
        observed: if written { "file exists" } else { "no file" }.into(),
        ok: !written,
    });
    // The stdout flood's log is capped, not the whole flood.
    let flood = cases
        .iter()
        .position(|c| c.activity_type == "stdout-flood")
        .unwrap();
    let (_, d) = a.get(&format!("/a/activities/case{flood}"));
    let log = d["attempts"][0]["log_tail"].as_str().unwrap_or("").len();
    rows.push(Row {
        case: "stdout flood: log kept".into(),
        expected: "≤ 64 KiB".into(),
        observed: format!("{log} B"),
        ok: log <= 64 << 10,
    });
    // The sprawling module runs its last type.
    assert_eq!(a.deploy("a", "wide", "sprawl").0, 200);
    let (status, e) = a.post(
        "/a/activities",
        json!({"activity_id": "wide", "activity_type": "type-9999", "task_queue": "wide",
               "start_to_close_timeout": "10s"}),
    );
    assert_eq!(status, 201, "{e}");
    let (_, r) = a.get("/a/activities/wide/result?wait=30s");
    rows.push(Row {
        case: "run type-9999 of that module".into(),
        expected: "completed, 9999".into(),
        observed: format!("{}, {}", r["state"], r["result"]),
        ok: r["state"] == "completed" && r["result"] == 9999,
    });
    // B's asynchronous activity is still B's to complete.
    let (status, _) = b.post(
        "/b/activities/complete",
        json!({"task_token": b_token, "result": 1}),
    );
    rows.push(Row {
        case: "B completes its own task token".into(),
        expected: "200".into(),
        observed: status.to_string(),
        ok: status == 200,
    });
    // A secret the admin granted to A's `adversary` stays with that content:
    // A's own upload under the name reads nothing.
    let set = admin.http.put(admin.url("/a/config/DB_PW"));
    let (status, e) = admin.send(set.json(&json!({"value": "s3cret", "grants": ["adversary"]})));
    assert_eq!(status, 200, "{e}");
    let mut own = std::fs::read(common::rust_example("adversary")).unwrap();
    own.extend_from_slice(&[0, 5, 4, b'm', b'i', b'n', b'e']); // a custom section
    let (status, e) = a.upload_bytes("a", "adversary", own);
    assert_eq!(status, 201, "{e}");
    assert_eq!(a.deploy("a", "steal", "adversary").0, 200);
    let (status, e) = a.post(
        "/a/activities",
        json!({"activity_id": "steal", "activity_type": "config-get", "task_queue": "steal",
               "input": [{"key": "DB_PW"}], "start_to_close_timeout": "10s"}),
    );
    assert_eq!(status, 201, "{e}");
    let (_, r) = a.get("/a/activities/steal/result?wait=30s");
    rows.push(Row {
        case: "re-upload under a name granted a secret".into(),
        expected: "denied, no value".into(),
        observed: format!("{}", r["result"]),
        ok: r["result"]["denied"] == true && !r.to_string().contains("s3cret"),
    });
    // A deleted namespace's data does not come back under its name.
    let c = As::new(&s, &new_tenant(&admin, "c", json!({})));
    c.install("c", "q", "greet");
    let (status, e) = c.post(
        "/c/activities",
        json!({"activity_id": "old", "activity_type": "greet", "task_queue": "q",
               "input": ["c's input"], "start_to_close_timeout": "10s"}),
    );
    assert_eq!(status, 201, "{e}");
    let _ = c.get("/c/activities/old/result?wait=30s");
    assert_eq!(
        admin.send(admin.http.delete(admin.url("/c?force=true"))).0,
        200
    );
    let c = As::new(&s, &new_tenant(&admin, "c", json!({})));
    let (_, acts) = c.get("/c/activities");
    let (_, mods) = c.get("/c/modules");
    rows.push(Row {
        case: "delete namespace, create it again".into(),
        expected: "0 activities, 0 modules".into(),
        observed: format!(
            "{} activities, {} modules",
            acts["activities"].as_array().map_or(99, Vec::len),
            mods["modules"].as_array().map_or(99, Vec::len)
        ),
        ok: acts["activities"] == json!([]) && mods["modules"] == json!([]),
    });
    let (status, _) = s.send(reqwest::blocking::Client::new().get(format!("{}/healthz", s.base)));
    rows.push(Row {
        case: "server up after the attack (/healthz)".into(),
        expected: "200".into(),
        observed: status.to_string(),
        ok: status == 200,
    });

    // Containment, not latency: every B activity completed (checked in
    // b_load) and B's p99 schedule-to-start under attack stays under 1 s,
    // a bound only real starvation crosses (B waiting behind A's attempts
    // of 250 ms to 1 s each, or for A's slots, for most of the run). How
    // close B's latency stays to its figure alone is measured by
    // `wharf bench isolation`, on a release build, not asserted here.
    let (p_alone, p_attacked) = (p99(&alone), p99(&attacked));
    rows.push(Row {
        case: format!("B: {n} echo at {rate}/s, p99 schedule-to-start"),
        expected: "≤ 1000 ms".into(),
        observed: format!(
            "{p_attacked} ms (alone {p_alone} ms, max {} ms)",
            attacked.iter().max().unwrap_or(&0)
        ),
        ok: p_attacked <= 1000,
    });

    let top = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len().saturating_sub(5)..].to_vec()
    };
    println!(
        "attack ran {:.1} s; B's slowest schedule-to-start (ms): alone {:?}, attacked {:?}",
        t_attack.elapsed().as_secs_f64(),
        top(&alone),
        top(&attacked)
    );
    println!(
        "{:<58} | {:<34} | {:<72} | ok",
        "case", "expected", "observed"
    );
    for r in &rows {
        println!(
            "{:<58} | {:<34} | {:<72} | {}",
            r.case,
            r.expected,
            r.observed,
            if r.ok { "ok" } else { "FAIL" }
        );
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.case.as_str())
        .collect();
    assert!(failed.is_empty(), "not contained: {failed:?}");
}

/// With two host slots, tenant A's 40 queued 250 ms sleeps (a 5 s drain)
/// hold tenant B's one activity back by at most one turn of the slots: the
/// next free slot goes to B, since namespaces take turns.
#[test]
fn a_backlog_in_one_namespace_waits_its_turn_behind_another() {
    let (s, _d) = auth_server(&["--max-running", "2"]);
    let admin = As::new(&s, ADMIN);
    let a = As::new(&s, &new_tenant(&admin, "a", json!({})));
    let b = As::new(&s, &new_tenant(&admin, "b", json!({})));
    a.install("a", "q", "adversary");
    b.install("b", "q", "adversary");
    for i in 0..40 {
        let (status, e) = a.post(
            "/a/activities",
            json!({"activity_id": format!("s{i}"), "activity_type": "sleep", "task_queue": "q",
                   "input": [{"ms": 250}], "start_to_close_timeout": "30s"}),
        );
        assert_eq!(status, 201, "{e}");
    }
    // A's backlog takes both slots first.
    wait_for(|| {
        let (_, started) = a.get("/a/activities?state=started");
        (started["activities"].as_array()?.len() >= 2).then_some(())
    });
    let (status, e) = b.post(
        "/b/activities",
        json!({"activity_id": "one", "activity_type": "echo", "task_queue": "q",
               "input": [1], "start_to_close_timeout": "10s"}),
    );
    assert_eq!(status, 201, "{e}");
    let (_, r) = b.get("/b/activities/one/result?wait=30s");
    assert_eq!(r["state"], "completed", "{r}");
    let (_, d) = b.get("/b/activities/one");
    let scheduled = d["scheduled_ms"].as_u64().unwrap();
    let started = d["attempts"][0]["started_ms"].as_u64().unwrap();

    // A's attempts that started while B waited: at most one per slot. A
    // slot handed to A just before B was scheduled can show a start after
    // it (a start is recorded once the attempt has its slot, and on a
    // loaded machine that comes later), and the next free slot still goes
    // to A when A's turn is ahead of B's. Without turns, B would wait out
    // A's drain and see up to 38 start.
    let a_starts: Vec<u64> = (0..40)
        .filter_map(|i| {
            let (_, d) = a.get(&format!("/a/activities/s{i}"));
            d["attempts"][0]["started_ms"].as_u64()
        })
        .collect();
    let overtook = a_starts
        .iter()
        .filter(|&&t| t > scheduled && t < started)
        .count();
    let drain_ms = 40 * 250 / 2;
    println!(
        "B's schedule-to-start {} ms with A's {drain_ms} ms backlog; A attempts started meanwhile: {overtook}",
        started - scheduled
    );
    // Without turns B would wait for A's whole 5 s drain; one turn is
    // 250 ms. The bound sits far from both so that only a broken turn
    // order crosses it on a loaded machine.
    assert!(
        started - scheduled <= 2_500,
        "B waited {} ms, half of A's {drain_ms} ms drain",
        started - scheduled
    );
    assert!(
        overtook <= 2,
        "{overtook} of A's attempts started while B waited, more than one per slot"
    );
}
