//! What a task's owner does to its containers: create them (volume and link sources first),
//! observe them (inspect, restart policy, OOM), start the ones whose dependencies are met, and
//! stop them (dependents first; SIGTERM, then SIGKILL after the stop timeout).
//!
//! What this is not: the decisions, which are the pure functions of [`crate::lifecycle`], nor
//! the task status, which the owner computes from what this observed.

use super::{to_i32, Ctr, TaskOwner};
use crate::failure::TaskFailure;
use crate::lifecycle::{ContainerView, Phase, StartDecision};
use crate::logs::OpenError;
use crate::runtime::{RuntimeError, Signal};
use crate::{lifecycle, spec};
use flotilla_logs::awslogs::AwslogsOptions;
use flotilla_model::status::ContainerStatus;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

impl TaskOwner {
    pub(super) async fn create_containers(&mut self) {
        let rt = self.inner.runtime.clone();
        if let Err(reason) = self.ensure_cgroup() {
            self.fail_start(None, reason);
            return;
        }
        let placement = self.placement();
        for v in spec::task_volumes(self.assignment(), &self.inner.identity) {
            if let Err(e) = rt.create_volume(&v).await {
                let first = self.ctrs.first().map(|c| c.name.clone());
                self.fail_start(first.as_deref(), TaskFailure::Volume(e));
                return;
            }
        }
        let names: Vec<String> = self.ctrs.iter().map(|c| c.name.clone()).collect();
        let needs: Vec<Vec<usize>> = self
            .ctrs
            .iter()
            .map(|c| {
                let from = c
                    .def
                    .volumes_from
                    .iter()
                    .flatten()
                    .filter_map(|v| v.source_container.clone());
                let links = c
                    .def
                    .links
                    .iter()
                    .flatten()
                    .map(|l| l.split(':').next().unwrap_or("").to_string());
                from.chain(links)
                    .filter_map(|n| names.iter().position(|x| *x == n))
                    .collect()
            })
            .collect();
        for i in crate::lifecycle::compute_create_order(&needs) {
            if self.ctrs[i].runtime_id.is_some() || self.ctrs[i].status != ContainerStatus::Pending
            {
                continue;
            }
            let name = self.ctrs[i].name.clone();
            if let Some(Err(why)) = self.awslogs(i) {
                self.fail_start(Some(&name), TaskFailure::LogOptions(why));
                break;
            }
            let endpoint = self.endpoint_settings(i);
            let secrets = self
                .secrets
                .iter()
                .flatten()
                .find(|s| s.name == self.ctrs[i].name);
            let spec = spec::container_spec_with(
                self.assignment(),
                &self.ctrs[i].def,
                &self.inner.identity,
                &placement,
                secrets,
                endpoint.as_ref(),
            );
            let created = match rt.create(&spec).await {
                Ok(id) => Ok(id),
                // An earlier attempt (before a crash) created it: adopt it.
                Err(RuntimeError::Conflict(_)) => rt.inspect(&spec.name).await.map(|c| c.id),
                Err(e) => Err(e),
            };
            match created {
                Ok(id) => {
                    info!(container = %name, id = %id, "container created");
                    self.p.container_ids.insert(name.clone(), id.clone());
                    self.ctrs[i].runtime_id = Some(id);
                }
                Err(e) => {
                    self.fail_start(Some(&name), TaskFailure::Create(e));
                    break;
                }
            }
        }
        self.persist();
    }

    /// Container `i`'s checked `awslogs` options (`None` for another driver).
    fn awslogs(&self, i: usize) -> Option<Result<AwslogsOptions, String>> {
        spec::awslogs_options(
            &self.ctrs[i].def,
            self.inner.cfg.managed,
            self.inner.cfg.region.as_deref(),
        )
    }

    /// Opens container `i`'s `awslogs` stream (`PREFIX/CONTAINER/TASK-ID`, or the container's
    /// id without a prefix) with the server, once; a missing group fails the start as ECS
    /// fails it, unless `awslogs-create-group` is true.
    async fn open_log_stream(&mut self, i: usize, id: &str) -> Result<(), TaskFailure> {
        let name = self.ctrs[i].name.clone();
        if self.p.log_streams.contains_key(&name) {
            return Ok(());
        }
        let Some(options) = self.awslogs(i) else {
            return Ok(());
        };
        let options = options.map_err(TaskFailure::LogOptions)?;
        let task_id = flotilla_logs::names::task_id(&self.assignment().task_arn).to_string();
        let stream = flotilla_logs::names::container_stream(
            options.stream_prefix.as_deref(),
            &name,
            &task_id,
            id,
        );
        let fargate = self.inner.cfg.managed;
        match self
            .inner
            .logs
            .open_stream(&options.group, &stream, options.create_group)
            .await
        {
            Ok(s) => {
                info!(container = %name, group = %s.group, stream = %s.stream, "awslogs stream opened");
                self.p.log_streams.insert(name, s);
                self.persist();
                Ok(())
            }
            Err(OpenError::GroupNotFound(m)) => Err(TaskFailure::LogStream {
                fargate,
                message: format!("ResourceNotFoundException: {m}"),
            }),
            Err(OpenError::Refused(m) | OpenError::Unreachable(m)) => Err(TaskFailure::LogStream {
                fargate,
                message: m,
            }),
        }
    }

