//! When the process's allocator gives freed memory back to the system.
//!
//! The `wharf` binary allocates through mimalloc (`main.rs`), which returns
//! memory it has not reused for a while (its *purge delay*, 1 s by
//! default) and takes fresh pages again when it next needs them. Under a
//! steady load the API threads then fault in and zero fresh pages for the
//! futures of new attempts over and over: in `wharf bench throughput`,
//! 230 - 1 400 page faults a second, 2.6 % of the server's CPU samples in
//! one profile (README, Benchmarks). Waiting ten seconds instead keeps the
//! memory of a steady load in use and still returns what a burst took
//! once it is over.
//!
//! mimalloc also asks the kernel for transparent huge pages on its arenas
//! (`madvise(MADV_HUGEPAGE)`), so each first touch of 2 MiB of heap is
//! faulted in and zeroed whole, and a heap of small objects (runs, their
//! futures, SQLite's page caches) is kept resident in 2 MiB pieces. The
//! process turns huge pages off for itself instead (README, Benchmarks:
//! resident memory and the kernel's CPU time as a load grows the heap).

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay` (milliseconds; -1 never purges), by
/// its place in the option enum of the mimalloc this crate links (v3).
const PURGE_DELAY: mi_option_t = 15;

/// The purge delay `wharf` runs with, unless `MIMALLOC_PURGE_DELAY` says
/// otherwise.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// Sets the purge delay to [`PURGE_DELAY_MS`] unless the environment chose
/// one, and turns transparent huge pages off for the process unless
/// `MIMALLOC_ALLOW_THP` chose (mimalloc reads that one itself). Call first
/// thing in `main`, before any thread starts: mimalloc's options are not
/// synchronised.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain store into mimalloc's option table, made while
        // the process has one thread.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as _) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        no_huge_pages();
    }
}

/// Turns transparent huge pages off for this process's memory from now on,
/// whatever `madvise` asked for: mimalloc's first arena is already mapped
/// (and advised) by the time `main` runs, and the kernel checks this flag
/// at each fault. A kernel without the call keeps its own setting; that
/// costs memory, not correctness, so it is logged nowhere.
fn no_huge_pages() {
    // SAFETY: `PR_SET_THP_DISABLE` takes integer arguments and touches no
    // memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The purge delay mimalloc uses now, in milliseconds.
    fn purge_delay_ms() -> i64 {
        // SAFETY: reads mimalloc's option table.
        let ms = unsafe { mi_option_get(PURGE_DELAY) };
        // `c_long` is `i32` on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        i64::from(ms)
    }

    /// The option at [`PURGE_DELAY`] is the purge delay: it starts at
    /// mimalloc v3's default, and a value set there is what mimalloc reads.
    /// A mimalloc whose options moved fails here, not silently in
    /// production.
    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 1_000, "mimalloc v3's default");
        tune();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }

    /// Whether transparent huge pages are off for this process
    /// (`PR_GET_THP_DISABLE`); `false` where the kernel cannot say.
    fn huge_pages_off() -> bool {
        // SAFETY: the call only returns the flag.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    /// The kernel reports huge pages off for the process once asked.
    /// (Not through `tune`, which the test above must call first.)
    #[test]
    fn huge_pages_are_off_once_turned_off() {
        no_huge_pages();
        assert!(huge_pages_off());
    }
}
