//! Every timer in every state, decided at times a [`ManualClock`] gives.

use crate::clock::Clock;
use crate::service::activity::{Activity, StopReason};
use crate::service::decide::fixture::*;
use crate::service::decide::{decide, After, Event, Plan};
use crate::service::options::ActivityOptions;
use crate::service::timers::TimerEvent;
use crate::store::activities::Closed;
use crate::worker::TimeoutType;
use std::sync::Arc;

#[test]
fn schedule_to_start_closes_a_waiting_activity_only() {
    let c = clock();
    c.advance(secs(1));
    let ev = |attempt| Event::Timer(TimerEvent::ScheduleToStart { run_id: 7, attempt });
    let t = closes(
        decide(&scheduled(&c), ev(1), c.read()),
        Closed::TimedOut,
        T0 + 1_000,
    );
    assert_eq!(t.after, After::Closed { dequeue: true });
    assert_eq!(failure_type(&t), "ScheduleToStartTimeout");
    ignored_by([scheduled(&c)], || ev(2), c.read());
    ignored_by([running(&c), awaiting(&c), closed(&c)], || ev(1), c.read());
}

#[test]
fn schedule_to_close_closes_waits_stops_runs_and_ends_the_rest() {
    let c = clock();
    let now = c.read();
    let ev = || Event::Timer(TimerEvent::ScheduleToClose { run_id: 7 });
    let t = closes(decide(&scheduled(&c), ev(), now), Closed::TimedOut, T0);
    assert_eq!(failure_type(&t), "ScheduleToCloseTimeout");
    assert!(matches!(
        decide(&running(&c), ev(), now),
        Plan::Stop(StopReason::Timeout(TimeoutType::ScheduleToClose))
    ));
    for a in [awaiting(&c), started_elsewhere(&c)] {
        let t = closes(decide(&a, ev(), now), Closed::TimedOut, T0);
        assert_eq!(failure_type(&t), "ScheduleToCloseTimeout");
    }
    ignored_by([closed(&c)], ev, now);
}

#[test]
fn a_heartbeat_timer_fires_again_while_the_attempt_is_alive() {
    let c = clock();
    let with_hb = |mut a: Activity| {
        a.options = Arc::new(ActivityOptions {
            heartbeat_timeout: Some(secs(2)),
            ..options()
        });
        a
    };
    let ev = |attempt| Event::Timer(TimerEvent::Heartbeat { run_id: 7, attempt });
    let waiting = with_hb(awaiting(&c));
    let mut a = with_hb(running(&c));
    c.advance(secs(1));
    a.last_alive = c.now();
    c.advance(secs(1));
    let due = a.last_alive + secs(2);
    assert!(matches!(decide(&a, ev(1), c.read()), Plan::Rearm(at) if at == due));
    c.advance(secs(1));
    assert!(matches!(
        decide(&a, ev(1), c.read()),
        Plan::Stop(StopReason::Timeout(TimeoutType::Heartbeat))
    ));
    let t = retries(decide(&waiting, ev(1), c.read()), T0 + 3_000, secs(1));
    assert_eq!(failure_type(&t), "HeartbeatTimeout");
    assert!(matches!(decide(&a, ev(2), c.read()), Plan::Ignore));
    ignored_by([running(&c)], || ev(1), c.read());
    ignored_by(
        [with_hb(scheduled(&c)), with_hb(closed(&c))],
        || ev(1),
        c.read(),
    );
}

#[test]
fn async_start_to_close_times_out_an_awaiting_attempt_only() {
    let c = clock();
    c.advance(secs(10));
    let ev = |attempt| Event::Timer(TimerEvent::AsyncStartToClose { run_id: 7, attempt });
    let t = retries(decide(&awaiting(&c), ev(1), c.read()), T0 + 10_000, secs(1));
    assert_eq!(failure_type(&t), "StartToCloseTimeout");
    assert!(t.progress.state.task_token().is_none());
    ignored_by([awaiting(&c)], || ev(2), c.read());
    ignored_by([running(&c), scheduled(&c), closed(&c)], || ev(1), c.read());
}

#[test]
fn backoff_over_dispatches_the_waiting_attempt_only() {
    let c = clock();
    let ev = |attempt| {
        Event::Timer(TimerEvent::Backoff {
            run_id: 7,
            attempt,
            due_ms: T0,
        })
    };
    assert!(matches!(
        decide(&scheduled(&c), ev(1), c.read()),
        Plan::Dispatch { attempt: 1 }
    ));
    ignored_by([scheduled(&c)], || ev(2), c.read());
    // Run now moved the attempt earlier: it was queued then, not again.
    let mut ran_now = scheduled(&c);
    ran_now.progress.attempt_scheduled_ms = T0 - 500;
    ignored_by([ran_now], || ev(1), c.read());
    ignored_by([running(&c), awaiting(&c), closed(&c)], || ev(1), c.read());
}

#[test]
fn the_cancel_grace_period_stops_a_run_or_cancels_an_awaiting_attempt() {
    let c = clock();
    let ev = |attempt| Event::Timer(TimerEvent::CancelGrace { run_id: 7, attempt });
    assert!(matches!(
        decide(&running(&c), ev(1), c.read()),
        Plan::Stop(StopReason::Cancelled)
    ));
    closes(
        decide(&awaiting(&c), ev(1), c.read()),
        Closed::Cancelled,
        T0,
    );
    ignored_by([running(&c)], || ev(2), c.read());
    ignored_by([scheduled(&c), closed(&c)], || ev(1), c.read());
}

#[test]
fn an_unpersisted_end_is_ended_again_when_nothing_runs_it() {
    let c = clock();
    let ev = |timeout| {
        Event::Timer(TimerEvent::Unpersisted {
            run_id: 7,
            attempt: 1,
            timeout,
        })
    };
    let t = retries(
        decide(&started_elsewhere(&c), ev(None), c.read()),
        T0,
        secs(1),
    );
    assert_eq!(failure_type(&t), "WorkerLost");
    let t = retries(
        decide(
            &started_elsewhere(&c),
            ev(Some(TimeoutType::Heartbeat)),
            c.read(),
        ),
        T0,
        secs(1),
    );
    assert_eq!(failure_type(&t), "HeartbeatTimeout");
    ignored_by(
        [running(&c), scheduled(&c), closed(&c)],
        || ev(None),
        c.read(),
    );
}
