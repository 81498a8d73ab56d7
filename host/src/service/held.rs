//! Small inputs kept in memory from a start to its first attempt.
//!
//! An open activity keeps its payloads in SQLite (see [`super::activity`]),
//! so an attempt reads its input before it runs: a hop to a blocking thread
//! and a read on a reader connection whose page cache every commit has
//! emptied. Most activities start their first attempt within milliseconds of
//! their start, with an input of a few bytes, while the encoded input is
//! still in memory for the row's insert. A start keeps that same allocation
//! (no copy) when the input is at most [`MAX_HELD_INPUT`] bytes and the
//! process holds fewer than [`HELD_BUDGET`] bytes of such inputs; the first
//! attempt takes it, and every other attempt, or a start past the budget,
//! reads SQLite as before. A held input gives its bytes back to the budget
//! when dropped, whichever way its run leaves memory, so parked activities
//! cost at most the budget more than they did, plus the 24-byte field each
//! open activity has for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Largest input kept in memory, in bytes of its JSON encoding.
pub(crate) const MAX_HELD_INPUT: usize = 1024;
/// Most bytes held inputs take at once, over the process (see [`cost`]).
pub(crate) const HELD_BUDGET: usize = 16 << 20;
/// What a held input costs beyond its text: the shared allocation's two
/// counters and the allocator's rounding, so that a budget of tiny inputs
/// is not 16 MiB of text and several times that in memory.
const OVERHEAD: usize = 32;

fn cost(text: &str) -> usize {
    text.len().saturating_add(OVERHEAD)
}

/// The process's budget of held inputs. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct HeldInputs {
    used: Arc<AtomicUsize>,
    budget: usize,
}

impl Default for HeldInputs {
    fn default() -> Self {
        Self::with_budget(HELD_BUDGET)
    }
}

impl HeldInputs {
    pub(crate) fn with_budget(budget: usize) -> Self {
        Self {
            used: Arc::default(),
            budget,
        }
    }

    /// Holds `input` if it is small enough and fits the budget.
    pub(crate) fn hold(&self, input: &Arc<str>) -> Option<HeldInput> {
        if input.len() > MAX_HELD_INPUT {
            return None;
        }
        let len = cost(input);
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(len).filter(|&u| u <= self.budget)
            })
            .ok()?;
        Some(HeldInput {
            text: input.clone(),
            used: self.used.clone(),
        })
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// An input held in memory: its JSON encoding, as stored in SQLite.
#[derive(Debug)]
pub(crate) struct HeldInput {
    text: Arc<str>,
    used: Arc<AtomicUsize>,
}

impl HeldInput {
    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

impl Drop for HeldInput {
    fn drop(&mut self) {
        self.used.fetch_sub(cost(&self.text), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_held_within_the_budget_and_give_it_back_when_dropped() {
        let (six, four): (Arc<str>, Arc<str>) = (Arc::from("[1234]"), Arc::from("[12]"));
        let held = HeldInputs::with_budget(cost(&six) + cost(&four));
        let a = held.hold(&six).expect("fits");
        assert_eq!(a.text(), "[1234]");
        assert!(held.hold(&six).is_none(), "two of six are past the budget");
        let b = held.hold(&four).expect("six and four fit exactly");
        assert_eq!(held.used(), 10 + 2 * OVERHEAD);
        drop(a);
        assert_eq!(held.used(), cost(&four));
        drop(b);
        assert_eq!(held.used(), 0);

        let big: Arc<str> = Arc::from("x".repeat(MAX_HELD_INPUT + 1));
        assert!(HeldInputs::default().hold(&big).is_none(), "too large");
    }
}
