//! Deployments: which module version serves a task queue, gradual rollouts
//! and rollback.
//!
//! A deployment change takes effect for the next task a worker slot takes;
//! attempts already running keep the module they started with (they hold
//! it). During a rollout a share of activities, chosen by run, runs the new
//! version; every attempt records the version it ran. Each change is kept in
//! a history so `rollback` restores the one before.

use super::{Service, ServiceError, Shared};
use crate::queue::{Deployment, Ramp, TaskQueue};
use crate::store::flow::DeploymentRow;
use std::sync::Arc;

/// What a deploy asks for.
#[derive(Clone, Debug, Default)]
pub struct DeployRequest {
    /// Module name.
    pub module: String,
    /// Module version; the latest when absent.
    pub version: Option<u32>,
    /// Worker slots; kept from the current deployment (or the default)
    /// when absent.
    pub max_concurrent: Option<u32>,
    /// Roll the version out to this percentage of activities (1-99) while
    /// the current version serves the rest; 100 or absent switches fully.
    pub ramp_percent: Option<u8>,
}

impl Service {
    /// Deploys a module version to a task queue, fully or as a rollout.
    pub async fn deploy(
        &self,
        ns: &str,
        task_queue: &str,
        req: DeployRequest,
    ) -> Result<DeploymentRow, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        // Here, not in each caller: the API and the dashboard both deploy.
        let check = || {
            super::bounds::id("task_queue", task_queue)?;
            super::bounds::id("module", &req.module)?;
            match req.max_concurrent {
                Some(n) => super::bounds::concurrent("max_concurrent", n),
                None => Ok(()),
            }
        };
        check().map_err(ServiceError::InvalidArgument)?;
        if task_queue == s.cfg.worker_task_queue {
            return Err(ServiceError::InvalidArgument(format!(
                "{task_queue:?} is this process's own queue; it serves every module deployed in the namespace"
            )));
        }
        let record =
            s.db.get_module(ns, &req.module, req.version)?
                .ok_or_else(|| {
                    ServiceError::ModuleNotFound(match req.version {
                        Some(v) => format!("{}@{v}", req.module),
                        None => req.module.clone(),
                    })
                })?;
        let current = s.db.deployment(ns, task_queue)?;
        let max_concurrent = req
            .max_concurrent
            .or(current.as_ref().map(|c| c.max_concurrent))
            .unwrap_or(s.cfg.default_max_concurrent)
            .max(1);
        let mut row = DeploymentRow {
            namespace: ns.to_owned(),
            task_queue: task_queue.to_owned(),
            module_name: record.name.clone(),
            module_version: record.version,
            max_concurrent,
            ramp_version: None,
            ramp_percent: None,
            updated_ms: s.clock.now_ms(),
        };
        match req.ramp_percent {
            None | Some(100) => {}
            Some(p @ 1..=99) => {
                let Some(current) = current else {
                    return Err(ServiceError::Conflict(format!(
                        "queue {task_queue:?} has no deployment to roll out from; deploy without a ramp first"
                    )));
                };
                if current.module_name != record.name {
                    return Err(ServiceError::Conflict(format!(
                        "queue {task_queue:?} runs module {}; a rollout is between versions of one module",
                        current.module_name
                    )));
                }
                row.module_version = current.module_version;
                row.ramp_version = Some(record.version);
                row.ramp_percent = Some(p);
            }
            Some(p) => {
                return Err(ServiceError::InvalidArgument(format!(
                    "ramp_percent is {p}; it must be 1 to 100"
                )))
            }
        }
        let deployment = s.load_deployment(&row).await?;
        if !s.db.save_deployment(row.clone()).await? {
            return Err(ServiceError::ModuleNotFound(format!(
                "{}@{} (deleted meanwhile)",
                record.name, record.version
            )));
        }
        s.install_deployment(&row, deployment);
        Ok(row)
    }

    /// Restores the queue's deployment before the last change.
    pub async fn rollback(
        &self,
        ns: &str,
        task_queue: &str,
    ) -> Result<DeploymentRow, ServiceError> {
        let s = &self.shared;
        s.check_namespace(ns)?;
        let none = || {
            ServiceError::Conflict(format!(
                "queue {task_queue:?} has no earlier deployment to roll back to"
            ))
        };
        // Loaded first so that a rollback to a module that cannot load
        // changes nothing.
        let history =
            s.db.deployment_before_latest(ns, task_queue)?
                .ok_or_else(none)?;
        let deployment = s.load_deployment(&history).await?;
        let row =
            s.db.roll_back_deployment(ns, task_queue, s.clock.now_ms())
                .await?
                .ok_or_else(none)?;
        s.install_deployment(&row, deployment);
        Ok(row)
    }
}

