//! The activity state machine's decisions: given an open activity, an
//! [`Event`] and the time, what happens next (a [`Plan`]).
//!
//! [`decide`] is pure: it reads the activity and returns the plan; it reads
//! no clock, changes nothing and writes nothing. [`super::commit`] applies
//! the plan to memory under the service's lock, writes it through the group
//! commit, and only then makes it visible. Timer events are decided in
//! [`super::timeouts`] in the same terms. Events name the attempt they are
//! about; one about an attempt the activity has left is ignored, which is
//! how stale reports, timers and duplicate completions are made harmless.

use super::activity::{payloads_json, Activity, StopReason};
use super::bounds;
use super::external::Completion;
use super::retry::{self, Failure as RetryFailure};
use super::timers::TimerEvent;
use crate::clock::Now;
use crate::engine::{AttemptReport, Outcome};
use crate::payload::Payload;
use crate::store::activities::{ActivityProgress, AttemptRow, Closed, RunState};
use crate::worker::{failure_of, log_tail, Failure, TimeoutType};
use std::time::Duration;
use tokio::time::Instant;

/// Why an attempt ended.
#[derive(Debug)]
pub(super) enum Ending {
    /// The engine finished it; with the module `name@version` it ran.
    Report(Box<AttemptReport>, String),
    /// The host failed it without running it.
    Failed(Failure),
    /// The process running it died.
    WorkerLost,
    /// A timer ended an attempt that was not running here.
    Timeout(TimeoutType),
    /// Completed, failed or cancelled by task token or id.
    External(Completion),
    /// Failed by an operator: closed as failed whatever the retry policy.
    Operator(Failure),
}

/// Something that happens to an activity.
#[derive(Debug)]
pub(super) enum Event {
    /// Attempt `attempt` ended.
    Ended { attempt: u32, ending: Ending },
    /// A timer fired.
    Timer(TimerEvent),
    /// Cancellation was requested.
    CancelRequested,
    /// An operator asks that the attempt waiting out its retry backoff
    /// start now.
    RunNow,
    /// An operator fails the activity by hand: it closes as failed with
    /// this failure, whatever its retry policy; an attempt in progress is
    /// stopped.
    FailRequested(Failure),
}

/// What an event does to an activity.
#[derive(Debug)]
pub(super) enum Plan {
    /// Nothing: the event is about an attempt or a state the activity has
    /// left, or changes nothing.
    Ignore,
    /// The attempt running here is over but nothing is recorded: the host
    /// is shutting down, and the next start retries the attempt.
    Forget,
    /// A transition to write, then make visible.
    Write(Box<Transition>),
    /// Stop the attempt running here; its report then ends it.
    Stop(StopReason),
    /// Backoff is over: queue attempt `attempt`.
    Dispatch { attempt: u32 },
    /// Not due yet (the attempt heartbeated meanwhile): fire the timer
    /// again at this instant.
    Rearm(Instant),
}

/// A decided transition.
#[derive(Debug)]
pub(super) struct Transition {
    /// The activity's progress after it, as stored (a payload field that
    /// is `None` keeps the stored value).
    pub(super) progress: ActivityProgress,
    /// The row of the attempt that ended.
    pub(super) attempt_row: Option<AttemptRow>,
    /// What to do once it is written.
    pub(super) after: After,
    /// The attempt in progress has ended: it no longer runs here.
    pub(super) ends_attempt: bool,
    /// Stop the attempt running here once written (it was ended from
    /// outside; if the write fails, it goes on as if nothing had been sent).
    pub(super) stop_running: bool,
}

/// What a written transition sets in motion.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum After {
    /// Closed; `dequeue`: it may still be in its queue's backlog.
    Closed { dequeue: bool },
    /// Attempt `attempt` runs after `delay`.
    Retry { attempt: u32, delay: Duration },
    /// Attempt `attempt` awaits completion until `deadline`.
    AwaitAsync { attempt: u32, deadline: Instant },
    /// Cancellation requested of a started attempt: tell it, and stop it
    /// after the grace period.
    CancelRequested { attempt: u32 },
}

/// Decides what `event` does to `a` at `now`.
pub(super) fn decide(a: &Activity, event: Event, now: Now) -> Plan {
    if a.is_closed() {
        return Plan::Ignore;
    }
    match event {
        Event::Ended { attempt, ending } => {
            if !a.progress.state.is_started() || a.progress.attempt != attempt {
                return Plan::Ignore;
            }
            end(a, ending, now)
        }
        Event::Timer(ev) => super::timeouts::decide(a, ev, now),
        Event::CancelRequested => request_cancel(a, now),
        Event::RunNow => run_now(a, now),
        Event::FailRequested(f) => fail_by_hand(a, f, now),
    }
}

/// Whether `a` waits out a retry backoff at `now_ms`: scheduled for a
/// later attempt at a time still to come.
pub(super) fn in_backoff(a: &Activity, now_ms: u64) -> bool {
    a.progress.state == RunState::Scheduled
        && a.progress.attempt > 1
        && a.progress.attempt_scheduled_ms > now_ms
}

