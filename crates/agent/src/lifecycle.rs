//! The task and container state machine, as pure functions.
//!
//! What this is: the decisions of the task engine, given what is observed: may a container
//! start now (its `dependsOn`), what status does the task show, must the task stop and with
//! which stop code, does a container that exited restart, what is the task's health, what
//! does a container's `ExecuteCommandAgent` show.
//!
//! What this is not: it does no I/O, reads no clock (the caller passes `now` as seconds) and
//! holds no state. The owning tokio task of each task ([`crate::engine`]) applies the decisions.
//!
//! Invariants:
//! - statuses only move forward: [`advance`] never returns a status lower than the current one;
//! - a task is STOPPED only when every container is STOPPED;
//! - once a task decided to stop, it never decides to run again.

use flotilla_model::shapes::{ContainerCondition, HealthStatus, TaskStopCode};
use flotilla_model::status::{ContainerStatus, TaskStatus};

/// The stopped reason ECS shows when an essential container exits.
pub const ESSENTIAL_EXITED_REASON: &str = "Essential container in task exited";
/// The container reason of a container the kernel killed for memory.
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
/// ECS's default `restartAttemptPeriod`, seconds.
pub const DEFAULT_RESTART_ATTEMPT_PERIOD_S: f64 = 300.0;

/// What the state machine needs to know about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    /// Name in the task definition.
    pub name: String,
    /// Whether its exit stops the task.
    pub essential: bool,
    /// Observed status.
    pub status: ContainerStatus,
    /// Exit code once stopped after running.
    pub exit_code: Option<i32>,
    /// Health, for containers with a health check.
    pub health: Option<HealthStatus>,
    /// Whether the container has a health check.
    pub has_health_check: bool,
}

/// One `dependsOn` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// The container depended on.
    pub container: String,
    /// The condition it must reach.
    pub condition: ContainerCondition,
}

/// Whether a container may start.
#[derive(Debug, Clone, PartialEq)]
pub enum StartDecision {
    /// Every dependency is met.
    Ready,
    /// Some dependency is not met yet.
    Wait,
    /// Some dependency can never be met; the reason says which.
    Never(String),
}

fn condition_str(c: &ContainerCondition) -> &'static str {
    match c {
        ContainerCondition::Start => "START",
        ContainerCondition::Complete => "COMPLETE",
        ContainerCondition::Success => "SUCCESS",
        ContainerCondition::Healthy => "HEALTHY",
    }
}

/// Decides whether a container whose dependencies are `deps` may start, given the other
/// containers of the task.
pub fn compute_start(deps: &[Dependency], containers: &[ContainerView]) -> StartDecision {
    let mut decision = StartDecision::Ready;
    for d in deps {
        let Some(c) = containers.iter().find(|c| c.name == d.container) else {
            return StartDecision::Never(format!(
                "dependency {} is not a container of the task",
                d.container
            ));
        };
        let never = |why: &str| {
            StartDecision::Never(format!(
                "dependency {} cannot reach condition {}: {why}",
                d.container,
                condition_str(&d.condition)
            ))
        };
        let met = match d.condition {
            ContainerCondition::Start => match c.status {
                ContainerStatus::Pending => false,
                ContainerStatus::Running => true,
                // Started then exited counts as started; never started does not.
                ContainerStatus::Stopped if c.exit_code.is_some() => true,
                ContainerStatus::Stopped => return never("it stopped without starting"),
            },
            ContainerCondition::Complete => match c.status {
                ContainerStatus::Stopped if c.exit_code.is_some() => true,
                ContainerStatus::Stopped => return never("it stopped without starting"),
                _ => false,
            },
            ContainerCondition::Success => match (c.status, c.exit_code) {
                (ContainerStatus::Stopped, Some(0)) => true,
                (ContainerStatus::Stopped, Some(code)) => {
                    return never(&format!("it exited with code {code}"))
                }
                (ContainerStatus::Stopped, None) => return never("it stopped without starting"),
                _ => false,
            },
            ContainerCondition::Healthy => {
                if !c.has_health_check {
                    return never("it has no health check");
                }
                match (c.status, c.health) {
                    (ContainerStatus::Running, Some(HealthStatus::Healthy)) => true,
                    (ContainerStatus::Stopped, _) => return never("it stopped"),
                    _ => false,
                }
            }
        };
        if !met {
            decision = StartDecision::Wait;
        }
    }
    decision
}

/// Why a task must stop, if it must.
#[derive(Debug, Clone, PartialEq)]
pub struct StopDecision {
    /// The ECS stop code.
    pub code: Option<TaskStopCode>,
    /// The stopped reason.
    pub reason: String,
}

