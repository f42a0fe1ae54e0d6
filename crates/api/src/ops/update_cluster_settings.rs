//! UpdateClusterSettings: changes settings such as containerInsights.

use crate::context::Ctx;
use crate::shared::cluster_writes::modify_cluster;
use flotilla_control::clusters::{merge_settings, validate_settings};
use flotilla_model::shapes::{UpdateClusterSettingsRequest, UpdateClusterSettingsResponse};
use flotilla_model::EcsError;

/// UpdateClusterSettings.
pub async fn update_cluster_settings(
    ctx: &Ctx<'_>,
    req: UpdateClusterSettingsRequest,
) -> Result<UpdateClusterSettingsResponse, EcsError> {
    validate_settings(&req.settings)?;
    let mut c = modify_cluster(ctx, Some(&req.cluster), |c| {
        merge_settings(c, &req.settings);
        Ok(())
    })
    .await?;
    crate::shared::cluster_counts::fill_counts(ctx.plane(), &mut c).await?;
    Ok(UpdateClusterSettingsResponse { cluster: Some(c) })
}
