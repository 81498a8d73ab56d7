//! Every ending and cancellation request in every state, decided at times
//! a [`ManualClock`](crate::clock::ManualClock) gives.

use super::fixture::*;
use super::*;
use crate::clock::Clock;
use crate::service::options::ActivityOptions;
use std::sync::Arc;

#[test]
fn a_completed_report_closes_with_its_result_and_row() {
    let c = clock();
    c.advance(secs(2));
    let result = Payload::json(&serde_json::json!("hi"));
    let t = closes(
        decide(
            &running(&c),
            ended(report(Outcome::Completed { result })),
            c.read(),
        ),
        Closed::Completed,
        T0 + 2_000,
    );
    assert!(t.progress.result.is_some());
    assert!(t.ends_attempt && !t.stop_running);
    let row = t.attempt_row.unwrap_or_default();
    assert_eq!((row.started_ms, row.ended_ms), (T0, Some(T0 + 2_000)));
    assert_eq!(row.outcome.as_deref(), Some("completed"));
    assert_eq!(row.module.as_deref(), Some("m@1"));
}

#[test]
fn failures_are_retried_after_the_policy_delay() {
    let c = clock();
    let now = c.read();
    for ending in [
        report(app_error(false)),
        report(Outcome::Trapped {
            message: "boom".into(),
        }),
        Ending::Failed(Failure {
            error_type: "HostSaysNo".into(),
            ..Failure::default()
        }),
    ] {
        let t = retries(decide(&running(&c), ended(ending), now), T0, secs(1));
        assert!(t.attempt_row.is_some_and(|r| r.failure_type.is_some()));
    }
    let t = retries(
        decide(&running(&c), ended(Ending::WorkerLost), now),
        T0,
        secs(1),
    );
    assert_eq!(failure_type(&t), "WorkerLost");
    assert_eq!(
        t.attempt_row.and_then(|r| r.outcome).as_deref(),
        Some("worker_lost")
    );
}

#[test]
fn an_error_may_ask_for_its_own_retry_delay() {
    let c = clock();
    let mut outcome = app_error(false);
    if let Outcome::Failed { error } = &mut outcome {
        error.next_retry_delay_ms = Some(7_000);
    }
    retries(
        decide(&running(&c), ended(report(outcome)), c.read()),
        T0,
        secs(7),
    );
}

#[test]
fn a_non_retryable_or_last_failure_closes_as_failed() {
    let c = clock();
    let t = closes(
        decide(&running(&c), ended(report(app_error(true))), c.read()),
        Closed::Failed,
        T0,
    );
    assert_eq!(failure_type(&t), "Oops");
    let mut last = running(&c);
    let mut o = options();
    o.retry_policy.maximum_attempts = 1;
    last.options = Arc::new(o);
    closes(
        decide(&last, ended(report(app_error(false))), c.read()),
        Closed::Failed,
        T0,
    );
}

#[test]
fn a_retry_past_schedule_to_close_closes_instead() {
    let c = clock();
    let mut a = running(&c);
    a.options = Arc::new(ActivityOptions {
        schedule_to_close_timeout: Some(secs(5)),
        ..options()
    });
    c.advance(secs(3));
    retries(
        decide(&a, ended(report(app_error(false))), c.read()),
        T0 + 3_000,
        secs(1),
    );
    c.advance(secs(1));
    closes(
        decide(&a, ended(report(app_error(false))), c.read()),
        Closed::Failed,
        T0 + 4_000,
    );
}

#[test]
fn a_failure_after_a_cancellation_request_closes_as_cancelled() {
    let c = clock();
    let mut a = running(&c);
    a.progress.cancel_requested = true;
    let t = closes(
        decide(&a, ended(report(app_error(false))), c.read()),
        Closed::Cancelled,
        T0,
    );
    assert_eq!(failure_type(&t), "Oops");
}

