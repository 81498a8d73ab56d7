//! `wharf serve` end to end: the real binary over HTTP, real components, each
//! of Temporal's activity semantics in its own test.

mod common;

use common::{attempt_gaps, wait_for, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn server(args: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Server::start(dir.path(), args), dir)
}

fn within(gap: u64, expected: u64, slack: u64) -> bool {
    gap + 20 >= expected && gap <= expected + slack
}

#[test]
fn retries_back_off_exponentially_up_to_the_maximum_interval() {
    let (s, _d) = server(&[]);
    s.deploy_example("flaky", "q", 10);
    s.start_activity(json!({
        "activity_id": "backoff", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 5}], "start_to_close_timeout": "5s",
        "retry_policy": {"initial_interval": "200ms", "backoff_coefficient": 2.0, "maximum_interval": "500ms"}
    }));
    let a = s.wait_closed("backoff", Duration::from_secs(20));
    assert_eq!(a["state"], "completed", "{a}");
    assert_eq!(a["result"], json!({"attempt": 5}));
    let gaps = attempt_gaps(&a);
    // 200 ms, 400 ms, then capped at 500 ms. Never earlier than the
    // policy says; later only by scheduling delay, and the last gap stays
    // far below the 1 600 ms an uncapped backoff would wait.
    let expected = [200, 400, 500, 500];
    assert_eq!(gaps.len(), 4, "{gaps:?}");
    for (g, e) in gaps.iter().zip(expected) {
        assert!(within(*g, e, 1000), "gaps {gaps:?}, expected {expected:?}");
    }
    let outcomes: Vec<&str> = a["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["failed", "failed", "failed", "failed", "completed"]
    );
}

#[test]
fn a_non_retryable_error_ends_the_activity_at_once() {
    // The API and the scheduler on one thread, as `--control-threads` allows.
    let (s, _d) = server(&["--control-threads", "1"]);
    s.deploy_example("flaky", "q", 10);
    s.start_activity(json!({
        "activity_id": "rej", "activity_type": "reject", "task_queue": "q",
        "input": [{"reason": "no stock"}], "start_to_close_timeout": "5s"
    }));
    let a = s.wait_closed("rej", Duration::from_secs(10));
    assert_eq!(a["state"], "failed");
    assert_eq!(a["attempt"], 1);
    assert_eq!(a["last_failure"]["type"], "InvalidOrder");
    assert_eq!(a["last_failure"]["non_retryable"], true);
    assert_eq!(a["last_failure"]["message"], "order rejected: no stock");
}

#[test]
fn non_retryable_error_types_of_the_policy_are_not_retried() {
    let (s, _d) = server(&[]);
    s.deploy_example("flaky", "q", 10);
    let policy = json!({"initial_interval": "50ms", "maximum_attempts": 3, "non_retryable_error_types": ["Fatal"]});
    for (id, ty) in [("fatal", "Fatal"), ("transient", "Transient")] {
        s.start_activity(json!({
            "activity_id": id, "activity_type": "fail-typed", "task_queue": "q",
            "input": [{"error_type": ty}], "start_to_close_timeout": "5s", "retry_policy": policy
        }));
    }
    let fatal = s.wait_closed("fatal", Duration::from_secs(10));
    assert_eq!(
        (fatal["state"].as_str(), fatal["attempt"].as_u64()),
        (Some("failed"), Some(1)),
        "{fatal}"
    );
    let transient = s.wait_closed("transient", Duration::from_secs(10));
    // Retried until maximum_attempts.
    assert_eq!(
        (transient["state"].as_str(), transient["attempt"].as_u64()),
        (Some("failed"), Some(3)),
        "{transient}"
    );
    assert_eq!(transient["last_failure"]["type"], "Transient");
}

