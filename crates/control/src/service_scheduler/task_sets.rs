//! The scheduler of a service whose deployment controller is `EXTERNAL` or `CODE_DEPLOY`: no
//! rolling deployments, but task sets ([`crate::task_sets`]), each kept at its own computed
//! desired count.
//!
//! For each set, level-triggered like the rest of the scheduler:
//! - its tasks are those whose `startedBy` is its id; a task on a lost agent's instance counts
//!   as gone (it is replaced), one failing its health checks is stopped and replaced, one on a
//!   DRAINING instance is replaced first and stopped once the set's other tasks are RUNNING;
//! - it starts what its computed count lacks and stops a surplus (PENDING first, then
//!   unhealthy, then the newest);
//! - a DRAINING set (DeleteTaskSet) or any set of a DRAINING service wants 0, and a DRAINING
//!   set with no task left that has not stopped is gone;
//! - it is STEADY_STATE when exactly its computed count of tasks run, all healthy, none
//!   pending, stopping or on a DRAINING instance.
//!
//! A task of the service whose set is gone is stopped.

use super::steps::{stop, StopWhy};
use super::{Actions, Phase, ServiceEvent, TaskObs};
use crate::task_sets::{TaskSetRecord, TaskSetStatus};

/// What one set needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetPlan {
    /// The set's id.
    pub id: String,
    /// Tasks to start.
    pub start: u32,
    /// Tasks PENDING.
    pub pending: u32,
    /// Tasks RUNNING.
    pub running: u32,
    /// STEADY_STATE.
    pub steady: bool,
    /// A DRAINING set with nothing left: remove it.
    pub gone: bool,
}

/// What to do for the service's task sets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskSetActions {
    /// One plan per set, in the sets' order.
    pub sets: Vec<SetPlan>,
    /// Tasks to stop: ARN and reason.
    pub stop: Vec<(String, String)>,
    /// Events to add, oldest first.
    pub events: Vec<ServiceEvent>,
    /// Every set is steady.
    pub steady: bool,
    /// A DRAINING service has no task left: it becomes INACTIVE.
    pub inactive: bool,
}

/// Decides the starts and stops of every set of a service (`service_draining`: DeleteService
/// was called), from the observed tasks.
pub fn compute_task_set_actions(
    sets: &[TaskSetRecord],
    tasks: &[TaskObs],
    service_draining: bool,
) -> TaskSetActions {
    let mut out = Actions::default();
    let mut plans = Vec::with_capacity(sets.len());
    let mut stopping: Vec<(&TaskObs, StopWhy)> = Vec::new();
    for set in sets {
        let draining = service_draining || set.status == TaskSetStatus::Draining;
        let wanted = if draining {
            0
        } else {
            set.computed_desired_count
        };
        let mine: Vec<&TaskObs> = tasks.iter().filter(|t| t.deployment == set.id).collect();
        plans.push(plan_set(set, wanted, draining, &mine, &mut stopping));
    }
    let orphans = tasks.iter().filter(|t| {
        matches!(t.phase, Phase::Pending | Phase::Running)
            && !sets.iter().any(|s| s.id == t.deployment)
    });
    stopping.extend(orphans.map(|t| (t, StopWhy::Scaling)));
    stop(&stopping, &mut out);
    let steady = !service_draining && plans.iter().all(|p| p.steady);
    let inactive = service_draining && tasks.iter().all(|t| t.phase == Phase::Stopped);
    TaskSetActions {
        sets: plans,
        stop: out.stop,
        events: out.events,
        steady,
        inactive,
    }
}

