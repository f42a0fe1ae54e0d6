//! DescribeTaskDefinition, and the resolution of a task definition reference (`family`,
//! `family:revision` or full ARN) shared by every operation that takes one.

use crate::context::Ctx;
use flotilla_control::task_definitions::parse_ref;
use flotilla_controllers::records::load_task_definition as load;
use flotilla_model::shapes::{
    DescribeTaskDefinitionRequest, DescribeTaskDefinitionResponse, TaskDefinitionField,
};
use flotilla_model::EcsError;

/// DescribeTaskDefinition.
pub async fn describe_task_definition(
    ctx: &Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> Result<DescribeTaskDefinitionResponse, EcsError> {
    let r = parse_ref(&req.task_definition)?;
    if super::foreign_arn(ctx, &req.task_definition) {
        return Err(EcsError::client("Unable to describe task definition."));
    }
    let Some((rec, _)) = load(ctx.store(), &r).await? else {
        return Err(EcsError::client("Unable to describe task definition."));
    };
    let include_tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&TaskDefinitionField::Tags));
    Ok(DescribeTaskDefinitionResponse {
        task_definition: rec.task_definition,
        tags: if include_tags {
            Some(rec.tags.unwrap_or_default())
        } else {
            None
        },
    })
}
