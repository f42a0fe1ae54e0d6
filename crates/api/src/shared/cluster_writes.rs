//! The read-modify-write of a cluster record (UpdateCluster, UpdateClusterSettings,
//! PutClusterCapacityProviders).

use crate::context::Ctx;
use flotilla_control::keys::foreign_arn;
use flotilla_controllers::records::{active_cluster, cluster_key, replace, Attempt};
use flotilla_model::shapes::Cluster;
use flotilla_model::EcsError;

/// Applies `change` to an ACTIVE cluster with compare-and-swap, retrying on races, and returns
/// the cluster as written.
pub async fn modify_cluster(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    change: impl Fn(&mut Cluster) -> Result<(), EcsError>,
) -> Result<Cluster, EcsError> {
    if cluster.is_some_and(|c| foreign_arn(ctx.arns(), c)) {
        return Err(EcsError::cluster_not_found());
    }
    let name = flotilla_control::keys::cluster_name(cluster)?;
    ctx.plane()
        .cas(&cluster_key(&name), || async {
            let (mut c, rev) = active_cluster(ctx.store(), cluster).await?;
            change(&mut c)?;
            let key = cluster_key(c.cluster_name.as_deref().unwrap_or_default());
            let txn = replace(&key, rev, &c)?;
            Ok(Attempt::Commit(txn, c))
        })
        .await
}
