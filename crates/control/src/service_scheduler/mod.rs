//! The pure decisions of the service scheduler (REPLICA and DAEMON services, rolling `ECS`
//! deployments).
//!
//! [`compute_service_actions`] (REPLICA, [`replica`]) and [`compute_daemon_actions`] (DAEMON,
//! [`daemon`]) take the desired state of one service (its [`ServiceSpec`] and deployments, newest
//! first), the observed state of its tasks ([`TaskObs`]) and the time, and answer what to do
//! ([`Actions`]): the tasks to start for the primary deployment, which tasks to stop and why, the
//! deployments as they should now be stored, and the events to add ([`ServiceEvent`]). Both are
//! a short list of steps; the steps they share (failures and the circuit breaker, stops,
//! throttling, counts, cleanup, completion) are in `steps`, and the rollback both the circuit
//! breaker and StopServiceDeployment make is [`rollback::stop_primary`]. They are
//! level-triggered: calling again on the same inputs after the actions were applied asks for
//! nothing more. The async driver (`flotilla_controllers::service_loop`) reads, calls, and
//! applies.
//!
//! The rules (ECS's deployment configuration, spec 11.4):
//! - at most `floor(desired * maximumPercent / 100)` tasks that have not stopped (PENDING,
//!   RUNNING or still stopping) exist: a start never takes the count above it;
//! - while replacing, at least `ceil(desired * minimumHealthyPercent / 100)` healthy tasks stay:
//!   an old deployment's healthy task is stopped only when enough healthy tasks remain;
//!   unhealthy (PENDING) old tasks may always be stopped;
//! - a task replaced because its instance's agent was lost (remembered in
//!   [`ServiceSpec::replaced`]) is stopped as soon as it is seen again, before any other
//!   surplus: the replacements stay; a lost task not replaced yet is simply counted again;
//! - surplus tasks are stopped unhealthy first, then from the AZ with the most tasks of the
//!   service, then from the instance with the most;
//! - an old deployment with no task left that has not stopped disappears (INACTIVE);
//! - the primary is COMPLETED, and the service steady, when it is the only deployment and
//!   exactly `desired` tasks exist, all healthy;
//! - `failedTasks` counts the primary's tasks that stopped without ever running (or unhealthy),
//!   after the start of its latest task that reached a healthy state (RUNNING with its health
//!   checks and target groups healthy, or stopped without failing): consecutive failures;
//! - the circuit breaker (REPLICA, when enabled) trips an IN_PROGRESS primary at
//!   `min(max(ceil(desired / 2), 3), 200)` failures: FAILED, no more starts, and with `rollback`
//!   a new primary on the last COMPLETED deployment's task definition;
//! - after 3 consecutive failures starts are throttled (exponential, capped at 15 minutes);
//! - a steady service with `availabilityZoneRebalancing` whose zones are out of balance starts
//!   one task in its emptiest zone, then stops one of its fullest once that one is healthy
//!   ([`rebalance`]).
//! - deployment alarms ([`alarms`], when enabled): an alarm named in `alarmNames` that went to
//!   ALARM after the primary deployment started fails it (and, with `rollback`, rolls back as
//!   the circuit breaker does); a settled primary COMPLETES only after the bake time;
//! - BLUE_GREEN, LINEAR and CANARY deployments run green next to blue and move listener
//!   traffic between them ([`blue_green`]);
//! - a protected task (`TaskObs::protected`, UpdateTaskProtection) is never stopped to scale in
//!   or replace it (old deployment, DRAINING instance): the service stays above its desired
//!   count, and a deployment waits, until its protection expires or is removed. Failing health
//!   checks and DeleteService still stop it.

pub mod alarms;
pub mod blue_green;
mod daemon;
mod events;
mod lost;
pub mod rebalance;
mod replica;
pub mod rollback;
mod steps;
mod task_sets;

pub use blue_green::compute_blue_green_actions;
pub use daemon::compute_daemon_actions;
pub use events::{ServiceEvent, Unplaced};
pub use replica::compute_service_actions;
pub use task_sets::{compute_task_set_actions, SetPlan, TaskSetActions};

