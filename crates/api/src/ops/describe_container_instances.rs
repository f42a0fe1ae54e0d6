//! DescribeContainerInstances: up to 100 instances by id or ARN, with `registeredResources`,
//! `remainingResources` (what the tasks placed on them leave), `runningTasksCount` (tasks whose
//! desiredStatus is RUNNING), `pendingTasksCount` (lastStatus PENDING), every attribute (the
//! agent's and the custom ones) and, with `include: TAGS`, tags. Unknown instances are `MISSING`
//! failures.

use crate::context::Ctx;
use crate::shared::instance_views::{task_counts, view_of};
use crate::shared::{missing, named_arn};
use flotilla_control::instances::InstanceRecord;
use flotilla_controllers::records::{get, instance_id_in, instance_key};
use flotilla_model::shapes::{
    ContainerInstanceField, DescribeContainerInstancesRequest, DescribeContainerInstancesResponse,
};
use flotilla_model::EcsError;

/// DescribeContainerInstances.
pub async fn describe_container_instances(
    ctx: &Ctx<'_>,
    req: DescribeContainerInstancesRequest,
) -> Result<DescribeContainerInstancesResponse, EcsError> {
    let refs: Vec<&str> = req.container_instances.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &refs).await?;
    if refs.is_empty() {
        return Err(EcsError::invalid_parameter(
            "Container Instances cannot be empty.",
        ));
    }
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
            None => failures.push(missing(named_arn(r, |n| {
                ctx.arns().container_instance(&cluster, n)
            }))),
        }
    }
    Ok(DescribeContainerInstancesResponse {
        container_instances: Some(out),
        failures: Some(failures),
    })
}
