//! The scaling decisions, pure: what a policy invoked by its alarm sets the desired count to,
//! given the current count, the metric, the target's bounds and suspensions, the policy's past
//! activities and the time. The scaling loop ([`crate::scaling_loop`]) reads those, calls in
//! here and writes what comes out; nothing here reads a store or a clock.
//!
//! - Target tracking ([`target_tracking`]): `ceil(current × metric / target)`, clamped to
//!   `[min, max]`; its AlarmHigh only scales out, its AlarmLow only scales in (and never with
//!   `DisableScaleIn`); a scale-out waits out the policy's scale-out cooldown, a scale-in both
//!   cooldowns (a scale-in never undoes a scale-out still taking effect).
//! - Step scaling ([`step`]): the step whose interval holds the breach (metric − threshold:
//!   lower bound inclusive above the threshold, upper bound inclusive below it), its
//!   adjustment applied as `ChangeInCapacity`, `PercentChangeInCapacity` (rounded as the
//!   service rounds, at least `MinAdjustmentMagnitude`) or `ExactCapacity`, clamped; during the
//!   policy's cooldown a scale-in waits and a scale-out counts from the capacity the cooldown
//!   began at, so the same breach never adds twice.
//! - Bounds ([`bounds`]): a count outside `[min, max]` (a target registered or changed) is
//!   brought inside, as the service does when a target's capacity range changes.
//!
//! Cooldowns are in seconds as the API takes them, counted in metric periods
//! ([`Clock::cooldown`]): with `--metrics-period-seconds N` a second of cooldown lasts N/60 s.

use crate::shapes::{AdjustmentType, MetricAggregationType, StepAdjustment};

/// Whether a change adds or removes capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// More tasks.
    Out,
    /// Fewer tasks.
    In,
}

impl Direction {
    /// The direction from `from` to `to` (`None` when equal).
    pub fn of(from: u32, to: u32) -> Option<Direction> {
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => Some(Direction::Out),
            std::cmp::Ordering::Less => Some(Direction::In),
            std::cmp::Ordering::Equal => None,
        }
    }
}

/// A scalable target's range and suspensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// MinCapacity.
    pub min: u32,
    /// MaxCapacity.
    pub max: u32,
    /// `DynamicScalingInSuspended`.
    pub scale_in_suspended: bool,
    /// `DynamicScalingOutSuspended`.
    pub scale_out_suspended: bool,
}

impl Target {
    fn clamp(&self, n: i64) -> u32 {
        let n = n.clamp(i64::from(self.min), i64::from(self.max.max(self.min)));
        u32::try_from(n).unwrap_or(self.min)
    }
}

/// A past successful change by a policy, as cooldowns read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Past {
    /// When it was made, epoch seconds.
    pub at: f64,
    /// The desired count before.
    pub from: u32,
    /// The desired count set.
    pub to: u32,
}

impl Past {
    fn direction(&self) -> Option<Direction> {
        Direction::of(self.from, self.to)
    }
}

/// How long a cooldown lasts on this server: cooldowns are counted in metric periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The metric period, seconds (60 unless `--metrics-period-seconds` says otherwise).
    pub period: u32,
}

impl Clock {
    /// A cooldown of `seconds` (as the API takes it), in seconds of this server's time.
    pub fn cooldown(&self, seconds: i32) -> f64 {
        f64::from(seconds.max(0)) * f64::from(self.period) / 60.0
    }
}

/// Why a policy invoked did not change the count (for the loop's debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The computed count is the current one (or on the wrong side for this alarm).
    NoChange,
    /// Dynamic scaling in that direction is suspended on the target.
    Suspended,
    /// The policy does not scale in (`DisableScaleIn`).
    ScaleInDisabled,
    /// A cooldown is running.
    Cooldown,
    /// No step adjustment covers the breach.
    NoStep,
}