#[test]
fn next_retry_delay_from_the_error_overrides_the_policy() {
    let (s, _d) = server(&[]);
    s.deploy_example("flaky", "q", 10);
    s.start_activity(json!({
        "activity_id": "nrd", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 2, "retry_delay_ms": 700}], "start_to_close_timeout": "5s",
        "retry_policy": {"initial_interval": "10ms"}
    }));
    let a = s.wait_closed("nrd", Duration::from_secs(10));
    assert_eq!(a["state"], "completed");
    let gaps = attempt_gaps(&a);
    // The policy alone would wait 10 ms.
    assert!(within(gaps[0], 700, 2000), "{gaps:?}");
}

#[test]
fn schedule_to_start_times_out_without_a_deployment_then_deploying_runs_the_backlog() {
    let (s, _d) = server(&[]);
    s.upload("greet", &common::rust_example("greet"));
    s.start_activity(json!({
        "activity_id": "stranded", "activity_type": "greet", "task_queue": "nobody",
        "input": ["x"], "start_to_close_timeout": "5s", "schedule_to_start_timeout": "300ms"
    }));
    s.start_activity(json!({
        "activity_id": "patient", "activity_type": "greet", "task_queue": "later",
        "input": ["Cy"], "start_to_close_timeout": "5s"
    }));
    let t = Instant::now();
    let a = s.wait_closed("stranded", Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(a["state"], "timed_out");
    assert_eq!(a["last_failure"]["type"], "ScheduleToStartTimeout");
    assert_eq!(a["attempts"], json!([]));

    let (_, q) = s.get("task-queues/later");
    assert_eq!(q["backlog"], 1, "{q}");
    assert_eq!(q["deployment"], Value::Null);
    let (status, _) = s.put("task-queues/later/deployment", &json!({"module": "greet"}));
    assert_eq!(status, 200);
    let b = s.wait_closed("patient", Duration::from_secs(10));
    assert_eq!(b["state"], "completed");
    assert_eq!(b["result"], "Hello, Cy!");
}

#[test]
fn a_looping_guest_is_stopped_at_start_to_close_and_retried() {
    let (s, _d) = server(&[]);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "spin", "activity_type": "loop", "task_queue": "q",
        "start_to_close_timeout": "500ms",
        "retry_policy": {"initial_interval": "100ms", "maximum_attempts": 2}
    }));
    let a = s.wait_closed("spin", Duration::from_secs(10));
    assert_eq!(a["state"], "timed_out", "{a}");
    assert_eq!(a["last_failure"]["type"], "StartToCloseTimeout");
    let attempts = a["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    for at in attempts {
        assert_eq!(at["outcome"], "timed_out");
        let took = at["ended_ms"].as_u64().unwrap() - at["started_ms"].as_u64().unwrap();
        // Stopped at its 500 ms deadline, not at the end of a 10 s wait.
        assert!((480..3000).contains(&took), "attempt took {took} ms");
    }
    // The server is still serving.
    let (status, _) = s.get("task-queues/q");
    assert_eq!(status, 200);
}

#[test]
fn a_silent_attempt_times_out_by_heartbeat_timeout() {
    let (s, _d) = server(&[]);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "quiet", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 5000}], "start_to_close_timeout": "10s", "heartbeat_timeout": "300ms",
        "retry_policy": {"maximum_attempts": 1}
    }));
    let t = Instant::now();
    let a = s.wait_closed("quiet", Duration::from_secs(10));
    // Timed out after 300 ms of silence, long before the 5 s sleep ends.
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(a["state"], "timed_out", "{a}");
    assert_eq!(a["last_failure"]["type"], "HeartbeatTimeout");
}

