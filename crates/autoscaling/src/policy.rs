//! Scaling policies, pure: PutScalingPolicy's checks (what Flotilla serves and the service's
//! rules for steps), the stored records of targets, policies and activities, and the CloudWatch
//! alarms a target tracking policy creates, named and shaped as the service creates them.
//!
//! Served: `TargetTrackingScaling` on `ECSServiceAverageCPUUtilization` and
//! `ECSServiceAverageMemoryUtilization`, and `StepScaling`. Refused by name: predictive
//! scaling and customized metric specifications.

use crate::decide::{Steps, Target, Tracking};
use crate::error::AasError;
use crate::resource::ServiceId;
use crate::shapes::*;
use flotilla_metrics::{
    AlarmDefinition, AlarmRule, ComparisonOperator, Dimension, MetricId, Statistic,
    TreatMissingData,
};
use serde::{Deserialize, Serialize};

/// The service's default cooldown for ECS services, seconds.
pub const DEFAULT_COOLDOWN: i32 = 300;
/// AlarmHigh: this many periods above the target (all of them) scale out.
pub const HIGH_PERIODS: u32 = 3;
/// AlarmLow: this many periods below 90% of the target (all of them) scale in.
pub const LOW_PERIODS: u32 = 15;
/// AlarmLow's threshold, as a share of the target value.
pub const LOW_SHARE: f64 = 0.9;

/// A registered scalable target, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The target as DescribeScalableTargets answers it.
    pub target: ScalableTarget,
}

impl TargetRecord {
    /// Its range and suspensions, for [`crate::decide`].
    pub fn rule(&self) -> Target {
        let t = &self.target;
        let s = t.suspended_state.clone().unwrap_or_default();
        Target {
            min: u32::try_from(t.min_capacity).unwrap_or(0),
            max: u32::try_from(t.max_capacity).unwrap_or(0),
            scale_in_suspended: s.dynamic_scaling_in_suspended == Some(true),
            scale_out_suspended: s.dynamic_scaling_out_suspended == Some(true),
        }
    }
}

/// A scaling policy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The policy as DescribeScalingPolicies answers it (a step policy's `Alarms` are read
    /// from CloudWatch when described; a target tracking policy's are its own).
    pub policy: ScalingPolicy,
}

/// How a policy scales, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Target tracking on a predefined ECS metric.
    Tracking(Tracking, TrackedMetric),
    /// Step scaling.
    Steps(Steps),
}

/// The ECS metric a target tracking policy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackedMetric {
    /// `ECSServiceAverageCPUUtilization`: `AWS/ECS` `CPUUtilization`.
    Cpu,
    /// `ECSServiceAverageMemoryUtilization`: `AWS/ECS` `MemoryUtilization`.
    Memory,
}

impl TrackedMetric {
    /// The `AWS/ECS` metric name.
    pub fn metric_name(self) -> &'static str {
        match self {
            TrackedMetric::Cpu => "CPUUtilization",
            TrackedMetric::Memory => "MemoryUtilization",
        }
    }

    /// The metric of service `id`.
    pub fn metric(self, id: &ServiceId) -> MetricId {
        MetricId::new(
            "AWS/ECS",
            self.metric_name(),
            [
                Dimension::new("ClusterName", id.cluster.clone()),
                Dimension::new("ServiceName", id.service.clone()),
            ],
        )
    }
}

/// An activity, as stored: the shape DescribeScalingActivities answers, and what cooldowns
/// read (which policy made it, from which count to which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    /// The activity.
    pub activity: ScalingActivity,
    /// The policy that made it (none for a change of the target's range).
    pub policy: Option<String>,
    /// The desired count before.
    pub from: u32,
    /// The desired count set.
    pub to: u32,
}

fn refuse(message: impl Into<String>) -> AasError {
    AasError::validation(message)
}

/// The policy type of a request (StepScaling when unset, as the service defaults it).
pub fn policy_type(req: &PutScalingPolicyRequest) -> Result<PolicyType, AasError> {
    match req.policy_type.unwrap_or(PolicyType::StepScaling) {
        PolicyType::PredictiveScaling => Err(refuse(
            "PredictiveScaling policies are not served by this Flotilla server: use TargetTrackingScaling or StepScaling.",
        )),
        t => Ok(t),
    }
}

