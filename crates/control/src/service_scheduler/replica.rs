//! REPLICA services: `desiredCount` tasks of the primary deployment, replaced in a rolling
//! deployment within `minimumHealthyPercent` and `maximumPercent` (see the parent module's rules).

use super::lost;
use super::rebalance;
use super::steps::{self, Conclusion, StopWhy};
use super::{
    max_tasks, min_healthy, Actions, DeploymentRecord, Phase, ServiceEvent, ServiceSpec, TaskObs,
};
use std::collections::{BTreeMap, BTreeSet};

/// The decisions for one REPLICA service (see the module docs).
pub fn compute_service_actions(
    spec: &ServiceSpec,
    deployments: &[DeploymentRecord],
    tasks: &[TaskObs],
    now: f64,
) -> Actions {
    let mut out = Actions {
        replaced: lost::remembered(spec, tasks),
        ..Actions::default()
    };
    let seen = tasks;
    let tasks = steps::visible(tasks);
    let desired = if spec.draining { 0 } else { spec.desired };
    let mut deps = deployments.to_vec();
    let failures = steps::count_failures(&mut deps, &tasks);
    steps::circuit_breaker(spec, &mut deps, failures, desired, now, &mut out);
    super::alarms::apply(spec, &mut deps, desired, now, &mut out);
    let primary = steps::primary_id(&deps);
    // Replaced tasks whose agent is back go first; the other rules see the service without them.
    let returned = lost::returned(spec, &tasks);
    let live: Vec<&TaskObs> = steps::live(&tasks)
        .into_iter()
        .filter(|t| !returned.iter().any(|r| r.arn == t.arn))
        .collect();
    let mut stopping: Vec<(&TaskObs, StopWhy)> =
        returned.iter().map(|t| (*t, StopWhy::Scaling)).collect();
    stopping.extend(choose_stops(spec, &deps, &live, desired));
    steps::stop(&stopping, &mut out);
    rebalance::retell_stops(spec, &tasks, &mut out);
    let lacking = lacking(&primary, &live, desired);
    let n = starts(spec, lacking, &tasks, desired);
    // A rebalancing starts nothing while the primary's tasks keep failing.
    let may_rebalance = failures.count == 0;
    if n > 0 && steps::may_start(spec, &deps, failures, now, &mut out) {
        out.start = Some((primary.clone(), n));
        let unreplaced = lost::unreplaced(spec, &primary, seen);
        out.replacing = lost::replacing(&unreplaced, lacking, n);
    }
    report_unexpected_stops(deployments, &tasks, &mut out);
    let primary_healthy = live
        .iter()
        .filter(|t| t.deployment == primary && t.healthy && !t.draining)
        .filter(|t| !stopping.iter().any(|(s, _)| s.arn == t.arn))
        .count();
    let c = Conclusion {
        tasks: &tasks,
        desired,
        primary_healthy: u32::try_from(primary_healthy).unwrap_or(0),
        keep_failed: true,
        may_complete: true,
    };
    steps::conclude(c, spec, deps, now, &mut out);
    let staying: Vec<&TaskObs> = live
        .iter()
        .copied()
        .filter(|t| !stopping.iter().any(|(s, _)| s.arn == t.arn))
        .collect();
    rebalance::step(spec, &primary, &staying, may_rebalance, &mut out);
    out
}

/// The primary's tasks that count towards the desired count (not on a DRAINING instance, not
/// failing health checks).
fn counted<'a>(primary: &str, live: &[&'a TaskObs]) -> Vec<&'a TaskObs> {
    live.iter()
        .copied()
        .filter(|t| t.deployment == primary && !t.draining && !t.unhealthy)
        .collect()
}