#[test]
fn wordcount_resumes_from_the_heartbeat_of_a_failed_attempt() {
    let (s, _d) = server(&[]);
    s.deploy_example("wordcount", "q", 10);
    s.start_activity(json!({
        "activity_id": "wc", "activity_type": "wordcount", "task_queue": "q",
        "input": [{"items": ["a b", "c d e", "f", "g h i j"], "fail_at": 2}],
        "start_to_close_timeout": "5s", "retry_policy": {"initial_interval": "50ms"}
    }));
    let a = s.wait_closed("wc", Duration::from_secs(10));
    assert_eq!(a["state"], "completed", "{a}");
    // Items 0 and 1 are not counted again.
    assert_eq!(
        a["result"],
        json!({"words": 10, "items": 4, "resumed_from": 2, "processed": 2})
    );
    let attempts = a["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["failure_type"], "SimulatedCrash");
    assert_eq!(
        attempts[0]["heartbeat_details"],
        json!([{"next": 2, "words": 5}])
    );
}

#[test]
fn cancelling_a_heartbeating_activity_ends_it_cancelled() {
    let (s, _d) = server(&[]);
    s.deploy_example("wordcount", "q", 10);
    let items: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    s.start_activity(json!({
        "activity_id": "long", "activity_type": "wordcount", "task_queue": "q",
        "input": [{"items": items, "step_ms": 50}], "start_to_close_timeout": "30s"
    }));
    // Cancelled once it has made progress it reports by heartbeat.
    s.wait_until("long", |a| {
        a["heartbeat_details"][0]["next"]
            .as_u64()
            .is_some_and(|n| n >= 3)
    });
    let (status, c) = s.post("activities/long/cancel", &json!({}));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["cancel_requested"], true);
    let a = s.wait_closed("long", Duration::from_secs(10));
    assert_eq!(a["state"], "cancelled", "{a}");
    assert_eq!(a["attempts"][0]["outcome"], "cancelled");
    let next = a["heartbeat_details"][0]["next"].as_u64().unwrap();
    assert!((3..100).contains(&next), "{next}");
    // Cancelling again is refused: it is closed.
    let (status, _) = s.post("activities/long/cancel", &json!({}));
    assert_eq!(status, 409);
}

#[test]
fn an_attempt_ignoring_cancellation_is_stopped_after_the_grace_period() {
    let (s, _d) = server(&["--cancel-grace", "300ms"]);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "stubborn", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 10000, "heartbeat_every_ms": 50, "ignore_cancel": true}],
        "start_to_close_timeout": "30s"
    }));
    s.wait_until("stubborn", |a| a["state"] == "started");
    let t = Instant::now();
    s.post("activities/stubborn/cancel", &json!({}));
    let a = s.wait_closed("stubborn", Duration::from_secs(10));
    // Stopped after the 300 ms grace period, long before its 10 s sleep ends.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(a["state"], "cancelled");
}

#[test]
fn async_completion_by_token_and_by_id_and_stale_tokens_are_rejected() {
    let (s, _d) = server(&[]);
    s.deploy_example("adversary", "q", 10);
    for id in ["by-token", "by-id"] {
        s.start_activity(json!({
            "activity_id": id, "activity_type": "async-complete", "task_queue": "q",
            "start_to_close_timeout": "30s"
        }));
    }
    let token = wait_for(|| {
        let (_, a) = s.get("activities/by-token");
        let log = a["attempts"][0]["log_tail"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        log.lines()
            .find_map(|l| l.strip_prefix("task-token: ").map(str::to_owned))
    });
    let (_, a) = s.get("activities/by-token");
    assert_eq!(a["state"], "started");
    assert_eq!(a["awaiting_async"], true);

    let (status, hb) = s.post(
        "activities/heartbeat",
        &json!({"task_token": token, "details": [{"progress": 1}]}),
    );
    assert_eq!(
        (status, &hb["cancel_requested"]),
        (200, &json!(false)),
        "{hb}"
    );
    let (status, done) = s.post(
        "activities/complete",
        &json!({"task_token": token, "result": {"ok": true}}),
    );
    assert_eq!(status, 200, "{done}");
    let a = s.wait_closed("by-token", Duration::from_secs(5));
    assert_eq!(a["state"], "completed");
    assert_eq!(a["result"], json!({"ok": true}));
    assert_eq!(a["heartbeat_details"], json!([{"progress": 1}]));

    // The token was for that attempt only.
    let (status, err) = s.post(
        "activities/complete",
        &json!({"task_token": token, "result": 1}),
    );
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["code"], "not_found");

    wait_for(|| (s.get("activities/by-id").1["awaiting_async"] == json!(true)).then_some(()));
    let (status, _) = s.post(
        "activities/fail",
        &json!({"activity_id": "by-id", "error": {"message": "upstream refused", "type": "Upstream", "non_retryable": true}}),
    );
    assert_eq!(status, 200);
    let b = s.wait_closed("by-id", Duration::from_secs(5));
    assert_eq!(b["state"], "failed");
    assert_eq!(b["last_failure"]["type"], "Upstream");
}

