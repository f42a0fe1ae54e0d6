//! The task registry: the owner of every task the engine knows, by task ARN.
//!
//! What this is: [`TaskRegistry`]: the handle of each owner (its assignment channel, its latest
//! report and running container ids, its abort handle), the final reports of the tasks cleaned
//! up (kept for [`DONE_RETENTION`], so a late re-assignment does not run them again), and the
//! containers found without saved state (orphans, stopped unless the server assigns them);
//! how an owner is spawned and registered ([`spawn_owner`]), and the assignment that stops
//! orphans ([`orphan_assignment`]).
//!
//! What this is not: a decision maker. Which assignment wins is decided by each owner; this
//! module only routes it.

use super::{lock, Inner, TaskOwner, DONE_RETENTION};
use crate::runtime::ContainerSummary;
use crate::state::PersistedTask;
use flotilla_model::shapes::{ContainerDefinition, TaskStopCode};
use flotilla_protocol::{
    labels, ContainerAssignment, DesiredStatus, TaskAssignment, TaskStateReport,
    PAUSE_CONTAINER_NAME,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

#[derive(Default)]
pub(super) struct Shared {
    pub(super) latest: Option<TaskStateReport>,
    pub(super) running_ids: Vec<String>,
}

/// What a later assignment can change of a task: its desired state. The containers are fixed
/// at the first assignment, which the owner keeps; its channel carries only this, so a host's
/// tasks are not held twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Desired {
    pub(super) version: u64,
    pub(super) desired_status: DesiredStatus,
    pub(super) stop_reason: Option<String>,
    pub(super) stop_code: Option<TaskStopCode>,
    pub(super) stop_grace_seconds: Option<u64>,
}

impl Desired {
    pub(super) fn of(a: &TaskAssignment) -> Self {
        Desired {
            version: a.version,
            desired_status: a.desired_status,
            stop_reason: a.stop_reason.clone(),
            stop_code: a.stop_code,
            stop_grace_seconds: a.stop_grace_seconds,
        }
    }

    /// Whether it supersedes the desired state `version`/`status`: a higher version, or the
    /// same version stopping.
    pub(super) fn supersedes(&self, version: u64, status: DesiredStatus) -> bool {
        (self.version, self.desired_status) > (version, status)
    }

    /// [`Desired::supersedes`] of `other`'s.
    pub(super) fn newer_than(&self, other: &Desired) -> bool {
        self.supersedes(other.version, other.desired_status)
    }
}

pub(super) struct Handle {
    pub(super) tx: watch::Sender<Desired>,
    /// The task was run with `enableExecuteCommand`.
    pub(super) exec: bool,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) abort: tokio::task::AbortHandle,
}

/// Where an assignment goes ([`TaskRegistry::route`]).
pub(super) enum Route {
    /// The task was cleaned up: its final report, to send again.
    Done(Box<TaskStateReport>),
    /// Its owner has it (it applies it if newer).
    Delivered,
    /// No owner: a new one is needed, with the containers found for it before.
    New(Box<TaskAssignment>, Vec<ContainerSummary>),
}

/// Every task the engine knows, by task ARN. No lock is held beyond one method call.
#[derive(Default)]
pub(super) struct TaskRegistry {
    owners: Mutex<HashMap<String, Handle>>,
    /// Tasks cleaned up: their final report and when.
    done: Mutex<HashMap<String, (TaskStateReport, Instant)>>,
    /// Containers found in the runtime whose task has no saved state, by task ARN.
    orphans: Mutex<HashMap<String, Vec<ContainerSummary>>>,
}

