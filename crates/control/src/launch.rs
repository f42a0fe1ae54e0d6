//! How tasks launch: the launch type or capacity provider strategy a request resolves to
//! ([`resolve`], as ECS decides), the split of new tasks over a strategy's providers
//! ([`Launch::providers`]), where a launch type's tasks run ([`host_cluster`]: the managed pool for
//! FARGATE), and the request's placement strategies and constraints in the scheduler's terms.

use flotilla_model::shapes::{
    CapacityProviderStrategyItem, Cluster, LaunchType, PlacementConstraint, PlacementStrategy,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::MANAGED_POOL;
use flotilla_scheduler::{self as sched, capacity, PlacementError};
use std::collections::BTreeMap;

/// The failure reason ECS gives when Fargate has no room for a task.
pub const NO_CAPACITY_REASON: &str =
    "Capacity is unavailable at this time. Please try again later or in a different availability zone";

/// The ephemeral storage of a Fargate task that asks for none, GiB (as ECS reports it).
pub const DEFAULT_EPHEMERAL_STORAGE_GIB: i32 = 20;

/// How tasks are launched: a launch type, or a capacity provider strategy (whose providers are
/// FARGATE and FARGATE_SPOT, launching on Fargate, or custom providers, launching as EC2 tasks
/// on the hosts of each provider).
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The launch type the tasks get.
    pub launch_type: LaunchType,
    /// The capacity provider strategy; empty for a plain launch type.
    pub strategy: Vec<CapacityProviderStrategyItem>,
}

