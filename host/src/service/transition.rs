//! Transitions: what an ended attempt, a timer, a cancellation request or an
//! external completion does to an activity.
//!
//! Each transition is decided under the state lock, written through the
//! group commit, and only then made visible (waiters woken, the next attempt
//! queued). Events carry the attempt they are about; one about an attempt the
//! activity has left is ignored, which is how stale reports, timers and
//! duplicate completions are made harmless.

use super::activity::{payloads_from, payloads_json, state, Activity, StopReason};
use super::retry::{self, Failure as RetryFailure};
use super::start::at_ms;
use super::timers::TimerEvent;
use super::{activity, ActivityView, AttemptView, Service, ServiceError, Shared};
use crate::engine::{AttemptReport, Outcome};
use crate::payload::Payload;
use crate::store::activities::{self as rows, ActivityFixed, ActivityProgress, AttemptRow};
use crate::worker::{failure_of, log_tail, Failure, TimeoutType};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How an activity is finished from outside, by task token or id.
#[derive(Clone, Debug)]
pub enum Completion {
    /// Completed with a result.
    Completed(Payload),
    /// The attempt failed; the retry policy applies.
    Failed(Failure),
    /// Cancelled (after a cancellation request).
    Cancelled,
}

/// Why an attempt ended.
pub(super) enum Ending {
    /// The engine finished it; with the module `name@version` it ran.
    Report(Box<AttemptReport>, String),
    /// The host failed it without running it.
    Failed(Failure),
    /// The process running it died.
    WorkerLost,
    /// A timer ended an attempt awaiting asynchronous completion.
    Timeout(TimeoutType),
    /// Completed, failed or cancelled by task token or id.
    External(Completion),
}

enum Decision {
    Close {
        state: &'static str,
        result: Option<Payload>,
        failure: Option<Failure>,
    },
    Retry {
        delay: Duration,
        failure: Failure,
    },
    AwaitAsync,
}

/// A decided transition, to write and then apply.
struct Plan {
    run_id: i64,
    progress: ActivityProgress,
    attempt_row: Option<AttemptRow>,
    after: After,
}

enum After {
    Closed,
    Retry { attempt: u32, delay: Duration },
    AwaitAsync { attempt: u32, deadline: Instant },
    Nothing,
}

impl Shared {
    /// Ends attempt `attempt` of a run as `ending` says.
    pub(super) async fn end_attempt(self: &Arc<Self>, run_id: i64, attempt: u32, ending: Ending) {
        let plan = {
            let mut st = self.lock();
            let Some(a) = st.open.get_mut(&run_id) else {
                return;
            };
            if a.is_closed() || a.progress.attempt != attempt || a.progress.state != state::STARTED
            {
                return;
            }
            let plan = decide(a, ending, &self.counters);
            if let Some(p) = &plan {
                if !matches!(p.after, After::AwaitAsync { .. }) {
                    if let Some(t) = &a.progress.task_token {
                        let t = t.clone();
                        st.tokens.remove(&t);
                    }
                }
            }
            plan
        };
        if let Some(plan) = plan {
            self.commit(plan).await;
        }
    }

