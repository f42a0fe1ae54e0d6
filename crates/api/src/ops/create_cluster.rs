//! CreateCluster: creates a cluster, or returns the existing ACTIVE one of the same name
//! (the operation is idempotent by name). Without `clusterName` it creates `default`.
//! `serviceConnectDefaults` names a Cloud Map namespace (`shared::service_connect`: an HTTP
//! namespace of that name is created when there is none).

use crate::context::Ctx;
use flotilla_control::clusters::{merge_settings, validate_capacity_providers, validate_settings};
use flotilla_control::tags::validate_tags;
use flotilla_controllers::records::{cluster_key, get, to_bytes, Attempt};
use flotilla_model::shapes::{
    Cluster, ClusterSetting, ClusterSettingName, CreateClusterRequest, CreateClusterResponse,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// CreateCluster.
pub async fn create_cluster(
    ctx: &Ctx<'_>,
    req: CreateClusterRequest,
) -> Result<CreateClusterResponse, EcsError> {
    let name = req
        .cluster_name
        .clone()
        .unwrap_or_else(|| "default".to_string());
    if !flotilla_model::arn::is_valid_name(&name) {
        return Err(EcsError::invalid_parameter(format!(
            "Invalid cluster name '{name}': up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    let settings = req.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
    let providers = req.capacity_providers.clone().unwrap_or_default();
    let strategy = req
        .default_capacity_provider_strategy
        .clone()
        .unwrap_or_default();
    let stored = crate::shared::capacity_providers::all(ctx).await?;
    validate_capacity_providers(&providers, &strategy, |n| {
        crate::shared::capacity_providers::state(&stored, n)
    })?;
    if let Some(conf) = &req.configuration {
        flotilla_control::exec::check_cluster_configuration(conf)?;
    }
    let service_connect = match &req.service_connect_defaults {
        Some(d) => crate::shared::service_connect::resolve(ctx, d).await?,
        None => None,
    };
    let key = cluster_key(&name);
    let (cluster, created) = ctx
        .plane()
        .cas(&key, || async {
            let existing = get::<Cluster>(ctx.store(), &key).await?;
            if let Some((c, _)) = &existing {
                if c.status.as_deref() == Some("ACTIVE") {
                    return Ok(Attempt::Done((c.clone(), false)));
                }
            }
            let mut cluster = Cluster {
                cluster_arn: Some(ctx.arns().cluster(&name)),
                cluster_name: Some(name.clone()),
                configuration: req.configuration.clone(),
                status: Some("ACTIVE".into()),
                statistics: Some(Vec::new()),
                tags: Some(tags.clone()),
                settings: Some(vec![ClusterSetting {
                    name: Some(ClusterSettingName::ContainerInsights),
                    value: Some("disabled".into()),
                }]),
                capacity_providers: Some(providers.clone()),
                default_capacity_provider_strategy: Some(strategy.clone()),
                attachments: Some(Vec::new()),
                service_connect_defaults: service_connect.clone(),
                ..Default::default()
            };
            merge_settings(&mut cluster, &settings);
            let compare = match &existing {
                Some((_, rev)) => Compare::ModRevision(key.clone(), *rev),
                None => Compare::Absent(key.clone()),
            };
            let txn = Txn::new()
                .when(compare)
                .put(key.clone(), to_bytes(&cluster)?);
            Ok(Attempt::Commit(txn, (cluster, true)))
        })
        .await?;
    if created {
        tracing::info!(cluster = %name, "cluster created");
    }
    Ok(CreateClusterResponse {
        cluster: Some(cluster),
    })
}