    pub(super) async fn observe(&mut self) {
        let rt = self.inner.runtime.clone();
        let now_epoch = self.inner.now_epoch();
        let stopping = self.phase == Phase::Stopping;
        let cgroups = self.inner.cgroups.clone();
        let task_id = self.task_id();
        let memory_limited = self.assignment().memory.is_some();
        let managed = self.inner.cfg.managed;
        let region = self.inner.cfg.region.clone();
        for c in self.ctrs.iter_mut() {
            let Some(id) = c.runtime_id.clone() else {
                continue;
            };
            if c.status == ContainerStatus::Stopped {
                continue;
            }
            // Read before the inspect: a change after it makes the next one differ.
            c.token = rt.state_token(&id);
            let info = match rt.inspect(&id).await {
                Ok(i) => i,
                Err(RuntimeError::NotFound(_)) => {
                    warn!(container = %c.name, "container disappeared");
                    c.status = ContainerStatus::Stopped;
                    c.reason
                        .get_or_insert_with(|| TaskFailure::ContainerGone { id }.to_string());
                    continue;
                }
                Err(e) => {
                    warn!(container = %c.name, error = %e, "inspect failed");
                    c.token = None;
                    continue;
                }
            };
            c.note(&info);
            if let Some(stream) = self.p.log_streams.get(&c.name) {
                // Follow the output while it runs, and once more to its end after it stopped
                // (also after an agent restart).
                if info.running || info.started_at.is_some() {
                    let start = spec::awslogs_options(&c.def, managed, region.as_deref())
                        .and_then(Result::ok)
                        .and_then(|o| o.start);
                    self.inner
                        .logs
                        .ensure_capture(&id, stream, start, info.running);
                }
            }
            if info.running {
                if c.status == ContainerStatus::Pending {
                    info!(container = %c.name, "container running");
                    c.started.get_or_insert_with(Instant::now);
                }
                c.apply_running(&info, now_epoch);
                continue;
            }
            if info.created_only || info.started_at.is_none() {
                continue; // Created, never started.
            }
            // Exited after running.
            let code = to_i32(info.exit_code);
            let ran_for = c.started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
            let policy = c.restart_policy();
            if c.status == ContainerStatus::Running
                && lifecycle::compute_restart(policy.as_ref(), code, ran_for, stopping)
            {
                info!(container = %c.name, exit_code = code, "restarting container (restart policy)");
                match rt.start(&id).await {
                    Ok(()) => {
                        c.started = Some(Instant::now());
                        continue;
                    }
                    Err(e) => warn!(container = %c.name, error = %e, "restart failed"),
                }
            }
            info!(container = %c.name, exit_code = code, oom = info.oom_killed, "container stopped");
            c.status = ContainerStatus::Stopped;
            c.exit_code = Some(code);
            c.health = None;
            // With the limit on the task cgroup, Docker may not know: the task cgroup tells.
            let task_oom = || {
                code == 137 && !c.stop_requested && memory_limited && cgroups.oom_killed(&task_id)
            };
            if info.oom_killed || task_oom() {
                c.reason = Some(lifecycle::OOM_REASON.to_string());
            } else if let Some(err) = info.error {
                c.reason.get_or_insert(err);
            }
        }
    }