    /// Writes a plan, then makes it visible.
    async fn commit(self: &Arc<Self>, plan: Plan) {
        let Plan {
            run_id,
            progress,
            attempt_row,
            after,
        } = plan;
        let write = self
            .db
            .write_unguarded(move |c| {
                rows::save_progress(c, run_id, &progress)?;
                if let Some(row) = &attempt_row {
                    rows::save_attempt(c, row)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = write {
            // Memory has moved on; the database keeps the previous state and
            // the next start recovers from it.
            tracing::error!(run_id, "cannot persist a transition: {e}");
        }
        match after {
            After::Closed => {
                let mut st = self.lock();
                if let Some(a) = st.open.remove(&run_id) {
                    if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
                        t.open.fetch_sub(1, Ordering::Relaxed);
                    }
                    let key = (a.fixed.namespace.clone(), a.fixed.activity_id.clone());
                    if st.by_id.get(&key) == Some(&run_id) {
                        st.by_id.remove(&key);
                    }
                    a.closed.notify_waiters();
                }
            }
            After::Retry { attempt, delay } => {
                if delay.is_zero() {
                    self.schedule(run_id, attempt, false);
                } else {
                    self.timers.set(
                        tokio::time::Instant::now() + delay,
                        TimerEvent::Backoff { run_id, attempt },
                    );
                }
            }
            After::AwaitAsync { attempt, deadline } => {
                self.timers.set(
                    deadline.into(),
                    TimerEvent::AsyncStartToClose { run_id, attempt },
                );
            }
            After::Nothing => {}
        }
    }

    /// Closes an activity that has no attempt running (scheduled or in
    /// backoff), e.g. cancelled or timed out while waiting.
    fn close_waiting(
        &self,
        a: &mut Activity,
        state: &'static str,
        failure: Option<Failure>,
    ) -> Plan {
        close(a, state, None, failure, &self.counters);
        Plan {
            run_id: a.fixed.run_id,
            progress: a.snapshot(),
            attempt_row: None,
            after: After::Closed,
        }
    }

    /// A due timer.
    pub(super) async fn on_timer(self: Arc<Self>, ev: TimerEvent) {
        enum Then {
            Commit(Box<Plan>),
            End(i64, u32, Ending),
            Schedule(i64, u32),
            Nothing,
        }
        let then = {
            let mut st = self.lock();
            let run_id = match ev {
                TimerEvent::ScheduleToStart { run_id, .. }
                | TimerEvent::ScheduleToClose { run_id }
                | TimerEvent::Heartbeat { run_id, .. }
                | TimerEvent::AsyncStartToClose { run_id, .. }
                | TimerEvent::Backoff { run_id, .. }
                | TimerEvent::CancelGrace { run_id, .. } => run_id,
            };
            let Some(a) = st.open.get_mut(&run_id) else {
                return;
            };
            if a.is_closed() {
                return;
            }
            let started = a.progress.state == state::STARTED;
            let current = |n: u32| a.progress.attempt == n;
            match ev {
                TimerEvent::ScheduleToStart { attempt, .. } if !started && current(attempt) => {
                    let (ns, q) = (a.fixed.namespace.clone(), a.fixed.task_queue.clone());
                    let queue = st.queue(&ns, &q);
                    queue.remove(run_id);
                    let Some(a) = st.open.get_mut(&run_id) else {
                        return;
                    };
                    Then::Commit(Box::new(self.close_waiting(
                        a,
                        state::TIMED_OUT,
                        Some(Failure::timeout(TimeoutType::ScheduleToStart)),
                    )))
                }
                TimerEvent::ScheduleToClose { .. } => {
                    let attempt = a.progress.attempt;
                    if !started {
                        let f = Some(Failure::timeout(TimeoutType::ScheduleToClose));
                        Then::Commit(Box::new(self.close_waiting(a, state::TIMED_OUT, f)))
                    } else if let Some(r) = &mut a.running {
                        r.reason = Some(StopReason::Timeout(TimeoutType::ScheduleToClose));
                        r.stop.trigger();
                        Then::Nothing
                    } else {
                        Then::End(
                            run_id,
                            attempt,
                            Ending::Timeout(TimeoutType::ScheduleToClose),
                        )
                    }
                }
                TimerEvent::Heartbeat { attempt, .. } if started && current(attempt) => {
                    let Some(timeout) = a.options.heartbeat_timeout else {
                        return;
                    };
                    let due = a.last_alive + timeout;
                    if Instant::now() < due {
                        self.timers.set(due.into(), ev);
                        Then::Nothing
                    } else if let Some(r) = &mut a.running {
                        r.reason = Some(StopReason::Timeout(TimeoutType::Heartbeat));
                        r.stop.trigger();
                        Then::Nothing
                    } else {
                        Then::End(run_id, attempt, Ending::Timeout(TimeoutType::Heartbeat))
                    }
                }
                TimerEvent::AsyncStartToClose { attempt, .. }
                    if started && current(attempt) && a.progress.awaiting_async =>
                {
                    Then::End(run_id, attempt, Ending::Timeout(TimeoutType::StartToClose))
                }
                TimerEvent::Backoff { attempt, .. } if !started && current(attempt) => {
                    Then::Schedule(run_id, attempt)
                }
                TimerEvent::CancelGrace { attempt, .. } if started && current(attempt) => {
                    if let Some(r) = &mut a.running {
                        r.reason = Some(StopReason::Cancelled);
                        r.stop.trigger();
                        Then::Nothing
                    } else {
                        Then::End(run_id, attempt, Ending::External(Completion::Cancelled))
                    }
                }
                _ => Then::Nothing,
            }
        };
        match then {
            Then::Commit(plan) => self.commit(*plan).await,
            Then::End(run_id, attempt, ending) => self.end_attempt(run_id, attempt, ending).await,
            Then::Schedule(run_id, attempt) => self.schedule(run_id, attempt, false),
            Then::Nothing => {}
        }
    }

    /// Puts open runs loaded from SQLite back into memory, queues and timers.
    /// Returns the attempts that were running when the last process died.
    pub(super) fn restore_open(
        self: &Arc<Self>,
        open: Vec<(ActivityFixed, ActivityProgress)>,
    ) -> Vec<(i64, u32)> {
        let mut lost = Vec::new();
        let mut ready = Vec::new();
        let now_ms = crate::now_ms();
        {
            let mut st = self.lock();
            for (f, p) in open {
                let options: super::options::ActivityOptions =
                    serde_json::from_str(&f.options).unwrap_or_default();
                let run_id = f.run_id;
                let a = Activity {
                    input: Arc::new(payloads_from(Some(&f.input))),
                    heartbeat: payloads_from(p.heartbeat_details.as_deref()),
                    fixed: Arc::new(f),
                    options: Arc::new(options),
                    progress: p,
                    last_alive: Instant::now(),
                    heartbeat_written: None,
                    running: None,
                    closed: Arc::new(Notify::new()),
                };
                let attempt = a.progress.attempt;
                if let Some(d) = a.options.schedule_to_close_timeout {
                    self.timers.set(
                        at_ms(a.fixed.scheduled_ms) + d,
                        TimerEvent::ScheduleToClose { run_id },
                    );
                }
                if a.progress.state == state::SCHEDULED {
                    if let Some(d) = a.options.schedule_to_start_timeout {
                        let at = at_ms(a.progress.attempt_scheduled_ms) + d;
                        self.timers
                            .set(at, TimerEvent::ScheduleToStart { run_id, attempt });
                    }
                    if a.progress.attempt_scheduled_ms <= now_ms {
                        ready.push((run_id, attempt));
                    } else {
                        let at = at_ms(a.progress.attempt_scheduled_ms);
                        self.timers.set(at, TimerEvent::Backoff { run_id, attempt });
                    }
                } else if a.progress.awaiting_async {
                    if let Some(t) = &a.progress.task_token {
                        st.tokens.insert(t.clone(), run_id);
                    }
                    let started = at_ms(a.progress.started_ms.unwrap_or(now_ms));
                    let at = started + a.options.attempt_timeout();
                    self.timers
                        .set(at, TimerEvent::AsyncStartToClose { run_id, attempt });
                    if let Some(hb) = a.options.heartbeat_timeout {
                        let at = tokio::time::Instant::now() + hb;
                        self.timers
                            .set(at, TimerEvent::Heartbeat { run_id, attempt });
                    }
                } else {
                    lost.push((run_id, attempt));
                }
                if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
                    t.open.fetch_add(1, Ordering::Relaxed);
                }
                st.by_id.insert(
                    (a.fixed.namespace.clone(), a.fixed.activity_id.clone()),
                    run_id,
                );
                st.open.insert(run_id, a);
            }
        }
        for (run_id, attempt) in ready {
            // `first` is false: schedule-to-close timers were set above.
            self.schedule(run_id, attempt, false);
        }
        lost
    }
}

/// Marks an activity closed in memory.
fn close(
    a: &mut Activity,
    state: &'static str,
    result: Option<Payload>,
    failure: Option<Failure>,
    counters: &super::Counters,
) {
    a.progress.state = state.into();
    a.progress.closed_ms = Some(crate::now_ms());
    a.progress.awaiting_async = false;
    a.progress.result = result.map(|r| serde_json::to_string(&r).unwrap_or_default());
    if let Some(f) = failure {
        a.progress.last_failure = serde_json::to_string(&f).ok();
    }
    let counter = match state {
        state::COMPLETED => &counters.completed,
        state::FAILED => &counters.failed,
        state::CANCELLED => &counters.cancelled,
        _ => &counters.timed_out,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Decides what an ending does to a started activity. `None`: nothing to
/// record (the host is shutting down; the next start retries the attempt).
fn decide(a: &mut Activity, ending: Ending, counters: &super::Counters) -> Option<Plan> {
    let now_ms = crate::now_ms();
    let attempt = a.progress.attempt;
    let running = a.running.take();
    let reason = running.as_ref().and_then(|r| r.reason);
    let mut row = AttemptRow {
        run_id: a.fixed.run_id,
        attempt,
        started_ms: a.progress.started_ms.unwrap_or(now_ms),
        ended_ms: Some(now_ms),
        ..AttemptRow::default()
    };
    let past_schedule_to_close = a
        .options
        .schedule_to_close_timeout
        .is_some_and(|d| now_ms >= a.fixed.scheduled_ms + d.as_millis() as u64);

    let decision = match ending {
        Ending::Report(report, module) => {
            let report = *report;
            row.module = Some(module);
            row.log_tail = Some(log_tail(&report.log).to_owned()).filter(|l| !l.is_empty());
            row.outcome = Some(report.outcome.kind().to_owned());
            if let Some(hb) = report.last_heartbeat {
                a.heartbeat = hb;
            }
            match report.outcome {
                Outcome::Completed { result } => Decision::Close {
                    state: state::COMPLETED,
                    result: Some(result),
                    failure: None,
                },
                Outcome::WillCompleteAsync => Decision::AwaitAsync,
                Outcome::Cancelled => match reason {
                    Some(StopReason::Timeout(t)) => fail(a, Failure::timeout(t), now_ms),
                    Some(StopReason::Shutdown) => return None,
                    _ => cancelled(),
                },
                Outcome::TimedOut => {
                    let t = if past_schedule_to_close {
                        TimeoutType::ScheduleToClose
                    } else {
                        TimeoutType::StartToClose
                    };
                    fail(a, Failure::timeout(t), now_ms)
                }
                other => match failure_of(&other, &report.log) {
                    Some(f) => fail(a, f, now_ms),
                    None => cancelled(),
                },
            }
        }
        Ending::Failed(f) => {
            row.outcome = Some("failed".into());
            fail(a, f, now_ms)
        }
        Ending::WorkerLost => {
            row.outcome = Some("worker_lost".into());
            let f = Failure {
                error_type: "WorkerLost".into(),
                message: "the process running this attempt stopped before it ended".into(),
                ..Failure::default()
            };
            fail(a, f, now_ms)
        }
        Ending::Timeout(t) => {
            row.outcome = Some("timed_out".into());
            fail(a, Failure::timeout(t), now_ms)
        }
        Ending::External(c) => {
            if let Some(r) = &running {
                r.stop.trigger();
            }
            match c {
                Completion::Completed(result) => {
                    row.outcome = Some("completed".into());
                    Decision::Close {
                        state: state::COMPLETED,
                        result: Some(result),
                        failure: None,
                    }
                }
                Completion::Failed(f) => {
                    row.outcome = Some("failed".into());
                    fail(a, f, now_ms)
                }
                Completion::Cancelled => {
                    row.outcome = Some("cancelled".into());
                    cancelled()
                }
            }
        }
    };
    if !a.heartbeat.is_empty() {
        row.heartbeat_details = Some(payloads_json(&a.heartbeat));
    }
    let after = match decision {
        Decision::Close {
            state,
            result,
            failure,
        } => {
            if let Some(f) = &failure {
                row.failure_type = Some(f.error_type.clone());
                row.failure_message = Some(f.message.clone());
            }
            close(a, state, result, failure, counters);
            After::Closed
        }
        Decision::Retry { delay, failure } => {
            row.failure_type = Some(failure.error_type.clone());
            row.failure_message = Some(failure.message.clone());
            a.progress.last_failure = serde_json::to_string(&failure).ok();
            a.progress.state = state::SCHEDULED.into();
            a.progress.attempt = attempt + 1;
            a.progress.attempt_scheduled_ms = now_ms + delay.as_millis() as u64;
            a.progress.started_ms = None;
            a.progress.task_token = None;
            a.progress.awaiting_async = false;
            After::Retry {
                attempt: attempt + 1,
                delay,
            }
        }
        Decision::AwaitAsync => {
            row.ended_ms = None;
            a.progress.awaiting_async = true;
            let started = a.progress.started_ms.unwrap_or(now_ms);
            let elapsed = Duration::from_millis(now_ms.saturating_sub(started));
            let remaining = a.options.attempt_timeout().saturating_sub(elapsed);
            After::AwaitAsync {
                attempt,
                deadline: Instant::now() + remaining,
            }
        }
    };
    Some(Plan {
        run_id: a.fixed.run_id,
        progress: a.snapshot(),
        attempt_row: Some(row),
        after,
    })
}

fn cancelled() -> Decision {
    Decision::Close {
        state: state::CANCELLED,
        result: None,
        failure: None,
    }
}

/// A failed attempt: cancelled if cancellation was requested, closed if the
/// failure is final, else retried after the policy's delay.
fn fail(a: &Activity, f: Failure, now_ms: u64) -> Decision {
    if a.progress.cancel_requested {
        return Decision::Close {
            state: state::CANCELLED,
            result: None,
            failure: Some(f),
        };
    }
    let final_state = if f.timeout_type.is_some() {
        state::TIMED_OUT
    } else {
        state::FAILED
    };
    if matches!(
        f.timeout_type,
        Some(TimeoutType::ScheduleToClose | TimeoutType::ScheduleToStart)
    ) {
        return Decision::Close {
            state: final_state,
            result: None,
            failure: Some(f),
        };
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
            now_ms + (d.as_millis() as u64) < a.fixed.scheduled_ms + stc.as_millis() as u64
        })
    };
    match delay {
        Some(delay) if within_schedule_to_close(delay) => Decision::Retry { delay, failure: f },
        _ => Decision::Close {
            state: final_state,
            result: None,
            failure: Some(f),
        },
    }
}

/// Where an external completion or heartbeat is addressed.
#[derive(Clone, Debug)]
pub enum Target {
    /// The task token of the attempt.
    Token(String),
    /// The activity id (its current attempt).
    Id(String),
}

impl Service {
    fn resolve(&self, ns: &str, target: &Target) -> Result<(i64, u32), ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let st = s.lock();
        let run_id = match target {
            Target::Token(t) => *st.tokens.get(t).ok_or(ServiceError::TokenNotFound)?,
            Target::Id(id) => match st.by_id.get(&(ns.to_owned(), id.clone())) {
                Some(r) => *r,
                None => {
                    drop(st);
                    return Err(match s.db.latest_run(ns, id)? {
                        Some((_, p)) => ServiceError::Conflict(format!(
                            "activity {id:?} is already closed ({})",
                            p.state
                        )),
                        None => ServiceError::ActivityNotFound(id.clone()),
                    });
                }
            },
        };
        let a = st.open.get(&run_id).ok_or(ServiceError::TokenNotFound)?;
        if a.fixed.namespace != ns {
            // A token of another namespace is indistinguishable from none.
            return Err(ServiceError::TokenNotFound);
        }
        if a.is_closed() {
            return Err(ServiceError::Conflict(format!(
                "activity {:?} is already closed ({})",
                a.fixed.activity_id, a.progress.state
            )));
        }
        if a.progress.state != state::STARTED {
            return Err(ServiceError::Conflict(format!(
                "activity {:?} has no attempt in progress (it is {})",
                a.fixed.activity_id, a.progress.state
            )));
        }
        Ok((run_id, a.progress.attempt))
    }

