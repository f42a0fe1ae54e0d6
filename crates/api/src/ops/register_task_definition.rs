//! RegisterTaskDefinition: validates the definition as ECS does and stores it as the next
//! revision of its family. Revision numbers come from the family record, updated in the same
//! transaction as the new revision, so concurrent registrations never share a number.

use crate::context::Ctx;
use flotilla_control::tags::validate_tags;
use flotilla_controllers::records::{
    family_key, get, task_definition_key, to_bytes, Attempt, FamilyRecord,
};
use flotilla_model::shapes::{RegisterTaskDefinitionRequest, RegisterTaskDefinitionResponse};
use flotilla_model::task_definition::{validate_and_build, Registration};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// RegisterTaskDefinition.
pub async fn register_task_definition(
    ctx: &Ctx<'_>,
    req: RegisterTaskDefinitionRequest,
) -> Result<RegisterTaskDefinitionResponse, EcsError> {
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    // Validate once up front so a bad request never touches the store.
    let probe = Registration {
        arn: String::new(),
        revision: 1,
        registered_at: flotilla_control::timestamp(ctx.now),
        registered_by: ctx.caller.principal_arn.clone(),
    };
    validate_and_build(&req, &probe)?;
    let fkey = family_key(&req.family);
    let record = ctx
        .plane()
        .cas(&fkey, || async {
            let existing = get::<FamilyRecord>(ctx.store(), &fkey).await?;
            let (mut family, compare) = match existing {
                Some((f, rev)) => (f, Compare::ModRevision(fkey.clone(), rev)),
                None => (FamilyRecord::default(), Compare::Absent(fkey.clone())),
            };
            family.last_revision += 1;
            family.active_revisions += 1;
            let revision = family.last_revision;
            let reg = Registration {
                arn: ctx.arns().task_definition(&req.family, revision),
                revision,
                registered_at: flotilla_control::timestamp(ctx.now),
                registered_by: ctx.caller.principal_arn.clone(),
            };
            let td = validate_and_build(&req, &reg)?;
            let record = RegisterTaskDefinitionResponse {
                task_definition: Some(td),
                tags: Some(tags.clone()),
            };
            let txn = Txn::new()
                .when(compare)
                .put(fkey.clone(), to_bytes(&family)?)
                .put(
                    task_definition_key(&req.family, revision),
                    to_bytes(&record)?,
                );
            Ok(Attempt::Commit(txn, (record, revision)))
        })
        .await?;
    tracing::info!(family = %req.family, revision = record.1, "task definition registered");
    Ok(record.0)
}