/// Decides whether a running (or starting) task must stop because an essential container
/// stopped. `restarting` names containers that exited but will be restarted by their restart
/// policy; they do not stop the task.
pub fn compute_essential_stop(
    containers: &[ContainerView],
    restarting: &[String],
) -> Option<StopDecision> {
    containers
        .iter()
        .any(|c| {
            c.essential && c.status == ContainerStatus::Stopped && !restarting.contains(&c.name)
        })
        .then(|| StopDecision {
            code: Some(TaskStopCode::EssentialContainerExited),
            reason: ESSENTIAL_EXITED_REASON.to_string(),
        })
}

/// The task phase the engine is in, as far as the status mapping cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The assignment arrived; nothing done yet.
    Pending,
    /// Pulling images, creating containers, starting them.
    Activating,
    /// The task decided to stop.
    Stopping,
}

/// The task status that results from its containers (before the forward-only rule, see
/// [`advance`]).
///
/// - all containers STOPPED -> STOPPED;
/// - stopping -> STOPPING;
/// - every container started (RUNNING, or STOPPED after running, e.g. a COMPLETE dependency)
///   -> RUNNING;
/// - otherwise PENDING or ACTIVATING as the phase says.
pub fn compute_task_status(phase: Phase, containers: &[ContainerView]) -> TaskStatus {
    if !containers.is_empty()
        && containers
            .iter()
            .all(|c| c.status == ContainerStatus::Stopped)
    {
        return TaskStatus::Stopped;
    }
    match phase {
        Phase::Stopping => TaskStatus::Stopping,
        Phase::Pending => TaskStatus::Pending,
        Phase::Activating => {
            if !containers.is_empty()
                && containers
                    .iter()
                    .all(|c| c.status >= ContainerStatus::Running)
            {
                TaskStatus::Running
            } else {
                TaskStatus::Activating
            }
        }
    }
}

/// Where an awsvpc task's network (its pause container) and images are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkStage {
    /// The network and the pause container are being set up.
    Provisioning,
    /// The pause container runs; images are being checked and pulled.
    Pulling,
    /// Images are ready: containers are created and started.
    Ready,
    /// The pause container is gone (the address may be reused).
    Released,
}

/// The status of a task with its own network namespace (awsvpc), before the forward-only
/// rule ([`advance`]):
///
/// - starting: PROVISIONING (network, pause container) -> PENDING (images) -> ACTIVATING
///   (create, start) -> RUNNING (every container started);
/// - stopping: STOPPING once a stop signal was delivered (`signalled`, or nothing was left to
///   signal) -> DEPROVISIONING once every container stopped -> STOPPED once the pause
///   container is gone. Before the signal, the status is unchanged (PROVISIONING is returned,
///   which [`advance`] never moves back to).
pub fn compute_awsvpc_status(
    phase: Phase,
    stage: NetworkStage,
    signalled: bool,
    containers: &[ContainerView],
) -> TaskStatus {
    let all_stopped = containers
        .iter()
        .all(|c| c.status == ContainerStatus::Stopped);
    if phase == Phase::Stopping || (all_stopped && !containers.is_empty()) {
        return match (all_stopped, stage) {
            (true, NetworkStage::Released) => TaskStatus::Stopped,
            (true, _) => TaskStatus::Deprovisioning,
            (false, _) if signalled => TaskStatus::Stopping,
            (false, _) => TaskStatus::Provisioning,
        };
    }
    match stage {
        NetworkStage::Provisioning => TaskStatus::Provisioning,
        NetworkStage::Pulling => TaskStatus::Pending,
        NetworkStage::Ready | NetworkStage::Released => {
            compute_task_status(Phase::Activating, containers)
        }
    }
}

/// The forward-only rule: the new status, unless it would move backwards.
pub fn advance<T: Ord + Copy>(current: T, next: T) -> T {
    current.max(next)
}

/// Task health as ECS defines it: UNHEALTHY if any essential container is unhealthy, HEALTHY if
/// every essential container has a health check and all are healthy, else UNKNOWN. `None` when
/// no essential container has a health check.
pub fn compute_task_health(containers: &[ContainerView]) -> Option<HealthStatus> {
    let essential: Vec<&ContainerView> = containers.iter().filter(|c| c.essential).collect();
    if !essential.iter().any(|c| c.has_health_check) {
        return None;
    }
    if essential
        .iter()
        .any(|c| c.health == Some(HealthStatus::Unhealthy))
    {
        return Some(HealthStatus::Unhealthy);
    }
    if essential
        .iter()
        .all(|c| c.has_health_check && c.health == Some(HealthStatus::Healthy))
    {
        return Some(HealthStatus::Healthy);
    }
    Some(HealthStatus::Unknown)
}