    /// Completes, fails or cancels the current attempt from outside.
    pub async fn complete(
        &self,
        ns: &str,
        target: Target,
        completion: Completion,
    ) -> Result<ActivityView, ServiceError> {
        let limit = self.shared.cfg.payload_limit;
        let size = match &completion {
            Completion::Completed(p) => p.size(),
            Completion::Failed(f) => crate::payload::total_size(&f.details),
            Completion::Cancelled => 0,
        };
        if size > limit {
            return Err(ServiceError::PayloadTooLarge(format!(
                "the payload is {size} bytes; the limit is {limit} bytes"
            )));
        }
        let (run_id, attempt) = self.resolve(ns, &target)?;
        self.shared
            .end_attempt(run_id, attempt, Ending::External(completion))
            .await;
        self.describe_run(run_id)
    }

    /// Heartbeats the current attempt from outside; returns whether
    /// cancellation was requested.
    pub fn heartbeat(
        &self,
        ns: &str,
        target: Target,
        details: Vec<Payload>,
    ) -> Result<bool, ServiceError> {
        let limit = self.shared.cfg.payload_limit;
        let size = crate::payload::total_size(&details);
        if size > limit {
            return Err(ServiceError::PayloadTooLarge(format!(
                "heartbeat details are {size} bytes; the limit is {limit} bytes"
            )));
        }
        let (run_id, attempt) = self.resolve(ns, &target)?;
        self.shared.record_heartbeat(run_id, attempt, details);
        let st = self.shared.lock();
        Ok(st
            .open
            .get(&run_id)
            .is_some_and(|a| a.progress.cancel_requested))
    }

