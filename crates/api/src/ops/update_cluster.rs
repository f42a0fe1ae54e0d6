//! UpdateCluster (settings, configuration) and the shared read-modify-write of a cluster.

use crate::context::Ctx;
use crate::shared::cluster_writes::modify_cluster;
use flotilla_control::clusters::{merge_settings, validate_settings};
use flotilla_model::shapes::{UpdateClusterRequest, UpdateClusterResponse};
use flotilla_model::{EcsError, ErrorCode};

/// UpdateCluster.
pub async fn update_cluster(
    ctx: &Ctx<'_>,
    req: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, EcsError> {
    let settings = req.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
    if let Some(conf) = &req.configuration {
        flotilla_control::exec::check_cluster_configuration(conf)?;
    }
    if req.service_connect_defaults.is_some() {
        return Err(EcsError::new(
            ErrorCode::NamespaceNotFoundException,
            "Service Connect namespaces (AWS Cloud Map) are not available in Flotilla.",
        ));
    }
    let mut c = modify_cluster(ctx, Some(&req.cluster), |c| {
        merge_settings(c, &settings);
        if let Some(conf) = &req.configuration {
            c.configuration = Some(conf.clone());
        }
        Ok(())
    })
    .await?;
    crate::shared::cluster_counts::fill_counts(ctx.store(), &mut c).await?;
    Ok(UpdateClusterResponse { cluster: Some(c) })
}
