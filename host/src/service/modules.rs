//! A namespace's modules: uploads under its quotas, and the list.
//!
//! An upload is decided in two steps so that a refusal costs the server as
//! little as possible: [`Service::begin_upload`] checks the namespace, the
//! name and the module count before the body is read, and says how many
//! bytes the body may have; [`Service::upload_module`] then hands the bytes
//! to the registry, which validates and compiles them under the
//! namespace's own memory and fuel quotas rather than the host's defaults.
//! Content the namespace already has under the name makes no new version,
//! so it is answered even at the module quota: uploads are idempotent.
//!
//! A module (or one version) is deleted only while no queue's deployment
//! or rollout runs it; its files go once no module of any namespace has
//! the same content, the way a deleted namespace's do.

use super::{Service, ServiceError};
use crate::registry::UploadLimits;
use crate::store::modules::{ModuleDeletion, ModuleRecord};
use sha2::{Digest, Sha256};

/// Longest module name, in bytes.
pub const MAX_MODULE_NAME: usize = 100;

/// An upload that passed the checks made before its body is read.
#[derive(Debug)]
pub struct ModuleUpload {
    namespace: String,
    name: String,
    max_bytes: usize,
    /// Versions the namespace has, when that is its quota already.
    at_quota: Option<u64>,
    limits: UploadLimits,
}

impl ModuleUpload {
    /// The largest body accepted: the namespace's module size quota or the
    /// host's limit, whichever is smaller.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// A module name is 1-100 letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// [`valid_name`], refused with a 400 that says what a name is.
fn check_name(name: &str) -> Result<(), ServiceError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(ServiceError::InvalidArgument(
        "a module name is 1-100 characters of letters, digits, '-', '_' and '.'".into(),
    ))
}

impl Service {
    /// Checks an upload of `name` into `ns` before its body is read;
    /// `host_max_bytes` is the host's own limit on a module.
    pub fn begin_upload(
        &self,
        ns: &str,
        name: &str,
        host_max_bytes: usize,
    ) -> Result<ModuleUpload, ServiceError> {
        let quotas = self.tenant(ns)?.quotas();
        check_name(name)?;
        let modules = self.shared.db.module_count(ns)?;
        Ok(ModuleUpload {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            max_bytes: host_max_bytes
                .min(usize::try_from(quotas.max_module_bytes).unwrap_or(usize::MAX)),
            at_quota: (modules >= quotas.max_modules).then_some(modules),
            limits: UploadLimits {
                memory_bytes: usize::try_from(quotas.max_memory_per_attempt).unwrap_or(usize::MAX),
                fuel: quotas.fuel_per_attempt,
            },
        })
    }

    /// Validates, compiles and records the module; returns its version and
    /// whether it is new.
    pub async fn upload_module(
        &self,
        upload: ModuleUpload,
        bytes: Vec<u8>,
    ) -> Result<(ModuleRecord, bool), ServiceError> {
        let ModuleUpload {
            namespace: ns,
            name,
            at_quota,
            limits,
            ..
        } = upload;
        if let Some(modules) = at_quota {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            return match self.shared.db.module_by_content(&ns, &name, &sha256)? {
                Some(record) => Ok((record, false)),
                None => Err(ServiceError::QuotaExceeded(format!(
                    "namespace {ns:?} already has {modules} module versions, its quota"
                ))),
            };
        }
        let s = &self.shared;
        Ok(s.registry.upload(&s.db, &ns, &name, bytes, &limits).await?)
    }

    /// Deletes module `name` of `ns`, or one version of it; returns the
    /// versions deleted. Refused (conflict) while a queue deploys a version
    /// to delete; the files of contents no module has any more are removed.
    pub async fn delete_module(
        &self,
        ns: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Vec<u32>, ServiceError> {
        self.check_namespace(ns)?;
        check_name(name)?;
        let shown = match version {
            Some(v) => format!("{name}@{v}"),
            None => name.to_owned(),
        };
        match self.shared.db.delete_module(ns, name, version).await? {
            ModuleDeletion::NotFound => Err(ServiceError::ModuleNotFound(shown)),
            ModuleDeletion::Deployed(queues) => Err(ServiceError::Conflict(format!(
                "module {shown} is deployed to task queue(s) {}; deploy another module there first",
                queues.join(", ")
            ))),
            ModuleDeletion::Deleted { versions, orphaned } => {
                tracing::info!(
                    namespace = ns,
                    module = name,
                    ?versions,
                    contents = orphaned.len(),
                    "module deleted"
                );
                if version.is_none() {
                    // No version of the name is left to read what was cached.
                    self.shared.worker.cache().clear_module(ns, name);
                }
                self.remove_orphaned_contents().await;
                Ok(versions)
            }
        }
    }

    /// The namespace's module versions, by name and version.
    pub fn list_modules(&self, ns: &str) -> Result<Vec<ModuleRecord>, ServiceError> {
        self.check_namespace(ns)?;
        Ok(self.shared.db.list_modules(ns)?)
    }

    /// How the module of content `sha256` was loaded in this process (how
    /// long compiling or mapping it took), if it is in memory.
    pub fn module_load(&self, sha256: &str) -> Option<super::ModuleLoad> {
        self.shared
            .registry
            .cached(sha256)
            .map(|m| super::ModuleLoad::of(&m))
    }

    /// The task queues of namespace `ns` that have a deployment, with it.
    pub fn list_deployments(
        &self,
        ns: &str,
    ) -> Result<Vec<crate::store::flow::DeploymentRow>, ServiceError> {
        self.check_namespace(ns)?;
        let mut rows = self.shared.db.deployments()?;
        rows.retain(|d| d.namespace == ns);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn module_names_are_short_and_plain() {
        for ok in ["resize", "a", "img-2.0_b", &"x".repeat(100)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", &"x".repeat(101)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
