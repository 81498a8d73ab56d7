//! The namespace's configuration and secrets, as granted to this module.
//!
//! Thin, typed wrappers over the imported WIT `config` interface. An
//! operator sets variables per namespace and grants each to modules by name
//! (`wharf namespace config set NS KEY VALUE --grant MODULE`); a module reads
//! only what it was granted, never through the environment.
//!
//! ```no_run
//! use wharf_guest::{config, ActivityError};
//!
//! fn call_api() -> Result<(), ActivityError> {
//!     let key = config::get("API_KEY")?
//!         .ok_or_else(|| ActivityError::non_retryable("API_KEY is not set"))?;
//!     # let _ = key;
//!     Ok(())
//! }
//! ```

use crate::__private::bindings::wharf::activity::config as host;
use crate::error::ActivityError;

/// Why a variable could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The variable exists but is not granted to this module.
    Denied {
        /// The variable asked for.
        key: String,
    },
    /// The host could not answer.
    Unavailable(String),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Denied { key } => {
                write!(
                    f,
                    "configuration variable {key:?} is not granted to this module"
                )
            }
            ConfigError::Unavailable(why) => write!(f, "configuration unavailable: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A denied read is a non-retryable failure of type `ConfigDenied`: a retry
/// would be denied again.
impl From<ConfigError> for ActivityError {
    fn from(e: ConfigError) -> Self {
        match &e {
            ConfigError::Denied { .. } => {
                ActivityError::non_retryable(e.to_string()).with_type("ConfigDenied")
            }
            ConfigError::Unavailable(_) => ActivityError::retryable(e.to_string()),
        }
    }
}

/// The value of variable `key`: `Ok(None)` if the namespace has no such
/// variable, [`ConfigError::Denied`] if it exists but is not granted to this
/// module.
pub fn get(key: &str) -> Result<Option<String>, ConfigError> {
    host::get(key).map_err(|e| match e {
        host::ConfigError::Denied => ConfigError::Denied {
            key: key.to_owned(),
        },
        host::ConfigError::Unavailable(why) => ConfigError::Unavailable(why),
    })
}

/// Names of the variables granted to this module, sorted.
pub fn granted_keys() -> Vec<String> {
    host::granted_keys()
}