/// Checks a PutScalingPolicy request's configuration and returns its rule.
pub fn check(req: &PutScalingPolicyRequest) -> Result<Rule, AasError> {
    if req.predictive_scaling_policy_configuration.is_some() {
        return Err(refuse(
            "PredictiveScalingPolicyConfiguration is not served by this Flotilla server.",
        ));
    }
    match policy_type(req)? {
        PolicyType::TargetTrackingScaling => {
            if req.step_scaling_policy_configuration.is_some() {
                return Err(refuse("StepScalingPolicyConfiguration is not allowed for a TargetTrackingScaling policy."));
            }
            let c = req.target_tracking_scaling_policy_configuration.as_ref().ok_or_else(|| {
                refuse("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy.")
            })?;
            check_tracking(c)
        }
        PolicyType::StepScaling | PolicyType::PredictiveScaling => {
            if req.target_tracking_scaling_policy_configuration.is_some() {
                return Err(refuse("TargetTrackingScalingPolicyConfiguration is not allowed for a StepScaling policy."));
            }
            let c = req
                .step_scaling_policy_configuration
                .as_ref()
                .ok_or_else(|| {
                    refuse("StepScalingPolicyConfiguration is required for a StepScaling policy.")
                })?;
            check_steps(c).map(Rule::Steps)
        }
    }
}

fn check_cooldown(name: &str, v: Option<i32>) -> Result<i32, AasError> {
    match v {
        Some(n) if n < 0 => Err(refuse(format!("{name} must be 0 or more, not {n}."))),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_COOLDOWN),
    }
}

/// Checks a target tracking configuration.
pub fn check_tracking(c: &TargetTrackingScalingPolicyConfiguration) -> Result<Rule, AasError> {
    if c.customized_metric_specification.is_some() {
        return Err(refuse(
            "CustomizedMetricSpecification is not served by this Flotilla server: use a PredefinedMetricSpecification (ECSServiceAverageCPUUtilization or ECSServiceAverageMemoryUtilization).",
        ));
    }
    let spec = c.predefined_metric_specification.as_ref().ok_or_else(|| {
        refuse("Either PredefinedMetricSpecification or CustomizedMetricSpecification must be specified.")
    })?;
    let metric = match spec.predefined_metric_type {
        MetricType::ECSServiceAverageCPUUtilization => TrackedMetric::Cpu,
        MetricType::ECSServiceAverageMemoryUtilization => TrackedMetric::Memory,
        other => {
            return Err(refuse(format!(
                "Unsupported metric type {} for service namespace ecs: this Flotilla server tracks ECSServiceAverageCPUUtilization and ECSServiceAverageMemoryUtilization.",
                other.as_str()
            )))
        }
    };
    if spec.resource_label.is_some() {
        return Err(refuse(format!(
            "ResourceLabel is only valid with the ALBRequestCountPerTarget metric type, not {}.",
            spec.predefined_metric_type.as_str()
        )));
    }
    if !(c.target_value.is_finite()
        && c.target_value >= 8.515920e-109
        && c.target_value <= 1.174271e108)
    {
        return Err(refuse(format!(
            "TargetValue must be between 8.515920e-109 and 1.174271e+108, not {}.",
            c.target_value
        )));
    }
    Ok(Rule::Tracking(
        Tracking {
            target_value: c.target_value,
            scale_out_cooldown: check_cooldown("ScaleOutCooldown", c.scale_out_cooldown)?,
            scale_in_cooldown: check_cooldown("ScaleInCooldown", c.scale_in_cooldown)?,
            disable_scale_in: c.disable_scale_in == Some(true),
        },
        metric,
    ))
}

