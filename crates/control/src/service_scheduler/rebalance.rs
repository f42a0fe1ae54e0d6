//! Availability Zone rebalancing (`availabilityZoneRebalancing: ENABLED`), as ECS documents it:
//! once a service is steady, its tasks are counted per Availability Zone over the zones it can
//! run in; while the most and the least populated zones differ by more than one, one task is
//! started in the least populated zone, and, once it is healthy, one task of the most populated
//! zone is stopped (the surplus rule already stops from the zone with the most tasks). Each
//! step stays within the deployment bounds: a start needs `desired + 1` within `maximumPercent`,
//! which is why ECS does not rebalance services whose `maximumPercent` is 100.
//!
//! - [`compatible`]: whether a service's configuration allows rebalancing, with the reason
//!   when not (CreateService and UpdateService refuse `ENABLED` then; the default is ENABLED
//!   only for compatible services).
//! - [`surplus`]: while rebalancing, only healthy tasks count towards a surplus, so the task
//!   just started in the emptier zone is never the one stopped, and nothing is stopped before
//!   it is healthy.
//! - [`step`]: the decision after a steady round (start one in a zone, or done), with the
//!   `SERVICE_REBALANCING_STARTED`/`_COMPLETED` events.

use super::{max_tasks, Actions, ServiceEvent, ServiceSpec, TaskObs};
use flotilla_model::shapes::{
    LaunchType, PlacementConstraint, PlacementStrategy, PlacementStrategyType, SchedulingStrategy,
};
use std::collections::{BTreeMap, BTreeSet};

/// The AZ attribute placement uses.
pub const AZ_ATTRIBUTE: &str = "attribute:ecs.availability-zone";

/// What a service is, as far as rebalancing is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// REPLICA or DAEMON.
    pub scheduling: SchedulingStrategy,
    /// Its launch type, when it has one (a capacity provider strategy has none).
    pub launch_type: Option<LaunchType>,
    /// `deploymentConfiguration.maximumPercent`.
    pub maximum_percent: u32,
    /// Its placement strategies.
    pub strategies: &'a [PlacementStrategy],
    /// Its placement constraints.
    pub constraints: &'a [PlacementConstraint],
    /// How many capacity providers its strategy names (0 with a launch type).
    pub providers: usize,
}

/// Why a service cannot be rebalanced across Availability Zones, as the message of the
/// `InvalidParameterException` that refuses `ENABLED` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incompatible {
    /// DAEMON services run one task per instance.
    Daemon,
    /// EXTERNAL instances have no zones.
    External,
    /// A start above the desired count is needed.
    MaximumPercent100,
    /// The first placement strategy is not a spread over zones.
    FirstStrategy,
    /// A placement constraint names the zone attribute.
    ZoneConstraint,
    /// Flotilla's own limit, not ECS's: a strategy of several capacity providers (a
    /// rebalancing's start and stop could land on different providers and shift the split).
    SeveralProviders,
}

impl Incompatible {
    /// The message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Daemon => "Availability Zone rebalancing is not supported for services that use the DAEMON scheduling strategy.",
            Self::External => "Availability Zone rebalancing is not supported for services that use the EXTERNAL launch type.",
            Self::MaximumPercent100 => "Availability Zone rebalancing is not supported for services whose deploymentConfiguration.maximumPercent is 100.",
            Self::FirstStrategy => "Availability Zone rebalancing is only supported for services whose first placement strategy is spread across attribute:ecs.availability-zone, or that have no placement strategy.",
            Self::ZoneConstraint => "Availability Zone rebalancing is not supported for services with a placement constraint on attribute:ecs.availability-zone.",
            Self::SeveralProviders => "Availability Zone rebalancing is not supported by this Flotilla server yet for services whose capacity provider strategy names more than one capacity provider.",
        }
    }

    /// The error code: ECS's conditions are `InvalidParameterException`; Flotilla's own limit is
    /// `UnsupportedFeatureException`.
    pub fn code(self) -> flotilla_model::ErrorCode {
        match self {
            Self::SeveralProviders => flotilla_model::ErrorCode::UnsupportedFeatureException,
            _ => flotilla_model::ErrorCode::InvalidParameterException,
        }
    }

    /// The error refusing `ENABLED`.
    pub fn error(self) -> flotilla_model::EcsError {
        flotilla_model::EcsError::new(self.code(), self.message())
    }
}

