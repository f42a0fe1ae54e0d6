//! UpdateCluster (settings, configuration) and the shared read-modify-write of a cluster.

use crate::context::Ctx;
use flotilla_control::clusters::{merge_settings, validate_settings};
use flotilla_controllers::records::{
    active_cluster, cluster_key, commit, contention, to_bytes, CAS_ATTEMPTS,
};
use flotilla_model::shapes::{Cluster, UpdateClusterRequest, UpdateClusterResponse};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

/// Applies `change` to an ACTIVE cluster with compare-and-swap, retrying on races, and returns
/// the cluster as written.
pub async fn modify_cluster(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    change: impl Fn(&mut Cluster) -> Result<(), EcsError>,
) -> Result<Cluster, EcsError> {
    if cluster.is_some_and(|c| super::foreign_arn(ctx, c)) {
        return Err(EcsError::cluster_not_found());
    }
    for _ in 0..CAS_ATTEMPTS {
        let (mut c, rev) = active_cluster(ctx.store(), cluster).await?;
        change(&mut c)?;
        let name = c.cluster_name.clone().unwrap_or_default();
        let key = cluster_key(&name);
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key, to_bytes(&c)?);
        if commit(ctx.store(), txn).await? {
            return Ok(c);
        }
    }
    Err(contention())
}

/// UpdateCluster.
pub async fn update_cluster(
    ctx: &Ctx<'_>,
    req: UpdateClusterRequest,
) -> Result<UpdateClusterResponse, EcsError> {
    let settings = req.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
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
    super::describe_clusters::fill_counts(ctx.store(), &mut c).await?;
    Ok(UpdateClusterResponse { cluster: Some(c) })
}
