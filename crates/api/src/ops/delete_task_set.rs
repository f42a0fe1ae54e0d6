//! DeleteTaskSet: the set goes DRAINING (computed desired count 0); the service loop stops and
//! deregisters its tasks and then removes it, after which it is `TaskSetNotFoundException`.
//! The PRIMARY set is deleted only with `force` (ECS's `InvalidParameterException` "Primary
//! TaskSet cannot be deleted"); a set already DRAINING is answered as it is.

use crate::context::Ctx;
use crate::shared::task_sets::{check_service, service_key_of};
use flotilla_control::services::{service_not_found, ServiceRecord};
use flotilla_control::task_sets::{delete, find, task_set_not_found, view, Deletion};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{DeleteTaskSetRequest, DeleteTaskSetResponse};
use flotilla_model::EcsError;

/// DeleteTaskSet.
pub async fn delete_task_set(
    ctx: &Ctx<'_>,
    req: DeleteTaskSetRequest,
) -> Result<DeleteTaskSetResponse, EcsError> {
    let cluster = super::request_cluster(ctx, Some(&req.cluster), &[&req.service]).await?;
    let key = service_key_of(ctx, &cluster, &req.service)?;
    let now = flotilla_control::timestamp(ctx.now);
    let force = req.force == Some(true);
    let (rec, i, deleted) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            check_service(&rec, false)?;
            let i = find(&rec.task_sets, &req.task_set).ok_or_else(task_set_not_found)?;
            match delete(&mut rec.task_sets[i], force, now)? {
                Deletion::AlreadyDraining => Ok(Attempt::Done((rec, i, false))),
                Deletion::Draining => {
                    rec.steady = false;
                    let txn = replace(&key, rev, &rec)?;
                    Ok(Attempt::Commit(txn, (rec, i, true)))
                }
            }
        })
        .await?;
    let set = &rec.task_sets[i];
    if deleted {
        tracing::info!(service = %rec.name(), cluster = %cluster, task_set = %set.id, "task set draining");
    }
    let cluster_arn = rec.service.cluster_arn.clone().unwrap_or_default();
    Ok(DeleteTaskSetResponse {
        task_set: Some(view(set, rec.arn(), &cluster_arn, false)),
    })
}
