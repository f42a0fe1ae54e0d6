//! The target health state machine (pure): what one registration, deregistration, health-check
//! result or sweep does to a registered target, as Elastic Load Balancing decides it.
//!
//! Stored states are [`Stored::Initial`], [`Stored::Healthy`], [`Stored::Unhealthy`] and
//! [`Stored::Draining`]; `unused` (the group is used by no listener: `Target.NotInUse`) and
//! `unavailable` (health checks disabled: `Target.HealthCheckDisabled`) are derived when a
//! target is shown ([`view`]), never stored, so attaching a group to a listener needs no write
//! to its targets.
//!
//! Rules:
//! - a registered target is `initial` (`Elb.RegistrationInProgress`, then
//!   `Elb.InitialHealthChecking` once a check ran) until it passes `healthy_threshold`
//!   consecutive checks (then `healthy`) or fails `unhealthy_threshold` consecutive ones (then
//!   `unhealthy`, with the failure's reason);
//! - `healthy` -> `unhealthy` after `unhealthy_threshold` consecutive failures; `unhealthy` ->
//!   `healthy` after `healthy_threshold` consecutive passes; a pass resets the failure count and
//!   a failure the pass count;
//! - a deregistered target is `draining` (`Target.DeregistrationInProgress`) until its deadline
//!   (now + the group's deregistration delay), ignores health checks, and is removed by the
//!   sweep once the deadline passed; registering it again while draining starts it over as
//!   `initial`.
//!
//! **Invariant:** counters are capped at their threshold, so a target that keeps passing while
//! `healthy` (or keeps failing the same way while `unhealthy`) does not change: [`observe`]
//! answers `false` and the caller writes nothing. Every change of what DescribeTargetHealth
//! shows, and nothing else, is a write.

use serde::{Deserialize, Serialize};

/// A target's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Registered, not yet past its first thresholds.
    Initial,
    /// Passed `healthy_threshold` consecutive checks.
    Healthy,
    /// Failed `unhealthy_threshold` consecutive checks.
    Unhealthy,
    /// Deregistered; removed once its deadline passed.
    Draining,
}

/// The state DescribeTargetHealth shows (`TargetHealthStateEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// `initial`
    Initial,
    /// `healthy`
    Healthy,
    /// `unhealthy`
    Unhealthy,
    /// `draining`
    Draining,
    /// `unused`
    Unused,
    /// `unavailable`
    Unavailable,
}

impl State {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Draining => "draining",
            State::Unused => "unused",
            State::Unavailable => "unavailable",
        }
    }
}

/// Why a target is in its state (`TargetHealthReasonEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// `Elb.RegistrationInProgress`: registered, no check ran yet.
    #[serde(rename = "Elb.RegistrationInProgress")]
    RegistrationInProgress,
    /// `Elb.InitialHealthChecking`: checks ran, not yet past a threshold.
    #[serde(rename = "Elb.InitialHealthChecking")]
    InitialHealthChecking,
    /// `Target.ResponseCodeMismatch`: the answer's code is not the matcher's.
    #[serde(rename = "Target.ResponseCodeMismatch")]
    ResponseCodeMismatch,
    /// `Target.Timeout`: no answer in the check's timeout (or the connection was refused).
    #[serde(rename = "Target.Timeout")]
    Timeout,
    /// `Target.FailedHealthChecks`: the check failed otherwise.
    #[serde(rename = "Target.FailedHealthChecks")]
    FailedHealthChecks,
    /// `Target.NotRegistered`: not a target of the group.
    #[serde(rename = "Target.NotRegistered")]
    NotRegistered,
    /// `Target.NotInUse`: the group is used by no listener.
    #[serde(rename = "Target.NotInUse")]
    NotInUse,
    /// `Target.DeregistrationInProgress`: draining.
    #[serde(rename = "Target.DeregistrationInProgress")]
    DeregistrationInProgress,
    /// `Target.HealthCheckDisabled`: the group's checks are off.
    #[serde(rename = "Target.HealthCheckDisabled")]
    HealthCheckDisabled,
}

impl Reason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RegistrationInProgress => "Elb.RegistrationInProgress",
            Reason::InitialHealthChecking => "Elb.InitialHealthChecking",
            Reason::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            Reason::Timeout => "Target.Timeout",
            Reason::FailedHealthChecks => "Target.FailedHealthChecks",
            Reason::NotRegistered => "Target.NotRegistered",
            Reason::NotInUse => "Target.NotInUse",
            Reason::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Reason::HealthCheckDisabled => "Target.HealthCheckDisabled",
        }
    }
}

