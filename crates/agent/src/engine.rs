//! The task engine: one owning tokio task per task drives its containers through Docker.
//!
//! What this is: [`Engine`] receives [`TaskAssignment`]s ([`Engine::assign`]) and emits
//! [`TaskStateReport`]s (the receiver returned by [`Engine::start`]). Each task has one owner
//! (`TaskOwner`), a level-triggered reconcile loop: observe the containers (inspect), decide
//! with the pure functions of [`crate::lifecycle`], act (pull, create, start, stop), report.
//! On start the engine rebuilds its state from Docker (containers labelled with its instance
//! id) and from the data directory ([`crate::state`]), so a restarted agent adopts running
//! containers without restarting them and finishes stops it had begun.
//!
//! What this is not: the session with the server ([`crate::session`]), and not a scheduler: it
//! runs what it is assigned.
//!
//! Invariants:
//! - only a task's owner writes that task's status, and the status only moves forward;
//! - an assignment is applied only if its (version, desired status) is higher than the one the
//!   owner has, so repeated or reordered messages are harmless;
//! - a report is sent only when the observed state changed, and carries the whole state;
//! - a running container is never restarted or removed because the agent restarted;
//! - no lock is held across an `.await`.

use crate::cgroup::{self, CgroupMode, TaskLimits};
use crate::config::ImagePullBehavior;
use crate::lifecycle::{
    self, ContainerView, Dependency, NetworkStage, Phase, RestartPolicy, StartDecision,
};
use crate::runtime::{Health, Runtime, RuntimeError};
use crate::spec::{self, Identity, TaskPlacement};
use crate::state::{DataDir, PersistedTask, StateError};
use flotilla_model::shapes::{
    ContainerDefinition, HealthStatus, NetworkBinding, TaskStopCode, TransportProtocol,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_protocol::{
    labels, ContainerAssignment, ContainerStateReport, DesiredStatus, TaskAssignment, TaskNetwork,
    TaskStateReport, TaskUsage, PAUSE_CONTAINER_NAME,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

/// Seconds since the epoch, now.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How long the final report of a cleaned-up task is remembered.
pub const DONE_RETENTION: Duration = Duration::from_secs(3600);

/// The engine's configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The container instance id (last part of its ARN): the value of the
    /// [`labels::INSTANCE`] label on every container this engine owns.
    pub instance_id: String,
    /// Cluster name, for labels.
    pub cluster: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// When images are pulled.
    pub image_pull_behavior: ImagePullBehavior,
    /// How long stopped containers are kept.
    pub cleanup_delay: Duration,
    /// The Docker client config with registry credentials (`None`: the default path).
    pub docker_config: Option<PathBuf>,
    /// How often each owner re-inspects its containers while the task changes (four times
    /// less often once it is steadily RUNNING).
    pub poll_interval: Duration,
    /// A managed-pool host (`flotilla agent --managed`): containers carry their task's own
    /// cluster in the [`labels::CLUSTER`] label.
    pub managed: bool,
    /// Where the cgroup file systems are mounted (task-level limits).
    pub cgroup_root: PathBuf,
}

impl EngineConfig {
    /// Defaults: pull absent images, cleanup after 3 h, poll every 250 ms.
    pub fn new(
        instance_id: impl Into<String>,
        cluster: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            instance_id: instance_id.into(),
            cluster: cluster.into(),
            data_dir: data_dir.into(),
            image_pull_behavior: ImagePullBehavior::PreferCached,
            cleanup_delay: Duration::from_secs(3 * 3600),
            docker_config: None,
            poll_interval: Duration::from_millis(250),
            managed: false,
            cgroup_root: PathBuf::from(cgroup::ROOT),
        }
    }
}

/// An engine failure (only at start: afterwards failures are reported per task).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The data directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Docker failed while rebuilding state.
    #[error("rebuilding state from the runtime: {0}")]
    Runtime(#[from] RuntimeError),
}

#[derive(Default)]
struct Shared {
    latest: Option<TaskStateReport>,
    running_ids: Vec<String>,
}

struct Handle {
    tx: watch::Sender<TaskAssignment>,
    shared: Arc<Mutex<Shared>>,
    abort: tokio::task::AbortHandle,
}

