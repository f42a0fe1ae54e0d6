//! What the service loop tells the scheduler about a service's deployment alarms: the named
//! alarms in ALARM (and since when) and the bake time, read from the region's CloudWatch alarms
//! through [`Plane::metrics`]. The rules are pure, in
//! `flotilla_control::service_scheduler::alarms`.

use crate::Plane;
use flotilla_control::service_scheduler::alarms::AlarmWatch;
use flotilla_control::services::ServiceRecord;
use flotilla_metrics::AlarmState;

/// The watch of `rec`'s deployment alarms, when it has them enabled. When the alarms cannot be
/// read, nothing is in ALARM and the bake time is infinite: no deployment completes unwatched.
pub async fn watch(plane: &Plane, rec: &ServiceRecord) -> Option<AlarmWatch> {
    let (names, rollback) = rec.deployment_alarms()?;
    let all = match plane.metrics.alarms().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "deployment alarms cannot be read; deployments wait for them");
            return Some(AlarmWatch {
                rollback,
                in_alarm: Vec::new(),
                bake_seconds: f64::INFINITY,
            });
        }
    };
    let named: Vec<_> = all
        .iter()
        .filter(|a| names.contains(&a.definition.name))
        .collect();
    let bake_seconds = named
        .iter()
        .map(|a| {
            f64::from(a.definition.rule.period) * f64::from(a.definition.rule.evaluation_periods)
        })
        .fold(0.0, f64::max);
    Some(AlarmWatch {
        rollback,
        in_alarm: named
            .iter()
            .filter(|a| a.status.state == AlarmState::Alarm)
            .map(|a| (a.definition.name.clone(), a.status.updated_at))
            .collect(),
        bake_seconds,
    })
}
