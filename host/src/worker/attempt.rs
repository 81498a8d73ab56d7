//! The rules every attempt is set up by, whoever asks for it: its deadline,
//! its limits under the tenant's quotas, and the process cache it sees.
//!
//! * Deadline: the earlier of start-to-close after the attempt's start and
//!   schedule-to-close after the activity was scheduled
//!   ([`attempt_deadline`]), unless a Temporal server set it
//!   ([`Deadline`]). The guest sees it as `activity-info.deadline-ms` and the
//!   engine stops the attempt when it passes; an attempt whose deadline has
//!   already passed is not run at all.
//! * Limits: each of the host's base limits, lowered to the tenant's quota
//!   where the attempt has a tenant ([`AttemptQuotas`]); a quota above the
//!   host's limit acts as the host's limit.
//! * Process cache: scoped to the attempt's namespace and the name of its
//!   module, so the versions of a module share their entries (an activity
//!   routed to the process queue may run a newer version than the one that
//!   filled the cache) while other modules and tenants see none of them.

use crate::engine::{
    ActivityInfo, ActivityModule, AttemptHooks, AttemptLimits, Grants, NoHooks, StopSignal,
};
use crate::payload::Payload;
use std::sync::Arc;
use std::time::Duration;

/// The per-attempt part of a tenant's quotas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptQuotas {
    /// Memories and tables of one attempt, in bytes.
    pub memory_bytes: u64,
    /// CPU budget of one attempt in fuel units; `None` is unlimited.
    pub fuel: Option<u64>,
    /// Largest result or failure, in bytes.
    pub result_bytes: u64,
    /// Largest heartbeat details, in bytes.
    pub heartbeat_bytes: u64,
    /// The namespace's share of guest CPU against the others that want it
    /// at the same time (see `worker::fair`); at least 1.
    pub cpu_weight: u32,
}

/// Where an attempt's deadline comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// The activity's timeouts, counted from `info.started_ms` and
    /// `info.scheduled_ms`: the runner sets `info.deadline_ms` and gives the
    /// attempt exactly the time they leave. Neither: the base limit's
    /// timeout.
    Timeouts {
        /// Limit of the attempt.
        start_to_close: Option<Duration>,
        /// Limit of the whole activity.
        schedule_to_close: Option<Duration>,
    },
    /// `info.deadline_ms` as given, kept by someone else (a Temporal server,
    /// on its clock): the attempt has the time left until it.
    Given,
}

/// One attempt as its caller knows it; [`super::Runner`] decides the rest.
pub struct Attempt {
    /// The component to instantiate.
    pub module: ActivityModule,
    /// The name the module is known by in its namespace (its registry name,
    /// or its file's name without `.wasm`); the process cache is keyed by
    /// it.
    pub module_name: String,
    /// What the guest sees through `context.info`; its activity type is the
    /// one `run` is called with.
    pub info: ActivityInfo,
    /// Where the attempt's deadline comes from.
    pub deadline: Deadline,
    /// Arguments, passed unchanged.
    pub args: Vec<Payload>,
    /// The quotas of the tenant the attempt runs for; `None` where the host
    /// has no tenants (a Temporal worker, `wharf run`, a benchmark), so the
    /// base limits hold as they are.
    pub quotas: Option<AttemptQuotas>,
    /// What the attempt may reach beyond the sandbox.
    pub grants: Grants,
    /// Heartbeat and cancellation callbacks.
    pub hooks: Arc<dyn AttemptHooks>,
    /// Stops the attempt from outside.
    pub stop: StopSignal,
}

impl Attempt {
    /// An attempt of `activity_type` of `module` in `namespace` with no
    /// arguments, tenant, grants or callbacks (benchmarks, tests).
    pub fn bare(
        module: ActivityModule,
        module_name: &str,
        namespace: &str,
        activity_type: &str,
        deadline: Deadline,
    ) -> Self {
        Self {
            module,
            module_name: module_name.into(),
            info: ActivityInfo {
                namespace: namespace.into(),
                activity_type: activity_type.into(),
                ..ActivityInfo::default()
            },
            deadline,
            args: Vec::new(),
            quotas: None,
            grants: Grants::default(),
            hooks: Arc::new(NoHooks),
            stop: StopSignal::new(),
        }
    }
}

/// The name a module loaded from a file is known by: the file's name
/// without its extension (`resize` for `build/resize.wasm`).
pub fn file_module_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".into())
}

