//! Timers of the activity state machine, in memory.
//!
//! One task owns a heap of deadlines. Setting a timer is a channel send; a
//! timer that fired for a state the activity has left is simply ignored by
//! the service (each event names the run and attempt it was set for), so
//! nothing is ever cancelled. At start the service re-arms every timer from
//! SQLite. Whether a timer is due is read from the service's clock; the task
//! sleeps for as long as that clock says is left.

use crate::clock::SharedClock;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerEvent {
    /// The attempt has waited too long for a worker.
    ScheduleToStart { run_id: i64, attempt: u32 },
    /// The activity as a whole has run too long.
    ScheduleToClose { run_id: i64 },
    /// Check that the attempt heartbeated in time.
    Heartbeat { run_id: i64, attempt: u32 },
    /// An attempt awaiting asynchronous completion has run too long.
    AsyncStartToClose { run_id: i64, attempt: u32 },
    /// Backoff is over: the attempt may be dispatched, if it is still due
    /// at `due_ms` (run now moves it earlier).
    Backoff {
        run_id: i64,
        attempt: u32,
        due_ms: u64,
    },
    /// Cancellation was requested this long ago: stop the attempt.
    CancelGrace { run_id: i64, attempt: u32 },
    /// The end of the attempt could not be written: write it again as it
    /// was kept (`kept.rs`), or, if it could not be kept, end it as lost
    /// (or by `timeout`, if a timeout ended it).
    Unpersisted {
        run_id: i64,
        attempt: u32,
        timeout: Option<crate::worker::TimeoutType>,
    },
}

impl TimerEvent {
    /// The run the timer is about.
    pub(crate) fn run_id(&self) -> i64 {
        match *self {
            TimerEvent::ScheduleToStart { run_id, .. }
            | TimerEvent::ScheduleToClose { run_id }
            | TimerEvent::Heartbeat { run_id, .. }
            | TimerEvent::AsyncStartToClose { run_id, .. }
            | TimerEvent::Backoff { run_id, .. }
            | TimerEvent::CancelGrace { run_id, .. }
            | TimerEvent::Unpersisted { run_id, .. } => run_id,
        }
    }
}

/// Handle to the timer task.
#[derive(Clone)]
pub(crate) struct Timers {
    tx: mpsc::UnboundedSender<(Instant, TimerEvent)>,
}

impl Timers {
    /// Starts the timer task; `fire` is called with each due event.
    pub(crate) fn start(clock: SharedClock, fire: impl Fn(TimerEvent) + Send + 'static) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, TimerEvent)>();
        tokio::spawn(async move {
            let mut heap: BinaryHeap<Reverse<(Instant, TimerEvent)>> = BinaryHeap::new();
            loop {
                let next = heap.peek().map(|Reverse((at, _))| *at);
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(entry) => heap.push(Reverse(entry)),
                        None => return,
                    },
                    _ = sleep_for(next.map(|at| at.saturating_duration_since(clock.now()))) => {
                        let now = clock.now();
                        while let Some(Reverse((at, ev))) = heap.peek().copied() {
                            if at > now {
                                break;
                            }
                            heap.pop();
                            fire(ev);
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Fires `event` at `at`.
    pub(crate) fn set(&self, at: Instant, event: TimerEvent) {
        let _ = self.tx.send((at, event));
    }
}

/// Sleeps for `left`, or for ever; a clock that does not follow the
/// system's (a test's) is read again when the sleep ends.
async fn sleep_for(left: Option<std::time::Duration>) {
    match left {
        Some(left) => tokio::time::sleep(left).await,
        None => std::future::pending().await,
    }
}
