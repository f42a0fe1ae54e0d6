//! The rules of a cluster's configuration: its settings (`containerInsights`), its capacity
//! providers (Flotilla's managed FARGATE and FARGATE_SPOT) and its default capacity provider
//! strategy.

use flotilla_model::shapes::{
    CapacityProviderStrategyItem, Cluster, ClusterSetting, ClusterSettingName,
};
use flotilla_model::EcsError;

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
    flotilla_scheduler::capacity::validate(&crate::launch::capacity_items(strategy))
        .map_err(|e| EcsError::invalid_parameter(e.to_string()))
}
