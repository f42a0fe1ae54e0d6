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

/// The failure ECS gives when a capacity provider of a split has no container instance.
pub const NO_PROVIDER_INSTANCES: &str =
    "No Container Instances were found in your capacity provider.";

/// The new tasks of a split ([`Launch::providers`]) grouped per provider, in the order each
/// provider first appears: each batch is placed on that provider's hosts only.
pub fn provider_batches(providers: &[String]) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for p in providers {
        match out.iter_mut().find(|(q, _)| q == p) {
            Some((_, n)) => *n += 1,
            None => out.push((p.clone(), 1)),
        }
    }
    out
}

/// Whether an instance of `instance_provider` may run a task sent to `provider`.
pub fn runs_on(provider: &str, instance_provider: Option<&str>) -> bool {
    instance_provider == Some(provider)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(p: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem {
            capacity_provider: p.into(),
            base,
            weight,
        }
    }

    fn cluster(providers: &[&str]) -> Cluster {
        Cluster {
            capacity_providers: Some(providers.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn custom_strategies_launch_as_ec2_and_split_like_fargate() {
        let c = cluster(&["blue", "green", "FARGATE"]);
        let s = [item("blue", 2, 1), item("green", 0, 3)];
        let l = resolve(Some(&c), None, Some(&s)).unwrap();
        assert_eq!(l.launch_type, LaunchType::Ec2);
        let p = l.providers(&BTreeMap::new(), 6);
        let count = |n: &str| p.iter().filter(|x| *x == n).count();
        // The base of 2 first, then 4 split 1:3.
        assert_eq!((count("blue"), count("green")), (3, 3));
        assert_eq!(
            provider_batches(&p),
            vec![("blue".to_string(), 3), ("green".to_string(), 3)]
        );
        assert!(on_custom_providers(l.launch_type, &p));
        let f = resolve(Some(&c), None, Some(&[item("FARGATE", 0, 1)])).unwrap();
        assert_eq!(f.launch_type, LaunchType::Fargate);
        assert!(!on_custom_providers(f.launch_type, &["FARGATE".into()]));
    }

    #[test]
    fn a_mix_of_fargate_and_custom_providers_is_refused() {
        let c = cluster(&["blue", "FARGATE"]);
        let e = resolve(
            Some(&c),
            None,
            Some(&[item("blue", 0, 1), item("FARGATE", 0, 1)]),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        assert_eq!(e.message, "A capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups and Fargate providers. Specify one or the other and try again.");
        // The cluster's default strategy is resolved the same way.
        let mut d = cluster(&["blue", "green"]);
        d.default_capacity_provider_strategy = Some(vec![item("green", 0, 1)]);
        assert_eq!(
            resolve(Some(&d), None, None).unwrap().launch_type,
            LaunchType::Ec2
        );
        // Not associated: refused.
        assert!(resolve(Some(&c), None, Some(&[item("green", 0, 1)])).is_err());
    }

    #[test]
    fn tasks_run_only_on_their_providers_hosts() {
        assert!(runs_on("blue", Some("blue")));
        assert!(!runs_on("blue", Some("green")));
        assert!(!runs_on("blue", None));
    }

    proptest! {
        #[test]
        fn batches_keep_every_task_and_its_provider(
            ps in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..40),
        ) {
            let ps: Vec<String> = ps.into_iter().map(String::from).collect();
            let batches = provider_batches(&ps);
            let total: u32 = batches.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(total as usize, ps.len());
            for (p, n) in &batches {
                prop_assert_eq!(*n as usize, ps.iter().filter(|q| *q == p).count());
            }
            let mut names: Vec<&String> = batches.iter().map(|(p, _)| p).collect();
            names.dedup();
            prop_assert_eq!(names.len(), batches.len());
        }

        #[test]
        fn custom_splits_follow_base_and_weight(
            base in 0i32..5, wa in 0i32..5, wb in 1i32..5, n in 0u32..40,
        ) {
            let c = cluster(&["a", "b"]);
            let s = [item("a", base, wa), item("b", 0, wb)];
            let l = resolve(Some(&c), None, Some(&s)).unwrap();
            let p = l.providers(&BTreeMap::new(), n);
            prop_assert_eq!(p.len() as u32, n);
            let a = p.iter().filter(|x| *x == "a").count() as u32;
            // The base goes to "a" first.
            prop_assert!(a >= (base as u32).min(n));
            if wa == 0 {
                prop_assert_eq!(a, (base as u32).min(n));
            }
        }
    }
}
