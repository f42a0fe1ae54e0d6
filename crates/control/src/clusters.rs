//! The rules of a cluster's configuration: its settings (`containerInsights`), its capacity
//! providers (Flotilla's managed FARGATE and FARGATE_SPOT, and custom providers: sets of hosts,
//! see [`crate::capacity_providers`]) and its default capacity provider strategy, which may use
//! Fargate or custom providers but not both.

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

/// What the store says of a capacity provider a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// FARGATE, FARGATE_SPOT, or a custom provider that is ACTIVE.
    Active,
    /// A custom provider that was deleted.
    Inactive,
    /// No such provider.
    Missing,
}

/// The state of a builtin provider, else what `custom` says.
pub fn provider_state(name: &str, custom: impl Fn(&str) -> ProviderState) -> ProviderState {
    if BUILTIN_CAPACITY_PROVIDERS.contains(&name) {
        ProviderState::Active
    } else {
        custom(name)
    }
}

/// The most capacity providers a cluster may have (ECS's quota, per the developer guide).
pub const MAX_CLUSTER_PROVIDERS: usize = 20;

/// Checks a capacity provider list and default strategy as CreateCluster and
/// PutClusterCapacityProviders do: every provider exists and is ACTIVE (`state` tells a
/// custom one's), none twice, at most [`MAX_CLUSTER_PROVIDERS`], and the strategy valid over
/// them ([`validate_strategy`]).
pub fn validate_capacity_providers(
    providers: &[String],
    strategy: &[CapacityProviderStrategyItem],
    state: impl Fn(&str) -> ProviderState,
) -> Result<(), EcsError> {
    for p in providers {
        match provider_state(p, &state) {
            ProviderState::Active => {}
            ProviderState::Inactive => return Err(crate::capacity_providers::not_active(p)),
            ProviderState::Missing => {
                return Err(EcsError::invalid_parameter(
                    "The specified capacity provider was not found. Specify a valid capacity provider and try again.",
                ))
            }
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
    if providers.len() > MAX_CLUSTER_PROVIDERS {
        return Err(EcsError::invalid_parameter(
            "The maximum number of capacity providers per cluster has been exceeded.",
        ));
    }
    validate_strategy(strategy, Some(providers))
}

/// Which kind of capacity a strategy launches on: Fargate (FARGATE, FARGATE_SPOT) or the
/// hosts of custom (Auto Scaling group) providers. ECS refuses a strategy with both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    /// Only FARGATE and FARGATE_SPOT.
    Fargate,
    /// Only custom providers.
    Custom,
}

/// The kind of a (non-empty) strategy, or ECS's refusal of a mix.
pub fn strategy_kind(strategy: &[CapacityProviderStrategyItem]) -> Result<StrategyKind, EcsError> {
    let builtin = |i: &CapacityProviderStrategyItem| {
        BUILTIN_CAPACITY_PROVIDERS.contains(&i.capacity_provider.as_str())
    };
    match (strategy.iter().any(builtin), strategy.iter().all(builtin)) {
        (_, true) => Ok(StrategyKind::Fargate),
        (false, false) => Ok(StrategyKind::Custom),
        (true, false) => Err(EcsError::invalid_parameter(
            "A capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups and Fargate providers. Specify one or the other and try again.",
        )),
    }
}

/// Checks a capacity provider strategy: every provider known (and, with `allowed`, associated
/// with the cluster), not a mix of Fargate and custom providers, then ECS's rules on bases and
/// weights ([`flotilla_scheduler::capacity::validate`]). An empty strategy is valid (no
/// default).
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
        .map_err(|e| EcsError::invalid_parameter(e.to_string()))?;
    strategy_kind(strategy).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(p: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem {
            capacity_provider: p.into(),
            base,
            weight,
        }
    }

    fn custom(name: &str) -> ProviderState {
        match name {
            "a" | "b" => ProviderState::Active,
            "gone" => ProviderState::Inactive,
            _ => ProviderState::Missing,
        }
    }

    #[test]
    fn clusters_take_active_custom_providers_beside_fargate() {
        let ps = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_capacity_providers(&ps(&["FARGATE", "a", "b"]), &[], custom).is_ok());
        let e = validate_capacity_providers(&ps(&["gone"]), &[], custom).unwrap_err();
        assert!(
            e.message.contains("'gone' is not in an ACTIVE state"),
            "{}",
            e.message
        );
        let e = validate_capacity_providers(&ps(&["nope"]), &[], custom).unwrap_err();
        assert!(e
            .message
            .starts_with("The specified capacity provider was not found."));
        assert!(validate_capacity_providers(&ps(&["a", "a"]), &[], custom).is_err());
        // A default strategy of custom providers is fine; a mix is not.
        let both = ps(&["FARGATE", "a", "b"]);
        assert!(
            validate_capacity_providers(&both, &[item("a", 1, 1), item("b", 0, 2)], custom).is_ok()
        );
        let e =
            validate_capacity_providers(&both, &[item("a", 0, 1), item("FARGATE", 0, 1)], custom)
                .unwrap_err();
        assert!(e
            .message
            .starts_with("A capacity provider strategy cannot contain a mix"));
        let many: Vec<String> = (0..21).map(|i| format!("p{i}")).collect();
        assert!(
            validate_capacity_providers(&many, &[], |_| ProviderState::Active)
                .unwrap_err()
                .message
                .contains("maximum number of capacity providers")
        );
    }

    #[test]
    fn strategy_kinds() {
        assert_eq!(
            strategy_kind(&[item("FARGATE", 0, 1), item("FARGATE_SPOT", 0, 1)]).unwrap(),
            StrategyKind::Fargate
        );
        assert_eq!(
            strategy_kind(&[item("a", 0, 1), item("b", 0, 1)]).unwrap(),
            StrategyKind::Custom
        );
        assert!(strategy_kind(&[item("a", 0, 1), item("FARGATE_SPOT", 0, 1)]).is_err());
    }
}