/// Why one health check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Failure {
    /// No answer within the group's timeout.
    Timeout,
    /// The connection was refused or reset.
    ConnectionRefused,
    /// An HTTP answer whose status is not the matcher's.
    ResponseCodeMismatch(u16),
    /// Any other failure.
    FailedHealthChecks,
}

impl Failure {
    /// The reason ELB shows for a target unhealthy because of it.
    pub fn reason(self) -> Reason {
        match self {
            Failure::Timeout => Reason::Timeout,
            Failure::ConnectionRefused | Failure::FailedHealthChecks => Reason::FailedHealthChecks,
            Failure::ResponseCodeMismatch(_) => Reason::ResponseCodeMismatch,
        }
    }

    /// ELB's description for it.
    pub fn description(self) -> String {
        match self {
            Failure::Timeout => "Request timed out".to_string(),
            Failure::ConnectionRefused => "Health checks failed: connection refused".to_string(),
            Failure::ResponseCodeMismatch(code) => {
                format!("Health checks failed with these codes: [{code}]")
            }
            Failure::FailedHealthChecks => "Health checks failed".to_string(),
        }
    }
}

/// One health-check result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    /// The check passed.
    Passed,
    /// The check failed.
    Failed(Failure),
}

/// The thresholds a group applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive passes to become healthy (2-10).
    pub healthy: u32,
    /// Consecutive failures to become unhealthy (2-10).
    pub unhealthy: u32,
}

/// A registered target as stored in its group's targets record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The instance id or IP address.
    pub id: String,
    /// The port, when registered with one (else the group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The availability zone, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The stored state.
    pub state: Stored,
    /// The stored reason (none for `healthy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The last failure that made it unhealthy (for the description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Consecutive passes, capped at the healthy threshold.
    #[serde(default)]
    pub passes: u32,
    /// Consecutive failures, capped at the unhealthy threshold.
    #[serde(default)]
    pub failures: u32,
    /// When it was registered (seconds since the epoch).
    pub registered_at: f64,
    /// When draining ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_until: Option<f64>,
}

impl Target {
    /// A target just registered.
    pub fn registered(
        id: String,
        port: Option<u16>,
        availability_zone: Option<String>,
        now: f64,
    ) -> Self {
        Target {
            id,
            port,
            availability_zone,
            state: Stored::Initial,
            reason: Some(Reason::RegistrationInProgress),
            failure: None,
            passes: 0,
            failures: 0,
            registered_at: now,
            draining_until: None,
        }
    }

    /// Whether this entry is the target `(id, port)` (a target is an id and a port: the same
    /// instance on two ports is two targets).
    pub fn is(&self, id: &str, port: Option<u16>) -> bool {
        self.id == id && self.port == port
    }
}

/// Registers `target` (already a target or not): a new one starts `initial`; one that is
/// draining starts over as `initial`; one already registered otherwise is unchanged. Answers
/// whether anything changed.
pub fn register(targets: &mut Vec<Target>, target: Target) -> bool {
    match targets.iter_mut().find(|t| t.is(&target.id, target.port)) {
        Some(t) if t.state == Stored::Draining => {
            *t = target;
            true
        }
        Some(_) => false,
        None => {
            targets.push(target);
            true
        }
    }
}

/// What deregistering one target did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deregistered {
    /// Now draining until this time.
    Draining(f64),
    /// Already draining until this time (unchanged).
    AlreadyDraining(f64),
    /// Removed at once (a deregistration delay of 0).
    Removed,
    /// Not a target of the group.
    NotRegistered,
}

/// Deregisters the target `(id, port)`: it drains for `delay` seconds (removed at once when
/// `delay` is 0).
pub fn deregister(
    targets: &mut Vec<Target>,
    id: &str,
    port: Option<u16>,
    delay: f64,
    now: f64,
) -> Deregistered {
    let Some(i) = targets.iter().position(|t| t.is(id, port)) else {
        return Deregistered::NotRegistered;
    };
    let t = &mut targets[i];
    if t.state == Stored::Draining {
        return Deregistered::AlreadyDraining(t.draining_until.unwrap_or(now));
    }
    if delay <= 0.0 {
        targets.remove(i);
        return Deregistered::Removed;
    }
    let until = now + delay;
    t.state = Stored::Draining;
    t.reason = Some(Reason::DeregistrationInProgress);
    t.draining_until = Some(until);
    t.passes = 0;
    t.failures = 0;
    Deregistered::Draining(until)
}

