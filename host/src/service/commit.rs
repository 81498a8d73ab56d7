//! Carrying out a decided transition: apply it to memory under the lock,
//! write it through the group commit, and only then make it visible
//! (waiters woken, the next attempt queued, timers set). If the write
//! fails, memory is put back as it was, so that it always agrees with
//! SQLite.
//!
//! The decisions themselves are in [`super::decide`] and
//! [`super::timeouts`]; every event reaches them through
//! [`Shared::transition`], which reads the time once from the service's
//! clock and hands it in.

use super::activity::{self, Running};
use super::bounds;
use super::decide::{decide, After, Ending, Event, Plan, Transition};
use super::timers::TimerEvent;
use super::{Shared, State};
use crate::engine::StopSignal;
use crate::payload::Payload;
use crate::store::activities::{self as rows, ActivityProgress, AttemptRow, Closed, RunState};
use crate::store::{Awaited, StoreError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a transition whose write failed waits before it is tried again
/// (a full disk or a failing device: retrying at once would only spin).
const REDO_AFTER: Duration = Duration::from_secs(1);

/// A transition applied to memory, to write and then make visible.
struct Pending {
    run_id: i64,
    progress: ActivityProgress,
    attempt_row: Option<AttemptRow>,
    after: After,
    /// Memory as it was before, put back if the write fails.
    undo: Undo,
    /// What to try again if the write fails, a little later; `None` when
    /// a caller is told instead (its request answers 503).
    redo: Option<TimerEvent>,
    /// A running attempt to stop once the transition is written.
    stop: Option<StopSignal>,
    /// The pending write of the run's row, awaiting this attempt's end.
    ends: Option<Awaited>,
}

/// What applying a transition changed in memory before it was written.
#[derive(Default)]
struct Undo {
    progress: Option<ActivityProgress>,
    heartbeat: Option<Vec<Payload>>,
    /// Bytes of the stored heartbeat details before.
    heartbeat_bytes: Option<u64>,
    /// Put back only for a caller's transition: an attempt that ended by
    /// itself is not running any more.
    running: Option<Running>,
    token: Option<String>,
}

/// What to try again if the transition `event` makes cannot be written.
fn redo_of(run_id: i64, event: &Event) -> Option<TimerEvent> {
    match event {
        Event::Ended {
            ending: Ending::External(_) | Ending::Operator(_),
            ..
        }
        | Event::CancelRequested
        | Event::RunNow
        | Event::FailRequested(_) => None,
        Event::Ended { attempt, ending } => Some(TimerEvent::Unpersisted {
            run_id,
            attempt: *attempt,
            timeout: match ending {
                Ending::Timeout(t) => Some(*t),
                _ => None,
            },
        }),
        Event::Timer(ev) => Some(*ev),
    }
}

impl Shared {
    /// Ends attempt `attempt` of a run as `ending` says. If the write fails,
    /// it is written again a little later (see [`Shared::undo`]). `held`
    /// (the namespace's slot the attempt ran in, if any) is freed once the
    /// ending is decided, before it is written: a slow commit then does not
    /// hold back the namespace's next attempts, while the ending's time
    /// still comes before the next attempt's start.
    pub(super) async fn end_attempt<H>(
        self: &Arc<Self>,
        run_id: i64,
        attempt: u32,
        ending: Ending,
        held: H,
    ) -> Result<(), StoreError> {
        self.transition_freeing(run_id, Event::Ended { attempt, ending }, held)
            .await
    }

    /// Decides `event` for a run at the clock's time and carries the plan
    /// out.
    pub(super) async fn transition(
        self: &Arc<Self>,
        run_id: i64,
        event: Event,
    ) -> Result<(), StoreError> {
        self.transition_freeing(run_id, event, ()).await
    }

    /// As [`Shared::transition`], dropping `held` once the plan is applied
    /// in memory, before anything is written.
    async fn transition_freeing<H>(
        self: &Arc<Self>,
        run_id: i64,
        event: Event,
        held: H,
    ) -> Result<(), StoreError> {
        let pending = self.decide_now(run_id, event);
        drop(held);
        match pending {
            Some(p) => self.commit(p).await,
            None => Ok(()),
        }
    }

    /// Decides `event` for a run at the clock's time and applies the plan
    /// in memory; what is left to write, if anything.
    fn decide_now(self: &Arc<Self>, run_id: i64, event: Event) -> Option<Pending> {
        let redo = redo_of(run_id, &event);
        let timer = match &event {
            Event::Timer(ev) => Some(*ev),
            _ => None,
        };
        let now = self.clock.read();
        let pending = {
            let mut st = self.lock();
            // An ending whose write failed earlier: written again as it was
            // decided, if the attempt is still where it was.
            let kept = match timer {
                Some(TimerEvent::Unpersisted { attempt, .. }) => st.kept_ends.take(run_id, attempt),
                _ => None,
            };
            let a = st.open.get(&run_id)?;
            let plan = match kept {
                Some(k) if a.progress.state.is_started() && a.progress.attempt == k.attempt => {
                    Plan::Write(Box::new(Transition {
                        progress: k.progress,
                        attempt_row: k.attempt_row,
                        after: k.after,
                        ends_attempt: true,
                        stop_running: false,
                    }))
                }
                Some(_) => return None,
                None => decide(a, event, now),
            };
            match plan {
                Plan::Ignore => return None,
                Plan::Forget => {
                    if let Some(a) = st.open.get_mut(&run_id) {
                        a.running = None;
                    }
                    return None;
                }
                Plan::Stop(reason) => {
                    if let Some(r) = st.open.get_mut(&run_id).and_then(|a| a.running.as_mut()) {
                        r.reason = Some(reason);
                        r.stop.trigger();
                    }
                    return None;
                }
                Plan::Dispatch { attempt } => {
                    drop(st);
                    self.schedule(run_id, attempt, false);
                    return None;
                }
                Plan::Rearm(at) => {
                    if let Some(ev) = timer {
                        self.timers.set(at, ev);
                    }
                    return None;
                }
                Plan::Write(t) => apply(&mut st, run_id, *t, redo),
            }
        };
        pending
    }

    /// Writes an applied transition, then makes it visible. If the write
    /// fails, nothing is made visible and memory is put back as it was
    /// (see [`Shared::undo`]).
    async fn commit(self: &Arc<Self>, p: Pending) -> Result<(), StoreError> {
        let Pending {
            run_id,
            progress,
            attempt_row,
            after,
            undo,
            redo,
            stop,
            ends,
        } = p;
        let written = (progress.state.clone(), progress.attempt);
        let due_ms = progress.attempt_scheduled_ms;
        // Shared with the write, and kept if it fails (an attempt's ending).
        let rows = Arc::new((progress, attempt_row));
        let to_write = Arc::clone(&rows);
        let write = self
            .db
            .write_unguarded(move |c| {
                if let Some(ends) = &ends {
                    ends.arrived();
                }
                let (progress, attempt_row) = &*to_write;
                let saved = rows::save_progress(c, run_id, progress)?;
                if let Some(row) = attempt_row.as_ref().filter(|_| saved) {
                    rows::save_attempt(c, row)?;
                }
                Ok(saved)
            })
            .await;
        if let Ok(false) = write {
            // No row: the run's start failed to commit after its first
            // attempt began (see `start.rs`). Nothing is kept or shown of a
            // run that does not exist; the start's refusal forgets it.
            self.transition_ended(run_id);
            return Ok(());
        }
        if let Err(e) = write {
            let kept = match redo {
                Some(TimerEvent::Unpersisted { attempt, .. }) => {
                    let (progress, attempt_row) =
                        Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone());
                    self.lock()
                        .kept_ends
                        .keep(run_id, attempt, progress, attempt_row, after)
                }
                _ => false,
            };
            if kept {
                tracing::warn!(
                    run_id,
                    "cannot persist an attempt's end; it is kept and written again later: {e}"
                );
            } else {
                tracing::error!(run_id, "cannot persist a transition; it is undone: {e}");
            }
            self.undo(run_id, &written, undo, redo);
            return Err(e);
        }
        if !matches!(after, After::Closed { .. }) {
            // A close takes the run out of memory, and this with it.
            self.transition_ended(run_id);
        }
        let (progress, attempt_row) = &*rows;
        self.trace_written(
            run_id,
            progress,
            attempt_row.as_ref(),
            undo.progress.as_ref(),
        );
        if let Some(stop) = stop {
            stop.trigger();
        }
        match after {
            After::Closed { dequeue } => self.closed(run_id, dequeue),
            After::Retry { attempt, delay } => {
                if delay.is_zero() {
                    self.schedule(run_id, attempt, false);
                } else {
                    self.timers.set(
                        bounds::later(self.clock.now(), delay),
                        TimerEvent::Backoff {
                            run_id,
                            attempt,
                            due_ms,
                        },
                    );
                }
            }
            After::AwaitAsync { attempt, deadline } => {
                self.timers
                    .set(deadline, TimerEvent::AsyncStartToClose { run_id, attempt });
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
                    bounds::later(self.clock.now(), self.cfg.cancel_grace),
                    TimerEvent::CancelGrace { run_id, attempt },
                );
            }
        }
        Ok(())
    }

    /// Notes that the write of a transition of `run_id` ended, for what
    /// describe shows (see `Activity::unwritten`).
    fn transition_ended(&self, run_id: i64) {
        if let Some(a) = self.lock().open.get_mut(&run_id) {
            a.transition_written();
        }
    }

    /// A written close: the run leaves memory, its queue and its
    /// namespace's count of open activities, and its waiters are woken.
    fn closed(&self, run_id: i64, dequeue: bool) {
        let mut st = self.lock();
        let Some(mut a) = st.open.remove(&run_id) else {
            return;
        };
        if let Some(how) = a.progress.state.closed() {
            count_closed(&self.counters, how);
        }
        let m = &self.counters.activity;
        let took = self.clock.now_ms().saturating_sub(a.fixed.scheduled_ms);
        m.closed(&a.figures(m), took as f64 / 1000.0);
        let queue_key = (a.fixed.namespace.clone(), a.fixed.task_queue.clone());
        st.forget_open(&a.fixed, run_id);
        if let Some(t) = st.namespaces.get(&a.fixed.namespace) {
            t.open.fetch_sub(1, Ordering::Relaxed);
            t.stored_changed(a.stored.total(), 0);
        }
        st.by_id.remove_run(&a.fixed);
        let queue = dequeue
            .then(|| st.queues.get(&queue_key).cloned())
            .flatten();
        drop(st);
        if let Some(q) = queue {
            q.remove(run_id);
        }
        if let Some(closed) = &a.closed {
            closed.notify_waiters();
        }
    }

    /// Puts memory back as it was before a transition whose write failed:
    /// SQLite still holds the state before it, and memory must agree with
    /// SQLite, or a restart would undo what was shown. A caller's transition
    /// (complete, fail, cancel by API) is simply refused (503) and may be
    /// sent again. One the host made itself (an attempt's outcome, a timer)
    /// is tried again after [`REDO_AFTER`]: an ended attempt's rows are
    /// written again as they were decided if they could be kept
    /// ([`super::kept`]), else it is recorded as lost and retried, exactly
    /// what a restart would do with the database as it is (its outcome was
    /// never acknowledged to anyone, and activities run at least once); a
    /// timer fires again.
    fn undo(
        self: &Arc<Self>,
        run_id: i64,
        written: &(RunState, u32),
        undo: Undo,
        redo: Option<TimerEvent>,
    ) {
        let now_ms = self.clock.now_ms();
        let requeue = {
            let mut st = self.lock();
            let Some(a) = st.open.get_mut(&run_id) else {
                return;
            };
            a.transition_written();
            // Another transition moved the run on meanwhile: its own undo
            // puts back what it changed.
            if (&a.progress.state, a.progress.attempt) != (&written.0, written.1) {
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
            if let Some(bytes) = undo.heartbeat_bytes {
                st.heartbeat_stored(run_id, bytes);
            }
            let Some(a) = st.open.get(&run_id) else {
                return;
            };
            // A dispatcher may have dropped its task while the close was
            // being written; a run in backoff waits for its timer instead.
            let requeue = (a.progress.state == RunState::Scheduled
                && a.progress.attempt_scheduled_ms <= now_ms)
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
                .set(bounds::later(self.clock.now(), REDO_AFTER), ev);
        }
    }
}

