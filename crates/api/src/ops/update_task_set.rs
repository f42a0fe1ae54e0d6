//! UpdateTaskSet: a task set's new `scale` (PERCENT, 0 to 100); its computed desired count
//! follows and the service loop starts or stops its tasks. An unknown or DRAINING set is
//! `TaskSetNotFoundException`; the service's refusals are CreateTaskSet's.

use crate::context::Ctx;
use crate::shared::task_sets::{check_service, service_key_of};
use flotilla_control::services::{service_not_found, ServiceRecord};
use flotilla_control::task_sets::{check_scale, find, rescale, task_set_not_found, view};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{UpdateTaskSetRequest, UpdateTaskSetResponse};
use flotilla_model::EcsError;

/// UpdateTaskSet.
pub async fn update_task_set(
    ctx: &Ctx<'_>,
    req: UpdateTaskSetRequest,
) -> Result<UpdateTaskSetResponse, EcsError> {
    let cluster = super::request_cluster(ctx, Some(&req.cluster), &[&req.service]).await?;
    let key = service_key_of(ctx, &cluster, &req.service)?;
    let scale = check_scale(&req.scale)?;
    let now = flotilla_control::timestamp(ctx.now);
    let (rec, i) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            check_service(&rec, false)?;
            let i = find(&rec.task_sets, &req.task_set).ok_or_else(task_set_not_found)?;
            let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
            rescale(&mut rec.task_sets[i], scale, desired, now)?;
            rec.steady = false;
            let txn = replace(&key, rev, &rec)?;
            Ok(Attempt::Commit(txn, (rec, i)))
        })
        .await?;
    let set = &rec.task_sets[i];
    tracing::info!(service = %rec.name(), cluster = %cluster, task_set = %set.id, scale, "task set scaled");
    let cluster_arn = rec.service.cluster_arn.clone().unwrap_or_default();
    Ok(UpdateTaskSetResponse {
        task_set: Some(view(set, rec.arn(), &cluster_arn, false)),
    })
}