impl Shared {
    /// Loads the module versions a deployment row names.
    pub(super) async fn load_deployment(
        &self,
        row: &DeploymentRow,
    ) -> Result<Arc<Deployment>, ServiceError> {
        let load = |version: u32| async move {
            let record = self
                .db
                .get_module(&row.namespace, &row.module_name, Some(version))?
                .ok_or_else(|| {
                    ServiceError::ModuleNotFound(format!("{}@{version}", row.module_name))
                })?;
            Ok::<_, ServiceError>(self.registry.get(&record).await?)
        };
        let module = load(row.module_version).await?;
        let ramp = match (row.ramp_version, row.ramp_percent) {
            (Some(version), Some(percent)) => Some(Ramp {
                version,
                module: load(version).await?,
                percent,
            }),
            _ => None,
        };
        Ok(Arc::new(Deployment {
            name: row.module_name.clone(),
            version: row.module_version,
            module,
            max_concurrent: row.max_concurrent,
            ramp,
            deployed_ms: row.updated_ms,
        }))
    }

    /// Makes a deployment live on its queue and on this process's own queue
    /// of the namespace (which runs any deployed activity type; see
    /// [`Shared::route`]).
    pub(super) fn install_deployment(self: &Arc<Self>, row: &DeploymentRow, d: Arc<Deployment>) {
        let (queue, own) = {
            let mut st = self.lock();
            (
                st.queue(&row.namespace, &row.task_queue, &self.clock),
                st.queue(&row.namespace, &self.cfg.worker_task_queue, &self.clock),
            )
        };
        self.serve(queue, d.clone());
        self.serve(own, d);
    }

    /// Sets a queue's deployment and starts its dispatcher on first use.
    fn serve(self: &Arc<Self>, queue: Arc<TaskQueue>, d: Arc<Deployment>) {
        queue.deploy(d);
        if queue.claim_dispatcher() {
            let shared = self.clone();
            let mut stopping = self.stopping.subscribe();
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            tokio::spawn(queue.dispatch(stop, move |task, deployment, slot| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.run_task(task, deployment, slot).await });
            }));
        }
    }

    /// The deployment that runs `activity_type` for a task on this
    /// process's own queue: of the namespace's deployments exporting the
    /// type, the most recently deployed.
    pub(super) fn route(
        &self,
        ns: &str,
        activity_type: &str,
        run_id: i64,
    ) -> Option<Arc<Deployment>> {
        // Only this namespace's queues, taken out from under the lock.
        let queues: Vec<Arc<crate::queue::TaskQueue>> = {
            let st = self.lock();
            st.queues
                .range((ns.to_owned(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .filter(|((_, q), _)| *q != self.cfg.worker_task_queue)
                .map(|(_, queue)| queue.clone())
                .collect()
        };
        queues
            .iter()
            .filter_map(|queue| queue.deployment())
            .filter(|d| {
                d.version_for(run_id)
                    .1
                    .activity_types
                    .iter()
                    .any(|t| t == activity_type)
            })
            .max_by_key(|d| d.deployed_ms)
    }
}
