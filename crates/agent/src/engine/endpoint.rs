//! A task's side of the task metadata and credentials endpoint ([`crate::metadata`]): what its
//! owner does so its containers reach `169.254.170.2`.
//!
//! - When it creates a container: the container's ids (`/v4/ID`, and the task's
//!   `/v2/credentials/ID` when it has a role) and, for a bridge container, its MAC address,
//!   chosen once and persisted (the container keeps them in its environment across agent
//!   restarts), become its variables ([`TaskOwner::endpoint_settings`]).
//! - Before the containers are created: the role's credentials, asked for through the session
//!   ([`TaskOwner::credentials_ready`]); a task with a role that the endpoint cannot reach, or
//!   whose credentials the server refuses, fails to start (`ResourceInitializationError`).
//! - Before a container starts: the NAT rules that send its traffic to the endpoint, and the
//!   task's snapshot published ([`TaskOwner::ensure_endpoint`]); also after an agent restart
//!   (the starting endpoint removed the previous run's rules).
//! - While it runs: the credentials refreshed at 60 % of their life, without blocking the
//!   owner ([`TaskOwner::keep_credentials`]), the snapshot republished as it changes.
//! - When it is STOPPED: the rules removed and the task forgotten by the endpoint, so its
//!   credentials are not served any more ([`TaskOwner::withdraw_endpoint`]; the server revokes
//!   them in the same transaction that records it STOPPED).
//!
//! What this is not: the HTTP server or the documents' shapes ([`crate::metadata`]).

use super::{CredentialsRequest, TaskOwner};
use crate::failure::TaskFailure;
use crate::lifecycle::Phase;
use crate::metadata::credentials::{bridge_mac, endpoint_id, refresh_due};
use crate::metadata::documents::{ecs_labels, ContainerMeta, NetworkView, TaskView};
use crate::metadata::redirect::Source;
use crate::metadata::{self, Published, Route};
use crate::spec::{self, EndpointSettings};
use flotilla_model::shapes::NetworkMode;
use flotilla_model::status::TaskStatus;
use flotilla_protocol::{CredentialsOutcome, DesiredStatus, RoleCredentials};
use std::time::Duration;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How long an owner waits before asking again after the server refused a refresh.
const REFRESH_RETRY: Duration = Duration::from_secs(30);

/// What an owner keeps about its task's endpoint (in memory only).
#[derive(Default)]
pub(super) struct EndpointState {
    /// The rules this run of the agent installed.
    rules: Vec<metadata::redirect::Rule>,
    /// Installing rules failed for a task without a role: it runs without the endpoint.
    gave_up: bool,
    /// The role's current credentials.
    credentials: Option<RoleCredentials>,
    /// A refresh asked for and not answered yet.
    pending: Option<tokio::sync::oneshot::Receiver<CredentialsOutcome>>,
    /// No refresh before this (after a refusal).
    retry_at: Option<Instant>,
    /// The snapshot last published.
    published: Option<TaskView>,
    /// The task was withdrawn from the endpoint.
    withdrawn: bool,
}

impl TaskOwner {
    pub(super) fn has_role(&self) -> bool {
        self.assignment().task_role_arn.is_some()
    }

    /// How the endpoint reaches this task, or why it does not; `None` when the agent serves no
    /// endpoint.
    pub(super) fn endpoint_route(&self) -> Option<Result<Route, String>> {
        let ep = self.inner.endpoint.as_ref()?;
        let a = self.assignment();
        Some(ep.reach().route(&a.network_mode, a.network.as_ref()))
    }

    /// Whether the agent serves the task resolver (bridge containers and awsvpc pause
    /// containers then get `169.254.170.2` as DNS server, and the task a rule for UDP port 53).
    pub(super) fn serves_dns(&self) -> bool {
        self.inner
            .endpoint
            .as_ref()
            .is_some_and(|ep| ep.serves_dns())
    }

    /// The DNS servers of the task's pause container (awsvpc): the task resolver when the
    /// endpoint reaches the task and serves it.
    pub(super) fn pause_dns(&self) -> Vec<String> {
        let reached = matches!(self.endpoint_route(), Some(Ok(Route::Awsvpc { .. })));
        if reached && !self.endpoint.gave_up && self.serves_dns() {
            vec![metadata::redirect::ENDPOINT_ADDRESS.to_string()]
        } else {
            Vec::new()
        }
    }

    /// Whether host tasks get their cgroup for the endpoint's rule.
    pub(super) fn host_endpoint(&self) -> bool {
        matches!(self.endpoint_route(), Some(Ok(Route::Host { .. })))
    }

