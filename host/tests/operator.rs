//! An operator's actions on activities, end to end through the real
//! server, API and CLI: find what is retrying, start its next attempt now
//! instead of after its backoff, fail an activity by hand; and the traces
//! `--otlp-endpoint` exports, received by an OTLP/HTTP endpoint of the
//! test's own.

mod common;

use common::{cli, wait_for, Server};
use serde_json::{json, Value};
use std::time::Duration;

fn server() -> (Server, tempfile::TempDir) {
    let dir = common::data_dir_sharing_artifacts();
    (Server::start(dir.path(), &[]), dir)
}

fn ids(list: &Value) -> Vec<&str> {
    list["activities"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["activity_id"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn run_now_starts_a_retrying_activitys_next_attempt_without_its_backoff() {
    let (s, _d) = server();
    s.deploy_example("flaky", "q", 10);
    // Fails once, then would wait an hour before attempt 2.
    s.start_activity(json!({
        "activity_id": "slow-retry", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 2}], "start_to_close_timeout": "5s",
        "retry_policy": {"initial_interval": "1h"}
    }));
    s.start_activity(json!({
        "activity_id": "fine", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 1}], "start_to_close_timeout": "5s"
    }));
    // Nobody serves this queue: attempt 1 waits for a worker.
    s.start_activity(json!({
        "activity_id": "waiting", "activity_type": "flaky", "task_queue": "nobody",
        "start_to_close_timeout": "5s"
    }));
    s.wait_closed("fine", Duration::from_secs(20));
    let a = s.wait_until("slow-retry", |a| a["attempt"] == 2);
    assert_eq!(a["state"], "scheduled", "{a}");
    assert_eq!(a["attempts"][0]["failure_type"], "FlakyError", "{a}");

    let (status, list) = s.get("activities?state=retrying");
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), ["slow-retry"]);
    let text = cli(&s.base, &["activity", "list", "--state", "retrying"]);
    assert!(
        text.contains("slow-retry") && !text.contains("fine") && !text.contains("waiting"),
        "{text}"
    );
    let (status, e) = s.get("activities?state=stuck");
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("retrying"));

    // Attempt 1 waiting for a worker has no backoff to skip.
    let (status, e) = s.post("activities/waiting/run-now", &json!({}));
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not waiting out a retry backoff"),
        "{e}"
    );

    let text = cli(&s.base, &["activity", "run-now", "slow-retry"]);
    assert!(text.contains("runs attempt 2 now"), "{text}");
    let a = s.wait_closed("slow-retry", Duration::from_secs(20));
    assert_eq!(a["state"], "completed", "{a}");
    assert_eq!(a["result"], json!({"attempt": 2}));
    assert_eq!(a["attempts"].as_array().map(Vec::len), Some(2), "{a}");

    let (status, e) = s.post("activities/slow-retry/run-now", &json!({}));
    assert_eq!(status, 409, "{e}");
    let (status, e) = s.post("activities/never-was/run-now", &json!({}));
    assert_eq!(status, 404, "{e}");
    let (_, list) = s.get("activities?state=retrying");
    assert!(ids(&list).is_empty(), "{list}");
}