/// Run now: the attempt waiting out its backoff is due at once. The
/// backoff timer still set for it then finds the attempt due at another
/// time and is ignored (see [`super::timeouts`]).
fn run_now(a: &Activity, now: Now) -> Plan {
    if !in_backoff(a, now.ms) {
        return Plan::Ignore;
    }
    let mut progress = a.snapshot();
    progress.attempt_scheduled_ms = now.ms;
    write(
        progress,
        After::Retry {
            attempt: a.progress.attempt,
            delay: Duration::ZERO,
        },
    )
}

/// Failed by hand: a waiting activity closes at once; an attempt in
/// progress ends as failed (its row records the failure) and is stopped.
fn fail_by_hand(a: &Activity, f: Failure, now: Now) -> Plan {
    if a.progress.state == RunState::Scheduled {
        close_waiting(a, Closed::Failed, f, now)
    } else {
        end(a, Ending::Operator(f), now)
    }
}

/// Cancellation requested: a waiting activity closes at once; a started
/// attempt is told and given the grace period.
fn request_cancel(a: &Activity, now: Now) -> Plan {
    if a.progress.cancel_requested {
        return Plan::Ignore;
    }
    let mut progress = a.snapshot();
    progress.cancel_requested = true;
    if a.progress.state == RunState::Scheduled {
        close(&mut progress, Closed::Cancelled, None, None, now.ms);
        return write(progress, After::Closed { dequeue: true });
    }
    write(
        progress,
        After::CancelRequested {
            attempt: a.progress.attempt,
        },
    )
}

/// Closes an activity that has no attempt in progress (scheduled or in
/// backoff), e.g. timed out while waiting.
pub(super) fn close_waiting(a: &Activity, how: Closed, failure: Failure, now: Now) -> Plan {
    let mut progress = a.snapshot();
    close(&mut progress, how, None, Some(failure), now.ms);
    write(progress, After::Closed { dequeue: true })
}

/// A transition that ends no attempt.
fn write(progress: ActivityProgress, after: After) -> Plan {
    Plan::Write(Box::new(Transition {
        progress,
        attempt_row: None,
        after,
        ends_attempt: false,
        stop_running: false,
    }))
}

enum Decision {
    Close {
        how: Closed,
        result: Option<Payload>,
        failure: Option<Failure>,
    },
    Retry {
        delay: Duration,
        failure: Failure,
    },
    AwaitAsync,
}

