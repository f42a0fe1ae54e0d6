//! Builders for the scheduler's unit tests.

use super::{Actions, DeploymentRecord, DeploymentStatus, Phase, ServiceSpec, TaskObs};
use flotilla_model::shapes::DeploymentRolloutState;

pub(super) fn dep(
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
        side: Default::default(),
        blue_green: None,
        rolled_back_to: None,
    }
}

pub(super) fn spec(desired: u32, min: u32, max: u32) -> ServiceSpec {
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
        replaced: Default::default(),
        zones: Default::default(),
        rebalancing: false,
        alarms: None,
    }
}

pub(super) fn task(n: usize, dep: &str, phase: Phase) -> TaskObs {
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
        unhealthy_in: None,
        protected: false,
    }
}

/// The events' messages, for the service `web`.
pub(super) fn messages(a: &Actions) -> Vec<String> {
    a.events.iter().map(|e| e.render("web")).collect()
}

/// The PRIMARY deployment `a`, in `rollout`.
pub(super) fn primary_a(rollout: DeploymentRolloutState) -> DeploymentRecord {
    dep("a", DeploymentStatus::Primary, rollout)
}

/// A rolling deployment: `b` (PRIMARY, IN_PROGRESS) replaces `a` (ACTIVE, COMPLETED).
pub(super) fn rolling() -> [DeploymentRecord; 2] {
    [
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
    ]
}
