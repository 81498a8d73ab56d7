//! Whether a new run's row has committed.
//!
//! A new run is in memory, found by its id, from the moment its row is
//! queued for writing (`start.rs`), and its start is answered only once the
//! row has committed. Another start with the same id in between must not
//! answer "existing" for a run that may yet be undone: it waits for that
//! write to settle, then answers as the first start was answered.
//!
//! A first attempt may begin before the write commits; the write then
//! awaits its end (`ends`), which the writer may commit with it.

use crate::store::Awaited;
use std::sync::atomic::{AtomicU8, Ordering};

/// One write of new runs' rows (a start, or a batch of them), shared by
/// the runs it holds.
#[derive(Default)]
pub(crate) struct RowWrite {
    state: AtomicU8,
    /// Attempts of its runs that began before it settled and have not
    /// ended.
    pub(crate) ends: Awaited,
}

const PENDING: u8 = 0;
const COMMITTED: u8 = 1;
const FAILED: u8 = 2;

impl RowWrite {
    pub(crate) fn settle(&self, committed: bool) {
        let state = if committed { COMMITTED } else { FAILED };
        self.state.store(state, Ordering::Release);
    }

    /// `None` while the write is pending; then whether it committed.
    pub(crate) fn settled(&self) -> Option<bool> {
        match self.state.load(Ordering::Acquire) {
            PENDING => None,
            state => Some(state == COMMITTED),
        }
    }
}
