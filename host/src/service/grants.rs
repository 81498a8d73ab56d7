//! What a namespace's modules may reach beyond the sandbox: the outbound
//! HTTP policy and the configuration variables (secrets among them), each
//! granted to modules.
//!
//! A grant binds to module *content*, not to a name: tenants upload under
//! any name they like, so a grant to `billing` would otherwise follow
//! whatever a tenant uploads as `billing` next. When the administrator sets
//! a grant, `NAME` is resolved to the content (SHA-256) of the name's latest
//! version and `NAME@VERSION` to that version's; an attempt is granted what
//! is bound to the content it runs. A later upload under the name gets
//! nothing until the grant is set again. `*` grants every module of the
//! namespace, whatever it is.
//!
//! Both are stored as JSON columns of the namespace's row and held in memory
//! by its [`Tenant`]; when an attempt starts, [`Tenant::grants`] turns them
//! into the engine's [`Grants`] for the module that runs: its compiled egress
//! rules, and the values of the variables granted to it (only the names of
//! the others). Values are never shown back unless asked for explicitly.

use super::tenant::{view, NamespaceView, Tenant};
use super::{Service, ServiceError};
use crate::engine::{ConfigGrants, EgressPolicy, EgressRules, Grants};
use crate::store::tenancy::NamespaceRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Grants every module of the namespace.
pub const ALL_MODULES: &str = "*";

/// Most modules one grant list may name.
const MAX_GRANTS: usize = 100;

/// One module version a grant is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Binding {
    /// Module name.
    pub module: String,
    /// Its version.
    pub version: u32,
    /// Hex SHA-256 of its content: what the grant follows.
    pub sha256: String,
}

/// Whether any of `bound` is the content `sha256`.
fn binds(bound: &[Binding], sha256: &str) -> bool {
    bound.iter().any(|b| b.sha256 == sha256)
}

/// One configuration variable as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Var {
    /// The value.
    pub value: String,
    /// Modules that may read it as written (`*`: all of the namespace's).
    #[serde(default)]
    pub grants: Vec<String>,
    /// The module versions `grants` named when the variable was set.
    #[serde(default)]
    pub bound: Vec<Binding>,
    /// Last set, ms since the Unix epoch.
    #[serde(default)]
    pub updated_ms: u64,
}

impl Var {
    fn granted_to(&self, sha256: &str) -> bool {
        self.grants.iter().any(|g| g == ALL_MODULES) || binds(&self.bound, sha256)
    }
}

/// A variable as listed: its value only when asked for.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VarView {
    /// Name.
    pub key: String,
    /// Modules that may read it, as written.
    pub grants: Vec<String>,
    /// The module versions those grants are bound to.
    pub bound: Vec<Binding>,
    /// Last set, ms since the Unix epoch.
    pub updated_ms: u64,
    /// The value, only when listed with values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The egress policy as shown: the policy plus whether it denies all.
#[derive(Debug, Serialize, Deserialize)]
pub struct EgressView {
    /// True while no host is allowed (every request is denied).
    pub deny_all: bool,
    /// The policy.
    #[serde(flatten)]
    pub policy: EgressPolicy,
    /// The module versions each entry of `modules` is bound to.
    pub module_bindings: BTreeMap<String, Vec<Binding>>,
}

/// A namespace's grants as the service holds them.
#[derive(Default)]
pub(crate) struct NamespaceGrants {
    egress: EgressPolicy,
    egress_bound: BTreeMap<String, Vec<Binding>>,
    vars: BTreeMap<String, Var>,
}

impl NamespaceGrants {
    pub(crate) fn from_row(row: &NamespaceRow) -> Self {
        Self {
            egress: serde_json::from_str(&row.egress).unwrap_or_default(),
            egress_bound: serde_json::from_str(&row.egress_bindings).unwrap_or_default(),
            vars: serde_json::from_str(&row.vars).unwrap_or_default(),
        }
    }

