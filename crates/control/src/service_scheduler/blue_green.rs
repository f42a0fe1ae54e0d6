//! Blue/green, linear and canary deployments (ECS's `BLUE_GREEN`, `LINEAR` and `CANARY`
//! deployment strategies), as pure decisions.
//!
//! A service with one of these strategies has two target groups per load balancer: its own
//! (`targetGroupArn`, [`Side::Primary`]) and the alternate one of its `advancedConfiguration`
//! ([`Side::Alternate`]). Each deployment's tasks register in one of them (its
//! [`DeploymentRecord::side`]); the production deployment (blue) holds one, a new deployment
//! (green) takes the other, and the roles swap when it completes, so the next deployment goes
//! the other way.
//!
//! A green deployment carries its [`Progress`] through ECS's lifecycle stages ([`Stage`]):
//! RECONCILE_SERVICE (older deployments than blue are stopped), PRE_SCALE_UP, SCALE_UP (green
//! starts at the full desired count, and stays there until every task is healthy in its target
//! group), POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test listener rule goes to green),
//! POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (the production listener rule's weights
//! move to green: all at once for BLUE_GREEN, `stepPercent` at a time with
//! `stepBakeTimeInMinutes` between for LINEAR, `canaryPercent` then the rest after
//! `canaryBakeTimeInMinutes` for CANARY), POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME
//! (`bakeTimeInMinutes`, during which a rollback only moves the weights back) and CLEAN_UP
//! (blue's tasks are stopped; once they are gone the deployment COMPLETES).
//!
//! [`weights`] is what the listener rules should say for the deployments as stored: the
//! caller (the service loop) writes them before it makes the round's stops, so blue stops only
//! after production traffic has left it. [`roll_back`] returns production traffic to blue at
//! once: the green deployment FAILS, blue becomes PRIMARY again, and the rolling rules then
//! stop green's tasks. What starts a rollback: the circuit breaker, a green task failing its
//! health checks once green is up (SCALE_UP done), and StopServiceDeployment with ROLLBACK.
//!
//! Bake times are in minutes; the caller says how many seconds a minute lasts (60, or less
//! for tests: `flotilla server --deployment-minute-seconds`).

use super::steps::{self, Conclusion, StopWhy};
use super::{
    circuit_breaker_threshold, lost, Actions, DeploymentRecord, DeploymentStatus, ServiceEvent,
    ServiceSpec, TaskObs,
};
use flotilla_model::shapes::{DeploymentRolloutState, ServiceDeploymentLifecycleStage};
use serde::{Deserialize, Serialize};

/// Which of a blue/green service's two target groups a deployment's tasks register in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Side {
    /// The load balancer's `targetGroupArn`.
    #[default]
    Primary,
    /// Its `advancedConfiguration.alternateTargetGroupArn`.
    Alternate,
}

impl Side {
    /// The other target group.
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Alternate,
            Side::Alternate => Side::Primary,
        }
    }

    /// Whether it is [`Side::Primary`] (the stored default).
    pub fn is_primary(&self) -> bool {
        *self == Side::Primary
    }
}

/// How production traffic moves to green.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Shift {
    /// All at once.
    BlueGreen,
    /// `step_percent` at a time, `step_bake_minutes` between steps.
    Linear {
        /// `stepPercent` (3.0 to 100.0).
        step_percent: f64,
        /// `stepBakeTimeInMinutes`.
        step_bake_minutes: u32,
    },
    /// `canary_percent`, then the rest after `canary_bake_minutes`.
    Canary {
        /// `canaryPercent` (0.1 to 100.0).
        canary_percent: f64,
        /// `canaryBakeTimeInMinutes`.
        canary_bake_minutes: u32,
    },
}

impl Shift {
    /// Green's share of production traffic (whole percent) after `step` shifts: 0 before the
    /// first, 100 at the last, never decreasing.
    pub fn percent_at(self, step: u32) -> u32 {
        if step == 0 {
            return 0;
        }
        match self {
            Shift::BlueGreen => 100,
            Shift::Linear { step_percent, .. } => {
                // Tenths, as the values are given: 3.3 per step is 3, 6, 9, 13, ...
                let tenths = (step_percent * 10.0).round().max(1.0) as u64;
                let p = (u64::from(step) * tenths / 10).clamp(1, 100);
                u32::try_from(p).unwrap_or(100)
            }
            Shift::Canary { canary_percent, .. } => {
                if step >= 2 {
                    100
                } else {
                    (canary_percent.round() as u32).clamp(1, 100)
                }
            }
        }
    }

