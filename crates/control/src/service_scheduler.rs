//! The pure decisions of the service scheduler (REPLICA services, rolling `ECS` deployments).
//!
//! [`compute_service_actions`] takes the desired state of one service (its [`ServiceSpec`] and
//! deployments, newest first), the observed state of its tasks ([`TaskObs`]) and the time, and
//! answers what to do ([`Actions`]): how many tasks to start for the primary deployment, which
//! tasks to stop and why, the deployments as they should now be stored, and the events to add.
//! It is level-triggered: calling it again on the same inputs after the actions were applied
//! asks for nothing more. The async driver (`flotilla_controllers::service_loop`) reads, calls, and applies.
//!
//! The rules (ECS's deployment configuration, spec 11.4):
//! - at most `floor(desired * maximumPercent / 100)` tasks that have not stopped (PENDING,
//!   RUNNING or still stopping) exist: a start never takes the count above it;
//! - while replacing, at least `ceil(desired * minimumHealthyPercent / 100)` healthy tasks stay:
//!   an old deployment's healthy task is stopped only when enough healthy tasks remain;
//!   unhealthy (PENDING) old tasks may always be stopped;
//! - surplus tasks are stopped unhealthy first, then from the AZ with the most tasks of the
//!   service, then from the instance with the most;
//! - an old deployment with no task left that has not stopped disappears (INACTIVE);
//! - the primary is COMPLETED, and the service steady, when it is the only deployment and
//!   exactly `desired` tasks exist, all healthy;
//! - `failedTasks` counts the primary's tasks that stopped without ever running (or unhealthy),
//!   after its latest task that reached RUNNING (consecutive failures);
//! - the circuit breaker (when enabled) trips an IN_PROGRESS primary at
//!   `min(max(ceil(desired / 2), 3), 200)` failures: FAILED, no more starts, and with `rollback`
//!   a new primary on the last COMPLETED deployment's task definition;
//! - after 3 consecutive failures starts are throttled (exponential, capped at 15 minutes).

use flotilla_model::shapes::DeploymentRolloutState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The status of a deployment of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentStatus {
    /// The newest deployment: the one the scheduler starts tasks for.
    Primary,
    /// An older deployment whose tasks are being replaced.
    Active,
}

impl DeploymentStatus {
    /// The wire string.
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            DeploymentStatus::Primary => "PRIMARY",
            DeploymentStatus::Active => "ACTIVE",
        }
    }
}

/// One deployment as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// `ecs-svc/<19 digits>`; the tasks it starts carry it as `startedBy`.
    pub id: String,
    /// PRIMARY or ACTIVE.
    pub status: DeploymentStatus,
    /// The task definition ARN.
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: DeploymentRolloutState,
    /// Why.
    pub rollout_state_reason: String,
    /// The desired count (the service's, for the primary; 0 for old ones).
    pub desired_count: u32,
    /// Tasks PENDING (observed).
    pub pending_count: u32,
    /// Tasks RUNNING (observed).
    pub running_count: u32,
    /// Consecutive failures.
    pub failed_tasks: u32,
    /// Created (epoch seconds).
    pub created_at: f64,
    /// Last changed (epoch seconds).
    pub updated_at: f64,
    /// For a deployment the circuit breaker created to roll back: the id of the deployment it
    /// returns to. A link, so nothing has to read it back out of the reason text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolls_back_to: Option<String>,
}

/// What the service wants.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Service name (for event messages).
    pub name: String,
    /// `desiredCount`.
    pub desired: u32,
    /// `maximumPercent`.
    pub maximum_percent: u32,
    /// `minimumHealthyPercent`.
    pub minimum_healthy_percent: u32,
    /// The circuit breaker: `None` when disabled, else whether it rolls back.
    pub circuit_breaker: Option<bool>,
    /// DeleteService was called: every task goes.
    pub draining: bool,
    /// The last COMPLETED deployment (id, task definition), for rollbacks.
    pub last_completed: Option<(String, String)>,
    /// Whether the service was steady when last reconciled.
    pub steady: bool,
    /// The id a new deployment takes if one is created now (rollback).
    pub next_deployment_id: String,
}

