//! The steps REPLICA and DAEMON services share: what the scheduler sees, the primary's failures
//! and the circuit breaker, the stops, the throttle on starts, and the conclusion of a round
//! (counts, deployments that emptied, completion, steadiness). [`super::replica`] and
//! [`super::daemon`] differ only in how they choose the tasks to stop and to start.

use super::rollback::{rollback_target, stop_primary, Rollback, StoppedBy};
use super::{
    circuit_breaker_threshold, consecutive_failures, throttle_seconds, Actions, DeploymentRecord,
    Phase, ServiceEvent, ServiceSpec, TaskObs,
};
use flotilla_model::shapes::DeploymentRolloutState;

/// The tasks the scheduler counts: a task whose instance's agent is lost counts as gone until
/// the agent returns (a stopped one still counts, for its failure).
pub(super) fn visible(tasks: &[TaskObs]) -> Vec<TaskObs> {
    tasks
        .iter()
        .filter(|t| !t.lost || t.phase == Phase::Stopped)
        .cloned()
        .collect()
}

/// The tasks that have not stopped and are not stopping.
pub(super) fn live(tasks: &[TaskObs]) -> Vec<&TaskObs> {
    tasks.iter().filter(|t| t.live()).collect()
}

/// The id of the primary deployment (the first).
pub(super) fn primary_id(deps: &[DeploymentRecord]) -> String {
    deps.first().map(|d| d.id.clone()).unwrap_or_default()
}

/// The primary's consecutive failures: how many, and when the last one stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failures {
    pub(super) count: u32,
    last: Option<f64>,
}

/// Counts the primary's consecutive failures into its `failed_tasks`.
pub(super) fn count_failures(deps: &mut [DeploymentRecord], tasks: &[TaskObs]) -> Failures {
    let (count, last) = consecutive_failures(&primary_id(deps), tasks);
    if let Some(p) = deps.first_mut() {
        p.failed_tasks = count;
    }
    Failures { count, last }
}

/// The circuit breaker (when enabled): an IN_PROGRESS primary with too many failures FAILS and,
/// with `rollback`, a new primary returns to the last COMPLETED deployment.
pub(super) fn circuit_breaker(
    spec: &ServiceSpec,
    deps: &mut Vec<DeploymentRecord>,
    failures: Failures,
    desired: u32,
    now: f64,
    out: &mut Actions,
) {
    let (Some(rollback), Some(p)) = (spec.circuit_breaker, deps.first()) else {
        return;
    };
    if p.rollout_state != DeploymentRolloutState::InProgress
        || failures.count < circuit_breaker_threshold(desired)
        || spec.draining
    {
        return;
    }
    let back = rollback_target(spec.last_completed.as_ref(), p)
        .filter(|_| rollback)
        .map(|(to, td)| Rollback {
            to: to.clone(),
            task_definition: td.clone(),
            id: spec.next_deployment_id.clone(),
            desired,
        });
    let events = stop_primary(deps, StoppedBy::CircuitBreaker, back, now);
    out.events.extend(events);
}

/// Whether starts may be made now: the primary has not FAILED, the service is not being
/// deleted, and starts are not throttled (checked last: a throttle is recorded with its event).
pub(super) fn may_start(
    spec: &ServiceSpec,
    deps: &[DeploymentRecord],
    failures: Failures,
    now: f64,
    out: &mut Actions,
) -> bool {
    let primary_failed = deps
        .first()
        .is_some_and(|d| d.rollout_state == DeploymentRolloutState::Failed);
    !primary_failed && !spec.draining && !throttled(failures, now, out)
}

/// Whether starts must wait after the primary's consecutive failures; if so, records until
/// when, with ECS's event.
fn throttled(failures: Failures, now: f64, out: &mut Actions) -> bool {
    let wait = throttle_seconds(failures.count);
    let until = failures.last.map(|t| t + wait);
    let throttled = until.is_some_and(|t| now < t) && wait > 0.0;
    if throttled {
        out.throttled_until = until;
        out.events.push(ServiceEvent::Throttled);
    }
    throttled
}

/// Why the scheduler stops a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopWhy {
    /// Scaling or replacing: it belongs to an older deployment, a DRAINING or no longer
    /// eligible instance, or is one too many.
    Scaling,
    /// It failed its health checks.
    Unhealthy,
}

/// Stops `stopping` (each with why), with ECS's events.
pub(super) fn stop(stopping: &[(&TaskObs, StopWhy)], out: &mut Actions) {
    for (t, why) in stopping {
        let reason = match why {
            StopWhy::Unhealthy => match &t.unhealthy_in {
                Some(tg) => {
                    out.events.push(ServiceEvent::TaskUnhealthyInTargetGroup {
                        task: t.id.clone(),
                        target_group: tg.clone(),
                    });
                    format!("Task failed ELB health checks in (target-group {tg})")
                }
                None => {
                    out.events
                        .push(ServiceEvent::TaskUnhealthy { task: t.id.clone() });
                    "Task failed container health checks".to_string()
                }
            },
            StopWhy::Scaling => format!(
                "Scaling activity initiated by (deployment {})",
                t.deployment
            ),
        };
        out.stop.push((t.arn.clone(), reason));
    }
    if !stopping.is_empty() {
        out.events.push(ServiceEvent::Stopped {
            tasks: stopping.iter().map(|(t, _)| t.id.clone()).collect(),
        });
    }
}