    /// Minutes to wait after a shift before the next one.
    pub fn bake_minutes(self) -> u32 {
        match self {
            Shift::BlueGreen => 0,
            Shift::Linear {
                step_bake_minutes, ..
            } => step_bake_minutes,
            Shift::Canary {
                canary_bake_minutes,
                ..
            } => canary_bake_minutes,
        }
    }
}

/// ECS's lifecycle stages of a blue/green, linear or canary deployment, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// Older deployments than blue are being stopped.
    ReconcileService,
    /// Green has not started.
    PreScaleUp,
    /// Green starts at the full desired count; done when every task is healthy.
    ScaleUp,
    /// Green is up; blue has all the traffic.
    PostScaleUp,
    /// Test traffic moves to green.
    TestTrafficShift,
    /// Green has the test traffic.
    PostTestTrafficShift,
    /// Production traffic moves to green.
    ProductionTrafficShift,
    /// Green has the production traffic.
    PostProductionTrafficShift,
    /// Both run; a rollback only moves the traffic back.
    BakeTime,
    /// Blue is stopped.
    CleanUp,
}

impl Stage {
    /// The stage as DescribeServiceDeployments shows it.
    pub fn shape(self) -> ServiceDeploymentLifecycleStage {
        use ServiceDeploymentLifecycleStage as L;
        match self {
            Stage::ReconcileService => L::ReconcileService,
            Stage::PreScaleUp => L::PreScaleUp,
            Stage::ScaleUp => L::ScaleUp,
            Stage::PostScaleUp => L::PostScaleUp,
            Stage::TestTrafficShift => L::TestTrafficShift,
            Stage::PostTestTrafficShift => L::PostTestTrafficShift,
            Stage::ProductionTrafficShift => L::ProductionTrafficShift,
            Stage::PostProductionTrafficShift => L::PostProductionTrafficShift,
            Stage::BakeTime => L::BakeTime,
            Stage::CleanUp => L::CleanUp,
        }
    }
}

/// A green deployment's progress (stored in its [`DeploymentRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// How production traffic moves.
    pub shift: Shift,
    /// `bakeTimeInMinutes`.
    pub bake_minutes: u32,
    /// The blue deployment (the one with production traffic when green started).
    pub blue: String,
    /// Where it is.
    pub stage: Stage,
    /// When the stage (or the current shift step) began, epoch seconds.
    pub since: f64,
    /// Production shifts made so far.
    pub step: u32,
    /// The test listener rule sends to green.
    pub test_on_green: bool,
}

impl Progress {
    /// A new green deployment replacing `blue`; `reconcile`: older deployments than blue are
    /// still there to stop.
    pub fn new(shift: Shift, bake_minutes: u32, blue: String, reconcile: bool, now: f64) -> Self {
        Progress {
            shift,
            bake_minutes,
            blue,
            stage: if reconcile {
                Stage::ReconcileService
            } else {
                Stage::PreScaleUp
            },
            since: now,
            step: 0,
            test_on_green: false,
        }
    }

    /// Green's share of production traffic now (percent).
    pub fn green_percent(&self) -> u32 {
        self.shift.percent_at(self.step)
    }

    fn enter(&mut self, stage: Stage, now: f64) {
        self.stage = stage;
        self.since = now;
    }
}

/// What the stage machine looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The desired count.
    pub desired: u32,
    /// Green tasks RUNNING and healthy in every target group.
    pub green_healthy: u32,
    /// Tasks of deployments older than blue that have not stopped.
    pub older_live: u32,
}

