//! Namespaces (tenants): their quotas, their share of the host, their usage.
//!
//! Each namespace has its own task queues and deployments, so one tenant's
//! backlog never sits in front of another's tasks. What they do share (the
//! host's cores and memory) is bounded per namespace here: attempts running
//! at once, memory and fuel per attempt, payload and module sizes, module
//! count, open activities, the bytes their payloads take on disk and start
//! rate. What a namespace's modules may
//! reach beyond the sandbox (outbound HTTP, configuration) is in
//! [`grants`](super::grants).

use super::grants::{EgressView, NamespaceGrants, VarView};
use super::{Service, ServiceError};
use crate::engine::AttemptReport;
use crate::store::tenancy::NamespaceRow;
use crate::worker::AttemptQuotas;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Limits of one namespace. Every field has a default; a namespace stores
/// only what it sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct Quotas {
    /// Attempts of this namespace running at once; more wait in the backlog.
    pub max_concurrent_attempts: u32,
    /// Memories and tables of one attempt, in bytes.
    pub max_memory_per_attempt: u64,
    /// CPU budget of one attempt in fuel units; `null` is unlimited.
    pub fuel_per_attempt: Option<u64>,
    /// Share of the host's guest CPU when the attempts of several
    /// namespaces want more than the host has: each gets CPU time in
    /// proportion to its weight (1 to 1000; an idle namespace's share goes
    /// to the others).
    pub cpu_weight: u32,
    /// Largest module upload, in bytes.
    pub max_module_bytes: u64,
    /// Module versions the namespace may keep.
    pub max_modules: u64,
    /// Largest argument, result or completion payload, in bytes.
    pub max_payload_bytes: u64,
    /// Largest heartbeat details, in bytes.
    pub max_heartbeat_bytes: u64,
    /// Starts per second (bursts of one second's worth); 0 is unlimited.
    pub max_starts_per_second: f64,
    /// Activities open at once.
    pub max_open_activities: u64,
    /// Bytes the payloads of its open activities (input and heartbeat
    /// details, as stored) may take in the database; a start beyond it is
    /// refused (HTTP 507). 1 KiB to 1 TiB.
    pub max_stored_bytes: u64,
    /// How long a closed activity stays (its result, attempts, logs and
    /// heartbeat details); after that it answers 404 as an unknown id does.
    /// A humantime string (`7d`, `1h`) or milliseconds; 1 s to 10 years.
    #[serde(with = "super::options::duration")]
    #[schema(value_type = String, example = "7days")]
    pub retention: Duration,
}

/// Stored payload bytes of a namespace that sets none: 1 GiB.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 1 << 30;

/// Retention of a namespace that sets none, as Temporal's default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_concurrent_attempts: 100,
            max_memory_per_attempt: 256 << 20,
            fuel_per_attempt: None,
            cpu_weight: 1,
            max_module_bytes: 64 << 20,
            max_modules: 100,
            max_payload_bytes: 2 << 20,
            max_heartbeat_bytes: 1 << 20,
            max_starts_per_second: 0.0,
            max_open_activities: 1_000_000,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl Quotas {
    /// Checks that the numbers make sense. Sizes above the host's own
    /// limits are allowed and act as the host's limit (each use takes the
    /// smaller), so only the lower ends need checking.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_memory_per_attempt < (1 << 20) {
            return Err("max_memory_per_attempt must be at least 1 MiB".into());
        }
        for (field, n) in [
            ("fuel_per_attempt", self.fuel_per_attempt.unwrap_or(1)),
            ("max_module_bytes", self.max_module_bytes),
            ("max_modules", self.max_modules),
            ("max_payload_bytes", self.max_payload_bytes),
            ("max_heartbeat_bytes", self.max_heartbeat_bytes),
            ("max_open_activities", self.max_open_activities),
        ] {
            if n == 0 {
                return Err(format!("{field} is 0; it must be at least 1"));
            }
        }
        super::bounds::rate(
            "max_starts_per_second",
            self.max_starts_per_second,
            "unlimited",
        )?;
        super::bounds::concurrent("max_concurrent_attempts", self.max_concurrent_attempts)?;
        super::bounds::stored_bytes("max_stored_bytes", self.max_stored_bytes)?;
        super::bounds::cpu_weight("cpu_weight", self.cpu_weight)?;
        super::bounds::retention("retention", self.retention)?;
        Ok(())
    }

    /// The quotas every attempt of the namespace runs under.
    pub fn per_attempt(&self) -> AttemptQuotas {
        AttemptQuotas {
            memory_bytes: self.max_memory_per_attempt,
            fuel: self.fuel_per_attempt,
            result_bytes: self.max_payload_bytes,
            heartbeat_bytes: self.max_heartbeat_bytes,
            cpu_weight: self.cpu_weight,
        }
    }
}

