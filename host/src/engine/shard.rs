//! Which of the engine's shards a thread's attempts use.
//!
//! Attempts on two cores that share one wasmtime engine contend for it:
//! every instantiation updates the pool's shared state and the reference
//! counts of the component's modules and of the linker's host functions,
//! and those cache lines bounce between the cores. The engine is therefore
//! split into shards, each a wasmtime engine with its own instance pool,
//! linker and copy of every module, and each thread's attempts stay on one
//! shard, its *home*. Measured with `wharf bench instantiate` on the Rust
//! `noop` (2 cores): one shared engine ran 1.45-1.53x the attempts of one
//! core on two; a copy of the component per thread on one engine
//! 1.61-1.63x, of the component and linker 1.58-1.59x; an engine per
//! thread 1.76-1.82x.
//!
//! The guest runtime's threads are pinned to shards in turn when they
//! start; any other thread that runs an attempt takes the next shard the
//! first time it does.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    static HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Threads that took a home without being pinned, for round robin.
static UNPINNED: AtomicUsize = AtomicUsize::new(0);

/// Makes shard `index` (modulo the engine's shards) the calling thread's
/// home.
pub fn pin_thread(index: usize) {
    HOME.with(|h| h.set(Some(index)));
}

/// The calling thread's home among `shards` shards.
pub(super) fn home(shards: usize) -> usize {
    let index = HOME.with(|h| match h.get() {
        Some(i) => i,
        None => {
            let i = UNPINNED.fetch_add(1, Ordering::Relaxed);
            h.set(Some(i));
            i
        }
    });
    index % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_keep_their_shard() {
        let pinned: Vec<usize> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    pin_thread(i);
                    (home(2), home(2))
                })
            })
            .map(|t| t.join().unwrap())
            .map(|(a, b)| {
                assert_eq!(a, b, "a thread's home moved");
                a
            })
            .collect();
        assert_eq!(pinned, [0, 1, 0, 1]);
        let (a, b) = std::thread::spawn(|| (home(3), home(3))).join().unwrap();
        assert!(a < 3 && a == b, "an unpinned thread's home moved: {a} {b}");
    }
}