#[test]
fn failing_by_hand_closes_as_failed_and_stops_the_running_attempt() {
    let (s, _d) = server();
    s.deploy_example("adversary", "q", 10);
    s.start_activity(json!({
        "activity_id": "stuck", "activity_type": "sleep", "task_queue": "q",
        "input": [{"ms": 60_000, "heartbeat_every_ms": 100}],
        "start_to_close_timeout": "120s"
    }));
    s.wait_until("stuck", |a| {
        a["attempts"][0]["heartbeat_details"][0]["slept_ms"].is_u64()
    });

    let text = cli(
        &s.base,
        &[
            "activity",
            "fail",
            "stuck",
            "--reason",
            "waits on a host that is gone",
        ],
    );
    assert!(
        text.contains("activity stuck is failed (attempt 1)"),
        "{text}"
    );
    let (_, a) = s.get("activities/stuck");
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(a["last_failure"]["type"], "FailedByOperator", "{a}");
    assert_eq!(
        a["last_failure"]["message"], "waits on a host that is gone",
        "{a}"
    );
    let attempt = &a["attempts"][0];
    assert_eq!(attempt["outcome"], "failed", "{a}");
    assert_eq!(attempt["failure_type"], "FailedByOperator", "{a}");
    // The attempt was stopped, long before its 60 s were up.
    wait_for(|| (s.get("task-queues/q").1["running"] == 0).then_some(()));

    // A waiting activity closes at once, with the type given.
    s.start_activity(json!({
        "activity_id": "queued", "activity_type": "sleep", "task_queue": "nobody",
        "start_to_close_timeout": "5s"
    }));
    let (status, a) = s.post(
        "activities/queued/fail",
        &json!({"reason": "queue retired", "type": "QueueRetired"}),
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(a["last_failure"]["type"], "QueueRetired", "{a}");
    assert_eq!(a["attempts"], json!([]), "{a}");

    for (id, body, code) in [
        ("queued", json!({"reason": "again"}), 409),
        ("never-was", json!({"reason": "x"}), 404),
        ("queued", json!({"reason": ""}), 400),
        ("queued", json!({"reason": "x", "type": ""}), 400),
        ("queued", json!({}), 400),
    ] {
        let (status, e) = s.post(&format!("activities/{id}/fail"), &body);
        assert_eq!(status, code, "{id} {body}: {e}");
    }
}

/// The value of the sample `series` (name and labels as printed) in
/// OpenMetrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn metrics_carry_temporal_names_by_namespace_queue_and_type() {
    let (s, _d) = server();
    s.deploy_example("flaky", "q", 10);
    s.start_activity(json!({
        "activity_id": "first-time", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 1}], "start_to_close_timeout": "5s"
    }));
    s.start_activity(json!({
        "activity_id": "third-time", "activity_type": "flaky", "task_queue": "q",
        "input": [{"succeed_on_attempt": 3}], "start_to_close_timeout": "5s",
        "retry_policy": {"initial_interval": "10ms"}
    }));
    s.start_activity(json!({
        "activity_id": "unserved", "activity_type": "flaky", "task_queue": "nobody",
        "start_to_close_timeout": "5s"
    }));
    s.wait_closed("first-time", Duration::from_secs(20));
    s.wait_closed("third-time", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(50));

    let resp = reqwest::blocking::get(format!("{}/metrics", s.base)).unwrap();
    let kind = resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = resp.text().unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let flaky = r#"{namespace="default",task_queue="q",activity_type="flaky"}"#;
    let at = |name: &str| sample(&text, &format!("{name}{flaky}"));
    // Four attempts: one of the first activity, three of the second.
    assert_eq!(at("activity_task_total"), Some(4.0), "{text}");
    assert_eq!(at("activity_execution_failed_total"), Some(2.0), "{text}");
    assert_eq!(
        at("activity_schedule_to_start_latency_seconds_count"),
        Some(4.0)
    );
    assert_eq!(at("activity_execution_latency_seconds_count"), Some(4.0));
    assert_eq!(at("activity_end_to_end_latency_seconds_count"), Some(2.0));
    // The second activity waited out two backoffs of 10 ms and 20 ms.
    let e2e = at("activity_end_to_end_latency_seconds_sum").unwrap_or(0.0);
    assert!(e2e >= 0.03, "end to end {e2e} s\n{text}");
    let queue = |name: &str, q: &str| {
        sample(
            &text,
            &format!(r#"{name}{{namespace="default",task_queue="{q}"}}"#),
        )
    };
    assert_eq!(
        queue("approximate_backlog_count", "nobody"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(queue("approximate_backlog_count", "q"), Some(0.0), "{text}");
    assert!(queue("approximate_backlog_age_seconds", "nobody").unwrap_or(0.0) > 0.0);
    // The names of earlier releases stay.
    assert_eq!(sample(&text, "wharf_activities_completed_total"), Some(2.0));
    assert_eq!(sample(&text, "wharf_activities_started_total"), Some(3.0));
    assert_eq!(sample(&text, "wharf_attempts_total"), Some(4.0));
    assert_eq!(
        sample(
            &text,
            r#"wharf_schedule_to_start_seconds_bucket{le="+Inf"}"#
        ),
        Some(4.0)
    );
}

/// An OTLP/HTTP endpoint: accepts every POST and keeps its JSON body.
fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                // Requests one after another on the connection.
                loop {
                    let mut len = 0usize;
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    assert!(first.starts_with("POST /v1/traces "), "{first}");
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    kept.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
                }
            });
        }
    });
    (url, got)
}