#[test]
fn timed_out_reports_are_start_to_close_until_schedule_to_close_is_past() {
    let c = clock();
    let mut a = running(&c);
    a.options = Arc::new(ActivityOptions {
        schedule_to_close_timeout: Some(secs(60)),
        ..options()
    });
    let t = retries(
        decide(&a, ended(report(Outcome::TimedOut)), c.read()),
        T0,
        secs(1),
    );
    assert_eq!(failure_type(&t), "StartToCloseTimeout");
    c.advance(secs(60));
    let t = closes(
        decide(&a, ended(report(Outcome::TimedOut)), c.read()),
        Closed::TimedOut,
        T0 + 60_000,
    );
    assert_eq!(failure_type(&t), "ScheduleToCloseTimeout");
}

#[test]
fn a_cancelled_report_means_what_the_host_stopped_it_for() {
    let c = clock();
    let stopped = |reason: Option<StopReason>| {
        let mut a = running(&c);
        if let Some(r) = &mut a.running {
            r.reason = reason;
        }
        decide(&a, ended(report(Outcome::Cancelled)), c.read())
    };
    closes(stopped(None), Closed::Cancelled, T0);
    closes(stopped(Some(StopReason::Cancelled)), Closed::Cancelled, T0);
    let t = retries(
        stopped(Some(StopReason::Timeout(TimeoutType::Heartbeat))),
        T0,
        secs(1),
    );
    assert_eq!(failure_type(&t), "HeartbeatTimeout");
    assert!(matches!(stopped(Some(StopReason::Shutdown)), Plan::Forget));
}

#[test]
fn will_complete_async_keeps_the_token_until_the_attempt_deadline() {
    let c = clock();
    c.advance(secs(4));
    let now = c.read();
    let t = written(decide(
        &running(&c),
        ended(report(Outcome::WillCompleteAsync)),
        now,
    ));
    let state = RunState::AwaitingAsync {
        task_token: token(),
    };
    assert_eq!(t.progress.state, state);
    let deadline = now.at + secs(6);
    assert_eq!(
        t.after,
        After::AwaitAsync {
            attempt: 1,
            deadline
        }
    );
    assert_eq!(t.attempt_row.and_then(|r| r.ended_ms), None);
}

#[test]
fn the_last_heartbeat_of_a_report_is_kept_with_the_attempt() {
    let c = clock();
    let details = vec![Payload::json(&serde_json::json!(3))];
    let mut ending = report(app_error(false));
    if let Ending::Report(r, _) = &mut ending {
        r.last_heartbeat = Some(details.clone());
    }
    let t = retries(decide(&running(&c), ended(ending), c.read()), T0, secs(1));
    let json = Some(payloads_json(&details));
    assert_eq!(t.progress.heartbeat_details, json);
    assert_eq!(t.attempt_row.and_then(|r| r.heartbeat_details), json);
}

#[test]
fn external_completions_end_the_attempt_and_stop_it() {
    let c = clock();
    let now = c.read();
    for a in [running(&c), awaiting(&c), started_elsewhere(&c)] {
        let ending = Ending::External(Completion::Completed(Payload::null()));
        let t = closes(decide(&a, ended(ending), now), Closed::Completed, T0);
        assert!(t.stop_running && t.ends_attempt);
        let ending = Ending::External(Completion::Cancelled);
        closes(decide(&a, ended(ending), now), Closed::Cancelled, T0);
        let failure = Failure {
            error_type: "Nope".into(),
            ..Failure::default()
        };
        let ending = Ending::External(Completion::Failed(failure));
        retries(decide(&a, ended(ending), now), T0, secs(1));
    }
}

#[test]
fn endings_of_another_attempt_or_of_a_waiting_or_closed_activity_are_ignored() {
    let c = clock();
    let now = c.read();
    let stale = Event::Ended {
        attempt: 2,
        ending: Ending::WorkerLost,
    };
    assert!(matches!(decide(&running(&c), stale, now), Plan::Ignore));
    for a in [scheduled(&c), closed(&c)] {
        let e = ended(Ending::External(Completion::Cancelled));
        assert!(matches!(decide(&a, e, now), Plan::Ignore));
    }
}

