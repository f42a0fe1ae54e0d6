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

/// Checks a capacity provider strategy: every provider known (and, with `allowed`, associated
/// with the cluster), then ECS's rules on bases and weights
/// ([`flotilla_scheduler::capacity::validate`]). An empty strategy is valid (no default).
pub fn validate_strategy(
    strategy: &[CapacityProviderStrategyItem],
    allowed: Option<&[String]>,
) -> Result<(), EcsError> {
    if strategy.is_empty() {
        return Ok(());
    }
    for item in strategy {
        let p = item.capacity_provider.as_str();
        if let Some(allowed) = allowed {
            if !allowed.iter().any(|a| a == p) {
                return Err(EcsError::invalid_parameter(format!(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again. ('{p}' is not associated.)"
                )));
            }
        } else if !BUILTIN_CAPACITY_PROVIDERS.contains(&p) {
            return Err(EcsError::invalid_parameter(format!(
                "The specified capacity provider '{p}' does not exist."
            )));
        }
    }
    flotilla_scheduler::capacity::validate(&super::run_task::capacity_items(strategy))
        .map_err(|e| EcsError::invalid_parameter(e.to_string()))
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