/// A container's restart policy (ECS `restartPolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// Whether restarts are enabled.
    pub enabled: bool,
    /// Exit codes that do not restart.
    pub ignored_exit_codes: Vec<i32>,
    /// Seconds a container must have run before it may be restarted.
    pub attempt_period_s: f64,
}

/// Decides whether a container that exited with `exit_code` after running `ran_for_s` seconds
/// restarts. Never while the task is stopping.
pub fn compute_restart(
    policy: Option<&RestartPolicy>,
    exit_code: i32,
    ran_for_s: f64,
    task_stopping: bool,
) -> bool {
    let Some(p) = policy else { return false };
    p.enabled
        && !task_stopping
        && !p.ignored_exit_codes.contains(&exit_code)
        && ran_for_s >= p.attempt_period_s
}

/// The order in which containers stop: a container stops only after every container that
/// depends on it (or links to it) has stopped. Returns the names that may be stopped now, out
/// of those still running (`running`). `deps` maps a container to the names it depends on.
pub fn compute_stoppable(running: &[String], deps: &[(String, Vec<String>)]) -> Vec<String> {
    running
        .iter()
        .filter(|name| {
            // No running container depends on `name`.
            !deps
                .iter()
                .any(|(dependent, on)| running.contains(dependent) && on.contains(name))
        })
        .cloned()
        .collect()
}

/// The order in which to create a task's containers: a container that takes `volumesFrom` or
/// `links` from another is created after it (Docker needs the source to exist at create time).
/// Otherwise the task definition's order is kept. `needs[i]` are the indexes container `i`
/// refers to; a cycle (which ECS refuses at registration) falls back to definition order.
pub fn compute_create_order(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n)
            .find(|&i| !done[i] && needs[i].iter().all(|&j| j >= n || j == i || done[j]))
            .or_else(|| (0..n).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    order
}