/// What a namespace has used since the process started.
#[derive(Default)]
pub(crate) struct Usage {
    pub(crate) attempts: AtomicU64,
    pub(crate) fuel_used: AtomicU64,
    pub(crate) cpu_us: AtomicU64,
    pub(crate) memory_peak: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) egress_requests: AtomicU64,
    pub(crate) egress_denied: AtomicU64,
}

/// A namespace as the service holds it.
pub(crate) struct Tenant {
    pub(crate) name: String,
    quotas: RwLock<Quotas>,
    pub(crate) slots: Arc<Semaphore>,
    bucket: Mutex<(f64, Instant)>,
    pub(crate) open: AtomicU64,
    /// Bytes the payloads of its open activities take in the database
    /// (changed under the service's lock).
    pub(crate) stored: AtomicU64,
    pub(crate) usage: Usage,
    pub(crate) created_ms: u64,
    pub(crate) grants: RwLock<NamespaceGrants>,
    /// Serialises changes of the variables (read, edit, store, swap).
    pub(crate) vars_edit: tokio::sync::Mutex<()>,
}

impl Tenant {
    /// A namespace as stored, its start-rate bucket full at `now`.
    pub(crate) fn new(row: &NamespaceRow, now: Instant) -> Self {
        let quotas: Quotas = serde_json::from_str(&row.quotas).unwrap_or_default();
        Self {
            name: row.name.clone(),
            slots: Arc::new(Semaphore::new(quotas.max_concurrent_attempts as usize)),
            bucket: Mutex::new((quotas.max_starts_per_second, now)),
            quotas: RwLock::new(quotas),
            open: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            usage: Usage::default(),
            created_ms: row.created_ms,
            grants: RwLock::new(NamespaceGrants::from_row(row)),
            vars_edit: tokio::sync::Mutex::new(()),
        }
    }

    /// The quotas in force.
    pub(crate) fn quotas(&self) -> Quotas {
        self.quotas.read().map(|q| q.clone()).unwrap_or_default()
    }

    fn set_quotas(&self, q: Quotas) {
        let old = self.quotas();
        let (was, now) = (
            old.max_concurrent_attempts as usize,
            q.max_concurrent_attempts as usize,
        );
        if now > was {
            self.slots.add_permits(now - was);
        } else {
            self.slots.forget_permits(was - now);
        }
        if let Ok(mut w) = self.quotas.write() {
            *w = q;
        }
    }

    /// Takes one start from the rate bucket at `now`, or says when one is
    /// available.
    pub(crate) fn take_start(&self, now: Instant) -> Result<(), Duration> {
        let rate = self.quotas().max_starts_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut b) = self.bucket.lock() else {
            return Ok(());
        };
        // Refill; a burst of up to one second's worth.
        let refill = now.saturating_duration_since(b.1).as_secs_f64() * rate;
        b.0 = (b.0 + refill).min(rate.max(1.0));
        b.1 = b.1.max(now);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            self.usage.rate_limited.fetch_add(1, Ordering::Relaxed);
            Err(super::bounds::secs_f64((1.0 - b.0) / rate))
        }
    }

    /// One run's share of the stored bytes went from `old` to `new`.
    pub(crate) fn stored_changed(&self, old: u64, new: u64) {
        let _ = self
            .stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(old).saturating_add(new))
            });
    }

    /// Records what an attempt used.
    pub(crate) fn account(&self, report: &AttemptReport) {
        let u = &self.usage;
        u.attempts.fetch_add(1, Ordering::Relaxed);
        u.fuel_used.fetch_add(report.fuel_used, Ordering::Relaxed);
        u.cpu_us.fetch_add(
            u64::try_from(report.cpu_time.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        u.memory_peak
            .fetch_max(report.memory_peak as u64, Ordering::Relaxed);
        u.egress_requests
            .fetch_add(report.egress_requests, Ordering::Relaxed);
        u.egress_denied
            .fetch_add(report.egress_denied, Ordering::Relaxed);
    }
}

/// A namespace as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamespaceView {
    /// Name.
    pub name: String,
    /// Quotas in force (defaults filled in).
    pub quotas: Quotas,
    /// Activities open now.
    pub open_activities: u64,
    /// Bytes their payloads (input and heartbeat details) take in the
    /// database, counted against `max_stored_bytes`.
    pub stored_bytes: u64,
    /// Attempts running now.
    pub running_attempts: u64,
    /// Usage since this process started.
    pub usage: UsageView,
    /// Outbound HTTP policy.
    pub egress: EgressView,
    /// Configuration variables: names and grants, never values.
    pub config: Vec<VarView>,
    /// Created at, ms since the Unix epoch.
    pub created_ms: u64,
}

