//! StopServiceDeployment: stops a service's in-progress deployment. With `stopType: ROLLBACK`
//! (the default) the deployment is marked FAILED and a new PRIMARY deployment of the task
//! definition of the last COMPLETED deployment is created, as the circuit breaker's rollback
//! does; the service loop then replaces the stopped deployment's tasks. With `ABORT` the
//! deployment is marked FAILED where it is: no more tasks are started for it and its tasks stay.
//! An unknown ARN is `ServiceDeploymentNotFoundException`; a deployment that is not in progress
//! (finished, replaced, or without a completed deployment to roll back to) is
//! `ConflictException`.

use crate::context::Ctx;
use crate::shared::deployments::find;
use flotilla_control::service_scheduler::DeploymentStatus;
use flotilla_control::services::{
    deployment_id, new_deployment, service_key, ServiceStatus, StopNote,
};
use flotilla_controllers::records::{commit, contention, to_bytes, CAS_ATTEMPTS};
use flotilla_model::shapes::{
    DeploymentRolloutState, ServiceDeploymentStatus, StopServiceDeploymentRequest,
    StopServiceDeploymentResponse, StopServiceDeploymentStopType,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

fn conflict(msg: &str) -> EcsError {
    EcsError::new(ErrorCode::ConflictException, msg)
}

/// StopServiceDeployment.
pub async fn stop_service_deployment(
    ctx: &Ctx<'_>,
    req: StopServiceDeploymentRequest,
) -> Result<StopServiceDeploymentResponse, EcsError> {
    let arn = req.service_deployment_arn.clone();
    let rollback = req.stop_type != Some(StopServiceDeploymentStopType::Abort);
    let now = flotilla_control::timestamp(ctx.now);
    for _ in 0..CAS_ATTEMPTS {
        let Some((mut rec, rev, d)) = find(ctx, &arn, "service-deployment").await? else {
            return Err(EcsError::new(
                ErrorCode::ServiceDeploymentNotFoundException,
                format!("The service deployment {arn} does not exist."),
            ));
        };
        let (status, _) = rec.deployment_status(&d);
        if status != ServiceDeploymentStatus::InProgress || rec.status != ServiceStatus::Active {
            return Err(conflict(
                "The service deployment is not in progress and cannot be stopped.",
            ));
        }
        let key = service_key(&rec.cluster, rec.name());
        let target = match (&rec.last_completed, rollback) {
            (Some((id, td)), true) if id != &d.id => Some((id.clone(), td.clone())),
            (_, true) => {
                return Err(conflict(
                    "The service has no completed deployment to roll back to.",
                ))
            }
            (_, false) => None,
        };
        if let Some(p) = rec.deployments.first_mut() {
            p.rollout_state = DeploymentRolloutState::Failed;
            p.rollout_state_reason = if rollback {
                "ECS deployment stopped by StopServiceDeployment (ROLLBACK).".into()
            } else {
                "ECS deployment stopped by StopServiceDeployment (ABORT).".into()
            };
            p.updated_at = now;
        }
        let mut note = StopNote {
            at: now,
            rollback: None,
        };
        if let Some((to_id, td)) = target {
            let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
            for x in rec.deployments.iter_mut() {
                x.status = DeploymentStatus::Active;
                x.desired_count = 0;
            }
            let mut nd = new_deployment(deployment_id(rand::random::<u64>()), &td, desired, now);
            nd.rollout_state_reason =
                format!("ECS deployment rolling back to deploymentId {to_id}.");
            note.rollback = Some((to_id.clone(), nd.id.clone()));
            rec.deployments.insert(0, nd);
            rec.service.task_definition = Some(td);
            let name = rec.name().to_string();
            rec.push_events(
                &[format!(
                    "(service {name}) (deployment {}) deployment stopped: rolling back to deployment {to_id}.",
                    d.id
                )],
                now,
                &mut || uuid::Uuid::new_v4().to_string(),
            );
        }
        rec.stopped.insert(d.id.clone(), note);
        rec.steady = false;
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key, to_bytes(&rec)?);
        if commit(ctx.store(), txn).await? {
            tracing::info!(deployment = %d.id, rollback, "service deployment stopped");
            return Ok(StopServiceDeploymentResponse {
                service_deployment_arn: Some(arn),
            });
        }
    }
    Err(contention())
}
