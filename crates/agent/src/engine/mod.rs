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
//! The parts: `tasks` (the task registry), `owner` (the per-task loop), `containers` (create,
//! observe, start, stop), `provision` (task cgroup, awsvpc network and pause container),
//! `images` (pull and cleanup), `usage` (usage sampling), `container` (one container's view),
//! `endpoint` (the task's side of the metadata and credentials endpoint: its ids and
//! variables, NAT rules, role credentials and their refresh, its published snapshot), `warm`
//! (a managed-pool host's warm pause containers, adopted by the awsvpc tasks given their
//! addresses).
//! The engine reads time from tokio's clock only, so its decisions run under paused time in
//! tests (with [`crate::runtime::memory::MemoryRuntime`]).
//!
//! Invariants:
//! - only a task's owner writes that task's status, and the status only moves forward;
//! - an assignment is applied only if its (version, desired status) is higher than the one the
//!   owner has, so repeated or reordered messages are harmless;
//! - a report is sent only when the observed state changed, and carries the whole state;
//! - a running container is never restarted or removed because the agent restarted;
//! - no lock is held across an `.await`.

mod container;
mod containers;
mod endpoint;
mod images;
mod owner;
mod provision;
mod tasks;
mod usage;
mod warm;

pub use usage::UsageSampler;

use container::{to_i32, Ctr};
use owner::TaskOwner;
use tasks::{orphan_assignment, spawn_owner, Route, Shared, TaskRegistry};

use crate::cgroup::{self, CgroupMode};
use crate::config::ImagePullBehavior;
use crate::runtime::{ContainerSummary, Runtime, RuntimeError};
use crate::spec::Identity;
use crate::state::{DataDir, PersistedTask, StateError};
use flotilla_protocol::{labels, TaskAssignment, TaskStateReport, TaskUsage};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Seconds since the epoch, now.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The engine's clock: wall-clock seconds since the epoch read once at start, advanced by
/// tokio's clock, so every decision (cleanup delays, image cleanup, restart periods) follows
/// tokio's time, paused in tests.
#[derive(Debug, Clone, Copy)]
struct EpochClock {
    base_epoch: f64,
    base: Instant,
}

impl EpochClock {
    fn start() -> Self {
        Self {
            base_epoch: now_epoch(),
            base: Instant::now(),
        }
    }

    /// Seconds since the epoch, now, on tokio's clock.
    fn now(&self) -> f64 {
        self.base_epoch + self.base.elapsed().as_secs_f64()
    }
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
    /// How `awslogs` streams are opened with the server.
    pub log_streams: crate::logs::LogStreams,
    /// The bounds of the host's log store (`DATA_DIR/logs`).
    pub log_limits: flotilla_logstore::Limits,
    /// The region (an `awslogs-region` must be this one), when known.
    pub region: Option<String>,
    /// The host's availability zone (the task metadata's `AvailabilityZone`).
    pub availability_zone: Option<String>,
    /// The task metadata and credentials endpoint at `169.254.170.2` (`None`: not served; a
    /// task with a role then fails to start).
    pub task_endpoint: Option<TaskEndpointSetup>,
    /// A managed-pool host's warm pool: how many task networks it keeps ready, each with a
    /// running pause container (`None`: no warm pool, as on a cluster's host; `Some(0)`: the
    /// server is told to release any).
    pub warm_pool_size: Option<u32>,
}

/// How the engine serves the task endpoint ([`crate::metadata::TaskEndpoint`]).
#[derive(Clone)]
pub struct TaskEndpointSetup {
    /// What installs the NAT rules ([`crate::metadata::redirect::Iptables`] on a host).
    pub redirector: Arc<dyn crate::metadata::redirect::Redirector>,
    /// What the endpoint can reach; `None`: found out at start
    /// ([`crate::metadata::Reach::detect`]).
    pub reach: Option<crate::metadata::Reach>,
    /// Where the task resolver asks for Cloud Map names (the server); `None`: no task
    /// resolver, and tasks keep the DNS servers Docker gives them.
    pub names: Option<Arc<dyn crate::metadata::dns::NameSource>>,
    /// The resolvers other names are forwarded to (the host's).
    pub upstreams: Vec<std::net::SocketAddr>,
    /// Where the task protection path asks (the server); `None`: not served.
    pub protection: Option<Arc<dyn crate::metadata::protection::ProtectionSource>>,
}