/// Checks a step scaling configuration: an adjustment type, steps that neither overlap nor
/// leave a gap (one open lower bound at most, first; one open upper bound at most, last),
/// `MinAdjustmentMagnitude` only with `PercentChangeInCapacity`.
pub fn check_steps(c: &StepScalingPolicyConfiguration) -> Result<Steps, AasError> {
    let kind = c
        .adjustment_type
        .ok_or_else(|| refuse("AdjustmentType must be specified for a StepScaling policy."))?;
    let mut steps = c.step_adjustments.clone().unwrap_or_default();
    if steps.is_empty() {
        return Err(refuse(
            "StepAdjustments must contain at least one step adjustment.",
        ));
    }
    if let Some(m) = c.min_adjustment_magnitude {
        if kind != AdjustmentType::PercentChangeInCapacity {
            return Err(refuse("MinAdjustmentMagnitude is only supported with the PercentChangeInCapacity adjustment type."));
        }
        if m < 1 {
            return Err(refuse(format!(
                "MinAdjustmentMagnitude must be 1 or more, not {m}."
            )));
        }
    }
    if kind == AdjustmentType::ExactCapacity && steps.iter().any(|s| s.scaling_adjustment < 0) {
        return Err(refuse(
            "ScalingAdjustment must be 0 or more with the ExactCapacity adjustment type.",
        ));
    }
    for s in &steps {
        if s.metric_interval_lower_bound.is_none() && s.metric_interval_upper_bound.is_none() {
            return Err(refuse("A step adjustment must have a lower bound, an upper bound, or both (MetricIntervalLowerBound, MetricIntervalUpperBound)."));
        }
        if let (Some(lo), Some(hi)) = (s.metric_interval_lower_bound, s.metric_interval_upper_bound)
        {
            if hi <= lo {
                return Err(refuse(format!("MetricIntervalUpperBound ({hi}) must be greater than MetricIntervalLowerBound ({lo}).")));
            }
        }
    }
    let lower = |s: &StepAdjustment| s.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
    steps.sort_by(|a, b| lower(a).total_cmp(&lower(b)));
    for pair in steps.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match (a.metric_interval_upper_bound, b.metric_interval_lower_bound) {
            (Some(hi), Some(lo)) if hi == lo => {}
            (Some(hi), Some(lo)) if hi < lo => {
                return Err(refuse(format!("Step adjustments must not leave a gap: nothing covers the interval from {hi} to {lo}.")))
            }
            _ => {
                return Err(refuse(
                    "Step adjustments must not overlap: each step's upper bound must be the next step's lower bound.",
                ))
            }
        }
    }
    Ok(Steps {
        adjustment_type: kind,
        adjustments: steps,
        min_adjustment_magnitude: c.min_adjustment_magnitude,
        cooldown: check_cooldown("Cooldown", c.cooldown)?,
        aggregation: c
            .metric_aggregation_type
            .unwrap_or(MetricAggregationType::Average),
    })
}

/// The rule of a stored policy (what [`check`] made of it when it was put).
pub fn rule_of(p: &ScalingPolicy) -> Option<Rule> {
    match p.policy_type {
        PolicyType::TargetTrackingScaling => p
            .target_tracking_scaling_policy_configuration
            .as_ref()
            .and_then(|c| check_tracking(c).ok()),
        PolicyType::StepScaling => p
            .step_scaling_policy_configuration
            .as_ref()
            .and_then(|c| check_steps(c).ok())
            .map(Rule::Steps),
        PolicyType::PredictiveScaling => None,
    }
}

/// A policy's ARN, as the service writes it.
pub fn policy_arn(region: &str, account: &str, uuid: &str, id: &ServiceId, name: &str) -> String {
    format!(
        "arn:aws:autoscaling:{region}:{account}:scalingPolicy:{uuid}:resource/ecs/{}:policyName/{name}",
        id.resource_id()
    )
}

/// Which of a target tracking policy's alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmSide {
    /// `AlarmHigh`: above the target for 3 periods.
    High,
    /// `AlarmLow`: below 90% of it for 15 periods.
    Low,
}

/// The name of a target tracking alarm: `TargetTracking-service/C/S-AlarmHigh-UUID`.
pub fn alarm_name(id: &ServiceId, side: AlarmSide, uuid: &str) -> String {
    let s = match side {
        AlarmSide::High => "AlarmHigh",
        AlarmSide::Low => "AlarmLow",
    };
    format!("TargetTracking-{}-{s}-{uuid}", id.resource_id())
}

