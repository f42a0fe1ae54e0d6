//! The scaling loop: on the leader only (a [`LeaderLoop`] started with the controllers under the
//! term's fence), once per metric period, for every registered scalable target:
//!
//! 1. a desired count outside the target's `[min, max]` is brought inside it
//!    ("minimum capacity was set to N");
//! 2. every policy whose alarm is in ALARM is invoked, once per metric period per alarm
//!    (CloudWatch invokes an Auto Scaling action once per period while its alarm stays in ALARM;
//!    the loop itself passes every few seconds, so a new range is enforced at once): a target tracking policy by its own
//!    AlarmHigh/AlarmLow, a step policy by any alarm whose `AlarmActions` name its ARN and whose
//!    actions are enabled; [`crate::decide`] says what the count becomes.
//!
//! A change is written as UpdateService writes a desired count
//! (`flotilla_control::services::set_desired_count`), with a compare-and-swap on the service
//! record, fenced with the term's fence, in the same transaction as its activity record
//! ("Setting desired count to N.", with the alarm and policy that caused it), so the service
//! scheduler starts or stops real tasks and the activity is never lost or doubled. Cooldowns are
//! read from the activities, so the loop keeps no state of its own and a new leader carries on.

use crate::decide::{self, Clock, Decision, Past, Side};
use crate::policy::{self, ActivityRecord, AlarmSide, PolicyRecord, Rule, TargetRecord};
use crate::resource::{ServiceId, TARGETS};
use crate::service::{decode, encode, AutoScaling};
use crate::shapes::*;
use flotilla_control::services::{service_key, set_desired_count, ServiceRecord, ServiceStatus};
use flotilla_controllers::records::{cas_fenced, get, is_deposed, to_bytes, Attempt};
use flotilla_controllers::LeaderLoop;
use flotilla_metrics::{Alarm as CwAlarm, AlarmState, StatQuery};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Fence, Txn};
use std::collections::HashMap;
use std::sync::Arc;

/// How many activities are kept per scalable target (the oldest go first).
pub const KEPT_ACTIVITIES: usize = 100;

/// The scaling loop of one region (see the module docs).
pub struct ScalingLoop {
    service: Arc<AutoScaling>,
    clock: Arc<dyn flotilla_controllers::Clock>,
}

impl ScalingLoop {
    /// The loop over `service`'s targets and policies, reading the time from `clock`.
    pub fn new(service: Arc<AutoScaling>, clock: Arc<dyn flotilla_controllers::Clock>) -> Self {
        ScalingLoop { service, clock }
    }
}

/// The longest pause between two passes, seconds.
const MAX_PASS_SECONDS: u32 = 5;

/// When each (policy ARN, alarm name) was last invoked: the index of the metric period.
pub type Invoked = HashMap<(String, String), u64>;

impl LeaderLoop for ScalingLoop {
    fn start(&self, fence: &Fence) -> Vec<tokio::task::JoinHandle<()>> {
        let (s, clock, fence) = (self.service.clone(), self.clock.clone(), fence.clone());
        vec![tokio::spawn(async move {
            let mut invoked = Invoked::new();
            loop {
                let period = s.metrics.resolution().clamp(1, MAX_PASS_SECONDS);
                if let Err(e) = tick(&s, &fence, &mut invoked, clock.now()).await {
                    if is_deposed(&e) {
                        tracing::warn!(controller = "autoscaling", "a write was refused: this replica no longer leads; the controller stops");
                        return;
                    }
                    tracing::warn!(error = %e, "a scaling pass failed; it runs again next period");
                }
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(period))).await;
            }
        })]
    }
}

fn internal(e: impl std::fmt::Display) -> EcsError {
    EcsError::server(format!("autoscaling: {e}"))
}

/// One pass over every scalable target; `invoked` remembers which alarm invoked which policy in
/// which period (a policy is invoked once per period per alarm).
pub async fn tick(
    s: &AutoScaling,
    fence: &Fence,
    invoked: &mut Invoked,
    now: f64,
) -> Result<(), EcsError> {
    let page = s.store.list(TARGETS, None, 0).await.map_err(internal)?;
    let alarms = s.metrics.alarms().await.map_err(internal)?;
    for kv in &page.items {
        let target: TargetRecord = decode(kv).map_err(internal)?;
        let Some(id) = ServiceId::parse(&target.target.resource_id) else {
            continue;
        };
        if let Err(e) = scale_target(s, fence, &id, &target, &alarms, invoked, now).await {
            if is_deposed(&e) {
                return Err(e);
            }
            tracing::warn!(cluster = %id.cluster, service = %id.service, error = %e, "could not scale the service");
        }
    }
    Ok(())
}