/// Usage counters.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageView {
    /// Attempts run.
    pub attempts: u64,
    /// Fuel (CPU) consumed by them.
    pub fuel_used: u64,
    /// CPU time of the guest threads running them, in seconds (their
    /// threads' CPU clocks).
    pub guest_cpu_seconds: f64,
    /// Highest memory of one attempt, in bytes.
    pub memory_high_water: u64,
    /// Starts refused by the rate limit.
    pub starts_rate_limited: u64,
    /// Outbound HTTP requests of its attempts (refused ones included).
    pub egress_requests: u64,
    /// Of those, requests the egress policy refused.
    pub egress_denied: u64,
}

pub(super) fn view(t: &Tenant) -> NamespaceView {
    let q = t.quotas();
    let free = t.slots.available_permits() as u64;
    NamespaceView {
        name: t.name.clone(),
        running_attempts: (q.max_concurrent_attempts as u64).saturating_sub(free),
        quotas: q,
        open_activities: t.open.load(Ordering::Relaxed),
        stored_bytes: t.stored.load(Ordering::Relaxed),
        usage: UsageView {
            attempts: t.usage.attempts.load(Ordering::Relaxed),
            fuel_used: t.usage.fuel_used.load(Ordering::Relaxed),
            guest_cpu_seconds: t.usage.cpu_us.load(Ordering::Relaxed) as f64 / 1e6,
            memory_high_water: t.usage.memory_peak.load(Ordering::Relaxed),
            starts_rate_limited: t.usage.rate_limited.load(Ordering::Relaxed),
            egress_requests: t.usage.egress_requests.load(Ordering::Relaxed),
            egress_denied: t.usage.egress_denied.load(Ordering::Relaxed),
        },
        egress: t.egress_view(),
        config: t.var_views(),
        created_ms: t.created_ms,
    }
}

