//! Service deployments as the deployment operations answer them: found by ARN (a deployment
//! or its service revision), and briefed.

use crate::context::Ctx;
use flotilla_control::service_scheduler::DeploymentRecord;
use flotilla_control::services::{parse_deployment_arn, service_key, ServiceRecord};
use flotilla_controllers::records::get;
use flotilla_model::shapes::{DeploymentRolloutState, ServiceDeploymentBrief};
use flotilla_model::EcsError;

/// The service record and the deployment a service-deployment or service-revision ARN names
/// (`kind`: `service-deployment` or `service-revision`), with the record's revision.
pub async fn find(
    ctx: &Ctx<'_>,
    arn: &str,
    kind: &str,
) -> Result<Option<(ServiceRecord, u64, DeploymentRecord)>, EcsError> {
    let Some((cluster, service, id)) = parse_deployment_arn(ctx.arns(), arn, kind) else {
        return Ok(None);
    };
    let Some((rec, rev)) =
        get::<ServiceRecord>(ctx.store(), &service_key(&cluster, &service)).await?
    else {
        return Ok(None);
    };
    let d = rec
        .all_deployments()
        .into_iter()
        .find(|d| d.id == id)
        .cloned();
    Ok(d.map(|d| (rec, rev, d)))
}

/// The brief of one deployment.
pub fn brief(ctx: &Ctx<'_>, rec: &ServiceRecord, d: &DeploymentRecord) -> ServiceDeploymentBrief {
    let (status, reason) = rec.deployment_status(d);
    let finished = d.rollout_state != DeploymentRolloutState::InProgress
        || rec.deployments.first().is_none_or(|p| p.id != d.id);
    ServiceDeploymentBrief {
        service_deployment_arn: Some(rec.deployment_arn(ctx.arns(), &d.id)),
        service_arn: Some(rec.arn().to_string()),
        cluster_arn: Some(ctx.arns().cluster(&rec.cluster)),
        started_at: Some(d.created_at),
        created_at: Some(d.created_at),
        finished_at: finished.then_some(d.updated_at),
        target_service_revision_arn: Some(rec.revision_arn(ctx.arns(), &d.id)),
        status: Some(status),
        status_reason: Some(reason),
    }
}