/// What one change is and why.
struct Change {
    to: u32,
    cause: String,
    policy: Option<String>,
}

async fn current_count(s: &AutoScaling, id: &ServiceId) -> Result<Option<u32>, EcsError> {
    let rec =
        get::<ServiceRecord>(s.store.as_ref(), &service_key(&id.cluster, &id.service)).await?;
    Ok(rec
        .filter(|(r, _)| r.status == ServiceStatus::Active)
        .map(|(r, _)| u32::try_from(r.service.desired_count).unwrap_or(0)))
}

async fn scale_target(
    s: &AutoScaling,
    fence: &Fence,
    id: &ServiceId,
    target: &TargetRecord,
    alarms: &[CwAlarm],
    invoked: &mut Invoked,
    now: f64,
) -> Result<(), EcsError> {
    let Some(current) = current_count(s, id).await? else {
        return Ok(());
    };
    let range = target.rule();
    if let Some((to, bound)) = decide::bounds(current, &range) {
        let cause = match bound {
            decide::Bound::Min => format!("minimum capacity was set to {}", range.min),
            decide::Bound::Max => format!("maximum capacity was set to {}", range.max),
        };
        return apply(
            s,
            fence,
            id,
            Change {
                to,
                cause,
                policy: None,
            },
            now,
        )
        .await;
    }
    let page = s
        .store
        .list(&id.policies_prefix(), None, 0)
        .await
        .map_err(internal)?;
    let history = s
        .store
        .list(&id.activities_prefix(), None, 0)
        .await
        .map_err(internal)?;
    let history: Vec<ActivityRecord> = history
        .items
        .iter()
        .filter_map(|kv| decode(kv).ok())
        .collect();
    let clock = Clock {
        period: s.metrics.resolution().max(1),
    };
    for kv in &page.items {
        let p: PolicyRecord = decode(kv).map_err(internal)?;
        let Some(rule) = policy::rule_of(&p.policy) else {
            continue;
        };
        let past: Vec<Past> = history
            .iter()
            .filter(|a| a.policy.as_deref() == Some(p.policy.policy_name.as_str()))
            .filter(|a| a.activity.status_code == ScalingActivityStatusCode::Successful)
            .map(|a| Past {
                at: a.activity.end_time.unwrap_or(a.activity.start_time),
                from: a.from,
                to: a.to,
            })
            .collect();
        // Alarms in ALARM that invoke this policy.
        let firing: Vec<&CwAlarm> = alarms
            .iter()
            .filter(|a| a.status.state == AlarmState::Alarm && a.definition.actions_enabled)
            .filter(|a| a.definition.alarm_actions.contains(&p.policy.policy_arn))
            .collect();
        for alarm in firing {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let this_period = (now / f64::from(clock.period)).floor().max(0.0) as u64;
            let invocation = (p.policy.policy_arn.clone(), alarm.definition.name.clone());
            if invoked.get(&invocation) == Some(&this_period) {
                continue;
            }
            invoked.insert(invocation, this_period);
            let values = alarm_values(s, alarm, now).await?;
            let decision = match &rule {
                Rule::Tracking(t, _) => {
                    let side = match policy::side_of(&alarm.definition.name) {
                        Some(AlarmSide::High) => Side::High,
                        Some(AlarmSide::Low) => Side::Low,
                        None => continue,
                    };
                    let Some(metric) = values.last().copied() else {
                        continue;
                    };
                    decide::target_tracking(current, metric, side, t, &range, &past, clock, now)
                }
                Rule::Steps(st) => {
                    let Some(v) = decide::aggregate(&values, st.aggregation) else {
                        continue;
                    };
                    let breach = v - alarm.definition.rule.threshold;
                    decide::step(current, breach, st, &range, &past, clock, now)
                }
            };
            match decision {
                Decision::Set(to) => {
                    let cause = format!(
                        "monitor alarm {} in state ALARM triggered policy {}",
                        alarm.definition.name, p.policy.policy_name
                    );
                    let change = Change {
                        to,
                        cause,
                        policy: Some(p.policy.policy_name.clone()),
                    };
                    // One change per target per pass: the next pass reads the new count.
                    return apply(s, fence, id, change, now).await;
                }
                Decision::Keep(why) => {
                    tracing::debug!(cluster = %id.cluster, service = %id.service, policy = %p.policy.policy_name, alarm = %alarm.definition.name, reason = ?why, "policy invoked, count kept");
                }
            }
        }
    }
    Ok(())
}