/// Moves `p` through every stage whose condition holds at `now` (a minute lasting `minute`
/// seconds); answers the production shares reached by the shifts it made, in order.
pub fn advance(p: &mut Progress, seen: &Seen, minute: f64, now: f64) -> Vec<u32> {
    let waited = |p: &Progress, minutes: u32| now >= p.since + f64::from(minutes) * minute;
    let mut shifts = Vec::new();
    loop {
        let before = (p.stage, p.step, p.test_on_green);
        match p.stage {
            Stage::ReconcileService if seen.older_live == 0 => p.enter(Stage::PreScaleUp, now),
            Stage::PreScaleUp => p.enter(Stage::ScaleUp, now),
            Stage::ScaleUp if seen.green_healthy >= seen.desired => {
                p.enter(Stage::PostScaleUp, now)
            }
            Stage::PostScaleUp => p.enter(Stage::TestTrafficShift, now),
            Stage::TestTrafficShift => {
                p.test_on_green = true;
                p.enter(Stage::PostTestTrafficShift, now);
            }
            Stage::PostTestTrafficShift => {
                p.enter(Stage::ProductionTrafficShift, now);
                p.step = 1;
                shifts.push(p.green_percent());
            }
            Stage::ProductionTrafficShift if p.green_percent() >= 100 => {
                p.enter(Stage::PostProductionTrafficShift, now)
            }
            Stage::ProductionTrafficShift if waited(p, p.shift.bake_minutes()) => {
                p.step += 1;
                p.since = now;
                shifts.push(p.green_percent());
            }
            Stage::PostProductionTrafficShift => p.enter(Stage::BakeTime, now),
            Stage::BakeTime if waited(p, p.bake_minutes) => p.enter(Stage::CleanUp, now),
            _ => {}
        }
        if (p.stage, p.step, p.test_on_green) == before {
            return shifts;
        }
    }
}

/// The weights the listener rules should give (the service's target group, the alternate),
/// each pair summing to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// The production listener rule.
    pub production: (u32, u32),
    /// The test listener rule.
    pub test: (u32, u32),
}

fn split(green_side: Side, green: u32) -> (u32, u32) {
    let green = green.min(100);
    match green_side {
        Side::Primary => (green, 100 - green),
        Side::Alternate => (100 - green, green),
    }
}

/// What the listener rules should say for these deployments (newest first): a green deployment
/// that has not COMPLETED gets its progress's shares, the others all of it; with no deployment,
/// the service's own target group all of it.
pub fn weights(deps: &[DeploymentRecord]) -> Weights {
    let Some(p) = deps.first() else {
        return Weights {
            production: (100, 0),
            test: (100, 0),
        };
    };
    match &p.blue_green {
        Some(g) if p.rollout_state != DeploymentRolloutState::Completed => Weights {
            production: split(p.side, g.green_percent()),
            test: split(p.side, if g.test_on_green { 100 } else { 0 }),
        },
        _ => Weights {
            production: split(p.side, 100),
            test: split(p.side, 100),
        },
    }
}

/// Why a green deployment is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackWhy {
    /// The circuit breaker: tasks failed to start.
    CircuitBreaker,
    /// A green task failed its health checks after green was up.
    Unhealthy,
    /// StopServiceDeployment with `stopType: ROLLBACK`.
    Stopped,
}

impl RollbackWhy {
    fn reason(self) -> &'static str {
        match self {
            RollbackWhy::CircuitBreaker => "ECS deployment circuit breaker: tasks failed to start.",
            RollbackWhy::Unhealthy => {
                "ECS deployment failed: tasks of the new service revision failed their health checks."
            }
            RollbackWhy::Stopped => "ECS deployment stopped by StopServiceDeployment (ROLLBACK).",
        }
    }

    fn short(self) -> &'static str {
        match self {
            RollbackWhy::CircuitBreaker => "tasks failed to start",
            RollbackWhy::Unhealthy => "tasks failed their health checks",
            RollbackWhy::Stopped => "StopServiceDeployment",
        }
    }
}