    /// Requests cancellation. A waiting activity closes at once; a running
    /// attempt sees it on its next heartbeat and is stopped after the grace
    /// period if it does not end.
    pub async fn cancel(&self, ns: &str, activity_id: &str) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let plan = {
            let mut st = s.lock();
            let Some(&run_id) = st.by_id.get(&(ns.to_owned(), activity_id.to_owned())) else {
                drop(st);
                return Err(match s.db.latest_run(ns, activity_id)? {
                    Some((_, p)) => ServiceError::Conflict(format!(
                        "activity {activity_id:?} is already closed ({})",
                        p.state
                    )),
                    None => ServiceError::ActivityNotFound(activity_id.to_owned()),
                });
            };
            // Keyed by (namespace, id): the run is in `ns`.
            let task_queue = st
                .open
                .get(&run_id)
                .map(|a| a.fixed.task_queue.clone())
                .unwrap_or_default();
            let queue = st.queue(ns, &task_queue);
            let Some(a) = st.open.get_mut(&run_id) else {
                return Err(ServiceError::ActivityNotFound(activity_id.to_owned()));
            };
            if a.is_closed() {
                return Err(ServiceError::Conflict(format!(
                    "activity {activity_id:?} is already closed ({})",
                    a.progress.state
                )));
            }
            if a.progress.cancel_requested {
                drop(st);
                return self.describe_run(run_id);
            }
            a.progress.cancel_requested = true;
            if a.progress.state == state::SCHEDULED {
                queue.remove(run_id);
                s.close_waiting(a, state::CANCELLED, None)
            } else {
                if let Some(r) = &a.running {
                    r.cancel.store(true, Ordering::Relaxed);
                }
                let attempt = a.progress.attempt;
                s.timers.set(
                    tokio::time::Instant::now() + s.cfg.cancel_grace,
                    TimerEvent::CancelGrace { run_id, attempt },
                );
                Plan {
                    run_id,
                    progress: a.snapshot(),
                    attempt_row: None,
                    after: After::Nothing,
                }
            }
        };
        let run_id = plan.run_id;
        s.commit(plan).await;
        self.describe_run(run_id)
    }

    /// Describes a run by run id, from memory when open.
    pub(super) fn describe_run(&self, run_id: i64) -> Result<ActivityView, ServiceError> {
        let s = &self.shared;
        // The attempt running now has no row until it ends: show it from memory.
        let from_memory = s.lock().open.get(&run_id).map(|a| {
            let running = a.running.as_ref().map(|r| AttemptView {
                attempt: a.progress.attempt,
                started_ms: a.progress.started_ms.unwrap_or_default(),
                ended_ms: None,
                outcome: Some("running".into()),
                failure_type: None,
                failure_message: None,
                log_tail: None,
                heartbeat_details: a.heartbeat.iter().map(Payload::to_json).collect(),
                module: Some(r.module.clone()),
            });
            (activity::view(&a.fixed, &a.snapshot()), running)
        });
        let (mut view, running) = match from_memory {
            Some(v) => v,
            None => {
                let (f, p) =
                    s.db.run(run_id)?
                        .ok_or_else(|| ServiceError::ActivityNotFound(run_id.to_string()))?;
                (activity::view(&f, &p), None)
            }
        };
        let mut attempts: Vec<AttemptView> =
            s.db.attempts(run_id)?.into_iter().map(Into::into).collect();
        if let Some(r) = running {
            if attempts.last().is_none_or(|l| l.attempt < r.attempt) {
                attempts.push(r);
            }
        }
        view.attempts = Some(attempts);
        Ok(view)
    }
}