/// The tasks to stop: first the primary's surplus, then old deployments' tasks and tasks on
/// DRAINING instances or failing health checks: unhealthy ones always, healthy ones down to the
/// minimum.
fn choose_stops<'a>(
    spec: &ServiceSpec,
    deps: &[DeploymentRecord],
    live: &[&'a TaskObs],
    desired: u32,
) -> Vec<(&'a TaskObs, StopWhy)> {
    let primary = steps::primary_id(deps);
    let min_ok = min_healthy(desired, spec.minimum_healthy_percent).min(desired);
    let mut stopping: Vec<&TaskObs> = Vec::new();
    let mut surplus = rebalance::surplus(spec, counted(&primary, live));
    let extra = surplus.len().saturating_sub(desired as usize);
    // A protected task is never chosen: with too few unprotected ones, the service stays
    // above its desired count until a protection expires or is removed.
    surplus.retain(|t| !shielded(spec, t));
    surplus_order(&mut surplus, live);
    stopping.extend(surplus.into_iter().take(extra));
    let mut healthy_left = u32::try_from(
        live.iter()
            .filter(|t| t.healthy && !stopping.iter().any(|s| s.arn == t.arn))
            .count(),
    )
    .unwrap_or(u32::MAX);
    let known: BTreeSet<&str> = deps.iter().map(|d| d.id.as_str()).collect();
    let mut old: Vec<&TaskObs> = live
        .iter()
        .copied()
        .filter(|t| {
            (t.deployment != primary
                || !known.contains(t.deployment.as_str())
                || t.draining
                || t.unhealthy)
                && !shielded(spec, t)
        })
        .collect();
    surplus_order(&mut old, live);
    for t in old {
        if t.healthy {
            if healthy_left <= min_ok {
                continue;
            }
            healthy_left -= 1;
        }
        stopping.push(t);
    }
    stopping
        .into_iter()
        .map(|t| {
            let why = if t.unhealthy {
                StopWhy::Unhealthy
            } else {
                StopWhy::Scaling
            };
            (t, why)
        })
        .collect()
}

/// Whether a task's scale-in protection keeps it from being stopped: protection holds against
/// scale-in and deployments (an old deployment's task, one on a DRAINING instance), not
/// against failed health checks or the deletion of the service.
fn shielded(spec: &ServiceSpec, t: &TaskObs) -> bool {
    t.protected && !t.unhealthy && !spec.draining
}

/// How many tasks the desired count lacks: the primary's tasks that count fall short of it by.
fn lacking(primary: &str, live: &[&TaskObs], desired: u32) -> u32 {
    let kept = u32::try_from(counted(primary, live).len())
        .unwrap_or(u32::MAX)
        .min(desired);
    desired.saturating_sub(kept)
}

/// How many tasks to start for the primary: what the desired count lacks, within
/// `maximumPercent` of tasks that have not stopped.
fn starts(spec: &ServiceSpec, lacking: u32, tasks: &[TaskObs], desired: u32) -> u32 {
    let max_total = max_tasks(desired, spec.maximum_percent).max(desired);
    let unstopped = u32::try_from(tasks.iter().filter(|t| t.phase != Phase::Stopped).count())
        .unwrap_or(u32::MAX);
    lacking.min(max_total.saturating_sub(unstopped))
}

/// Tasks that stopped on their own since their deployment's counts last changed (their stop
/// changes the counts, so each is told once).
fn report_unexpected_stops(deployments: &[DeploymentRecord], tasks: &[TaskObs], out: &mut Actions) {
    for d in deployments {
        for t in tasks.iter().filter(|t| t.deployment == d.id) {
            if let (Some(why), Some(at)) = (&t.unexpected_stop, t.stopped_at) {
                if t.phase == Phase::Stopped && at > d.updated_at {
                    out.events.push(ServiceEvent::TaskStoppedUnexpectedly {
                        task: t.id.clone(),
                        reason: why.clone(),
                    });
                }
            }
        }
    }
}

