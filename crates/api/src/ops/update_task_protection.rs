//! UpdateTaskProtection: turns the scale-in protection of up to 10 tasks of a service on (for
//! `expiresInMinutes`, 1 to 2,880, 120 when absent; calling again resets the time) or off. It is
//! stored on each task record by a compare-and-swap, and the service scheduler honours it from
//! its next round (`flotilla_control::protection`). An unknown task is a `MISSING` failure; a
//! standalone task, or one that stopped or is stopping, `TASK_NOT_VALID`. The change is checked
//! before anything is written.

use super::get_task_protection::{check_count, failure, find};
use crate::context::Ctx;
use crate::shared::named_arn;
use flotilla_control::protection::{self, Refusal};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, replace, task_key, Attempt};
use flotilla_model::shapes::{UpdateTaskProtectionRequest, UpdateTaskProtectionResponse};
use flotilla_model::EcsError;

/// UpdateTaskProtection.
pub async fn update_task_protection(
    ctx: &Ctx<'_>,
    req: UpdateTaskProtectionRequest,
) -> Result<UpdateTaskProtectionResponse, EcsError> {
    let refs: Vec<&str> = req.tasks.iter().map(String::as_str).collect();
    let cluster = super::request_cluster(ctx, Some(req.cluster.as_str()), &refs).await?;
    check_count(refs.len(), protection::MAX_UPDATE_TASKS)?;
    let change = protection::change(req.protection_enabled, req.expires_in_minutes, ctx.now)?;
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        let Some(found) = find(ctx, &cluster, r).await? else {
            failures.push(failure(
                named_arn(r, |n| ctx.arns().task(&cluster, n)),
                Refusal::Missing,
            ));
            continue;
        };
        let key = task_key(&cluster, &found.id);
        let outcome = ctx
            .plane()
            .cas(&key, || async {
                let Some((rec, rev)) = get::<TaskRecord>(ctx.store(), &key).await? else {
                    return Ok(Attempt::Done(Err(Refusal::Missing)));
                };
                if let Err(why) = protection::check(&rec, true) {
                    return Ok(Attempt::Done(Err(why)));
                }
                let next = protection::apply(&rec, change);
                if next == rec {
                    return Ok(Attempt::Done(Ok(rec)));
                }
                let txn = replace(&key, rev, &next)?;
                Ok(Attempt::Commit(txn, Ok(next)))
            })
            .await?;
        match outcome {
            Ok(t) => {
                tracing::info!(task = %t.arn(), protected = req.protection_enabled, "task protection updated");
                protected.push(protection::view(&t, ctx.now));
            }
            Err(why) => failures.push(failure(found.arn().to_string(), why)),
        }
    }
    Ok(UpdateTaskProtectionResponse {
        protected_tasks: Some(protected),
        failures: Some(failures),
    })
}
