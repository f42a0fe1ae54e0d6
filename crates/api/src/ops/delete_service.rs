//! DeleteService: ACTIVE -> DRAINING (desired count 0; the service loop stops its tasks and
//! makes it INACTIVE once none is left running). A service scaled above 0 needs `force`
//! (ECS's `InvalidParameterException` "The service cannot be stopped while it is scaled above
//! 0."). Deleting a DRAINING or INACTIVE service answers it as it is (the operation is
//! idempotent); an unknown one is `ServiceNotFoundException`.

use crate::context::Ctx;
use flotilla_control::services::{
    service_key, service_name_in, service_not_found, ServiceRecord, ServiceStatus,
};
use flotilla_controllers::records::{get, replace, Attempt};
use flotilla_model::shapes::{DeleteServiceRequest, DeleteServiceResponse};
use flotilla_model::EcsError;

/// DeleteService.
pub async fn delete_service(
    ctx: &Ctx<'_>,
    req: DeleteServiceRequest,
) -> Result<DeleteServiceResponse, EcsError> {
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[&req.service]).await?;
    let name = service_name_in(&req.service, &cluster)
        .filter(|_| !super::foreign_arn(ctx, &req.service))
        .ok_or_else(service_not_found)?
        .to_string();
    let key = service_key(&cluster, &name);
    let now = flotilla_control::timestamp(ctx.now);
    let (rec, drained) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) = get::<ServiceRecord>(ctx.store(), &key).await? else {
                return Err(service_not_found());
            };
            if rec.status != ServiceStatus::Active {
                return Ok(Attempt::Done((rec, false)));
            }
            if rec.service.desired_count > 0 && req.force != Some(true) {
                return Err(EcsError::invalid_parameter(
                    "The service cannot be stopped while it is scaled above 0.",
                ));
            }
            rec.status = ServiceStatus::Draining;
            rec.service.desired_count = 0;
            rec.steady = false;
            for d in rec.deployments.iter_mut() {
                d.desired_count = 0;
                d.updated_at = now;
            }
            let txn = replace(&key, rev, &rec)?;
            Ok(Attempt::Commit(txn, (rec, true)))
        })
        .await?;
    if drained {
        tracing::info!(service = %name, cluster = %cluster, "service draining");
    }
    Ok(DeleteServiceResponse {
        service: Some(rec.view(false)),
    })
}
