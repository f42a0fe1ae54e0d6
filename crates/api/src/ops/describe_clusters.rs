//! DescribeClusters: clusters by name or ARN (default: `default`), with the optional members
//! chosen by `include`; unknown clusters are reported in `failures` with reason MISSING.

use crate::context::Ctx;
use crate::records::{cluster_key, cluster_name, get};
use flotilla_model::shapes::{
    Cluster, ClusterField, DescribeClustersRequest, DescribeClustersResponse, Failure, KeyValuePair,
};
use flotilla_model::EcsError;
use flotilla_store::Store;

/// The per-launch-type statistics ECS reports with `include: STATISTICS`.
pub const STATISTICS_KEYS: &[&str] = &[
    "runningEC2TasksCount",
    "runningFargateTasksCount",
    "pendingEC2TasksCount",
    "pendingFargateTasksCount",
    "activeEC2ServiceCount",
    "activeFargateServiceCount",
    "drainingEC2ServiceCount",
    "drainingFargateServiceCount",
];

/// Fills in the live counts of a cluster. Container instances, tasks and services are not
/// stored by this server yet, so every count is truly zero until those resources exist.
pub async fn fill_counts(_store: &dyn Store, cluster: &mut Cluster) -> Result<(), EcsError> {
    cluster.registered_container_instances_count = 0;
    cluster.running_tasks_count = 0;
    cluster.pending_tasks_count = 0;
    cluster.active_services_count = 0;
    cluster.statistics = Some(
        STATISTICS_KEYS
            .iter()
            .map(|k| KeyValuePair {
                name: Some((*k).to_string()),
                value: Some("0".into()),
            })
            .collect(),
    );
    Ok(())
}

/// Removes the members the caller did not ask for with `include`.
pub fn trim(cluster: &mut Cluster, include: &[ClusterField]) {
    if !include.contains(&ClusterField::Attachments) {
        cluster.attachments = None;
        cluster.attachments_status = None;
    }
    if !include.contains(&ClusterField::Configurations) {
        cluster.configuration = None;
    }
    if !include.contains(&ClusterField::Settings) {
        cluster.settings = None;
    }
    if !include.contains(&ClusterField::Statistics) {
        cluster.statistics = None;
    }
    if !include.contains(&ClusterField::Tags) {
        cluster.tags = None;
    }
}

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
                fill_counts(ctx.store(), &mut c).await?;
                trim(&mut c, &include);
                clusters.push(c);
            }
            None if raw.starts_with("arn:") => failures.push(Failure {
                arn: Some(raw.clone()),
                reason: Some("MISSING".into()),
                detail: None,
            }),
            None => failures.push(Failure {
                arn: Some(ctx.arns().cluster(&name)),
                reason: Some("MISSING".into()),
                detail: None,
            }),
        }
    }
    Ok(DescribeClustersResponse {
        clusters: Some(clusters),
        failures: Some(failures),
    })
}