#[test]
fn a_cancellation_request_closes_a_waiting_activity_and_tells_a_started_one() {
    let c = clock();
    let now = c.read();
    let t = closes(
        decide(&scheduled(&c), Event::CancelRequested, now),
        Closed::Cancelled,
        T0,
    );
    assert!(t.progress.cancel_requested);
    assert_eq!(t.after, After::Closed { dequeue: true });
    for a in [running(&c), awaiting(&c)] {
        let t = written(decide(&a, Event::CancelRequested, now));
        assert!(t.progress.cancel_requested && !t.ends_attempt);
        assert_eq!(t.progress.state, a.progress.state);
        assert_eq!(t.after, After::CancelRequested { attempt: 1 });
    }
    let mut again = running(&c);
    again.progress.cancel_requested = true;
    assert!(matches!(
        decide(&again, Event::CancelRequested, now),
        Plan::Ignore
    ));
    ignored_by([closed(&c)], || Event::CancelRequested, now);
}

/// Attempt 2 of `a`'s activity, waiting out a backoff until `T0 + 5 s`.
fn in_backoff_until_5s(c: &crate::clock::ManualClock) -> Activity {
    let mut a = scheduled(c);
    a.progress.attempt = 2;
    a.progress.attempt_scheduled_ms = T0 + 5_000;
    a
}

#[test]
fn run_now_queues_an_attempt_in_backoff_at_once() {
    let c = clock();
    c.advance(secs(1));
    let t = written(decide(&in_backoff_until_5s(&c), Event::RunNow, c.read()));
    assert_eq!(t.progress.state, RunState::Scheduled);
    assert_eq!(t.progress.attempt, 2);
    assert_eq!(t.progress.attempt_scheduled_ms, T0 + 1_000);
    assert_eq!(
        t.after,
        After::Retry {
            attempt: 2,
            delay: Duration::ZERO
        }
    );
    assert!(t.attempt_row.is_none() && !t.ends_attempt);
}

#[test]
fn run_now_changes_nothing_outside_a_backoff() {
    let c = clock();
    // Attempt 1 waiting for a worker, a started or awaiting attempt, a
    // closed run, and a backoff already over.
    let mut over = in_backoff_until_5s(&c);
    c.advance(secs(5));
    over.progress.attempt_scheduled_ms = T0 + 5_000;
    ignored_by(
        [scheduled(&c), running(&c), awaiting(&c), closed(&c), over],
        || Event::RunNow,
        c.read(),
    );
}

fn by_hand() -> Failure {
    Failure {
        error_type: "FailedByOperator".into(),
        message: "stuck on a bad input".into(),
        non_retryable: true,
        ..Failure::default()
    }
}

#[test]
fn failing_by_hand_closes_a_waiting_activity_as_failed() {
    let c = clock();
    c.advance(secs(2));
    for a in [scheduled(&c), in_backoff_until_5s(&c)] {
        let t = closes(
            decide(&a, Event::FailRequested(by_hand()), c.read()),
            Closed::Failed,
            T0 + 2_000,
        );
        assert_eq!(failure_type(&t), "FailedByOperator");
        assert_eq!(t.after, After::Closed { dequeue: true });
        assert!(t.attempt_row.is_none());
    }
}

#[test]
fn failing_by_hand_ends_and_stops_an_attempt_in_progress_without_retry() {
    let c = clock();
    c.advance(secs(3));
    let mut cancelling = running(&c);
    cancelling.progress.cancel_requested = true;
    for a in [running(&c), awaiting(&c), started_elsewhere(&c), cancelling] {
        let t = closes(
            decide(&a, Event::FailRequested(by_hand()), c.read()),
            Closed::Failed,
            T0 + 3_000,
        );
        assert!(t.ends_attempt && t.stop_running);
        assert_eq!(failure_type(&t), "FailedByOperator");
        let row = t.attempt_row.unwrap_or_default();
        assert_eq!(row.outcome.as_deref(), Some("failed"));
        assert_eq!(row.failure_type.as_deref(), Some("FailedByOperator"));
        assert_eq!(row.failure_message.as_deref(), Some("stuck on a bad input"));
        assert_eq!(row.ended_ms, Some(T0 + 3_000));
    }
    ignored_by([closed(&c)], || Event::FailRequested(by_hand()), c.read());
}
