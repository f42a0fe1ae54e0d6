//! UpdateServicePrimaryTaskSet: the named set becomes PRIMARY and the previous primary ACTIVE;
//! the service then shows the primary's task definition, launch, platform, network, load
//! balancers and registries, as ECS does. An unknown or DRAINING set is
//! `TaskSetNotFoundException`.

use crate::context::Ctx;
use crate::shared::task_sets::{check_service, service_key_of};
use flotilla_control::services::{service_not_found, ServiceRecord};
use flotilla_control::task_sets::{find, make_primary, task_set_not_found, view};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{
    UpdateServicePrimaryTaskSetRequest, UpdateServicePrimaryTaskSetResponse,
};
use flotilla_model::EcsError;

/// UpdateServicePrimaryTaskSet.
pub async fn update_service_primary_task_set(
    ctx: &Ctx<'_>,
    req: UpdateServicePrimaryTaskSetRequest,
) -> Result<UpdateServicePrimaryTaskSetResponse, EcsError> {
    let cluster = super::request_cluster(ctx, Some(&req.cluster), &[&req.service]).await?;
    let key = service_key_of(ctx, &cluster, &req.service)?;
    let now = flotilla_control::timestamp(ctx.now);
    let (rec, i) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            check_service(&rec, false)?;
            let i = find(&rec.task_sets, &req.primary_task_set).ok_or_else(task_set_not_found)?;
            make_primary(&mut rec.task_sets, i, now)?;
            flotilla_control::task_sets::promote(&mut rec.service, &rec.task_sets[i]);
            let txn = replace(&key, rev, &rec)?;
            Ok(Attempt::Commit(txn, (rec, i)))
        })
        .await?;
    let set = &rec.task_sets[i];
    tracing::info!(service = %rec.name(), cluster = %cluster, task_set = %set.id, "primary task set changed");
    let cluster_arn = rec.service.cluster_arn.clone().unwrap_or_default();
    Ok(UpdateServicePrimaryTaskSetResponse {
        task_set: Some(view(set, rec.arn(), &cluster_arn, false)),
    })
}