/// The alarm's statistic for each period of its evaluation range that has data, oldest first.
async fn alarm_values(s: &AutoScaling, alarm: &CwAlarm, now: f64) -> Result<Vec<f64>, EcsError> {
    let rule = &alarm.definition.rule;
    let (start, end) = rule.range(now);
    let q = StatQuery {
        metric: rule.metric.clone(),
        start,
        end,
        period: rule.period,
    };
    let points = s
        .metrics
        .statistic(&q, rule.statistic)
        .await
        .map_err(internal)?;
    Ok(points.into_iter().map(|(_, v)| v).collect())
}

fn activity(
    id: &ServiceId,
    change: &Change,
    now: f64,
    outcome: Result<(), String>,
) -> ScalingActivity {
    let to = change.to;
    let (status, message) = match outcome {
        Ok(()) => (
            ScalingActivityStatusCode::Successful,
            format!(
                "Successfully set desired count to {to}. Change successfully fulfilled by ecs."
            ),
        ),
        Err(why) => (
            ScalingActivityStatusCode::Failed,
            format!("Failed to set desired count to {to}. Reason: {why}"),
        ),
    };
    ScalingActivity {
        activity_id: uuid::Uuid::new_v4().to_string(),
        service_namespace: ServiceNamespace::Ecs,
        resource_id: id.resource_id(),
        scalable_dimension: ScalableDimension::EcsServiceDesiredCount,
        description: format!("Setting desired count to {to}."),
        cause: change.cause.clone(),
        start_time: flotilla_control::timestamp(now),
        end_time: Some(flotilla_control::timestamp(now)),
        status_code: status,
        status_message: Some(message),
        details: None,
        not_scaled_reasons: None,
    }
}

/// Writes `change`: the service's desired count and its activity in one fenced transaction; a
/// change the service refuses is recorded as a Failed activity.
async fn apply(
    s: &AutoScaling,
    fence: &Fence,
    id: &ServiceId,
    change: Change,
    now: f64,
) -> Result<(), EcsError> {
    let key = service_key(&id.cluster, &id.service);
    let change = &change;
    let key = &key;
    let outcome = cas_fenced(s.store.as_ref(), Some(fence), || async move {
        let Some((mut rec, rev)) = get::<ServiceRecord>(s.store.as_ref(), key).await? else {
            return Ok(Attempt::Done(None));
        };
        if rec.status != ServiceStatus::Active {
            return Ok(Attempt::Done(None));
        }
        let from = u32::try_from(rec.service.desired_count).unwrap_or(0);
        if from == change.to {
            return Ok(Attempt::Done(None));
        }
        let result = set_desired_count(&mut rec, change.to, flotilla_control::timestamp(now))
            .map_err(|e| e.message.clone());
        let record = ActivityRecord {
            activity: activity(id, change, now, result.clone()),
            policy: change.policy.clone(),
            from,
            to: change.to,
        };
        let mut txn = prune(s, id).await?;
        let a_key = id.activity_key(now, &record.activity.activity_id);
        txn = txn.put(a_key, encode(&record).map_err(internal)?);
        if result.is_ok() {
            txn = txn
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key.clone(), to_bytes(&rec)?);
        }
        Ok(Attempt::Commit(txn, Some((from, result))))
    })
    .await?;
    if let Some((from, result)) = outcome {
        match result {
            Ok(()) => {
                tracing::info!(cluster = %id.cluster, service = %id.service, from, to = change.to, reason = %change.cause, "auto scaling set the desired count")
            }
            Err(why) => {
                tracing::warn!(cluster = %id.cluster, service = %id.service, to = change.to, reason = %why, "auto scaling could not set the desired count")
            }
        }
    }
    Ok(())
}

/// A transaction deleting the oldest activities of `id` beyond [`KEPT_ACTIVITIES`] - 1.
async fn prune(s: &AutoScaling, id: &ServiceId) -> Result<Txn, EcsError> {
    let page = s
        .store
        .list(&id.activities_prefix(), None, 0)
        .await
        .map_err(internal)?;
    let excess = (page.items.len() + 1).saturating_sub(KEPT_ACTIVITIES);
    Ok(page
        .items
        .iter()
        .take(excess)
        .fold(Txn::new(), |t, kv| t.delete(kv.key.clone())))
}
