//! Applying decided transitions to memory: tokens, the running attempt,
//! what the undo keeps.

use super::*;
use crate::clock::Clock;
use crate::engine::Outcome;
use crate::service::decide::fixture::*;

/// A state holding `a` (run 7) with its token registered.
fn holding(a: crate::service::activity::Activity) -> State {
    let mut st = State::default();
    if let Some(t) = a.progress.state.task_token() {
        st.tokens.insert(t.to_owned(), 7);
    }
    st.open.insert(7, Box::new(a));
    st
}

#[test]
fn an_ended_attempt_gives_up_its_token_and_the_undo_restores_it() {
    let c = clock();
    let mut st = holding(running(&c));
    let t = written(decide(
        &st.open[&7],
        ended(report(Outcome::TimedOut)),
        c.read(),
    ));
    let p = apply(&mut st, 7, t, None).expect("the run is open");
    assert!(st.tokens.is_empty());
    assert_eq!(p.undo.token.as_deref(), Some("token"));
    assert!(
        p.undo.running.is_some(),
        "the running attempt is kept for the undo"
    );
    assert!(st.open[&7].running.is_none());
    // Memory keeps the progress without its payloads; the write has them.
    assert!(p.progress.last_failure.is_some());
    assert_eq!(st.open[&7].progress, activity::lean(p.progress.clone()));
    assert!(
        p.stop.is_none(),
        "an attempt that ended by itself is not stopped"
    );
}

#[test]
fn awaiting_async_keeps_the_token_and_an_external_end_stops_the_attempt() {
    let c = clock();
    let mut st = holding(running(&c));
    let e = ended(report(Outcome::WillCompleteAsync));
    let t = written(decide(&st.open[&7], e, c.read()));
    let p = apply(&mut st, 7, t, None).expect("the run is open");
    assert_eq!(st.tokens.get("token"), Some(&7));
    assert!(p.undo.token.is_none());

    let mut st = holding(running(&c));
    let e = ended(Ending::External(crate::service::Completion::Cancelled));
    let t = written(decide(&st.open[&7], e, c.read()));
    let p = apply(&mut st, 7, t, None).expect("the run is open");
    assert!(p.stop.is_some());
    assert!(st.tokens.is_empty());
}

#[test]
fn a_transition_for_a_run_that_left_memory_is_dropped() {
    let c = clock();
    let a = running(&c);
    let t = written(decide(&a, Event::CancelRequested, c.read()));
    assert!(apply(&mut State::default(), 7, t, None).is_none());
}

#[test]
fn an_ended_attempt_leaves_its_heartbeat_details_to_the_write_and_counts_their_size() {
    let c = clock();
    let mut a = running(&c);
    a.heartbeat = vec![crate::payload::Payload::json(&serde_json::json!(
        "progress"
    ))];
    let mut st = holding(a);
    let t = written(decide(
        &st.open[&7],
        ended(report(Outcome::TimedOut)),
        c.read(),
    ));
    let p = apply(&mut st, 7, t, None).expect("the run is open");
    let details = p.progress.heartbeat_details.clone().unwrap_or_default();
    assert_eq!(
        details,
        activity::payloads_json(&[crate::payload::Payload::json(&serde_json::json!(
            "progress"
        ))])
    );
    let a = &st.open[&7];
    assert!(
        a.heartbeat.is_empty(),
        "memory keeps no details between attempts"
    );
    assert_eq!(a.progress.heartbeat_details, None);
    assert_eq!(a.stored.heartbeat, details.len() as u64);
    assert_eq!(p.undo.heartbeat_bytes, Some(0));
    assert_eq!(p.undo.heartbeat.map(|h| h.len()), Some(1));
}