/// A valid namespace name: 1-64 letters, digits, '-' and '_'.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Service {
    /// The namespace, or `NamespaceNotFound`.
    pub(crate) fn tenant(&self, ns: &str) -> Result<Arc<Tenant>, ServiceError> {
        self.shared.tenant(ns)
    }

    /// Creates a namespace with `quotas` (defaults for what is absent).
    pub async fn create_namespace(
        &self,
        name: &str,
        quotas: Quotas,
    ) -> Result<NamespaceView, ServiceError> {
        if !valid_name(name) {
            return Err(ServiceError::InvalidArgument(
                "a namespace name is 1-64 letters, digits, '-' and '_'".into(),
            ));
        }
        quotas.validate().map_err(ServiceError::InvalidArgument)?;
        let row = NamespaceRow {
            name: name.to_owned(),
            quotas: serde_json::to_string(&quotas).unwrap_or_default(),
            egress: "{}".into(),
            egress_bindings: "{}".into(),
            vars: "{}".into(),
            created_ms: self.shared.clock.now_ms(),
        };
        if !self.shared.db.create_namespace(row.clone()).await? {
            return Err(ServiceError::Conflict(format!(
                "namespace {name:?} already exists"
            )));
        }
        let tenant = Arc::new(Tenant::new(&row, self.shared.clock.now()));
        let v = view(&tenant);
        self.shared
            .lock()
            .namespaces
            .insert(name.to_owned(), tenant);
        Ok(v)
    }

    /// Every namespace.
    pub fn list_namespaces(&self) -> Vec<NamespaceView> {
        let st = self.shared.lock();
        let mut v: Vec<_> = st.namespaces.values().map(|t| view(t)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One namespace with its quotas and usage.
    pub fn describe_namespace(&self, ns: &str) -> Result<NamespaceView, ServiceError> {
        Ok(view(&*self.tenant(ns)?))
    }

    /// Changes some quotas: `patch` is a JSON object of the fields to set.
    pub async fn update_quotas(
        &self,
        ns: &str,
        patch: serde_json::Value,
    ) -> Result<NamespaceView, ServiceError> {
        let t = self.tenant(ns)?;
        let mut merged = serde_json::to_value(t.quotas()).unwrap_or_default();
        match (merged.as_object_mut(), patch.as_object()) {
            (Some(m), Some(p)) => {
                for (k, v) in p {
                    m.insert(k.clone(), v.clone());
                }
            }
            _ => {
                return Err(ServiceError::InvalidArgument(
                    "quotas must be a JSON object".into(),
                ))
            }
        }
        let q: Quotas = serde_json::from_value(merged)
            .map_err(|e| ServiceError::InvalidArgument(format!("invalid quotas: {e}")))?;
        q.validate().map_err(ServiceError::InvalidArgument)?;
        self.shared
            .db
            .update_quotas(ns, serde_json::to_string(&q).unwrap_or_default())
            .await?;
        t.set_quotas(q);
        Ok(view(&t))
    }

    /// Deletes a namespace and everything of it. Refused while it has open
    /// activities, unless `force`, which cancels them first (so running
    /// attempts are told to stop).
    ///
    /// The namespace stops answering at once: it and its activities,
    /// tokens, queues and limits leave memory before the store is told, so
    /// nothing of it is written afterwards (a late attempt report finds no
    /// activity). The store then deletes every row of it in one
    /// transaction, so a crash leaves all of the namespace or none; module
    /// files no other namespace uses go last (and at the next start, if a
    /// crash came between).
    pub async fn delete_namespace(&self, ns: &str, force: bool) -> Result<(), ServiceError> {
        let t = self.tenant(ns)?;
        let open: Vec<String> = {
            let st = self.shared.lock();
            st.open
                .values()
                .filter(|a| a.fixed.namespace == ns && !a.is_closed())
                .map(|a| a.fixed.activity_id.clone())
                .collect()
        };
        if !open.is_empty() && !force {
            return Err(ServiceError::Conflict(format!(
                "namespace {ns:?} has {} open activities; cancel them or delete with force",
                open.len()
            )));
        }
        for id in open {
            let _ = self.cancel(ns, &id).await;
        }
        {
            let mut st = self.shared.lock();
            st.namespaces.remove(&t.name);
            let runs: std::collections::HashSet<i64> = st
                .open
                .iter()
                .filter(|(_, a)| a.fixed.namespace == ns)
                .map(|(run, _)| *run)
                .collect();
            for run in &runs {
                st.open.remove(run);
            }
            st.by_id.remove_namespace(ns);
            st.tokens.retain(|_, run| !runs.contains(run));
            st.queues.retain(|(n, _), queue| {
                let keep = n != ns;
                if !keep {
                    queue.close();
                }
                keep
            });
            st.gates.clear_namespace(ns);
        }
        self.shared.worker.cache().clear_namespace(ns);
        let orphaned = self.shared.db.delete_namespace(ns).await?;
        tracing::info!(
            namespace = ns,
            contents = orphaned.len(),
            "namespace deleted"
        );
        self.remove_orphaned_contents().await;
        Ok(())
    }

    /// Removes the files of module contents no namespace has any more.
    pub(crate) async fn remove_orphaned_contents(&self) {
        let db = &self.shared.db;
        let orphaned = match db.orphaned_contents() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("cannot list orphaned module contents: {e}");
                return;
            }
        };
        if orphaned.is_empty() {
            return;
        }
        let removed = self.shared.registry.remove_contents(db, orphaned).await;
        if let Err(e) = db.contents_removed(removed).await {
            tracing::warn!("cannot record removed module contents: {e}");
        }
    }
}