/// Whether the service's configuration allows AZ rebalancing (ECS's documented conditions).
pub fn compatible(s: Shape<'_>) -> Result<(), Incompatible> {
    if s.scheduling == SchedulingStrategy::Daemon {
        return Err(Incompatible::Daemon);
    }
    if s.launch_type == Some(LaunchType::External) {
        return Err(Incompatible::External);
    }
    if s.maximum_percent <= 100 {
        return Err(Incompatible::MaximumPercent100);
    }
    if let Some(first) = s.strategies.first() {
        let spread_az = first.r#type == Some(PlacementStrategyType::Spread)
            && first.field.as_deref() == Some(AZ_ATTRIBUTE);
        if !spread_az {
            return Err(Incompatible::FirstStrategy);
        }
    }
    if s.constraints.iter().any(|c| {
        c.expression
            .as_deref()
            .is_some_and(|e| e.contains(AZ_ATTRIBUTE))
    }) {
        return Err(Incompatible::ZoneConstraint);
    }
    if s.providers > 1 {
        return Err(Incompatible::SeveralProviders);
    }
    Ok(())
}

/// The candidates for the primary's surplus: all its counted tasks, or while rebalancing only
/// the healthy ones (the started task is kept until it is healthy, and never chosen first).
pub fn surplus<'a>(spec: &ServiceSpec, counted: Vec<&'a TaskObs>) -> Vec<&'a TaskObs> {
    if spec.rebalancing {
        counted.into_iter().filter(|t| t.healthy).collect()
    } else {
        counted
    }
}

/// The live tasks per zone, over every zone the service can run in (zones without a task count
/// zero) and every zone a task runs in.
pub fn per_zone(zones: &BTreeSet<String>, live: &[&TaskObs]) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = zones.iter().map(|z| (z.clone(), 0)).collect();
    for t in live.iter().filter(|t| !t.az.is_empty() && !t.lost) {
        *counts.entry(t.az.clone()).or_default() += 1;
    }
    counts
}

/// Whether the counts are balanced: the most and least populated zones differ by one at most.
pub fn balanced(counts: &BTreeMap<String, u32>) -> bool {
    let max = counts.values().copied().max().unwrap_or(0);
    let min = counts.values().copied().min().unwrap_or(0);
    max - min <= 1
}

/// The least populated zone (the first by name among equals).
fn emptiest(counts: &BTreeMap<String, u32>) -> Option<String> {
    counts
        .iter()
        .min_by_key(|(z, n)| (**n, (*z).clone()))
        .map(|(z, _)| z.clone())
}

/// After the round's other decisions: when the service is steady with one deployment and its
/// zones are not balanced, start one task in the least populated zone (`start_in_az`), within
/// `maximumPercent`; when balanced, a rebalancing in progress completes. `primary`: the primary
/// deployment's id; `live`: the live tasks that stay.
pub fn step(
    spec: &ServiceSpec,
    primary: &str,
    live: &[&TaskObs],
    may_start: bool,
    out: &mut Actions,
) {
    if spec.zones.is_empty() || spec.draining {
        out.rebalancing = false;
        return;
    }
    // Tasks whose agent is gone or whose instance is draining are being replaced: the
    // scheduler's own moves come first.
    let settled = live.iter().all(|t| !t.lost && !t.draining);
    let quiet = settled
        && out.steady
        && out.deployments.len() == 1
        && out.start.is_none()
        && out.start_on.is_empty()
        && out.stop.is_empty();
    if !quiet {
        // Converging (a rebalancing task starting or stopping) keeps a rebalancing going; a
        // new deployment ends it.
        out.rebalancing = spec.rebalancing && out.deployments.len() == 1;
        return;
    }
    let counts = per_zone(&spec.zones, live);
    if balanced(&counts) || spec.zones.len() < 2 {
        if spec.rebalancing {
            out.events.push(ServiceEvent::Rebalanced {
                counts: counts.into_iter().collect(),
            });
        }
        out.rebalancing = false;
        return;
    }
    let room = max_tasks(spec.desired, spec.maximum_percent) > spec.desired;
    let Some(zone) = emptiest(&counts).filter(|_| room && may_start) else {
        out.rebalancing = false;
        return;
    };
    if !spec.rebalancing {
        out.events.push(ServiceEvent::NotBalanced {
            counts: counts.into_iter().collect(),
        });
    }
    out.start = Some((primary.to_string(), 1));
    out.start_in_az = Some(zone);
    out.steady = false;
    out.rebalancing = true;
}

