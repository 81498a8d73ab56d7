//! The state of an activity run as the `activities` table stores it: one
//! name in `state` (the one the API shows) and the columns only some states
//! use (`awaiting_async`, `task_token`, `closed_ms`), read into one enum.
//! A row whose columns name no state, or contradict each other, cannot be
//! read; recovery fails such a run instead of guessing.

/// Every name the `state` column holds, as [`RunState::as_str`] gives them.
pub const STATES: [&str; 6] = [
    "scheduled",
    "started",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
];

/// How a closed run ended; stored as the `state` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// With a result.
    Completed,
    /// With a failure after its last attempt.
    Failed,
    /// By cancellation.
    Cancelled,
    /// By a timeout that is not retried.
    TimedOut,
}

impl Closed {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Completed => "completed",
            Closed::Failed => "failed",
            Closed::Cancelled => "cancelled",
            Closed::TimedOut => "timed_out",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "completed" => Closed::Completed,
            "failed" => Closed::Failed,
            "cancelled" => Closed::Cancelled,
            "timed_out" => Closed::TimedOut,
            _ => return None,
        })
    }
}

/// Where a run is, with what that state alone carries. Stored as the
/// columns `state`, `awaiting_async`, `task_token` and `closed_ms`; the
/// names in `state` are those the API shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RunState {
    /// Waiting in the backlog, or in backoff before its next attempt.
    #[default]
    Scheduled,
    /// An attempt is running, addressable by its task token.
    Started {
        /// Task token of the attempt.
        task_token: Option<String>,
    },
    /// The attempt answered "will complete asynchronously" and waits to be
    /// completed, failed or heartbeated by its token or the activity id.
    AwaitingAsync {
        /// Task token of the attempt.
        task_token: Option<String>,
    },
    /// Closed for good.
    Closed {
        /// How.
        how: Closed,
        /// When, ms since the Unix epoch.
        closed_ms: u64,
    },
}

impl RunState {
    /// The stored and shown name: `scheduled`, `started`, `completed`,
    /// `failed`, `cancelled` or `timed_out`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Started { .. } | RunState::AwaitingAsync { .. } => "started",
            RunState::Closed { how, .. } => how.as_str(),
        }
    }

    /// An attempt is in progress (running or awaiting completion).
    pub fn is_started(&self) -> bool {
        matches!(
            self,
            RunState::Started { .. } | RunState::AwaitingAsync { .. }
        )
    }

    /// Closed for good.
    pub fn is_closed(&self) -> bool {
        matches!(self, RunState::Closed { .. })
    }

    /// When it closed, if it did.
    pub fn closed_ms(&self) -> Option<u64> {
        match self {
            RunState::Closed { closed_ms, .. } => Some(*closed_ms),
            _ => None,
        }
    }

    /// How it closed, if it did.
    pub fn closed(&self) -> Option<Closed> {
        match self {
            RunState::Closed { how, .. } => Some(*how),
            _ => None,
        }
    }

    /// The task token of the attempt in progress.
    pub fn task_token(&self) -> Option<&str> {
        match self {
            RunState::Started { task_token } | RunState::AwaitingAsync { task_token } => {
                task_token.as_deref()
            }
            _ => None,
        }
    }

    /// Waiting for asynchronous completion.
    pub fn awaiting_async(&self) -> bool {
        matches!(self, RunState::AwaitingAsync { .. })
    }

    /// Reads the stored columns; a name it does not know, or columns that
    /// contradict each other, are an error (recovery fails such a run).
    pub fn from_columns(
        state: &str,
        awaiting_async: bool,
        task_token: Option<String>,
        closed_ms: Option<u64>,
    ) -> Result<Self, String> {
        match (state, closed_ms) {
            ("scheduled", None) => Ok(RunState::Scheduled),
            ("started", None) if awaiting_async => Ok(RunState::AwaitingAsync { task_token }),
            ("started", None) => Ok(RunState::Started { task_token }),
            (s, Some(closed_ms)) => match Closed::parse(s) {
                Some(how) => Ok(RunState::Closed { how, closed_ms }),
                None => Err(format!("state {s:?} with a close time")),
            },
            (s, None) if Closed::parse(s).is_some() => {
                Err(format!("state {s:?} without a close time"))
            }
            (s, None) => Err(format!("unknown state {s:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_columns() {
        let token = Some("t".to_owned());
        let states = [
            RunState::Scheduled,
            RunState::Started {
                task_token: token.clone(),
            },
            RunState::AwaitingAsync { task_token: token },
            RunState::Closed {
                how: Closed::Completed,
                closed_ms: 7,
            },
            RunState::Closed {
                how: Closed::Failed,
                closed_ms: 7,
            },
            RunState::Closed {
                how: Closed::Cancelled,
                closed_ms: 7,
            },
            RunState::Closed {
                how: Closed::TimedOut,
                closed_ms: 7,
            },
        ];
        for s in states {
            let back = RunState::from_columns(
                s.as_str(),
                s.awaiting_async(),
                s.task_token().map(str::to_owned),
                s.closed_ms(),
            );
            assert_eq!(back, Ok(s.clone()), "{s:?}");
            assert!(STATES.contains(&s.as_str()), "{s:?}");
        }
    }

    #[test]
    fn unknown_or_contradictory_columns_are_refused() {
        for (name, closed) in [
            ("dancing", None),
            ("dancing", Some(1)),
            ("completed", None),
            ("scheduled", Some(1)),
            ("started", Some(1)),
            ("", None),
        ] {
            assert!(
                RunState::from_columns(name, false, None, closed).is_err(),
                "{name} {closed:?}"
            );
        }
    }
}