/// Which side an alarm of a target tracking policy is, from its name.
pub fn side_of(name: &str) -> Option<AlarmSide> {
    if name.contains("-AlarmHigh-") {
        Some(AlarmSide::High)
    } else if name.contains("-AlarmLow-") {
        Some(AlarmSide::Low)
    } else {
        None
    }
}

/// The alarms a target tracking policy creates (AlarmHigh, and AlarmLow unless it does not
/// scale in), with their metric period `period` (the server's metric resolution).
#[allow(clippy::too_many_arguments)]
pub fn tracking_alarms(
    id: &ServiceId,
    policy_arn: &str,
    names: &[String],
    tracking: &Tracking,
    metric: TrackedMetric,
    period: u32,
    region: &str,
    account: &str,
    now: f64,
) -> Vec<AlarmDefinition> {
    names
        .iter()
        .filter_map(|name| {
            let side = side_of(name)?;
            if side == AlarmSide::Low && tracking.disable_scale_in {
                return None;
            }
            let (periods, threshold, comparison) = match side {
                AlarmSide::High => (
                    HIGH_PERIODS,
                    tracking.target_value,
                    ComparisonOperator::GreaterThanThreshold,
                ),
                AlarmSide::Low => (
                    LOW_PERIODS,
                    tracking.target_value * LOW_SHARE,
                    ComparisonOperator::LessThanThreshold,
                ),
            };
            Some(AlarmDefinition {
                name: name.clone(),
                arn: flotilla_metrics::alarm::alarm_arn(region, account, name),
                description: Some(format!(
                    "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy_arn}."
                )),
                actions_enabled: true,
                alarm_actions: vec![policy_arn.to_string()],
                ok_actions: Vec::new(),
                insufficient_data_actions: Vec::new(),
                rule: AlarmRule {
                    metric: metric.metric(id),
                    statistic: Statistic::Average,
                    period,
                    evaluation_periods: periods,
                    datapoints_to_alarm: periods,
                    threshold,
                    comparison,
                    treat_missing_data: TreatMissingData::Missing,
                    unit: Some("Percent".into()),
                },
                updated_at: now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step_req(
        steps: Vec<StepAdjustment>,
        kind: Option<AdjustmentType>,
    ) -> PutScalingPolicyRequest {
        PutScalingPolicyRequest {
            policy_name: "p".into(),
            resource_id: "service/c/s".into(),
            step_scaling_policy_configuration: Some(StepScalingPolicyConfiguration {
                adjustment_type: kind,
                step_adjustments: Some(steps),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn adj(lo: Option<f64>, hi: Option<f64>, n: i32) -> StepAdjustment {
        StepAdjustment {
            metric_interval_lower_bound: lo,
            metric_interval_upper_bound: hi,
            scaling_adjustment: n,
        }
    }

    fn tracking_req(kind: MetricType, value: f64) -> PutScalingPolicyRequest {
        PutScalingPolicyRequest {
            policy_name: "cpu".into(),
            policy_type: Some(PolicyType::TargetTrackingScaling),
            target_tracking_scaling_policy_configuration: Some(
                TargetTrackingScalingPolicyConfiguration {
                    target_value: value,
                    predefined_metric_specification: Some(PredefinedMetricSpecification {
                        predefined_metric_type: kind,
                        resource_label: None,
                    }),
                    ..Default::default()
                },
            ),
            ..Default::default()
        }
    }

    #[test]
    fn step_policies_default_and_check_their_steps() {
        let ok = step_req(
            vec![adj(Some(0.0), Some(10.0), 1), adj(Some(10.0), None, 2)],
            Some(AdjustmentType::ChangeInCapacity),
        );
        let Rule::Steps(s) = check(&ok).unwrap() else {
            panic!("a step rule")
        };
        assert_eq!(s.cooldown, DEFAULT_COOLDOWN);
        assert_eq!(s.aggregation, MetricAggregationType::Average);
        let cases = [
            (
                step_req(vec![], Some(AdjustmentType::ChangeInCapacity)),
                "at least one",
            ),
            (
                step_req(vec![adj(Some(0.0), None, 1)], None),
                "AdjustmentType",
            ),
            (
                step_req(
                    vec![adj(Some(0.0), Some(10.0), 1), adj(Some(5.0), None, 2)],
                    Some(AdjustmentType::ChangeInCapacity),
                ),
                "overlap",
            ),
            (
                step_req(
                    vec![adj(Some(0.0), Some(10.0), 1), adj(Some(20.0), None, 2)],
                    Some(AdjustmentType::ChangeInCapacity),
                ),
                "gap",
            ),
            (
                step_req(
                    vec![adj(Some(5.0), Some(1.0), 1)],
                    Some(AdjustmentType::ChangeInCapacity),
                ),
                "greater than",
            ),
            (
                step_req(
                    vec![adj(None, None, 1)],
                    Some(AdjustmentType::ChangeInCapacity),
                ),
                "lower bound, an upper bound",
            ),
        ];
        for (req, words) in cases {
            let e = check(&req).unwrap_err();
            assert_eq!(
                e.kind,
                crate::error::Kind::Modeled(crate::ErrorShape::ValidationException)
            );
            assert!(e.message.contains(words), "{words}: {}", e.message);
        }
        let mut magnitude = ok.clone();
        if let Some(c) = magnitude.step_scaling_policy_configuration.as_mut() {
            c.min_adjustment_magnitude = Some(2);
        }
        assert!(check(&magnitude)
            .unwrap_err()
            .message
            .contains("PercentChangeInCapacity"));
    }

    #[test]
    fn target_tracking_serves_the_ecs_metrics_only() {
        assert!(matches!(
            check(&tracking_req(
                MetricType::ECSServiceAverageCPUUtilization,
                50.0
            )),
            Ok(Rule::Tracking(_, TrackedMetric::Cpu))
        ));
        assert!(matches!(
            check(&tracking_req(
                MetricType::ECSServiceAverageMemoryUtilization,
                70.0
            )),
            Ok(Rule::Tracking(_, TrackedMetric::Memory))
        ));
        let e = check(&tracking_req(
            MetricType::DynamoDBReadCapacityUtilization,
            50.0,
        ))
        .unwrap_err();
        assert!(
            e.message.contains("DynamoDBReadCapacityUtilization"),
            "{}",
            e.message
        );
        assert!(check(&tracking_req(
            MetricType::ECSServiceAverageCPUUtilization,
            0.0
        ))
        .is_err());
        let mut predictive = tracking_req(MetricType::ECSServiceAverageCPUUtilization, 50.0);
        predictive.policy_type = Some(PolicyType::PredictiveScaling);
        assert!(check(&predictive)
            .unwrap_err()
            .message
            .contains("PredictiveScaling"));
    }

    #[test]
    fn tracking_alarms_are_named_and_shaped_as_the_service_makes_them() {
        let id = ServiceId::parse("service/default/web").unwrap();
        let names = vec![
            alarm_name(&id, AlarmSide::High, "u1"),
            alarm_name(&id, AlarmSide::Low, "u2"),
        ];
        assert_eq!(names[0], "TargetTracking-service/default/web-AlarmHigh-u1");
        let Rule::Tracking(t, m) = check(&tracking_req(
            MetricType::ECSServiceAverageCPUUtilization,
            50.0,
        ))
        .unwrap() else {
            panic!("tracking")
        };
        let alarms = tracking_alarms(&id, "arn:p", &names, &t, m, 60, "us-east-1", "1", 0.0);
        assert_eq!(alarms.len(), 2);
        assert_eq!(alarms[0].rule.threshold, 50.0);
        assert_eq!(alarms[0].rule.evaluation_periods, 3);
        assert_eq!(
            alarms[0].rule.comparison,
            ComparisonOperator::GreaterThanThreshold
        );
        assert_eq!(alarms[1].rule.threshold, 45.0);
        assert_eq!(alarms[1].rule.evaluation_periods, 15);
        assert_eq!(alarms[1].alarm_actions, vec!["arn:p".to_string()]);
        assert_eq!(alarms[0].rule.metric.dimension("ServiceName"), Some("web"));
        let no_in = Tracking {
            disable_scale_in: true,
            ..t
        };
        assert_eq!(
            tracking_alarms(&id, "arn:p", &names, &no_in, m, 60, "r", "a", 0.0).len(),
            1
        );
    }
}