    /// Container `i`'s variables (and MAC address), its ids created and persisted the first
    /// time; `None` when the endpoint does not reach the task.
    pub(super) fn endpoint_settings(&mut self, i: usize) -> Option<EndpointSettings> {
        let route = self.endpoint_route()?.ok()?;
        if self.endpoint.gave_up || self.ctrs[i].def.disable_networking == Some(true) {
            return None;
        }
        let name = self.ctrs[i].name.clone();
        let ids = &mut self.p.endpoint;
        let before = ids.clone();
        let id = ids
            .containers
            .entry(name.clone())
            .or_insert_with(|| endpoint_id(rand::random()))
            .clone();
        let mut env = vec![
            (
                metadata::METADATA_VARIABLE.to_string(),
                format!("{}/v4/{id}", metadata::BASE_URI),
            ),
            (
                metadata::protection::AGENT_URI_VARIABLE.to_string(),
                format!("{}/api/{id}", metadata::BASE_URI),
            ),
        ];
        if self.p.assignment.task_role_arn.is_some() {
            let cid = ids
                .credentials
                .get_or_insert_with(|| endpoint_id(rand::random()))
                .clone();
            env.push((
                metadata::CREDENTIALS_VARIABLE.to_string(),
                format!("/v2/credentials/{cid}"),
            ));
        }
        env.push((
            "AWS_EXECUTION_ENV".to_string(),
            if self.inner.cfg.managed {
                "AWS_ECS_FARGATE"
            } else {
                "AWS_ECS_EC2"
            }
            .to_string(),
        ));
        let mac_address = matches!(route, Route::Bridge { .. }).then(|| {
            ids.macs
                .entry(name)
                .or_insert_with(|| bridge_mac(rand::random()))
                .clone()
        });
        if *ids != before {
            // Before the container is created with them: a crash in between keeps them.
            self.persist();
        }
        let dns = if matches!(route, Route::Bridge { .. }) && self.serves_dns() {
            vec![metadata::redirect::ENDPOINT_ADDRESS.to_string()]
        } else {
            Vec::new()
        };
        Some(EndpointSettings {
            env,
            mac_address,
            dns,
        })
    }

    fn take_credentials(&mut self, c: RoleCredentials) {
        debug!(access_key_id = %c.access_key_id, expiration = c.expiration, "task role credentials received");
        if let Some(ep) = &self.inner.endpoint {
            ep.set_credentials(&self.assignment().task_arn, c.clone());
        }
        self.endpoint.credentials = Some(c);
    }

