//! Stopping a deployment, and rolling back: the one rule the circuit breaker and the deployment
//! alarms (in the service scheduler) and StopServiceDeployment follow.
//!
//! [`stop_primary`] marks the PRIMARY deployment FAILED with the reason of whoever stopped it and,
//! given a [`Rollback`], makes every deployment ACTIVE (desired 0) and puts a new PRIMARY of the
//! last COMPLETED deployment's task definition on top, linked to it by `rolls_back_to`. It answers
//! the events ECS shows for it. What it is not: the checks of who may stop what (the callers'),
//! or the stop note StopServiceDeployment keeps.

use super::{DeploymentRecord, DeploymentStatus, ServiceEvent};
use flotilla_model::shapes::DeploymentRolloutState;

/// Who stops the primary deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedBy {
    /// The deployment circuit breaker: too many tasks failed to start.
    CircuitBreaker,
    /// StopServiceDeployment with `stopType: ROLLBACK`.
    StopRollback,
    /// StopServiceDeployment with `stopType: ABORT`.
    StopAbort,
    /// A deployment alarm went to ALARM (`super::alarms`).
    DeploymentAlarms,
}

impl StoppedBy {
    fn failed_reason(self) -> &'static str {
        match self {
            StoppedBy::CircuitBreaker => "ECS deployment circuit breaker: tasks failed to start.",
            StoppedBy::StopRollback => {
                "ECS deployment stopped by StopServiceDeployment (ROLLBACK)."
            }
            StoppedBy::StopAbort => "ECS deployment stopped by StopServiceDeployment (ABORT).",
            StoppedBy::DeploymentAlarms => "ECS deployment failed: alarm(s) in ALARM.",
        }
    }

    fn rollback_reason(self, to: &str) -> String {
        match self {
            StoppedBy::CircuitBreaker => {
                format!("ECS deployment circuit breaker: rolling back to deploymentId {to}.")
            }
            StoppedBy::StopRollback | StoppedBy::StopAbort => {
                format!("ECS deployment rolling back to deploymentId {to}.")
            }
            StoppedBy::DeploymentAlarms => {
                format!("ECS deployment alarms: rolling back to deploymentId {to}.")
            }
        }
    }
}

/// A rollback to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollback {
    /// The deployment rolled back to (the last COMPLETED one).
    pub to: String,
    /// Its task definition.
    pub task_definition: String,
    /// The id of the new deployment (see `services::deployment_id`).
    pub id: String,
    /// Its desired count.
    pub desired: u32,
}

/// The deployment a failing `primary` rolls back to: the last COMPLETED one (id, task
/// definition), unless it is the primary itself.
pub fn rollback_target<'a>(
    last_completed: Option<&'a (String, String)>,
    primary: &DeploymentRecord,
) -> Option<&'a (String, String)> {
    last_completed.filter(|(id, _)| id != &primary.id)
}

