//! DescribeServiceDeployments: up to 20 service deployments by ARN
//! (`arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID`, the id being the digits
//! of the deployment id `ecs-svc/<digits>`), with their source and target service revisions
//! (one revision per deployment), status, deployment configuration, circuit breaker and, when
//! StopServiceDeployment rolled them back, the rollback; a BLUE_GREEN, LINEAR or CANARY
//! deployment also shows its `lifecycleStage` and both revisions' requested traffic weights. An ARN naming no deployment is a
//! failure with reason `MISSING`.

use crate::context::Ctx;
use crate::shared::deployments::{brief, find};
use crate::shared::missing;
use flotilla_control::service_scheduler::{circuit_breaker_threshold, DeploymentRecord};
use flotilla_control::services::ServiceRecord;
use flotilla_model::shapes::{
    DeploymentRolloutState, DescribeServiceDeploymentsRequest, DescribeServiceDeploymentsResponse,
    Rollback, ServiceDeployment, ServiceDeploymentCircuitBreaker,
    ServiceDeploymentRollbackMonitorsStatus, ServiceRevisionSummary,
};
use flotilla_model::EcsError;

fn summary(ctx: &Ctx<'_>, rec: &ServiceRecord, d: &DeploymentRecord) -> ServiceRevisionSummary {
    ServiceRevisionSummary {
        arn: Some(rec.revision_arn(ctx.arns(), &d.id)),
        requested_task_count: i32::try_from(d.desired_count).unwrap_or(i32::MAX),
        running_task_count: i32::try_from(d.running_count).unwrap_or(i32::MAX),
        pending_task_count: i32::try_from(d.pending_count).unwrap_or(i32::MAX),
        ..ServiceRevisionSummary::default()
    }
}

/// A deployment as DescribeServiceDeployments describes it.
pub fn view(ctx: &Ctx<'_>, rec: &ServiceRecord, d: &DeploymentRecord) -> ServiceDeployment {
    let b = brief(ctx, rec, d);
    // The source: the deployment this one replaced (the next older one).
    let all = rec.all_deployments();
    // A blue/green, linear or canary deployment's source is its blue deployment, and both
    // revisions show the traffic shares asked of the listener rules.
    let shares = d.blue_green.as_ref().map(|p| {
        let done = d.rollout_state == DeploymentRolloutState::Completed;
        let failed = d.rolled_back_to.is_some();
        let production = if done {
            100
        } else if failed {
            0
        } else {
            p.green_percent()
        };
        let test = if done || (p.test_on_green && !failed) {
            100
        } else {
            0
        };
        (f64::from(production), f64::from(test))
    });
    let source_id = d.blue_green.as_ref().map(|p| p.blue.clone());
    let source: Vec<ServiceRevisionSummary> = all
        .iter()
        .find(|o| match &source_id {
            Some(blue) => &o.id == blue,
            None => o.created_at < d.created_at,
        })
        .map(|o| {
            let mut s = summary(ctx, rec, o);
            if let Some((production, test)) = shares {
                s.requested_production_traffic_weight = Some(100.0 - production);
                s.requested_test_traffic_weight = Some(100.0 - test);
            }
            s
        })
        .into_iter()
        .collect();
    let mut target = summary(ctx, rec, d);
    if let Some((production, test)) = shares {
        target.requested_production_traffic_weight = Some(production);
        target.requested_test_traffic_weight = Some(test);
    }
    let note = rec.stopped.get(&d.id);
    let rollback = rec.rollback_of(d).map(|(to, rb)| Rollback {
        reason: Some(if note.is_some() {
            "StopServiceDeployment with stopType ROLLBACK.".into()
        } else if d.rolled_back_to.is_some() {
            d.rollout_state_reason.clone()
        } else {
            "ECS deployment circuit breaker: tasks failed to start.".into()
        }),
        started_at: Some(note.map_or(rb.created_at, |n| n.at)),
        service_revision_arn: Some(rec.revision_arn(ctx.arns(), &to)),
    });
    let cb = match rec.circuit_breaker() {
        None => ServiceDeploymentCircuitBreaker {
            status: Some(ServiceDeploymentRollbackMonitorsStatus::Disabled),
            failure_count: 0,
            threshold: 0,
        },
        Some(_) => ServiceDeploymentCircuitBreaker {
            status: Some(match d.rollout_state {
                DeploymentRolloutState::Failed if note.is_none() => {
                    ServiceDeploymentRollbackMonitorsStatus::Triggered
                }
                DeploymentRolloutState::InProgress if b.finished_at.is_none() => {
                    ServiceDeploymentRollbackMonitorsStatus::Monitoring
                }
                _ => ServiceDeploymentRollbackMonitorsStatus::MonitoringComplete,
            }),
            failure_count: i32::try_from(d.failed_tasks).unwrap_or(i32::MAX),
            threshold: i32::try_from(circuit_breaker_threshold(d.desired_count))
                .unwrap_or(i32::MAX),
        },
    };
    ServiceDeployment {
        service_deployment_arn: b.service_deployment_arn,
        service_arn: b.service_arn,
        cluster_arn: b.cluster_arn,
        created_at: b.created_at,
        started_at: b.started_at,
        finished_at: b.finished_at,
        stopped_at: note.map(|n| n.at),
        updated_at: Some(d.updated_at),
        source_service_revisions: Some(source),
        target_service_revision: Some(target),
        lifecycle_stage: d.blue_green.as_ref().map(|p| p.stage.shape()),
        status: b.status,
        status_reason: b.status_reason,
        deployment_configuration: rec.service.deployment_configuration.clone(),
        rollback,
        deployment_circuit_breaker: Some(cb),
        ..ServiceDeployment::default()
    }
}

/// DescribeServiceDeployments.
pub async fn describe_service_deployments(
    ctx: &Ctx<'_>,
    req: DescribeServiceDeploymentsRequest,
) -> Result<DescribeServiceDeploymentsResponse, EcsError> {
    if req.service_deployment_arns.is_empty() || req.service_deployment_arns.len() > 20 {
        return Err(EcsError::invalid_parameter(
            "serviceDeploymentArns can have at most 20 items and at least 1.",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in &req.service_deployment_arns {
        match find(ctx, arn, "service-deployment").await? {
            Some((rec, _, d)) => found.push(view(ctx, &rec, &d)),
            None => failures.push(missing(arn.clone())),
        }
    }
    Ok(DescribeServiceDeploymentsResponse {
        service_deployments: Some(found),
        failures: Some(failures),
    })
}
