//! DescribeServices: up to 10 services by name or ARN, ACTIVE, DRAINING or INACTIVE, with
//! their deployments and events (newest first); `include: [TAGS]` adds the tags. A service that
//! does not exist is a failure with reason `MISSING`, as ECS reports it (a name as
//! `arn:aws:ecs:REGION:ACCOUNT:service/NAME`, without the cluster; an ARN as given).

use crate::context::Ctx;
use crate::shared::{missing, named_arn};
use flotilla_control::services::{service_key, service_name_in, ServiceRecord};
use flotilla_controllers::records::get;
use flotilla_model::shapes::{DescribeServicesRequest, DescribeServicesResponse, ServiceField};
use flotilla_model::EcsError;

/// DescribeServices.
pub async fn describe_services(
    ctx: &Ctx<'_>,
    req: DescribeServicesRequest,
) -> Result<DescribeServicesResponse, EcsError> {
    if req.services.is_empty() || req.services.len() > 10 {
        return Err(EcsError::invalid_parameter(
            "services can have at most 10 items and at least 1.",
        ));
    }
    let refs: Vec<&str> = req.services.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &refs).await?;
    let tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&ServiceField::Tags));
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for s in &req.services {
        let found = match service_name_in(s, &cluster).filter(|_| !super::foreign_arn(ctx, s)) {
            Some(name) => get::<ServiceRecord>(ctx.store(), &service_key(&cluster, name)).await?,
            None => None,
        };
        match found {
            Some((rec, _)) => services.push(rec.view(tags)),
            None => failures.push(missing(named_arn(s, |n| ctx.arns().missing_service(n)))),
        }
    }
    Ok(DescribeServicesResponse {
        services: Some(services),
        failures: Some(failures),
    })
}
