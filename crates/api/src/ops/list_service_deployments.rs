//! ListServiceDeployments: a service's deployments (current and finished, the last
//! [`flotilla_control::services::MAX_HISTORY`] finished ones), newest first, as `ServiceDeploymentBrief`s,
//! filtered by status and by `createdAt {before, after}`, paginated (`maxResults` 1 to 100,
//! default 20). An unknown service is `ServiceNotFoundException`.

use crate::context::Ctx;
use crate::paginate::{decode_token, encode_token, page_size};
use crate::shared::deployments::brief;
use flotilla_control::services::{service_key, service_name_in, service_not_found, ServiceRecord};
use flotilla_controllers::records::get;
use flotilla_model::shapes::{
    ListServiceDeploymentsRequest, ListServiceDeploymentsResponse, ServiceDeploymentBrief,
};
use flotilla_model::EcsError;

/// ListServiceDeployments.
pub async fn list_service_deployments(
    ctx: &Ctx<'_>,
    req: ListServiceDeploymentsRequest,
) -> Result<ListServiceDeploymentsResponse, EcsError> {
    let max = page_size(req.max_results, 20, 100)?;
    let after = decode_token(req.next_token.as_deref())?;
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[&req.service]).await?;
    let name = service_name_in(&req.service, &cluster)
        .filter(|_| !super::foreign_arn(ctx, &req.service))
        .ok_or_else(service_not_found)?;
    let (rec, _) = get::<ServiceRecord>(ctx.store(), &service_key(&cluster, name))
        .await?
        .ok_or_else(service_not_found)?;
    let briefs: Vec<ServiceDeploymentBrief> = rec
        .all_deployments()
        .into_iter()
        .filter(|d| {
            req.created_at.as_ref().is_none_or(|c| {
                c.before.is_none_or(|b| d.created_at < b)
                    && c.after.is_none_or(|a| d.created_at > a)
            })
        })
        .map(|d| brief(ctx, &rec, d))
        .filter(|b| {
            req.status
                .as_ref()
                .filter(|s| !s.is_empty())
                .is_none_or(|s| b.status.as_ref().is_some_and(|st| s.contains(st)))
        })
        .collect();
    // The token is the ARN of the last deployment returned; the list is newest first.
    let start = match after {
        Some(last) => briefs
            .iter()
            .position(|b| b.service_deployment_arn.as_deref() == Some(last.as_str()))
            .map_or(briefs.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<ServiceDeploymentBrief> = briefs.iter().skip(start).take(max).cloned().collect();
    let next_token = if start + page.len() < briefs.len() {
        page.last()
            .and_then(|b| b.service_deployment_arn.as_deref())
            .map(encode_token)
    } else {
        None
    };
    Ok(ListServiceDeploymentsResponse {
        service_deployments: Some(page),
        next_token,
    })
}
