//! A container instance as ECS describes it: its task counts and custom attributes joined to
//! its record (DescribeContainerInstances, RegisterContainerInstance, DeregisterContainerInstance
//! and UpdateContainerInstancesState all answer it).

use crate::context::Ctx;
use flotilla_control::instances::{custom_attribute, Held, InstanceRecord, TaskCounts};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{self, task_prefix, ATTRIBUTES};
use flotilla_model::shapes::{Attribute, ContainerInstance};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_protocol::DesiredStatus;
use std::collections::HashMap;

/// The task counts of a cluster's instances and what their tasks hold: the task index's (kept
/// change by change), or counted from the store's task records when the index cannot say in
/// time.
pub enum InstanceCounts<'a> {
    /// From the replica's task index.
    Index(&'a flotilla_controllers::task_feed::TaskFeed, String),
    /// Counted from the store, by instance id.
    Counted(HashMap<String, TaskCounts>, HashMap<String, Held>),
}

impl InstanceCounts<'_> {
    /// The counts of instance `id`.
    pub fn of(&self, id: &str) -> TaskCounts {
        match self {
            InstanceCounts::Index(feed, cluster) => {
                let c = feed.read(|ix| ix.instance_counts(cluster, id));
                TaskCounts {
                    running: c.running,
                    pending: c.pending,
                }
            }
            InstanceCounts::Counted(m, _) => m.get(id).copied().unwrap_or_default(),
        }
    }

    /// What the tasks on instance `id` hold.
    pub fn held(&self, id: &str) -> Held {
        match self {
            InstanceCounts::Index(feed, cluster) => feed.read(|ix| ix.held(cluster, id)),
            InstanceCounts::Counted(_, h) => h.get(id).cloned().unwrap_or_default(),
        }
    }
}

/// The task counts of every instance of a cluster.
pub async fn task_counts<'a>(
    ctx: &'a Ctx<'_>,
    cluster: &str,
) -> Result<InstanceCounts<'a>, EcsError> {
    if let Some(index) = ctx.plane().task_index().await {
        return Ok(InstanceCounts::Index(index, cluster.to_string()));
    }
    let mut out: HashMap<String, TaskCounts> = HashMap::new();
    let tasks = records::list::<TaskRecord>(ctx.store(), &task_prefix(cluster)).await?;
    let held = flotilla_controllers::held::of_records(tasks.iter().map(|(_, t, _)| t), cluster);
    for (_, t, _) in &tasks {
        let c = out.entry(t.instance_id.clone()).or_default();
        if t.desired() == DesiredStatus::Running && !t.is_stopped() {
            c.running += 1;
        }
        if t.last_status.0 == TaskStatus::Pending {
            c.pending += 1;
        }
    }
    Ok(InstanceCounts::Counted(out, held))
}

/// The custom attributes of one instance.
pub async fn custom_attributes_of(
    ctx: &Ctx<'_>,
    cluster: &str,
    id: &str,
) -> Result<Vec<Attribute>, EcsError> {
    Ok(
        records::list::<Attribute>(ctx.store(), &format!("{ATTRIBUTES}{cluster}/{id}/"))
            .await?
            .iter()
            .map(|(_, a, _)| custom_attribute(a))
            .collect(),
    )
}

/// One instance as ECS describes it.
pub async fn view_of(
    ctx: &Ctx<'_>,
    rec: &InstanceRecord,
    counts: &InstanceCounts<'_>,
    include_tags: bool,
) -> Result<ContainerInstance, EcsError> {
    let custom = custom_attributes_of(ctx, &rec.cluster, &rec.id).await?;
    Ok(rec.view(
        &custom,
        counts.of(&rec.id),
        &counts.held(&rec.id),
        include_tags,
    ))
}
