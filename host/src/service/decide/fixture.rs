//! Activities in each state, endings and assertions, for the state
//! machine's tests (decisions and timeouts).

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::engine::{ApplicationError, StopSignal};
use crate::service::activity::Running;
use crate::service::options::ActivityOptions;
use crate::store::activities::ActivityFixed;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// When every test activity was scheduled, ms since the Unix epoch.
pub(in crate::service) const T0: u64 = 1_700_000_000_000;
const TOKEN: &str = "token";

pub(in crate::service) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(in crate::service) fn options() -> ActivityOptions {
    ActivityOptions {
        start_to_close_timeout: Some(secs(10)),
        ..ActivityOptions::default()
    }
}

/// An activity scheduled at `T0`, in `state`, attempt 1; a started one
/// started at `T0`, running nowhere (see [`running`]).
pub(in crate::service) fn activity(
    state: RunState,
    options: ActivityOptions,
    clock: &ManualClock,
) -> Activity {
    let started = state.is_started();
    let fixed = ActivityFixed {
        run_id: 7,
        namespace: "ns".into(),
        activity_id: "a".into(),
        activity_type: "t".into(),
        task_queue: "q".into(),
        scheduled_ms: T0,
    };
    let progress = ActivityProgress {
        state,
        attempt: 1,
        attempt_scheduled_ms: T0,
        started_ms: started.then_some(T0),
        ..ActivityProgress::default()
    };
    Activity::new(
        Arc::new(fixed),
        Arc::new(options),
        progress,
        Default::default(),
        clock.now(),
    )
}

pub(in crate::service) fn token() -> Option<String> {
    Some(TOKEN.into())
}

pub(in crate::service) fn scheduled(c: &ManualClock) -> Activity {
    activity(RunState::Scheduled, options(), c)
}

/// Started and running here.
pub(in crate::service) fn running(c: &ManualClock) -> Activity {
    let mut a = activity(
        RunState::Started {
            task_token: token(),
        },
        options(),
        c,
    );
    a.running = Some(Running {
        stop: StopSignal::new(),
        reason: None,
        cancel: Arc::new(AtomicBool::new(false)),
        began: Arc::new(AtomicBool::new(true)),
        module: "m@1".into(),
    });
    a
}

/// Started, running nowhere (restored after a crash, or an undone end).
pub(in crate::service) fn started_elsewhere(c: &ManualClock) -> Activity {
    activity(
        RunState::Started {
            task_token: token(),
        },
        options(),
        c,
    )
}

pub(in crate::service) fn awaiting(c: &ManualClock) -> Activity {
    activity(
        RunState::AwaitingAsync {
            task_token: token(),
        },
        options(),
        c,
    )
}

pub(in crate::service) fn closed(c: &ManualClock) -> Activity {
    let state = RunState::Closed {
        how: Closed::Completed,
        closed_ms: T0,
    };
    activity(state, options(), c)
}

pub(in crate::service) fn clock() -> ManualClock {
    ManualClock::new(T0)
}

pub(in crate::service) fn report(outcome: Outcome) -> Ending {
    Ending::Report(
        Box::new(AttemptReport::without_run(outcome, String::new())),
        "m@1".into(),
    )
}

pub(in crate::service) fn app_error(non_retryable: bool) -> Outcome {
    Outcome::Failed {
        error: ApplicationError {
            message: "no".into(),
            error_type: "Oops".into(),
            non_retryable,
            details: Vec::new(),
            next_retry_delay_ms: None,
        },
    }
}

pub(in crate::service) fn ended(ending: Ending) -> Event {
    Event::Ended { attempt: 1, ending }
}

pub(in crate::service) fn written(p: Plan) -> Transition {
    match p {
        Plan::Write(t) => *t,
        other => panic!("expected a transition, got {other:?}"),
    }
}

/// Asserts a close as `how` at `at_ms`, and returns the transition.
pub(in crate::service) fn closes(p: Plan, how: Closed, at_ms: u64) -> Transition {
    let t = written(p);
    let state = RunState::Closed {
        how,
        closed_ms: at_ms,
    };
    assert_eq!(t.progress.state, state);
    assert!(matches!(t.after, After::Closed { .. }), "{:?}", t.after);
    t
}

/// Asserts a retry of attempt 2 after `delay`, and returns the transition.
pub(in crate::service) fn retries(p: Plan, now_ms: u64, delay: Duration) -> Transition {
    let t = written(p);
    assert_eq!(t.progress.state, RunState::Scheduled);
    assert_eq!(t.progress.attempt, 2);
    assert_eq!(t.progress.started_ms, None);
    assert_eq!(
        t.progress.attempt_scheduled_ms,
        now_ms + bounds::millis(delay)
    );
    assert_eq!(t.after, After::Retry { attempt: 2, delay });
    t
}

pub(in crate::service) fn failure_type(t: &Transition) -> String {
    let f: Failure = serde_json::from_str(t.progress.last_failure.as_deref().unwrap_or("null"))
        .unwrap_or_default();
    f.error_type
}

/// Asserts that `event` changes nothing in any of `activities`.
pub(in crate::service) fn ignored_by(
    activities: impl IntoIterator<Item = Activity>,
    event: impl Fn() -> Event,
    now: Now,
) {
    for a in activities {
        let plan = decide(&a, event(), now);
        assert!(
            matches!(plan, Plan::Ignore),
            "{:?}: {plan:?}",
            a.progress.state
        );
    }
}
