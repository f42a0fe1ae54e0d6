//! StopServiceDeployment: stops a service's in-progress deployment. With `stopType: ROLLBACK`
//! (the default) the deployment is marked FAILED and a new PRIMARY deployment of the task
//! definition of the last COMPLETED deployment is created, by the rollback the circuit breaker
//! makes too (`flotilla_control::service_scheduler::rollback::stop_primary`); the service loop
//! then replaces the stopped deployment's tasks. With `ABORT` the deployment is marked FAILED
//! where it is: no more tasks are started for it and its tasks stay. A BLUE_GREEN, LINEAR or
//! CANARY deployment rolls back to its blue deployment, which is still running: blue is PRIMARY
//! again and gets all the production traffic, and green's tasks are stopped
//! (`flotilla_control::service_scheduler::blue_green::roll_back`). An unknown ARN is
//! `ServiceDeploymentNotFoundException`; a deployment that is not in progress (finished,
//! replaced, or without a completed deployment to roll back to) is `ConflictException`.

use crate::context::Ctx;
use crate::shared::deployments::find;
use flotilla_control::service_scheduler::blue_green::{roll_back, RollbackWhy};
use flotilla_control::service_scheduler::rollback::{
    rollback_target, stop_primary, Rollback, StoppedBy,
};
use flotilla_control::services::{
    deployment_id, parse_deployment_arn, service_key, ServiceStatus, StopNote,
};
use flotilla_controllers::records::{to_bytes, Attempt};
use flotilla_model::shapes::{
    ServiceDeploymentStatus, StopServiceDeploymentRequest, StopServiceDeploymentResponse,
    StopServiceDeploymentStopType,
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
    let by = match req.stop_type {
        Some(StopServiceDeploymentStopType::Abort) => StoppedBy::StopAbort,
        _ => StoppedBy::StopRollback,
    };
    let now = flotilla_control::timestamp(ctx.now);
    let not_found = || {
        EcsError::new(
            ErrorCode::ServiceDeploymentNotFoundException,
            format!("The service deployment {arn} does not exist."),
        )
    };
    let Some((cluster, service, _)) = parse_deployment_arn(ctx.arns(), &arn, "service-deployment")
    else {
        return Err(not_found());
    };
    let key = service_key(&cluster, &service);
    let stopped = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut rec, rev, d)) = find(ctx, &arn, "service-deployment").await? else {
                return Err(not_found());
            };
            let (status, _) = rec.deployment_status(&d);
            if status != ServiceDeploymentStatus::InProgress || rec.status != ServiceStatus::Active
            {
                return Err(conflict(
                    "The service deployment is not in progress and cannot be stopped.",
                ));
            }
            let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
            // A blue/green, linear or canary deployment rolls back to its blue deployment,
            // still running: production traffic returns to it at once.
            if by == StoppedBy::StopRollback && d.blue_green.is_some() {
                if let Some(events) =
                    roll_back(&mut rec.deployments, RollbackWhy::Stopped, desired, now)
                {
                    let blue = rec.deployments[0].id.clone();
                    rec.record_events(&events, now, &mut || uuid::Uuid::new_v4().to_string());
                    rec.service.task_definition = Some(rec.deployments[0].task_definition.clone());
                    rec.stopped.insert(
                        d.id.clone(),
                        StopNote {
                            at: now,
                            rollback: Some((blue.clone(), blue)),
                        },
                    );
                    rec.steady = false;
                    let txn = Txn::new()
                        .when(Compare::ModRevision(key.clone(), rev))
                        .put(key.clone(), to_bytes(&rec)?);
                    return Ok(Attempt::Commit(txn, d.id));
                }
            }
            let rollback = match by {
                StoppedBy::StopAbort => None,
                _ => {
                    let Some((to, td)) = rollback_target(rec.last_completed.as_ref(), &d) else {
                        return Err(conflict(
                            "The service has no completed deployment to roll back to.",
                        ));
                    };
                    Some(Rollback {
                        to: to.clone(),
                        task_definition: td.clone(),
                        id: deployment_id(rand::random::<u64>()),
                        desired,
                    })
                }
            };
            let note = StopNote {
                at: now,
                rollback: rollback.as_ref().map(|r| (r.to.clone(), r.id.clone())),
            };
            if let Some(r) = &rollback {
                rec.service.task_definition = Some(r.task_definition.clone());
            }
            let events = stop_primary(&mut rec.deployments, by, rollback, now);
            rec.record_events(&events, now, &mut || uuid::Uuid::new_v4().to_string());
            rec.stopped.insert(d.id.clone(), note);
            rec.steady = false;
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key.clone(), to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, d.id))
        })
        .await?;
    let rollback = by == StoppedBy::StopRollback;
    tracing::info!(deployment = %stopped, rollback, "service deployment stopped");
    Ok(StopServiceDeploymentResponse {
        service_deployment_arn: Some(arn),
    })
}