/// Where a task of the service is in its life, as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Desired RUNNING, not RUNNING yet.
    Pending,
    /// Desired RUNNING and RUNNING.
    Running,
    /// Desired STOPPED, not stopped yet.
    Stopping,
    /// STOPPED.
    Stopped,
}

/// One task of the service.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskObs {
    /// Task ARN.
    pub arn: String,
    /// Task id (for event messages).
    pub id: String,
    /// The deployment that started it (its `startedBy`).
    pub deployment: String,
    /// Phase.
    pub phase: Phase,
    /// RUNNING and its essential containers' health checks (if any) HEALTHY.
    pub healthy: bool,
    /// Availability zone.
    pub az: String,
    /// Container instance id.
    pub instance: String,
    /// When it reached RUNNING, if it did.
    pub started_at: Option<f64>,
    /// When it stopped, if it did.
    pub stopped_at: Option<f64>,
    /// It stopped as a failure (never ran, or unhealthy), not by the scheduler or a user.
    pub failed: bool,
    /// Why it stopped, when neither the scheduler nor a user stopped it.
    pub unexpected_stop: Option<String>,
    /// Its container instance is DRAINING: the task is replaced like an old deployment's.
    pub draining: bool,
    /// Its container instance's agent is disconnected: until it returns, the task counts as
    /// gone (it is replaced elsewhere); when it returns, a surplus is stopped.
    pub lost: bool,
    /// RUNNING but failing its health checks past the grace period: stopped and replaced.
    pub unhealthy: bool,
}

impl TaskObs {
    fn live(&self) -> bool {
        matches!(self.phase, Phase::Pending | Phase::Running)
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actions {
    /// Tasks to start for the primary deployment (its id, how many).
    pub start: Option<(String, u32)>,
    /// DAEMON: the instances (ids) to start one primary task on.
    pub start_on: Vec<String>,
    /// Tasks to stop: ARN and reason.
    pub stop: Vec<(String, String)>,
    /// The deployments to store, newest first.
    pub deployments: Vec<DeploymentRecord>,
    /// Event messages to add, oldest first.
    pub events: Vec<String>,
    /// The service is steady.
    pub steady: bool,
    /// A draining service has nothing left: it becomes INACTIVE.
    pub inactive: bool,
    /// The deployment (id, task definition) that just COMPLETED, if any.
    pub completed: Option<(String, String)>,
    /// Starts are throttled until then (epoch seconds).
    pub throttled_until: Option<f64>,
}

/// `floor(desired * max / 100)`.
pub fn max_tasks(desired: u32, maximum_percent: u32) -> u32 {
    u32::try_from(u64::from(desired) * u64::from(maximum_percent) / 100).unwrap_or(u32::MAX)
}

/// `ceil(desired * min / 100)`.
pub fn min_healthy(desired: u32, minimum_healthy_percent: u32) -> u32 {
    u32::try_from((u64::from(desired) * u64::from(minimum_healthy_percent)).div_ceil(100))
        .unwrap_or(u32::MAX)
}

/// The circuit breaker's failed-task threshold: `min(max(ceil(desired / 2), 3), 200)`.
pub fn circuit_breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// How long starts wait after `failures` consecutive failures (none below 3).
pub fn throttle_seconds(failures: u32) -> f64 {
    if failures < 3 {
        return 0.0;
    }
    let exp = (failures - 3).min(10);
    (5.0 * f64::from(1u32 << exp)).min(900.0)
}

fn task_list(ids: &[&TaskObs]) -> String {
    ids.iter()
        .map(|t| format!("(task {})", t.id))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Consecutive failures of a deployment's tasks: failed stops after its latest RUNNING start.
pub fn consecutive_failures(deployment: &str, tasks: &[TaskObs]) -> (u32, Option<f64>) {
    let mine: Vec<&TaskObs> = tasks
        .iter()
        .filter(|t| t.deployment == deployment)
        .collect();
    let last_run = mine
        .iter()
        .filter(|t| !t.failed)
        .filter_map(|t| t.started_at)
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.max(s)))
        });
    let failed: Vec<f64> = mine
        .iter()
        .filter(|t| t.failed)
        .filter_map(|t| t.stopped_at)
        .filter(|s| last_run.is_none_or(|r| *s > r))
        .collect();
    let latest = failed.iter().copied().fold(None, |acc: Option<f64>, s| {
        Some(acc.map_or(s, |a| a.max(s)))
    });
    (u32::try_from(failed.len()).unwrap_or(u32::MAX), latest)
}

