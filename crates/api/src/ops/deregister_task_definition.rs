//! DeregisterTaskDefinition: marks one revision INACTIVE (it stays describable; new tasks and
//! services can no longer use it) and updates its family's count of ACTIVE revisions in the same
//! transaction.

use crate::context::Ctx;
use flotilla_control::task_definitions::parse_ref;
use flotilla_controllers::records::{
    family_key, get, task_definition_key, to_bytes, Attempt, FamilyRecord,
};
use flotilla_model::shapes::{
    DeregisterTaskDefinitionRequest, DeregisterTaskDefinitionResponse,
    RegisterTaskDefinitionResponse, TaskDefinitionStatus,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// DeregisterTaskDefinition.
pub async fn deregister_task_definition(
    ctx: &Ctx<'_>,
    req: DeregisterTaskDefinitionRequest,
) -> Result<DeregisterTaskDefinitionResponse, EcsError> {
    let r = parse_ref(&req.task_definition)?;
    let Some(revision) = r.revision else {
        return Err(EcsError::client(format!(
            "Invalid task definition '{}': a revision is required (family:revision or a full ARN).",
            req.task_definition
        )));
    };
    if super::foreign_arn(ctx, &req.task_definition) {
        return Err(EcsError::client(
            "The specified task definition does not exist.",
        ));
    }
    let key = task_definition_key(&r.family, revision);
    let fkey = family_key(&r.family);
    // Serialized on the family, the record RegisterTaskDefinition writes too.
    let task_definition = ctx
        .plane()
        .cas(&fkey, || async {
            let Some((mut rec, rev)) =
                get::<RegisterTaskDefinitionResponse>(ctx.store(), &key).await?
            else {
                return Err(EcsError::client(
                    "The specified task definition does not exist.",
                ));
            };
            let Some(td) = rec.task_definition.as_mut() else {
                return Err(EcsError::server(format!(
                    "record {key} has no task definition"
                )));
            };
            if td.status != Some(TaskDefinitionStatus::Active) {
                return Ok(Attempt::Done(rec.task_definition));
            }
            td.status = Some(TaskDefinitionStatus::Inactive);
            td.deregistered_at = Some(flotilla_control::timestamp(ctx.now));
            let Some((mut family, frev)) = get::<FamilyRecord>(ctx.store(), &fkey).await? else {
                return Err(EcsError::server(format!("family record {fkey} is missing")));
            };
            family.active_revisions = family.active_revisions.saturating_sub(1);
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .when(Compare::ModRevision(fkey.clone(), frev))
                .put(key.clone(), to_bytes(&rec)?)
                .put(fkey.clone(), to_bytes(&family)?);
            Ok(Attempt::Commit(txn, rec.task_definition))
        })
        .await?;
    Ok(DeregisterTaskDefinitionResponse { task_definition })
}
