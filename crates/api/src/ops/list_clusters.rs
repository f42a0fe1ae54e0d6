//! ListClusters: the ARNs of clusters, in ARN order, paginated (default and max 100). A deleted
//! (INACTIVE) cluster stays listed, as the real service keeps listing deleted clusters for a
//! while ("Clusters with an INACTIVE status may remain discoverable in your account for a
//! period of time"): here until a cluster of its name is created again, which replaces it.

use crate::context::Ctx;
use crate::paginate::page;
use flotilla_controllers::records::{list, CLUSTERS};
use flotilla_model::shapes::{Cluster, ListClustersRequest, ListClustersResponse};
use flotilla_model::EcsError;

/// ListClusters.
pub async fn list_clusters(
    ctx: &Ctx<'_>,
    req: ListClustersRequest,
) -> Result<ListClustersResponse, EcsError> {
    let mut arns: Vec<(String, String)> = list::<Cluster>(ctx.store(), CLUSTERS)
        .await?
        .into_iter()
        .filter(|(_, c, _)| matches!(c.status.as_deref(), Some("ACTIVE" | "INACTIVE")))
        .filter_map(|(_, c, _)| c.cluster_arn)
        .map(|a| (a.clone(), a))
        .collect();
    arns.sort();
    let (cluster_arns, next_token) =
        page(arns, req.next_token.as_deref(), req.max_results, 100, 100)?;
    Ok(ListClustersResponse {
        cluster_arns: Some(cluster_arns),
        next_token,
    })
}
