//! The per-task owner: one tokio task per ECS task, the only writer of that task's status.
//!
//! What this is: `TaskOwner`'s level-triggered loop ([`TaskOwner::run`]): take the newest
//! assignment, do one step (observe the containers, decide with [`crate::lifecycle`], act),
//! report when the observed state changed, and, once STOPPED and the cleanup delay is over,
//! remove what the task left. Its state is persisted in the data directory at each change.
//!
//! What this is not: the actions themselves: provisioning is in `provision`, images in
//! `images`, creating, starting, observing and stopping containers in `containers`.
//!
//! Invariant: the status only moves forward ([`lifecycle::advance`]); an assignment is taken
//! only if its (version, desired status) is higher than the one the owner has.

use super::{lock, Ctr, Inner, Shared};
use crate::failure::TaskFailure;
use crate::lifecycle::{ContainerView, Phase};
use crate::runtime::ContainerSummary;
use crate::state::PersistedTask;
use crate::{lifecycle, spec};
use flotilla_model::shapes::{HealthStatus, TaskStopCode};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{
    labels, ContainerSecrets, ContainerStateReport, DesiredStatus, SecretsOutcome, TaskAssignment,
    TaskStateReport, PAUSE_CONTAINER_NAME,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub(super) struct TaskOwner {
    pub(super) inner: Arc<Inner>,
    pub(super) p: PersistedTask,
    pub(super) rx: watch::Receiver<super::tasks::Desired>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) phase: Phase,
    pub(super) status: TaskStatus,
    pub(super) ctrs: Vec<Ctr>,
    pub(super) last_sent: Option<TaskStateReport>,
    pub(super) stops: JoinSet<()>,
    /// The task has its own network namespace (a pause container).
    pub(super) awsvpc: bool,
    /// The pause container was seen running by this owner.
    pub(super) pause_ok: bool,
    /// Every image is present (awsvpc: PENDING is over).
    pub(super) images_ready: bool,
    /// A stop signal was delivered (or nothing was left to signal).
    pub(super) signalled: bool,
    /// The task's secrets, once read for creating its containers: in memory only, never
    /// persisted.
    pub(super) secrets: Option<Vec<ContainerSecrets>>,
    /// The task's side of the metadata and credentials endpoint (in memory only).
    pub(super) endpoint: super::endpoint::EndpointState,
    /// The task took one of the host's warm task networks: dropped once it runs (or the
    /// owner ends), which asks the server for a refill.
    pub(super) warm_refill: Option<super::warm::RefillGuard>,
}

/// How long an owner waits for its secrets before it looks at its task again (the session may
/// be reconnecting); it asks again on its next step.
pub(super) const SECRETS_WAIT: Duration = Duration::from_secs(10);

