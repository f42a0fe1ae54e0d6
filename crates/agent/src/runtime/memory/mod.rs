//! [`MemoryRuntime`]: the in-memory model of a container engine, behind the same [`Runtime`]
//! trait as Docker (like Kubernetes' hollow nodes: the engine above it cannot tell).
//!
//! What this is: containers with Docker's states (created, running, exited), exit codes,
//! `OOMKilled`, health, port bindings and labels (so [`Runtime::list`] finds them again after an
//! engine restart); images present locally or pullable from a modelled registry; volumes and
//! networks; stop with SIGTERM then SIGKILL after the timeout. What a container does comes from
//! its command, read the way busybox would run it (`sleep N`, `sh -c "sleep N; exit M"`,
//! `trap '' TERM`, `true`, `false`; anything else runs until stopped), and PID 1 ignores SIGTERM
//! unless it runs under an init (`init`) or traps it, as on Docker. A test can script more per
//! container ([`MemoryRuntime::script`]: exit after a time with a code, OOM, failing health
//! checks, a start error), make images pullable ([`MemoryRuntime::add_pullable`]), inject one
//! error into the next call of an operation ([`MemoryRuntime::inject`]), and read every call as
//! a typed value with its time ([`MemoryRuntime::calls`]).
//!
//! Execs run a model of busybox's `sh` (`exec.rs`: `sh -c LINE`, an interactive `sh` with a
//! prompt and echo on a terminal, `echo`, `exit`, `cat`, `stty size`...), in running
//! containers only, with Docker's errors otherwise.
//!
//! A simulated host ([`MemoryRuntime::simulated`], [`Simulation`]) adds what a real engine
//! costs and how it fails: every container start takes the configured latency, and fails with
//! the configured probability (drawn from a seeded generator, so a run is reproducible); such a
//! runtime keeps no call log, so it stays small under a long benchmark (`flotilla bench scale`
//! runs thousands of them in one process).
//!
//! Time is tokio's clock: under `#[tokio::test(start_paused = true)]` a container that sleeps
//! 300 s exits as soon as the test's clock gets there, in microseconds of real time.
//!
//! What this is not: a container engine. Nothing runs, no process, network or cgroup exists;
//! stats are synthetic (1% of a CPU and the scripted memory while running).
//!
//! Invariant: it answers as Docker does for every behaviour the task engine relies on; the
//! shared conformance test (`tests/runtime_conformance.rs`) runs the same cases on both.

mod calls;
mod container;
mod exec;
mod model;
mod script;
mod simulation;

pub use calls::{Call, Op};
pub use script::Script;
pub use simulation::Simulation;

use super::{
    Binding, ContainerInfo, ContainerSpec, ContainerStats, ContainerSummary, ExecSpec, ExecState,
    ExecStreams, Health, ImageInfo, NetworkInfo, NetworkSpec, RegistryAuth, Runtime, RuntimeError,
    RuntimeVersion, Signal, VolumeSpec,
};
use async_trait::async_trait;
use container::{cpu_ns, rfc3339, Container, State};
use flotilla_protocol::exec::TermSize;
use model::{no_such_container, normalize, Model};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;

/// One exec: its container, command, terminal size and phase.
pub(super) struct ExecRecord {
    container_id: String,
    spec: ExecSpec,
    size: Arc<Mutex<Option<TermSize>>>,
    phase: ExecPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecPhase {
    Created,
    Running,
    Exited(i64),
}

/// The in-memory container engine. Cheap to clone; clones share the same containers.
#[derive(Clone)]
pub struct MemoryRuntime {
    model: Arc<Mutex<Model>>,
    /// Bumped at every change, so [`Runtime::wait`] and [`Runtime::stop`] wake up.
    changed: Arc<watch::Sender<u64>>,
    version: RuntimeVersion,
    /// Wall-clock seconds at creation and the tokio instant they correspond to.
    epoch: (f64, Instant),
    /// A simulated host's start latency and failures (`None`: none, and every call is logged).
    simulation: Option<Arc<simulation::Simulated>>,
}

impl std::fmt::Debug for MemoryRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRuntime").finish_non_exhaustive()
    }
}

