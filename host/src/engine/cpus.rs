//! Keeping the epoch ticker off the CPUs that run guests.
//!
//! Each tick wakes the ticking thread (`ticker.rs`) from a timer, and the
//! timer's interrupt lands on the CPU the thread sleeps on. On the virtual
//! machine wharf is measured on, an interrupt takes tens of microseconds
//! from whatever runs on that CPU: a C loop of 3 µs work units had p99.9
//! 28 - 40 µs from the kernel's own 250 Hz tick alone, and 47 - 48 µs with a
//! 1 kHz timer signalling the loop's thread. When the kernel had put the
//! ticking thread beside a running attempt, every tick landed in one:
//! `wharf bench instantiate` (Rust `noop`, `-n 5000`, beside JS and
//! Python) had p99 of 22.9 - 27.2 µs in 5 of 21 rounds and 9.8 - 17.6 µs
//! in the others; with the thread keeping off, 9.6 - 15.8 µs in all 21.
//!
//! So the ticker notes the CPU each shard's latest sandbox started on, and
//! after each sleep it checks its own: if a guest runs there and some CPU
//! the process may use runs none, it narrows its own affinity to those. When
//! every CPU runs guests it stays where it is.

/// The CPU the calling thread runs on, if the system says.
pub(super) fn current() -> Option<usize> {
    // SAFETY: no arguments; glibc reads it from the thread's `rseq` area.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok().filter(|&c| c < SET_SIZE)
}

/// CPUs a `cpu_set_t` can name.
const SET_SIZE: usize = libc::CPU_SETSIZE as usize;

/// A set of CPUs.
#[derive(Clone, Copy)]
pub(super) struct Cpus(libc::cpu_set_t);

impl Cpus {
    fn empty() -> Self {
        // SAFETY: `cpu_set_t` is plain bits; zero is the empty set.
        Self(unsafe { std::mem::zeroed() })
    }

    /// The CPUs the calling thread may run on.
    pub(super) fn allowed() -> Option<Self> {
        let mut set = Self::empty();
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes.
        let r = unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set.0)
        };
        (r == 0).then_some(set)
    }

    pub(super) fn of(cpus: impl IntoIterator<Item = usize>) -> Self {
        let mut set = Self::empty();
        for cpu in cpus.into_iter().filter(|&c| c < SET_SIZE) {
            // SAFETY: `cpu` is within the set's size.
            unsafe { libc::CPU_SET(cpu, &mut set.0) };
        }
        set
    }

    pub(super) fn contains(&self, cpu: usize) -> bool {
        // SAFETY: `cpu` is within the set's size.
        cpu < SET_SIZE && unsafe { libc::CPU_ISSET(cpu, &self.0) }
    }

    /// These CPUs without `other`'s.
    pub(super) fn without(&self, other: &Self) -> Self {
        let mut set = *self;
        for cpu in (0..SET_SIZE).filter(|&c| other.contains(c)) {
            // SAFETY: `cpu` is within the set's size.
            unsafe { libc::CPU_CLR(cpu, &mut set.0) };
        }
        set
    }

    pub(super) fn is_empty(&self) -> bool {
        // SAFETY: reads the set's own bits.
        unsafe { libc::CPU_COUNT(&self.0) == 0 }
    }

    fn same(&self, other: &Self) -> bool {
        // SAFETY: reads both sets' own bits.
        unsafe { libc::CPU_EQUAL(&self.0, &other.0) }
    }
}

/// Where the ticking thread may run.
pub(super) struct Placement {
    allowed: Cpus,
    current: Cpus,
}

impl Placement {
    /// The calling thread's placement as it starts; `None` if the system
    /// does not say.
    pub(super) fn new() -> Option<Self> {
        let allowed = Cpus::allowed()?;
        Some(Self {
            allowed,
            current: allowed,
        })
    }

    /// Moves the calling thread off `busy` (CPUs running guests) if it is on
    /// one of them and a CPU it may use is not.
    pub(super) fn step_aside(&mut self, busy: &Cpus) {
        let Some(here) = current() else { return };
        if !busy.contains(here) {
            return;
        }
        let free = self.allowed.without(busy);
        if free.is_empty() || free.same(&self.current) {
            return;
        }
        // SAFETY: the set is a valid `cpu_set_t` of the size passed.
        let r =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &free.0) };
        if r == 0 {
            self.current = free;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_on_a_busy_cpu_moves_to_a_free_one() {
        let Some(allowed) = Cpus::allowed() else {
            return;
        };
        let cpus: Vec<usize> = (0..SET_SIZE).filter(|&c| allowed.contains(c)).collect();
        if cpus.len() < 2 {
            return; // nowhere to move to
        }
        std::thread::spawn(move || {
            let mut placement = Placement::new().unwrap();
            let here = current().unwrap();
            placement.step_aside(&Cpus::of([here]));
            std::thread::yield_now();
            let now = current().unwrap();
            assert_ne!(now, here, "stayed on the busy CPU");
            assert!(allowed.contains(now));

            // Every CPU busy: it stays where it is.
            let before = current().unwrap();
            placement.step_aside(&Cpus::of(cpus.iter().copied()));
            std::thread::yield_now();
            assert!(placement.current.contains(before));
        })
        .join()
        .unwrap();
    }
}