/// What an ending does to a started attempt (the caller checked that it is
/// the current one).
pub(super) fn end(a: &Activity, ending: Ending, now: Now) -> Plan {
    let attempt = a.progress.attempt;
    let running = a.running.as_ref();
    let reason = running.and_then(|r| r.reason);
    let mut heartbeat = None;
    let mut stop_running = false;
    let mut row = AttemptRow {
        run_id: a.fixed.run_id,
        attempt,
        started_ms: a.progress.started_ms.unwrap_or(now.ms),
        ended_ms: Some(now.ms),
        ..AttemptRow::default()
    };
    let past_schedule_to_close = a
        .options
        .schedule_to_close_timeout
        .is_some_and(|d| now.ms >= a.fixed.scheduled_ms.saturating_add(bounds::millis(d)));
    let outcome = |row: &mut AttemptRow, kind: &str| row.outcome = Some(kind.to_owned());

    let decision = match ending {
        Ending::Report(report, module) => {
            let report = *report;
            row.module = Some(module);
            row.cpu_us = Some(u64::try_from(report.cpu_time.as_micros()).unwrap_or(u64::MAX));
            row.instantiate_us =
                Some(u64::try_from(report.instantiate.as_micros()).unwrap_or(u64::MAX));
            row.log_tail = Some(log_tail(&report.log).to_owned()).filter(|l| !l.is_empty());
            outcome(&mut row, report.outcome.kind());
            heartbeat = report.last_heartbeat;
            match report.outcome {
                Outcome::Completed { result } => completed(result),
                Outcome::WillCompleteAsync => Decision::AwaitAsync,
                Outcome::Cancelled => match reason {
                    Some(StopReason::Timeout(t)) => fail(a, Failure::timeout(t), now.ms),
                    Some(StopReason::Shutdown) => return Plan::Forget,
                    _ => cancelled(None),
                },
                Outcome::TimedOut => {
                    let t = if past_schedule_to_close {
                        TimeoutType::ScheduleToClose
                    } else {
                        TimeoutType::StartToClose
                    };
                    fail(a, Failure::timeout(t), now.ms)
                }
                other => match failure_of(&other, &report.log) {
                    Some(f) => fail(a, f, now.ms),
                    None => cancelled(None),
                },
            }
        }
        Ending::Failed(f) => {
            outcome(&mut row, "failed");
            fail(a, f, now.ms)
        }
        Ending::WorkerLost => {
            outcome(&mut row, "worker_lost");
            let f = Failure {
                error_type: "WorkerLost".into(),
                message: "the process running this attempt stopped before it ended".into(),
                ..Failure::default()
            };
            fail(a, f, now.ms)
        }
        Ending::Timeout(t) => {
            outcome(&mut row, "timed_out");
            fail(a, Failure::timeout(t), now.ms)
        }
        Ending::External(c) => {
            stop_running = true;
            match c {
                Completion::Completed(result) => {
                    outcome(&mut row, "completed");
                    completed(result)
                }
                Completion::Failed(f) => {
                    outcome(&mut row, "failed");
                    fail(a, f, now.ms)
                }
                Completion::Cancelled => {
                    outcome(&mut row, "cancelled");
                    cancelled(None)
                }
            }
        }
        Ending::Operator(f) => {
            stop_running = true;
            outcome(&mut row, "failed");
            Decision::Close {
                how: Closed::Failed,
                result: None,
                failure: Some(f),
            }
        }
    };
    let details = heartbeat.as_deref().unwrap_or(&a.heartbeat);
    let mut progress = a.progress.clone();
    if !details.is_empty() {
        let json = payloads_json(details);
        row.heartbeat_details = Some(json.clone());
        progress.heartbeat_details = Some(json);
    }
    let after = match decision {
        Decision::Close {
            how,
            result,
            failure,
        } => {
            if let Some(f) = &failure {
                row.failure_type = Some(f.error_type.clone());
                row.failure_message = Some(f.message.clone());
            }
            close(&mut progress, how, result, failure, now.ms);
            After::Closed { dequeue: false }
        }
        Decision::Retry { delay, failure } => {
            row.failure_type = Some(failure.error_type.clone());
            row.failure_message = Some(failure.message.clone());
            progress.last_failure = serde_json::to_string(&failure).ok();
            progress.state = RunState::Scheduled;
            progress.attempt = attempt + 1;
            progress.attempt_scheduled_ms = now.ms.saturating_add(bounds::millis(delay));
            progress.started_ms = None;
            After::Retry {
                attempt: attempt + 1,
                delay,
            }
        }
        Decision::AwaitAsync => {
            row.ended_ms = None;
            progress.state = RunState::AwaitingAsync {
                task_token: a.progress.state.task_token().map(str::to_owned),
            };
            let started = a.progress.started_ms.unwrap_or(now.ms);
            let elapsed = Duration::from_millis(now.ms.saturating_sub(started));
            let remaining = a.options.attempt_timeout().saturating_sub(elapsed);
            After::AwaitAsync {
                attempt,
                deadline: bounds::later(now.at, remaining),
            }
        }
    };
    Plan::Write(Box::new(Transition {
        progress,
        attempt_row: Some(row),
        after,
        ends_attempt: true,
        stop_running,
    }))
}

fn completed(result: Payload) -> Decision {
    Decision::Close {
        how: Closed::Completed,
        result: Some(result),
        failure: None,
    }
}

fn cancelled(failure: Option<Failure>) -> Decision {
    Decision::Close {
        how: Closed::Cancelled,
        result: None,
        failure,
    }
}

/// A failed attempt: cancelled if cancellation was requested, closed if the
/// failure is final, else retried after the policy's delay.
fn fail(a: &Activity, f: Failure, now_ms: u64) -> Decision {
    if a.progress.cancel_requested {
        return cancelled(Some(f));
    }
    let how = if f.timeout_type.is_some() {
        Closed::TimedOut
    } else {
        Closed::Failed
    };
    let closed = |f| Decision::Close {
        how,
        result: None,
        failure: Some(f),
    };
    if matches!(
        f.timeout_type,
        Some(TimeoutType::ScheduleToClose | TimeoutType::ScheduleToStart)
    ) {
        return closed(f);
    }
    let delay = retry::next_delay(
        &a.options.retry_policy,
        a.progress.attempt,
        &RetryFailure {
            error_type: &f.error_type,
            non_retryable: f.non_retryable,
            next_retry_delay: f.next_retry_delay(),
        },
    );
    let within_schedule_to_close = |d: Duration| {
        a.options.schedule_to_close_timeout.is_none_or(|stc| {
            now_ms.saturating_add(bounds::millis(d))
                < a.fixed.scheduled_ms.saturating_add(bounds::millis(stc))
        })
    };
    match delay {
        Some(delay) if within_schedule_to_close(delay) => Decision::Retry { delay, failure: f },
        _ => closed(f),
    }
}

/// Marks progress closed (counted once the close is written).
fn close(
    p: &mut ActivityProgress,
    how: Closed,
    result: Option<Payload>,
    failure: Option<Failure>,
    now_ms: u64,
) {
    p.state = RunState::Closed {
        how,
        closed_ms: now_ms,
    };
    p.result = result.map(|r| serde_json::to_string(&r).unwrap_or_default());
    if let Some(f) = failure {
        p.last_failure = serde_json::to_string(&f).ok();
    }
}

#[cfg(test)]
pub(super) mod fixture;
#[cfg(test)]
mod tests;
