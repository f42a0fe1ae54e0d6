//! Deployment alarms (`deploymentConfiguration.alarms`), as ECS documents them for rolling
//! deployments: while the primary deployment is IN_PROGRESS, an alarm named in `alarmNames` that
//! goes to ALARM fails it (FAILED, no more starts) and, with `rollback`, a new primary returns
//! to the last COMPLETED deployment, the same rollback the circuit breaker makes
//! ([`super::rollback::stop_primary`]). A primary that has settled stays IN_PROGRESS for a bake
//! time computed from the alarms (the longest `Period × EvaluationPeriods` of them), watched the
//! same way, and COMPLETES after it.
//!
//! An alarm already in ALARM when the deployment started does not fail it (as ECS ignores
//! alarms already in ALARM at the start); only a change to ALARM after the deployment was
//! created does. What this is not: reading the alarms (the service loop does, through the
//! region's CloudWatch reader, and passes an [`AlarmWatch`]).

use super::rollback::{rollback_target, stop_primary, Rollback, StoppedBy};
use super::{Actions, DeploymentRecord, ServiceEvent, ServiceSpec};
use flotilla_model::shapes::{DeploymentAlarms, DeploymentRolloutState};
use flotilla_model::{EcsError, ErrorCode};

/// A service's deployment alarms and what CloudWatch says of them now.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmWatch {
    /// Roll back when they fail a deployment.
    pub rollback: bool,
    /// The named alarms in ALARM, with when they went to ALARM (epoch seconds).
    pub in_alarm: Vec<(String, f64)>,
    /// How long a settled deployment is watched before it COMPLETES, seconds (infinite while
    /// the alarms cannot be read: a deployment never completes unwatched).
    pub bake_seconds: f64,
}

/// Checks a deployment configuration's `alarms`: enabled alarms name at least one alarm.
pub fn check(a: Option<&DeploymentAlarms>) -> Result<(), EcsError> {
    match a {
        Some(a) if a.enable && a.alarm_names.iter().all(|n| n.trim().is_empty()) => Err(EcsError::new(
            ErrorCode::InvalidParameterException,
            "deploymentConfiguration.alarms.alarmNames must name at least one CloudWatch alarm when alarms are enabled.",
        )),
        _ => Ok(()),
    }
}