/// Orders candidates for stopping: unhealthy first, then AZ with the most live tasks of the
/// service, then the instance with the most, then by ARN (deterministic).
fn surplus_order<'a>(cands: &mut [&'a TaskObs], all: &[&'a TaskObs]) {
    let mut per_az: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for t in all {
        *per_az.entry(t.az.as_str()).or_default() += 1;
        *per_instance.entry(t.instance.as_str()).or_default() += 1;
    }
    cands.sort_by(|a, b| {
        a.healthy
            .cmp(&b.healthy)
            .then_with(|| per_az.get(b.az.as_str()).cmp(&per_az.get(a.az.as_str())))
            .then_with(|| {
                per_instance
                    .get(b.instance.as_str())
                    .cmp(&per_instance.get(a.instance.as_str()))
            })
            .then_with(|| a.arn.cmp(&b.arn))
    });
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{messages, primary_a, rolling, spec, task};
    use super::super::{max_tasks, min_healthy};
    use super::*;
    use flotilla_model::shapes::DeploymentRolloutState;
    use proptest::prelude::*;

    #[test]
    fn a_new_service_starts_desired_tasks() {
        let d = [primary_a(DeploymentRolloutState::InProgress)];
        let a = compute_service_actions(&spec(5, 100, 200), &d, &[], 10.0);
        assert_eq!(a.start, Some(("a".into(), 5)));
        assert!(a.stop.is_empty());
        assert!(!a.steady);
    }

    #[test]
    fn steady_and_completed_once_all_run() {
        let d = [primary_a(DeploymentRolloutState::InProgress)];
        let tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        let a = compute_service_actions(&spec(3, 100, 200), &d, &tasks, 10.0);
        assert!(a.steady);
        assert_eq!(a.completed, Some(("a".into(), "td-a".into())));
        assert_eq!(
            a.deployments[0].rollout_state,
            DeploymentRolloutState::Completed
        );
        assert!(messages(&a)
            .iter()
            .any(|e| e.contains("has reached a steady state")));
        assert!(messages(&a)
            .iter()
            .any(|e| e.contains("deployment completed")));
    }

    #[test]
    fn a_stopped_task_is_replaced() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        tasks.push(task(3, "a", Phase::Stopped));
        tasks[3].unexpected_stop = Some("Essential container in task exited".into());
        let a = compute_service_actions(&spec(4, 100, 200), &d, &tasks, 10.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert_eq!(
            messages(&a),
            vec![
                "(service web) (task t3) stopped unexpectedly: Essential container in task exited."
            ]
        );
        // Told once: the counts changed, so the deployment's updatedAt moved past the stop.
        let again = compute_service_actions(&spec(4, 100, 200), &a.deployments, &tasks, 11.0);
        assert!(again.events.is_empty(), "{:?}", again.events);
    }

    #[test]
    fn rolling_update_starts_new_then_stops_old_as_new_get_healthy() {
        let d = rolling();
        let mut tasks: Vec<_> = (0..6).map(|i| task(i, "a", Phase::Running)).collect();
        let a = compute_service_actions(&spec(6, 100, 200), &d, &tasks, 10.0);
        assert_eq!(a.start, Some(("b".into(), 6)));
        assert!(a.stop.is_empty());
        for i in 6..12 {
            tasks.push(task(
                i,
                "b",
                if i < 8 {
                    Phase::Running
                } else {
                    Phase::Pending
                },
            ));
        }
        let a = compute_service_actions(&spec(6, 100, 200), &d, &tasks, 10.0);
        assert_eq!(a.start, None);
        assert_eq!(a.stop.len(), 2);
        assert!(messages(&a)
            .iter()
            .any(|e| e.contains("has stopped 2 running tasks")));
    }

    #[test]
    fn scale_down_stops_from_the_fullest_az() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        for t in tasks.iter_mut() {
            t.az = "x".into();
        }
        tasks[2].az = "y".into();
        let a = compute_service_actions(&spec(2, 100, 200), &d, &tasks, 10.0);
        assert_eq!(a.stop.len(), 1);
        assert_ne!(a.stop[0].0, "arn:t2");
    }

    #[test]
    fn circuit_breaker_trips_and_rolls_back() {
        let d = rolling();
        let mut s = spec(2, 100, 200);
        s.circuit_breaker = Some(true);
        s.last_completed = Some(("a".into(), "td-a".into()));
        let mut tasks: Vec<_> = (0..2).map(|i| task(i, "a", Phase::Running)).collect();
        for i in 2..5 {
            let mut t = task(i, "b", Phase::Stopped);
            t.started_at = None;
            t.failed = true;
            tasks.push(t);
        }
        let a = compute_service_actions(&s, &d, &tasks, 10.0);
        assert_eq!(a.deployments[0].id, "ecs-svc/9");
        assert_eq!(a.deployments[0].task_definition, "td-a");
        let b = a.deployments.iter().find(|d| d.id == "b");
        assert_eq!(
            b.map(|d| d.rollout_state),
            Some(DeploymentRolloutState::Failed)
        );
        assert_eq!(b.map(|d| d.failed_tasks), Some(3));
        assert_eq!(a.start, Some(("ecs-svc/9".into(), 2)));
        // The rollback's tasks run, the old ones go: one deployment left, COMPLETED.
        let mut tasks: Vec<_> = tasks.into_iter().filter(|t| t.deployment == "b").collect();
        tasks.extend((5..7).map(|i| task(i, "ecs-svc/9", Phase::Running)));
        let done = compute_service_actions(&s, &a.deployments, &tasks, 20.0);
        assert!(done.steady, "{done:?}");
        assert_eq!(done.deployments.len(), 1);
        assert_eq!(
            done.deployments[0].rollout_state,
            DeploymentRolloutState::Completed
        );
    }

    #[test]
    fn repeated_failures_throttle_starts() {
        let d = [primary_a(DeploymentRolloutState::InProgress)];
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let mut t = task(i, "a", Phase::Stopped);
                t.failed = true;
                t.started_at = None;
                t
            })
            .collect();
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 3.0);
        assert_eq!(a.start, None);
        assert!(a.throttled_until.is_some());
        assert!(messages(&a)[0].contains("unable to consistently start tasks"));
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 1000.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
    }

    #[test]
    fn tasks_on_a_draining_instance_are_replaced_before_they_stop() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..4).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[0].draining = true;
        tasks[1].draining = true;
        let a = compute_service_actions(&spec(4, 100, 200), &d, &tasks, 1.0);
        assert_eq!(a.start, Some(("a".into(), 2)));
        assert!(a.stop.is_empty());
        assert!(!a.steady);
        tasks.extend((4..6).map(|i| task(i, "a", Phase::Running)));
        let a = compute_service_actions(&spec(4, 100, 200), &d, &tasks, 2.0);
        assert_eq!(a.start, None);
        let stopped: Vec<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
        assert_eq!(stopped, vec!["arn:t0", "arn:t1"]);
    }

    #[test]
    fn tasks_of_a_lost_instance_are_replaced_and_the_surplus_stopped_on_return() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..4).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[0].lost = true;
        let a = compute_service_actions(&spec(4, 100, 100), &d, &tasks, 1.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert!(a.stop.is_empty());
        tasks.push(task(4, "a", Phase::Running));
        let a = compute_service_actions(&spec(4, 100, 100), &d, &tasks, 2.0);
        assert!(a.steady && a.start.is_none() && a.stop.is_empty());
        tasks[0].lost = false;
        let mut s = spec(4, 100, 100);
        s.replaced = [String::from("t0")].into();
        let a = compute_service_actions(&s, &d, &tasks, 3.0);
        assert_eq!(a.stop.len(), 1);
        assert_eq!(a.stop[0].0, "arn:t0");
    }

    #[test]
    fn unhealthy_tasks_are_stopped_and_replaced() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..2).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[1].healthy = false;
        tasks[1].unhealthy = true;
        let a = compute_service_actions(&spec(2, 100, 200), &d, &tasks, 1.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert_eq!(
            a.stop,
            vec![(
                "arn:t1".to_string(),
                "Task failed container health checks".to_string()
            )]
        );
        assert!(messages(&a)
            .iter()
            .any(|e| e == "(service web) (task t1) failed container health checks."));
    }

    #[test]
    fn draining_stops_everything_then_goes_inactive() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut s = spec(3, 100, 200);
        s.draining = true;
        let tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        let a = compute_service_actions(&s, &d, &tasks, 1.0);
        assert_eq!(a.stop.len(), 3);
        assert!(a.inactive);
    }

    #[test]
    fn scale_in_never_stops_a_protected_task() {
        let d = [primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[0].protected = true;
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 1.0);
        let stopped: BTreeSet<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
        assert_eq!(stopped, BTreeSet::from(["arn:t1", "arn:t2"]));
        // Too few unprotected tasks: the service stays above its desired count, not steady.
        for t in tasks.iter_mut() {
            t.protected = true;
        }
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 1.0);
        assert!(a.stop.is_empty() && a.start.is_none() && !a.steady);
        // Protection removed (or expired): it converges.
        tasks[1].protected = false;
        tasks[2].protected = false;
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 2.0);
        assert_eq!(a.stop.len(), 2);
        assert!(a.stop.iter().all(|(arn, _)| arn != "arn:t0"));
    }

    #[test]
    fn a_deployment_waits_for_protected_old_tasks() {
        let d = rolling();
        let mut tasks: Vec<_> = (0..2).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[0].protected = true;
        tasks.extend((2..4).map(|i| task(i, "b", Phase::Running)));
        let a = compute_service_actions(&spec(2, 100, 200), &d, &tasks, 1.0);
        assert_eq!(a.stop.len(), 1);
        assert_eq!(a.stop[0].0, "arn:t1");
        assert!(!a.steady);
        assert_eq!(
            a.deployments.len(),
            2,
            "the old deployment stays while it has a task"
        );
        // A protected task failing its health checks is still replaced.
        tasks[0].unhealthy = true;
        tasks[0].healthy = false;
        let a = compute_service_actions(&spec(2, 100, 200), &d, &tasks, 2.0);
        assert!(a.stop.iter().any(|(arn, _)| arn == "arn:t0"));
    }

    proptest! {
        #[test]
        fn protected_healthy_tasks_are_never_stopped_unless_the_service_is_deleted(
            desired in 0u32..8,
            count in 0usize..10,
            protected in prop::collection::vec(any::<bool>(), 10),
            old in prop::collection::vec(any::<bool>(), 10),
            draining_instance in prop::collection::vec(any::<bool>(), 10),
        ) {
            let d = rolling();
            let tasks: Vec<TaskObs> = (0..count)
                .map(|i| {
                    let mut t = task(i, if old[i] { "a" } else { "b" }, Phase::Running);
                    t.protected = protected[i];
                    t.draining = draining_instance[i];
                    t
                })
                .collect();
            let a = compute_service_actions(&spec(desired, 50, 200), &d, &tasks, 1.0);
            for (arn, _) in &a.stop {
                let t = tasks.iter().find(|t| &t.arn == arn).unwrap();
                prop_assert!(!t.protected, "{arn} is protected");
            }
            // The unprotected surplus of the primary goes (down to the desired count).
            let primary_counted = tasks.iter().filter(|t| t.deployment == "b" && !t.draining).count();
            let primary_protected = tasks
                .iter()
                .filter(|t| t.deployment == "b" && !t.draining && t.protected)
                .count();
            let stopped_primary = a
                .stop
                .iter()
                .filter(|(arn, _)| tasks.iter().any(|t| &t.arn == arn && t.deployment == "b" && !t.draining))
                .count();
            let expected = primary_counted
                .saturating_sub(desired as usize)
                .min(primary_counted - primary_protected);
            prop_assert!(stopped_primary >= expected);
            let mut s = spec(desired, 50, 200);
            s.draining = true;
            let a = compute_service_actions(&s, &d, &tasks, 1.0);
            prop_assert_eq!(a.stop.len(), tasks.len());
        }
    }

    /// A tiny world: applies actions, then moves tasks forward at random.
    fn simulate(desired: u32, min: u32, max: u32, steps: Vec<u8>) -> Result<(), TestCaseError> {
        let s = spec(desired, min, max);
        let max_total = max_tasks(desired, max).max(desired);
        let min_ok = min_healthy(desired, min).min(desired);
        let mut deps = rolling().to_vec();
        let mut tasks: Vec<TaskObs> = (0..desired as usize)
            .map(|i| task(i, "a", Phase::Running))
            .collect();
        let mut next = tasks.len();
        for (round, r) in steps.iter().enumerate() {
            let healthy_before = tasks.iter().filter(|t| t.live() && t.healthy).count() as u32;
            let a = compute_service_actions(&s, &deps, &tasks, round as f64);
            let stop: BTreeSet<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
            prop_assert_eq!(stop.len(), a.stop.len());
            for t in &tasks {
                if stop.contains(t.arn.as_str()) {
                    prop_assert!(t.live());
                }
            }
            let healthy_after = tasks
                .iter()
                .filter(|t| t.live() && t.healthy && !stop.contains(t.arn.as_str()))
                .count() as u32;
            prop_assert!(healthy_after >= min_ok.min(healthy_before));
            deps = a.deployments.clone();
            for t in tasks.iter_mut() {
                if stop.contains(t.arn.as_str()) {
                    t.phase = Phase::Stopping;
                    t.healthy = false;
                }
            }
            if let Some((d, n)) = &a.start {
                for _ in 0..*n {
                    tasks.push(task(next, d, Phase::Pending));
                    next += 1;
                }
            }
            let unstopped = tasks.iter().filter(|t| t.phase != Phase::Stopped).count() as u32;
            prop_assert!(
                unstopped <= max_total.max(desired),
                "{unstopped} > {max_total}"
            );
            if a.steady {
                prop_assert_eq!(deps.len(), 1);
            }
            // The world moves: some pending tasks run, some stopping ones stop.
            for (i, t) in tasks.iter_mut().enumerate() {
                let flip = (usize::from(*r) + i) % 3 != 0;
                match t.phase {
                    Phase::Pending if flip => {
                        t.phase = Phase::Running;
                        t.healthy = true;
                    }
                    Phase::Stopping if flip => t.phase = Phase::Stopped,
                    _ => {}
                }
            }
        }
        // Settle: everything moves.
        for round in 0..50 {
            let a = compute_service_actions(&s, &deps, &tasks, 100.0 + f64::from(round));
            let stop: BTreeSet<String> = a.stop.iter().map(|(arn, _)| arn.clone()).collect();
            deps = a.deployments.clone();
            for t in tasks.iter_mut() {
                if stop.contains(&t.arn) || t.phase == Phase::Stopping {
                    t.phase = Phase::Stopped;
                    t.healthy = false;
                } else if t.phase == Phase::Pending {
                    t.phase = Phase::Running;
                    t.healthy = true;
                }
            }
            if let Some((d, n)) = &a.start {
                for _ in 0..*n {
                    tasks.push(task(next, d, Phase::Pending));
                    next += 1;
                }
            }
            if a.steady {
                prop_assert_eq!(deps.len(), 1);
                prop_assert_eq!(deps[0].id.as_str(), "b");
                return Ok(());
            }
        }
        // Without room to start or to stop (min 100 / max 100) no deployment can progress.
        prop_assert!(max_total <= desired && min_ok >= desired && desired > 0);
        Ok(())
    }

    proptest! {
        #[test]
        fn rolling_updates_keep_the_bounds_and_converge(
            desired in 0u32..12,
            min in prop::sample::select(vec![0u32, 50, 100]),
            max in prop::sample::select(vec![100u32, 150, 200]),
            steps in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            simulate(desired, min, max, steps)?;
        }
    }
}