/// Rolls a green deployment (the first of `deps`) back to its blue one: green FAILS (ACTIVE,
/// desired 0, linked to blue by `rolled_back_to`), blue becomes PRIMARY with the desired count,
/// so [`weights`] gives blue all the traffic again. `None` (nothing changed) when the first
/// deployment is no green deployment or its blue one is gone.
pub fn roll_back(
    deps: &mut Vec<DeploymentRecord>,
    why: RollbackWhy,
    desired: u32,
    now: f64,
) -> Option<Vec<ServiceEvent>> {
    let blue_id = deps.first()?.blue_green.as_ref()?.blue.clone();
    let at = deps.iter().position(|d| d.id == blue_id)?;
    let mut blue = deps.remove(at);
    let green = &mut deps[0];
    green.rollout_state = DeploymentRolloutState::Failed;
    green.rollout_state_reason = why.reason().into();
    green.status = DeploymentStatus::Active;
    green.desired_count = 0;
    green.rolled_back_to = Some(blue_id.clone());
    green.updated_at = now;
    let green_id = green.id.clone();
    blue.status = DeploymentStatus::Primary;
    blue.desired_count = desired;
    blue.updated_at = now;
    deps.insert(0, blue);
    let mut events = Vec::new();
    if why == RollbackWhy::CircuitBreaker {
        events.push(ServiceEvent::CircuitBreakerTripped {
            deployment: green_id.clone(),
        });
    }
    events.push(ServiceEvent::TrafficRolledBack {
        deployment: green_id,
        to: blue_id,
        reason: why.short().into(),
    });
    Some(events)
}

