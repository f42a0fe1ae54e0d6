//! ListTaskDefinitions: task definition ARNs filtered by family and status (default ACTIVE),
//! sorted by family then revision (ASC by default), paginated (default and max 100).

use crate::context::Ctx;
use crate::paginate::page;
use flotilla_controllers::records::{list, task_definition_prefix, TASK_DEFINITIONS};
use flotilla_model::shapes::{
    ListTaskDefinitionsRequest, ListTaskDefinitionsResponse, RegisterTaskDefinitionResponse,
    SortOrder, TaskDefinitionStatus,
};
use flotilla_model::EcsError;

/// ListTaskDefinitions.
pub async fn list_task_definitions(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionsRequest,
) -> Result<ListTaskDefinitionsResponse, EcsError> {
    let status = req.status.unwrap_or(TaskDefinitionStatus::Active);
    let prefix = match &req.family_prefix {
        Some(f) => task_definition_prefix(f),
        None => TASK_DEFINITIONS.to_string(),
    };
    let mut items: Vec<(String, String)> =
        list::<RegisterTaskDefinitionResponse>(ctx.store(), &prefix)
            .await?
            .into_iter()
            .filter_map(|(key, rec, _)| {
                let td = rec.task_definition?;
                (td.status == Some(status))
                    .then(|| (key, td.task_definition_arn.unwrap_or_default()))
            })
            .collect();
    // Keys sort by family then zero-padded revision; family names may share prefixes, so sort
    // on (family, revision) explicitly.
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if req.sort == Some(SortOrder::Desc) {
        items.reverse();
    }
    let (arns, next_token) = page(items, req.next_token.as_deref(), req.max_results, 100, 100)?;
    Ok(ListTaskDefinitionsResponse {
        task_definition_arns: Some(arns),
        next_token,
    })
}