impl std::fmt::Debug for TaskEndpointSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEndpointSetup")
            .field("reach", &self.reach)
            .field("dns", &self.names.is_some())
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
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
            log_streams: crate::logs::LogStreams::default(),
            log_limits: flotilla_logstore::Limits::default(),
            region: None,
            availability_zone: None,
            task_endpoint: None,
            warm_pool_size: None,
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
    /// The host's log store could not be opened.
    #[error(transparent)]
    Logs(#[from] flotilla_logstore::StoreError),
}

struct Inner {
    runtime: Arc<dyn Runtime>,
    cfg: EngineConfig,
    data: DataDir,
    identity: Identity,
    seq: AtomicU64,
    reports: mpsc::UnboundedSender<TaskStateReport>,
    /// Where owners ask for their task's secrets (the session answers: [`Engine::secret_requests`]).
    secrets: mpsc::UnboundedSender<SecretsRequest>,
    /// Where owners ask for their task role's credentials (the session answers:
    /// [`Engine::credential_requests`]).
    credentials: mpsc::UnboundedSender<CredentialsRequest>,
    /// The task metadata and credentials endpoint, when served.
    endpoint: Option<Arc<crate::metadata::TaskEndpoint>>,
    /// Every task the engine knows.
    tasks: TaskRegistry,
    pulled: Mutex<BTreeMap<String, f64>>,
    cpu_prev: Mutex<HashMap<String, (u64, Instant)>>,
    /// Wall-clock time as tokio's clock advances it.
    clock: EpochClock,
    /// How task-level cpu/memory are enforced.
    cgroups: CgroupMode,
    /// Serializes creating the awsvpc network and the pause image.
    provisioning: tokio::sync::Mutex<()>,
    /// The containers' `awslogs` output.
    logs: Arc<crate::logs::LogsHub>,
    /// A managed-pool host's warm pause containers.
    warm: Option<warm::WarmPool>,
}

impl Inner {
    /// Seconds since the epoch, now, on tokio's clock.
    fn now_epoch(&self) -> f64 {
        self.clock.now()
    }