struct Inner {
    runtime: Arc<dyn Runtime>,
    cfg: EngineConfig,
    data: DataDir,
    identity: Identity,
    seq: AtomicU64,
    reports: mpsc::UnboundedSender<TaskStateReport>,
    tasks: Mutex<HashMap<String, Handle>>,
    /// Tasks cleaned up: their final report (and when), so a late re-assignment does not rerun
    /// them. Kept for [`DONE_RETENTION`].
    done: Mutex<HashMap<String, (TaskStateReport, Instant)>>,
    /// Containers found in Docker whose task has no saved state, by task ARN.
    orphans: Mutex<HashMap<String, Vec<crate::runtime::ContainerSummary>>>,
    pulled: Mutex<BTreeMap<String, f64>>,
    cpu_prev: Mutex<HashMap<String, (u64, Instant)>>,
    /// How task-level cpu/memory are enforced.
    cgroups: CgroupMode,
    /// Serializes creating the awsvpc network and the pause image.
    provisioning: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these maps inconsistent (single inserts/removes).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Samples resource usage of the engine's tasks; see [`Engine::usage_sampler`]. It keeps the
/// engine's state alive but owns no task: dropping it changes nothing.
#[derive(Clone)]
pub struct UsageSampler {
    inner: Arc<Inner>,
}

impl UsageSampler {
    /// One sample per task with running containers. Docker's one-shot stats take about a
    /// second each, so every container is sampled at the same time.
    pub async fn sample(&self) -> Vec<TaskUsage> {
        let tasks: Vec<(String, Vec<String>)> = lock(&self.inner.tasks)
            .iter()
            .map(|(arn, h)| (arn.clone(), lock(&h.shared).running_ids.clone()))
            .collect();
        let per_task = tasks
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(arn, ids)| {
                let inner = self.inner.clone();
                async move {
                    let stats =
                        futures::future::join_all(ids.iter().map(|id| inner.runtime.stats(id)))
                            .await;
                    let (mut cpu, mut mem) = (0.0, 0.0);
                    for (id, s) in ids.into_iter().zip(stats) {
                        let Ok(s) = s else { continue };
                        let now = Instant::now();
                        let prev = lock(&inner.cpu_prev).insert(id, (s.cpu_total_ns, now));
                        if let Some((prev_ns, at)) = prev {
                            let wall = now.duration_since(at).as_nanos() as f64;
                            if wall > 0.0 {
                                cpu +=
                                    s.cpu_total_ns.saturating_sub(prev_ns) as f64 / wall * 1024.0;
                            }
                        }
                        mem += s.memory_bytes as f64 / (1024.0 * 1024.0);
                    }
                    TaskUsage {
                        task_arn: arn,
                        cpu_units: cpu,
                        memory_mib: mem,
                        sampled_at: now_epoch(),
                    }
                }
            });
        futures::future::join_all(per_task).await
    }
}

/// The task engine. Dropping it stops every owner without touching containers (as a crash
/// would); [`Engine::start`] on the same data directory picks them up again.
pub struct Engine {
    inner: Arc<Inner>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        for (_, h) in lock(&self.inner.tasks).drain() {
            h.abort.abort();
        }
    }
}