/// Applies one health-check result to `t` with the group's thresholds. Answers whether `t`
/// changed (the caller writes only then).
pub fn observe(t: &mut Target, result: ProbeResult, th: Thresholds) -> bool {
    let before = t.clone();
    let healthy = th.healthy.max(1);
    let unhealthy = th.unhealthy.max(1);
    match (t.state, result) {
        (Stored::Draining, _) => {}
        (_, ProbeResult::Passed) => {
            t.failures = 0;
            t.passes = (t.passes + 1).min(healthy);
            if t.passes >= healthy {
                t.state = Stored::Healthy;
                t.reason = None;
                t.failure = None;
            } else if t.state == Stored::Initial {
                t.reason = Some(Reason::InitialHealthChecking);
            }
        }
        (_, ProbeResult::Failed(f)) => {
            t.passes = 0;
            t.failures = (t.failures + 1).min(unhealthy);
            if t.failures >= unhealthy {
                t.state = Stored::Unhealthy;
                t.reason = Some(f.reason());
                t.failure = Some(f);
            } else if t.state == Stored::Initial {
                t.reason = Some(Reason::InitialHealthChecking);
            }
        }
    }
    *t != before
}

/// Removes the draining targets whose deadline is at or before `now`. Answers whether any was.
pub fn sweep(targets: &mut Vec<Target>, now: f64) -> bool {
    let before = targets.len();
    targets
        .retain(|t| !(t.state == Stored::Draining && t.draining_until.is_some_and(|u| u <= now)));
    targets.len() != before
}

/// What the group says about how its targets are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupUse {
    /// Some listener (default action or rule) forwards to the group.
    pub in_use: bool,
    /// The group's health checks are on.
    pub checks_enabled: bool,
}

/// How a target is shown: its state, reason and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The state.
    pub state: State,
    /// The reason (none for `healthy`).
    pub reason: Option<Reason>,
    /// ELB's description.
    pub description: Option<String>,
}

/// How `t` is shown in a group used as `group` says.
pub fn view(t: &Target, group: GroupUse) -> Shown {
    let shown = |state, reason: Reason, description: &str| Shown {
        state,
        reason: Some(reason),
        description: Some(description.to_string()),
    };
    match t.state {
        Stored::Draining => shown(
            State::Draining,
            Reason::DeregistrationInProgress,
            "Target deregistration is in progress",
        ),
        _ if !group.in_use => shown(
            State::Unused,
            Reason::NotInUse,
            "Target group is not configured to receive traffic from the load balancer",
        ),
        _ if !group.checks_enabled => shown(
            State::Unavailable,
            Reason::HealthCheckDisabled,
            "Health checks are disabled",
        ),
        Stored::Healthy => Shown {
            state: State::Healthy,
            reason: None,
            description: None,
        },
        Stored::Initial => match t.reason {
            Some(Reason::InitialHealthChecking) => shown(
                State::Initial,
                Reason::InitialHealthChecking,
                "Initial health checks in progress",
            ),
            _ => shown(
                State::Initial,
                Reason::RegistrationInProgress,
                "Target registration is in progress",
            ),
        },
        Stored::Unhealthy => {
            let failure = t.failure.unwrap_or(Failure::FailedHealthChecks);
            Shown {
                state: State::Unhealthy,
                reason: Some(failure.reason()),
                description: Some(failure.description()),
            }
        }
    }
}

