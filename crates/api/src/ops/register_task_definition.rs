//! RegisterTaskDefinition: validates the definition as ECS does and stores it as the next
//! revision of its family. Revision numbers come from the family record, updated in the same
//! transaction as the new revision, so concurrent registrations never share a number; the
//! registrations of one family waiting at the same time share one commit
//! ([`flotilla_controllers::registrations`]).

use crate::context::Ctx;
use flotilla_control::tags::validate_tags;
use flotilla_controllers::registrations::{register, Registering};
use flotilla_model::shapes::{RegisterTaskDefinitionRequest, RegisterTaskDefinitionResponse};
use flotilla_model::task_definition::{validate_and_build, Registration};
use flotilla_model::EcsError;

/// RegisterTaskDefinition.
pub async fn register_task_definition(
    ctx: &Ctx<'_>,
    req: RegisterTaskDefinitionRequest,
) -> Result<RegisterTaskDefinitionResponse, EcsError> {
    validate_tags(req.tags.as_deref().unwrap_or_default(), 0)?;
    // Validate once up front so a bad request never touches the store.
    let probe = Registration {
        arn: String::new(),
        revision: 1,
        registered_at: flotilla_control::timestamp(ctx.now),
        registered_by: ctx.caller.principal_arn.clone(),
    };
    validate_and_build(&req, &probe)?;
    let family = req.family.clone();
    let record = register(
        &ctx.api.plane,
        Registering {
            request: req,
            principal: ctx.caller.principal_arn.clone(),
            now: ctx.now,
        },
    )
    .await?;
    let revision = record.task_definition.as_ref().map_or(0, |t| t.revision);
    tracing::info!(family = %family, revision, "task definition registered");
    Ok(record)
}
