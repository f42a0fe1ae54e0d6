//! ListTaskDefinitionFamilies: family names starting with `familyPrefix`, filtered by status
//! (ACTIVE: at least one ACTIVE revision; INACTIVE: none; ALL, the default: both), in name order,
//! paginated (default and max 100).

use crate::context::Ctx;
use crate::paginate::page;
use flotilla_controllers::records::{list, FamilyRecord, FAMILIES};
use flotilla_model::shapes::{
    ListTaskDefinitionFamiliesRequest, ListTaskDefinitionFamiliesResponse,
    TaskDefinitionFamilyStatus,
};
use flotilla_model::EcsError;

/// ListTaskDefinitionFamilies.
pub async fn list_task_definition_families(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionFamiliesRequest,
) -> Result<ListTaskDefinitionFamiliesResponse, EcsError> {
    let status = req.status.unwrap_or(TaskDefinitionFamilyStatus::All);
    let prefix = format!("{FAMILIES}{}", req.family_prefix.as_deref().unwrap_or(""));
    let families: Vec<(String, String)> = list::<FamilyRecord>(ctx.store(), &prefix)
        .await?
        .into_iter()
        .filter(|(_, f, _)| match status {
            TaskDefinitionFamilyStatus::Active => f.active_revisions > 0,
            TaskDefinitionFamilyStatus::Inactive => f.active_revisions == 0,
            TaskDefinitionFamilyStatus::All => true,
        })
        .map(|(k, _, _)| {
            let name = k.trim_start_matches(FAMILIES).to_string();
            (name.clone(), name)
        })
        .collect();
    let (families, next_token) = page(
        families,
        req.next_token.as_deref(),
        req.max_results,
        100,
        100,
    )?;
    Ok(ListTaskDefinitionFamiliesResponse {
        families: Some(families),
        next_token,
    })
}