/// The alarms that went to ALARM since `p` started.
pub fn triggered(watch: &AlarmWatch, p: &DeploymentRecord) -> Vec<String> {
    let mut names: Vec<String> = watch
        .in_alarm
        .iter()
        .filter(|(_, since)| *since >= p.created_at)
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a settled primary `p` has been watched for its bake time (always, without alarms).
pub fn baked(spec: &ServiceSpec, p: &DeploymentRecord, now: f64) -> bool {
    spec.alarms
        .as_ref()
        .is_none_or(|w| now >= p.updated_at + w.bake_seconds)
}

/// Fails an IN_PROGRESS primary whose alarms went to ALARM (and rolls back, with `rollback`).
pub(super) fn apply(
    spec: &ServiceSpec,
    deps: &mut Vec<DeploymentRecord>,
    desired: u32,
    now: f64,
    out: &mut Actions,
) {
    let (Some(watch), Some(p)) = (spec.alarms.as_ref(), deps.first()) else {
        return;
    };
    if p.rollout_state != DeploymentRolloutState::InProgress || spec.draining {
        return;
    }
    let alarms = triggered(watch, p);
    if alarms.is_empty() {
        return;
    }
    let failed = p.id.clone();
    let back = rollback_target(spec.last_completed.as_ref(), p)
        .filter(|_| watch.rollback)
        .map(|(to, td)| Rollback {
            to: to.clone(),
            task_definition: td.clone(),
            id: spec.next_deployment_id.clone(),
            desired,
        });
    out.events.push(ServiceEvent::AlarmsTriggered {
        deployment: failed.clone(),
        alarms: alarms.clone(),
    });
    let events = stop_primary(deps, StoppedBy::DeploymentAlarms, back, now);
    if let Some(d) = deps.iter_mut().find(|d| d.id == failed) {
        d.rollout_state_reason = format!(
            "ECS deployment failed: alarm(s) {} in ALARM.",
            alarms.join(", ")
        );
    }
    out.events.extend(events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_scheduler::fixtures::spec;
    use crate::service_scheduler::DeploymentStatus;
    use crate::services::new_deployment;

    fn deps() -> Vec<DeploymentRecord> {
        let mut old = new_deployment("a".into(), "td-a", 0, 1.0);
        old.status = DeploymentStatus::Active;
        old.rollout_state = DeploymentRolloutState::Completed;
        vec![new_deployment("b".into(), "td-b", 2, 10.0), old]
    }

    fn watched(rollback: bool, in_alarm: &[(&str, f64)]) -> ServiceSpec {
        let mut s = spec(2, 100, 200);
        s.last_completed = Some(("a".into(), "td-a".into()));
        s.alarms = Some(AlarmWatch {
            rollback,
            in_alarm: in_alarm.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            bake_seconds: 30.0,
        });
        s
    }

    #[test]
    fn an_alarm_that_fires_during_the_deployment_fails_it_and_rolls_back() {
        let s = watched(true, &[("errors", 12.0)]);
        let mut d = deps();
        let mut out = Actions::default();
        apply(&s, &mut d, 2, 13.0, &mut out);
        assert_eq!(d[0].task_definition, "td-a");
        assert_eq!(d[0].rolls_back_to.as_deref(), Some("a"));
        assert_eq!(d[1].rollout_state, DeploymentRolloutState::Failed);
        assert_eq!(
            d[1].rollout_state_reason,
            "ECS deployment failed: alarm(s) errors in ALARM."
        );
        assert_eq!(
            out.events,
            [
                ServiceEvent::AlarmsTriggered {
                    deployment: "b".into(),
                    alarms: vec!["errors".into()]
                },
                ServiceEvent::RollingBack { to: "a".into() }
            ]
        );
    }

    #[test]
    fn without_rollback_the_deployment_only_fails() {
        let s = watched(false, &[("errors", 12.0)]);
        let mut d = deps();
        apply(&s, &mut d, 2, 13.0, &mut Actions::default());
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].rollout_state, DeploymentRolloutState::Failed);
    }

    #[test]
    fn an_alarm_already_in_alarm_at_the_start_or_a_finished_deployment_is_left_alone() {
        let mut d = deps();
        apply(
            &watched(true, &[("errors", 5.0)]),
            &mut d,
            2,
            13.0,
            &mut Actions::default(),
        );
        assert_eq!(d[0].rollout_state, DeploymentRolloutState::InProgress);
        let mut d = deps();
        d[0].rollout_state = DeploymentRolloutState::Completed;
        apply(
            &watched(true, &[("errors", 12.0)]),
            &mut d,
            2,
            13.0,
            &mut Actions::default(),
        );
        assert_eq!(d[0].rollout_state, DeploymentRolloutState::Completed);
    }

    #[test]
    fn a_settled_deployment_bakes_before_it_completes() {
        let s = watched(true, &[]);
        let mut p = deps().remove(0);
        p.updated_at = 100.0;
        assert!(!baked(&s, &p, 129.0));
        assert!(baked(&s, &p, 130.0));
        assert!(baked(&spec(2, 100, 200), &p, 100.0));
    }

    #[test]
    fn enabled_alarms_must_name_one() {
        let a = |enable, names: &[&str]| DeploymentAlarms {
            alarm_names: names.iter().map(|s| s.to_string()).collect(),
            enable,
            rollback: true,
        };
        assert!(check(Some(&a(true, &[]))).is_err());
        assert!(check(Some(&a(true, &["x"]))).is_ok());
        assert!(check(Some(&a(false, &[]))).is_ok());
        assert!(check(None).is_ok());
    }
}