/// What an invocation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Set the desired count to this.
    Set(u32),
    /// Change nothing.
    Keep(Kept),
}

/// Which of a target tracking policy's alarms is in ALARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// AlarmHigh: the metric is above the target; may scale out.
    High,
    /// AlarmLow: the metric is below the target; may scale in.
    Low,
}

/// A target tracking policy's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracking {
    /// TargetValue.
    pub target_value: f64,
    /// ScaleOutCooldown, seconds.
    pub scale_out_cooldown: i32,
    /// ScaleInCooldown, seconds.
    pub scale_in_cooldown: i32,
    /// DisableScaleIn.
    pub disable_scale_in: bool,
}

/// The count a target tracking policy wants for `metric` at `current`, before bounds:
/// `ceil(current × metric / target)`.
pub fn tracked_count(current: u32, metric: f64, target_value: f64) -> i64 {
    if target_value.is_nan() || target_value <= 0.0 || !metric.is_finite() {
        return i64::from(current);
    }
    let wanted = (f64::from(current) * metric / target_value).ceil();
    #[allow(clippy::cast_possible_truncation)]
    let wanted = wanted.clamp(0.0, 1e9) as i64;
    wanted
}

fn in_cooldown(history: &[Past], dir: Direction, seconds: f64, now: f64) -> bool {
    history
        .iter()
        .filter(|p| p.direction() == Some(dir))
        .any(|p| now < p.at + seconds)
}

/// A target tracking policy invoked by its alarm on `side` (see the module docs).
#[allow(clippy::too_many_arguments)] // The decision's inputs, each one a plain value.
pub fn target_tracking(
    current: u32,
    metric: f64,
    side: Side,
    policy: &Tracking,
    target: &Target,
    history: &[Past],
    clock: Clock,
    now: f64,
) -> Decision {
    let wanted = target.clamp(tracked_count(current, metric, policy.target_value));
    match (side, Direction::of(current, wanted)) {
        (Side::High, Some(Direction::Out)) => {
            if target.scale_out_suspended {
                Decision::Keep(Kept::Suspended)
            } else if in_cooldown(
                history,
                Direction::Out,
                clock.cooldown(policy.scale_out_cooldown),
                now,
            ) {
                Decision::Keep(Kept::Cooldown)
            } else {
                Decision::Set(wanted)
            }
        }
        (Side::Low, Some(Direction::In)) => {
            if policy.disable_scale_in {
                Decision::Keep(Kept::ScaleInDisabled)
            } else if target.scale_in_suspended {
                Decision::Keep(Kept::Suspended)
            } else if in_cooldown(
                history,
                Direction::In,
                clock.cooldown(policy.scale_in_cooldown),
                now,
            ) || in_cooldown(
                history,
                Direction::Out,
                clock.cooldown(policy.scale_out_cooldown),
                now,
            ) {
                Decision::Keep(Kept::Cooldown)
            } else {
                Decision::Set(wanted)
            }
        }
        _ => Decision::Keep(Kept::NoChange),
    }
}

/// A step scaling policy's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps {
    /// AdjustmentType.
    pub adjustment_type: AdjustmentType,
    /// StepAdjustments.
    pub adjustments: Vec<StepAdjustment>,
    /// MinAdjustmentMagnitude (PercentChangeInCapacity only).
    pub min_adjustment_magnitude: Option<i32>,
    /// Cooldown, seconds.
    pub cooldown: i32,
    /// MetricAggregationType (Average when unset).
    pub aggregation: MetricAggregationType,
}

/// The datapoints of the alarm's evaluation range aggregated as the policy says.
pub fn aggregate(values: &[f64], how: MetricAggregationType) -> Option<f64> {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    Some(match how {
        MetricAggregationType::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
        MetricAggregationType::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        MetricAggregationType::Average => {
            #[allow(clippy::cast_precision_loss)]
            let n = values.len() as f64;
            values.iter().sum::<f64>() / n
        }
    })
}