impl TaskOwner {
    pub(super) fn new(
        inner: Arc<Inner>,
        p: PersistedTask,
        rx: watch::Receiver<super::tasks::Desired>,
        shared: Arc<Mutex<Shared>>,
        found: Vec<ContainerSummary>,
    ) -> Self {
        let mut p = p;
        let pause_found = found
            .iter()
            .find(|f| {
                f.labels.get(labels::CONTAINER_NAME).map(String::as_str)
                    == Some(PAUSE_CONTAINER_NAME)
            })
            .map(|f| f.id.clone());
        match pause_found {
            Some(id) => p.pause_id = Some(id),
            // Saved as created, gone from Docker: the address is released.
            None if p.pause_id.is_some() => p.deprovisioned = true,
            None => {}
        }
        let awsvpc = p.assignment.network.is_some() || p.pause_id.is_some();
        let now = Instant::now();
        let ctrs: Vec<Ctr> = p
            .assignment
            .containers
            .iter()
            .map(|c| {
                let name = spec::def_name(&c.definition).to_string();
                let runtime_id = found
                    .iter()
                    .find(|f| f.labels.get(labels::CONTAINER_NAME) == Some(&name))
                    .map(|f| f.id.clone());
                Ctr {
                    essential: spec::is_essential(&c.definition),
                    def: c.definition.clone(),
                    reason: p.container_reasons.get(&name).cloned(),
                    // A container saved as created but not found in Docker is gone.
                    status: if runtime_id.is_none() && p.container_ids.contains_key(&name) {
                        ContainerStatus::Stopped
                    } else {
                        ContainerStatus::Pending
                    },
                    runtime_id,
                    exit_code: None,
                    bindings: vec![],
                    health: None,
                    started: None,
                    running_since: None,
                    waiting_since: now,
                    image_digest: None,
                    stop_requested: false,
                    facts: Default::default(),
                    token: None,
                    name,
                }
            })
            .collect();
        let mut ctrs = ctrs;
        for c in &mut ctrs {
            if c.status == ContainerStatus::Stopped && c.reason.is_none() {
                let id = p.container_ids.get(&c.name).cloned().unwrap_or_default();
                c.reason = Some(TaskFailure::ContainerGone { id }.to_string());
            }
        }
        let resumed = ctrs.iter().any(|c| c.runtime_id.is_some())
            || p.pull_started_at.is_some()
            || p.pause_id.is_some();
        Self {
            phase: if p.stopping {
                Phase::Stopping
            } else if resumed {
                Phase::Activating
            } else {
                Phase::Pending
            },
            status: if awsvpc {
                TaskStatus::Provisioning
            } else {
                TaskStatus::Pending
            },
            inner,
            p,
            rx,
            shared,
            ctrs,
            last_sent: None,
            stops: JoinSet::new(),
            awsvpc,
            pause_ok: false,
            images_ready: false,
            signalled: false,
            secrets: None,
            endpoint: Default::default(),
            warm_refill: None,
        }
    }

    pub(super) fn persist(&self) {
        if let Err(e) = self.inner.data.save_task(&self.p) {
            warn!(error = %e, "cannot save task state");
        }
    }

    pub(super) fn assignment(&self) -> &TaskAssignment {
        &self.p.assignment
    }