/// While rebalancing, the round's surplus stops are told as rebalancing stops, per zone.
pub fn retell_stops(spec: &ServiceSpec, tasks: &[TaskObs], out: &mut Actions) {
    if !spec.rebalancing {
        return;
    }
    let mut per_zone: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = Vec::new();
    for e in std::mem::take(&mut out.events) {
        match e {
            ServiceEvent::Stopped { tasks: ids } => {
                for id in ids {
                    let az = tasks
                        .iter()
                        .find(|t| t.id == id)
                        .map(|t| t.az.clone())
                        .unwrap_or_default();
                    per_zone.entry(az).or_default().push(id);
                }
            }
            other => rest.push(other),
        }
    }
    rest.extend(
        per_zone
            .into_iter()
            .map(|(zone, tasks)| ServiceEvent::RebalanceStopped { zone, tasks }),
    );
    out.events = rest;
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{primary_a, spec, task};
    use super::super::{compute_service_actions, Phase};
    use super::*;
    use flotilla_model::shapes::DeploymentRolloutState;
    use proptest::prelude::*;

    fn zones(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|z| z.to_string()).collect()
    }

    fn in_zone(n: usize, az: &str, phase: Phase) -> TaskObs {
        let mut t = task(n, "a", phase);
        t.az = az.into();
        t
    }

    fn shape<'a>(max: u32, strategies: &'a [PlacementStrategy]) -> Shape<'a> {
        Shape {
            scheduling: SchedulingStrategy::Replica,
            launch_type: Some(LaunchType::Ec2),
            maximum_percent: max,
            strategies,
            constraints: &[],
            providers: 0,
        }
    }

    #[test]
    fn compatibility_follows_ecs_conditions() {
        assert_eq!(compatible(shape(200, &[])), Ok(()));
        assert_eq!(
            compatible(shape(100, &[])),
            Err(Incompatible::MaximumPercent100)
        );
        let binpack = [PlacementStrategy {
            r#type: Some(PlacementStrategyType::Binpack),
            field: Some("memory".into()),
        }];
        assert_eq!(
            compatible(shape(200, &binpack)),
            Err(Incompatible::FirstStrategy)
        );
        let az = [PlacementStrategy {
            r#type: Some(PlacementStrategyType::Spread),
            field: Some(AZ_ATTRIBUTE.into()),
        }];
        assert_eq!(compatible(shape(200, &az)), Ok(()));
        let mut daemon = shape(200, &[]);
        daemon.scheduling = SchedulingStrategy::Daemon;
        assert_eq!(compatible(daemon), Err(Incompatible::Daemon));
        let c = [PlacementConstraint {
            r#type: None,
            expression: Some(format!("{AZ_ATTRIBUTE} == us-east-1a")),
        }];
        let mut constrained = shape(200, &[]);
        constrained.constraints = &c;
        assert_eq!(compatible(constrained), Err(Incompatible::ZoneConstraint));
        let mut split = shape(200, &[]);
        split.providers = 2;
        assert_eq!(compatible(split), Err(Incompatible::SeveralProviders));
        assert_eq!(
            Incompatible::SeveralProviders.code(),
            flotilla_model::ErrorCode::UnsupportedFeatureException
        );
    }

    #[test]
    fn a_steady_imbalanced_service_starts_one_task_in_the_emptiest_zone() {
        let mut s = spec(3, 100, 200);
        s.steady = true;
        s.zones = zones(&["z1", "z2", "z3"]);
        let tasks = [
            in_zone(1, "z1", Phase::Running),
            in_zone(2, "z1", Phase::Running),
            in_zone(3, "z1", Phase::Running),
        ];
        let a = compute_service_actions(
            &s,
            &[primary_a(DeploymentRolloutState::Completed)],
            &tasks,
            10.0,
        );
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert_eq!(a.start_in_az.as_deref(), Some("z2"));
        assert!(a.rebalancing && !a.steady && a.stop.is_empty());
        assert!(a.events.iter().any(|e| e.render("web")
            == "service (web) is not AZ balanced with 3 tasks in z1, 0 in z2, and 0 in z3. AZ Rebalancing in progress."));
    }

    #[test]
    fn the_started_task_is_kept_until_healthy_then_the_fullest_zone_loses_one() {
        let mut s = spec(3, 100, 200);
        s.zones = zones(&["z1", "z2"]);
        s.rebalancing = true;
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks = vec![
            in_zone(1, "z1", Phase::Running),
            in_zone(2, "z1", Phase::Running),
            in_zone(3, "z1", Phase::Running),
            in_zone(4, "z2", Phase::Pending),
        ];
        let a = compute_service_actions(&s, &d, &tasks, 10.0);
        assert!(
            a.stop.is_empty(),
            "nothing stops while the new task is pending: {a:?}"
        );
        assert!(a.start.is_none());
        assert!(a.rebalancing);
        tasks[3].phase = Phase::Running;
        tasks[3].healthy = true;
        let a = compute_service_actions(&s, &d, &tasks, 11.0);
        assert_eq!(a.stop.len(), 1);
        let stopped = tasks.iter().find(|t| t.arn == a.stop[0].0).unwrap();
        assert_eq!(stopped.az, "z1");
        assert!(a.events.iter().any(|e| e
            .render("web")
            .starts_with("web has stopped 1 running tasks in z1 due to AZ rebalancing:")));
    }

    #[test]
    fn balanced_completes_a_rebalancing_and_stays_quiet_after() {
        let mut s = spec(3, 100, 200);
        s.steady = true;
        s.zones = zones(&["z1", "z2"]);
        s.rebalancing = true;
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let tasks = [
            in_zone(1, "z1", Phase::Running),
            in_zone(2, "z1", Phase::Running),
            in_zone(3, "z2", Phase::Running),
        ];
        let a = compute_service_actions(&s, &d, &tasks, 10.0);
        assert!(a.start.is_none() && a.stop.is_empty() && a.steady && !a.rebalancing);
        assert!(a.events.iter().any(|e| e.render("web")
            == "service (web) is AZ balanced with 2 tasks in z1 and 1 tasks in z2."));
        s.rebalancing = false;
        let a = compute_service_actions(&s, &d, &tasks, 11.0);
        assert!(a.events.is_empty(), "{:?}", a.events);
    }

    #[test]
    fn nothing_moves_while_a_task_is_lost_or_on_a_draining_instance() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut s = spec(3, 100, 200);
        s.steady = true;
        s.zones = zones(&["z1", "z2"]);
        for mark in [
            |t: &mut TaskObs| t.lost = true,
            |t: &mut TaskObs| t.draining = true,
        ] {
            let mut tasks = vec![
                in_zone(1, "z1", Phase::Running),
                in_zone(2, "z1", Phase::Running),
                in_zone(3, "z1", Phase::Running),
            ];
            mark(&mut tasks[0]);
            let a = compute_service_actions(&s, &d, &tasks, 10.0);
            assert!(a.start_in_az.is_none() && !a.rebalancing, "{a:?}");
        }
    }

    #[test]
    fn no_room_above_desired_or_no_zones_means_no_rebalancing() {
        let tasks = [
            in_zone(1, "z1", Phase::Running),
            in_zone(2, "z1", Phase::Running),
        ];
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut s = spec(2, 100, 100);
        s.steady = true;
        s.zones = zones(&["z1", "z2"]);
        let a = compute_service_actions(&s, &d, &tasks, 10.0);
        assert!(a.start.is_none() && !a.rebalancing);
        let mut s = spec(2, 100, 200);
        s.steady = true;
        let a = compute_service_actions(&s, &d, &tasks, 10.0);
        assert!(a.start.is_none() && !a.rebalancing);
    }

    proptest! {
        /// Rebalancing never asks for more than one start, only in the emptiest zone, and only
        /// when the zones are out of balance.
        #[test]
        fn starts_only_when_imbalanced(counts in proptest::collection::vec(0usize..5, 2..4)) {
            let names: Vec<String> = (0..counts.len()).map(|i| format!("z{i}")).collect();
            let mut tasks = Vec::new();
            for (i, n) in counts.iter().enumerate() {
                for _ in 0..*n {
                    let k = tasks.len();
                    tasks.push(in_zone(k, &names[i], Phase::Running));
                }
            }
            let desired = u32::try_from(tasks.len()).unwrap();
            let mut s = spec(desired, 100, 200);
            s.steady = true;
            s.zones = names.iter().cloned().collect();
            let a = compute_service_actions(&s, &[primary_a(DeploymentRolloutState::Completed)], &tasks, 10.0);
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            if max - min > 1 && desired > 0 {
                prop_assert_eq!(a.start, Some(("a".to_string(), 1)));
                let z = a.start_in_az.unwrap();
                let zi = names.iter().position(|n| *n == z).unwrap();
                prop_assert_eq!(counts[zi], min);
            } else {
                prop_assert!(a.start.is_none());
                prop_assert!(a.start_in_az.is_none());
            }
        }
    }
}