/// The step adjustment that covers `breach` (metric − threshold): above the threshold the
/// lower bound is inclusive and the upper exclusive, below it the other way round.
pub fn step_for(adjustments: &[StepAdjustment], breach: f64) -> Option<&StepAdjustment> {
    adjustments.iter().find(|s| {
        let lo = s.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
        let hi = s.metric_interval_upper_bound.unwrap_or(f64::INFINITY);
        if breach >= 0.0 {
            lo <= breach && breach < hi
        } else {
            lo < breach && breach <= hi
        }
    })
}

/// The change in capacity of `PercentChangeInCapacity` `percent` at `current`, rounded as the
/// service rounds (above 1 down, between 0 and 1 to 1, between -1 and 0 to -1, below -1 up)
/// and at least `min_magnitude` in size.
pub fn percent_change(current: u32, percent: i32, min_magnitude: Option<i32>) -> i64 {
    let raw = f64::from(current) * f64::from(percent) / 100.0;
    #[allow(clippy::cast_possible_truncation)]
    let rounded = if raw > 1.0 {
        raw.floor() as i64
    } else if raw > 0.0 {
        1
    } else if raw == 0.0 {
        0
    } else if raw > -1.0 {
        -1
    } else {
        raw.ceil() as i64
    };
    let min = i64::from(min_magnitude.unwrap_or(0).max(0));
    if rounded != 0 && rounded.abs() < min {
        rounded.signum() * min
    } else {
        rounded
    }
}

fn adjusted(base: u32, adjustment: &StepAdjustment, policy: &Steps) -> i64 {
    let a = adjustment.scaling_adjustment;
    match policy.adjustment_type {
        AdjustmentType::ChangeInCapacity => i64::from(base) + i64::from(a),
        AdjustmentType::PercentChangeInCapacity => {
            i64::from(base) + percent_change(base, a, policy.min_adjustment_magnitude)
        }
        AdjustmentType::ExactCapacity => i64::from(a),
    }
}

/// A step scaling policy invoked by an alarm whose metric breached its threshold by `breach`
/// (see the module docs).
pub fn step(
    current: u32,
    breach: f64,
    policy: &Steps,
    target: &Target,
    history: &[Past],
    clock: Clock,
    now: f64,
) -> Decision {
    let Some(adjustment) = step_for(&policy.adjustments, breach) else {
        return Decision::Keep(Kept::NoStep);
    };
    let cooldown = clock.cooldown(policy.cooldown);
    let running = history
        .iter()
        .filter(|p| p.direction().is_some() && now < p.at + cooldown)
        .max_by(|a, b| a.at.total_cmp(&b.at));
    let wanted = target.clamp(adjusted(current, adjustment, policy));
    match Direction::of(current, wanted) {
        None => Decision::Keep(Kept::NoChange),
        Some(Direction::Out) if target.scale_out_suspended => Decision::Keep(Kept::Suspended),
        Some(Direction::In) if target.scale_in_suspended => Decision::Keep(Kept::Suspended),
        Some(Direction::In) if running.is_some() => Decision::Keep(Kept::Cooldown),
        Some(Direction::Out) => match running {
            // During the cooldown the capacity the last change added counts toward this one.
            Some(p) => {
                let from_base = target.clamp(adjusted(p.from, adjustment, policy));
                if from_base > current {
                    Decision::Set(from_base)
                } else {
                    Decision::Keep(Kept::Cooldown)
                }
            }
            None => Decision::Set(wanted),
        },
        Some(Direction::In) => Decision::Set(wanted),
    }
}

/// A count outside the target's range brought inside it, and the bound that did it.
pub fn bounds(current: u32, target: &Target) -> Option<(u32, Bound)> {
    if current < target.min {
        Some((target.min, Bound::Min))
    } else if current > target.max {
        Some((target.max, Bound::Max))
    } else {
        None
    }
}