/// Milliseconds since the epoch by which an attempt started at `started_ms`
/// must end: the earlier of its own limit and the activity's overall one.
/// `None` when neither is set.
pub fn attempt_deadline(
    scheduled_ms: u64,
    started_ms: u64,
    start_to_close: Option<Duration>,
    schedule_to_close: Option<Duration>,
) -> Option<u64> {
    let after =
        |at: u64, d: Duration| at.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    [
        start_to_close.map(|d| after(started_ms, d)),
        schedule_to_close.map(|d| after(scheduled_ms, d)),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// The deadline an attempt gets (milliseconds since the epoch) and the
/// wall-clock time it may run, as of `now_ms`: zero once the deadline has
/// passed, `None` without one.
pub fn deadline(
    info: &ActivityInfo,
    deadline: Deadline,
    now_ms: u64,
) -> (Option<u64>, Option<Duration>) {
    match deadline {
        Deadline::Timeouts {
            start_to_close,
            schedule_to_close,
        } => {
            let waited = Duration::from_millis(info.started_ms.saturating_sub(info.scheduled_ms));
            let left = [
                start_to_close,
                schedule_to_close.map(|d| d.saturating_sub(waited)),
            ]
            .into_iter()
            .flatten()
            .min();
            let at = attempt_deadline(
                info.scheduled_ms,
                info.started_ms,
                start_to_close,
                schedule_to_close,
            );
            (at, left)
        }
        Deadline::Given => (
            info.deadline_ms,
            info.deadline_ms
                .map(|d| Duration::from_millis(d.saturating_sub(now_ms))),
        ),
    }
}

/// The limits of an attempt that may run for `timeout` (`None`: `base`'s
/// own): `base` lowered to `quotas`.
pub fn limits(
    base: &AttemptLimits,
    quotas: Option<&AttemptQuotas>,
    timeout: Option<Duration>,
) -> AttemptLimits {
    let timeout = timeout.or(base.timeout);
    let Some(q) = quotas else {
        return AttemptLimits {
            timeout,
            ..base.clone()
        };
    };
    let size = |host: usize, quota: u64| host.min(usize::try_from(quota).unwrap_or(usize::MAX));
    AttemptLimits {
        memory_bytes: size(base.memory_bytes, q.memory_bytes),
        fuel: match (base.fuel, q.fuel) {
            (Some(host), Some(quota)) => Some(host.min(quota)),
            (host, quota) => host.or(quota),
        },
        timeout,
        log_bytes: base.log_bytes,
        result_bytes: size(base.result_bytes, q.result_bytes),
        heartbeat_bytes: size(base.heartbeat_bytes, q.heartbeat_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_deadline_is_the_earlier_of_both_timeouts() {
        // Scheduled at 1 s, started at 5 s: schedule-to-close (1 s + 12 s)
        // ends before start-to-close (5 s + 10 s).
        assert_eq!(
            attempt_deadline(1_000, 5_000, Some(10 * S), Some(12 * S)),
            Some(13_000)
        );
        assert_eq!(attempt_deadline(1_000, 5_000, Some(S), None), Some(6_000));
        assert_eq!(attempt_deadline(1_000, 5_000, None, Some(S)), Some(2_000));
        assert_eq!(attempt_deadline(1_000, 5_000, None, None), None);
        assert_eq!(
            attempt_deadline(u64::MAX - 1, u64::MAX - 1, Some(10 * S), None),
            Some(u64::MAX)
        );
    }

    #[test]
    fn timeouts_give_the_exact_time_left_and_a_given_deadline_the_time_until_it() {
        let info = ActivityInfo {
            scheduled_ms: 1_000,
            started_ms: 5_000,
            deadline_ms: Some(10_500),
            ..ActivityInfo::default()
        };
        let timeouts = |stc, s2c| Deadline::Timeouts {
            start_to_close: stc,
            schedule_to_close: s2c,
        };
        assert_eq!(
            deadline(&info, timeouts(Some(10 * S), Some(12 * S)), 99_999),
            (Some(13_000), Some(8 * S)),
            "4 s of schedule-to-close were spent waiting"
        );
        assert_eq!(
            deadline(&info, timeouts(Some(S), None), 0),
            (Some(6_000), Some(S))
        );
        assert_eq!(
            deadline(&info, timeouts(None, Some(2 * S)), 0),
            (Some(3_000), Some(Duration::ZERO))
        );
        assert_eq!(deadline(&info, timeouts(None, None), 0), (None, None));
        assert_eq!(
            deadline(&info, Deadline::Given, 10_000),
            (Some(10_500), Some(S / 2))
        );
        assert_eq!(
            deadline(&info, Deadline::Given, 11_000),
            (Some(10_500), Some(Duration::ZERO))
        );
        let base = AttemptLimits::default();
        assert_eq!(limits(&base, None, None).timeout, base.timeout);
        assert_eq!(limits(&base, None, Some(S)).timeout, Some(S));
    }

    #[test]
    fn quotas_lower_the_host_limits_and_never_raise_them() {
        let base = AttemptLimits {
            memory_bytes: 256 << 20,
            fuel: Some(1_000),
            result_bytes: 2 << 20,
            heartbeat_bytes: 2 << 20,
            ..AttemptLimits::default()
        };
        let quotas = AttemptQuotas {
            memory_bytes: 64 << 20,
            fuel: Some(5_000),
            result_bytes: 1 << 20,
            heartbeat_bytes: u64::MAX,
            cpu_weight: 1,
        };
        let l = limits(&base, Some(&quotas), None);
        assert_eq!(l.memory_bytes, 64 << 20);
        assert_eq!(
            l.fuel,
            Some(1_000),
            "a larger quota acts as the host's limit"
        );
        assert_eq!(l.result_bytes, 1 << 20);
        assert_eq!(l.heartbeat_bytes, 2 << 20);
        assert_eq!(l.log_bytes, base.log_bytes);

        let unlimited = AttemptLimits {
            fuel: None,
            ..base.clone()
        };
        assert_eq!(limits(&unlimited, Some(&quotas), None).fuel, Some(5_000));
        assert_eq!(limits(&base, None, None), base, "no tenant: the base holds");
    }
}
