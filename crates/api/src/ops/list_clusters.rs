//! ListClusters: the ARNs of ACTIVE clusters, in ARN order, paginated (default and max 100).

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
        .filter(|(_, c, _)| c.status.as_deref() == Some("ACTIVE"))
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