impl Default for MemoryRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRuntime {
    /// An empty engine: no image, no container; version `20.10.24`, API `1.41`, no cgroup
    /// driver (so the task engine never writes host cgroups for it).
    pub fn new() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        MemoryRuntime {
            model: Arc::new(Mutex::new(Model {
                next_port: 32768,
                log_calls: true,
                ..Model::default()
            })),
            changed: Arc::new(watch::channel(0).0),
            version: RuntimeVersion {
                version: "20.10.24".into(),
                api_version: "1.41".into(),
                ncpu: 2,
                mem_total_bytes: 4 << 30,
                architecture: "x86_64".into(),
                cgroup_driver: String::new(),
                cgroup_version: String::new(),
            },
            epoch: (epoch, Instant::now()),
            simulation: None,
        }
    }

    /// A simulated host: an engine with `image` present, whose container starts take
    /// `simulation.start_latency` and fail with probability `simulation.failure_rate` (drawn
    /// from `simulation.seed`), and that keeps no call log.
    pub fn simulated(simulation: Simulation, image: &str) -> Self {
        let mut runtime = Self::new();
        runtime.add_image(image);
        runtime.model().log_calls = false;
        runtime.simulation = Some(Arc::new(simulation::Simulated::new(simulation)));
        runtime
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        let mut m = self.model_unsettled();
        m.settle(Instant::now());
        m
    }

    /// The model as it was last settled (a caller settles what it looks at).
    fn model_unsettled(&self) -> MutexGuard<'_, Model> {
        // Every change is a single assignment: a panicking holder leaves nothing half done.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    fn rfc3339(&self, at: Instant) -> String {
        let secs = self.epoch.0 + (at - self.epoch.1).as_secs_f64();
        rfc3339(secs)
    }

    /// Makes an image present, as `docker load` would (no repo digest).
    pub fn add_image(&self, image: &str) {
        let mut m = self.model();
        let id = format!("sha256:{}", m.new_id(image));
        m.images
            .insert(normalize(image), ImageInfo { id, digest: None });
    }

    /// Makes an image pullable from its registry (with a repo digest once pulled).
    pub fn add_pullable(&self, image: &str) {
        let mut m = self.model();
        let id = format!("sha256:{}", m.new_id(image));
        let (name, _) = crate::docker::split_tag(image);
        let digest = Some(format!("{name}@sha256:{}", m.new_id(name)));
        m.registry
            .insert(normalize(image), ImageInfo { id, digest });
    }

    /// Makes an image pullable only with these credentials (as a registry with basic auth).
    pub fn add_private(&self, image: &str, user: &str, password: &str) {
        self.add_pullable(image);
        self.model()
            .private
            .insert(normalize(image), (user.to_string(), password.to_string()));
    }

    /// Changes what the container named `name` (its ECS container name label, or its Docker
    /// name) does, from its next creation on.
    pub fn script(&self, name: &str, edit: impl Fn(&mut Script) + Send + Sync + 'static) {
        self.model()
            .scripts
            .insert(name.to_string(), Arc::new(edit));
    }

    /// Makes the next call of `op` fail with `error`.
    pub fn inject(&self, op: Op, error: RuntimeError) {
        self.model().injected.push((op, error));
    }

    /// Every call that changed something, with its time on tokio's clock.
    pub fn calls(&self) -> Vec<(Instant, Call)> {
        self.model().calls.clone()
    }

    /// The names of the containers that exist.
    pub fn container_names(&self) -> Vec<String> {
        self.model()
            .containers
            .iter()
            .map(|c| c.spec.name.clone())
            .collect()
    }

    /// The spec a container (by id or name) was created with.
    pub fn spec_of(&self, key: &str) -> Option<super::ContainerSpec> {
        self.model().find(key).map(|c| c.spec.clone())
    }

    /// The container (by id or name) writes `text` (one line, newline added) to `stream`, now.
    pub fn write_output(
        &self,
        key: &str,
        stream: super::OutputStream,
        text: &str,
    ) -> Result<(), RuntimeError> {
        let ns = {
            let secs = self.epoch.0 + (Instant::now() - self.epoch.1).as_secs_f64();
            (secs * 1e9) as i64
        };
        {
            let mut m = self.model();
            let c = m
                .find(key)
                .ok_or_else(|| RuntimeError::NotFound(no_such_container(key)))?;
            c.output.push(super::OutputLine {
                ns,
                stream,
                bytes: format!("{text}\n").into_bytes(),
            });
        }
        self.bump();
        Ok(())
    }

    fn exit_now(&self, key: &str, code: i64) -> Result<(), RuntimeError> {
        let mut m = self.model();
        let c = m
            .find(key)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(key)))?;
        c.exit(Instant::now(), code, false);
        drop(m);
        self.bump();
        Ok(())
    }
}

