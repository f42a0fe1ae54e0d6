//! DescribeClusters: clusters by name or ARN (default: `default`), with the optional members
//! chosen by `include`; unknown clusters are reported in `failures` with reason MISSING.

use crate::context::Ctx;
use crate::shared::cluster_counts::{fill_counts, trim};
use crate::shared::{missing, named_arn};
use flotilla_controllers::records::{cluster_key, cluster_name, get};
use flotilla_model::shapes::{Cluster, DescribeClustersRequest, DescribeClustersResponse};
use flotilla_model::EcsError;

/// DescribeClusters.
pub async fn describe_clusters(
    ctx: &Ctx<'_>,
    req: DescribeClustersRequest,
) -> Result<DescribeClustersResponse, EcsError> {
    let names = req
        .clusters
        .clone()
        .unwrap_or_else(|| vec!["default".to_string()]);
    if names.len() > 100 {
        return Err(EcsError::invalid_parameter(format!(
            "DescribeClusters accepts at most 100 clusters; {} were given.",
            names.len()
        )));
    }
    let include = req.include.clone().unwrap_or_default();
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for raw in names {
        let name = cluster_name(Some(&raw))?;
        let found = if super::foreign_arn(ctx, &raw) {
            None
        } else {
            get::<Cluster>(ctx.store(), &cluster_key(&name)).await?
        };
        match found {
            Some((mut c, _)) => {
                fill_counts(ctx.plane(), &mut c).await?;
                trim(&mut c, &include);
                clusters.push(c);
            }
            None => failures.push(missing(named_arn(&raw, |_| ctx.arns().cluster(&name)))),
        }
    }
    Ok(DescribeClustersResponse {
        clusters: Some(clusters),
        failures: Some(failures),
    })
}
