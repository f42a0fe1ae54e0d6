//! GetTaskProtection: the scale-in protection of up to 100 tasks of a cluster, as ECS shows it
//! (`protectionEnabled` with its `expirationDate`; `false` once it expired or was removed).
//! An unknown task is a `MISSING` failure, a standalone task (not of a service) a
//! `TASK_NOT_VALID` one (`flotilla_control::protection::check`).

use crate::context::Ctx;
use crate::shared::named_arn;
use flotilla_control::protection::{self, Refusal};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, task_id_in, task_key};
use flotilla_model::shapes::{Failure, GetTaskProtectionRequest, GetTaskProtectionResponse};
use flotilla_model::EcsError;

/// GetTaskProtection.
pub async fn get_task_protection(
    ctx: &Ctx<'_>,
    req: GetTaskProtectionRequest,
) -> Result<GetTaskProtectionResponse, EcsError> {
    let refs: Vec<&str> = req.tasks.iter().flatten().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, Some(req.cluster.as_str()), &refs).await?;
    check_count(refs.len(), protection::MAX_GET_TASKS)?;
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        match find(ctx, &cluster, r).await? {
            Some(t) => match protection::check(&t, false) {
                Ok(()) => protected.push(protection::view(&t, ctx.now)),
                Err(why) => failures.push(failure(t.arn().to_string(), why)),
            },
            None => failures.push(failure(
                named_arn(r, |n| ctx.arns().task(&cluster, n)),
                Refusal::Missing,
            )),
        }
    }
    Ok(GetTaskProtectionResponse {
        protected_tasks: Some(protected),
        failures: Some(failures),
    })
}

/// Refuses an empty list or more than `max` tasks.
pub(crate) fn check_count(n: usize, max: usize) -> Result<(), EcsError> {
    if n == 0 {
        return Err(EcsError::invalid_parameter("Tasks cannot be empty."));
    }
    if n > max {
        return Err(EcsError::invalid_parameter(format!(
            "At most {max} tasks may be given; {n} were given."
        )));
    }
    Ok(())
}

/// The task `r` names in `cluster`, if there is one (never for an ARN of another region or
/// account).
pub(crate) async fn find(
    ctx: &Ctx<'_>,
    cluster: &str,
    r: &str,
) -> Result<Option<TaskRecord>, EcsError> {
    match task_id_in(r, cluster) {
        Some(id) if !super::foreign_arn(ctx, r) => {
            Ok(get::<TaskRecord>(ctx.store(), &task_key(cluster, id))
                .await?
                .map(|(t, _)| t))
        }
        _ => Ok(None),
    }
}

/// The failure ECS reports for a task it refused.
pub(crate) fn failure(arn: String, why: Refusal) -> Failure {
    Failure {
        arn: Some(arn),
        reason: Some(why.reason().to_string()),
        detail: None,
    }
}
