//! ListServices: the ARNs of a cluster's ACTIVE services (DRAINING and INACTIVE ones are not
//! listed, as in ECS), filtered by `launchType` and `schedulingStrategy`, paginated (default 10,
//! at most 100).

use crate::context::Ctx;
use flotilla_control::services::{service_prefix, ServiceRecord, ServiceStatus};
use flotilla_controllers::records::list;
use flotilla_model::shapes::{ListServicesRequest, ListServicesResponse, SchedulingStrategy};
use flotilla_model::EcsError;

/// ListServices.
pub async fn list_services(
    ctx: &Ctx<'_>,
    req: ListServicesRequest,
) -> Result<ListServicesResponse, EcsError> {
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[]).await?;
    let items = list::<ServiceRecord>(ctx.store(), &service_prefix(&cluster))
        .await?
        .into_iter()
        .filter(|(_, s, _)| s.status == ServiceStatus::Active)
        .filter(|(_, s, _)| {
            req.launch_type
                .is_none_or(|l| s.service.launch_type == Some(l))
        })
        .filter(|(_, s, _)| {
            req.scheduling_strategy.is_none_or(|st| {
                s.service
                    .scheduling_strategy
                    .unwrap_or(SchedulingStrategy::Replica)
                    == st
            })
        })
        .map(|(k, r, _)| (k, r.arn().to_string()));
    let (service_arns, next_token) =
        crate::paginate::arns(items, req.next_token.as_deref(), req.max_results, 10)?;
    Ok(ListServicesResponse {
        service_arns,
        next_token,
    })
}