    /// The DNS servers of an awsvpc task's pause container on network `n`: the task resolver
    /// when the endpoint reaches awsvpc tasks and serves it (the task's containers share the
    /// pause container's `resolv.conf`).
    fn awsvpc_pause_dns(&self, n: &flotilla_protocol::TaskNetwork) -> Vec<String> {
        let Some(ep) = self.endpoint.as_ref() else {
            return Vec::new();
        };
        let mode = flotilla_model::shapes::NetworkMode::Awsvpc;
        let reached = matches!(
            ep.reach().route(&mode, Some(n)),
            Ok(crate::metadata::Route::Awsvpc { .. })
        );
        if reached && ep.serves_dns() {
            vec![crate::metadata::redirect::ENDPOINT_ADDRESS.to_string()]
        } else {
            Vec::new()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave these maps inconsistent (single inserts/removes).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The task engine. Dropping it stops every owner without touching containers (as a crash
/// would); [`Engine::start`] on the same data directory picks them up again.
pub struct Engine {
    inner: Arc<Inner>,
    secret_requests: Mutex<Option<mpsc::UnboundedReceiver<SecretsRequest>>>,
    credential_requests: Mutex<Option<mpsc::UnboundedReceiver<CredentialsRequest>>>,
    warm_requests: Mutex<Option<mpsc::UnboundedReceiver<u32>>>,
}

/// An owner asking for its task role's credentials (before creating the task's containers, and
/// again before they expire). The session sends it to the server and the answer back; they
/// live only in memory.
#[derive(Debug)]
pub struct CredentialsRequest {
    /// The task.
    pub task_arn: String,
    /// Where the answer goes (dropped when the session cannot ask: the owner asks again).
    pub reply: tokio::sync::oneshot::Sender<flotilla_protocol::CredentialsOutcome>,
}

/// An owner asking for its task's secrets, just before it creates the task's containers. The
/// session sends it to the server and the answer back; the values live only in the owner's
/// memory and the containers' environment, never in the data directory.
#[derive(Debug)]
pub struct SecretsRequest {
    /// The task.
    pub task_arn: String,
    /// Where the answer goes (dropped when the session cannot ask: the owner asks again).
    pub reply: tokio::sync::oneshot::Sender<flotilla_protocol::SecretsOutcome>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.inner.tasks.abort_all();
        self.inner.logs.stop_captures();
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
        let (secrets_tx, secrets_rx) = mpsc::unbounded_channel();
        let (credentials_tx, credentials_rx) = mpsc::unbounded_channel();
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
        let logs = crate::logs::LogsHub::open(
            &cfg.data_dir.join("logs"),
            cfg.log_limits,
            runtime.clone(),
            cfg.log_streams.0.clone(),
        )?;
        logs.spawn_sweeper(Duration::from_secs(60));
        let endpoint = match &cfg.task_endpoint {
            Some(setup) => match crate::metadata::TaskEndpoint::start(
                runtime.clone(),
                setup.redirector.clone(),
                &cfg.instance_id,
                setup.reach.clone(),
            )
            .await
            {
                Ok(e) => {
                    if let Some(p) = &setup.protection {
                        e.serve_protection(p.clone());
                    }
                    if let Some(names) = &setup.names {
                        if let Err(why) = e.serve_dns(names.clone(), setup.upstreams.clone()).await
                        {
                            warn!(reason = %why, "tasks keep Docker's DNS servers");
                        }
                    }
                    Some(e)
                }
                Err(e) => {
                    warn!(error = %e, "the task metadata and credentials endpoint cannot listen; tasks run without it");
                    None
                }
            },
            None => None,
        };
        let found = runtime.list(labels::INSTANCE, &cfg.instance_id).await?;
        let saved = data.tasks()?;
        let mut by_task: HashMap<String, Vec<ContainerSummary>> = HashMap::new();
        let mut warm_found: Vec<ContainerSummary> = Vec::new();
        for c in found {
            if let Some(arn) = c.labels.get(labels::TASK_ARN) {
                by_task.entry(arn.clone()).or_default().push(c);
            } else if c.labels.contains_key(labels::WARM_ADDRESS) {
                // A warm pause container: a task's if a saved task adopted it (its labels
                // are fixed at creation), else still warm.
                match saved
                    .iter()
                    .find(|p| p.pause_id.as_deref() == Some(c.id.as_str()))
                {
                    Some(p) => by_task
                        .entry(p.assignment.task_arn.clone())
                        .or_default()
                        .push(c),
                    None => warm_found.push(c),
                }
            }
        }
        let (warm, warm_rx) = match cfg.warm_pool_size {
            Some(size) => {
                let held = saved
                    .iter()
                    .filter(|p| !p.deprovisioned)
                    .filter_map(|p| p.assignment.network.as_ref())
                    .map(|n| n.private_ipv4_address.clone())
                    .collect();
                let (pool, rx) = warm::WarmPool::new(size, warm_found, held);
                (Some(pool), Some(rx))
            }
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            warm,
            endpoint,
            credentials: credentials_tx,
            logs,
            identity: Identity {
                instance_id: cfg.instance_id.clone(),
                cluster: cfg.cluster.clone(),
                managed: cfg.managed,
            },
            cgroups,
            clock: EpochClock::start(),
            provisioning: tokio::sync::Mutex::new(()),
            pulled: Mutex::new(data.pulled_images()?),
            runtime,
            data,
            // Seq grows across restarts: it starts at the clock in microseconds.
            seq: AtomicU64::new(micros),
            reports: tx,
            secrets: secrets_tx,
            tasks: TaskRegistry::default(),
            cpu_prev: Mutex::new(HashMap::new()),
            cfg,
        });
        for p in saved {
            let found = by_task.remove(&p.assignment.task_arn).unwrap_or_default();
            info!(task = %p.assignment.task_arn, containers = found.len(), "resuming task");
            spawn_owner(&inner, p, found);
        }
        for (arn, cs) in by_task {
            warn!(task = %arn, "containers without saved task state; waiting for the server");
            inner.tasks.add_orphans(arn, cs);
        }
        Ok((
            Engine {
                inner,
                secret_requests: Mutex::new(Some(secrets_rx)),
                credential_requests: Mutex::new(Some(credentials_rx)),
                warm_requests: Mutex::new(warm_rx),
            },
            rx,
        ))
    }

    /// A managed-pool host's warm pool size, to ask the server for when the session opens
    /// (`None`: no warm pool).
    pub fn warm_pool_size(&self) -> Option<u32> {
        self.inner.warm.as_ref().map(|w| w.size())
    }

    /// The warm pool's refill requests (the size to ask for), for the session to send (once:
    /// later calls get `None`).
    pub fn warm_requests(&self) -> Option<mpsc::UnboundedReceiver<u32>> {
        lock(&self.warm_requests).take()
    }

    /// The task networks the server reserved for this host (`ServerMessage::WarmNetworks`):
    /// their pause containers are made, and those of addresses no longer listed removed, in
    /// the background.
    pub fn set_warm_networks(&self, networks: Vec<flotilla_protocol::TaskNetwork>) {
        warm::WarmPool::set_listed(&self.inner, networks);
    }

    /// The owners' requests for secrets, for the session to answer (once: later calls get
    /// `None`).
    pub fn secret_requests(&self) -> Option<mpsc::UnboundedReceiver<SecretsRequest>> {
        lock(&self.secret_requests).take()
    }

    /// The owners' requests for their task roles' credentials, for the session to answer
    /// (once: later calls get `None`).
    pub fn credential_requests(&self) -> Option<mpsc::UnboundedReceiver<CredentialsRequest>> {
        lock(&self.credential_requests).take()
    }

    /// The task metadata and credentials endpoint, when served.
    pub fn task_endpoint(&self) -> Option<Arc<crate::metadata::TaskEndpoint>> {
        self.inner.endpoint.clone()
    }

    /// Applies desired state from the server. With `full`, a running task that is not listed
    /// is stopped (the control plane forgot or stopped it).
    pub fn assign(&self, tasks: Vec<TaskAssignment>, full: bool) {
        let listed: Vec<String> = tasks.iter().map(|t| t.task_arn.clone()).collect();
        for a in tasks {
            self.assign_one(a);
        }
        if full {
            let reason = "Task is no longer assigned to this container instance";
            for arn in self.inner.tasks.stop_unlisted(&listed, reason) {
                info!(task = %arn, "not in the server's task list; stopping");
            }
            for (arn, cs) in self.inner.tasks.unlisted_orphans(&listed) {
                info!(task = %arn, "orphan containers not assigned; stopping them");
                self.assign_one(orphan_assignment(&arn, &cs));
            }
        }
    }

    fn assign_one(&self, a: TaskAssignment) {
        let (a, found) = match self.inner.tasks.route(a) {
            Route::Done(report) => {
                debug!(task = %report.task_arn, "assignment for a task already cleaned up; re-reporting");
                let _ = self.inner.reports.send(*report);
                return;
            }
            Route::Delivered => return,
            Route::New(a, found) => (*a, found),
        };
        let arn = a.task_arn.clone();
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
            log_streams: BTreeMap::new(),
            endpoint: Default::default(),
        };
        if let Err(e) = self.inner.data.save_task(&p) {
            warn!(task = %arn, error = %e, "cannot save the assignment");
        }
        spawn_owner(&self.inner, p, found);
    }

    /// The latest report of every task the engine knows (to re-send after a reconnect).
    pub fn current_reports(&self) -> Vec<TaskStateReport> {
        self.inner.tasks.latest_reports()
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

    /// The host's logs (the session serves the server's reads from them).
    pub fn logs(&self) -> Arc<crate::logs::LogsHub> {
        self.inner.logs.clone()
    }

    /// The container runtime (ECS Exec runs commands through it).
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.inner.runtime.clone()
    }

    /// Where ECS Exec runs a command: the runtime id of the running container `container` of
    /// task `task_arn`, when this engine runs that task with `enableExecuteCommand`; else why
    /// not (the message goes to the client).
    pub fn exec_target(&self, task_arn: &str, container: &str) -> Result<String, String> {
        let Some((exec_enabled, latest)) = self.inner.tasks.view(task_arn) else {
            return Err(format!(
                "The task {task_arn} does not run on this container instance."
            ));
        };
        if !exec_enabled {
            return Err(format!(
                "The task {task_arn} was not run with enableExecuteCommand."
            ));
        }
        let found = latest
            .iter()
            .flat_map(|r| r.containers.iter())
            .find(|c| c.name == container);
        match found {
            Some(c) if c.last_status == flotilla_model::status::ContainerStatus::Running => c
                .runtime_id
                .clone()
                .ok_or_else(|| format!("The container {container} has no runtime id yet.")),
            Some(c) => Err(format!(
                "The container {container} is not running (it is {}).",
                c.last_status.as_ecs_str()
            )),
            None => Err(format!("The task {task_arn} has no container {container}.")),
        }
    }

    /// The ARNs of the tasks the engine currently owns.
    pub fn task_arns(&self) -> Vec<String> {
        self.inner.tasks.arns()
    }
}