#[test]
fn starting_the_same_id_twice_returns_the_existing_run() {
    let (s, _d) = server(&[]);
    s.deploy_example("greet", "q", 10);
    let body = json!({
        "activity_id": "once", "activity_type": "greet", "task_queue": "q",
        "input": ["Di"], "start_to_close_timeout": "5s"
    });
    let (first, a) = s.post("activities", &body);
    let (second, b) = s.post("activities", &body);
    assert_eq!(first, 201);
    assert!(
        second == 200 && b["created"] == json!(false),
        "{second} {b}"
    );
    assert_eq!(a["activity"]["run_id"], b["activity"]["run_id"]);
    let done = s.wait_closed("once", Duration::from_secs(5));
    let (third, c) = s.post("activities", &body);
    assert_eq!(third, 200);
    assert_eq!(c["activity"]["run_id"], done["run_id"]);
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_requests_get_clear_errors() {
    let (s, _d) = server(&["--payload-limit", "1MiB"]);
    s.deploy_example("greet", "q", 10);
    let big = "x".repeat(1 << 21);
    let (status, e) = s.post("activities", &json!({
        "activity_type": "greet", "task_queue": "q", "input": [big], "start_to_close_timeout": "5s"
    }));
    assert_eq!(status, 413, "{e}");
    assert_eq!(e["error"]["code"], "payload_too_large");

    let (status, e) = s.post(
        "activities",
        &json!({"activity_type": "greet", "task_queue": "q", "input": ["x"]}),
    );
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start_to_close_timeout"),
        "{e}"
    );

    let (status, e) = s.post(
        "activities",
        &json!({
            "activity_type": "greet", "task_queue": "q", "start_to_close": "5s"
        }),
    );
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{e}"
    );

    let (status, _) = s.send(
        reqwest::blocking::Client::new()
            .post(s.url("activities"))
            .body("{not json"),
    );
    assert_eq!(status, 400);

    let (status, e) = s.send(
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/namespaces/nope/activities/x", s.base)),
    );
    assert_eq!(status, 404);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("namespace \"nope\" not found"));

    let (status, _) = s.get("activities/never-started");
    assert_eq!(status, 404);

    let (status, e) = s.send(
        reqwest::blocking::Client::new()
            .post(s.url("modules?name=junk"))
            .body(b"garbage".to_vec()),
    );
    assert_eq!(status, 422, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a WebAssembly component"));
}

#[test]
fn an_activity_type_the_module_lacks_fails_non_retryably() {
    let (s, _d) = server(&[]);
    s.deploy_example("greet", "q", 10);
    s.start_activity(json!({
        "activity_id": "typo", "activity_type": "gret", "task_queue": "q", "start_to_close_timeout": "5s"
    }));
    let a = s.wait_closed("typo", Duration::from_secs(5));
    assert_eq!(a["state"], "failed");
    assert_eq!(a["last_failure"]["type"], "UnknownActivityType");
    assert!(a["last_failure"]["message"]
        .as_str()
        .unwrap()
        .contains("it exports: greet"));
}

