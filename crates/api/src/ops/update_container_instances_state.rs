//! UpdateContainerInstancesState: sets up to 10 instances ACTIVE or DRAINING. A DRAINING
//! instance takes no new tasks; standalone tasks already on it are left alone (services, when
//! they exist, replace theirs). Unknown instances are `MISSING` failures.

use crate::context::Ctx;
use crate::shared::instance_views::{task_counts, view_of};
use crate::shared::{missing, named_arn};
use flotilla_control::instances::InstanceRecord;
use flotilla_controllers::records::{get, instance_id_in, instance_key, replace, Attempt};
use flotilla_model::shapes::{
    ContainerInstanceStatus, Failure, UpdateContainerInstancesStateRequest,
    UpdateContainerInstancesStateResponse,
};
use flotilla_model::EcsError;
use flotilla_scheduler::InstanceStatus;

/// What became of one instance.
enum Outcome {
    Missing,
    Inactive(InstanceRecord),
    Unchanged(InstanceRecord),
    Changed(InstanceRecord),
}

/// UpdateContainerInstancesState.
pub async fn update_container_instances_state(
    ctx: &Ctx<'_>,
    req: UpdateContainerInstancesStateRequest,
) -> Result<UpdateContainerInstancesStateResponse, EcsError> {
    let refs: Vec<&str> = req.container_instances.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &refs).await?;
    let status = match req.status {
        ContainerInstanceStatus::Active => InstanceStatus::Active,
        ContainerInstanceStatus::Draining => InstanceStatus::Draining,
        other => {
            return Err(EcsError::invalid_parameter(format!(
                "Container instances can only be set to ACTIVE or DRAINING, not {}.",
                other.as_str()
            )))
        }
    };
    if refs.is_empty() || refs.len() > 10 {
        return Err(EcsError::invalid_parameter(format!(
            "UpdateContainerInstancesState takes 1 to 10 container instances; {} were given.",
            refs.len()
        )));
    }
    let mut updated = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        let missing = || missing(named_arn(r, |n| ctx.arns().container_instance(&cluster, n)));
        let Some(id) = instance_id_in(r, &cluster).filter(|_| !super::foreign_arn(ctx, r)) else {
            failures.push(missing());
            continue;
        };
        let key = instance_key(&cluster, id);
        let outcome = ctx
            .plane()
            .cas(&key, || async {
                let Some((mut rec, rev)) = get::<InstanceRecord>(ctx.store(), &key).await? else {
                    return Ok(Attempt::Done(Outcome::Missing));
                };
                if rec.status() == InstanceStatus::Inactive {
                    return Ok(Attempt::Done(Outcome::Inactive(rec)));
                }
                if rec.status() == status {
                    return Ok(Attempt::Done(Outcome::Unchanged(rec)));
                }
                rec.set_status(status);
                rec.touch();
                let txn = replace(&key, rev, &rec)?;
                Ok(Attempt::Commit(txn, Outcome::Changed(rec)))
            })
            .await?;
        match outcome {
            Outcome::Missing => failures.push(missing()),
            Outcome::Inactive(rec) => failures.push(Failure {
                arn: Some(rec.arn().to_string()),
                reason: Some("INACTIVE".into()),
                detail: Some("The container instance is deregistered.".into()),
            }),
            Outcome::Unchanged(rec) => updated.push(rec),
            Outcome::Changed(rec) => {
                tracing::info!(container_instance = %rec.arn(), status = status.as_ecs_str(), "container instance state changed");
                updated.push(rec);
            }
        }
    }
    let counts = task_counts(ctx, &cluster).await?;
    let mut out = Vec::new();
    for rec in &updated {
        out.push(view_of(ctx, rec, &counts, false).await?);
    }
    Ok(UpdateContainerInstancesStateResponse {
        container_instances: Some(out),
        failures: Some(failures),
    })
}