/// How a target that is not registered in the group is shown when asked for by name.
pub fn not_registered() -> Shown {
    Shown {
        state: State::Unused,
        reason: Some(Reason::NotRegistered),
        description: Some("Target is not registered to the target group".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TH: Thresholds = Thresholds {
        healthy: 3,
        unhealthy: 2,
    };
    const USED: GroupUse = GroupUse {
        in_use: true,
        checks_enabled: true,
    };

    fn target() -> Target {
        Target::registered("10.0.0.1".into(), Some(80), None, 1.0)
    }

    fn run(t: &mut Target, results: &[ProbeResult]) {
        for r in results {
            observe(t, *r, TH);
        }
    }

    use ProbeResult::{Failed, Passed};

    #[test]
    fn initial_becomes_healthy_after_the_healthy_threshold() {
        let mut t = target();
        assert_eq!(view(&t, USED).reason, Some(Reason::RegistrationInProgress));
        run(&mut t, &[Passed, Passed]);
        assert_eq!(view(&t, USED).state, State::Initial);
        assert_eq!(view(&t, USED).reason, Some(Reason::InitialHealthChecking));
        run(&mut t, &[Passed]);
        assert_eq!(view(&t, USED).state, State::Healthy);
        assert_eq!(view(&t, USED).reason, None);
    }

    #[test]
    fn healthy_becomes_unhealthy_after_the_unhealthy_threshold_with_the_reason() {
        let cases = [
            (Failure::Timeout, Reason::Timeout, "Request timed out"),
            (
                Failure::ResponseCodeMismatch(503),
                Reason::ResponseCodeMismatch,
                "Health checks failed with these codes: [503]",
            ),
            (
                Failure::ConnectionRefused,
                Reason::FailedHealthChecks,
                "Health checks failed: connection refused",
            ),
        ];
        for (failure, reason, description) in cases {
            let mut t = target();
            run(&mut t, &[Passed, Passed, Passed, Failed(failure)]);
            assert_eq!(view(&t, USED).state, State::Healthy, "{failure:?}");
            run(&mut t, &[Failed(failure)]);
            let shown = view(&t, USED);
            assert_eq!(shown.state, State::Unhealthy);
            assert_eq!(shown.reason, Some(reason));
            assert_eq!(shown.description.as_deref(), Some(description));
        }
    }

    #[test]
    fn a_pass_resets_the_failures_and_a_failure_the_passes() {
        let mut t = target();
        run(&mut t, &[Passed, Passed, Passed]);
        run(
            &mut t,
            &[Failed(Failure::Timeout), Passed, Failed(Failure::Timeout)],
        );
        assert_eq!(t.state, Stored::Healthy);
        run(&mut t, &[Failed(Failure::Timeout)]);
        assert_eq!(t.state, Stored::Unhealthy);
        run(
            &mut t,
            &[Passed, Passed, Failed(Failure::Timeout), Passed, Passed],
        );
        assert_eq!(t.state, Stored::Unhealthy);
        run(&mut t, &[Passed]);
        assert_eq!(t.state, Stored::Healthy);
    }

    #[test]
    fn initial_becomes_unhealthy_after_the_unhealthy_threshold() {
        let mut t = target();
        run(&mut t, &[Failed(Failure::ConnectionRefused)]);
        assert_eq!(t.state, Stored::Initial);
        run(&mut t, &[Failed(Failure::ConnectionRefused)]);
        assert_eq!(t.state, Stored::Unhealthy);
    }

    #[test]
    fn steady_states_do_not_change_so_nothing_is_written() {
        let mut t = target();
        run(&mut t, &[Passed, Passed, Passed]);
        assert!(!observe(&mut t, Passed, TH));
        run(
            &mut t,
            &[Failed(Failure::Timeout), Failed(Failure::Timeout)],
        );
        assert!(!observe(&mut t, Failed(Failure::Timeout), TH));
        // A different failure changes the reason: that is a change.
        assert!(observe(
            &mut t,
            Failed(Failure::ResponseCodeMismatch(500)),
            TH
        ));
    }

    #[test]
    fn draining_ignores_checks_and_is_swept_at_its_deadline() {
        let mut ts = vec![target()];
        assert_eq!(
            deregister(&mut ts, "10.0.0.1", Some(80), 300.0, 10.0),
            Deregistered::Draining(310.0)
        );
        assert_eq!(
            deregister(&mut ts, "10.0.0.1", Some(80), 300.0, 20.0),
            Deregistered::AlreadyDraining(310.0)
        );
        assert!(!observe(&mut ts[0], Passed, TH));
        assert_eq!(view(&ts[0], USED).state, State::Draining);
        assert_eq!(
            view(&ts[0], USED).reason,
            Some(Reason::DeregistrationInProgress)
        );
        assert!(!sweep(&mut ts, 309.0));
        assert!(sweep(&mut ts, 310.0));
        assert!(ts.is_empty());
    }

    #[test]
    fn registering_a_draining_target_starts_it_over() {
        let mut ts = vec![target()];
        deregister(&mut ts, "10.0.0.1", Some(80), 300.0, 10.0);
        assert!(register(
            &mut ts,
            Target::registered("10.0.0.1".into(), Some(80), None, 11.0)
        ));
        assert_eq!(ts[0].state, Stored::Initial);
        assert!(!register(
            &mut ts,
            Target::registered("10.0.0.1".into(), Some(80), None, 12.0)
        ));
        assert_eq!(ts[0].registered_at, 11.0);
        // Another port is another target.
        assert!(register(
            &mut ts,
            Target::registered("10.0.0.1".into(), Some(81), None, 12.0)
        ));
        assert_eq!(ts.len(), 2);
    }

    #[test]
    fn a_zero_delay_removes_at_once_and_unknown_targets_are_reported() {
        let mut ts = vec![target()];
        assert_eq!(
            deregister(&mut ts, "10.0.0.2", Some(80), 0.0, 10.0),
            Deregistered::NotRegistered
        );
        assert_eq!(
            deregister(&mut ts, "10.0.0.1", Some(80), 0.0, 10.0),
            Deregistered::Removed
        );
        assert!(ts.is_empty());
    }

    #[test]
    fn unused_and_unavailable_are_derived_from_the_group() {
        let mut t = target();
        run(&mut t, &[Passed, Passed, Passed]);
        let unused = GroupUse {
            in_use: false,
            checks_enabled: true,
        };
        assert_eq!(
            (view(&t, unused).state, view(&t, unused).reason),
            (State::Unused, Some(Reason::NotInUse))
        );
        let off = GroupUse {
            in_use: true,
            checks_enabled: false,
        };
        assert_eq!(
            (view(&t, off).state, view(&t, off).reason),
            (State::Unavailable, Some(Reason::HealthCheckDisabled))
        );
        assert_eq!(not_registered().reason, Some(Reason::NotRegistered));
    }

    fn probe() -> impl Strategy<Value = ProbeResult> {
        prop_oneof![
            Just(Passed),
            Just(Failed(Failure::Timeout)),
            Just(Failed(Failure::ConnectionRefused)),
            (200u16..600).prop_map(|c| Failed(Failure::ResponseCodeMismatch(c))),
        ]
    }

    proptest! {
        /// The state after any sequence of results is what its tail says: healthy exactly
        /// when the last `healthy` results passed (and it was not unhealthy-then-short), and
        /// counters never exceed their thresholds.
        #[test]
        fn thresholds_hold_for_any_sequence(
            results in proptest::collection::vec(probe(), 0..60),
            healthy in 2u32..=10,
            unhealthy in 2u32..=10,
        ) {
            let th = Thresholds { healthy, unhealthy };
            let mut t = target();
            for r in &results {
                let prev = t.state;
                observe(&mut t, *r, th);
                prop_assert!(t.passes <= healthy && t.failures <= unhealthy);
                // Never straight from healthy to anything but unhealthy, and the other way.
                if prev == Stored::Healthy { prop_assert!(t.state != Stored::Initial); }
                if prev == Stored::Unhealthy { prop_assert!(t.state != Stored::Initial); }
            }
            let n = results.len();
            let tail_passes = results.iter().rev().take_while(|r| **r == Passed).count();
            let tail_failures = results.iter().rev().take_while(|r| **r != Passed).count();
            if tail_passes >= healthy as usize {
                prop_assert_eq!(t.state, Stored::Healthy);
            }
            if tail_failures >= unhealthy as usize {
                prop_assert_eq!(t.state, Stored::Unhealthy);
            }
            if n < healthy.min(unhealthy) as usize {
                prop_assert_eq!(t.state, Stored::Initial);
            }
            // A steady state (past its threshold with the same result again) writes nothing.
            if tail_passes >= healthy as usize {
                prop_assert!(!observe(&mut t.clone(), Passed, th));
            }
            if let (Some(Failed(f)), true) = (results.last(), tail_failures >= unhealthy as usize) {
                prop_assert!(!observe(&mut t.clone(), Failed(*f), th));
            }
        }

        /// Draining targets never change with checks, and a sweep removes exactly the draining
        /// ones whose deadline passed.
        #[test]
        fn sweep_removes_exactly_the_expired_draining(
            delays in proptest::collection::vec(0u32..100, 1..20),
            now in 0u32..200,
        ) {
            let mut ts: Vec<Target> = (0..delays.len())
                .map(|i| Target::registered(format!("10.0.0.{i}"), Some(80), None, 0.0))
                .collect();
            for (i, d) in delays.iter().enumerate() {
                if i % 2 == 0 {
                    deregister(&mut ts, &format!("10.0.0.{i}"), Some(80), f64::from(*d), 50.0);
                }
            }
            let before = ts.clone();
            sweep(&mut ts, f64::from(now));
            for t in &before {
                let expired = t.state == Stored::Draining
                    && t.draining_until.is_some_and(|u| u <= f64::from(now));
                prop_assert_eq!(ts.iter().any(|x| x.is(&t.id, t.port)), !expired);
            }
        }
    }
}
