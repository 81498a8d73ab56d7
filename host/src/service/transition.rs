//! Transitions: what an ended attempt, a timer, a cancellation request or an
//! external completion does to an activity.
//!
//! Each transition is decided under the state lock, written through the
//! group commit, and only then made visible (waiters woken, the next attempt
//! queued). Events carry the attempt they are about; one about an attempt the
//! activity has left is ignored, which is how stale reports, timers and
//! duplicate completions are made harmless.

use super::activity::{payloads_from, payloads_json, state, Activity, Running, StopReason};
use super::bounds;
use super::retry::{self, Failure as RetryFailure};
use super::start::at_ms;
use super::timers::TimerEvent;
use super::{activity, ActivityView, AttemptView, Service, ServiceError, Shared};
use crate::engine::{AttemptReport, Outcome, StopSignal};
use crate::payload::Payload;
use crate::store::activities::{self as rows, ActivityFixed, ActivityProgress, AttemptRow};
use crate::store::StoreError;
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
    /// Memory as it was before the decision, put back if the write fails.
    undo: Undo,
    /// What to try again if the write fails, a little later; `None` when
    /// a caller is told instead (its request answers 503).
    redo: Option<TimerEvent>,
    /// A running attempt to stop once the transition is written.
    stop: Option<StopSignal>,
}

/// What a decision changed in memory before it was written.
#[derive(Default)]
struct Undo {
    progress: Option<ActivityProgress>,
    heartbeat: Option<Vec<Payload>>,
    /// Put back only for a caller's transition: an attempt that ended by
    /// itself is not running any more.
    running: Option<Running>,
    token: Option<String>,
}

enum After {
    /// Closed; `dequeue`: it may still be in its queue's backlog.
    Closed {
        dequeue: bool,
    },
    Retry {
        attempt: u32,
        delay: Duration,
    },
    AwaitAsync {
        attempt: u32,
        deadline: Instant,
    },
    /// Cancellation requested of a started attempt: tell it, and stop it
    /// after the grace period.
    CancelRequested {
        attempt: u32,
    },
}

/// How long a transition whose write failed waits before it is tried again
/// (a full disk or a failing device: retrying at once would only spin).
const REDO_AFTER: Duration = Duration::from_secs(1);

impl Shared {
    /// Ends attempt `attempt` of a run as `ending` says. If the write fails,
    /// the ending is dropped and the attempt is ended again a little later
    /// (see [`Shared::undo`]).
    pub(super) async fn end_attempt(
        self: &Arc<Self>,
        run_id: i64,
        attempt: u32,
        ending: Ending,
    ) -> Result<(), StoreError> {
        let redo = match &ending {
            Ending::External(_) => None,
            Ending::Timeout(t) => Some(TimerEvent::Unpersisted {
                run_id,
                attempt,
                timeout: Some(*t),
            }),
            _ => Some(TimerEvent::Unpersisted {
                run_id,
                attempt,
                timeout: None,
            }),
        };
        self.end_attempt_then(run_id, attempt, ending, redo).await
    }

    async fn end_attempt_then(
        self: &Arc<Self>,
        run_id: i64,
        attempt: u32,
        ending: Ending,
        redo: Option<TimerEvent>,
    ) -> Result<(), StoreError> {
        let plan = {
            let mut st = self.lock();
            let Some(a) = st.open.get_mut(&run_id) else {
                return Ok(());
            };
            if a.is_closed() || a.progress.attempt != attempt || a.progress.state != state::STARTED
            {
                return Ok(());
            }
            let mut plan = decide(a, ending);
            if let Some(p) = &mut plan {
                p.redo = redo;
                if !matches!(p.after, After::AwaitAsync { .. }) {
                    if let Some(t) = &a.progress.task_token {
                        let t = t.clone();
                        st.tokens.remove(&t);
                        p.undo.token = Some(t);
                    }
                }
            }
            plan
        };
        match plan {
            Some(plan) => self.commit(plan).await,
            None => Ok(()),
        }
    }

