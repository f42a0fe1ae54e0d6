//! CreateCluster: creates a cluster, or returns the existing ACTIVE one of the same name
//! (the operation is idempotent by name). Without `clusterName` it creates `default`.

use super::tags::validate_tags;
use crate::context::Ctx;
use crate::records::{self, cluster_key, commit, contention, get, to_bytes, CAS_ATTEMPTS};
use flotilla_model::shapes::{
    CapacityProviderStrategyItem, Cluster, ClusterSetting, ClusterSettingName,
    CreateClusterRequest, CreateClusterResponse,
};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};

/// The capacity providers every cluster may use: Flotilla's managed Fargate capacity.
pub const BUILTIN_CAPACITY_PROVIDERS: &[&str] = &["FARGATE", "FARGATE_SPOT"];

/// Checks cluster settings (`containerInsights`: enhanced, enabled or disabled).
pub fn validate_settings(settings: &[ClusterSetting]) -> Result<(), EcsError> {
    for s in settings {
        let value = s.value.as_deref().unwrap_or("");
        if s.name == Some(ClusterSettingName::ContainerInsights)
            && !matches!(value, "enhanced" | "enabled" | "disabled")
        {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid value '{value}' for setting containerInsights. Valid values are: enhanced, enabled, disabled."
            )));
        }
    }
    Ok(())
}

/// Merges settings into a cluster's, by name.
pub fn merge_settings(cluster: &mut Cluster, settings: &[ClusterSetting]) {
    let current = cluster.settings.get_or_insert_with(Vec::new);
    for s in settings {
        match current.iter_mut().find(|c| c.name == s.name) {
            Some(c) => c.value = s.value.clone(),
            None => current.push(s.clone()),
        }
    }
}

/// Checks a capacity provider list and default strategy as PutClusterCapacityProviders does.
pub fn validate_capacity_providers(
    providers: &[String],
    strategy: &[CapacityProviderStrategyItem],
) -> Result<(), EcsError> {
    for p in providers {
        if !BUILTIN_CAPACITY_PROVIDERS.contains(&p.as_str()) {
            return Err(EcsError::invalid_parameter(format!(
                "The specified capacity provider '{p}' does not exist. Available capacity providers: FARGATE, FARGATE_SPOT."
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in providers {
        if !seen.insert(p) {
            return Err(EcsError::invalid_parameter(format!(
                "Capacity provider '{p}' is listed more than once."
            )));
        }
    }
    validate_strategy(strategy, Some(providers))
}

/// Checks a capacity provider strategy: known providers, at most one `base`, weights valid.
pub fn validate_strategy(
    strategy: &[CapacityProviderStrategyItem],
    allowed: Option<&[String]>,
) -> Result<(), EcsError> {
    if strategy.len() > 20 {
        return Err(EcsError::invalid_parameter(
            "A capacity provider strategy can have at most 20 items.",
        ));
    }
    let mut with_base = 0;
    let mut names = std::collections::HashSet::new();
    for item in strategy {
        let p = item.capacity_provider.as_str();
        if let Some(allowed) = allowed {
            if !allowed.iter().any(|a| a == p) {
                return Err(EcsError::invalid_parameter(format!(
                    "The capacity provider strategy uses '{p}', which is not one of the cluster's capacity providers."
                )));
            }
        } else if !BUILTIN_CAPACITY_PROVIDERS.contains(&p) {
            return Err(EcsError::invalid_parameter(format!(
                "The specified capacity provider '{p}' does not exist."
            )));
        }
        if !names.insert(p) {
            return Err(EcsError::invalid_parameter(format!(
                "Capacity provider '{p}' appears more than once in the strategy."
            )));
        }
        if item.base > 0 {
            with_base += 1;
        }
    }
    if with_base > 1 {
        return Err(EcsError::invalid_parameter(
            "Only one capacity provider in a strategy can have a base defined.",
        ));
    }
    if !strategy.is_empty() && strategy.iter().all(|i| i.weight == 0) {
        return Err(EcsError::invalid_parameter(
            "At least one capacity provider in a strategy must have a weight greater than 0.",
        ));
    }
    Ok(())
}

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
    validate_capacity_providers(&providers, &strategy)?;
    if req.service_connect_defaults.is_some() {
        return Err(EcsError::new(
            flotilla_model::ErrorCode::NamespaceNotFoundException,
            "Service Connect namespaces (AWS Cloud Map) are not available in Flotilla.",
        ));
    }
    let key = cluster_key(&name);
    for _ in 0..CAS_ATTEMPTS {
        let existing = get::<Cluster>(ctx.store(), &key).await?;
        if let Some((c, _)) = &existing {
            if c.status.as_deref() == Some("ACTIVE") {
                return Ok(CreateClusterResponse {
                    cluster: Some(c.clone()),
                });
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
        if commit(ctx.store(), txn).await? {
            tracing::info!(cluster = %name, "cluster created");
            return Ok(CreateClusterResponse {
                cluster: Some(cluster),
            });
        }
    }
    let _ = records::CLUSTERS;
    Err(contention())
}
