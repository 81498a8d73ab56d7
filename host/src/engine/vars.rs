//! The host side of `wharf:activity/config`: the namespace's variables
//! (configuration and secrets) that an attempt's module was granted.
//!
//! The service decides what a module may read and hands the engine a
//! [`ConfigGrants`] with the attempt: granted variables with their values,
//! the names of the others without them. So the engine never holds a value
//! the module may not read, and a denied read is answered (and logged)
//! without touching storage.

use super::context::wharf::activity::config::{ConfigError, Host};
use super::context::AttemptState;
use std::collections::{BTreeMap, BTreeSet};

/// What one attempt may read through `config`. Its `Debug` form shows
/// names only, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigGrants {
    granted: BTreeMap<String, String>,
    withheld: BTreeSet<String>,
}

impl ConfigGrants {
    /// Grants `key` with its value.
    pub fn grant(&mut self, key: &str, value: &str) {
        self.withheld.remove(key);
        self.granted.insert(key.to_owned(), value.to_owned());
    }

    /// Notes that `key` exists but is not granted (a read is denied, not
    /// answered as absent).
    pub fn withhold(&mut self, key: &str) {
        if !self.granted.contains_key(key) {
            self.withheld.insert(key.to_owned());
        }
    }

    /// Number of granted variables.
    pub fn granted_count(&self) -> usize {
        self.granted.len()
    }
}

impl std::fmt::Debug for ConfigGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigGrants")
            .field("granted", &self.granted.keys().collect::<Vec<_>>())
            .field("withheld", &self.withheld)
            .finish()
    }
}

impl Host for AttemptState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, ConfigError>> {
        if let Some(v) = self.config.granted.get(&key) {
            return Ok(Ok(Some(v.clone())));
        }
        if self.config.withheld.contains(&key) {
            self.log.line(&format!(
                "[wharf] config {key:?} denied: not granted to this module"
            ));
            return Ok(Err(ConfigError::Denied));
        }
        Ok(Ok(None))
    }

    fn granted_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.config.granted.keys().cloned().collect())
    }
}