    /// Writes a plan, then makes it visible. If the write fails, nothing is
    /// made visible and memory is put back as it was (see [`Shared::undo`]).
    async fn commit(self: &Arc<Self>, plan: Plan) -> Result<(), StoreError> {
        let Plan {
            run_id,
            progress,
            attempt_row,
            after,
            undo,
            redo,
            stop,
        } = plan;
        let written = (progress.state.clone(), progress.attempt, progress.closed_ms);
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
            tracing::error!(run_id, "cannot persist a transition; it is undone: {e}");
            self.undo(run_id, &written, undo, redo);
            return Err(e);
        }
        if let Some(stop) = stop {
            stop.trigger();
        }
        match after {
            After::Closed { dequeue } => {
                let mut st = self.lock();
                if let Some(a) = st.open.remove(&run_id) {
                    count_closed(&self.counters, &a.progress.state);
                    let queue_key = (a.fixed.namespace.clone(), a.fixed.task_queue.clone());
                    st.forget_open(&a.fixed, run_id);
                    if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
                        t.open.fetch_sub(1, Ordering::Relaxed);
                    }
                    let key = (a.fixed.namespace.clone(), a.fixed.activity_id.clone());
                    if st.by_id.get(&key) == Some(&run_id) {
                        st.by_id.remove(&key);
                    }
                    let queue = dequeue
                        .then(|| st.queues.get(&queue_key).cloned())
                        .flatten();
                    drop(st);
                    if let Some(q) = queue {
                        q.remove(run_id);
                    }
                    a.closed.notify_waiters();
                }
            }
            After::Retry { attempt, delay } => {
                if delay.is_zero() {
                    self.schedule(run_id, attempt, false);
                } else {
                    self.timers.set(
                        bounds::later(tokio::time::Instant::now(), delay),
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
            After::CancelRequested { attempt } => {
                if let Some(r) = self
                    .lock()
                    .open
                    .get(&run_id)
                    .and_then(|a| a.running.as_ref())
                {
                    r.cancel.store(true, Ordering::Relaxed);
                }
                self.timers.set(
                    bounds::later(tokio::time::Instant::now(), self.cfg.cancel_grace),
                    TimerEvent::CancelGrace { run_id, attempt },
                );
            }
        }
        Ok(())
    }

    /// Puts memory back as it was before a transition whose write failed:
    /// SQLite still holds the state before it, and memory must agree with
    /// SQLite, or a restart would undo what was shown. A caller's transition
    /// (complete, fail, cancel by API) is simply refused (503) and may be
    /// sent again. One the host made itself (an attempt's outcome, a timer)
    /// is tried again after [`REDO_AFTER`]: an ended attempt is then
    /// recorded as lost and retried, exactly what a restart would do with
    /// the database as it is (its outcome was never acknowledged to anyone,
    /// and activities run at least once); a timer fires again.
    fn undo(
        self: &Arc<Self>,
        run_id: i64,
        written: &(String, u32, Option<u64>),
        undo: Undo,
        redo: Option<TimerEvent>,
    ) {
        let requeue = {
            let mut st = self.lock();
            let Some(a) = st.open.get_mut(&run_id) else {
                return;
            };
            // Another transition moved the run on meanwhile: its own undo
            // puts back what it changed.
            let now = (&a.progress.state, a.progress.attempt, a.progress.closed_ms);
            if now != (&written.0, written.1, written.2) {
                return;
            }
            if let Some(p) = undo.progress {
                a.progress = p;
            }
            if let Some(h) = undo.heartbeat {
                a.heartbeat = h;
            }
            if redo.is_none() && undo.running.is_some() {
                a.running = undo.running;
            }
            // A dispatcher may have dropped its task while the close was
            // being written; a run in backoff waits for its timer instead.
            let requeue = (a.progress.state == state::SCHEDULED
                && a.progress.attempt_scheduled_ms <= crate::now_ms())
            .then(|| {
                (
                    (a.fixed.namespace.clone(), a.fixed.task_queue.clone()),
                    a.progress.attempt,
                )
            });
            if let Some(t) = undo.token {
                st.tokens.insert(t, run_id);
            }
            requeue.map(|(key, attempt)| (st.queues.get(&key).cloned(), attempt))
        };
        if let Some((queue, attempt)) = requeue {
            if let Some(q) = queue {
                q.remove(run_id);
            }
            self.schedule(run_id, attempt, false);
        }
        if let Some(ev) = redo {
            self.timers
                .set(bounds::later(tokio::time::Instant::now(), REDO_AFTER), ev);
        }
    }

    /// Closes an activity that has no attempt running (scheduled or in
    /// backoff), e.g. cancelled or timed out while waiting.
    /// `redo`: what to try again if the write fails (`None`: a caller is
    /// told).
    fn close_waiting(
        a: &mut Activity,
        state: &'static str,
        failure: Option<Failure>,
        redo: Option<TimerEvent>,
    ) -> Plan {
        let undo = Undo {
            progress: Some(a.progress.clone()),
            ..Undo::default()
        };
        close(a, state, None, failure);
        Plan {
            run_id: a.fixed.run_id,
            progress: a.snapshot(),
            attempt_row: None,
            after: After::Closed { dequeue: true },
            undo,
            redo,
            stop: None,
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
            let run_id = ev.run_id();
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
                    Then::Commit(Box::new(Self::close_waiting(
                        a,
                        state::TIMED_OUT,
                        Some(Failure::timeout(TimeoutType::ScheduleToStart)),
                        Some(ev),
                    )))
                }
                TimerEvent::ScheduleToClose { .. } => {
                    let attempt = a.progress.attempt;
                    if !started {
                        let f = Some(Failure::timeout(TimeoutType::ScheduleToClose));
                        Then::Commit(Box::new(Self::close_waiting(
                            a,
                            state::TIMED_OUT,
                            f,
                            Some(ev),
                        )))
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
                    let due = bounds::later_std(a.last_alive, timeout);
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
                TimerEvent::Unpersisted {
                    attempt, timeout, ..
                } if started && current(attempt) && a.running.is_none() => {
                    let ending = timeout.map_or(Ending::WorkerLost, Ending::Timeout);
                    Then::End(run_id, attempt, ending)
                }
                _ => Then::Nothing,
            }
        };
        // A failed write is logged and undone by `commit`; the timer is
        // set again there.
        match then {
            Then::Commit(plan) => {
                let _ = self.commit(*plan).await;
            }
            Then::End(run_id, attempt, ending) => {
                let _ = self
                    .end_attempt_then(run_id, attempt, ending, Some(ev))
                    .await;
            }
            Then::Schedule(run_id, attempt) => self.schedule(run_id, attempt, false),
            Then::Nothing => {}
        }
    }

    /// Puts open runs loaded from SQLite back into memory, queues and timers.
    /// Returns the attempts that were running when the last process died,
    /// and the runs whose stored state cannot be used (with why), which
    /// are in memory but have no timer and no task.
    pub(super) fn restore_open(
        self: &Arc<Self>,
        open: Vec<(ActivityFixed, ActivityProgress)>,
    ) -> Restored {
        let mut lost = Vec::new();
        let mut invalid = Vec::new();
        let mut ready = Vec::new();
        let now_ms = crate::now_ms();
        {
            let mut st = self.lock();
            for (f, p) in open {
                let run_id = f.run_id;
                let checked = stored_state_problem(&f, &p);
                let options = match &checked {
                    Ok(o) => o.clone(),
                    Err(why) => {
                        tracing::error!(
                            run_id,
                            namespace = f.namespace,
                            activity_id = f.activity_id,
                            "stored activity is invalid; failing it: {why}"
                        );
                        super::options::ActivityOptions::default()
                    }
                };
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
                let now = tokio::time::Instant::now();
                if let Err(why) = checked {
                    invalid.push((run_id, why));
                } else {
                    if let Some(d) = a.options.schedule_to_close_timeout {
                        self.timers.set(
                            bounds::later(at_ms(a.fixed.scheduled_ms), d),
                            TimerEvent::ScheduleToClose { run_id },
                        );
                    }
                    if a.progress.state == state::SCHEDULED {
                        if let Some(d) = a.options.schedule_to_start_timeout {
                            let at = bounds::later(at_ms(a.progress.attempt_scheduled_ms), d);
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
                        let at = bounds::later(started, a.options.attempt_timeout());
                        self.timers
                            .set(at, TimerEvent::AsyncStartToClose { run_id, attempt });
                        if let Some(hb) = a.options.heartbeat_timeout {
                            self.timers.set(
                                bounds::later(now, hb),
                                TimerEvent::Heartbeat { run_id, attempt },
                            );
                        }
                    } else {
                        lost.push((run_id, attempt));
                    }
                }
                if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
                    t.open.fetch_add(1, Ordering::Relaxed);
                }
                st.by_id.insert(
                    (a.fixed.namespace.clone(), a.fixed.activity_id.clone()),
                    run_id,
                );
                st.note_open(&a.fixed);
                st.open.insert(run_id, a);
            }
        }
        for (run_id, attempt) in ready {
            // `first` is false: schedule-to-close timers were set above.
            self.schedule(run_id, attempt, false);
        }
        (lost, invalid)
    }

    /// Fails runs whose stored state cannot be used (see
    /// [`Shared::restore_open`]) with the typed reason
    /// [`STORED_STATE_INVALID`]; a write that fails is reported and left for
    /// the next start.
    pub(super) async fn fail_invalid(self: &Arc<Self>, invalid: Vec<(i64, String)>) {
        for (run_id, why) in invalid {
            let plan = {
                let mut st = self.lock();
                let Some(a) = st.open.get_mut(&run_id) else {
                    continue;
                };
                if let Some(t) = a.progress.task_token.take() {
                    st.tokens.remove(&t);
                }
                let Some(a) = st.open.get_mut(&run_id) else {
                    continue;
                };
                let failure = Failure {
                    error_type: STORED_STATE_INVALID.into(),
                    message: format!(
                        "the stored state of this activity cannot be used ({why}); it was failed when the server started"
                    ),
                    non_retryable: true,
                    ..Failure::default()
                };
                Self::close_waiting(a, state::FAILED, Some(failure), None)
            };
            let _ = self.commit(plan).await;
        }
    }
}

/// What recovery found: attempts that were running (run id, attempt), and
/// runs whose stored state cannot be used (run id, why).
type Restored = (Vec<(i64, u32)>, Vec<(i64, String)>);

/// Failure type of an activity whose stored state could not be used after a
/// restart (options that do not parse or are out of range, an unknown
/// state); the activity is failed, not retried.
pub const STORED_STATE_INVALID: &str = "WharfStoredStateInvalid";

/// The options of a stored run, or what is wrong with the stored run.
fn stored_state_problem(
    f: &ActivityFixed,
    p: &ActivityProgress,
) -> Result<super::options::ActivityOptions, String> {
    if p.state != state::SCHEDULED && p.state != state::STARTED {
        return Err(format!("unknown open state {:?}", p.state));
    }
    if serde_json::from_str::<Vec<Payload>>(&f.input).is_err() {
        return Err("its input is not a list of payloads".into());
    }
    super::options::ActivityOptions::parse(&f.options).map_err(|e| format!("options: {e}"))
}

/// Marks an activity closed in memory (counted once the close is written).
fn close(a: &mut Activity, state: &'static str, result: Option<Payload>, failure: Option<Failure>) {
    a.progress.state = state.into();
    a.progress.closed_ms = Some(crate::now_ms());
    a.progress.awaiting_async = false;
    a.progress.result = result.map(|r| serde_json::to_string(&r).unwrap_or_default());
    if let Some(f) = failure {
        a.progress.last_failure = serde_json::to_string(&f).ok();
    }
}

/// Counts a written close by its final state.
fn count_closed(counters: &super::Counters, state: &str) {
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
fn decide(a: &mut Activity, ending: Ending) -> Option<Plan> {
    let now_ms = crate::now_ms();
    let attempt = a.progress.attempt;
    let mut undo = Undo {
        progress: Some(a.progress.clone()),
        ..Undo::default()
    };
    let mut stop = None;
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
        .is_some_and(|d| now_ms >= a.fixed.scheduled_ms.saturating_add(bounds::millis(d)));

    let decision = match ending {
        Ending::Report(report, module) => {
            let report = *report;
            row.module = Some(module);
            row.log_tail = Some(log_tail(&report.log).to_owned()).filter(|l| !l.is_empty());
            row.outcome = Some(report.outcome.kind().to_owned());
            if let Some(hb) = report.last_heartbeat {
                undo.heartbeat = Some(std::mem::replace(&mut a.heartbeat, hb));
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
            // Stopped once the ending is written: if the write fails, the
            // attempt goes on as if nothing had been sent.
            stop = running.as_ref().map(|r| r.stop.clone());
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
            close(a, state, result, failure);
            After::Closed { dequeue: false }
        }
        Decision::Retry { delay, failure } => {
            row.failure_type = Some(failure.error_type.clone());
            row.failure_message = Some(failure.message.clone());
            a.progress.last_failure = serde_json::to_string(&failure).ok();
            a.progress.state = state::SCHEDULED.into();
            a.progress.attempt = attempt + 1;
            a.progress.attempt_scheduled_ms = now_ms.saturating_add(bounds::millis(delay));
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
                deadline: bounds::later_std(Instant::now(), remaining),
            }
        }
    };
    undo.running = running;
    Some(Plan {
        run_id: a.fixed.run_id,
        progress: a.snapshot(),
        attempt_row: Some(row),
        after,
        undo,
        redo: None,
        stop,
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
            now_ms.saturating_add(bounds::millis(d))
                < a.fixed.scheduled_ms.saturating_add(bounds::millis(stc))
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
        let tenant = self.shared.tenant(ns)?;
        let limit =
            (self.shared.cfg.payload_limit).min(bounds::size(tenant.quotas().max_payload_bytes));
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
            .await?;
        self.describe_run(run_id)
    }

    /// Heartbeats the current attempt from outside; returns whether
    /// cancellation was requested. Answers once the details are written
    /// (unlike a guest's heartbeats, which are throttled): the caller is
    /// told they are kept.
    pub async fn heartbeat(
        &self,
        ns: &str,
        target: Target,
        details: Vec<Payload>,
    ) -> Result<bool, ServiceError> {
        let tenant = self.shared.tenant(ns)?;
        let limit =
            (self.shared.cfg.payload_limit).min(bounds::size(tenant.quotas().max_heartbeat_bytes));
        let size = crate::payload::total_size(&details);
        if size > limit {
            return Err(ServiceError::PayloadTooLarge(format!(
                "heartbeat details are {size} bytes; the limit is {limit} bytes"
            )));
        }
        let (run_id, attempt) = self.resolve(ns, &target)?;
        let json = payloads_json(&details);
        let at = crate::now_ms();
        self.shared
            .db
            .write_unguarded(move |c| rows::save_heartbeat(c, run_id, &json, at))
            .await?;
        let mut st = self.shared.lock();
        let Some(a) = st.open.get_mut(&run_id) else {
            return Ok(false);
        };
        if a.progress.attempt == attempt && a.progress.state == state::STARTED {
            let now = Instant::now();
            a.last_alive = now;
            a.heartbeat = details;
            a.heartbeat_written = Some(now);
            a.progress.heartbeat_ms = Some(at);
        }
        Ok(a.progress.cancel_requested)
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
            let before = a.progress.clone();
            a.progress.cancel_requested = true;
            let mut plan = if a.progress.state == state::SCHEDULED {
                Shared::close_waiting(a, state::CANCELLED, None, None)
            } else {
                Plan {
                    run_id,
                    progress: a.snapshot(),
                    attempt_row: None,
                    after: After::CancelRequested {
                        attempt: a.progress.attempt,
                    },
                    undo: Undo::default(),
                    redo: None,
                    stop: None,
                }
            };
            plan.undo.progress = Some(before);
            plan
        };
        let run_id = plan.run_id;
        s.commit(plan).await?;
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