impl TaskRegistry {
    /// Hands `a` to its task's owner, or says what else to do with it.
    pub(super) fn route(&self, a: TaskAssignment) -> Route {
        if let Some((report, _)) = lock(&self.done).get(&a.task_arn) {
            return Route::Done(Box::new(report.clone()));
        }
        if let Some(h) = lock(&self.owners).get(&a.task_arn) {
            let desired = Desired::of(&a);
            h.tx.send_if_modified(|cur| {
                let newer = desired.newer_than(cur);
                if newer {
                    *cur = desired;
                }
                newer
            });
            return Route::Delivered;
        }
        let found = lock(&self.orphans).remove(&a.task_arn).unwrap_or_default();
        Route::New(Box::new(a), found)
    }

    /// Tells the owners of the tasks not in `listed` that have not been told to stop to stop,
    /// for `reason`; returns their ARNs.
    pub(super) fn stop_unlisted(&self, listed: &[String], reason: &str) -> Vec<String> {
        let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
        let owners = lock(&self.owners);
        let mut stopped = Vec::new();
        for (arn, h) in owners.iter() {
            if listed.contains(arn.as_str()) {
                continue;
            }
            let told = h.tx.send_if_modified(|cur| {
                if cur.desired_status == DesiredStatus::Stopped {
                    return false;
                }
                cur.desired_status = DesiredStatus::Stopped;
                cur.stop_reason = Some(reason.to_string());
                true
            });
            if told {
                stopped.push(arn.clone());
            }
        }
        stopped
    }

    /// The orphans whose task is not in `listed`.
    pub(super) fn unlisted_orphans(
        &self,
        listed: &[String],
    ) -> Vec<(String, Vec<ContainerSummary>)> {
        lock(&self.orphans)
            .iter()
            .filter(|(arn, _)| !listed.contains(arn))
            .map(|(a, c)| (a.clone(), c.clone()))
            .collect()
    }

    /// Remembers containers found without saved state.
    pub(super) fn add_orphans(&self, task_arn: String, found: Vec<ContainerSummary>) {
        lock(&self.orphans).insert(task_arn, found);
    }

    /// Forgets a cleaned-up task, keeping its final report.
    pub(super) fn forget(&self, task_arn: &str, last: Option<TaskStateReport>) {
        if let Some(r) = last {
            let mut done = lock(&self.done);
            done.retain(|_, (_, at)| at.elapsed() < DONE_RETENTION);
            done.insert(task_arn.to_string(), (r, Instant::now()));
        }
        lock(&self.owners).remove(task_arn);
    }

    /// The latest report of every owned task.
    pub(super) fn latest_reports(&self) -> Vec<TaskStateReport> {
        lock(&self.owners)
            .values()
            .filter_map(|h| lock(&h.shared).latest.clone())
            .collect()
    }

    /// The running container ids of every owned task.
    pub(super) fn running_ids(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.owners)
            .iter()
            .map(|(arn, h)| (arn.clone(), lock(&h.shared).running_ids.clone()))
            .collect()
    }

    /// Whether an owned task was run with `enableExecuteCommand`, and its latest report.
    pub(super) fn view(&self, task_arn: &str) -> Option<(bool, Option<TaskStateReport>)> {
        let owners = lock(&self.owners);
        let h = owners.get(task_arn)?;
        let latest = lock(&h.shared).latest.clone();
        Some((h.exec, latest))
    }

    /// The ARNs of the owned tasks.
    pub(super) fn arns(&self) -> Vec<String> {
        lock(&self.owners).keys().cloned().collect()
    }

    /// Stops every owner without touching containers.
    pub(super) fn abort_all(&self) {
        for (_, h) in lock(&self.owners).drain() {
            h.abort.abort();
        }
    }
}

