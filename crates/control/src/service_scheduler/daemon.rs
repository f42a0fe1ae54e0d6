//! DAEMON services: one task of the primary deployment on every eligible instance, replaced in
//! place.

use super::steps::{self, Conclusion, StopWhy};
use super::{min_healthy, Actions, DeploymentRecord, Phase, ServiceSpec, TaskObs};
use std::collections::BTreeSet;

/// The decisions for one DAEMON service: one task of the primary deployment on every eligible
/// instance (`eligible`: ACTIVE, agent connected). On an instance, a task of an older
/// deployment is stopped first (within `minimumHealthyPercent`, default 0 for DAEMON) and the
/// new one starts once nothing of the service is left running there; tasks on instances that
/// are no longer eligible are stopped; extra primary tasks are stopped. Steady when every
/// eligible instance runs exactly one healthy task of the only deployment.
pub fn compute_daemon_actions(
    spec: &ServiceSpec,
    deployments: &[DeploymentRecord],
    tasks: &[TaskObs],
    eligible: &[String],
    now: f64,
) -> Actions {
    let mut out = Actions::default();
    let tasks = steps::visible(tasks);
    let eligible: BTreeSet<&str> = if spec.draining {
        BTreeSet::new()
    } else {
        eligible.iter().map(String::as_str).collect()
    };
    let desired = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    let mut deps = deployments.to_vec();
    let failures = steps::count_failures(&mut deps, &tasks);
    let plan = plan(spec, &steps::primary_id(&deps), &tasks, &eligible);
    let stopping: Vec<(&TaskObs, StopWhy)> =
        plan.stop.iter().map(|t| (*t, StopWhy::Scaling)).collect();
    steps::stop(&stopping, &mut out);
    if !plan.start_on.is_empty() && steps::may_start(spec, &deps, failures, now, &mut out) {
        out.start_on = plan.start_on;
    }
    let c = Conclusion {
        tasks: &tasks,
        desired,
        primary_healthy: plan.primary_healthy,
        keep_failed: false,
        may_complete: true,
    };
    steps::conclude(c, spec, deps, now, &mut out);
    out
}

/// What happens on the instances.
struct Plan<'a> {
    /// Tasks to stop.
    stop: Vec<&'a TaskObs>,
    /// The instances to start a primary task on.
    start_on: Vec<String>,
    /// The healthy primary tasks kept (one per instance at most).
    primary_healthy: u32,
}

/// Instance by instance: everything on an instance no longer eligible stops; on an eligible one,
/// one primary task is kept and the others stop (healthy ones within the minimum), and a new one
/// starts once nothing of the service is left there.
fn plan<'a>(
    spec: &ServiceSpec,
    primary: &str,
    tasks: &'a [TaskObs],
    eligible: &BTreeSet<&str>,
) -> Plan<'a> {
    let desired = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    let min_ok = min_healthy(desired, spec.minimum_healthy_percent).min(desired);
    let live = steps::live(tasks);
    let mut healthy_left =
        u32::try_from(live.iter().filter(|t| t.healthy).count()).unwrap_or(u32::MAX);
    let mut p = Plan {
        stop: Vec::new(),
        start_on: Vec::new(),
        primary_healthy: 0,
    };
    for t in live
        .iter()
        .filter(|t| !eligible.contains(t.instance.as_str()))
    {
        if t.healthy {
            healthy_left = healthy_left.saturating_sub(1);
        }
        p.stop.push(t);
    }
    for inst in eligible {
        let mut mine: Vec<&TaskObs> = live
            .iter()
            .copied()
            .filter(|t| t.instance == *inst)
            .collect();
        mine.sort_by(|a, b| b.healthy.cmp(&a.healthy).then_with(|| a.arn.cmp(&b.arn)));
        let mut kept_primary = false;
        let mut others = Vec::new();
        for t in mine {
            if t.deployment == primary && !t.draining && !kept_primary {
                kept_primary = true;
                if t.healthy {
                    p.primary_healthy += 1;
                }
            } else {
                others.push(t);
            }
        }
        let mut all_others_stop = true;
        for t in others {
            if t.healthy {
                if healthy_left <= min_ok && !kept_primary {
                    all_others_stop = false;
                    continue;
                }
                healthy_left -= 1;
            }
            p.stop.push(t);
        }
        let busy = tasks
            .iter()
            .any(|t| t.instance == *inst && t.phase == Phase::Stopping);
        if !kept_primary && all_others_stop && !busy {
            let any_live_left = live
                .iter()
                .any(|t| t.instance == *inst && !p.stop.iter().any(|s| s.arn == t.arn));
            if !any_live_left && !p.stop.iter().any(|s| s.instance == *inst) {
                p.start_on.push((*inst).to_string());
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{primary_a, rolling, spec, task};
    use super::*;
    use flotilla_model::shapes::DeploymentRolloutState;

    #[test]
    fn daemon_runs_one_task_per_eligible_instance_and_replaces_old_ones_in_place() {
        let d = [primary_a(DeploymentRolloutState::InProgress)];
        let mut s = spec(0, 0, 100);
        let eligible: Vec<String> = vec!["i0".into(), "i1".into(), "i2".into()];
        let a = compute_daemon_actions(&s, &d, &[], &eligible, 1.0);
        assert_eq!(a.start_on, eligible);
        let mut tasks: Vec<_> = (0..3)
            .map(|i| {
                let mut t = task(i, "a", Phase::Running);
                t.instance = format!("i{i}");
                t
            })
            .collect();
        let a = compute_daemon_actions(&s, &d, &tasks, &eligible, 2.0);
        assert!(
            a.steady && a.start_on.is_empty() && a.stop.is_empty(),
            "{a:?}"
        );
        assert_eq!(a.deployments[0].desired_count, 3);
        // A new deployment: old tasks stop first (min 0), then new ones start.
        s.steady = true;
        let d2 = rolling();
        let a = compute_daemon_actions(&s, &d2, &tasks, &eligible, 3.0);
        assert_eq!(a.stop.len(), 3);
        assert!(a.start_on.is_empty());
        for t in tasks.iter_mut() {
            t.phase = Phase::Stopped;
            t.healthy = false;
        }
        let a = compute_daemon_actions(&s, &d2, &tasks, &eligible, 4.0);
        assert_eq!(a.start_on, eligible);
        // An instance that goes away loses its task.
        let a = compute_daemon_actions(&s, &d, &tasks[..0], &eligible[..2], 5.0);
        assert_eq!(a.start_on.len(), 2);
    }
}