/// Stops the primary deployment (the first of `deps`) and, with `rollback`, rolls back (see the
/// module docs). Returns the events, oldest first.
pub fn stop_primary(
    deps: &mut Vec<DeploymentRecord>,
    by: StoppedBy,
    rollback: Option<Rollback>,
    now: f64,
) -> Vec<ServiceEvent> {
    let mut events = Vec::new();
    let Some(p) = deps.first_mut() else {
        return events;
    };
    p.rollout_state = DeploymentRolloutState::Failed;
    p.rollout_state_reason = by.failed_reason().into();
    p.updated_at = now;
    let failed = p.id.clone();
    if by == StoppedBy::CircuitBreaker {
        events.push(ServiceEvent::CircuitBreakerTripped {
            deployment: failed.clone(),
        });
    }
    let Some(rb) = rollback else {
        return events;
    };
    for d in deps.iter_mut() {
        d.status = DeploymentStatus::Active;
        d.desired_count = 0;
    }
    let mut new = crate::services::new_deployment(rb.id, &rb.task_definition, rb.desired, now);
    // It replaces the stopped deployment's tasks where they are (a service's traffic is in one
    // target group between blue/green deployments).
    new.side = deps.first().map(|d| d.side).unwrap_or_default();
    new.rollout_state_reason = by.rollback_reason(&rb.to);
    new.rolls_back_to = Some(rb.to.clone());
    deps.insert(0, new);
    events.push(match by {
        StoppedBy::CircuitBreaker | StoppedBy::DeploymentAlarms => {
            ServiceEvent::RollingBack { to: rb.to }
        }
        StoppedBy::StopRollback | StoppedBy::StopAbort => ServiceEvent::DeploymentStopped {
            deployment: failed,
            to: rb.to,
        },
    });
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::new_deployment;

    fn deps() -> Vec<DeploymentRecord> {
        let mut old = new_deployment("a".into(), "td-a", 0, 1.0);
        old.status = DeploymentStatus::Active;
        old.rollout_state = DeploymentRolloutState::Completed;
        vec![new_deployment("b".into(), "td-b", 2, 2.0), old]
    }

    fn to_a() -> Rollback {
        Rollback {
            to: "a".into(),
            task_definition: "td-a".into(),
            id: "c".into(),
            desired: 2,
        }
    }

    #[test]
    fn both_stoppers_build_the_same_rollback() {
        for by in [StoppedBy::CircuitBreaker, StoppedBy::StopRollback] {
            let mut d = deps();
            stop_primary(&mut d, by, Some(to_a()), 3.0);
            let ids: Vec<&str> = d.iter().map(|x| x.id.as_str()).collect();
            assert_eq!(ids, ["c", "b", "a"]);
            assert_eq!(d[0].status, DeploymentStatus::Primary);
            assert_eq!(d[0].task_definition, "td-a");
            assert_eq!(d[0].desired_count, 2);
            assert_eq!(d[0].rolls_back_to.as_deref(), Some("a"));
            assert_eq!(d[1].rollout_state, DeploymentRolloutState::Failed);
            assert!(d[1..]
                .iter()
                .all(|x| x.status == DeploymentStatus::Active && x.desired_count == 0));
        }
    }

    #[test]
    fn reasons_and_events_name_the_stopper() {
        let mut d = deps();
        let e = stop_primary(&mut d, StoppedBy::CircuitBreaker, Some(to_a()), 3.0);
        assert_eq!(
            d[0].rollout_state_reason,
            "ECS deployment circuit breaker: rolling back to deploymentId a."
        );
        assert_eq!(
            d[1].rollout_state_reason,
            "ECS deployment circuit breaker: tasks failed to start."
        );
        assert_eq!(
            e,
            [
                ServiceEvent::CircuitBreakerTripped {
                    deployment: "b".into()
                },
                ServiceEvent::RollingBack { to: "a".into() }
            ]
        );
        let mut d = deps();
        let e = stop_primary(&mut d, StoppedBy::StopRollback, Some(to_a()), 3.0);
        assert_eq!(
            d[0].rollout_state_reason,
            "ECS deployment rolling back to deploymentId a."
        );
        assert_eq!(
            e,
            [ServiceEvent::DeploymentStopped {
                deployment: "b".into(),
                to: "a".into()
            }]
        );
        let mut d = deps();
        let e = stop_primary(&mut d, StoppedBy::StopAbort, None, 3.0);
        assert!(e.is_empty());
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].rollout_state_reason,
            "ECS deployment stopped by StopServiceDeployment (ABORT)."
        );
    }

    #[test]
    fn a_deployment_never_rolls_back_to_itself() {
        let d = deps();
        let done = ("b".to_string(), "td-b".to_string());
        assert_eq!(rollback_target(Some(&done), &d[0]), None);
        let done = ("a".to_string(), "td-a".to_string());
        assert_eq!(rollback_target(Some(&done), &d[0]), Some(&done));
    }
}