/// Which bound of the range moved the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// MinCapacity.
    Min,
    /// MaxCapacity.
    Max,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLOCK: Clock = Clock { period: 60 };

    fn target(min: u32, max: u32) -> Target {
        Target {
            min,
            max,
            scale_in_suspended: false,
            scale_out_suspended: false,
        }
    }

    fn tracking(value: f64) -> Tracking {
        Tracking {
            target_value: value,
            scale_out_cooldown: 300,
            scale_in_cooldown: 300,
            disable_scale_in: false,
        }
    }

    fn step_adj(lo: Option<f64>, hi: Option<f64>, n: i32) -> StepAdjustment {
        StepAdjustment {
            metric_interval_lower_bound: lo,
            metric_interval_upper_bound: hi,
            scaling_adjustment: n,
        }
    }

    #[test]
    fn target_tracking_scales_out_to_the_ratio_and_within_max() {
        let t = target(1, 4);
        let p = tracking(50.0);
        // 1 task at 100% of a 50% target wants 2; 2 at 100% want 4; 3 at 100% want 6 -> 4.
        let check =
            |current, metric| target_tracking(current, metric, Side::High, &p, &t, &[], CLOCK, 0.0);
        assert_eq!(check(1, 100.0), Decision::Set(2));
        assert_eq!(check(2, 100.0), Decision::Set(4));
        assert_eq!(check(3, 100.0), Decision::Set(4));
        assert_eq!(check(4, 100.0), Decision::Keep(Kept::NoChange));
        // 1 task at 51%: ceil(1.02) = 2.
        assert_eq!(check(1, 51.0), Decision::Set(2));
    }

    #[test]
    fn target_tracking_scales_in_only_from_its_low_alarm() {
        let t = target(1, 4);
        let p = tracking(50.0);
        assert_eq!(
            target_tracking(4, 10.0, Side::Low, &p, &t, &[], CLOCK, 0.0),
            Decision::Set(1)
        );
        assert_eq!(
            target_tracking(4, 30.0, Side::Low, &p, &t, &[], CLOCK, 0.0),
            Decision::Set(3)
        );
        // The high alarm never scales in, the low one never out.
        assert_eq!(
            target_tracking(4, 10.0, Side::High, &p, &t, &[], CLOCK, 0.0),
            Decision::Keep(Kept::NoChange)
        );
        assert_eq!(
            target_tracking(1, 90.0, Side::Low, &p, &t, &[], CLOCK, 0.0),
            Decision::Keep(Kept::NoChange)
        );
        let no_in = Tracking {
            disable_scale_in: true,
            ..p
        };
        assert_eq!(
            target_tracking(4, 10.0, Side::Low, &no_in, &t, &[], CLOCK, 0.0),
            Decision::Keep(Kept::ScaleInDisabled)
        );
    }

    #[test]
    fn cooldowns_count_in_metric_periods() {
        let t = target(1, 10);
        let p = tracking(50.0);
        let out = [Past {
            at: 100.0,
            from: 1,
            to: 2,
        }];
        // 300 s of cooldown at a 60 s period: 300 s; at a 6 s period: 30 s.
        let fast = Clock { period: 6 };
        assert_eq!(fast.cooldown(300), 30.0);
        assert_eq!(
            target_tracking(2, 100.0, Side::High, &p, &t, &out, CLOCK, 399.0),
            Decision::Keep(Kept::Cooldown)
        );
        assert_eq!(
            target_tracking(2, 100.0, Side::High, &p, &t, &out, CLOCK, 400.0),
            Decision::Set(4)
        );
        assert_eq!(
            target_tracking(2, 100.0, Side::High, &p, &t, &out, fast, 131.0),
            Decision::Set(4)
        );
        // A scale-in waits for the scale-out's cooldown too.
        assert_eq!(
            target_tracking(2, 0.0, Side::Low, &p, &t, &out, fast, 120.0),
            Decision::Keep(Kept::Cooldown)
        );
        assert_eq!(
            target_tracking(2, 0.0, Side::Low, &p, &t, &out, fast, 130.0),
            Decision::Set(1)
        );
    }

    #[test]
    fn suspensions_stop_their_direction_only() {
        let mut t = target(1, 4);
        t.scale_out_suspended = true;
        let p = tracking(50.0);
        assert_eq!(
            target_tracking(1, 100.0, Side::High, &p, &t, &[], CLOCK, 0.0),
            Decision::Keep(Kept::Suspended)
        );
        assert_eq!(
            target_tracking(4, 0.0, Side::Low, &p, &t, &[], CLOCK, 0.0),
            Decision::Set(1)
        );
    }

    #[test]
    fn steps_are_chosen_by_the_breach_with_inclusive_bounds_toward_the_threshold() {
        let steps = vec![
            step_adj(Some(0.0), Some(10.0), 1),
            step_adj(Some(10.0), None, 3),
            step_adj(None, Some(0.0), -1),
        ];
        assert_eq!(step_for(&steps, 0.0).unwrap().scaling_adjustment, 1);
        assert_eq!(step_for(&steps, 9.99).unwrap().scaling_adjustment, 1);
        assert_eq!(step_for(&steps, 10.0).unwrap().scaling_adjustment, 3);
        assert_eq!(step_for(&steps, -5.0).unwrap().scaling_adjustment, -1);
        let only_up = vec![step_adj(Some(0.0), None, 1)];
        assert!(step_for(&only_up, -1.0).is_none());
    }

    #[test]
    fn percent_changes_round_as_the_service_rounds() {
        assert_eq!(percent_change(10, 25, None), 2); // 2.5 -> 2
        assert_eq!(percent_change(2, 25, None), 1); // 0.5 -> 1
        assert_eq!(percent_change(2, -25, None), -1); // -0.5 -> -1
        assert_eq!(percent_change(10, -67, None), -6); // -6.7 -> -6
        assert_eq!(percent_change(10, 25, Some(5)), 5);
        assert_eq!(percent_change(10, -25, Some(5)), -5);
        assert_eq!(percent_change(0, 50, Some(2)), 0);
    }

    fn steps(kind: AdjustmentType, adj: i32) -> Steps {
        Steps {
            adjustment_type: kind,
            adjustments: vec![
                step_adj(Some(0.0), None, adj),
                step_adj(None, Some(0.0), -1),
            ],
            min_adjustment_magnitude: None,
            cooldown: 60,
            aggregation: MetricAggregationType::Average,
        }
    }

    #[test]
    fn step_adjustment_types() {
        let t = target(1, 10);
        let check = |kind, adj, current| step(current, 5.0, &steps(kind, adj), &t, &[], CLOCK, 0.0);
        assert_eq!(
            check(AdjustmentType::ChangeInCapacity, 2, 3),
            Decision::Set(5)
        );
        assert_eq!(
            check(AdjustmentType::PercentChangeInCapacity, 50, 4),
            Decision::Set(6)
        );
        assert_eq!(check(AdjustmentType::ExactCapacity, 7, 3), Decision::Set(7));
        assert_eq!(
            check(AdjustmentType::ChangeInCapacity, 20, 3),
            Decision::Set(10)
        );
        assert_eq!(
            step(
                3,
                -5.0,
                &steps(AdjustmentType::ChangeInCapacity, 2),
                &t,
                &[],
                CLOCK,
                0.0
            ),
            Decision::Set(2)
        );
    }

    #[test]
    fn a_step_cooldown_blocks_scale_in_and_counts_the_last_scale_out() {
        let t = target(1, 10);
        let p = steps(AdjustmentType::ChangeInCapacity, 2);
        let last = [Past {
            at: 0.0,
            from: 2,
            to: 4,
        }];
        // The same breach again within the cooldown: 2 + 2 is not above 4.
        assert_eq!(
            step(4, 5.0, &p, &t, &last, CLOCK, 30.0),
            Decision::Keep(Kept::Cooldown)
        );
        // A bigger step within the cooldown adds only what the last change did not.
        let bigger = Steps {
            adjustments: vec![step_adj(Some(0.0), None, 5)],
            ..p.clone()
        };
        assert_eq!(
            step(4, 5.0, &bigger, &t, &last, CLOCK, 30.0),
            Decision::Set(7)
        );
        assert_eq!(
            step(4, -5.0, &p, &t, &last, CLOCK, 30.0),
            Decision::Keep(Kept::Cooldown)
        );
        assert_eq!(step(4, 5.0, &p, &t, &last, CLOCK, 60.0), Decision::Set(6));
    }

    #[test]
    fn bounds_bring_the_count_into_range() {
        assert_eq!(bounds(0, &target(1, 4)), Some((1, Bound::Min)));
        assert_eq!(bounds(6, &target(1, 4)), Some((4, Bound::Max)));
        assert_eq!(bounds(2, &target(1, 4)), None);
    }

    #[test]
    fn aggregation_types() {
        let v = [1.0, 5.0, 3.0];
        assert_eq!(aggregate(&v, MetricAggregationType::Average), Some(3.0));
        assert_eq!(aggregate(&v, MetricAggregationType::Minimum), Some(1.0));
        assert_eq!(aggregate(&v, MetricAggregationType::Maximum), Some(5.0));
        assert_eq!(aggregate(&[], MetricAggregationType::Maximum), None);
    }

    proptest! {
        /// Whatever the metric, history and time, a decision stays within [min, max], moves
        /// only in the alarm's direction, and never scales in with DisableScaleIn.
        #[test]
        fn target_tracking_stays_in_range_and_direction(
            current in 0u32..20,
            metric in 0.0f64..400.0,
            value in 1.0f64..100.0,
            min in 0u32..5,
            extra in 0u32..10,
            high in any::<bool>(),
            disable_in in any::<bool>(),
            past in proptest::collection::vec((0.0f64..1000.0, 0u32..20, 0u32..20), 0..4),
            now in 0.0f64..2000.0,
        ) {
            let t = target(min, min + extra);
            let p = Tracking { disable_scale_in: disable_in, ..tracking(value) };
            let history: Vec<Past> = past.into_iter().map(|(at, from, to)| Past { at, from, to }).collect();
            let side = if high { Side::High } else { Side::Low };
            if let Decision::Set(n) = target_tracking(current, metric, side, &p, &t, &history, CLOCK, now) {
                prop_assert!(n >= t.min && n <= t.max);
                if high { prop_assert!(n > current) } else { prop_assert!(n < current && !disable_in) }
            }
        }

        /// A step decision stays within [min, max] and never scales in during its cooldown.
        #[test]
        fn steps_stay_in_range(
            current in 0u32..20,
            breach in -50.0f64..50.0,
            adj in -5i32..6,
            min in 0u32..5,
            extra in 0u32..10,
            last_at in proptest::option::of(0.0f64..100.0),
            now in 0.0f64..200.0,
        ) {
            let t = target(min, min + extra);
            let p = Steps {
                adjustments: vec![step_adj(Some(0.0), None, adj), step_adj(None, Some(0.0), -adj)],
                ..steps(AdjustmentType::ChangeInCapacity, adj)
            };
            let history: Vec<Past> = last_at.map(|at| Past { at, from: 2, to: 3 }).into_iter().collect();
            if let Decision::Set(n) = step(current, breach, &p, &t, &history, CLOCK, now) {
                prop_assert!(n >= t.min && n <= t.max);
                let cooling = history.iter().any(|h| now < h.at + 60.0);
                prop_assert!(!(cooling && n < current));
            }
        }
    }
}