#[async_trait]
impl Runtime for MemoryRuntime {
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError> {
        self.model().take_injected(Op::Version)?;
        Ok(self.version.clone())
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::InspectImage)?;
        Ok(m.images.get(&normalize(image)).cloned())
    }

    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.record(Call::Pull {
            image: image.to_string(),
            user: auth.map(|a| a.username.clone()),
        });
        m.take_injected(Op::Pull)?;
        let key = normalize(image);
        if let Some((user, password)) = m.private.get(&key) {
            let given = auth.map(|a| (a.username.as_str(), a.password.as_str()));
            if given != Some((user.as_str(), password.as_str())) {
                let host = crate::registry::registry_host(image);
                return Err(RuntimeError::Pull {
                    image: image.to_string(),
                    message: format!("Head \"https://{host}/v2/\": no basic auth credentials"),
                });
            }
        }
        let Some(found) = m.registry.get(&key).cloned() else {
            let (name, _) = crate::docker::split_tag(image);
            return Err(RuntimeError::Pull {
                image: image.to_string(),
                message: format!(
                    "pull access denied for {name}, repository does not exist or may require \
                     'docker login': denied: requested access to the resource is denied"
                ),
            });
        };
        m.images.insert(key, found);
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.record(Call::RemoveImage {
            image: image.to_string(),
        });
        if m.in_use(image) {
            return Err(RuntimeError::Conflict(format!(
                "conflict: unable to remove repository reference \"{image}\": container is using \
                 its referenced image"
            )));
        }
        m.images.remove(&normalize(image));
        Ok(())
    }

    async fn image_in_use(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.model().in_use(image))
    }

    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::CreateVolume)?;
        m.volumes
            .entry(spec.name.clone())
            .or_insert_with(|| spec.clone());
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.model().volumes.remove(name);
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut m = self.model();
        m.record(Call::Create {
            name: spec.name.clone(),
        });
        m.take_injected(Op::Create)?;
        if let Some(other) = m.position(&spec.name).map(|i| m.containers[i].id.clone()) {
            return Err(RuntimeError::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{other}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                spec.name
            )));
        }
        let Some(image) = m.images.get(&normalize(&spec.image)).cloned() else {
            return Err(RuntimeError::Create(format!(
                "No such image: {}",
                spec.image
            )));
        };
        let custom_network = !matches!(
            spec.network_mode.as_str(),
            "" | "bridge" | "host" | "none" | "default"
        ) && !spec.network_mode.starts_with("container:");
        if custom_network && !m.networks.contains_key(&spec.network_mode) {
            return Err(RuntimeError::Create(format!(
                "network {} not found",
                spec.network_mode
            )));
        }
        let mut script = Script::from_spec(spec);
        let label = spec.labels.get(flotilla_protocol::labels::CONTAINER_NAME);
        for key in [Some(&spec.name), label].into_iter().flatten() {
            if let Some(edit) = m.scripts.get(key) {
                edit(&mut script);
            }
        }
        let id = m.new_id(&spec.name);
        m.containers.push(Container {
            id: id.clone(),
            spec: spec.clone(),
            image_id: image.id,
            script,
            state: State::Created,
            exit_code: 0,
            oom_killed: false,
            error: None,
            started_at: None,
            finished_at: None,
            last_health: Health::None,
            bindings: vec![],
            cpu_ns: 0,
            output: Vec::new(),
        });
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(sim) = &self.simulation {
            // The engine's work of a start (the latency), then the chance it fails, as
            // Docker's start error: the container stays created.
            tokio::time::sleep(sim.config.start_latency).await;
            if sim.fails() {
                let mut m = self.model();
                if let Some(at) = m.position(id) {
                    let c = &mut m.containers[at];
                    c.error = Some(simulation::START_FAILURE.to_string());
                    c.exit_code = 128;
                }
                return Err(RuntimeError::Start(simulation::START_FAILURE.to_string()));
            }
        }
        let mut m = self.model();
        m.take_injected(Op::Start)?;
        let Some(at) = m.position(id) else {
            return Err(RuntimeError::Start(no_such_container(id)));
        };
        let name = m.containers[at].spec.name.clone();
        m.record(Call::Start { name });
        let c = &m.containers[at];
        if c.running() {
            return Ok(()); // Docker: 304, already started.
        }
        if let Some(joined) = c.spec.network_mode.strip_prefix("container:") {
            let joined_runs = m
                .position(joined)
                .is_some_and(|j| m.containers[j].running());
            if !joined_runs {
                return Err(RuntimeError::Start(format!(
                    "cannot join network of a non running container: {joined}"
                )));
            }
        }
        let mut next_port = m.next_port;
        let c = &mut m.containers[at];
        if let Some(message) = c.script.start_error.clone() {
            c.error = Some(message.clone());
            c.exit_code = 128;
            return Err(RuntimeError::Start(message));
        }
        let now = Instant::now();
        let publishes = matches!(c.spec.network_mode.as_str(), "" | "bridge" | "default");
        c.bindings = if publishes {
            c.spec
                .ports
                .iter()
                .map(|p| Binding {
                    host_ip: "0.0.0.0".into(),
                    host_port: match p.host_port {
                        Some(port) if port != 0 => port,
                        _ => {
                            next_port = next_port.checked_add(1).unwrap_or(32768);
                            next_port
                        }
                    },
                    container_port: p.container_port,
                    protocol: p.protocol.clone(),
                })
                .collect()
        } else {
            vec![]
        };
        c.state = State::Running { since: now };
        c.started_at = Some(now);
        c.exit_code = 0;
        c.oom_killed = false;
        c.error = None;
        m.next_port = next_port;
        drop(m);
        self.bump();
        Ok(())
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + timeout;
        {
            let mut m = self.model();
            m.take_injected(Op::Stop)?;
            let Some(c) = m.find(id) else {
                return Ok(()); // Docker: 404, gone.
            };
            let name = c.spec.name.clone();
            m.record(Call::Stop { name, timeout });
        }
        // SIGTERM, then SIGKILL at the deadline unless it ended before.
        if self.kill(id, Signal::Term).await.is_err() {
            return Ok(()); // Docker: 304, already stopped.
        }
        loop {
            let mut changed = self.changed.subscribe();
            let next = {
                let mut m = self.model();
                let Some(c) = m.find(id) else { return Ok(()) };
                if !c.running() {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    c.exit(Instant::now(), Signal::Kill.exit_code(), false);
                    drop(m);
                    self.bump();
                    return Ok(());
                }
                c.next_exit()
                    .map_or(deadline, |(at, _, _)| at.min(deadline))
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = changed.changed() => {}
            }
        }
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::Kill)?;
        let c = m
            .find(id)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
        if !c.running() {
            return Err(RuntimeError::Conflict(format!(
                "Cannot kill container: {id}: Container {} is not running",
                c.id
            )));
        }
        let ends = signal == Signal::Kill || c.script.handles_sigterm;
        let name = c.spec.name.clone();
        m.record(Call::Kill { name, signal });
        drop(m);
        if ends {
            self.exit_now(id, signal.exit_code())?;
        }
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::Inspect)?;
        let now = Instant::now();
        let c = m
            .find(id)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
        Ok(ContainerInfo {
            id: c.id.clone(),
            name: c.spec.name.clone(),
            running: c.running(),
            created_only: c.state == State::Created,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            error: c.error.clone(),
            started_at: c.started_at.map(|t| self.rfc3339(t)),
            finished_at: c.finished_at.map(|t| self.rfc3339(t)),
            health: c.health(now),
            bindings: c.bindings.clone(),
            image_id: Some(c.image_id.clone()),
            labels: c.spec.labels.clone(),
            ip_address: c.running().then(|| c.spec.ipv4_address.clone()).flatten(),
            created_at: None,
        })
    }

    fn state_token(&self, id: &str) -> Option<u64> {
        // This container only is brought up to date: a host's every owner asks this at each of
        // its polls, and settling every container for each would cost the host's tasks squared.
        let mut m = self.model_unsettled();
        let now = Instant::now();
        let c = m.find(id)?;
        c.settle(now);
        Some(c.token(now))
    }

    async fn wait(&self, id: &str) -> Result<i64, RuntimeError> {
        loop {
            let mut changed = self.changed.subscribe();
            let next = {
                let mut m = self.model();
                let c = m
                    .find(id)
                    .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
                if !c.running() {
                    return Ok(c.exit_code);
                }
                c.next_exit().map(|(at, _, _)| at)
            };
            match next {
                Some(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = changed.changed() => {}
                },
                None => {
                    let _ = changed.changed().await;
                }
            }
        }
    }

    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::List)?;
        Ok(m.containers
            .iter()
            .filter(|c| c.spec.labels.get(label).map(String::as_str) == Some(value))
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                name: c.spec.name.clone(),
                image: c.spec.image.clone(),
                labels: c.spec.labels.clone(),
            })
            .collect())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::Remove)?;
        if let Some(at) = m.position(id) {
            let c = m.containers.remove(at);
            m.record(Call::Remove { name: c.spec.name });
            drop(m);
            self.bump();
        }
        Ok(())
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        let mut m = self.model();
        let at = m
            .position(id)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
        let taken = m.containers.iter().position(|c| c.spec.name == name);
        if let Some(other) = taken.filter(|o| *o != at) {
            return Err(RuntimeError::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                m.containers[other].id
            )));
        }
        m.containers[at].spec.name = name.to_string();
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let mut m = self.model();
        let c = m
            .find(id)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
        Ok(match c.state {
            State::Running { since } => ContainerStats {
                cpu_total_ns: c.cpu_ns + cpu_ns(since.elapsed()),
                memory_bytes: c.script.memory_bytes,
            },
            _ => ContainerStats {
                cpu_total_ns: 0,
                memory_bytes: 0,
            },
        })
    }

    async fn stats_document(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let s = self.stats(id).await?;
        // The members of Docker's document the endpoint's users read most.
        Ok(serde_json::json!({
            "id": id,
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_total_ns}},
            "memory_stats": {"usage": s.memory_bytes},
        }))
    }

    async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>, RuntimeError> {
        Ok(self.model().networks.get(name).cloned())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError> {
        let mut m = self.model();
        m.record(Call::CreateNetwork {
            name: spec.name.clone(),
        });
        m.take_injected(Op::CreateNetwork)?;
        if m.networks.contains_key(&spec.name) {
            return Err(RuntimeError::Conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let id = m.new_id(&spec.name);
        m.networks.insert(
            spec.name.clone(),
            NetworkInfo {
                id,
                driver: "bridge".into(),
                subnets: vec![spec.subnet.clone()],
                gateways: vec![spec.gateway.clone()],
                labels: spec.labels.clone(),
            },
        );
        Ok(())
    }

    async fn follow_output(
        &self,
        id: &str,
        since_s: i64,
    ) -> Result<super::OutputStreamOf, RuntimeError> {
        let id = {
            let mut m = self.model();
            m.find(id)
                .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?
                .id
                .clone()
        };
        let since_ns = since_s.saturating_mul(1_000_000_000);
        let this = self.clone();
        // (next index, done)
        let stream = futures::stream::unfold((0usize, false), move |(mut at, done)| {
            let this = this.clone();
            let id = id.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    let mut changed = this.changed.subscribe();
                    let (line, running) = {
                        let mut m = this.model();
                        let c = m.find(&id)?;
                        while c.output.get(at).is_some_and(|l| l.ns < since_ns) {
                            at += 1;
                        }
                        (c.output.get(at).cloned(), c.running())
                    };
                    if let Some(l) = line {
                        return Some((Ok(l), (at + 1, false)));
                    }
                    if !running {
                        return None;
                    }
                    // A scripted exit happens with time, without a change to wake on.
                    tokio::select! {
                        _ = changed.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn exec_create(&self, id: &str, spec: &ExecSpec) -> Result<String, RuntimeError> {
        let mut m = self.model();
        m.take_injected(Op::ExecCreate)?;
        let c = m
            .find(id)
            .ok_or_else(|| RuntimeError::NotFound(no_such_container(id)))?;
        if !c.running() {
            return Err(RuntimeError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let (container_id, name) = (c.id.clone(), c.spec.name.clone());
        m.record(Call::Exec {
            name,
            argv: spec.argv.clone(),
        });
        let exec_id = m.new_id("exec");
        m.execs.insert(
            exec_id.clone(),
            ExecRecord {
                container_id,
                spec: spec.clone(),
                size: Arc::new(Mutex::new(None)),
                phase: ExecPhase::Created,
            },
        );
        Ok(exec_id)
    }

    async fn exec_start(&self, exec_id: &str) -> Result<ExecStreams, RuntimeError> {
        let (container_id, spec, size) = {
            let mut m = self.model();
            let (container_id, phase) = {
                let e = m.execs.get(exec_id).ok_or_else(|| no_such_exec(exec_id))?;
                (e.container_id.clone(), e.phase)
            };
            if phase != ExecPhase::Created {
                return Err(RuntimeError::Conflict(format!(
                    "Error: Exec command {exec_id} is already running"
                )));
            }
            if !m.find(&container_id).is_some_and(|c| c.running()) {
                return Err(RuntimeError::Conflict(format!(
                    "Container {container_id} is not running"
                )));
            }
            let e = m
                .execs
                .get_mut(exec_id)
                .ok_or_else(|| no_such_exec(exec_id))?;
            e.phase = ExecPhase::Running;
            (container_id, e.spec.clone(), e.size.clone())
        };
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
        let (input, stdin): (
            std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
            Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
        ) = if spec.stdin {
            let (w, r) = tokio::io::duplex(64 * 1024);
            (Box::pin(w), Some(Box::new(r)))
        } else {
            (Box::pin(tokio::io::sink()), None)
        };
        let tty = spec.tty;
        let shell = exec::Shell::new(spec, size, exec::Output::new(out_tx, tty), stdin);
        let this = self.clone();
        let id = exec_id.to_string();
        tokio::spawn(async move {
            let run = shell.run();
            tokio::pin!(run);
            // An exec's process dies with its container.
            let code = loop {
                let mut changed = this.changed.subscribe();
                if !this
                    .model()
                    .find(&container_id)
                    .is_some_and(|c| c.running())
                {
                    break Signal::Kill.exit_code();
                }
                tokio::select! {
                    code = &mut run => break code,
                    _ = changed.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            };
            if let Some(e) = this.model().execs.get_mut(&id) {
                e.phase = ExecPhase::Exited(code);
            }
            this.bump();
            // Dropping the shell (and its sender) here ends the output stream.
        });
        let output = futures::stream::poll_fn(move |cx| out_rx.poll_recv(cx).map(|o| o.map(Ok)));
        Ok(ExecStreams {
            output: Box::pin(output),
            input,
        })
    }

    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        let m = self.model();
        let e = m.execs.get(exec_id).ok_or_else(|| no_such_exec(exec_id))?;
        if !e.spec.tty {
            return Err(RuntimeError::Other(format!(
                "exec {exec_id} has no terminal to resize"
            )));
        }
        *e.size.lock().unwrap_or_else(|p| p.into_inner()) = Some(TermSize { cols, rows });
        Ok(())
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState, RuntimeError> {
        let m = self.model();
        let e = m.execs.get(exec_id).ok_or_else(|| no_such_exec(exec_id))?;
        Ok(match e.phase {
            ExecPhase::Created => ExecState {
                running: false,
                exit_code: None,
            },
            ExecPhase::Running => ExecState {
                running: true,
                exit_code: None,
            },
            ExecPhase::Exited(code) => ExecState {
                running: false,
                exit_code: Some(code),
            },
        })
    }

    async fn import_image(
        &self,
        _rootfs_tar: Vec<u8>,
        repo: &str,
        tag: &str,
        _changes: &[String],
    ) -> Result<(), RuntimeError> {
        self.add_image(&format!("{repo}:{tag}"));
        Ok(())
    }
}

fn no_such_exec(id: &str) -> RuntimeError {
    RuntimeError::NotFound(format!("No such exec instance: {id}"))
}