/// How the round ends, once its stops and starts are decided.
pub(super) struct Conclusion<'a> {
    /// The tasks seen.
    pub tasks: &'a [TaskObs],
    /// The desired count.
    pub desired: u32,
    /// The primary's healthy tasks that stay.
    pub primary_healthy: u32,
    /// A FAILED deployment stays listed while the primary is IN_PROGRESS (its rollback).
    pub keep_failed: bool,
    /// The primary may COMPLETE if settled (a blue/green deployment only in CLEAN_UP).
    pub may_complete: bool,
}

/// Concludes a round: refreshes the counts, drops the deployments that emptied, and when the
/// service is settled (one deployment with tasks, nothing to start or stop, exactly `desired`
/// tasks, all healthy) COMPLETES the primary and reports steadiness. A draining service with
/// nothing left running becomes INACTIVE. Stores the deployments in `out`.
pub(super) fn conclude(
    c: Conclusion<'_>,
    spec: &ServiceSpec,
    mut deps: Vec<DeploymentRecord>,
    now: f64,
    out: &mut Actions,
) {
    let Conclusion {
        tasks,
        desired,
        primary_healthy,
        keep_failed,
        may_complete,
    } = c;
    let primary = primary_id(&deps);
    refresh_counts(&mut deps, tasks, &primary, desired, now);
    let has_tasks = |d: &DeploymentRecord| {
        d.id == primary
            || tasks
                .iter()
                .any(|t| t.deployment == d.id && t.phase != Phase::Stopped)
    };
    let primary_in_progress = deps
        .first()
        .is_some_and(|d| d.rollout_state == DeploymentRolloutState::InProgress);
    deps.retain(|d| {
        has_tasks(d)
            || (keep_failed
                && primary_in_progress
                && d.rollout_state == DeploymentRolloutState::Failed)
    });
    let unstopped = tasks.iter().filter(|t| t.phase != Phase::Stopped).count();
    let settled = may_complete
        && deps.iter().filter(|d| has_tasks(d)).count() == 1
        && out.start.is_none()
        && out.start_on.is_empty()
        && out.stop.is_empty()
        && u32::try_from(unstopped).unwrap_or(u32::MAX) == desired
        && primary_healthy == desired;
    if settled {
        deps.retain(|d| has_tasks(d));
    }
    settle(&mut deps, settled, spec, now, out);
    out.inactive = spec.draining
        && live(tasks)
            .iter()
            .all(|t| out.stop.iter().any(|(arn, _)| arn == &t.arn));
    out.deployments = deps;
}

/// A settled service: its IN_PROGRESS primary deployment COMPLETES and the service is steady
/// (unless it is draining), with ECS's events for both.
fn settle(
    deps: &mut [DeploymentRecord],
    settled: bool,
    spec: &ServiceSpec,
    now: f64,
    out: &mut Actions,
) {
    // With deployment alarms, a settled primary is watched for their bake time first.
    let baked = deps.first().is_none_or(|p| {
        p.rollout_state != DeploymentRolloutState::InProgress || super::alarms::baked(spec, p, now)
    });
    let settled = settled && baked;
    if let Some(p) = deps.first_mut() {
        if settled && p.rollout_state == DeploymentRolloutState::InProgress && !spec.draining {
            p.rollout_state = DeploymentRolloutState::Completed;
            p.rollout_state_reason = "ECS deployment completed.".into();
            p.updated_at = now;
            out.completed = Some((p.id.clone(), p.task_definition.clone()));
            out.events.push(ServiceEvent::DeploymentCompleted {
                deployment: p.id.clone(),
            });
        }
    }
    out.steady = settled && !spec.draining;
    if out.steady && !spec.steady {
        out.events.push(ServiceEvent::Steady);
    }
}

/// Sets each deployment's pending and running counts from the tasks, and its desired count
/// (the desired count for the primary, 0 for the others), touching `updated_at` only when
/// something changed.
fn refresh_counts(
    deps: &mut [DeploymentRecord],
    tasks: &[TaskObs],
    primary_id: &str,
    desired: u32,
    now: f64,
) {
    for d in deps.iter_mut() {
        let mine = || tasks.iter().filter(|t| t.deployment == d.id);
        let pending =
            u32::try_from(mine().filter(|t| t.phase == Phase::Pending).count()).unwrap_or(0);
        let running = u32::try_from(
            mine()
                .filter(|t| matches!(t.phase, Phase::Running | Phase::Stopping))
                .count(),
        )
        .unwrap_or(0);
        let target = if d.id == primary_id { desired } else { 0 };
        if (d.pending_count, d.running_count, d.desired_count) != (pending, running, target) {
            d.pending_count = pending;
            d.running_count = running;
            d.desired_count = target;
            d.updated_at = now;
        }
    }
}