#[test]
fn kill_9_mid_run_loses_nothing_and_completes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("adversary", "q", 50);
    let n = 300;
    for i in 0..n {
        s.start_activity(json!({
            "activity_id": format!("k{i}"), "activity_type": "sleep", "task_queue": "q",
            "input": [{"ms": 100}], "start_to_close_timeout": "10s",
            "retry_policy": {"initial_interval": "50ms"}
        }));
    }
    // Killed once the first have completed, with others running.
    wait_for(|| {
        let (_, done) = s.get("activities?state=completed&limit=1");
        (!done["activities"].as_array()?.is_empty()).then_some(())
    });
    s.kill();

    let s = Server::start(dir.path(), &[]);
    for i in 0..n {
        let a = s.wait_closed(&format!("k{i}"), Duration::from_secs(60));
        assert_eq!(a["state"], "completed", "{a}");
        let completed = a["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["outcome"] == "completed")
            .count();
        assert_eq!(completed, 1, "k{i} completed {completed} times: {a}");
    }
    let (_, list) = s.get("activities?limit=1000");
    assert_eq!(list["activities"].as_array().unwrap().len(), n);
    let (_, lost) = s.get("activities?state=completed&limit=1000");
    assert_eq!(lost["activities"].as_array().unwrap().len(), n);
}

/// An attempt that ran when the process died is recorded as lost and the
/// run goes on with its next attempt: its start was written once it had
/// run for a moment (shown as `started` by the list, which reads SQLite),
/// and the restart finds it so.
#[test]
fn an_attempt_running_at_a_kill_9_is_recorded_as_lost_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "long", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 2000}], "start_to_close_timeout": "30s",
        "retry_policy": {"initial_interval": "10ms"}
    }));
    wait_for(|| {
        let (_, started) = s.get("activities?state=started");
        (started["activities"].as_array()?.len() == 1).then_some(())
    });
    s.kill();

    let s = Server::start(dir.path(), &[]);
    let a = s.wait_closed("long", Duration::from_secs(60));
    assert_eq!(a["state"], "completed", "{a}");
    assert_eq!(a["attempt"], 2, "{a}");
    assert_eq!(a["attempts"][0]["outcome"], "worker_lost", "{a}");
    assert_eq!(a["attempts"][1]["outcome"], "completed", "{a}");
}

#[test]
fn sigterm_lets_running_attempts_finish_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["--shutdown-grace", "5s"]);
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "inflight", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 700}], "start_to_close_timeout": "10s"
    }));
    s.start_activity(json!({
        "activity_id": "waiting", "activity_type": "greet", "task_queue": "nobody",
        "input": ["x"], "start_to_close_timeout": "10s"
    }));
    s.wait_until("inflight", |a| a["state"] == "started");
    let t = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // It waited for the running attempt (about 500 ms left), not for the grace period.
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(4),
        "{took:?}"
    );
    drop(s);

    let s = Server::start(dir.path(), &[]);
    let a = s.get("activities/inflight").1;
    assert_eq!(a["state"], "completed", "{a}");
    assert_eq!(a["attempts"].as_array().unwrap().len(), 1);
    let w = s.get("activities/waiting").1;
    assert_eq!(w["state"], "scheduled", "{w}");
}

/// Dev mode has no tokens, so a web page that rebinds its own name to
/// 127.0.0.1 must not reach the API: only loopback `Host`s are answered.
#[test]
fn dev_mode_refuses_requests_addressed_to_other_hosts() {
    let (s, _d) = server(&[]);
    let http = reqwest::blocking::Client::new();
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    let get = |host: &str| {
        http.get(s.url("activities"))
            .header("Host", host)
            .send()
            .expect("request")
    };
    for host in ["rebound.example.com", &format!("attacker.test:{port}")] {
        let r = get(host);
        assert_eq!(r.status(), 403, "Host {host}");
        let e: Value = r.json().unwrap();
        assert_eq!(e["error"]["code"], "forbidden_host", "{e}");
    }
    // The public document too.
    let doc = http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .header("Host", "rebound.example.com")
        .send()
        .expect("request");
    assert_eq!(doc.status(), 403);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(get(&host).status(), 200, "Host {host}");
    }
}

