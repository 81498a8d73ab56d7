//! Timeouts: what a due timer does to an activity.
//!
//! [`decide`] is the pure half, in the terms of [`super::decide`]: a
//! schedule-to-start or schedule-to-close timeout closes a waiting
//! activity; one that catches an attempt running here stops it (its report
//! then ends the attempt as timed out), one that catches an attempt running
//! nowhere (awaiting asynchronous completion, or restored after a crash)
//! ends it at once. A heartbeat timer that finds a sign of life since it
//! was set fires again later. [`Shared::on_timer`] is how the timer task
//! hands an event in.

use super::activity::{Activity, StopReason};
use super::bounds;
use super::decide::{close_waiting, end, Ending, Event, Plan};
use super::external::Completion;
use super::timers::TimerEvent;
use super::Shared;
use crate::clock::Now;
use crate::store::activities::Closed;
use crate::worker::{Failure, TimeoutType};
use std::sync::Arc;

/// Decides what a due timer does to an open activity at `now`.
pub(super) fn decide(a: &Activity, ev: TimerEvent, now: Now) -> Plan {
    let started = a.progress.state.is_started();
    let current = |n: u32| a.progress.attempt == n;
    // An attempt running here is stopped and ends by its report; one
    // running nowhere is ended now.
    let stop_or_end = |reason: StopReason, ending: Ending| match &a.running {
        Some(_) => Plan::Stop(reason),
        None => end(a, ending, now),
    };
    let timeout = |t: TimeoutType| stop_or_end(StopReason::Timeout(t), Ending::Timeout(t));
    match ev {
        TimerEvent::ScheduleToStart { attempt, .. } if !started && current(attempt) => {
            let f = Failure::timeout(TimeoutType::ScheduleToStart);
            close_waiting(a, Closed::TimedOut, f, now)
        }
        TimerEvent::ScheduleToClose { .. } if !started => {
            let f = Failure::timeout(TimeoutType::ScheduleToClose);
            close_waiting(a, Closed::TimedOut, f, now)
        }
        TimerEvent::ScheduleToClose { .. } => timeout(TimeoutType::ScheduleToClose),
        TimerEvent::Heartbeat { attempt, .. } if started && current(attempt) => {
            let Some(hb) = a.options.heartbeat_timeout else {
                return Plan::Ignore;
            };
            let due = bounds::later(a.last_alive, hb);
            if now.at < due {
                Plan::Rearm(due)
            } else {
                timeout(TimeoutType::Heartbeat)
            }
        }
        TimerEvent::AsyncStartToClose { attempt, .. }
            if current(attempt) && a.progress.state.awaiting_async() =>
        {
            end(a, Ending::Timeout(TimeoutType::StartToClose), now)
        }
        TimerEvent::Backoff {
            attempt, due_ms, ..
        } if !started && current(attempt) && a.progress.attempt_scheduled_ms == due_ms => {
            Plan::Dispatch { attempt }
        }
        TimerEvent::CancelGrace { attempt, .. } if started && current(attempt) => stop_or_end(
            StopReason::Cancelled,
            Ending::External(Completion::Cancelled),
        ),
        TimerEvent::Unpersisted {
            attempt, timeout, ..
        } if started && current(attempt) && a.running.is_none() => {
            end(a, timeout.map_or(Ending::WorkerLost, Ending::Timeout), now)
        }
        _ => Plan::Ignore,
    }
}

impl Shared {
    /// A due timer. A failed write is logged and undone by the commit,
    /// which sets the timer again.
    pub(super) async fn on_timer(self: Arc<Self>, ev: TimerEvent) {
        let _ = self.transition(ev.run_id(), Event::Timer(ev)).await;
    }
}

#[cfg(test)]
mod tests;