/// The `ExecuteCommandAgent` of a container of a task with `enableExecuteCommand` (none
/// without it): the agent itself runs commands in the container (ECS Exec), so it is RUNNING
/// while the container runs (since `running_since`, epoch seconds), PENDING before and STOPPED
/// after.
pub fn compute_exec_agent(
    enabled: bool,
    container: ContainerStatus,
    running_since: Option<f64>,
) -> Option<flotilla_protocol::ManagedAgentState> {
    use flotilla_protocol::ManagedAgentStatus as S;
    let status = match container {
        ContainerStatus::Running => S::Running,
        ContainerStatus::Stopped => S::Stopped,
        _ => S::Pending,
    };
    enabled.then(|| flotilla_protocol::ManagedAgentState {
        name: flotilla_model::shapes::ManagedAgentName::ExecuteCommandAgent,
        status,
        started_at: running_since.filter(|_| status != S::Pending),
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerStatus::{Pending as P, Running as R, Stopped as S};

    fn view(name: &str, status: ContainerStatus, exit: Option<i32>) -> ContainerView {
        ContainerView {
            name: name.into(),
            essential: true,
            status,
            exit_code: exit,
            health: None,
            has_health_check: false,
        }
    }

    fn healthy(name: &str, status: ContainerStatus, h: Option<HealthStatus>) -> ContainerView {
        ContainerView {
            health: h,
            has_health_check: true,
            ..view(name, status, None)
        }
    }

    #[test]
    fn depends_on_table() {
        use ContainerCondition::*;
        use StartDecision::*;
        let never = |d: &StartDecision| matches!(d, Never(_));
        #[allow(clippy::type_complexity)] // A test table.
        let cases: Vec<(
            ContainerCondition,
            ContainerView,
            fn(&StartDecision) -> bool,
        )> = vec![
            (Start, view("a", P, None), |d| *d == Wait),
            (Start, view("a", R, None), |d| *d == Ready),
            (Start, view("a", S, Some(3)), |d| *d == Ready),
            (Start, view("a", S, None), never),
            (Complete, view("a", R, None), |d| *d == Wait),
            (Complete, view("a", S, Some(1)), |d| *d == Ready),
            (Complete, view("a", S, None), never),
            (Success, view("a", R, None), |d| *d == Wait),
            (Success, view("a", S, Some(0)), |d| *d == Ready),
            (Success, view("a", S, Some(2)), never),
            (Healthy, view("a", R, None), never),
            (Healthy, healthy("a", R, None), |d| *d == Wait),
            (Healthy, healthy("a", R, Some(HealthStatus::Unknown)), |d| {
                *d == Wait
            }),
            (Healthy, healthy("a", R, Some(HealthStatus::Healthy)), |d| {
                *d == Ready
            }),
            (Healthy, healthy("a", S, Some(HealthStatus::Healthy)), never),
        ];
        for (cond, a, check) in cases {
            let deps = [Dependency {
                container: "a".into(),
                condition: cond,
            }];
            let got = compute_start(&deps, std::slice::from_ref(&a));
            assert!(check(&got), "{cond:?} on {a:?} gave {got:?}");
        }
        assert_eq!(compute_start(&[], &[]), Ready);
        let missing = [Dependency {
            container: "zz".into(),
            condition: Start,
        }];
        assert!(never(&compute_start(&missing, &[])));
    }

    #[test]
    fn task_status_table() {
        use Phase::*;
        let cases: Vec<(Phase, Vec<ContainerView>, TaskStatus)> = vec![
            (Pending, vec![view("a", P, None)], TaskStatus::Pending),
            (Activating, vec![view("a", P, None)], TaskStatus::Activating),
            (
                Activating,
                vec![view("a", R, None), view("b", P, None)],
                TaskStatus::Activating,
            ),
            (
                Activating,
                vec![view("a", R, None), view("b", R, None)],
                TaskStatus::Running,
            ),
            (
                Activating,
                vec![view("init", S, Some(0)), view("b", R, None)],
                TaskStatus::Running,
            ),
            (Stopping, vec![view("a", R, None)], TaskStatus::Stopping),
            (
                Stopping,
                vec![view("a", S, Some(0)), view("b", S, Some(137))],
                TaskStatus::Stopped,
            ),
            (Activating, vec![view("a", S, Some(0))], TaskStatus::Stopped),
        ];
        for (phase, cs, want) in cases {
            assert_eq!(compute_task_status(phase, &cs), want, "{phase:?} {cs:?}");
        }
    }

    #[test]
    fn statuses_only_move_forward() {
        assert_eq!(
            advance(TaskStatus::Running, TaskStatus::Activating),
            TaskStatus::Running
        );
        assert_eq!(
            advance(TaskStatus::Running, TaskStatus::Stopping),
            TaskStatus::Stopping
        );
        assert_eq!(advance(S, R), S);
    }

    #[test]
    fn essential_exit_stops_the_task() {
        let mut side = view("side", S, Some(1));
        side.essential = false;
        assert_eq!(
            compute_essential_stop(&[view("web", R, None), side.clone()], &[]),
            None
        );
        let d = compute_essential_stop(&[view("web", S, Some(0)), side], &[]);
        assert_eq!(
            d.map(|d| (d.code, d.reason)),
            Some((
                Some(TaskStopCode::EssentialContainerExited),
                ESSENTIAL_EXITED_REASON.to_string()
            ))
        );
        assert_eq!(
            compute_essential_stop(&[view("web", S, Some(1))], &["web".to_string()]),
            None
        );
    }

    #[test]
    fn task_health_table() {
        use HealthStatus::*;
        let mut nonessential = healthy("n", R, Some(Unhealthy));
        nonessential.essential = false;
        let cases: Vec<(Vec<ContainerView>, Option<HealthStatus>)> = vec![
            (vec![view("a", R, None)], None),
            (vec![healthy("a", R, Some(Healthy))], Some(Healthy)),
            (
                vec![healthy("a", R, Some(Healthy)), view("b", R, None)],
                Some(Unknown),
            ),
            (
                vec![
                    healthy("a", R, Some(Healthy)),
                    healthy("b", R, Some(Unhealthy)),
                ],
                Some(Unhealthy),
            ),
            (vec![healthy("a", R, None)], Some(Unknown)),
            (
                vec![healthy("a", R, Some(Healthy)), nonessential],
                Some(Healthy),
            ),
        ];
        for (cs, want) in cases {
            assert_eq!(compute_task_health(&cs), want, "{cs:?}");
        }
    }

    #[test]
    fn restart_table() {
        let p = RestartPolicy {
            enabled: true,
            ignored_exit_codes: vec![0],
            attempt_period_s: 10.0,
        };
        let off = RestartPolicy {
            enabled: false,
            ..p.clone()
        };
        let cases = [
            (None, 1, 100.0, false, false),
            (Some(&off), 1, 100.0, false, false),
            (Some(&p), 1, 100.0, false, true),
            (Some(&p), 0, 100.0, false, false),
            (Some(&p), 1, 5.0, false, false),
            (Some(&p), 1, 100.0, true, false),
        ];
        for (policy, code, ran, stopping, want) in cases {
            assert_eq!(
                compute_restart(policy, code, ran, stopping),
                want,
                "{policy:?} {code} {ran} {stopping}"
            );
        }
    }

    #[test]
    fn stop_order_follows_dependencies_backwards() {
        let running = vec!["db".to_string(), "app".to_string()];
        let deps = vec![("app".to_string(), vec!["db".to_string()])];
        assert_eq!(compute_stoppable(&running, &deps), vec!["app".to_string()]);
        assert_eq!(
            compute_stoppable(&["db".to_string()], &deps),
            vec!["db".to_string()]
        );
    }

    #[test]
    fn create_order_puts_volume_and_link_sources_first() {
        assert_eq!(compute_create_order(&[vec![], vec![]]), vec![0, 1]);
        assert_eq!(compute_create_order(&[vec![1], vec![]]), vec![1, 0]);
        assert_eq!(
            compute_create_order(&[vec![2], vec![0], vec![]]),
            vec![2, 0, 1]
        );
        // A cycle keeps definition order rather than dropping a container.
        assert_eq!(compute_create_order(&[vec![1], vec![0]]), vec![0, 1]);
    }

    #[test]
    fn awsvpc_statuses_follow_the_network_and_only_move_forward() {
        use NetworkStage::*;
        use TaskStatus as T;
        let two = |a, b| vec![view("a", a, None), view("b", b, None)];
        let cases: Vec<(Phase, NetworkStage, bool, Vec<ContainerView>, T)> = vec![
            (
                Phase::Pending,
                Provisioning,
                false,
                two(P, P),
                T::Provisioning,
            ),
            (
                Phase::Activating,
                Provisioning,
                false,
                two(P, P),
                T::Provisioning,
            ),
            (Phase::Activating, Pulling, false, two(P, P), T::Pending),
            (Phase::Activating, Ready, false, two(P, P), T::Activating),
            (Phase::Activating, Ready, false, two(R, P), T::Activating),
            (Phase::Activating, Ready, false, two(R, R), T::Running),
            // Stopping: unchanged until a signal is delivered.
            (Phase::Stopping, Ready, false, two(R, R), T::Provisioning),
            (Phase::Stopping, Ready, true, two(R, R), T::Stopping),
            (Phase::Stopping, Ready, true, two(S, R), T::Stopping),
            (Phase::Stopping, Ready, true, two(S, S), T::Deprovisioning),
            (Phase::Stopping, Released, true, two(S, S), T::Stopped),
            // A failed provisioning: nothing ever ran.
            (
                Phase::Stopping,
                Provisioning,
                false,
                two(S, S),
                T::Deprovisioning,
            ),
            (Phase::Stopping, Released, false, two(S, S), T::Stopped),
            // Every container exited before the engine decided to stop.
            (
                Phase::Activating,
                Ready,
                false,
                two(S, S),
                T::Deprovisioning,
            ),
        ];
        for (phase, stage, signalled, cs, want) in cases {
            assert_eq!(
                compute_awsvpc_status(phase, stage, signalled, &cs),
                want,
                "{phase:?} {stage:?} signalled={signalled}"
            );
        }
        // The forward-only rule keeps a status the server may already show.
        let held = advance(
            T::Running,
            compute_awsvpc_status(Phase::Stopping, Ready, false, &two(R, R)),
        );
        assert_eq!(held, T::Running);
        assert_eq!(advance(T::Deactivating, T::Stopping), T::Stopping);
        assert_eq!(advance(T::Stopping, T::Pending), T::Stopping);
    }

    #[test]
    fn the_exec_agent_follows_its_container() {
        use flotilla_protocol::ManagedAgentStatus as A;
        use ContainerStatus as C;
        assert_eq!(compute_exec_agent(false, C::Running, Some(1.0)), None);
        let status =
            |c, since| compute_exec_agent(true, c, since).map(|a| (a.status, a.started_at));
        assert_eq!(status(C::Pending, None), Some((A::Pending, None)));
        assert_eq!(status(C::Running, Some(5.0)), Some((A::Running, Some(5.0))));
        assert_eq!(status(C::Stopped, Some(5.0)), Some((A::Stopped, Some(5.0))));
        assert_eq!(status(C::Stopped, None), Some((A::Stopped, None)));
    }
}
