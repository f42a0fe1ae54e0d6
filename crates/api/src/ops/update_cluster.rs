//! UpdateCluster (settings, configuration, `serviceConnectDefaults`: a Cloud Map namespace
//! name or ARN, `shared::service_connect`; an empty name removes it).

use crate::context::Ctx;
use crate::shared::cluster_writes::modify_cluster;
use flotilla_control::clusters::{merge_settings, validate_settings};
use flotilla_model::shapes::{UpdateClusterRequest, UpdateClusterResponse};
use flotilla_model::EcsError;

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
    // The cluster must exist before a namespace is created for it.
    crate::ops::request_cluster(ctx, Some(&req.cluster), &[]).await?;
    let service_connect = match &req.service_connect_defaults {
        Some(d) => Some(crate::shared::service_connect::resolve(ctx, d).await?),
        None => None,
    };
    let mut c = modify_cluster(ctx, Some(&req.cluster), |c| {
        merge_settings(c, &settings);
        if let Some(conf) = &req.configuration {
            c.configuration = Some(conf.clone());
        }
        if let Some(sc) = &service_connect {
            c.service_connect_defaults = sc.clone();
        }
        Ok(())
    })
    .await?;
    crate::shared::cluster_counts::fill_counts(ctx.plane(), &mut c).await?;
    Ok(UpdateClusterResponse { cluster: Some(c) })
}
