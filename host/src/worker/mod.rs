//! Runs attempts, the same way for the embedded service, the Temporal
//! bridge, `wharf run` and the benchmarks.
//!
//! A caller describes an attempt as it knows it ([`Attempt`]: the module,
//! its `activity-info`, arguments, the tenant's quotas if there is a
//! tenant, grants, heartbeat hooks) and takes a host slot; the [`Runner`]
//! decides everything else by one set of rules ([`attempt`]): the deadline,
//! the limits under the quotas, the process-cache scope. It runs the attempt
//! on the guest threads ([`Threads`]) and returns the engine's report,
//! which [`failure_of`] reads in Temporal's terms.
//!
//! * [`attempt`]: the rules: deadline, quota capping, cache scope.
//! * [`runner`]: what a process's attempts share, and running one.
//! * `slots`: the host's attempt slots, taken by namespaces in turn.
//! * `fair`: guest CPU shared between namespaces by their weights, and
//!   each attempt's CPU time.
//! * `threads`: the lower-priority runtime guests run on.
//! * `failure`: outcomes as failures (types, timeouts, log tails).
//!
//! Dependencies: this layer calls the engine; the service, the Temporal
//! bridge and the CLI call it.

pub mod attempt;
mod failure;
mod fair;
pub mod runner;
mod slots;
mod threads;

pub use attempt::{attempt_deadline, file_module_name, Attempt, AttemptQuotas, Deadline};
pub use failure::{failure_of, log_tail, Failure, TimeoutType, LOG_TAIL_BYTES};
pub use runner::{Runner, RunnerConfig};
pub use slots::HostSlot;
pub use threads::Threads;