/// One set's plan; its stops are added to `stopping`.
fn plan_set<'a>(
    set: &TaskSetRecord,
    wanted: u32,
    draining: bool,
    mine: &[&'a TaskObs],
    stopping: &mut Vec<(&'a TaskObs, StopWhy)>,
) -> SetPlan {
    let live = |t: &&&TaskObs| matches!(t.phase, Phase::Pending | Phase::Running) && !t.lost;
    let unhealthy: Vec<&TaskObs> = mine
        .iter()
        .filter(live)
        .filter(|t| t.unhealthy)
        .copied()
        .collect();
    let mut counted: Vec<&TaskObs> = mine
        .iter()
        .filter(live)
        .filter(|t| !t.unhealthy && !t.draining)
        .copied()
        .collect();
    let on_draining: Vec<&TaskObs> = mine
        .iter()
        .filter(live)
        .filter(|t| !t.unhealthy && t.draining)
        .copied()
        .collect();
    let have = u32::try_from(counted.len()).unwrap_or(u32::MAX);
    let start = wanted.saturating_sub(have);
    let surplus = have.saturating_sub(wanted) as usize;
    // Keep the healthy, longest-running tasks: PENDING first, then unhealthy, then newest.
    counted.sort_by(|a, b| {
        let key = |t: &TaskObs| (t.phase == Phase::Running, t.healthy);
        key(a).cmp(&key(b)).then_with(|| {
            let s = |t: &TaskObs| t.started_at.unwrap_or(f64::MAX);
            s(b).total_cmp(&s(a))
        })
    });
    let mut stops = 0usize;
    for t in &unhealthy {
        stopping.push((t, StopWhy::Unhealthy));
        stops += 1;
    }
    for t in counted.iter().take(surplus) {
        stopping.push((t, StopWhy::Scaling));
        stops += 1;
    }
    let ready = counted
        .iter()
        .skip(surplus)
        .filter(|t| t.phase == Phase::Running && t.healthy)
        .count();
    if draining || ready >= wanted as usize {
        for t in &on_draining {
            stopping.push((t, StopWhy::Scaling));
            stops += 1;
        }
    }
    let pending = mine
        .iter()
        .filter(|t| t.phase == Phase::Pending && !t.lost)
        .count();
    let running = mine
        .iter()
        .filter(|t| t.phase == Phase::Running && !t.lost)
        .count();
    let settling = mine.iter().any(|t| t.phase == Phase::Stopping);
    let all_healthy = mine
        .iter()
        .filter(|t| t.phase == Phase::Running)
        .all(|t| t.healthy && !t.lost);
    let steady = start == 0
        && stops == 0
        && pending == 0
        && !settling
        && on_draining.is_empty()
        && all_healthy
        && running == wanted as usize;
    let gone =
        set.status == TaskSetStatus::Draining && mine.iter().all(|t| t.phase == Phase::Stopped);
    SetPlan {
        id: set.id.clone(),
        start,
        pending: u32::try_from(pending).unwrap_or(u32::MAX),
        running: u32::try_from(running).unwrap_or(u32::MAX),
        steady,
        gone,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::task;
    use super::*;

    fn set(id: &str, status: TaskSetStatus, count: u32) -> TaskSetRecord {
        TaskSetRecord {
            id: id.into(),
            status,
            computed_desired_count: count,
            scale: 100.0,
            ..TaskSetRecord::default()
        }
    }

    #[test]
    fn each_set_starts_what_it_lacks() {
        let sets = [
            set("a", TaskSetStatus::Primary, 3),
            set("b", TaskSetStatus::Active, 0),
        ];
        let tasks = [task(1, "a", Phase::Running)];
        let a = compute_task_set_actions(&sets, &tasks, false);
        assert_eq!(a.sets[0].start, 2);
        assert_eq!(a.sets[1].start, 0);
        assert!(a.sets[1].steady);
        assert!(!a.sets[0].steady);
        assert!(!a.steady);
        assert!(a.stop.is_empty());
    }

    #[test]
    fn a_surplus_stops_pending_then_newest() {
        let sets = [set("a", TaskSetStatus::Primary, 1)];
        let mut old = task(1, "a", Phase::Running);
        old.started_at = Some(1.0);
        let mut new = task(2, "a", Phase::Running);
        new.started_at = Some(5.0);
        let pending = task(3, "a", Phase::Pending);
        let a = compute_task_set_actions(&sets, &[old, new, pending], false);
        let stopped: Vec<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
        assert_eq!(stopped, ["arn:t3", "arn:t2"]);
        assert_eq!(a.stop[0].1, "Scaling activity initiated by (deployment a)");
    }

    #[test]
    fn steady_when_exactly_the_count_runs() {
        let sets = [set("a", TaskSetStatus::Primary, 2)];
        let tasks = [task(1, "a", Phase::Running), task(2, "a", Phase::Running)];
        let a = compute_task_set_actions(&sets, &tasks, false);
        assert!(a.sets[0].steady && a.steady);
        assert_eq!((a.sets[0].running, a.sets[0].pending), (2, 0));
    }

    #[test]
    fn a_draining_set_stops_everything_then_is_gone() {
        let sets = [set("a", TaskSetStatus::Draining, 0)];
        let tasks = [task(1, "a", Phase::Running)];
        let a = compute_task_set_actions(&sets, &tasks, false);
        assert_eq!(a.stop.len(), 1);
        assert!(!a.sets[0].gone);
        let a = compute_task_set_actions(&sets, &[task(1, "a", Phase::Stopped)], false);
        assert!(a.sets[0].gone);
        assert!(a.stop.is_empty());
    }

    #[test]
    fn lost_and_unhealthy_tasks_are_replaced() {
        let sets = [set("a", TaskSetStatus::Primary, 2)];
        let mut lost = task(1, "a", Phase::Running);
        lost.lost = true;
        let mut sick = task(2, "a", Phase::Running);
        sick.unhealthy = true;
        let a = compute_task_set_actions(&sets, &[lost, sick], false);
        assert_eq!(a.sets[0].start, 2);
        assert_eq!(a.stop.len(), 1);
        assert_eq!(a.stop[0].1, "Task failed container health checks");
    }

    #[test]
    fn a_task_on_a_draining_instance_goes_once_its_replacement_runs() {
        let sets = [set("a", TaskSetStatus::Primary, 1)];
        let mut on_draining = task(1, "a", Phase::Running);
        on_draining.draining = true;
        let a = compute_task_set_actions(&sets, std::slice::from_ref(&on_draining), false);
        assert_eq!(a.sets[0].start, 1);
        assert!(a.stop.is_empty());
        let a =
            compute_task_set_actions(&sets, &[on_draining, task(2, "a", Phase::Running)], false);
        assert_eq!(a.sets[0].start, 0);
        assert_eq!(a.stop.len(), 1);
        assert_eq!(a.stop[0].0, "arn:t1");
    }

    #[test]
    fn tasks_of_no_set_stop_and_a_draining_service_ends_inactive() {
        let sets = [set("a", TaskSetStatus::Primary, 1)];
        let a = compute_task_set_actions(&sets, &[task(1, "zzz", Phase::Running)], false);
        assert_eq!(a.stop.len(), 1);
        let a = compute_task_set_actions(&sets, &[task(1, "a", Phase::Running)], true);
        assert_eq!(a.stop.len(), 1);
        assert!(!a.inactive);
        let a = compute_task_set_actions(&sets, &[task(1, "a", Phase::Stopped)], true);
        assert!(a.inactive);
    }
}