/// The decisions for one REPLICA service whose strategy is BLUE_GREEN, LINEAR or CANARY: a
/// green deployment in progress is driven through its stages (see the module docs); anything
/// else (no green deployment in progress, a draining service) is a rolling round
/// ([`super::compute_service_actions`]).
pub fn compute_blue_green_actions(
    spec: &ServiceSpec,
    deployments: &[DeploymentRecord],
    tasks: &[TaskObs],
    minute: f64,
    now: f64,
) -> Actions {
    let in_progress = deployments.first().is_some_and(|d| {
        d.blue_green.is_some() && d.rollout_state == DeploymentRolloutState::InProgress
    });
    if !in_progress || spec.draining {
        return super::compute_service_actions(spec, deployments, tasks, now);
    }
    let mut out = Actions {
        replaced: lost::remembered(spec, tasks),
        ..Actions::default()
    };
    let visible = steps::visible(tasks);
    let desired = spec.desired;
    let mut deps = deployments.to_vec();
    let failures = steps::count_failures(&mut deps, &visible);
    let green_id = deps[0].id.clone();
    let Some(mut progress) = deps[0].blue_green.clone() else {
        return super::compute_service_actions(spec, deployments, tasks, now);
    };
    let live = steps::live(&visible);
    let green: Vec<&TaskObs> = live
        .iter()
        .copied()
        .filter(|t| t.deployment == green_id)
        .collect();
    // Failures: the circuit breaker, or a green task failing its health checks once green is up.
    let tripped = spec.circuit_breaker.is_some()
        && failures.count >= circuit_breaker_threshold(desired)
        && deps[0].rollout_state == DeploymentRolloutState::InProgress;
    let sick = progress.stage > Stage::ScaleUp && green.iter().any(|t| t.unhealthy);
    if tripped || sick {
        let why = if tripped {
            RollbackWhy::CircuitBreaker
        } else {
            RollbackWhy::Unhealthy
        };
        let wants_rollback = !tripped || spec.circuit_breaker == Some(true);
        if wants_rollback {
            if let Some(events) = roll_back(&mut deps, why, desired, now) {
                // Blue is PRIMARY again: the rolling rules stop green's tasks.
                let mut a = super::compute_service_actions(spec, &deps, tasks, now);
                a.events.splice(0..0, events);
                return a;
            }
        }
        if tripped {
            let p = &mut deps[0];
            p.rollout_state = DeploymentRolloutState::Failed;
            p.rollout_state_reason = why.reason().into();
            p.updated_at = now;
            out.events.push(ServiceEvent::CircuitBreakerTripped {
                deployment: green_id.clone(),
            });
        }
    }
    let older_live = live
        .iter()
        .filter(|t| t.deployment != green_id && t.deployment != progress.blue)
        .count();
    let seen = Seen {
        desired,
        green_healthy: u32::try_from(green.iter().filter(|t| t.healthy && !t.unhealthy).count())
            .unwrap_or(u32::MAX),
        older_live: u32::try_from(older_live).unwrap_or(u32::MAX),
    };
    if deps[0].rollout_state == DeploymentRolloutState::InProgress {
        let before = progress.clone();
        for percent in advance(&mut progress, &seen, minute, now) {
            out.events.push(ServiceEvent::TrafficShifted {
                deployment: green_id.clone(),
                percent,
            });
        }
        if progress != before {
            deps[0].updated_at = now;
        }
        deps[0].blue_green = Some(progress.clone());
    }
    // Stops: green's unhealthy tasks and its surplus; every older deployment's tasks; blue's in
    // CLEAN_UP (production traffic left it in an earlier stage, or earlier in this round).
    let mut stopping: Vec<(&TaskObs, StopWhy)> = Vec::new();
    let mut green_kept: Vec<&TaskObs> = Vec::new();
    for &t in &green {
        if t.unhealthy {
            stopping.push((t, StopWhy::Unhealthy));
        } else {
            green_kept.push(t);
        }
    }
    green_kept.sort_by_key(|t| (t.phase != super::Phase::Pending, !t.protected));
    let surplus = green_kept.len().saturating_sub(desired as usize);
    for t in green_kept.drain(..surplus) {
        if !t.protected {
            stopping.push((t, StopWhy::Scaling));
        }
    }
    for &t in &live {
        let older = t.deployment != green_id && t.deployment != progress.blue;
        let blue_done = t.deployment == progress.blue && progress.stage == Stage::CleanUp;
        if (older || blue_done) && !t.protected {
            stopping.push((t, StopWhy::Scaling));
        }
    }
    steps::stop(&stopping, &mut out);
    let kept = u32::try_from(green_kept.len()).unwrap_or(u32::MAX);
    let lacking = desired.saturating_sub(kept);
    if lacking > 0 && steps::may_start(spec, &deps, failures, now, &mut out) {
        out.start = Some((green_id.clone(), lacking));
    }
    let primary_healthy =
        u32::try_from(green_kept.iter().filter(|t| t.healthy).count()).unwrap_or(u32::MAX);
    steps::conclude(
        Conclusion {
            tasks: &visible,
            desired,
            primary_healthy,
            keep_failed: true,
            may_complete: progress.stage == Stage::CleanUp,
        },
        spec,
        deps,
        now,
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{dep, messages, spec, task};
    use super::super::Phase;
    use super::*;
    use proptest::prelude::*;

    const MINUTE: f64 = 60.0;

    fn green(shift: Shift, bake: u32) -> [DeploymentRecord; 2] {
        let mut g = dep(
            "g",
            DeploymentStatus::Primary,
            DeploymentRolloutState::InProgress,
        );
        g.side = Side::Alternate;
        g.blue_green = Some(Progress::new(shift, bake, "b".into(), false, 0.0));
        [
            g,
            dep(
                "b",
                DeploymentStatus::Active,
                DeploymentRolloutState::Completed,
            ),
        ]
    }

    fn stage(a: &Actions) -> Stage {
        a.deployments[0]
            .blue_green
            .as_ref()
            .map_or(Stage::CleanUp, |p| p.stage)
    }

    #[test]
    fn linear_steps_and_canary_phases() {
        let l = Shift::Linear {
            step_percent: 30.0,
            step_bake_minutes: 1,
        };
        let got: Vec<u32> = (0..6).map(|s| l.percent_at(s)).collect();
        assert_eq!(got, [0, 30, 60, 90, 100, 100]);
        let l = Shift::Linear {
            step_percent: 3.3,
            step_bake_minutes: 1,
        };
        assert_eq!(l.percent_at(3), 9);
        assert_eq!(l.percent_at(31), 100);
        let c = Shift::Canary {
            canary_percent: 0.1,
            canary_bake_minutes: 1,
        };
        assert_eq!((c.percent_at(1), c.percent_at(2)), (1, 100));
    }

    #[test]
    fn blue_green_scales_green_up_next_to_blue_then_shifts_bakes_and_cleans_up() {
        let s = spec(2, 100, 200);
        let d = green(Shift::BlueGreen, 1);
        let mut tasks: Vec<_> = (0..2).map(|i| task(i, "b", Phase::Running)).collect();
        // SCALE_UP: green at the full count (beyond maximumPercent's room: blue stays).
        let a = compute_blue_green_actions(&s, &d, &tasks, MINUTE, 10.0);
        assert_eq!(a.start, Some(("g".into(), 2)));
        assert!(a.stop.is_empty());
        assert_eq!(stage(&a), Stage::ScaleUp);
        assert_eq!(weights(&a.deployments).production, (100, 0));
        // Green healthy: test then production traffic move at once, bake time starts.
        tasks.extend((2..4).map(|i| task(i, "g", Phase::Running)));
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 20.0);
        assert_eq!(stage(&a), Stage::BakeTime);
        assert!(a.stop.is_empty() && a.start.is_none() && !a.steady);
        let w = weights(&a.deployments);
        assert_eq!((w.production, w.test), ((0, 100), (0, 100)));
        assert!(messages(&a)
            .iter()
            .any(|m| m.contains("shifted 100% of production traffic")));
        // Still baking: nothing stops.
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 79.0);
        assert!(a.stop.is_empty());
        // Bake time over: CLEAN_UP stops blue.
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 81.0);
        assert_eq!(stage(&a), Stage::CleanUp);
        let stopped: Vec<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
        assert_eq!(stopped, ["arn:t0", "arn:t1"]);
        // Blue gone: COMPLETED, green keeps all the traffic.
        for t in tasks.iter_mut().take(2) {
            t.phase = Phase::Stopped;
        }
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 82.0);
        assert_eq!(
            a.deployments[0].rollout_state,
            DeploymentRolloutState::Completed
        );
        assert!(a.steady);
        assert_eq!(weights(&a.deployments).production, (0, 100));
    }

    #[test]
    fn linear_waits_between_steps() {
        let s = spec(1, 100, 200);
        let d = green(
            Shift::Linear {
                step_percent: 50.0,
                step_bake_minutes: 2,
            },
            0,
        );
        let tasks = vec![task(0, "b", Phase::Running), task(1, "g", Phase::Running)];
        let a = compute_blue_green_actions(&s, &d, &tasks, MINUTE, 0.0);
        assert_eq!(weights(&a.deployments).production, (50, 50));
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 100.0);
        assert_eq!(weights(&a.deployments).production, (50, 50));
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 121.0);
        assert_eq!(weights(&a.deployments).production, (0, 100));
        // No bake time: blue is stopped in the same round.
        assert_eq!(stage(&a), Stage::CleanUp);
        assert_eq!(a.stop.len(), 1);
    }

    #[test]
    fn a_green_task_failing_health_after_scale_up_rolls_back_to_blue() {
        let s = spec(1, 100, 200);
        let d = green(Shift::BlueGreen, 10);
        let mut tasks = vec![task(0, "b", Phase::Running), task(1, "g", Phase::Running)];
        let a = compute_blue_green_actions(&s, &d, &tasks, MINUTE, 1.0);
        assert_eq!(weights(&a.deployments).production, (0, 100));
        tasks[1].healthy = false;
        tasks[1].unhealthy = true;
        let a = compute_blue_green_actions(&s, &a.deployments, &tasks, MINUTE, 2.0);
        assert_eq!(a.deployments[0].id, "b");
        assert_eq!(a.deployments[0].status, DeploymentStatus::Primary);
        let g = &a.deployments[1];
        assert_eq!(g.rollout_state, DeploymentRolloutState::Failed);
        assert_eq!(g.rolled_back_to.as_deref(), Some("b"));
        assert_eq!(weights(&a.deployments).production, (100, 0));
        assert_eq!(a.stop.len(), 1);
        assert_eq!(a.stop[0].0, "arn:t1");
        assert!(messages(&a)
            .iter()
            .any(|m| m.contains("production traffic returned to deployment b")));
    }

    #[test]
    fn the_circuit_breaker_rolls_back_to_blue_without_a_new_deployment() {
        let mut s = spec(1, 100, 200);
        s.circuit_breaker = Some(true);
        let d = green(Shift::BlueGreen, 10);
        let mut tasks = vec![task(0, "b", Phase::Running)];
        for i in 1..4 {
            let mut t = task(i, "g", Phase::Stopped);
            t.failed = true;
            t.started_at = None;
            tasks.push(t);
        }
        let a = compute_blue_green_actions(&s, &d, &tasks, MINUTE, 5.0);
        // Green had no task left: it leaves the list (the loop keeps it in the history).
        let ids: Vec<&str> = a.deployments.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        assert!(messages(&a)
            .iter()
            .any(|m| m.contains("deployment g) deployment failed: tasks failed to start")));
        assert!(a.start.is_none());
        assert_eq!(weights(&a.deployments).production, (100, 0));
    }

    /// Random worlds: green's tasks come up (or not) at random; the weights always sum to 100,
    /// green's share never goes down, blue is never stopped before green has all the
    /// production traffic, and a healthy world completes with green alone.
    fn simulate(
        shift: Shift,
        bake: u32,
        desired: u32,
        flips: Vec<bool>,
    ) -> Result<(), TestCaseError> {
        let s = spec(desired, 100, 200);
        let mut deps = green(shift, bake).to_vec();
        let mut tasks: Vec<TaskObs> = (0..desired as usize)
            .map(|i| task(i, "b", Phase::Running))
            .collect();
        let mut next = tasks.len();
        let mut last_green = 0;
        for (round, flip) in flips
            .iter()
            .chain(std::iter::repeat_n(&true, 400))
            .enumerate()
        {
            let now = round as f64 * 30.0;
            let a = compute_blue_green_actions(&s, &deps, &tasks, MINUTE, now);
            let w = weights(&a.deployments);
            prop_assert_eq!(w.production.0 + w.production.1, 100);
            prop_assert_eq!(w.test.0 + w.test.1, 100);
            let green_share = w.production.1;
            prop_assert!(
                green_share >= last_green,
                "{} < {}",
                green_share,
                last_green
            );
            last_green = green_share;
            for (arn, _) in &a.stop {
                let t = tasks.iter().find(|t| &t.arn == arn).unwrap();
                if t.deployment == "b" {
                    prop_assert_eq!(green_share, 100);
                }
            }
            deps = a.deployments.clone();
            for t in tasks.iter_mut() {
                if a.stop.iter().any(|(arn, _)| arn == &t.arn) {
                    t.phase = Phase::Stopped;
                    t.healthy = false;
                } else if t.phase == Phase::Pending && *flip {
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
                prop_assert_eq!(deps[0].id.as_str(), "g");
                prop_assert_eq!(weights(&deps).production, (0, 100));
                return Ok(());
            }
        }
        prop_assert!(false, "never completed");
        Ok(())
    }

    fn shifts() -> impl Strategy<Value = Shift> {
        prop_oneof![
            Just(Shift::BlueGreen),
            (30u32..=1000, 0u32..3).prop_map(|(t, m)| Shift::Linear {
                step_percent: f64::from(t) / 10.0,
                step_bake_minutes: m,
            }),
            (1u32..=1000, 0u32..3).prop_map(|(t, m)| Shift::Canary {
                canary_percent: f64::from(t) / 10.0,
                canary_bake_minutes: m,
            }),
        ]
    }

    proptest! {
        #[test]
        fn shifts_are_monotone_and_end_at_100(shift in shifts(), step in 0u32..200) {
            let a = shift.percent_at(step);
            let b = shift.percent_at(step + 1);
            prop_assert!(a <= b && b <= 100);
            prop_assert_eq!(shift.percent_at(1000), 100);
        }

        #[test]
        fn deployments_shift_monotonically_and_complete(
            shift in shifts(),
            bake in 0u32..3,
            desired in 1u32..5,
            flips in prop::collection::vec(any::<bool>(), 0..20),
        ) {
            simulate(shift, bake, desired, flips)?;
        }

        #[test]
        fn a_rollback_always_restores_blue_to_all_the_traffic(
            shift in shifts(),
            primary_side in any::<bool>(),
            stage_rounds in 0usize..6,
        ) {
            let mut deps = green(shift, 1).to_vec();
            let blue_side = if primary_side { Side::Primary } else { Side::Alternate };
            deps[1].side = blue_side;
            deps[0].side = blue_side.other();
            let tasks = vec![task(0, "b", Phase::Running), task(1, "g", Phase::Running)];
            let s = spec(1, 100, 200);
            for r in 0..stage_rounds {
                deps = compute_blue_green_actions(&s, &deps, &tasks, MINUTE, r as f64 * 45.0).deployments;
            }
            if deps[0].id != "g" || deps[0].rollout_state != DeploymentRolloutState::InProgress {
                return Ok(());
            }
            prop_assert!(roll_back(&mut deps, RollbackWhy::Stopped, 1, 1000.0).is_some());
            let w = weights(&deps);
            let all_blue = if primary_side { (100, 0) } else { (0, 100) };
            prop_assert_eq!(w.production, all_blue);
            prop_assert_eq!(w.test, all_blue);
        }
    }
}
