//! The task registry: the owner of every task the engine knows, by task ARN.
//!
//! What this is: the handle of each owner (its assignment channel, its latest report and running
//! container ids, its abort handle), how an owner is spawned and registered ([`spawn_owner`]),
//! and the assignment that stops containers found without saved state ([`orphan_assignment`]).
//!
//! What this is not: a decision maker. Which assignment wins is decided by each owner; this
//! module only routes it.

use super::*;

#[derive(Default)]
pub(super) struct Shared {
    pub(super) latest: Option<TaskStateReport>,
    pub(super) running_ids: Vec<String>,
}

pub(super) struct Handle {
    pub(super) tx: watch::Sender<TaskAssignment>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) abort: tokio::task::AbortHandle,
}

pub(super) fn orphan_assignment(
    arn: &str,
    cs: &[crate::runtime::ContainerSummary],
) -> TaskAssignment {
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

pub(super) fn spawn_owner(
    inner: &Arc<Inner>,
    p: PersistedTask,
    found: Vec<crate::runtime::ContainerSummary>,
) {
    let arn = p.assignment.task_arn.clone();
    let (tx, rx) = watch::channel(p.assignment.clone());
    let shared = Arc::new(Mutex::new(Shared::default()));
    let owner = TaskOwner::new(inner.clone(), p, rx, shared.clone(), found);
    let span =
        tracing::info_span!("task", task = %arn, container_instance = %inner.cfg.instance_id);
    let join = tokio::spawn(owner.run().instrument(span));
    lock(&inner.tasks).insert(
        arn,
        Handle {
            tx,
            shared,
            abort: join.abort_handle(),
        },
    );
}
