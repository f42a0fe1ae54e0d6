//! ListContainerInstances: the cluster's instances, filtered by `status` (default: every status
//! but INACTIVE) and by `filter`, an expression of the cluster query language evaluated with
//! `flotilla_scheduler::query` (a malformed one is `InvalidParameterException` naming the
//! position), paginated (default and max 100).

use crate::context::Ctx;
use flotilla_control::instances::InstanceRecord;
use flotilla_controllers::placement::custom_attributes;
use flotilla_controllers::records::{self, instance_prefix};
use flotilla_model::shapes::{ListContainerInstancesRequest, ListContainerInstancesResponse};
use flotilla_model::EcsError;
use flotilla_scheduler::{query, InstanceStatus};

/// ListContainerInstances.
pub async fn list_container_instances(
    ctx: &Ctx<'_>,
    req: ListContainerInstancesRequest,
) -> Result<ListContainerInstancesResponse, EcsError> {
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[]).await?;
    let q = match req.filter.as_deref() {
        Some(f) => Some(
            query::parse(f)
                .map_err(|e| EcsError::invalid_parameter(format!("Invalid filter '{f}': {e}.")))?,
        ),
        None => None,
    };
    let wanted = req
        .status
        .and_then(|s| InstanceStatus::from_ecs_str(s.as_str()));
    let custom = custom_attributes(ctx.store(), &cluster).await?;
    // What the tasks hold matters only to a filter (`task:group`, remaining resources).
    let held = if q.is_some() {
        flotilla_controllers::held::by_instance(ctx.plane(), &cluster).await?
    } else {
        Default::default()
    };
    let items = records::list::<InstanceRecord>(ctx.store(), &instance_prefix(&cluster))
        .await?
        .into_iter()
        .filter(|(_, r, _)| match wanted {
            Some(s) => r.status() == s,
            None => r.status() != InstanceStatus::Inactive,
        })
        .filter(|(_, r, _)| {
            q.as_ref().is_none_or(|q| {
                q.matches(
                    &r.to_scheduler(
                        custom.get(&r.id).map_or(&[], |v| v),
                        held.get(&r.id)
                            .unwrap_or(&flotilla_control::instances::NOTHING_HELD),
                    ),
                )
            })
        })
        .map(|(k, r, _)| (k, r.arn().to_string()));
    let (container_instance_arns, next_token) =
        crate::paginate::arns(items, req.next_token.as_deref(), req.max_results, 100)?;
    Ok(ListContainerInstancesResponse {
        container_instance_arns,
        next_token,
    })
}