    pub(super) async fn run(mut self) {
        let poll = self.inner.cfg.poll_interval;
        if self.phase == Phase::Pending {
            // A new task is seen: PENDING. A resumed one reports what it observes first.
            self.report();
        }
        // Whether something other than the poll's timer woke the owner (the first step, a new
        // desired state, a stop ending).
        let mut woken = true;
        loop {
            // A steady task none of whose containers changed since its last look is not
            // stepped at this poll ([`TaskOwner::quiet`]).
            if woken || !self.quiet() {
                // Boxed: a step's future (provisioning, pulls, creates, stops...) is the largest
                // part of an owner's state, and an owner spends nearly all its life waiting
                // between steps; on the heap only while a step runs, it leaves the waiting owner
                // small (a host with hundreds of tasks, a thousand hollow hosts in one `bench
                // scale`).
                Box::pin(self.step()).await;
                self.report();
                if self.status >= TaskStatus::Running {
                    // The refill's pause container no longer competes with this task's start.
                    self.warm_refill = None;
                }
                if self.status == TaskStatus::Stopped {
                    let at = self
                        .p
                        .execution_stopped_at
                        .unwrap_or_else(|| self.inner.now_epoch())
                        + self.inner.cfg.cleanup_delay.as_secs_f64();
                    let wait = (at - self.inner.now_epoch()).max(0.0);
                    tokio::select! {
                        changed = self.rx.changed() => {
                            if changed.is_err() { return; }
                            self.take_assignment();
                            woken = true;
                            continue;
                        }
                        _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {
                            Box::pin(self.cleanup()).await;
                            return;
                        }
                    }
                }
            }
            // A steady RUNNING task is inspected less often than one that is changing.
            let wait = if self.status == TaskStatus::Running && self.phase != Phase::Stopping {
                poll * 4
            } else {
                poll
            };
            woken = tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() { return; }
                    self.take_assignment();
                    true
                }
                _ = tokio::time::sleep(wait) => false,
                Some(_) = self.stops.join_next(), if !self.stops.is_empty() => true,
            };
        }
    }

    /// Whether a step now would find nothing to do: the task is steadily RUNNING (not
    /// stopping, with no stop of a container in flight), keeps no task role credentials
    /// (those are refreshed as they age), and the runtime tells, without an inspect, that none
    /// of its containers changed since the step last inspected them
    /// ([`crate::runtime::Runtime::state_token`]; Docker cannot tell, so its owners always
    /// step). A simulated host with thousands of running tasks would otherwise inspect each
    /// of them at every poll.
    fn quiet(&self) -> bool {
        self.status == TaskStatus::Running
            && self.phase != Phase::Stopping
            && self.stops.is_empty()
            && !self.has_role()
            && self.ctrs.iter().all(|c| match &c.runtime_id {
                None => false,
                Some(_) if c.status == ContainerStatus::Stopped => true,
                Some(id) => c.token.is_some() && c.token == self.inner.runtime.state_token(id),
            })
    }

    pub(super) fn take_assignment(&mut self) {
        let a = self.rx.borrow_and_update().clone();
        if a.supersedes(self.p.assignment.version, self.p.assignment.desired_status) {
            debug!(version = a.version, desired = ?a.desired_status, "new assignment");
            // Containers are fixed at the first assignment; later ones change desired state.
            self.p.assignment.version = a.version;
            self.p.assignment.desired_status = a.desired_status;
            self.p.assignment.stop_reason = a.stop_reason;
            self.p.assignment.stop_code = a.stop_code;
            self.p.assignment.stop_grace_seconds = a.stop_grace_seconds;
            self.persist();
        }
    }

    pub(super) fn begin_stop(&mut self, code: Option<TaskStopCode>, reason: Option<String>) {
        if self.phase == Phase::Stopping {
            return;
        }
        info!(reason = reason.as_deref().unwrap_or(""), "task stopping");
        self.phase = Phase::Stopping;
        self.p.stopping = true;
        if self.p.stop_code.is_none() {
            self.p.stop_code = code;
        }
        if self.p.stopped_reason.is_none() {
            self.p.stopped_reason = reason;
        }
        self.persist();
    }

    pub(super) fn fail_start(&mut self, container: Option<&str>, failure: TaskFailure) {
        let reason = failure.to_string();
        warn!(container = container.unwrap_or(""), reason = %reason, "task failed to start");
        if let Some(name) = container {
            if let Some(c) = self.ctrs.iter_mut().find(|c| c.name == name) {
                c.reason = Some(reason.clone());
            }
            self.p
                .container_reasons
                .insert(name.to_string(), reason.clone());
        }
        self.begin_stop(Some(TaskStopCode::TaskFailedToStart), Some(reason));
    }

    pub(super) async fn step(&mut self) {
        if self.assignment().desired_status == DesiredStatus::Stopped {
            let (code, reason) = (
                self.assignment().stop_code,
                self.assignment().stop_reason.clone(),
            );
            self.begin_stop(code, reason);
        }
        if self.phase == Phase::Pending {
            self.phase = Phase::Activating;
            if let Err(reason) = spec::validate(self.assignment()) {
                let first = self.ctrs.first().map(|c| c.name.clone());
                self.fail_start(first.as_deref(), TaskFailure::Invalid(reason));
            }
        }
        if self.phase == Phase::Activating && self.needs_creation() {
            if self.awsvpc {
                if !self.pause_ok {
                    match self.provision().await {
                        Ok(()) => self.pause_ok = true,
                        Err(reason) => self.fail_start(None, reason),
                    }
                }
                if self.phase == Phase::Activating {
                    self.set_status(TaskStatus::Pending);
                    if self.secrets_ready().await
                        && self.credentials_ready().await
                        && self.pull_images().await
                    {
                        self.images_ready = true;
                        self.set_status(TaskStatus::Activating);
                        self.create_containers().await;
                    }
                }
            } else {
                self.status = lifecycle::advance(self.status, TaskStatus::Activating);
                self.report();
                if self.secrets_ready().await
                    && self.credentials_ready().await
                    && self.pull_images().await
                {
                    self.create_containers().await;
                }
            }
        }
        self.observe().await;
        if self.phase == Phase::Activating {
            let views: Vec<ContainerView> = self.ctrs.iter().map(Ctr::view).collect();
            // Restarts were applied by `observe`: a restarted container is not STOPPED.
            if let Some(d) = lifecycle::compute_essential_stop(&views, &[]) {
                self.begin_stop(d.code, Some(d.reason));
            }
        }
        if self.phase == Phase::Activating {
            // The NAT rules and the snapshot before the containers start.
            self.ensure_endpoint().await;
        }
        if self.phase == Phase::Activating {
            self.start_ready().await;
        }
        if self.phase == Phase::Stopping {
            self.stop_some().await;
        }
        let views: Vec<ContainerView> = self.ctrs.iter().map(Ctr::view).collect();
        let next = if self.awsvpc {
            let next =
                lifecycle::compute_awsvpc_status(self.phase, self.stage(), self.signalled, &views);
            if next >= TaskStatus::Deprovisioning {
                // Every step of the teardown is reported, in order.
                self.set_status(TaskStatus::Stopping);
                self.set_status(TaskStatus::Deprovisioning);
                if !self.p.deprovisioned {
                    self.deprovision().await;
                }
            }
            lifecycle::compute_awsvpc_status(self.phase, self.stage(), self.signalled, &views)
        } else {
            lifecycle::compute_task_status(self.phase, &views)
        };
        let before = self.status;
        self.status = lifecycle::advance(self.status, next);
        if self.status != before {
            info!(status = self.status.as_ecs_str(), "task status");
        }
        let mut dirty = false;
        if self.status >= TaskStatus::Running
            && self.p.started_at.is_none()
            && self.status == TaskStatus::Running
        {
            self.p.started_at = Some(self.inner.now_epoch());
            dirty = true;
        }
        if self.status == TaskStatus::Stopped && self.p.execution_stopped_at.is_none() {
            self.p.execution_stopped_at = Some(self.inner.now_epoch());
            dirty = true;
            if !self.awsvpc {
                self.remove_cgroup();
            }
        }
        if dirty {
            self.persist();
        }
        if self.status == TaskStatus::Stopped {
            self.withdraw_endpoint().await;
        } else {
            self.keep_credentials();
            self.publish_endpoint();
        }
        let running: Vec<String> = self
            .running()
            .filter_map(|c| c.runtime_id.clone())
            .collect();
        lock(&self.shared).running_ids = running;
    }

    /// Whether the task's secrets (and its containers' `repositoryCredentials`, needed for the
    /// pulls) are at hand, or it has none: asks the server through the session the first
    /// time; a reason from the server fails the task (`ResourceInitializationError`); no answer
    /// yet (no session) is asked again next step.
    pub(super) async fn secrets_ready(&mut self) -> bool {
        let wanted = self.ctrs.iter().any(|c| {
            c.def.secrets.is_some()
                || c.def.repository_credentials.is_some()
                || c.def
                    .log_configuration
                    .as_ref()
                    .is_some_and(|l| l.secret_options.is_some())
        });
        if !wanted || self.secrets.is_some() {
            return true;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = super::SecretsRequest {
            task_arn: self.assignment().task_arn.clone(),
            reply,
        };
        if self.inner.secrets.send(request).is_err() {
            return false;
        }
        match tokio::time::timeout(SECRETS_WAIT, answer).await {
            Ok(Ok(SecretsOutcome::Resolved { containers })) => {
                debug!(containers = containers.len(), "secrets received");
                self.secrets = Some(containers);
                true
            }
            Ok(Ok(SecretsOutcome::Failed { reason })) => {
                self.fail_start(None, TaskFailure::Secrets(reason));
                false
            }
            Ok(Err(_)) | Err(_) => {
                debug!("the task's secrets are not available yet; asking again");
                false
            }
        }
    }

    /// The containers seen running.
    pub(super) fn running(&self) -> impl Iterator<Item = &Ctr> {
        self.ctrs
            .iter()
            .filter(|c| c.status == ContainerStatus::Running)
    }

    pub(super) fn needs_creation(&self) -> bool {
        self.ctrs
            .iter()
            .any(|c| c.runtime_id.is_none() && c.status == ContainerStatus::Pending)
    }

    /// Advances the status and reports it when it changed.
    pub(super) fn set_status(&mut self, s: TaskStatus) {
        let before = self.status;
        self.status = lifecycle::advance(self.status, s);
        if self.status != before {
            info!(status = self.status.as_ecs_str(), "task status");
            self.report();
        }
    }

    pub(super) fn build_report(&self) -> TaskStateReport {
        let views: Vec<ContainerView> = self.ctrs.iter().map(Ctr::view).collect();
        TaskStateReport {
            seq: 0,
            task_arn: self.assignment().task_arn.clone(),
            version: self.assignment().version,
            last_status: self.status,
            containers: self
                .ctrs
                .iter()
                .map(|c| ContainerStateReport {
                    name: c.name.clone(),
                    runtime_id: c.runtime_id.clone(),
                    last_status: c.status,
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    network_bindings: if c.status == ContainerStatus::Running && !self.awsvpc {
                        c.bindings.clone()
                    } else {
                        vec![]
                    },
                    health_status: if c.def.health_check.is_some() {
                        Some(c.health.unwrap_or(HealthStatus::Unknown))
                    } else {
                        None
                    },
                    image_digest: c.image_digest.clone(),
                    managed_agents: lifecycle::compute_exec_agent(
                        self.assignment().enable_execute_command,
                        c.status,
                        c.running_since,
                    )
                    .into_iter()
                    .collect(),
                })
                .collect(),
            pull_started_at: self.p.pull_started_at,
            pull_stopped_at: self.p.pull_stopped_at,
            started_at: self.p.started_at,
            execution_stopped_at: if self.status == TaskStatus::Stopped {
                self.p.execution_stopped_at
            } else {
                None
            },
            stop_code: if self.phase == Phase::Stopping || self.status == TaskStatus::Stopped {
                self.p.stop_code
            } else {
                None
            },
            stopped_reason: if self.phase == Phase::Stopping || self.status == TaskStatus::Stopped {
                self.p.stopped_reason.clone()
            } else {
                None
            },
            health_status: lifecycle::compute_task_health(&views),
        }
    }

    pub(super) fn report(&mut self) {
        let r = self.build_report();
        if self.last_sent.as_ref() == Some(&r) {
            return;
        }
        self.last_sent = Some(r.clone());
        let mut r = r;
        r.seq = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
        debug!(seq = r.seq, status = r.last_status.as_ecs_str(), "report");
        lock(&self.shared).latest = Some(r.clone());
        let _ = self.inner.reports.send(r);
    }

    /// Removes the task's containers and volumes, forgets it, and removes unused images this
    /// agent pulled.
    pub(super) async fn cleanup(&mut self) {
        let rt = self.inner.runtime.clone();
        info!("cleaning up stopped task");
        self.withdraw_endpoint().await;
        if let Some(id) = &self.p.pause_id {
            if let Err(e) = rt.remove(id).await {
                warn!(error = %e, "cannot remove the pause container");
            }
        }
        for c in &self.ctrs {
            if let Some(id) = &c.runtime_id {
                if let Err(e) = rt.remove(id).await {
                    warn!(container = %c.name, error = %e, "cannot remove container");
                }
            }
        }
        for v in spec::task_volumes(self.assignment(), &self.inner.identity) {
            if spec::is_task_scoped(&v) {
                if let Err(e) = rt.remove_volume(&v.name).await {
                    warn!(volume = %v.name, error = %e, "cannot remove volume");
                }
            }
        }
        self.remove_cgroup();
        let arn = self.assignment().task_arn.clone();
        if let Err(e) = self.inner.data.remove_task(&arn) {
            warn!(error = %e, "cannot remove task state");
        }
        {
            let mut cpu = lock(&self.inner.cpu_prev);
            for c in &self.ctrs {
                if let Some(id) = &c.runtime_id {
                    cpu.remove(id);
                }
            }
        }
        let last = lock(&self.shared).latest.clone();
        self.inner.tasks.forget(&arn, last);
        self.cleanup_images().await;
    }
}
