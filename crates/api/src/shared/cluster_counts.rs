//! A cluster's live counts (instances, tasks by status and launch type, services), as
//! DescribeClusters, DeleteCluster and the cluster-updating operations report them.
//!
//! The task counts come from the replica's task index (`Plane::task_index`: kept change by
//! change, caught up with the store before it answers), so a call never reads the cluster's
//! tasks; only when the index cannot say in time are the task records counted from the store.

use flotilla_control::instances::InstanceRecord;
use flotilla_control::services::{service_prefix, ServiceRecord, ServiceStatus};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::plane::Plane;
use flotilla_controllers::records::{instance_prefix, list, task_prefix};
use flotilla_model::shapes::{Cluster, ClusterField, KeyValuePair, LaunchType};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_scheduler::InstanceStatus;

/// The per-launch-type statistics ECS reports with `include: STATISTICS`.
pub const STATISTICS_KEYS: &[&str] = &[
    "runningEC2TasksCount",
    "runningFargateTasksCount",
    "pendingEC2TasksCount",
    "pendingFargateTasksCount",
    "activeEC2ServiceCount",
    "activeFargateServiceCount",
    "drainingEC2ServiceCount",
    "drainingFargateServiceCount",
];

/// Live counts of a cluster's contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instances ACTIVE or DRAINING.
    pub instances: i32,
    /// Tasks whose lastStatus is RUNNING, EC2/EXTERNAL and Fargate.
    pub running: [i32; 2],
    /// Tasks whose lastStatus is PENDING.
    pub pending: [i32; 2],
    /// Tasks that have not STOPPED, in any status.
    pub unstopped: i32,
    /// Services ACTIVE.
    pub active_services: i32,
    /// Services DRAINING (deleted, tasks still stopping).
    pub draining_services: i32,
}

/// Counts a cluster's registered instances and its tasks by status and launch type.
pub async fn counts(plane: &Plane, name: &str) -> Result<Counts, EcsError> {
    let store = plane.store();
    let mut c = Counts::default();
    for (_, i, _) in list::<InstanceRecord>(store, &instance_prefix(name)).await? {
        if i.status() != InstanceStatus::Inactive {
            c.instances += 1;
        }
    }
    if let Some(index) = plane.task_index().await {
        let t = index.read(|ix| ix.counts(name));
        (c.running, c.pending, c.unstopped) = (t.running, t.pending, t.unstopped);
    } else {
        for (_, t, _) in list::<TaskRecord>(store, &task_prefix(name)).await? {
            let slot = usize::from(t.task.launch_type == Some(LaunchType::Fargate));
            match t.last_status.0 {
                TaskStatus::Running => c.running[slot] += 1,
                TaskStatus::Pending => c.pending[slot] += 1,
                _ => {}
            }
            if !t.is_stopped() {
                c.unstopped += 1;
            }
        }
    }
    for (_, s, _) in list::<ServiceRecord>(store, &service_prefix(name)).await? {
        match s.status {
            ServiceStatus::Active => c.active_services += 1,
            ServiceStatus::Draining => c.draining_services += 1,
            ServiceStatus::Inactive => {}
        }
    }
    Ok(c)
}

/// Fills in the live counts of a cluster: registered container instances (ACTIVE or DRAINING),
/// running and pending tasks (by lastStatus), ACTIVE services, and the per-launch-type
/// statistics (services are all EC2/EXTERNAL).
pub async fn fill_counts(plane: &Plane, cluster: &mut Cluster) -> Result<(), EcsError> {
    let name = cluster.cluster_name.clone().unwrap_or_default();
    let c = counts(plane, &name).await?;
    cluster.registered_container_instances_count = c.instances;
    cluster.running_tasks_count = c.running[0] + c.running[1];
    cluster.pending_tasks_count = c.pending[0] + c.pending[1];
    cluster.active_services_count = c.active_services;
    let values = [
        c.running[0],
        c.running[1],
        c.pending[0],
        c.pending[1],
        c.active_services,
        0,
        c.draining_services,
        0,
    ];
    cluster.statistics = Some(
        STATISTICS_KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| KeyValuePair {
                name: Some((*k).to_string()),
                value: Some(v.to_string()),
            })
            .collect(),
    );
    Ok(())
}

/// Removes the members the caller did not ask for with `include`.
pub fn trim(cluster: &mut Cluster, include: &[ClusterField]) {
    if !include.contains(&ClusterField::Attachments) {
        cluster.attachments = None;
        cluster.attachments_status = None;
    }
    if !include.contains(&ClusterField::Configurations) {
        cluster.configuration = None;
    }
    if !include.contains(&ClusterField::Settings) {
        cluster.settings = None;
    }
    if !include.contains(&ClusterField::Statistics) {
        cluster.statistics = None;
    }
    if !include.contains(&ClusterField::Tags) {
        cluster.tags = None;
    }
}
