//! Flow control through the real server: queue-wide rate limits, pause and
//! resume, priorities.

mod common;

use common::Server;
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
    // (45 - 5 burst) / 20 per second = 2 s at least, and not much more.
    assert!((1950..3000).contains(&span), "dispatched over {span} ms");
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