    fn ask_credentials(&self) -> Option<tokio::sync::oneshot::Receiver<CredentialsOutcome>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = CredentialsRequest {
            task_arn: self.assignment().task_arn.clone(),
            reply,
        };
        self.inner.credentials.send(request).ok().map(|()| answer)
    }

    /// Whether the task role's credentials are at hand (or the task has no role): asked for
    /// through the session before the containers are created. A task the endpoint cannot reach
    /// or whose credentials the server refuses fails to start; no answer yet (no session) is
    /// asked again on the next step.
    pub(super) async fn credentials_ready(&mut self) -> bool {
        if !self.has_role() || self.endpoint.credentials.is_some() {
            return true;
        }
        match self.endpoint_route() {
            None => {
                let why = "this agent serves no task endpoint".to_string();
                self.fail_start(None, TaskFailure::TaskRoleEndpoint(why));
                return false;
            }
            Some(Err(why)) => {
                self.fail_start(None, TaskFailure::TaskRoleEndpoint(why));
                return false;
            }
            Some(Ok(_)) => {}
        }
        let Some(answer) = self.ask_credentials() else {
            return false;
        };
        match tokio::time::timeout(super::owner::SECRETS_WAIT, answer).await {
            Ok(Ok(CredentialsOutcome::Issued { credentials })) => {
                self.take_credentials(credentials);
                true
            }
            Ok(Ok(CredentialsOutcome::Failed { reason })) => {
                self.fail_start(None, TaskFailure::TaskRoleCredentials(reason));
                false
            }
            Ok(Err(_)) | Err(_) => {
                debug!("the task role's credentials are not available yet; asking again");
                false
            }
        }
    }

    /// Keeps the role's credentials fresh without blocking: takes an answer that arrived, or
    /// asks when they are due for a refresh (or missing, after an agent restart).
    pub(super) fn keep_credentials(&mut self) {
        if !self.has_role() || self.status == TaskStatus::Stopped || self.endpoint.withdrawn {
            return;
        }
        if let Some(rx) = self.endpoint.pending.as_mut() {
            match rx.try_recv() {
                Ok(CredentialsOutcome::Issued { credentials }) => {
                    self.endpoint.pending = None;
                    info!(access_key_id = %credentials.access_key_id, "task role credentials refreshed");
                    self.take_credentials(credentials);
                }
                Ok(CredentialsOutcome::Failed { reason }) => {
                    self.endpoint.pending = None;
                    warn!(reason = %reason, "the task role's credentials were not refreshed; the current ones are served until they expire");
                    self.endpoint.retry_at = Some(Instant::now() + REFRESH_RETRY);
                }
                Err(TryRecvError::Empty) => {}
                // The session that carried it ended: asked again.
                Err(TryRecvError::Closed) => self.endpoint.pending = None,
            }
            return;
        }
        let due = match &self.endpoint.credentials {
            // The first ones are asked for before the containers are created.
            None => !self.needs_creation() && self.endpoint_route().is_some_and(|r| r.is_ok()),
            Some(c) => refresh_due(c, self.inner.now_epoch()),
        };
        if !due || self.endpoint.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.endpoint.pending = self.ask_credentials();
    }

    /// Installs the NAT rules of the containers created so far (and of the task, for awsvpc
    /// and host tasks) and publishes the task, before its containers start. Idempotent.
    pub(super) async fn ensure_endpoint(&mut self) {
        let Some(ep) = self.inner.endpoint.clone() else {
            return;
        };
        if self.endpoint.gave_up || self.phase != Phase::Activating {
            return;
        }
        let Some(Ok(route)) = self.endpoint_route() else {
            return;
        };
        let arn = self.assignment().task_arn.clone();
        let created = self.ctrs.iter().any(|c| c.runtime_id.is_some());
        let mut wanted = Vec::new();
        let mut failure = None;
        match &route {
            Route::Bridge { gateway } => {
                for c in self.ctrs.iter().filter(|c| c.runtime_id.is_some()) {
                    if let Some(mac) = self.p.endpoint.macs.get(&c.name) {
                        let source = Source::Mac(mac.clone());
                        wanted.push(ep.rule(&arn, &source, Some(*gateway)));
                        if ep.serves_dns() {
                            wanted.push(ep.dns_rule(&arn, &source, Some(*gateway)));
                        }
                    }
                }
            }
            Route::Awsvpc { gateway, mac } => {
                if self.p.pause_id.is_some() {
                    let source = Source::Mac(mac.clone());
                    wanted.push(ep.rule(&arn, &source, Some(*gateway)));
                    if ep.serves_dns() {
                        wanted.push(ep.dns_rule(&arn, &source, Some(*gateway)));
                    }
                }
            }
            Route::Host { cgroup2 } => {
                if created {
                    let path = metadata::task_cgroup(&self.task_id());
                    // The rule names the cgroup, which must exist first.
                    match std::fs::create_dir_all(cgroup2.join(&path)) {
                        Ok(()) => wanted.push(ep.rule(&arn, &Source::Cgroup(path), None)),
                        Err(e) => {
                            failure = Some(format!("create the task cgroup {path}: {e}"));
                        }
                    }
                }
            }
        }
        for rule in wanted {
            if failure.is_some() || self.endpoint.rules.contains(&rule) {
                continue;
            }
            match ep.install(&rule).await {
                Ok(()) => {
                    debug!(rule = %rule.args.join(" "), "endpoint NAT rule installed");
                    self.endpoint.rules.push(rule);
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(why) = failure {
            if self.has_role() {
                self.fail_start(None, TaskFailure::TaskRoleEndpoint(why));
            } else {
                warn!(reason = %why, "the task's containers cannot reach the task metadata endpoint");
                self.endpoint.gave_up = true;
            }
            return;
        }
        self.publish_endpoint();
    }

    /// Publishes the task's snapshot when it changed (while the endpoint reaches it).
    pub(super) fn publish_endpoint(&mut self) {
        let Some(ep) = self.inner.endpoint.clone() else {
            return;
        };
        if self.endpoint.withdrawn
            || self.endpoint.gave_up
            || !matches!(self.endpoint_route(), Some(Ok(_)))
        {
            return;
        }
        let view = self.endpoint_view();
        if self.endpoint.published.as_ref() == Some(&view) {
            return;
        }
        ep.publish(Published {
            view: view.clone(),
            credentials_id: self.p.endpoint.credentials.clone(),
        });
        if let Some(c) = &self.endpoint.credentials {
            ep.set_credentials(&view.task_arn, c.clone());
        }
        self.endpoint.published = Some(view);
    }

    /// Removes the task's rules and forgets it at the endpoint (its credentials with it).
    /// Idempotent; a rule that cannot be removed is tried again on the next call.
    pub(super) async fn withdraw_endpoint(&mut self) {
        let Some(ep) = self.inner.endpoint.clone() else {
            return;
        };
        if !self.endpoint.withdrawn {
            ep.withdraw(&self.assignment().task_arn);
            self.endpoint.credentials = None;
            self.endpoint.pending = None;
            self.endpoint.withdrawn = true;
            info!("task withdrawn from the task endpoint; its credentials are no longer served");
        }
        let mut kept = Vec::new();
        for rule in std::mem::take(&mut self.endpoint.rules) {
            if let Err(e) = ep.remove(&rule).await {
                warn!(error = %e, "cannot remove an endpoint NAT rule; retrying later");
                kept.push(rule);
            }
        }
        self.endpoint.rules = kept;
        if let Some(Ok(Route::Host { cgroup2 })) = self.endpoint_route() {
            // The task cgroup runc made in every hierarchy, once runc removed the containers'
            // own (a moment after they exit): tried for a while, then again at cleanup.
            let (cgroups, task_id) = (self.inner.cgroups.clone(), self.task_id());
            tokio::spawn(async move {
                for _ in 0..15 {
                    let v1 = cgroups.remove(&task_id).is_ok();
                    metadata::remove_task_cgroup(&cgroup2, &task_id);
                    if v1 && !cgroup2.join(metadata::task_cgroup(&task_id)).exists() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        }
    }

    /// The task as the endpoint shows it.
    fn endpoint_view(&self) -> TaskView {
        let a = self.assignment();
        let (family, revision) = spec::family_revision(&a.task_definition_arn)
            .rsplit_once(':')
            .map(|(f, r)| (f.to_string(), r.to_string()))
            .unwrap_or_default();
        let cluster = spec::task_cluster(&a.task_arn)
            .unwrap_or_else(|| a.cluster_arn.rsplit('/').next().unwrap_or(&a.cluster_arn))
            .to_string();
        let desired = match a.desired_status {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Stopped => "STOPPED",
        };
        let network = match (&a.network, a.network_mode) {
            (Some(n), _) => NetworkView::Awsvpc(Box::new(n.clone())),
            (None, NetworkMode::Host) => NetworkView::Host,
            (None, NetworkMode::None) => NetworkView::None,
            (None, _) => NetworkView::Bridge,
        };
        let containers = self
            .ctrs
            .iter()
            .zip(&a.containers)
            .map(|(c, assigned)| {
                let docker_labels = c.def.docker_labels.clone().unwrap_or_default();
                ContainerMeta {
                    name: c.name.clone(),
                    endpoint_id: self.p.endpoint.containers.get(&c.name).cloned(),
                    docker_id: c.runtime_id.clone(),
                    docker_name: spec::container_name(&a.task_arn, &c.name),
                    image: c.def.image.clone().unwrap_or_default(),
                    image_id: c.facts.image_id.clone(),
                    container_arn: assigned.container_arn.clone(),
                    labels: ecs_labels(
                        &docker_labels,
                        &cluster,
                        &c.name,
                        &a.task_arn,
                        &family,
                        &revision,
                    ),
                    desired_status: desired.to_string(),
                    known_status: c.status.as_ecs_str().to_string(),
                    cpu: c.def.cpu,
                    memory: c.def.memory,
                    created_at: c.facts.created_at.clone(),
                    started_at: c.facts.started_at.clone(),
                    finished_at: c.facts.finished_at.clone(),
                    exit_code: c.exit_code,
                    ip_address: c.facts.ip_address.clone(),
                    ports: c
                        .bindings
                        .iter()
                        .map(|b| {
                            (
                                b.container_port.unwrap_or(0),
                                b.protocol.map_or("tcp", |p| p.as_str()).to_string(),
                                b.host_port.unwrap_or(0),
                                b.bind_ip.clone().unwrap_or_default(),
                            )
                        })
                        .collect(),
                    health: c.health.map(|h| h.as_str().to_string()),
                    log_driver: c.def.log_configuration.as_ref().map(|l| {
                        (
                            l.log_driver.as_str().to_string(),
                            l.options.clone().unwrap_or_default().into_iter().collect(),
                        )
                    }),
                }
            })
            .collect();
        TaskView {
            task_arn: a.task_arn.clone(),
            cluster,
            family,
            revision,
            desired_status: desired.to_string(),
            known_status: self.status.as_ecs_str().to_string(),
            service_name: a.service_name.clone(),
            cpu: a.cpu,
            memory: a.memory,
            pull_started_at: self.p.pull_started_at,
            pull_stopped_at: self.p.pull_stopped_at,
            execution_stopped_at: self.p.execution_stopped_at,
            availability_zone: self.inner.cfg.availability_zone.clone(),
            launch_type: if self.inner.cfg.managed {
                "FARGATE"
            } else {
                "EC2"
            }
            .to_string(),
            network,
            containers,
        }
    }
}
