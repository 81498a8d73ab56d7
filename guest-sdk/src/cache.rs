//! The process cache: bytes an activity keeps for later attempts on the
//! same process (the WIT `cache` interface).
//!
//! Every attempt starts from a fresh instance, so module-level variables
//! never carry over; this cache is the one deliberate exception. It holds
//! what an attempt stored, for attempts of the same module and namespace on
//! the same host process, until evicted (least recently used first, to stay
//! within the host's budget) or until the process stops. Code must work on
//! a miss. To find a warm cache, schedule follow-up activities on
//! [`ActivityInfo::worker_task_queue`](crate::ActivityInfo::worker_task_queue).
//!
//! ```no_run
//! use wharf_guest::{activity, cache, ActivityError};
//!
//! fn lookup(word: String) -> Result<Option<u64>, ActivityError> {
//!     let index: Vec<(String, u64)> = match cache::get_json("index") {
//!         Some(index) => index,
//!         None => {
//!             let index = vec![("wharf".to_owned(), 1)]; // built the slow way
//!             cache::set_json("index", &index)?;
//!             index
//!         }
//!     };
//!     Ok(index.iter().find(|(w, _)| *w == word).map(|(_, n)| *n))
//! }
//! # fn main() {}
//! ```

use crate::__private::bindings::wharf::activity::cache as host;
use crate::ActivityError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value was not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// Key and value together exceed the cache's budget.
    TooLarge {
        /// The budget in bytes.
        budget: u64,
    },
    /// The value could not be encoded as JSON.
    Encode(String),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::TooLarge { budget } => {
                write!(f, "value too large for the cache (budget {budget} bytes)")
            }
            CacheError::Encode(e) => write!(f, "cannot encode the value as JSON: {e}"),
        }
    }
}

impl std::error::Error for CacheError {}

impl From<CacheError> for ActivityError {
    fn from(e: CacheError) -> Self {
        ActivityError::non_retryable(e).with_type("CacheError")
    }
}

/// The bytes stored under `key`, if this process still has them.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::get(key)
}

/// Stores `value` under `key`, replacing any earlier value.
pub fn set(key: &str, value: &[u8]) -> Result<(), CacheError> {
    host::set(key, value).map_err(|e| match e {
        host::CacheError::TooLarge(budget) => CacheError::TooLarge { budget },
    })
}

/// Removes `key`, if present.
pub fn delete(key: &str) {
    host::delete(key)
}

/// The value stored under `key` as JSON, if present and decodable as `T`
/// (a value that no longer decodes counts as a miss).
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|b| serde_json::from_slice(&b).ok())
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), CacheError> {
    let bytes = serde_json::to_vec(value).map_err(|e| CacheError::Encode(e.to_string()))?;
    set(key, &bytes)
}