/// The decisions for one service (see the module docs).
pub fn compute_service_actions(
    spec: &ServiceSpec,
    deployments: &[DeploymentRecord],
    tasks: &[TaskObs],
    now: f64,
) -> Actions {
    let mut out = Actions::default();
    let name = &spec.name;
    let seen: Vec<TaskObs> = tasks
        .iter()
        .filter(|t| !t.lost || t.phase == Phase::Stopped)
        .cloned()
        .collect();
    let tasks = seen.as_slice();
    let desired = if spec.draining { 0 } else { spec.desired };
    let max_total = max_tasks(desired, spec.maximum_percent).max(desired);
    let min_ok = min_healthy(desired, spec.minimum_healthy_percent).min(desired);
    let mut deps: Vec<DeploymentRecord> = deployments.to_vec();
    let primary_id = deps.first().map(|d| d.id.clone()).unwrap_or_default();

    // Circuit breaker and rollback.
    let (failures, last_failure) = consecutive_failures(&primary_id, tasks);
    if let Some(p) = deps.first_mut() {
        p.failed_tasks = failures;
    }
    if let (Some(rollback), Some(p)) = (spec.circuit_breaker, deps.first().cloned()) {
        if p.rollout_state == DeploymentRolloutState::InProgress
            && failures >= circuit_breaker_threshold(desired)
            && !spec.draining
        {
            if let Some(first) = deps.first_mut() {
                first.rollout_state = DeploymentRolloutState::Failed;
                first.rollout_state_reason =
                    "ECS deployment circuit breaker: tasks failed to start.".into();
                first.updated_at = now;
            }
            out.events.push(format!(
                "(service {name}) (deployment {}) deployment failed: tasks failed to start.",
                p.id
            ));
            if let Some((old_id, td)) = spec.last_completed.as_ref().filter(|_| rollback) {
                if td != &p.task_definition || old_id != &p.id {
                    for d in deps.iter_mut() {
                        d.status = DeploymentStatus::Active;
                    }
                    deps.insert(
                        0,
                        DeploymentRecord {
                            id: spec.next_deployment_id.clone(),
                            status: DeploymentStatus::Primary,
                            task_definition: td.clone(),
                            rollout_state: DeploymentRolloutState::InProgress,
                            rollout_state_reason: format!(
                                "ECS deployment circuit breaker: rolling back to deploymentId {old_id}."
                            ),
                            desired_count: desired,
                            pending_count: 0,
                            running_count: 0,
                            failed_tasks: 0,
                            created_at: now,
                            updated_at: now,
                            rolls_back_to: Some(old_id.clone()),
                        },
                    );
                    out.events.push(format!(
                        "(service {name}) rolling back to deployment {old_id}."
                    ));
                }
            }
        }
    }
    let primary_id = deps.first().map(|d| d.id.clone()).unwrap_or_default();
    let primary_failed = deps
        .first()
        .is_some_and(|d| d.rollout_state == DeploymentRolloutState::Failed);

    let live: Vec<&TaskObs> = tasks.iter().filter(|t| t.live()).collect();
    let known: BTreeSet<&str> = deps.iter().map(|d| d.id.as_str()).collect();
    let mut stopping: BTreeSet<&str> = BTreeSet::new();
    let mut stopped_tasks: Vec<&TaskObs> = Vec::new();

    // 1. Surplus of the primary.
    let mut p_live: Vec<&TaskObs> = live
        .iter()
        .copied()
        .filter(|t| t.deployment == primary_id && !t.draining && !t.unhealthy)
        .collect();
    let p_count = u32::try_from(p_live.len()).unwrap_or(u32::MAX);
    if p_count > desired {
        surplus_order(&mut p_live, &live);
        for t in p_live.iter().take((p_count - desired) as usize) {
            stopping.insert(t.arn.as_str());
            stopped_tasks.push(t);
        }
    }
    // 2. Old deployments' tasks and tasks on DRAINING instances: unhealthy ones always, healthy
    //    ones down to the minimum.
    let mut healthy_left = u32::try_from(
        live.iter()
            .filter(|t| t.healthy && !stopping.contains(t.arn.as_str()))
            .count(),
    )
    .unwrap_or(u32::MAX);
    let mut old: Vec<&TaskObs> = live
        .iter()
        .copied()
        .filter(|t| {
            t.deployment != primary_id
                || !known.contains(t.deployment.as_str())
                || t.draining
                || t.unhealthy
        })
        .collect();
    surplus_order(&mut old, &live);
    for t in old {
        if t.healthy {
            if healthy_left <= min_ok {
                continue;
            }
            healthy_left -= 1;
        }
        stopping.insert(t.arn.as_str());
        stopped_tasks.push(t);
    }
    for t in &stopped_tasks {
        if t.unhealthy {
            out.events.push(format!(
                "(service {name}) (task {}) failed container health checks.",
                t.id
            ));
            out.stop
                .push((t.arn.clone(), "Task failed container health checks".into()));
        } else {
            out.stop.push((
                t.arn.clone(),
                format!(
                    "Scaling activity initiated by (deployment {})",
                    t.deployment
                ),
            ));
        }
    }
    if !stopped_tasks.is_empty() {
        out.events.push(format!(
            "(service {name}) has stopped {} running tasks: {}.",
            stopped_tasks.len(),
            task_list(&stopped_tasks)
        ));
    }

    // 3. Starts for the primary, within maximumPercent.
    let unstopped = u32::try_from(tasks.iter().filter(|t| t.phase != Phase::Stopped).count())
        .unwrap_or(u32::MAX);
    let p_kept = p_count.min(desired);
    let want = desired.saturating_sub(p_kept);
    let room = max_total.saturating_sub(unstopped);
    let n = want.min(room);
    if n > 0
        && !primary_failed
        && !spec.draining
        && !throttle(name, failures, last_failure, now, &mut out)
    {
        out.start = Some((primary_id.clone(), n));
    }

    // 4. Tasks that stopped on their own since the deployment's counts last changed (their
    //    stop changes the counts, so each is told once).
    for d in deployments {
        for t in tasks.iter().filter(|t| t.deployment == d.id) {
            if let (Some(why), Some(at)) = (&t.unexpected_stop, t.stopped_at) {
                if t.phase == Phase::Stopped && at > d.updated_at {
                    out.events.push(format!(
                        "(service {name}) (task {}) stopped unexpectedly: {}.",
                        t.id,
                        why.trim_end_matches('.')
                    ));
                }
            }
        }
    }
    // 5. Counts, deployments that emptied, completion, steadiness.
    refresh_counts(&mut deps, tasks, &primary_id, desired, now);
    let primary_in_progress = deps
        .first()
        .is_some_and(|d| d.rollout_state == DeploymentRolloutState::InProgress);
    deps.retain(|d| {
        d.id == primary_id
            || (d.rollout_state == DeploymentRolloutState::Failed && primary_in_progress)
            || tasks
                .iter()
                .any(|t| t.deployment == d.id && t.phase != Phase::Stopped)
    });
    let p_healthy = live
        .iter()
        .filter(|t| {
            t.deployment == primary_id
                && t.healthy
                && !t.draining
                && !stopping.contains(t.arn.as_str())
        })
        .count();
    // A FAILED deployment stays listed while the rollback is in progress; once the primary
    // settles, deployments without tasks go.
    let has_tasks = |d: &DeploymentRecord| {
        d.id == primary_id
            || tasks
                .iter()
                .any(|t| t.deployment == d.id && t.phase != Phase::Stopped)
    };
    let settled = deps.iter().filter(|d| has_tasks(d)).count() == 1
        && out.start.is_none()
        && out.stop.is_empty()
        && unstopped == desired
        && u32::try_from(p_healthy).unwrap_or(0) == desired;
    if settled {
        deps.retain(|d| has_tasks(d));
    }
    settle(&mut deps, settled, spec, now, &mut out);
    out.inactive = spec.draining && live.iter().all(|t| stopping.contains(t.arn.as_str()));
    out.deployments = deps;
    out
}

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
    let name = &spec.name;
    let seen: Vec<TaskObs> = tasks
        .iter()
        .filter(|t| !t.lost || t.phase == Phase::Stopped)
        .cloned()
        .collect();
    let tasks = seen.as_slice();
    let eligible: BTreeSet<&str> = if spec.draining {
        BTreeSet::new()
    } else {
        eligible.iter().map(String::as_str).collect()
    };
    let desired = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    let min_ok = min_healthy(desired, spec.minimum_healthy_percent).min(desired);
    let mut deps: Vec<DeploymentRecord> = deployments.to_vec();
    let primary_id = deps.first().map(|d| d.id.clone()).unwrap_or_default();
    let (failures, last_failure) = consecutive_failures(&primary_id, tasks);
    if let Some(p) = deps.first_mut() {
        p.failed_tasks = failures;
    }
    let primary_failed = deps
        .first()
        .is_some_and(|d| d.rollout_state == DeploymentRolloutState::Failed);
    let live: Vec<&TaskObs> = tasks.iter().filter(|t| t.live()).collect();
    let mut healthy_left =
        u32::try_from(live.iter().filter(|t| t.healthy).count()).unwrap_or(u32::MAX);
    let mut stopping: Vec<&TaskObs> = Vec::new();
    // Instances no longer eligible: everything goes.
    for t in live
        .iter()
        .filter(|t| !eligible.contains(t.instance.as_str()))
    {
        if t.healthy {
            healthy_left = healthy_left.saturating_sub(1);
        }
        stopping.push(t);
    }
    let mut start_on = Vec::new();
    let mut primary_healthy = 0u32;
    for inst in &eligible {
        let mut mine: Vec<&TaskObs> = live
            .iter()
            .copied()
            .filter(|t| t.instance == *inst)
            .collect();
        mine.sort_by(|a, b| b.healthy.cmp(&a.healthy).then_with(|| a.arn.cmp(&b.arn)));
        let mut kept_primary = false;
        let mut others = Vec::new();
        for t in mine {
            if t.deployment == primary_id && !t.draining && !kept_primary {
                kept_primary = true;
                if t.healthy {
                    primary_healthy += 1;
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
            stopping.push(t);
        }
        let busy = tasks
            .iter()
            .any(|t| t.instance == *inst && t.phase == Phase::Stopping);
        if !kept_primary && all_others_stop && !busy {
            let any_live_left = live
                .iter()
                .any(|t| t.instance == *inst && !stopping.iter().any(|s| s.arn == t.arn));
            if !any_live_left && !stopping.iter().any(|s| s.instance == *inst) {
                start_on.push((*inst).to_string());
            }
        }
    }
    for t in &stopping {
        out.stop.push((
            t.arn.clone(),
            format!(
                "Scaling activity initiated by (deployment {})",
                t.deployment
            ),
        ));
    }
    if !stopping.is_empty() {
        out.events.push(format!(
            "(service {name}) has stopped {} running tasks: {}.",
            stopping.len(),
            task_list(&stopping)
        ));
    }
    if !start_on.is_empty()
        && !primary_failed
        && !throttle(name, failures, last_failure, now, &mut out)
    {
        out.start_on = start_on;
    }
    refresh_counts(&mut deps, tasks, &primary_id, desired, now);
    let has_tasks = |d: &DeploymentRecord| {
        d.id == primary_id
            || tasks
                .iter()
                .any(|t| t.deployment == d.id && t.phase != Phase::Stopped)
    };
    deps.retain(|d| has_tasks(d));
    let unstopped = u32::try_from(tasks.iter().filter(|t| t.phase != Phase::Stopped).count())
        .unwrap_or(u32::MAX);
    let settled = deps.len() == 1
        && out.start_on.is_empty()
        && out.stop.is_empty()
        && unstopped == desired
        && primary_healthy == desired;
    settle(&mut deps, settled, spec, now, &mut out);
    out.inactive = spec.draining && live.iter().all(|t| stopping.iter().any(|s| s.arn == t.arn));
    out.deployments = deps;
    out
}

/// Whether starts must wait after `failures` consecutive failures (the last at
/// `last_failure`); if so, records until when, with ECS's event.
fn throttle(
    name: &str,
    failures: u32,
    last_failure: Option<f64>,
    now: f64,
    out: &mut Actions,
) -> bool {
    let until = last_failure.map(|t| t + throttle_seconds(failures));
    let throttled = until.is_some_and(|t| now < t) && throttle_seconds(failures) > 0.0;
    if throttled {
        out.throttled_until = until;
        out.events.push(format!(
            "(service {name}) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
        ));
    }
    throttled
}

/// A settled service: its IN_PROGRESS primary deployment COMPLETES and the service is steady
/// (unless it is draining), with ECS's events for both (REPLICA and DAEMON alike).
fn settle(
    deps: &mut [DeploymentRecord],
    settled: bool,
    spec: &ServiceSpec,
    now: f64,
    out: &mut Actions,
) {
    let name = &spec.name;
    if let Some(p) = deps.first_mut() {
        if settled && p.rollout_state == DeploymentRolloutState::InProgress && !spec.draining {
            p.rollout_state = DeploymentRolloutState::Completed;
            p.rollout_state_reason = "ECS deployment completed.".into();
            p.updated_at = now;
            out.completed = Some((p.id.clone(), p.task_definition.clone()));
            out.events.push(format!(
                "(service {name}) (deployment {}) deployment completed.",
                p.id
            ));
        }
    }
    out.steady = settled && !spec.draining;
    if out.steady && !spec.steady {
        out.events
            .push(format!("(service {name}) has reached a steady state."));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dep(
        id: &str,
        status: DeploymentStatus,
        rollout: DeploymentRolloutState,
    ) -> DeploymentRecord {
        DeploymentRecord {
            id: id.into(),
            status,
            task_definition: format!("td-{id}"),
            rollout_state: rollout,
            rollout_state_reason: String::new(),
            desired_count: 0,
            pending_count: 0,
            running_count: 0,
            failed_tasks: 0,
            created_at: 0.0,
            updated_at: 0.0,
            rolls_back_to: None,
        }
    }

    fn spec(desired: u32, min: u32, max: u32) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            desired,
            maximum_percent: max,
            minimum_healthy_percent: min,
            circuit_breaker: None,
            draining: false,
            last_completed: None,
            steady: false,
            next_deployment_id: "ecs-svc/9".into(),
        }
    }

    fn task(n: usize, dep: &str, phase: Phase) -> TaskObs {
        TaskObs {
            arn: format!("arn:t{n}"),
            id: format!("t{n}"),
            deployment: dep.into(),
            phase,
            healthy: phase == Phase::Running,
            az: format!("az{}", n % 2),
            instance: format!("i{}", n % 3),
            started_at: (phase != Phase::Pending).then_some(1.0),
            stopped_at: (phase == Phase::Stopped).then_some(2.0),
            failed: false,
            unexpected_stop: None,
            draining: false,
            lost: false,
            unhealthy: false,
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(max_tasks(3, 150), 4);
        assert_eq!(min_healthy(3, 50), 2);
        assert_eq!(min_healthy(6, 100), 6);
        assert_eq!(circuit_breaker_threshold(1), 3);
        assert_eq!(circuit_breaker_threshold(10), 5);
        assert_eq!(circuit_breaker_threshold(1000), 200);
    }

    #[test]
    fn a_new_service_starts_desired_tasks() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::InProgress,
        )];
        let a = compute_service_actions(&spec(5, 100, 200), &d, &[], 10.0);
        assert_eq!(a.start, Some(("a".into(), 5)));
        assert!(a.stop.is_empty());
        assert!(!a.steady);
    }

    #[test]
    fn steady_and_completed_once_all_run() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::InProgress,
        )];
        let tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        let a = compute_service_actions(&spec(3, 100, 200), &d, &tasks, 10.0);
        assert!(a.steady);
        assert_eq!(a.completed, Some(("a".into(), "td-a".into())));
        assert_eq!(
            a.deployments[0].rollout_state,
            DeploymentRolloutState::Completed
        );
        assert!(a
            .events
            .iter()
            .any(|e| e.contains("has reached a steady state")));
        assert!(a.events.iter().any(|e| e.contains("deployment completed")));
    }

    #[test]
    fn a_stopped_task_is_replaced() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
        let mut tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        tasks.push(task(3, "a", Phase::Stopped));
        tasks[3].unexpected_stop = Some("Essential container in task exited".into());
        let a = compute_service_actions(&spec(4, 100, 200), &d, &tasks, 10.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert_eq!(
            a.events,
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
        let d = [
            dep(
                "b",
                DeploymentStatus::Primary,
                DeploymentRolloutState::InProgress,
            ),
            dep(
                "a",
                DeploymentStatus::Active,
                DeploymentRolloutState::Completed,
            ),
        ];
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
        assert!(a
            .events
            .iter()
            .any(|e| e.contains("has stopped 2 running tasks")));
    }

    #[test]
    fn scale_down_stops_from_the_fullest_az() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
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
        let d = [
            dep(
                "b",
                DeploymentStatus::Primary,
                DeploymentRolloutState::InProgress,
            ),
            dep(
                "a",
                DeploymentStatus::Active,
                DeploymentRolloutState::Completed,
            ),
        ];
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
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::InProgress,
        )];
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
        assert!(a.events[0].contains("unable to consistently start tasks"));
        let a = compute_service_actions(&spec(1, 100, 200), &d, &tasks, 1000.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
    }

    #[test]
    fn tasks_on_a_draining_instance_are_replaced_before_they_stop() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
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
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
        let mut tasks: Vec<_> = (0..4).map(|i| task(i, "a", Phase::Running)).collect();
        tasks[0].lost = true;
        let a = compute_service_actions(&spec(4, 100, 100), &d, &tasks, 1.0);
        assert_eq!(a.start, Some(("a".into(), 1)));
        assert!(a.stop.is_empty());
        tasks.push(task(4, "a", Phase::Running));
        let a = compute_service_actions(&spec(4, 100, 100), &d, &tasks, 2.0);
        assert!(a.steady && a.start.is_none() && a.stop.is_empty());
        tasks[0].lost = false;
        let a = compute_service_actions(&spec(4, 100, 100), &d, &tasks, 3.0);
        assert_eq!(a.stop.len(), 1);
    }

    #[test]
    fn daemon_runs_one_task_per_eligible_instance_and_replaces_old_ones_in_place() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::InProgress,
        )];
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
        let d2 = [
            dep(
                "b",
                DeploymentStatus::Primary,
                DeploymentRolloutState::InProgress,
            ),
            dep(
                "a",
                DeploymentStatus::Active,
                DeploymentRolloutState::Completed,
            ),
        ];
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

    #[test]
    fn unhealthy_tasks_are_stopped_and_replaced() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
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
        assert!(a
            .events
            .iter()
            .any(|e| e == "(service web) (task t1) failed container health checks."));
    }

    #[test]
    fn draining_stops_everything_then_goes_inactive() {
        let d = [dep(
            "a",
            DeploymentStatus::Primary,
            DeploymentRolloutState::Completed,
        )];
        let mut s = spec(3, 100, 200);
        s.draining = true;
        let tasks: Vec<_> = (0..3).map(|i| task(i, "a", Phase::Running)).collect();
        let a = compute_service_actions(&s, &d, &tasks, 1.0);
        assert_eq!(a.stop.len(), 3);
        assert!(a.inactive);
    }

    /// A tiny world: applies actions, then moves tasks forward at random.
    fn simulate(desired: u32, min: u32, max: u32, steps: Vec<u8>) -> Result<(), TestCaseError> {
        let s = spec(desired, min, max);
        let max_total = max_tasks(desired, max).max(desired);
        let min_ok = min_healthy(desired, min).min(desired);
        let mut deps = vec![
            dep(
                "b",
                DeploymentStatus::Primary,
                DeploymentRolloutState::InProgress,
            ),
            dep(
                "a",
                DeploymentStatus::Active,
                DeploymentRolloutState::Completed,
            ),
        ];
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