/// Applies a decided transition to memory: the run's progress (without
/// payloads, which only the write carries) and the size of its stored
/// heartbeat details, the attempt running here and the details it
/// reported, its task token. `None` if the run is gone.
fn apply(st: &mut State, run_id: i64, t: Transition, redo: Option<TimerEvent>) -> Option<Pending> {
    let a = st.open.get_mut(&run_id)?;
    let old_token = a.progress.state.task_token().map(str::to_owned);
    let before = std::mem::replace(&mut a.progress, activity::lean(t.progress.clone()));
    a.transition_applied(&before);
    let mut undo = Undo {
        progress: Some(before),
        ..Undo::default()
    };
    let mut stop = None;
    let mut ends = None;
    if t.ends_attempt {
        ends = a.attempt_ends();
        // Its details are in the transition now (or were stored earlier).
        undo.heartbeat = Some(std::mem::take(&mut a.heartbeat));
        let running = a.running.take();
        if t.stop_running {
            stop = running.as_ref().map(|r| r.stop.clone());
        }
        undo.running = running;
    }
    // A token is valid for its attempt only while the attempt is in
    // progress.
    if let Some(token) = old_token {
        if a.progress.state.task_token() != Some(token.as_str()) {
            st.tokens.remove(&token);
            undo.token = Some(token);
        }
    }
    if let Some(details) = &t.progress.heartbeat_details {
        undo.heartbeat_bytes = st.open.get(&run_id).map(|a| a.stored.heartbeat);
        st.heartbeat_stored(run_id, details.len() as u64);
    }
    Some(Pending {
        run_id,
        progress: t.progress,
        attempt_row: t.attempt_row,
        after: t.after,
        undo,
        redo,
        stop,
        ends,
    })
}

/// Counts a written close by its final state.
fn count_closed(counters: &super::Counters, how: Closed) {
    let counter = match how {
        Closed::Completed => &counters.completed,
        Closed::Failed => &counters.failed,
        Closed::Cancelled => &counters.cancelled,
        Closed::TimedOut => &counters.timed_out,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