impl Engine {
    /// Starts the engine: rebuilds state from the data directory and Docker, spawns an owner
    /// for every known task, and returns the engine with the stream of reports.
    pub async fn start(
        runtime: Arc<dyn Runtime>,
        cfg: EngineConfig,
    ) -> Result<(Engine, mpsc::UnboundedReceiver<TaskStateReport>), EngineError> {
        let data = DataDir::open(&cfg.data_dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let cgroups = match runtime.version().await {
            Ok(v) => CgroupMode::detect(&v.cgroup_driver, &v.cgroup_version, &cfg.cgroup_root),
            Err(e) => CgroupMode::PerContainer {
                why: format!("cannot read the engine's cgroup driver: {e}"),
            },
        };
        match &cgroups {
            CgroupMode::PerContainer { why } => warn!(
                reason = %why,
                "task-level cpu and memory cannot be limited on the whole task; each container \
                 without its own memory gets the task's memory as a hard limit instead"
            ),
            CgroupMode::Parent { version, .. } => {
                info!(cgroup_version = ?version, "task-level cpu and memory limit a cgroup per task")
            }
        }
        let inner = Arc::new(Inner {
            identity: Identity {
                instance_id: cfg.instance_id.clone(),
                cluster: cfg.cluster.clone(),
                managed: cfg.managed,
            },
            cgroups,
            provisioning: tokio::sync::Mutex::new(()),
            pulled: Mutex::new(data.pulled_images()?),
            runtime,
            data,
            // Seq grows across restarts: it starts at the clock in microseconds.
            seq: AtomicU64::new(micros),
            reports: tx,
            tasks: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
            orphans: Mutex::new(HashMap::new()),
            cpu_prev: Mutex::new(HashMap::new()),
            cfg,
        });
        let found = inner
            .runtime
            .list(labels::INSTANCE, &inner.cfg.instance_id)
            .await?;
        let mut by_task: HashMap<String, Vec<crate::runtime::ContainerSummary>> = HashMap::new();
        for c in found {
            if let Some(arn) = c.labels.get(labels::TASK_ARN) {
                by_task.entry(arn.clone()).or_default().push(c);
            }
        }
        for p in inner.data.tasks()? {
            let found = by_task.remove(&p.assignment.task_arn).unwrap_or_default();
            info!(task = %p.assignment.task_arn, containers = found.len(), "resuming task");
            spawn_owner(&inner, p, found);
        }
        for (arn, cs) in by_task {
            warn!(task = %arn, "containers without saved task state; waiting for the server");
            lock(&inner.orphans).insert(arn, cs);
        }
        Ok((Engine { inner }, rx))
    }

    /// Applies desired state from the server. With `full`, a running task that is not listed
    /// is stopped (the control plane forgot or stopped it).
    pub fn assign(&self, tasks: Vec<TaskAssignment>, full: bool) {
        let listed: Vec<String> = tasks.iter().map(|t| t.task_arn.clone()).collect();
        for a in tasks {
            self.assign_one(a);
        }
        if full {
            let others: Vec<(String, TaskAssignment)> = lock(&self.inner.tasks)
                .iter()
                .filter(|(arn, _)| !listed.contains(arn))
                .map(|(arn, h)| (arn.clone(), h.tx.borrow().clone()))
                .collect();
            for (arn, mut a) in others {
                if a.desired_status != DesiredStatus::Stopped {
                    info!(task = %arn, "not in the server's task list; stopping");
                    a.desired_status = DesiredStatus::Stopped;
                    a.stop_reason =
                        Some("Task is no longer assigned to this container instance".into());
                    self.assign_one(a);
                }
            }
            let orphans: Vec<(String, Vec<crate::runtime::ContainerSummary>)> =
                lock(&self.inner.orphans)
                    .iter()
                    .filter(|(arn, _)| !listed.contains(arn))
                    .map(|(a, c)| (a.clone(), c.clone()))
                    .collect();
            for (arn, cs) in orphans {
                info!(task = %arn, "orphan containers not assigned; stopping them");
                self.assign_one(orphan_assignment(&arn, &cs));
            }
        }
    }

    fn assign_one(&self, a: TaskAssignment) {
        let arn = a.task_arn.clone();
        if let Some((report, _)) = lock(&self.inner.done).get(&arn).cloned() {
            debug!(task = %arn, "assignment for a task already cleaned up; re-reporting");
            let _ = self.inner.reports.send(report);
            return;
        }
        {
            let tasks = lock(&self.inner.tasks);
            if let Some(h) = tasks.get(&arn) {
                h.tx.send_if_modified(|cur| {
                    let newer = (a.version, a.desired_status) > (cur.version, cur.desired_status);
                    if newer {
                        *cur = a.clone();
                    }
                    newer
                });
                return;
            }
        }
        let found = lock(&self.inner.orphans).remove(&arn).unwrap_or_default();
        let p = PersistedTask {
            assignment: a,
            stopping: false,
            stop_code: None,
            stopped_reason: None,
            container_reasons: BTreeMap::new(),
            container_ids: BTreeMap::new(),
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
            pause_id: None,
            deprovisioned: false,
        };
        if let Err(e) = self.inner.data.save_task(&p) {
            warn!(task = %arn, error = %e, "cannot save the assignment");
        }
        spawn_owner(&self.inner, p, found);
    }

    /// The latest report of every task the engine knows (to re-send after a reconnect).
    pub fn current_reports(&self) -> Vec<TaskStateReport> {
        lock(&self.inner.tasks)
            .values()
            .filter_map(|h| lock(&h.shared).latest.clone())
            .collect()
    }

    /// Samples CPU and memory of every task's running containers (one-shot Docker stats).
    /// CPU is averaged since the previous sample of the same container.
    pub async fn sample_usage(&self) -> Vec<TaskUsage> {
        self.usage_sampler().sample().await
    }

    /// A handle that samples usage from another tokio task, so a slow Docker stats call never
    /// holds up the session (heartbeats, pushes) that owns the engine.
    pub fn usage_sampler(&self) -> UsageSampler {
        UsageSampler {
            inner: self.inner.clone(),
        }
    }

    /// The ARNs of the tasks the engine currently owns.
    pub fn task_arns(&self) -> Vec<String> {
        lock(&self.inner.tasks).keys().cloned().collect()
    }
}

fn orphan_assignment(arn: &str, cs: &[crate::runtime::ContainerSummary]) -> TaskAssignment {
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

fn spawn_owner(inner: &Arc<Inner>, p: PersistedTask, found: Vec<crate::runtime::ContainerSummary>) {
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

/// One container as its owner sees it.
struct Ctr {
    name: String,
    def: ContainerDefinition,
    essential: bool,
    runtime_id: Option<String>,
    status: ContainerStatus,
    exit_code: Option<i32>,
    reason: Option<String>,
    bindings: Vec<NetworkBinding>,
    health: Option<HealthStatus>,
    started: Option<Instant>,
    waiting_since: Instant,
    image_digest: Option<String>,
    stop_requested: bool,
}

impl Ctr {
    fn view(&self) -> ContainerView {
        ContainerView {
            name: self.name.clone(),
            essential: self.essential,
            status: self.status,
            exit_code: self.exit_code,
            health: self.health,
            has_health_check: self.def.health_check.is_some(),
        }
    }

    /// Applies what inspecting a running container says.
    fn apply_running(&mut self, info: &crate::runtime::ContainerInfo) {
        self.status = ContainerStatus::Running;
        self.health = match info.health {
            Health::None => None,
            Health::Starting => Some(HealthStatus::Unknown),
            Health::Healthy => Some(HealthStatus::Healthy),
            Health::Unhealthy => Some(HealthStatus::Unhealthy),
        };
        self.bindings = info
            .bindings
            .iter()
            .map(|b| NetworkBinding {
                bind_ip: Some(if b.host_ip.is_empty() {
                    "0.0.0.0".to_string()
                } else {
                    b.host_ip.clone()
                }),
                container_port: Some(i32::from(b.container_port)),
                host_port: Some(i32::from(b.host_port)),
                protocol: Some(if b.protocol == "udp" {
                    TransportProtocol::Udp
                } else {
                    TransportProtocol::Tcp
                }),
                ..Default::default()
            })
            .collect();
    }

    fn deps(&self) -> Vec<Dependency> {
        let mut deps: Vec<Dependency> = self
            .def
            .depends_on
            .iter()
            .flatten()
            .map(|d| Dependency {
                container: d.container_name.clone(),
                condition: d.condition,
            })
            .collect();
        for target in spec::link_targets(&self.def) {
            if !deps.iter().any(|d| d.container == target) {
                deps.push(Dependency {
                    container: target,
                    condition: flotilla_model::shapes::ContainerCondition::Start,
                });
            }
        }
        deps
    }

    fn restart_policy(&self) -> Option<RestartPolicy> {
        self.def.restart_policy.as_ref().map(|r| RestartPolicy {
            enabled: r.enabled,
            ignored_exit_codes: r.ignored_exit_codes.clone().unwrap_or_default(),
            attempt_period_s: r
                .restart_attempt_period
                .map(f64::from)
                .unwrap_or(lifecycle::DEFAULT_RESTART_ATTEMPT_PERIOD_S),
        })
    }
}

struct TaskOwner {
    inner: Arc<Inner>,
    p: PersistedTask,
    rx: watch::Receiver<TaskAssignment>,
    shared: Arc<Mutex<Shared>>,
    phase: Phase,
    status: TaskStatus,
    ctrs: Vec<Ctr>,
    last_sent: Option<TaskStateReport>,
    stops: JoinSet<()>,
    /// The task has its own network namespace (a pause container).
    awsvpc: bool,
    /// The pause container was seen running by this owner.
    pause_ok: bool,
    /// Every image is present (awsvpc: PENDING is over).
    images_ready: bool,
    /// A stop signal was delivered (or nothing was left to signal).
    signalled: bool,
}

fn to_i32(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(if code < 0 { i32::MIN } else { i32::MAX })
}

impl TaskOwner {
    fn new(
        inner: Arc<Inner>,
        p: PersistedTask,
        rx: watch::Receiver<TaskAssignment>,
        shared: Arc<Mutex<Shared>>,
        found: Vec<crate::runtime::ContainerSummary>,
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
                    waiting_since: now,
                    image_digest: None,
                    stop_requested: false,
                    name,
                }
            })
            .collect();
        let mut ctrs = ctrs;
        for c in &mut ctrs {
            if c.status == ContainerStatus::Stopped && c.reason.is_none() {
                c.reason = Some(format!(
                    "CannotInspectContainerError: container {} no longer exists",
                    p.container_ids.get(&c.name).cloned().unwrap_or_default()
                ));
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
        }
    }

    fn persist(&self) {
        if let Err(e) = self.inner.data.save_task(&self.p) {
            warn!(error = %e, "cannot save task state");
        }
    }

    fn assignment(&self) -> &TaskAssignment {
        &self.p.assignment
    }

    async fn run(mut self) {
        let poll = self.inner.cfg.poll_interval;
        if self.phase == Phase::Pending {
            // A new task is seen: PENDING. A resumed one reports what it observes first.
            self.report();
        }
        loop {
            self.step().await;
            self.report();
            if self.status == TaskStatus::Stopped {
                let at = self.p.execution_stopped_at.unwrap_or_else(now_epoch)
                    + self.inner.cfg.cleanup_delay.as_secs_f64();
                let wait = (at - now_epoch()).max(0.0);
                tokio::select! {
                    changed = self.rx.changed() => {
                        if changed.is_err() { return; }
                        self.take_assignment();
                        continue;
                    }
                    _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {
                        self.cleanup().await;
                        return;
                    }
                }
            }
            // A steady RUNNING task is inspected less often than one that is changing.
            let wait = if self.status == TaskStatus::Running && self.phase != Phase::Stopping {
                poll * 4
            } else {
                poll
            };
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() { return; }
                    self.take_assignment();
                }
                _ = tokio::time::sleep(wait) => {}
                Some(_) = self.stops.join_next(), if !self.stops.is_empty() => {}
            }
        }
    }

    fn take_assignment(&mut self) {
        let a = self.rx.borrow_and_update().clone();
        if (a.version, a.desired_status)
            > (self.p.assignment.version, self.p.assignment.desired_status)
        {
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

    fn begin_stop(&mut self, code: Option<TaskStopCode>, reason: Option<String>) {
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

    fn fail_start(&mut self, container: Option<&str>, reason: String) {
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

    async fn step(&mut self) {
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
                self.fail_start(
                    first.as_deref(),
                    format!("CannotCreateContainerError: {reason}"),
                );
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
                    if self.pull_images().await {
                        self.images_ready = true;
                        self.set_status(TaskStatus::Activating);
                        self.create_containers().await;
                    }
                }
            } else {
                self.status = lifecycle::advance(self.status, TaskStatus::Activating);
                self.report();
                if self.pull_images().await {
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
            self.p.started_at = Some(now_epoch());
            dirty = true;
        }
        if self.status == TaskStatus::Stopped && self.p.execution_stopped_at.is_none() {
            self.p.execution_stopped_at = Some(now_epoch());
            dirty = true;
            if !self.awsvpc {
                self.remove_cgroup();
            }
        }
        if dirty {
            self.persist();
        }
        let running: Vec<String> = self
            .ctrs
            .iter()
            .filter(|c| c.status == ContainerStatus::Running)
            .filter_map(|c| c.runtime_id.clone())
            .collect();
        lock(&self.shared).running_ids = running;
    }

    fn needs_creation(&self) -> bool {
        self.ctrs
            .iter()
            .any(|c| c.runtime_id.is_none() && c.status == ContainerStatus::Pending)
    }

    /// Advances the status and reports it when it changed.
    fn set_status(&mut self, s: TaskStatus) {
        let before = self.status;
        self.status = lifecycle::advance(self.status, s);
        if self.status != before {
            info!(status = self.status.as_ecs_str(), "task status");
            self.report();
        }
    }

    fn limits(&self) -> TaskLimits {
        TaskLimits {
            cpu: self.assignment().cpu,
            memory_mib: self.assignment().memory,
        }
    }

    fn task_id(&self) -> String {
        spec::task_id(&self.assignment().task_arn).to_string()
    }

    /// Where the containers go: the pause namespace, the task cgroup or per-container limits.
    fn placement(&self) -> TaskPlacement {
        let limits = self.limits();
        let (cgroup_parent, per_container_limits) = match &self.inner.cgroups {
            _ if !limits.any() => (None, None),
            CgroupMode::Parent { .. } => (Some(cgroup::task_path(&self.task_id())), None),
            CgroupMode::PerContainer { .. } => (None, Some(limits)),
        };
        TaskPlacement {
            pause_id: if self.awsvpc {
                self.p.pause_id.clone()
            } else {
                None
            },
            cgroup_parent,
            per_container_limits,
        }
    }

    /// Creates the task cgroup with the task's limits (before any container of the task).
    fn ensure_cgroup(&self) -> Result<(), String> {
        let limits = self.limits();
        if !limits.any() {
            return Ok(());
        }
        self.inner
            .cgroups
            .create(&self.task_id(), &limits)
            .map_err(|e| format!("ResourceInitializationError: task cgroup: {e}"))
    }

    fn remove_cgroup(&self) {
        if self.limits().any() {
            if let Err(e) = self.inner.cgroups.remove(&self.task_id()) {
                debug!(error = %e, "task cgroup not removed yet");
            }
        }
    }

    fn stage(&self) -> NetworkStage {
        if self.p.deprovisioned {
            NetworkStage::Released
        } else if self.p.pause_id.is_none() {
            NetworkStage::Provisioning
        } else if !self.images_ready && self.needs_creation() {
            NetworkStage::Pulling
        } else {
            NetworkStage::Ready
        }
    }

    /// awsvpc: the task cgroup, the network, the pause image and a running pause container
    /// with the task's address. The error is the task's stopped reason.
    async fn provision(&mut self) -> Result<(), String> {
        let rt = self.inner.runtime.clone();
        let Some(n) = self.assignment().network.clone() else {
            return Err(
                "ResourceInitializationError: the awsvpc task has no network assigned".into(),
            );
        };
        self.ensure_cgroup()?;
        {
            let _guard = self.inner.provisioning.lock().await;
            ensure_network(rt.as_ref(), &n).await?;
            ensure_pause_image(rt.as_ref()).await?;
        }
        if let Some(id) = self.p.pause_id.clone() {
            match rt.inspect(&id).await {
                Ok(i) if i.running => return Ok(()),
                Ok(_) => {
                    return rt.start(&id).await.map_err(|e| {
                        format!("ResourceInitializationError: start the pause container: {e}")
                    })
                }
                Err(RuntimeError::NotFound(_)) => self.p.pause_id = None,
                Err(e) => return Err(format!("ResourceInitializationError: {e}")),
            }
        }
        let spec = spec::pause_spec(
            self.assignment(),
            &n,
            &self.inner.identity,
            &self.placement(),
        );
        let id = match rt.create(&spec).await {
            Ok(id) => id,
            Err(RuntimeError::Conflict(_)) => rt
                .inspect(&spec.name)
                .await
                .map(|c| c.id)
                .map_err(|e| format!("ResourceInitializationError: {e}"))?,
            Err(e) => {
                return Err(format!(
                    "ResourceInitializationError: create the pause container with address {}: {e}",
                    n.private_ipv4_address
                ))
            }
        };
        info!(id = %id, ip = %n.private_ipv4_address, "pause container created");
        self.p.pause_id = Some(id.clone());
        self.persist();
        rt.start(&id).await.map_err(|e| {
            format!(
                "ResourceInitializationError: start the pause container with address {}: {e}",
                n.private_ipv4_address
            )
        })
    }

    /// awsvpc: removes the pause container (releasing the address) and the task cgroup.
    async fn deprovision(&mut self) {
        if let Some(id) = self.p.pause_id.clone() {
            if let Err(e) = self.inner.runtime.remove(&id).await {
                warn!(error = %e, "cannot remove the pause container; retrying");
                return;
            }
            info!(id = %id, "pause container removed");
        }
        self.p.deprovisioned = true;
        self.persist();
        self.remove_cgroup();
    }

    /// Checks and pulls the images of the containers not created yet; false when a pull
    /// failed (the task is then stopping).
    async fn pull_images(&mut self) -> bool {
        let rt = self.inner.runtime.clone();
        if self.p.pull_started_at.is_none() {
            self.p.pull_started_at = Some(now_epoch());
            self.persist();
            self.report();
        }
        let mut images: Vec<(String, String)> = vec![];
        for c in self
            .ctrs
            .iter()
            .filter(|c| c.runtime_id.is_none() && c.status == ContainerStatus::Pending)
        {
            let image = c.def.image.clone().unwrap_or_default();
            if !images.iter().any(|(i, _)| *i == image) {
                images.push((image, c.name.clone()));
            }
        }
        for (image, first) in &images {
            let pulled = self.ensure_image(image).await;
            if let Err(e) = pulled {
                // Every container of that image gets the reason.
                let reason = e.to_string();
                for c in self
                    .ctrs
                    .iter_mut()
                    .filter(|c| c.def.image.as_deref() == Some(image))
                {
                    c.reason = Some(reason.clone());
                    self.p
                        .container_reasons
                        .insert(c.name.clone(), reason.clone());
                }
                self.fail_start(Some(first), reason);
                self.p.pull_stopped_at = Some(now_epoch());
                self.persist();
                return false;
            }
            let digest = rt
                .inspect_image(image)
                .await
                .ok()
                .flatten()
                .and_then(|i| i.digest);
            for c in self
                .ctrs
                .iter_mut()
                .filter(|c| c.def.image.as_deref() == Some(image))
            {
                c.image_digest = digest.clone();
            }
        }
        if self.p.pull_stopped_at.is_none() || !images.is_empty() {
            self.p.pull_stopped_at = Some(now_epoch());
        }
        true
    }

    /// Creates the task cgroup, volumes and the containers that do not exist yet.
    async fn create_containers(&mut self) {
        let rt = self.inner.runtime.clone();
        if let Err(reason) = self.ensure_cgroup() {
            self.fail_start(None, reason);
            return;
        }
        let placement = self.placement();
        for v in spec::task_volumes(self.assignment(), &self.inner.identity) {
            if let Err(e) = rt.create_volume(&v).await {
                let first = self.ctrs.first().map(|c| c.name.clone());
                self.fail_start(first.as_deref(), e.to_string());
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
            let spec = spec::container_spec(
                self.assignment(),
                &self.ctrs[i].def,
                &self.inner.identity,
                &placement,
            );
            let name = self.ctrs[i].name.clone();
            let created = match rt.create(&spec).await {
                Ok(id) => Ok(id),
                // An earlier attempt (before a crash) created it: adopt it.
                Err(RuntimeError::Conflict(_)) => rt.inspect(&spec.name).await.map(|c| c.id),
                Err(e) => Err(e),
            };
            match created {
                Ok(id) => {
                    info!(container = %name, id = %id, "container created");
                    self.p.container_ids.insert(name, id.clone());
                    self.ctrs[i].runtime_id = Some(id);
                }
                Err(e) => {
                    let reason = match e {
                        RuntimeError::Create(_) | RuntimeError::Conflict(_) => e.to_string(),
                        other => format!("CannotCreateContainerError: {other}"),
                    };
                    self.fail_start(Some(&name), reason);
                    break;
                }
            }
        }
        self.persist();
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        let rt = &self.inner.runtime;
        let present = rt.inspect_image(image).await?.is_some();
        let pulled_before = lock(&self.inner.pulled).contains_key(image);
        let must_pull = match self.inner.cfg.image_pull_behavior {
            ImagePullBehavior::PreferCached => !present,
            ImagePullBehavior::Once => !present || !pulled_before,
            ImagePullBehavior::Always | ImagePullBehavior::Default => true,
        };
        if must_pull {
            info!(image = %image, "pulling image");
            let auth = crate::registry::auth_for(self.inner.cfg.docker_config.as_deref(), image);
            match rt.pull(image, auth.as_ref()).await {
                Ok(()) => {
                    let mut pulled = lock(&self.inner.pulled);
                    pulled.insert(image.to_string(), now_epoch());
                    if let Err(e) = self.inner.data.save_pulled_images(&pulled) {
                        warn!(error = %e, "cannot save pulled images");
                    }
                }
                Err(e)
                    if present
                        && self.inner.cfg.image_pull_behavior == ImagePullBehavior::Default =>
                {
                    warn!(image = %image, error = %e, "pull failed; using the cached image");
                }
                Err(e) => return Err(e),
            }
        } else {
            let mut pulled = lock(&self.inner.pulled);
            if let Some(t) = pulled.get_mut(image) {
                *t = now_epoch();
            }
        }
        Ok(())
    }

    /// Inspects every container that may have changed and applies what Docker says.
    async fn observe(&mut self) {
        let rt = self.inner.runtime.clone();
        let stopping = self.phase == Phase::Stopping;
        let cgroups = self.inner.cgroups.clone();
        let task_id = self.task_id();
        let memory_limited = self.assignment().memory.is_some();
        for c in self.ctrs.iter_mut() {
            let Some(id) = c.runtime_id.clone() else {
                continue;
            };
            if c.status == ContainerStatus::Stopped {
                continue;
            }
            let info = match rt.inspect(&id).await {
                Ok(i) => i,
                Err(RuntimeError::NotFound(_)) => {
                    warn!(container = %c.name, "container disappeared");
                    c.status = ContainerStatus::Stopped;
                    c.reason.get_or_insert_with(|| {
                        format!("CannotInspectContainerError: container {id} no longer exists")
                    });
                    continue;
                }
                Err(e) => {
                    warn!(container = %c.name, error = %e, "inspect failed");
                    continue;
                }
            };
            if info.running {
                if c.status == ContainerStatus::Pending {
                    info!(container = %c.name, "container running");
                    c.started.get_or_insert_with(Instant::now);
                }
                c.apply_running(&info);
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

    async fn start_ready(&mut self) {
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
                    self.fail_start(Some(&name), format!("DependencyNotResolvedError: {why}"));
                    return;
                }
                StartDecision::Ready => {
                    info!(container = %name, "starting container");
                    if let Err(e) = rt.start(&id).await {
                        self.ctrs[i].status = ContainerStatus::Stopped;
                        let reason = match e {
                            RuntimeError::Start(_) => e.to_string(),
                            other => format!("CannotStartContainerError: {other}"),
                        };
                        self.fail_start(Some(&name), reason);
                        return;
                    }
                    self.ctrs[i].started = Some(Instant::now());
                    // Observe right away so dependents see START without a poll delay.
                    if let Ok(info) = rt.inspect(&id).await {
                        if info.running {
                            self.ctrs[i].apply_running(&info);
                        }
                    }
                }
            }
        }
    }

    /// Stops what may be stopped now (dependents before their dependencies; with a Spot
    /// grace period, everything at once).
    async fn stop_some(&mut self) {
        for c in self.ctrs.iter_mut() {
            if c.status == ContainerStatus::Pending {
                // Never started: nothing to stop.
                c.status = ContainerStatus::Stopped;
            }
        }
        let running: Vec<String> = self
            .ctrs
            .iter()
            .filter(|c| c.status == ContainerStatus::Running)
            .map(|c| c.name.clone())
            .collect();
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
                        let _ = rt.kill(&id, "SIGKILL").await;
                    }
                }
                .in_current_span(),
            );
        }
        // SIGTERM now (so STOPPING means it was delivered), SIGKILL after the timeout.
        for (name, id, timeout) in signal_now {
            let rt = self.inner.runtime.clone();
            info!(container = %name, timeout_s = timeout.as_secs(), "sending SIGTERM");
            match rt.kill(&id, "SIGTERM").await {
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
                        let _ = rt.kill(&id, "SIGKILL").await;
                    }
                }
                .in_current_span(),
            );
        }
    }

    fn build_report(&self) -> TaskStateReport {
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

    fn report(&mut self) {
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
    async fn cleanup(&mut self) {
        let rt = self.inner.runtime.clone();
        info!("cleaning up stopped task");
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
        let last = lock(&self.shared).latest.clone();
        if let Some(r) = last {
            let mut done = lock(&self.inner.done);
            done.retain(|_, (_, at)| at.elapsed() < DONE_RETENTION);
            done.insert(arn.clone(), (r, Instant::now()));
        }
        {
            let mut cpu = lock(&self.inner.cpu_prev);
            for c in &self.ctrs {
                if let Some(id) = &c.runtime_id {
                    cpu.remove(id);
                }
            }
        }
        lock(&self.inner.tasks).remove(&arn);
        self.cleanup_images().await;
    }

    async fn cleanup_images(&self) {
        let rt = &self.inner.runtime;
        let delay = self.inner.cfg.cleanup_delay.as_secs_f64();
        let candidates: Vec<String> = lock(&self.inner.pulled)
            .iter()
            .filter(|(_, used)| **used + delay <= now_epoch())
            .map(|(i, _)| i.clone())
            .collect();
        for image in candidates {
            if matches!(rt.image_in_use(&image).await, Ok(false)) {
                info!(image = %image, "removing unused image");
                if rt.remove_image(&image).await.is_ok() {
                    let mut pulled = lock(&self.inner.pulled);
                    pulled.remove(&image);
                    let _ = self.inner.data.save_pulled_images(&pulled);
                }
            }
        }
    }
}

/// Makes sure the awsvpc network exists with the task's subnet (another agent on the same
/// engine may create it at the same time: a conflict means it exists).
async fn ensure_network(rt: &dyn Runtime, n: &TaskNetwork) -> Result<(), String> {
    let spec = spec::network_spec(n);
    let fail = |e: RuntimeError| {
        format!(
            "ResourceInitializationError: network {}: {e}",
            n.network_name
        )
    };
    let info = match rt.inspect_network(&spec.name).await.map_err(fail)? {
        Some(info) => info,
        None => match rt.create_network(&spec).await {
            Ok(()) => {
                info!(network = %spec.name, subnet = %spec.subnet, "network created");
                return Ok(());
            }
            // Another agent created it meanwhile: Docker answers 409, or, when the
            // creations race, that the address pool overlaps before the network is visible.
            // Either way it appears shortly.
            Err(e) => {
                let mut found = None;
                for _ in 0..20 {
                    found = rt.inspect_network(&spec.name).await.map_err(fail)?;
                    if found.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                found.ok_or_else(|| fail(e))?
            }
        },
    };
    if !info.subnets.contains(&n.subnet_cidr) {
        return Err(format!(
            "ResourceInitializationError: Docker network {} exists with subnet {} instead of {}; remove it or give the task network another name",
            n.network_name,
            if info.subnets.is_empty() { "(none)".to_string() } else { info.subnets.join(",") },
            n.subnet_cidr
        ));
    }
    Ok(())
}

/// Imports the pause image when it is missing (built here: no registry, no host files).
async fn ensure_pause_image(rt: &dyn Runtime) -> Result<(), String> {
    let fail = |e: String| format!("ResourceInitializationError: pause image: {e}");
    if rt
        .inspect_image(crate::pause::IMAGE)
        .await
        .map_err(|e| fail(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    let arch = rt
        .version()
        .await
        .map_err(|e| fail(e.to_string()))?
        .architecture;
    let tar = crate::pause::rootfs_tar(&arch).map_err(fail)?;
    rt.import_image(
        tar,
        crate::pause::REPO,
        crate::pause::TAG,
        &[format!("CMD [\"{}\"]", crate::pause::PATH)],
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    info!(image = crate::pause::IMAGE, arch = %arch, "pause image built");
    Ok(())
}
