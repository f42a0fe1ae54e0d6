//! Provisioning a task's surroundings: the task cgroup (task-level cpu and memory), and for
//! awsvpc tasks the Docker network, the pause image and the pause container that holds the
//! task's address; deprovisioning removes them.
//!
//! What this is not: the task's own containers (`containers`), and not the pure placement
//! arithmetic ([`crate::spec`], [`crate::cgroup`]).
//!
//! On a managed-pool host, a task whose address is one of the host's warm task networks adopts
//! that network's running pause container (`engine::warm`) and skips the rest.
//!
//! Invariant: the network and the pause image are created under the engine's provisioning
//! lock, and another agent on the same engine creating them first is not an error.

use super::TaskOwner;
use crate::cgroup::{CgroupMode, TaskLimits};
use crate::failure::TaskFailure;
use crate::lifecycle::NetworkStage;
use crate::runtime::{Runtime, RuntimeError};
use crate::spec::TaskPlacement;
use crate::{cgroup, spec};
use flotilla_protocol::TaskNetwork;
use std::time::Duration;
use tracing::{debug, info, warn};

impl TaskOwner {
    pub(super) fn limits(&self) -> TaskLimits {
        TaskLimits {
            cpu: self.assignment().cpu,
            memory_mib: self.assignment().memory,
        }
    }

    pub(super) fn task_id(&self) -> String {
        spec::task_id(&self.assignment().task_arn).to_string()
    }

    /// Where the containers go: the pause namespace, the task cgroup or per-container limits.
    /// A host task the task endpoint reaches has the task cgroup as parent even without
    /// limits: the endpoint's NAT rule matches it.
    pub(super) fn placement(&self) -> TaskPlacement {
        let limits = self.limits();
        let task_path = || cgroup::task_path(&self.task_id());
        let endpoint_parent = self.host_endpoint().then(task_path);
        let (cgroup_parent, per_container_limits) = match &self.inner.cgroups {
            _ if !limits.any() => (endpoint_parent, None),
            CgroupMode::Parent { .. } => (Some(task_path()), None),
            CgroupMode::PerContainer { .. } => (endpoint_parent, Some(limits)),
        };
        TaskPlacement {
            pause_id: if self.awsvpc {
                self.p.pause_id.clone()
            } else {
                None
            },
            cgroup_parent,
            per_container_limits,
        }
    }

    /// Creates the task cgroup with the task's limits (before any container of the task).
    pub(super) fn ensure_cgroup(&self) -> Result<(), TaskFailure> {
        let limits = self.limits();
        if !limits.any() {
            return Ok(());
        }
        self.inner
            .cgroups
            .create(&self.task_id(), &limits)
            .map_err(TaskFailure::TaskCgroup)
    }

    pub(super) fn remove_cgroup(&self) {
        if self.limits().any() {
            if let Err(e) = self.inner.cgroups.remove(&self.task_id()) {
                debug!(error = %e, "task cgroup not removed yet");
            }
        }
    }

    pub(super) fn stage(&self) -> NetworkStage {
        if self.p.deprovisioned {
            NetworkStage::Released
        } else if self.p.pause_id.is_none() {
            NetworkStage::Provisioning
        } else if !self.images_ready && self.needs_creation() {
            NetworkStage::Pulling
        } else {
            NetworkStage::Ready
        }
    }

    /// awsvpc: the task cgroup, the network, the pause image and a running pause container
    /// with the task's address. The error is the task's stopped reason.
    pub(super) async fn provision(&mut self) -> Result<(), TaskFailure> {
        let rt = self.inner.runtime.clone();
        let Some(n) = self.assignment().network.clone() else {
            return Err(TaskFailure::NoNetwork);
        };
        self.ensure_cgroup()?;
        if self.p.pause_id.is_none() && self.adopt_warm(&n).await {
            return Ok(());
        }
        {
            let _guard = self.inner.provisioning.lock().await;
            ensure_network(rt.as_ref(), &n).await?;
            ensure_pause_image(rt.as_ref()).await?;
        }
        if let Some(id) = self.p.pause_id.clone() {
            match rt.inspect(&id).await {
                Ok(i) if i.running => return Ok(()),
                Ok(_) => return rt.start(&id).await.map_err(TaskFailure::RestartPause),
                Err(RuntimeError::NotFound(_)) => self.p.pause_id = None,
                Err(e) => return Err(TaskFailure::Pause(e)),
            }
        }
        let mut spec = spec::pause_spec(
            self.assignment(),
            &n,
            &self.inner.identity,
            &self.placement(),
        );
        // The task's containers share the pause container's resolv.conf.
        spec.dns = self.pause_dns();
        let id = match rt.create(&spec).await {
            Ok(id) => id,
            Err(RuntimeError::Conflict(_)) => rt
                .inspect(&spec.name)
                .await
                .map(|c| c.id)
                .map_err(TaskFailure::Pause)?,
            Err(error) => {
                return Err(TaskFailure::CreatePause {
                    address: n.private_ipv4_address.clone(),
                    error,
                })
            }
        };
        info!(id = %id, ip = %n.private_ipv4_address, "pause container created");
        self.p.pause_id = Some(id.clone());
        self.persist();
        rt.start(&id)
            .await
            .map_err(|error| TaskFailure::StartPause {
                address: n.private_ipv4_address.clone(),
                error,
            })
    }