pub(super) fn orphan_assignment(arn: &str, cs: &[ContainerSummary]) -> TaskAssignment {
    let label = |k: &str| {
        cs.iter()
            .find_map(|c| c.labels.get(k).cloned())
            .unwrap_or_default()
    };
    TaskAssignment {
        task_arn: arn.to_string(),
        cluster_arn: label(labels::CLUSTER),
        task_definition_arn: label(labels::TASK_DEFINITION),
        version: 0,
        desired_status: DesiredStatus::Stopped,
        stop_reason: Some("Task is no longer assigned to this container instance".into()),
        stop_code: None,
        network_mode: Default::default(),
        cpu: None,
        memory: None,
        volumes: vec![],
        pid_mode: None,
        network: None,
        stop_grace_seconds: None,
        task_role_arn: None,
        service_name: None,
        enable_execute_command: false,
        ipc_mode: None,
        containers: cs
            .iter()
            .filter(|c| {
                c.labels.get(labels::CONTAINER_NAME).map(String::as_str)
                    != Some(PAUSE_CONTAINER_NAME)
            })
            .map(|c| ContainerAssignment {
                container_arn: String::new(),
                definition: ContainerDefinition {
                    name: c.labels.get(labels::CONTAINER_NAME).cloned(),
                    image: Some(c.image.clone()),
                    ..Default::default()
                },
            })
            .collect(),
    }
}

pub(super) fn spawn_owner(inner: &Arc<Inner>, p: PersistedTask, found: Vec<ContainerSummary>) {
    let arn = p.assignment.task_arn.clone();
    let exec = p.assignment.enable_execute_command;
    let (tx, rx) = watch::channel(Desired::of(&p.assignment));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let owner = TaskOwner::new(inner.clone(), p, rx, shared.clone(), found);
    let span =
        tracing::info_span!("task", task = %arn, container_instance = %inner.cfg.instance_id);
    let join = tokio::spawn(owner.run().instrument(span));
    lock(&inner.tasks.owners).insert(
        arn,
        Handle {
            tx,
            exec,
            shared,
            abort: join.abort_handle(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(version: u64, status: DesiredStatus) -> Desired {
        Desired {
            version,
            desired_status: status,
            stop_reason: None,
            stop_code: None,
            stop_grace_seconds: None,
        }
    }

    #[test]
    fn a_higher_version_or_a_stop_of_the_same_version_supersedes() {
        let running = desired(3, DesiredStatus::Running);
        assert!(desired(4, DesiredStatus::Running).newer_than(&running));
        assert!(desired(3, DesiredStatus::Stopped).newer_than(&running));
        assert!(!desired(3, DesiredStatus::Running).newer_than(&running));
        assert!(!desired(2, DesiredStatus::Stopped).newer_than(&running));
    }

    #[tokio::test]
    async fn only_unlisted_tasks_not_yet_stopping_are_told_to_stop() {
        let registry = TaskRegistry::default();
        let idle = tokio::spawn(std::future::pending::<()>());
        let mut receivers = Vec::new();
        for (arn, status) in [
            ("listed", DesiredStatus::Running),
            ("unlisted", DesiredStatus::Running),
            ("stopping", DesiredStatus::Stopped),
        ] {
            let (tx, rx) = watch::channel(desired(1, status));
            receivers.push((arn, rx));
            lock(&registry.owners).insert(
                arn.to_string(),
                Handle {
                    tx,
                    exec: false,
                    shared: Default::default(),
                    abort: idle.abort_handle(),
                },
            );
        }
        let told = registry.stop_unlisted(&["listed".to_string()], "gone");
        assert_eq!(told, vec!["unlisted".to_string()]);
        for (arn, rx) in &receivers {
            let now = rx.borrow().clone();
            match *arn {
                "listed" => assert_eq!(now, desired(1, DesiredStatus::Running)),
                "unlisted" => {
                    assert_eq!(now.desired_status, DesiredStatus::Stopped);
                    assert_eq!(now.stop_reason.as_deref(), Some("gone"));
                    assert_eq!(now.version, 1);
                }
                _ => assert_eq!(now, desired(1, DesiredStatus::Stopped)),
            }
        }
        assert!(
            registry.stop_unlisted(&[], "again").len() == 1,
            "only `listed` is left to tell"
        );
        idle.abort();
    }
}