    /// The hosts `module` (named `name`, content `sha256`) is narrowed to:
    /// those of the entries bound to its content; none at all when its name
    /// has an entry bound to other content; `None` (not narrowed) otherwise.
    fn narrowing(&self, name: &str, sha256: &str) -> Option<Vec<String>> {
        let mut hosts = Vec::new();
        let mut named = false;
        for (entry, list) in &self.egress.modules {
            if self
                .egress_bound
                .get(entry)
                .is_some_and(|b| binds(b, sha256))
            {
                hosts.extend(list.iter().cloned());
                named = true;
            } else if grant_name(entry) == name {
                named = true;
            }
        }
        named.then_some(hosts)
    }
}

/// The module name of a grant (`NAME` or `NAME@VERSION`).
fn grant_name(grant: &str) -> &str {
    grant.split_once('@').map_or(grant, |(name, _)| name)
}

impl Tenant {
    fn read_grants<T>(&self, f: impl FnOnce(&NamespaceGrants) -> T) -> T {
        match self.grants.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// What an attempt of module `name` with content `sha256` may reach.
    /// A policy that no longer compiles (it was validated when set) grants
    /// nothing.
    pub(crate) fn grants(&self, name: &str, sha256: &str) -> Grants {
        self.read_grants(|g| {
            let narrowed = g.narrowing(name, sha256);
            let egress = g.egress.compile(narrowed.as_deref()).unwrap_or_else(|e| {
                tracing::warn!(namespace = %self.name, "egress policy ignored: {e}");
                EgressRules::deny_all()
            });
            let mut config = ConfigGrants::default();
            for (key, var) in &g.vars {
                if var.granted_to(sha256) {
                    config.grant(key, &var.value);
                } else {
                    config.withhold(key);
                }
            }
            Grants {
                egress: Arc::new(egress),
                config,
            }
        })
    }

    pub(super) fn egress_view(&self) -> EgressView {
        self.read_grants(|g| EgressView {
            deny_all: g.egress.is_deny_all(),
            policy: g.egress.clone(),
            module_bindings: g.egress_bound.clone(),
        })
    }

    pub(super) fn var_views(&self) -> Vec<VarView> {
        self.var_list(false)
    }

    fn var_list(&self, values: bool) -> Vec<VarView> {
        self.read_grants(|g| {
            g.vars
                .iter()
                .map(|(key, v)| VarView {
                    key: key.clone(),
                    grants: v.grants.clone(),
                    bound: v.bound.clone(),
                    updated_ms: v.updated_ms,
                    value: values.then(|| v.value.clone()),
                })
                .collect()
        })
    }

    /// Changes the in-memory grants (after the store has the change).
    fn change(&self, f: impl FnOnce(&mut NamespaceGrants)) {
        match self.grants.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// A valid variable name: 1-128 letters, digits, '_', '-' and '.'.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Largest value of one variable.
const MAX_VALUE_BYTES: usize = 64 << 10;

impl Service {
    /// Replaces a namespace's outbound HTTP policy.
    pub async fn set_egress(
        &self,
        ns: &str,
        policy: EgressPolicy,
    ) -> Result<NamespaceView, ServiceError> {
        let t = self.tenant(ns)?;
        policy.validate().map_err(ServiceError::InvalidArgument)?;
        if policy.modules.len() > MAX_GRANTS {
            return Err(ServiceError::InvalidArgument(format!(
                "egress.modules names at most {MAX_GRANTS} modules"
            )));
        }
        let mut bound = BTreeMap::new();
        for entry in policy.modules.keys() {
            bound.insert(
                entry.clone(),
                self.bind(ns, std::slice::from_ref(entry), "egress.modules")?,
            );
        }
        let json = serde_json::to_string(&policy).unwrap_or_default();
        let bindings = serde_json::to_string(&bound).unwrap_or_default();
        self.shared.db.update_egress(ns, json, bindings).await?;
        t.change(|g| {
            g.egress = policy;
            g.egress_bound = bound;
        });
        Ok(view(&t))
    }

    /// The module versions `grants` name now: `NAME` its latest version
    /// (none if nothing is uploaded under it yet), `NAME@VERSION` that
    /// version (which must exist), `*` none (it needs no binding).
    fn bind(&self, ns: &str, grants: &[String], field: &str) -> Result<Vec<Binding>, ServiceError> {
        if grants.len() > MAX_GRANTS {
            return Err(ServiceError::InvalidArgument(format!(
                "{field} names at most {MAX_GRANTS} modules"
            )));
        }
        let mut bound = Vec::new();
        for grant in grants {
            if grant == ALL_MODULES {
                continue;
            }
            let (name, version) = match grant.split_once('@') {
                Some((name, v)) => match v.parse::<u32>() {
                    Ok(v) if v >= 1 => (name, Some(v)),
                    _ => {
                        return Err(ServiceError::InvalidArgument(format!(
                            "{field}: {grant:?} is not NAME or NAME@VERSION (a version is 1 to {})",
                            u32::MAX
                        )))
                    }
                },
                None => (grant.as_str(), None),
            };
            if name.is_empty() || name.len() > 100 {
                return Err(ServiceError::InvalidArgument(format!(
                    "{field}: a module name is 1-100 characters, got {grant:?}"
                )));
            }
            match self.shared.db.get_module(ns, name, version)? {
                Some(m) => bound.push(Binding {
                    module: m.name,
                    version: m.version,
                    sha256: m.sha256,
                }),
                None if version.is_some() => {
                    return Err(ServiceError::ModuleNotFound(grant.clone()))
                }
                None => {}
            }
        }
        Ok(bound)
    }

    /// Sets a configuration variable and the modules that may read it
    /// (replacing both).
    pub async fn set_var(
        &self,
        ns: &str,
        key: &str,
        value: String,
        grants: Vec<String>,
    ) -> Result<VarView, ServiceError> {
        let t = self.tenant(ns)?;
        if !valid_key(key) {
            return Err(ServiceError::InvalidArgument(
                "a variable name is 1-128 letters, digits, '_', '-' and '.'".into(),
            ));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ServiceError::InvalidArgument(format!(
                "a variable's value is at most {MAX_VALUE_BYTES} bytes"
            )));
        }
        let bound = self.bind(ns, &grants, "grants")?;
        let var = Var {
            value,
            grants,
            bound,
            updated_ms: self.shared.clock.now_ms(),
        };
        self.store_vars(&t, |vars| {
            vars.insert(key.to_owned(), var);
        })
        .await?;
        Ok(t.var_list(false)
            .into_iter()
            .find(|v| v.key == key)
            .unwrap_or(VarView {
                key: key.to_owned(),
                grants: Vec::new(),
                bound: Vec::new(),
                updated_ms: 0,
                value: None,
            }))
    }

    /// Deletes a configuration variable; false if there was none.
    pub async fn delete_var(&self, ns: &str, key: &str) -> Result<bool, ServiceError> {
        let t = self.tenant(ns)?;
        let mut found = false;
        self.store_vars(&t, |vars| found = vars.remove(key).is_some())
            .await?;
        Ok(found)
    }

    /// A namespace's variables; values only if `values`.
    pub fn list_vars(&self, ns: &str, values: bool) -> Result<Vec<VarView>, ServiceError> {
        Ok(self.tenant(ns)?.var_list(values))
    }

    /// Applies `edit` to a copy of the variables, stores it, then makes it
    /// the one in force (so a failed write changes nothing).
    async fn store_vars(
        &self,
        t: &Tenant,
        edit: impl FnOnce(&mut BTreeMap<String, Var>),
    ) -> Result<(), ServiceError> {
        // Two edits at once would each store their own copy, losing one.
        let _one_at_a_time = t.vars_edit.lock().await;
        let mut vars = t.read_grants(|g| g.vars.clone());
        edit(&mut vars);
        let json = serde_json::to_string(&vars).unwrap_or_default();
        self.shared.db.update_vars(&t.name, json).await?;
        t.change(|g| g.vars = vars);
        Ok(())
    }
}
