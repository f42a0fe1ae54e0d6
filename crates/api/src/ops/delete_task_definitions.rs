//! DeleteTaskDefinitions: moves up to 10 INACTIVE revisions to DELETE_IN_PROGRESS. An ACTIVE or
//! unknown revision is reported in `failures` rather than failing the whole call.

use crate::context::Ctx;
use flotilla_control::task_definitions::parse_ref;
use flotilla_controllers::records::{get, replace, task_definition_key, Attempt};
use flotilla_model::shapes::{
    DeleteTaskDefinitionsRequest, DeleteTaskDefinitionsResponse, Failure,
    RegisterTaskDefinitionResponse, TaskDefinition, TaskDefinitionStatus,
};
use flotilla_model::EcsError;

/// DeleteTaskDefinitions.
pub async fn delete_task_definitions(
    ctx: &Ctx<'_>,
    req: DeleteTaskDefinitionsRequest,
) -> Result<DeleteTaskDefinitionsResponse, EcsError> {
    if req.task_definitions.is_empty() || req.task_definitions.len() > 10 {
        return Err(EcsError::invalid_parameter(format!(
            "DeleteTaskDefinitions takes 1 to 10 task definitions; {} were given.",
            req.task_definitions.len()
        )));
    }
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for raw in &req.task_definitions {
        let r = parse_ref(raw)?;
        let Some(revision) = r.revision else {
            return Err(EcsError::client(format!(
                "Invalid task definition '{raw}': a revision is required (family:revision or a full ARN)."
            )));
        };
        if super::foreign_arn(ctx, raw) {
            failures.push(Failure {
                arn: Some(raw.clone()),
                reason: Some("The specified task definition does not exist.".into()),
                detail: None,
            });
            continue;
        }
        match delete_one(ctx, &r.family, revision).await? {
            Ok(td) => deleted.push(td),
            Err(reason) => failures.push(Failure {
                arn: Some(ctx.arns().task_definition(&r.family, revision)),
                reason: Some(reason),
                detail: None,
            }),
        }
    }
    Ok(DeleteTaskDefinitionsResponse {
        task_definitions: Some(deleted),
        failures: Some(failures),
    })
}

async fn delete_one(
    ctx: &Ctx<'_>,
    family: &str,
    revision: i32,
) -> Result<Result<TaskDefinition, String>, EcsError> {
    let key = task_definition_key(family, revision);
    ctx.plane()
        .cas(&key, || async {
            let Some((mut rec, rev)) =
                get::<RegisterTaskDefinitionResponse>(ctx.store(), &key).await?
            else {
                return Ok(Attempt::Done(Err(
                    "The specified task definition does not exist.".into()
                )));
            };
            let Some(td) = rec.task_definition.as_mut() else {
                return Err(EcsError::server(format!(
                    "record {key} has no task definition"
                )));
            };
            match td.status {
                Some(TaskDefinitionStatus::Active) => {
                    return Ok(Attempt::Done(Err(
                        "The specified task definition is still in ACTIVE status. Please deregister the target and try again."
                            .into(),
                    )))
                }
                Some(TaskDefinitionStatus::DeleteInProgress) => {
                    return Ok(Attempt::Done(Ok(td.clone())))
                }
                _ => {}
            }
            td.status = Some(TaskDefinitionStatus::DeleteInProgress);
            td.delete_requested_at = Some(flotilla_control::timestamp(ctx.now));
            let out = td.clone();
            let txn = replace(&key, rev, &rec)?;
            Ok(Attempt::Commit(txn, Ok(out)))
        })
        .await
}