use flotilla_model::shapes::DeploymentRolloutState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// Which of a blue/green service's two target groups its tasks register in
    /// ([`blue_green::Side`]).
    #[serde(default, skip_serializing_if = "blue_green::Side::is_primary")]
    pub side: blue_green::Side,
    /// A BLUE_GREEN, LINEAR or CANARY deployment's progress through its stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<blue_green::Progress>,
    /// A blue/green deployment rolled back: the (blue) deployment production traffic returned
    /// to, which is PRIMARY again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
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
    /// The ids of the tasks replaced because their instance's agent was lost (as stored).
    pub replaced: BTreeSet<String>,
    /// Availability Zone rebalancing: the zones the service can run in, when it is ENABLED and
    /// the service allows it ([`rebalance::compatible`]); empty: no rebalancing.
    pub zones: BTreeSet<String>,
    /// A rebalancing is in progress (as stored).
    pub rebalancing: bool,
    /// The deployment alarms and their states, when the service has them enabled.
    pub alarms: Option<alarms::AlarmWatch>,
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
    /// When it is unhealthy because a target group of the service says so (not its container
    /// health checks): that target group's ARN.
    pub unhealthy_in: Option<String>,
    /// Its scale-in protection has not expired (`crate::protection`): it is not stopped to
    /// scale in or to be replaced by a newer deployment.
    pub protected: bool,
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
    /// Events to add, oldest first.
    pub events: Vec<ServiceEvent>,
    /// The service is steady.
    pub steady: bool,
    /// A draining service has nothing left: it becomes INACTIVE.
    pub inactive: bool,
    /// The deployment (id, task definition) that just COMPLETED, if any.
    pub completed: Option<(String, String)>,
    /// Starts are throttled until then (epoch seconds).
    pub throttled_until: Option<f64>,
    /// The replaced tasks still remembered (those that have not stopped), before this round's
    /// starts.
    pub replaced: BTreeSet<String>,
    /// The lost tasks (ids) the start replaces, in order: the start's last placements take
    /// their places (its first ones make up what else the desired count lacks).
    pub replacing: Vec<String>,
    /// The start is an AZ rebalancing's: its one task goes to this zone.
    pub start_in_az: Option<String>,
    /// An AZ rebalancing is in progress after this round.
    pub rebalancing: bool,
}

impl Actions {
    /// The replaced tasks to store once `placed` of the asked starts were placed: those still
    /// remembered, and the lost tasks whose places the placements took.
    pub fn replaced_after(&self, placed: u32) -> BTreeSet<String> {
        let asked = self.start.as_ref().map_or(0, |(_, n)| *n as usize);
        let before = asked.saturating_sub(self.replacing.len());
        let took = (placed as usize).saturating_sub(before);
        let mut out = self.replaced.clone();
        out.extend(self.replacing.iter().take(took).cloned());
        out
    }
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

/// Consecutive failures of a deployment's tasks: failed stops after the start of its latest task
/// that reached a healthy state (ECS's `resetOnHealthyTask`). A task that is RUNNING but not yet
/// healthy (its target groups' checks still initial), or is being stopped, resets nothing: else
/// replacements started between staggered failures would keep the count under the threshold.
pub fn consecutive_failures(deployment: &str, tasks: &[TaskObs]) -> (u32, Option<f64>) {
    let mine: Vec<&TaskObs> = tasks
        .iter()
        .filter(|t| t.deployment == deployment)
        .collect();
    let last_run = mine
        .iter()
        .filter(|t| t.healthy || (t.phase == Phase::Stopped && !t.failed))
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

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: &str, phase: Phase, healthy: bool, started: f64, stopped: Option<f64>) -> TaskObs {
        TaskObs {
            arn: id.into(),
            id: id.into(),
            healthy,
            started_at: Some(started),
            stopped_at: stopped,
            failed: stopped.is_some() && !healthy,
            ..fixtures::task(0, "d", phase)
        }
    }

    #[test]
    fn a_running_task_not_yet_healthy_does_not_reset_the_failures() {
        // Staggered: each failure is followed by a replacement that is RUNNING but whose target
        // is not healthy yet.
        let tasks = vec![
            obs("a", Phase::Stopped, false, 1.0, Some(10.0)),
            obs("b", Phase::Stopped, false, 4.0, Some(13.0)),
            obs("c", Phase::Stopped, false, 7.0, Some(16.0)),
            obs("d", Phase::Running, false, 11.0, None),
            obs("e", Phase::Stopping, false, 14.0, None),
        ];
        assert_eq!(consecutive_failures("d", &tasks), (3, Some(16.0)));
        // A healthy one resets the count of the failures before its start.
        let mut healthy = tasks.clone();
        healthy[3].healthy = true;
        assert_eq!(consecutive_failures("d", &healthy), (2, Some(16.0)));
        // As does one that ran and stopped without failing (healthy here only to mark it not failed).
        let mut ran = tasks;
        ran.push(obs("f", Phase::Stopped, true, 14.5, Some(15.0)));
        assert_eq!(consecutive_failures("d", &ran), (1, Some(16.0)));
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
}