    /// A managed-pool host: adopts the running warm pause container of the task's address, if
    /// the host has one (made before the task with that address, MAC and hostname), instead of
    /// making one; renames it to the task's pause name in the background. False: the task
    /// makes its own.
    async fn adopt_warm(&mut self, n: &TaskNetwork) -> bool {
        let Some(pool) = self.inner.warm.as_ref() else {
            return false;
        };
        let (id, refill) = pool.claim(&n.private_ipv4_address).await;
        self.warm_refill = refill;
        let Some(id) = id else {
            return false;
        };
        let rt = self.inner.runtime.clone();
        let running = match rt.inspect(&id).await {
            Ok(i) if i.running => true,
            Ok(_) => rt.start(&id).await.is_ok(),
            Err(_) => false,
        };
        if !running {
            warn!(id = %id, ip = %n.private_ipv4_address, "the warm pause container does not run; making the task's own");
            if let Err(e) = rt.remove(&id).await {
                warn!(id = %id, error = %e, "cannot remove the warm pause container");
            }
            return false;
        }
        info!(id = %id, ip = %n.private_ipv4_address, "warm pause container adopted");
        self.p.pause_id = Some(id.clone());
        self.persist();
        let name = spec::container_name(&self.assignment().task_arn, "pause");
        tokio::spawn(async move {
            if let Err(e) = rt.rename(&id, &name).await {
                debug!(id = %id, error = %e, "the adopted pause container keeps its warm name");
            }
        });
        true
    }

    /// awsvpc: removes the pause container (releasing the address) and the task cgroup.
    pub(super) async fn deprovision(&mut self) {
        if let Some(id) = self.p.pause_id.clone() {
            if let Err(e) = self.inner.runtime.remove(&id).await {
                warn!(error = %e, "cannot remove the pause container; retrying");
                return;
            }
            info!(id = %id, "pause container removed");
        }
        if let (Some(pool), Some(n)) = (self.inner.warm.as_ref(), &self.assignment().network) {
            pool.released(&n.private_ipv4_address);
        }
        self.p.deprovisioned = true;
        self.persist();
        self.remove_cgroup();
    }
}

/// Makes sure the awsvpc network exists with the task's subnet (another agent on the same
/// engine may create it at the same time: a conflict means it exists).
pub(super) async fn ensure_network(rt: &dyn Runtime, n: &TaskNetwork) -> Result<(), TaskFailure> {
    let spec = spec::network_spec(n);
    let fail = |error: RuntimeError| TaskFailure::Network {
        network: n.network_name.clone(),
        error,
    };
    let info = match rt.inspect_network(&spec.name).await.map_err(fail)? {
        Some(info) => info,
        None => match rt.create_network(&spec).await {
            Ok(()) => {
                info!(network = %spec.name, subnet = %spec.subnet, "network created");
                return Ok(());
            }
            // Another agent created it meanwhile: Docker answers 409, or, when the
            // creations race, that the address pool overlaps before the network is visible.
            // Either way it appears shortly.
            Err(e) => {
                let mut found = None;
                for _ in 0..20 {
                    found = rt.inspect_network(&spec.name).await.map_err(fail)?;
                    if found.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                found.ok_or_else(|| fail(e))?
            }
        },
    };
    if !info.subnets.contains(&n.subnet_cidr) {
        return Err(TaskFailure::NetworkSubnet {
            network: n.network_name.clone(),
            found: if info.subnets.is_empty() {
                "(none)".to_string()
            } else {
                info.subnets.join(",")
            },
            wanted: n.subnet_cidr.clone(),
        });
    }
    Ok(())
}

/// Imports the pause image when it is missing (built here: no registry, no host files).
pub(super) async fn ensure_pause_image(rt: &dyn Runtime) -> Result<(), TaskFailure> {
    let fail = TaskFailure::PauseImage;
    if rt
        .inspect_image(crate::pause::IMAGE)
        .await
        .map_err(|e| fail(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    let arch = rt
        .version()
        .await
        .map_err(|e| fail(e.to_string()))?
        .architecture;
    let tar = crate::pause::rootfs_tar(&arch).map_err(fail)?;
    rt.import_image(
        tar,
        crate::pause::REPO,
        crate::pause::TAG,
        &[format!("CMD [\"{}\"]", crate::pause::PATH)],
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    info!(image = crate::pause::IMAGE, arch = %arch, "pause image built");
    Ok(())
}