    pub(super) async fn start_ready(&mut self) {
        let rt = self.inner.runtime.clone();
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            if c.status != ContainerStatus::Pending || c.runtime_id.is_none() {
                continue;
            }
            let views: Vec<ContainerView> = self.ctrs.iter().map(Ctr::view).collect();
            let mut decision = lifecycle::compute_start(&c.deps(), &views);
            if decision == StartDecision::Wait {
                if let Some(t) = c.def.start_timeout.and_then(|t| u64::try_from(t).ok()) {
                    if c.waiting_since.elapsed() > Duration::from_secs(t) {
                        decision = StartDecision::Never(format!(
                            "dependencies not resolved within startTimeout {t}s"
                        ));
                    }
                }
            }
            let name = c.name.clone();
            let id = c.runtime_id.clone().unwrap_or_default();
            match decision {
                StartDecision::Wait => {}
                StartDecision::Never(why) => {
                    self.ctrs[i].status = ContainerStatus::Stopped;
                    self.fail_start(Some(&name), TaskFailure::DependencyNotResolved(why));
                    return;
                }
                StartDecision::Ready => {
                    // The awslogs stream first, as Docker's driver opens it when the container
                    // starts (also for a container created before an agent restart).
                    if let Err(failure) = self.open_log_stream(i, &id).await {
                        self.ctrs[i].status = ContainerStatus::Stopped;
                        self.fail_start(Some(&name), failure);
                        return;
                    }
                    info!(container = %name, "starting container");
                    if let Err(e) = rt.start(&id).await {
                        self.ctrs[i].status = ContainerStatus::Stopped;
                        self.fail_start(Some(&name), TaskFailure::Start(e));
                        return;
                    }
                    self.ctrs[i].started = Some(Instant::now());
                    if let Some(stream) = self.p.log_streams.get(&name) {
                        let start = self.awslogs(i).and_then(Result::ok).and_then(|o| o.start);
                        self.inner.logs.ensure_capture(&id, stream, start, true);
                    }
                    // Observe right away so dependents see START without a poll delay.
                    if let Ok(info) = rt.inspect(&id).await {
                        self.ctrs[i].note(&info);
                        if info.running {
                            let now = self.inner.now_epoch();
                            self.ctrs[i].apply_running(&info, now);
                        }
                    }
                    self.publish_endpoint();
                }
            }
        }
    }

    /// Stops what may be stopped now (dependents before their dependencies; with a Spot
    /// grace period, everything at once).
    pub(super) async fn stop_some(&mut self) {
        for c in self.ctrs.iter_mut() {
            if c.status == ContainerStatus::Pending {
                // Never started: nothing to stop.
                c.status = ContainerStatus::Stopped;
            }
        }
        let running: Vec<String> = self.running().map(|c| c.name.clone()).collect();
        let deps: Vec<(String, Vec<String>)> = self
            .ctrs
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.deps().into_iter().map(|d| d.container).collect(),
                )
            })
            .collect();
        if running.is_empty() {
            self.signalled = true; // Nothing left to signal.
        }
        let grace = self.assignment().stop_grace_seconds;
        let names = match grace {
            Some(_) => running.clone(),
            None => lifecycle::compute_stoppable(&running, &deps),
        };
        let mut signal_now: Vec<(String, String, Duration)> = Vec::new();
        for name in names {
            let Some(c) = self.ctrs.iter_mut().find(|c| c.name == name) else {
                continue;
            };
            if c.stop_requested {
                continue;
            }
            c.stop_requested = true;
            let Some(id) = c.runtime_id.clone() else {
                continue;
            };
            let timeout =
                Duration::from_secs(grace.unwrap_or_else(|| spec::stop_timeout_s(&c.def)));
            if self.awsvpc || grace.is_some() {
                signal_now.push((name, id, timeout));
                continue;
            }
            let rt = self.inner.runtime.clone();
            info!(container = %name, timeout_s = timeout.as_secs(), "stopping container");
            self.stops.spawn(
                async move {
                    if let Err(e) = rt.stop(&id, timeout).await {
                        warn!(error = %e, "stop failed; killing");
                        let _ = rt.kill(&id, Signal::Kill).await;
                    }
                }
                .in_current_span(),
            );
        }
        // SIGTERM now (so STOPPING means it was delivered), SIGKILL after the timeout.
        for (name, id, timeout) in signal_now {
            let rt = self.inner.runtime.clone();
            info!(container = %name, timeout_s = timeout.as_secs(), "sending SIGTERM");
            match rt.kill(&id, Signal::Term).await {
                Ok(()) => self.signalled = true,
                // Not running any more: nothing to signal.
                Err(e) => {
                    debug!(container = %name, error = %e, "SIGTERM not delivered");
                    self.signalled = true;
                }
            }
            self.stops.spawn(
                async move {
                    tokio::time::sleep(timeout).await;
                    if matches!(rt.inspect(&id).await, Ok(i) if i.running) {
                        info!(container = %name, "grace period over; sending SIGKILL");
                        let _ = rt.kill(&id, Signal::Kill).await;
                    }
                }
                .in_current_span(),
            );
        }
    }
}
