//! Flow control through the real server: queue-wide rate limits, pause and
//! resume, priorities, concurrency limits, fairness keys, versioned
//! deployments.

mod common;

use common::{wait_for, Server};
use serde_json::{json, Value};
use std::time::Duration;

fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Server::start(dir.path(), &[]), dir)
}

fn echo(s: &Server, id: &str, extra: Value) {
    let mut body = json!({
        "activity_id": id, "activity_type": "echo", "task_queue": "q",
        "input": [id], "start_to_close_timeout": "10s"
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.start_activity(body);
}

fn started_ms(s: &Server, id: &str) -> u64 {
    let a = s.wait_closed(id, Duration::from_secs(60));
    assert_eq!(a["state"], "completed", "{a}");
    a["attempts"][0]["started_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{a}"))
}

#[test]
fn a_queue_rate_limit_spaces_dispatch() {
    let (s, _d) = server();
    s.deploy_example("adversary", "q", 50);
    let (status, r) = s.put("task-queues/q", &json!({"rate": 20.0, "burst": 5.0}));
    assert_eq!(status, 200, "{r}");
    let n = 45;
    for i in 0..n {
        echo(&s, &format!("r{i}"), json!({}));
    }
    let starts: Vec<u64> = (0..n).map(|i| started_ms(&s, &format!("r{i}"))).collect();
    let span = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    // (45 - 5 burst) / 20 per second = 2 s at least; without a limit
    // they would all start within a few ms. The upper bound only catches a
    // limit far slower than asked (scheduling delay on a loaded machine).
    assert!((1950..8000).contains(&span), "dispatched over {span} ms");
    let (_, q) = s.get("task-queues/q");
    assert_eq!(q["rate_limit"]["rate"], 20.0);
    assert_eq!(q["rate_limit"]["set_by"], "admin");
}

#[test]
fn pausing_stops_dispatch_and_resuming_drains_the_backlog_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("adversary", "q", 10);
    assert_eq!(s.put("task-queues/q", &json!({"rate": 0})).0, 200);
    for i in 0..5 {
        echo(&s, &format!("p{i}"), json!({}));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (_, q) = s.get("task-queues/q");
    assert_eq!(q["backlog"], 5, "{q}");
    assert_eq!(s.get("activities/p0").1["state"], "scheduled");
    s.kill();

    // The pause is persisted.
    let s = Server::start(dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(300));
    let (_, q) = s.get("task-queues/q");
    assert_eq!(q["rate_limit"]["rate"], 0.0, "{q}");
    assert_eq!(q["backlog"], 5, "{q}");
    assert_eq!(s.put("task-queues/q", &json!({"rate": null})).0, 200);
    for i in 0..5 {
        started_ms(&s, &format!("p{i}"));
    }
}

#[test]
fn a_priority_1_activity_goes_before_a_thousand_priority_5_ones() {
    let (s, _d) = server();
    s.deploy_example("adversary", "q", 1);
    assert_eq!(s.put("task-queues/q", &json!({"rate": 0})).0, 200);
    for i in 0..1000 {
        echo(&s, &format!("low{i}"), json!({"priority": 5}));
    }
    echo(&s, "urgent", json!({"priority": 1}));
    let (_, q) = s.get("task-queues/q");
    let by_priority: Vec<(u64, u64)> = q["backlog_by_priority"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["priority"].as_u64().unwrap(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_priority, [(1, 1), (5, 1000)]);
    assert_eq!(s.put("task-queues/q", &json!({"rate": null})).0, 200);
    let urgent = started_ms(&s, "urgent");
    let first_low = started_ms(&s, "low0");
    assert!(
        urgent <= first_low,
        "urgent started at {urgent}, low0 at {first_low}"
    );
    let (_, d) = s.get("activities/urgent");
    assert_eq!(d["options"]["priority"], 1);
}

#[test]
fn priorities_outside_1_to_5_are_refused() {
    let (s, _d) = server();
    let (status, e) = s.post(
        "activities",
        &json!({"activity_type": "echo", "task_queue": "q", "priority": 9, "start_to_close_timeout": "1s"}),
    );
    assert_eq!(status, 400, "{e}");
}

/// Starts `sleep` activities and returns, once all completed, the spans the
/// guests themselves saw, keyed by activity id.
fn sleepers(s: &Server, ids: &[String], ms: u64, extra: Value) -> Vec<(u64, u64)> {
    for id in ids {
        let mut body = json!({
            "activity_id": id, "activity_type": "sleep", "task_queue": "q",
            "input": [{"ms": ms}], "start_to_close_timeout": "30s"
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        s.start_activity(body);
    }
    ids.iter()
        .map(|id| {
            let a = s.wait_closed(id, Duration::from_secs(60));
            assert_eq!(a["state"], "completed", "{a}");
            let r = &a["result"];
            (
                r["started_ms"].as_u64().unwrap(),
                r["ended_ms"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Most spans open at any instant (an end at the same ms as a start does
/// not overlap it).
fn max_overlap(spans: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i32)> = spans
        .iter()
        .flat_map(|(a, b)| [(*a, 1), (*b, -1)])
        .collect();
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn a_type_concurrency_limit_never_has_more_than_k_running_and_others_pass() {
    let (s, _d) = server();
    s.deploy_example("adversary", "q", 20);
    let (status, r) = s.put(
        "concurrency-limits",
        &json!({"key": "type:sleep", "max_concurrent": 3}),
    );
    assert_eq!(status, 200, "{r}");
    let sleeps = ids("s", 12);
    let s2 = &s;
    let spans = std::thread::scope(|scope| {
        let h = scope.spawn(|| sleepers(s2, &sleeps, 300, json!({})));
        // While the sleeps queue behind their limit, other types run.
        wait_for(|| {
            let (_, limits) = s2.get("concurrency-limits");
            let l = &limits["limits"][0];
            (l["running"] == 3 && l["waiting"].as_u64()? >= 1).then_some(())
        });
        let (_, limits) = s2.get("concurrency-limits");
        let l = &limits["limits"][0];
        assert_eq!(l["key"], "type:sleep", "{limits}");
        assert_eq!(l["running"], 3, "{limits}");
        assert!(l["waiting"].as_u64().unwrap() >= 1, "{limits}");
        let (_, q) = s2.get("task-queues/q");
        assert!(q["waiting_on_limits"].as_u64().unwrap() >= 1, "{q}");
        assert_eq!(q["concurrency_limits"][0]["key"], "type:sleep", "{q}");
        let t0 = std::time::Instant::now();
        echo(s2, "other", json!({}));
        s2.wait_closed("other", Duration::from_secs(10));
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "echo waited {:?} behind the limited sleeps",
            t0.elapsed()
        );
        h.join().unwrap()
    });
    assert_eq!(max_overlap(&spans), 3, "{spans:?}");

    // Cleared, the same load runs wider.
    let (status, _) = s.put(
        "concurrency-limits",
        &json!({"key": "type:sleep", "max_concurrent": null}),
    );
    assert_eq!(status, 200);
    let spans = sleepers(&s, &ids("t", 8), 300, json!({}));
    assert!(max_overlap(&spans) > 3, "{spans:?}");
    assert_eq!(s.get("concurrency-limits").1["limits"], json!([]));
}

#[test]
fn a_key_limit_holds_one_key_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("adversary", "q", 20);
    let (status, _) = s.put(
        "concurrency-limits",
        &json!({"key": "key:customer-1", "max_concurrent": 1}),
    );
    assert_eq!(status, 200);
    s.kill();
    let s = Server::start(dir.path(), &[]);
    let s2 = &s;
    let (one, two) = std::thread::scope(|scope| {
        let one = scope.spawn(|| {
            sleepers(
                s2,
                &ids("c1-", 4),
                200,
                json!({"concurrency_key": "customer-1"}),
            )
        });
        let two = scope.spawn(|| {
            sleepers(
                s2,
                &ids("c2-", 4),
                200,
                json!({"concurrency_key": "customer-2"}),
            )
        });
        (one.join().unwrap(), two.join().unwrap())
    });
    assert_eq!(max_overlap(&one), 1, "customer-1 ran together: {one:?}");
    assert!(max_overlap(&two) > 1, "customer-2 was held: {two:?}");

    for bad in [
        json!({"key": "sleep", "max_concurrent": 1}),
        json!({"key": "type:sleep", "max_concurrent": 0}),
    ] {
        let (status, e) = s.put("concurrency-limits", &bad);
        assert_eq!(status, 400, "{bad} -> {e}");
    }
}

#[test]
fn fairness_keys_with_weights_1_to_3_share_the_queue_1_to_3() {
    let (s, _d) = server();
    s.deploy_example("adversary", "q", 1);
    assert_eq!(s.put("task-queues/q", &json!({"rate": 0})).0, 200);
    // Key a's whole burst arrives first; b's weight still wins it 3 of 4.
    for i in 0..120 {
        echo(
            &s,
            &format!("a{i}"),
            json!({"fairness_key": "a", "fairness_weight": 1.0}),
        );
    }
    for i in 0..120 {
        echo(
            &s,
            &format!("b{i}"),
            json!({"fairness_key": "b", "fairness_weight": 3.0}),
        );
    }
    let (_, q) = s.get("task-queues/q");
    let keys = &q["backlog_by_priority"][0]["fairness_keys"];
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{q}");
    let next: Vec<&str> = q["next_activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(next.len(), 10, "{q}");
    assert_eq!(s.put("task-queues/q", &json!({"rate": null})).0, 200);
    let mut starts: Vec<(u64, String)> = (0..120)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .map(|id| (started_ms(&s, &id), id))
        .collect();
    starts.sort();
    let first: Vec<&str> = starts[..80].iter().map(|(_, id)| id.as_str()).collect();
    let a = first.iter().filter(|id| id.starts_with('a')).count();
    assert!(
        (14..=26).contains(&a),
        "key a got {a} of the first 80: {first:?}"
    );
    // The describe output predicted the order (start times tie within a ms).
    let when: std::collections::HashMap<&str, u64> =
        starts.iter().map(|(t, id)| (id.as_str(), *t)).collect();
    let times: Vec<u64> = next.iter().map(|id| when[id]).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{next:?} started at {times:?}"
    );
    assert!(
        times[9] <= starts[10].0,
        "{next:?} were not the first ten: {starts:?}"
    );
}

/// The component with a custom section appended: the same behaviour, other
/// bytes, so an upload makes a new version.
fn variant_of(module: &std::path::Path, tag: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(module).unwrap();
    let name = b"wharf-test-variant";
    let payload_len = 1 + name.len() + tag.len();
    assert!(payload_len < 128);
    bytes.extend([0u8, payload_len as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(tag.as_bytes());
    let out = dir.join(format!("variant-{tag}.wasm"));
    std::fs::write(&out, bytes).unwrap();
    out
}

fn module_of(s: &Server, id: &str) -> String {
    let a = s.wait_closed(id, Duration::from_secs(60));
    assert_eq!(a["state"], "completed", "{a}");
    a["attempts"][0]["module"].as_str().unwrap().to_owned()
}

#[test]
fn a_rollout_keeps_running_attempts_on_their_version_and_rollback_restores() {
    let (s, d) = server();
    let adversary = common::rust_example("adversary");
    assert_eq!(s.upload("svc", &adversary)["module"]["version"], 1);
    s.deploy("svc", "q", 10);
    let start_sleep = |id: &str| {
        s.start_activity(json!({
            "activity_id": id, "activity_type": "sleep", "task_queue": "q",
            "input": [{"ms": 1500}], "start_to_close_timeout": "30s"
        }))
    };
    start_sleep("long");
    s.wait_until("long", |a| a["state"] == "started");

    let v2 = variant_of(&adversary, "v2", d.path());
    assert_eq!(s.upload("svc", &v2)["module"]["version"], 2);
    let (status, r) = s.put(
        "task-queues/q/deployment",
        &json!({"module": "svc", "version": 2}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["deployment"]["max_concurrent"], 10, "slots kept: {r}");
    echo(&s, "after", json!({}));
    assert_eq!(module_of(&s, "after"), "svc@2");
    assert_eq!(
        module_of(&s, "long"),
        "svc@1",
        "the running attempt finished on v1"
    );

    // One command back to v1.
    let (status, r) = s.post("task-queues/q/rollback", &json!({}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["deployment"]["module_version"], 1, "{r}");
    echo(&s, "rolled-back", json!({}));
    assert_eq!(module_of(&s, "rolled-back"), "svc@1");
    assert_eq!(s.get("task-queues/q").1["deployment"], "svc@1");

    // A 50% rollout of v2 splits new activities between the versions.
    let (status, r) = s.put(
        "task-queues/q/deployment",
        &json!({"module": "svc", "version": 2, "ramp_percent": 50}),
    );
    assert_eq!(status, 200, "{r}");
    let (_, q) = s.get("task-queues/q");
    assert_eq!(
        q["rollout"],
        json!({"module": "svc@2", "percent": 50}),
        "{q}"
    );
    for i in 0..60 {
        echo(&s, &format!("ramp{i}"), json!({}));
    }
    let on_v2 = (0..60)
        .filter(|i| module_of(&s, &format!("ramp{i}")) == "svc@2")
        .count();
    assert!((12..=48).contains(&on_v2), "{on_v2} of 60 ran v2");

    // Rolling back ends the rollout.
    assert_eq!(s.post("task-queues/q/rollback", &json!({})).0, 200);
    let (_, q) = s.get("task-queues/q");
    assert!(q.get("rollout").is_none(), "{q}");
    assert_eq!(q["deployment"], "svc@1");
    // Back past the first deployment there is nothing: a clear refusal.
    assert_eq!(s.post("task-queues/q/rollback", &json!({})).0, 409);
}

#[test]
fn an_activity_routed_to_the_process_queue_reads_the_cache_its_predecessor_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("dataset", "data", 4);
    let start = |id: &str, queue: &str, ty: &str, input: Value| {
        s.start_activity(json!({
            "activity_id": id, "activity_type": ty, "task_queue": queue,
            "input": [input], "start_to_close_timeout": "30s",
            "schedule_to_start_timeout": "2s"
        }))
    };
    start("load", "data", "load", json!({"limit": 2_000_000}));
    let loaded = s.wait_closed("load", Duration::from_secs(30));
    assert_eq!(loaded["state"], "completed", "{loaded}");
    assert_eq!(loaded["result"]["primes"], 148_933, "{loaded}");
    let own = loaded["result"]["worker_task_queue"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(own.starts_with("wharf-worker-"), "{own}");

    start(
        "q1",
        &own,
        "query",
        json!({"limit": 2_000_000, "n": 1_999_993}),
    );
    let q1 = s.wait_closed("q1", Duration::from_secs(30));
    assert_eq!(q1["state"], "completed", "{q1}");
    assert_eq!(
        q1["result"],
        json!({"n": 1_999_993, "is_prime": true, "cache_hit": true})
    );
    assert_eq!(q1["task_queue"], own.as_str());
    assert_eq!(q1["attempts"][0]["module"], "dataset@1");

    // The process queue runs only types some deployment exports.
    start("nope", &own, "no-such-type", json!({}));
    let nope = s.wait_closed("nope", Duration::from_secs(30));
    assert_eq!(
        nope["last_failure"]["type"], "UnknownActivityType",
        "{nope}"
    );
    let (status, e) = s.put(
        &format!("task-queues/{own}/deployment"),
        &json!({"module": "dataset"}),
    );
    assert_eq!(status, 400, "deploying to the process queue: {e}");
    let (_, q) = s.get(&format!("task-queues/{own}"));
    assert!(q["completed_per_second"].as_f64().unwrap() > 0.0, "{q}");
    assert!(q["failed_per_second"].as_f64().unwrap() > 0.0, "{q}");

    // A restarted process has a new queue and an empty cache; a task routed
    // to the old one is never run by it and times out for the caller.
    s.kill();
    let s = Server::start(dir.path(), &[]);
    s.start_activity(json!({
        "activity_id": "stale", "activity_type": "query", "task_queue": own,
        "input": [{"limit": 2_000_000, "n": 7}], "start_to_close_timeout": "30s",
        "schedule_to_start_timeout": "1s"
    }));
    let stale = s.wait_closed("stale", Duration::from_secs(30));
    assert_eq!(stale["state"], "timed_out", "{stale}");
    s.start_activity(json!({
        "activity_id": "cold", "activity_type": "query", "task_queue": "data",
        "input": [{"limit": 2_000_000, "n": 7}], "start_to_close_timeout": "30s"
    }));
    let cold = s.wait_closed("cold", Duration::from_secs(30));
    assert_eq!(cold["result"]["cache_hit"], false, "{cold}");
    let log = cold["attempts"][0]["log_tail"].as_str().unwrap_or("");
    assert!(log.contains("cache miss"), "{cold}");
}
