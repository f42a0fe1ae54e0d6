//! DescribeContainerInstances: up to 100 instances by id or ARN, with `registeredResources`,
//! `remainingResources` (what the tasks placed on them leave), `runningTasksCount` (tasks whose
//! desiredStatus is RUNNING), `pendingTasksCount` (lastStatus PENDING), every attribute (the
//! agent's and the custom ones) and, with `include: TAGS`, tags. Unknown instances are `MISSING`
//! failures.

use crate::context::Ctx;
use flotilla_control::instances::{custom_attribute, InstanceRecord, TaskCounts};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{
    self, get, instance_id_in, instance_key, task_prefix, ATTRIBUTES,
};
use flotilla_model::shapes::{
    Attribute, ContainerInstance, ContainerInstanceField, DescribeContainerInstancesRequest,
    DescribeContainerInstancesResponse, Failure,
};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_protocol::DesiredStatus;
use std::collections::HashMap;

/// Task counts of every instance of a cluster, by instance id.
pub async fn task_counts(
    ctx: &Ctx<'_>,
    cluster: &str,
) -> Result<HashMap<String, TaskCounts>, EcsError> {
    let mut out: HashMap<String, TaskCounts> = HashMap::new();
    for (_, t, _) in records::list::<TaskRecord>(ctx.store(), &task_prefix(cluster)).await? {
        let c = out.entry(t.instance_id.clone()).or_default();
        if t.desired() == DesiredStatus::Running && !t.is_stopped() {
            c.running += 1;
        }
        if t.last_status.0 == TaskStatus::Pending {
            c.pending += 1;
        }
    }
    Ok(out)
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
    counts: &HashMap<String, TaskCounts>,
    include_tags: bool,
) -> Result<ContainerInstance, EcsError> {
    let custom = custom_attributes_of(ctx, &rec.cluster, &rec.id).await?;
    Ok(rec.view(
        &custom,
        counts.get(&rec.id).copied().unwrap_or_default(),
        include_tags,
    ))
}

/// DescribeContainerInstances.
pub async fn describe_container_instances(
    ctx: &Ctx<'_>,
    req: DescribeContainerInstancesRequest,
) -> Result<DescribeContainerInstancesResponse, EcsError> {
    let refs: Vec<&str> = req.container_instances.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &refs).await?;
    if refs.len() > 100 {
        return Err(EcsError::invalid_parameter(format!(
            "DescribeContainerInstances accepts at most 100 container instances; {} were given.",
            refs.len()
        )));
    }
    let include_tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&ContainerInstanceField::Tags));
    let counts = task_counts(ctx, &cluster).await?;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        let found = match instance_id_in(r, &cluster) {
            Some(id) if !super::foreign_arn(ctx, r) => {
                get::<InstanceRecord>(ctx.store(), &instance_key(&cluster, id)).await?
            }
            _ => None,
        };
        match found {
            Some((rec, _)) => out.push(view_of(ctx, &rec, &counts, include_tags).await?),
            None => failures.push(Failure {
                arn: Some(if r.starts_with("arn:") {
                    r.to_string()
                } else {
                    ctx.arns().container_instance(&cluster, r)
                }),
                reason: Some("MISSING".into()),
                detail: None,
            }),
        }
    }
    Ok(DescribeContainerInstancesResponse {
        container_instances: Some(out),
        failures: Some(failures),
    })
}
