//! StopTask: sets a task's desired status to STOPPED with `stopCode: UserInitiated`,
//! `stoppedReason` (the request's `reason`, or "Task stopped by user") and `stoppingAt`. The
//! agent of its instance is pushed the change at once and stops the containers (SIGTERM, then
//! SIGKILL after `stopTimeout`); `lastStatus` follows from its reports. Stopping a task that is
//! already meant to stop changes nothing. An unknown task is ECS's `InvalidParameterException`
//! "The referenced task was not found."

use crate::context::Ctx;
use flotilla_control::tasks::{stop, TaskRecord};
use flotilla_controllers::records::{get, replace, task_id_in, task_key, Attempt};
use flotilla_model::shapes::{StopTaskRequest, StopTaskResponse, TaskStopCode};
use flotilla_model::EcsError;

/// StopTask.
pub async fn stop_task(ctx: &Ctx<'_>, req: StopTaskRequest) -> Result<StopTaskResponse, EcsError> {
    let r = req.task.as_str();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[r]).await?;
    let not_found = || EcsError::invalid_parameter("The referenced task was not found.");
    let Some(id) = task_id_in(r, &cluster).filter(|_| !super::foreign_arn(ctx, r)) else {
        return Err(not_found());
    };
    let reason = req
        .reason
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Task stopped by user".to_string());
    if reason.len() > 1024 {
        return Err(EcsError::invalid_parameter(
            "The reason can be at most 1024 characters.",
        ));
    }
    let key = task_key(&cluster, id);
    let now = flotilla_control::timestamp(ctx.now);
    let (rec, stopped) = ctx
        .plane()
        .cas(&key, || async {
            let Some((rec, rev)) = get::<TaskRecord>(ctx.store(), &key).await? else {
                return Err(not_found());
            };
            let next = stop(&rec, TaskStopCode::UserInitiated, &reason, now);
            if next == rec {
                return Ok(Attempt::Done((rec, false)));
            }
            let txn = replace(&key, rev, &next)?;
            Ok(Attempt::Commit(txn, (next, true)))
        })
        .await?;
    if stopped {
        tracing::info!(task = %rec.arn(), reason = %reason, "task stop requested");
    }
    Ok(StopTaskResponse {
        task: Some(rec.view(false)),
    })
}