/// A span's attribute, as the string OTLP/JSON carries it.
fn attr<'a>(span: &'a Value, key: &str) -> &'a str {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .and_then(|kv| {
            kv["value"]["stringValue"]
                .as_str()
                .or(kv["value"]["intValue"].as_str())
        })
        .unwrap_or("")
}

fn nanos(span: &Value, field: &str) -> u128 {
    span[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_activity_and_its_attempts_are_traced_to_an_otlp_endpoint() {
    let (url, got) = otlp_receiver();
    let dir = common::data_dir_sharing_artifacts();
    let s = Server::start(dir.path(), &["--otlp-endpoint", &url]);
    s.deploy_example("flaky", "q", 10);
    s.start_activity(json!({
        "activity_id": "traced", "activity_type": "flaky", "task_queue": "q",
        "start_to_close_timeout": "10s",
        "input": [{"succeed_on_attempt": 2, "retry_delay_ms": 10}]
    }));
    let done = s.wait_closed("traced", Duration::from_secs(20));
    assert_eq!(done["state"], "completed", "{done}");

    let spans: Vec<Value> = wait_for(|| {
        let bodies = got.lock().unwrap().clone();
        let spans: Vec<Value> = bodies
            .iter()
            .flat_map(|b| {
                b["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        spans
            .iter()
            .any(|s| s["name"] == "activity")
            .then_some(spans)
    });
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    let trace = spans[0]["traceId"].as_str().unwrap();
    assert!(
        spans.iter().all(|s| s["traceId"] == trace),
        "one trace: {spans:?}"
    );

    let activity = spans.iter().find(|s| s["name"] == "activity").unwrap();
    assert!(activity.get("parentSpanId").is_none(), "{activity}");
    assert_eq!(attr(activity, "wharf.activity_id"), "traced");
    assert_eq!(attr(activity, "wharf.state"), "completed");
    assert_eq!(attr(activity, "wharf.attempts"), "2");
    assert_eq!(activity["status"]["code"], 1);

    let start = spans
        .iter()
        .find(|s| s["name"] == "start")
        .expect("a start span");
    assert_eq!(start["parentSpanId"], activity["spanId"], "{start}");
    assert_eq!(
        nanos(start, "startTimeUnixNano"),
        nanos(activity, "startTimeUnixNano")
    );

    let attempts: Vec<&Value> = spans.iter().filter(|s| s["name"] == "attempt").collect();
    assert_eq!(attempts.len(), 2, "{names:?}");
    for a in &attempts {
        assert_eq!(a["parentSpanId"], activity["spanId"], "{a}");
        let n = attr(a, "wharf.attempt");
        let (outcome, error) = if n == "1" {
            ("failed", 2)
        } else {
            ("completed", 1)
        };
        assert_eq!(attr(a, "wharf.outcome"), outcome, "{a}");
        assert_eq!(a["status"]["code"], error, "{a}");
        assert!(attr(a, "wharf.module").starts_with("flaky@"), "{a}");
        if n == "1" {
            assert_eq!(attr(a, "wharf.failure_type"), "FlakyError", "{a}");
        }
        let (start, end) = (nanos(a, "startTimeUnixNano"), nanos(a, "endTimeUnixNano"));
        let parts: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parentSpanId"] == a["spanId"])
            .collect();
        let mut part_names: Vec<&str> = parts.iter().filter_map(|p| p["name"].as_str()).collect();
        part_names.sort_unstable();
        assert_eq!(
            part_names,
            ["commit", "dispatch", "instantiate", "run"],
            "attempt {n}"
        );
        for p in parts {
            let (ps, pe) = (nanos(p, "startTimeUnixNano"), nanos(p, "endTimeUnixNano"));
            assert!(ps <= pe, "{p}");
            match p["name"].as_str() {
                Some("dispatch") => assert_eq!(pe, start, "{p}"),
                Some("commit") => assert!(ps == end && pe >= end, "{p}"),
                _ => assert!(ps >= start && pe <= end, "{p}"),
            }
        }
    }
    s.kill();
}
