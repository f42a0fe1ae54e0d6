//! DeleteCluster: marks a cluster INACTIVE. It stays describable; its name can be reused.
//! A cluster that still holds container instances, tasks or services cannot be deleted
//! (`ClusterContains*Exception`); those resources are counted by `describe_clusters::fill_counts`.

use crate::context::Ctx;
use crate::shared::cluster_counts::{counts, fill_counts};
use flotilla_controllers::records::{cluster_key, cluster_name, get, replace, Attempt};
use flotilla_model::shapes::{Cluster, DeleteClusterRequest, DeleteClusterResponse};
use flotilla_model::{EcsError, ErrorCode};

/// DeleteCluster.
pub async fn delete_cluster(
    ctx: &Ctx<'_>,
    req: DeleteClusterRequest,
) -> Result<DeleteClusterResponse, EcsError> {
    if super::foreign_arn(ctx, &req.cluster) {
        return Err(EcsError::cluster_not_found());
    }
    let name = cluster_name(Some(&req.cluster))?;
    let key = cluster_key(&name);
    let (c, deleted) = ctx
        .plane()
        .cas(&key, || async {
            let Some((mut c, rev)) = get::<Cluster>(ctx.store(), &key).await? else {
                return Err(EcsError::cluster_not_found());
            };
            if c.status.as_deref() == Some("INACTIVE") {
                return Ok(Attempt::Done((c, false)));
            }
            fill_counts(ctx.plane(), &mut c).await?;
            if c.registered_container_instances_count > 0 {
                return Err(EcsError::new(
                    ErrorCode::ClusterContainsContainerInstancesException,
                    "The Cluster cannot be deleted while Container Instances are active or draining.",
                ));
            }
            if c.active_services_count > 0 || counts(ctx.plane(), &name).await?.draining_services > 0
            {
                return Err(EcsError::new(
                    ErrorCode::ClusterContainsServicesException,
                    "The Cluster cannot be deleted while Services are active.",
                ));
            }
            if c.running_tasks_count > 0
                || c.pending_tasks_count > 0
                || counts(ctx.plane(), &name).await?.unstopped > 0
            {
                return Err(EcsError::new(
                    ErrorCode::ClusterContainsTasksException,
                    "The Cluster cannot be deleted while Tasks are active.",
                ));
            }
            c.status = Some("INACTIVE".into());
            let txn = replace(&key, rev, &c)?;
            Ok(Attempt::Commit(txn, (c, true)))
        })
        .await?;
    if deleted {
        tracing::info!(cluster = %name, "cluster deleted");
    }
    Ok(DeleteClusterResponse { cluster: Some(c) })
}