impl Launch {
    /// The capacity providers of `n` new tasks of a group that already runs `existing` tasks per
    /// provider (empty for a plain launch type), split by the strategy's base and weights.
    pub fn providers(&self, existing: &BTreeMap<String, u32>, n: u32) -> Vec<String> {
        if self.strategy.is_empty() {
            return Vec::new();
        }
        let items = capacity_items(&self.strategy);
        let counts: Vec<u32> = items
            .iter()
            .map(|i| existing.get(&i.capacity_provider).copied().unwrap_or(0))
            .collect();
        capacity::assign(&items, &counts, n)
            .map(|ix| {
                ix.into_iter()
                    .filter_map(|i| items.get(i).map(|it| it.capacity_provider.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The strategy as the pure capacity module takes it.
pub fn capacity_items(strategy: &[CapacityProviderStrategyItem]) -> Vec<capacity::StrategyItem> {
    strategy
        .iter()
        .map(|i| {
            capacity::StrategyItem::new(
                i.capacity_provider.clone(),
                u32::try_from(i.base).unwrap_or(0),
                u32::try_from(i.weight).unwrap_or(0),
            )
        })
        .collect()
}

/// Decides how a RunTask/CreateService request launches its tasks, as ECS does: an explicit
/// `launchType`; else an explicit `capacityProviderStrategy`; else the cluster's default
/// strategy; else EC2. Both together are refused; a strategy must be valid and name only
/// providers associated with the cluster. `cluster` is the ACTIVE cluster the request addresses
/// (needed only when no launch type is given).
pub fn resolve(
    cluster: Option<&Cluster>,
    launch_type: Option<LaunchType>,
    strategy: Option<&[CapacityProviderStrategyItem]>,
) -> Result<Launch, EcsError> {
    let given = strategy.filter(|s| !s.is_empty());
    if launch_type.is_some() && given.is_some() {
        return Err(EcsError::invalid_parameter(
            "Specifying both a launch type and capacity provider strategy is not supported.",
        ));
    }
    if let Some(l) = launch_type {
        return Ok(Launch {
            launch_type: self::launch_type(Some(l))?,
            strategy: Vec::new(),
        });
    }
    let Some(c) = cluster else {
        return Err(EcsError::cluster_not_found());
    };
    let strategy = match given {
        Some(s) => s.to_vec(),
        None => c
            .default_capacity_provider_strategy
            .clone()
            .unwrap_or_default(),
    };
    if strategy.is_empty() {
        return Ok(Launch {
            launch_type: LaunchType::Ec2,
            strategy,
        });
    }
    let associated = c.capacity_providers.clone().unwrap_or_default();
    crate::clusters::validate_strategy(&strategy, Some(&associated))?;
    Ok(Launch {
        launch_type: strategy_launch_type(&strategy)?,
        strategy,
    })
}

/// The launch type a (non-empty) strategy's tasks get: FARGATE for FARGATE and FARGATE_SPOT,
/// EC2 for custom providers (as ECS shows tasks of Auto Scaling group providers); a mix is
/// ECS's `InvalidParameterException`.
pub fn strategy_launch_type(
    strategy: &[CapacityProviderStrategyItem],
) -> Result<LaunchType, EcsError> {
    Ok(match crate::clusters::strategy_kind(strategy)? {
        crate::clusters::StrategyKind::Fargate => LaunchType::Fargate,
        crate::clusters::StrategyKind::Custom => LaunchType::Ec2,
    })
}

/// Whether a launch places its tasks on the hosts of custom capacity providers (each task only
/// on hosts of its own provider).
pub fn on_custom_providers(launch_type: LaunchType, providers: &[String]) -> bool {
    launch_type != LaunchType::Fargate && !providers.is_empty()
}

/// The request's constraints, as the scheduler takes them.
pub fn constraints(
    cs: &[PlacementConstraint],
) -> Result<Vec<sched::PlacementConstraint>, EcsError> {
    cs.iter()
        .map(|c| {
            let kind = c.r#type.map(|k| k.as_str()).ok_or_else(|| {
                EcsError::invalid_parameter("A placement constraint needs a type.")
            })?;
            sched::PlacementConstraint::from_ecs(kind, c.expression.as_deref())
                .map_err(placement_error)
        })
        .collect()
}

/// The request's strategies, as the scheduler takes them.
pub fn strategies(ss: &[PlacementStrategy]) -> Result<Vec<sched::PlacementStrategy>, EcsError> {
    ss.iter()
        .map(|s| {
            let kind = s
                .r#type
                .map(|k| k.as_str())
                .ok_or_else(|| EcsError::invalid_parameter("A placement strategy needs a type."))?;
            sched::PlacementStrategy::from_ecs(kind, s.field.as_deref()).map_err(placement_error)
        })
        .collect()
}

/// The launch type of a request: EC2 (default), EXTERNAL or FARGATE.
pub fn launch_type(l: Option<LaunchType>) -> Result<LaunchType, EcsError> {
    match l.unwrap_or(LaunchType::Ec2) {
        l @ (LaunchType::Ec2 | LaunchType::External | LaunchType::Fargate) => Ok(l),
        other => Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            format!(
                "The {} launch type is not supported by this Flotilla server yet; use EC2 or EXTERNAL.",
                other.as_str()
            ),
        )),
    }
}

/// Turns a scheduler refusal into the ECS error.
pub fn placement_error(e: PlacementError) -> EcsError {
    match e {
        PlacementError::NoContainerInstances => {
            EcsError::invalid_parameter(PlacementError::NO_INSTANCES_MESSAGE)
        }
        PlacementError::Query(q) => {
            EcsError::invalid_parameter(format!("Invalid placement constraint expression: {q}."))
        }
        other => EcsError::invalid_parameter(format!("{other}.")),
    }
}

/// Where Flotilla places Fargate tasks on its pool: across availability zones first, then packed
/// by memory, so a pool host fills before the next one is used.
pub fn pool_strategies() -> Vec<sched::PlacementStrategy> {
    vec![
        sched::PlacementStrategy::Spread(sched::SpreadField::Attribute(
            "ecs.availability-zone".into(),
        )),
        sched::PlacementStrategy::Binpack(sched::BinpackField::Memory),
    ]
}

/// The cluster whose instances run tasks of this launch type.
pub fn host_cluster(launch_type: LaunchType, cluster: &str) -> &str {
    if launch_type == LaunchType::Fargate {
        MANAGED_POOL
    } else {
        cluster
    }
}
