//! How the operating system schedules wharf's threads against each other.
//!
//! Guests run on threads of lower priority (nice), so a guest that burns
//! its time slice delays only other guests. The threads that serve the API,
//! dispatch and commit (the control plane) take short time slices instead
//! of the default: when they wake, the kernel (Linux 6.12 or later, EEVDF
//! with custom slices) lets them preempt a running guest at once rather
//! than after the guest's slice. Measured in `wharf bench isolation` with
//! a busy tenant filling both cores (alternating runs of builds with and
//! without): a light tenant's schedule-to-start p50 2 ms → 1 ms, p99
//! 4-5 ms → 2-3 ms. Both settings are hints; a kernel that refuses them
//! leaves the thread as it was.

/// Lowers the calling thread's priority by `nice` (Linux: priorities are
/// per thread).
pub fn lower(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id; no memory
    // is shared with them.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The time slice control-plane threads ask for, in nanoseconds (the
/// kernel accepts 0.1 to 100 ms).
#[cfg(target_os = "linux")]
const CONTROL_SLICE_NS: u64 = 100_000;

/// Gives the calling thread a short time slice, keeping its priority
/// (`sched_setattr` with `sched_runtime` under `SCHED_OTHER`). Threads it
/// starts inherit the slice.
pub fn short_slice() {
    #[cfg(target_os = "linux")]
    set_slice(CONTROL_SLICE_NS);
}

/// Gives the calling thread the kernel's default time slice again (for
/// guest threads started from a control-plane thread).
pub fn default_slice() {
    #[cfg(target_os = "linux")]
    set_slice(0);
}

/// Sets the calling thread's time slice to `runtime` ns (0: the default).
#[cfg(target_os = "linux")]
fn set_slice(runtime: u64) {
    /// The kernel's `struct sched_attr` (first version, 48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        // SAFETY: reads the calling thread's own nice value.
        nice: unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
        priority: 0,
        runtime,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid sched_attr of the size it states, alive
    // for the call; thread id 0 is the calling thread.
    unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
    }
}