#[test]
fn a_second_server_on_a_data_directory_in_use_is_refused_until_the_first_dies() {
    let (mut first, dir) = server(&[]);
    let pid = first.child.id();

    let second = common::wharf()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second server started: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {pid}")),
        "the refusal does not name the holder {pid}: {stderr}"
    );
    assert_eq!(
        first.get("activities").0,
        200,
        "the first server was disturbed"
    );

    // SIGKILL leaves the lock file behind but not the lock.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let again = Server::start(dir.path(), &[]);
    assert_eq!(again.get("activities").0, 200);
}

#[test]
fn closed_activities_past_the_namespace_retention_answer_404_as_unknown_ids_do() {
    let (s, dir) = server(&[]);
    s.deploy_example("adversary", "q", 10);

    let (status, refused) = s.send(
        reqwest::blocking::Client::new()
            .patch(format!("{}/api/v1/namespaces/default", s.base))
            .json(&json!({"quotas": {"retention": "500ms"}})),
    );
    assert_eq!(status, 400, "a retention under 1 s is refused: {refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retention"),
        "the refusal names the field: {refused}"
    );
    let text = common::cli(
        &s.base,
        &["namespace", "update", "default", "--retention", "2s"],
    );
    assert!(text.contains("retention"), "{text}");
    let text = common::cli(&s.base, &["namespace", "describe", "default"]);
    assert!(text.contains("retention") && text.contains("2s"), "{text}");
    let described: Value = serde_json::from_str(&common::cli(
        &s.base,
        &["namespace", "describe", "default", "--json"],
    ))
    .unwrap();
    assert_eq!(described["namespace"]["quotas"]["retention"], "2s");

    let (unknown_status, unknown) = s.get("activities/never-started");
    assert_eq!(unknown_status, 404);
    s.start_activity(json!({
        "activity_id": "open", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 60_000}], "start_to_close_timeout": "120s"
    }));
    for i in 0..3 {
        s.start_activity(json!({
            "activity_id": format!("done{i}"), "activity_type": "sleep", "task_queue": "q",
            "input": [{"ms": 10}], "start_to_close_timeout": "10s"
        }));
    }
    for i in 0..3 {
        let a = s.wait_closed(&format!("done{i}"), Duration::from_secs(20));
        assert_eq!(a["state"], "completed", "{a}");
    }
    let closed_at = Instant::now();
    // Retention 2 s, swept every second: 30 s is ten times what it needs.
    wait_for(|| {
        (0..3)
            .all(|i| s.get(&format!("activities/done{i}")).0 == 404)
            .then_some(())
    });
    assert!(
        closed_at.elapsed() >= Duration::from_millis(1_500),
        "deleted before its retention"
    );
    let (status, gone) = s.get("activities/done0");
    assert_eq!(status, unknown_status);
    assert_eq!(gone["error"]["code"], unknown["error"]["code"]);
    assert_eq!(
        gone["error"]["message"]
            .as_str()
            .unwrap()
            .replace("done0", "never-started"),
        unknown["error"]["message"].as_str().unwrap()
    );
    let (status, open) = s.get("activities/open");
    assert_eq!(status, 200, "{open}");
    assert_eq!(open["state"], "started", "{open}");

    // A restart after the deletion comes up with the open one, the rest stay gone.
    s.kill();
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.get("activities/open").0, 200);
    assert_eq!(s.get("activities/done1").0, 404);
}

/// Before a kill during maintenance: a closed activity with a result
/// ("kept", returned as described) and one running ("open"); the server is
/// killed.
fn kept_and_open_then_killed(s: Server) -> Value {
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "kept", "activity_type": "echo", "task_queue": "q",
        "input": ["still here"], "start_to_close_timeout": "10s"
    }));
    let kept = s.wait_closed("kept", Duration::from_secs(20));
    assert_eq!(kept["state"], "completed", "{kept}");
    assert_eq!(kept["result"], json!(["still here"]));
    s.start_activity(json!({
        "activity_id": "open", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 600_000}], "start_to_close_timeout": "900s"
    }));
    wait_for(|| (s.get("activities/open").1["state"] == "started").then_some(()));
    s.kill();
    kept
}

/// `auto_vacuum` of the data directory's database (0: none, 2: incremental).
fn auto_vacuum(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_kill_during_the_vacuum_that_converts_an_older_file_loses_nothing() {
    let (s, dir) = server(&[]);
    let kept = kept_and_open_then_killed(s);

    // A file as an older wharf made it (no auto-vacuum), large enough for
    // its one-time VACUUM to take a while: recent closed runs, kept.
    const ROWS: i64 = 250_000;
    let db = dir.path().join("wharf.db");
    {
        let mut c = rusqlite::Connection::open(&db).unwrap();
        let tx = c.transaction().unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for i in 0..ROWS {
            tx.execute(
                "INSERT INTO activities (namespace, activity_id, activity_type, task_queue, \
                 state, attempt, input, options, scheduled_ms, attempt_scheduled_ms, result, \
                 closed_ms) VALUES ('default', ?1, 'echo', 'q', 'completed', 1, '[]', '{}', \
                 ?2, ?2, ?3, ?2)",
                rusqlite::params![format!("filler{i}"), now_ms, "r".repeat(300)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
    }
    assert_eq!(auto_vacuum(&db), 0);
    let rows = || -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT COUNT(*) FROM activities", [], |r| r.get(0))
            .unwrap()
    };
    let before = rows();

    // Kill the server once it has said it converts, ever sooner after, until
    // a kill lands before the conversion is done.
    let mut landed = false;
    for delay_ms in [400u64, 200, 100, 50, 20, 0] {
        let log = dir.path().join("serve.log");
        let mut child = common::wharf()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("WHARF_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for(|| {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("converting the database")
                .then_some(())
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if auto_vacuum(&db) == 0 {
            eprintln!("killed {delay_ms} ms into the conversion");
            landed = true;
            break;
        }
        // Converted before the kill: make the file old again and try sooner.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
    }
    assert!(landed, "no kill landed during the conversion");
    assert_eq!(rows(), before, "rows after a kill during VACUUM");

    let s = Server::start(dir.path(), &[]);
    assert_eq!(auto_vacuum(&db), 2, "converted at the next start");
    let (status, open) = s.get("activities/open");
    assert_eq!(status, 200, "{open}");
    assert!(
        matches!(open["state"].as_str(), Some("started" | "scheduled")),
        "{open}"
    );
    let (status, again) = s.get("activities/kept");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["result"], kept["result"], "{again}");
    assert_eq!(s.get("activities/filler123").0, 200);
    s.kill();
    assert_eq!(rows(), before);
}

#[test]
fn a_kill_during_a_retention_sweep_loses_no_open_activity_and_no_retained_result() {
    let (s, dir) = server(&[]);
    let kept_result = kept_and_open_then_killed(s)["result"].clone();

    // Runs closed long ago, past the default 7 days: a sweep of many batches.
    const OLD: i64 = 100_000;
    let db = dir.path().join("wharf.db");
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..OLD {
        tx.execute(
            "INSERT INTO activities (namespace, activity_id, activity_type, task_queue, state, \
             attempt, input, options, scheduled_ms, attempt_scheduled_ms, result, closed_ms) \
             VALUES ('default', ?1, 'echo', 'q', 'completed', 1, '[]', '{}', 0, 0, '{}', 1000)",
            [format!("old{i}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    let old_left = || -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row(
            "SELECT COUNT(*) FROM activities WHERE activity_id LIKE 'old%'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };

    // The first sweep starts a second after the start; kill ever later
    // until one kill lands while it deletes.
    let mut seen = Vec::new();
    for delay_ms in (800..=4_000).step_by(100) {
        let s = Server::start(dir.path(), &[]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill();
        seen.push(old_left());
        if seen.last() < Some(&OLD) {
            break;
        }
    }
    eprintln!("old runs left after each kill: {seen:?}");
    assert!(
        seen.iter().any(|&n| n > 0 && n < OLD),
        "no kill landed during the sweep: {seen:?}"
    );

    let s = Server::start(dir.path(), &[]);
    wait_for(|| (old_left() == 0).then_some(()));
    let (status, open) = s.get("activities/open");
    assert_eq!(status, 200, "{open}");
    assert!(
        matches!(open["state"].as_str(), Some("started" | "scheduled")),
        "{open}"
    );
    let (status, kept) = s.get("activities/kept");
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["result"], kept_result, "{kept}");
    assert_eq!(s.get("activities/old0").0, 404);
}

#[test]
fn a_batch_of_starts_answers_each_line_commits_all_and_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    s.deploy_example("greet", "q", 50);
    let start = |id: &str| {
        json!({"activity_id": id, "activity_type": "greet", "task_queue": "q",
               "input": ["Ada"], "start_to_close_timeout": "10s"})
    };
    s.start_activity(start("before"));
    let n = 300;
    let mut starts: Vec<Value> = (0..n).map(|i| start(&format!("b{i}"))).collect();
    let refused = [
        json!({"activity_type": "greet", "task_queue": "q"}),
        json!({"activity_type": 5, "task_queue": "q", "start_to_close_timeout": "1s"}),
        json!(["not", "a", "start"]),
        json!({"activity_type": "greet", "task_queue": "q", "start_to_close_timeout": "1s", "priority": 9}),
        json!({"activity_type": "greet", "task_queue": "q", "start_to_close_timeout": "1s", "input": ["x".repeat(3 << 20)]}),
    ];
    starts.extend([start("before"), start("b7")]);
    starts.extend(refused.iter().cloned());
    let (status, r) = s.post("activities:batch", &json!({ "starts": starts }));
    // Killed as soon as the batch is answered: what it created is committed.
    s.kill();
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (&r["created"], &r["existing"], &r["failed"]),
        (&json!(n), &json!(2), &json!(refused.len())),
        "{r}"
    );
    let results = r["results"].as_array().unwrap();
    assert!(results[..n]
        .iter()
        .all(|x| x["outcome"] == "created" && x["status"] == 201));
    assert_eq!(results[n]["outcome"], "existing");
    assert_eq!(results[n + 1]["outcome"], "existing");
    assert_eq!(
        results[n + 1]["activity"]["run_id"],
        results[7]["activity"]["run_id"]
    );

    let s = Server::start(dir.path(), &[]);
    // Each refused line answers as the same start alone does.
    for (i, bad) in refused.iter().enumerate() {
        let (status, alone) = s.post("activities", bad);
        let got = &results[n + 2 + i];
        assert_eq!(
            (got["outcome"].as_str(), got["status"].as_u64()),
            (Some("error"), Some(u64::from(status)))
        );
        assert_eq!(
            got["error"]["code"], alone["error"]["code"],
            "{got} vs {alone}"
        );
    }
    wait_for(|| {
        let (_, done) = s.get("activities?state=completed&limit=1000");
        (done["activities"].as_array()?.len() == n + 1).then_some(())
    });
    let (_, all) = s.get("activities?limit=1000");
    assert_eq!(all["activities"].as_array().unwrap().len(), n + 1);

    let over: Vec<Value> = (0..1001).map(|i| start(&format!("o{i}"))).collect();
    let (status, e) = s.post("activities:batch", &json!({ "starts": over }));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("starts has 1001 entries"),
        "{e}"
    );
    let (_, none) = s.get("activities/o0");
    assert_eq!(none["error"]["code"], "not_found");
}
