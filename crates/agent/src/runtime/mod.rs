//! The container runtime behind a trait: what the task engine asks of Docker.
//!
//! What this is: [`Runtime`], the operations the engine needs (pull, inspect image, create,
//! start, stop with timeout, kill, inspect, wait, list by label, remove, rename, stats, volumes, version
//! and host info, networks, image import, and ECS Exec's: create an exec, start it attached,
//! resize its terminal, inspect it for its exit code), the runtime-neutral types they take and return ([`ContainerSpec`],
//! [`ContainerInfo`]...), and [`RuntimeError`], whose variants carry the name ECS shows for them
//! (`CannotPullContainerError`...).
//!
//! What this is not: Docker itself ([`crate::docker::DockerRuntime`] implements the trait, and
//! [`memory::MemoryRuntime`] is its in-memory model) and not a policy: it never decides to pull, retry or restart.
//!
//! Invariant: every container the agent creates carries the labels of
//! [`flotilla_protocol::labels`], so [`Runtime::list`] can find it again after a restart.

pub mod memory;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

/// An error from the runtime. Its `Display` is the name ECS shows for it, then what went wrong
/// ([`RuntimeError::ecs_name`], [`RuntimeError::detail`]), so it can go straight into a
/// container's `reason`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", self.ecs_name(), self.detail())]
pub enum RuntimeError {
    /// The image could not be pulled.
    Pull {
        /// The image reference.
        image: String,
        /// What the registry or engine said.
        message: String,
    },
    /// The container could not be created.
    Create(String),
    /// The container could not be started.
    Start(String),
    /// The container could not be stopped.
    Stop(String),
    /// The container or image does not exist.
    NotFound(String),
    /// A container with that name exists already.
    Conflict(String),
    /// Anything else the engine said.
    Other(String),
}

impl RuntimeError {
    /// The ECS-visible error name (`CannotPullContainerError`...).
    pub fn ecs_name(&self) -> &'static str {
        match self {
            RuntimeError::Pull { .. } => "CannotPullContainerError",
            RuntimeError::Create(_) | RuntimeError::Conflict(_) => "CannotCreateContainerError",
            RuntimeError::Start(_) => "CannotStartContainerError",
            RuntimeError::Stop(_) => "CannotStopContainerError",
            RuntimeError::NotFound(_) => "CannotInspectContainerError",
            RuntimeError::Other(_) => "DockerError",
        }
    }

    /// What went wrong, without the ECS name.
    pub fn detail(&self) -> String {
        match self {
            RuntimeError::Pull { image, message } => format!("pull image {image}: {message}"),
            RuntimeError::NotFound(m) => format!("no such object: {m}"),
            RuntimeError::Conflict(m) => format!("name conflict: {m}"),
            RuntimeError::Create(m)
            | RuntimeError::Start(m)
            | RuntimeError::Stop(m)
            | RuntimeError::Other(m) => m.clone(),
        }
    }
}

/// Registry credentials for a pull.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
    /// An identity token (a credential helper's secret for the user `<token>`), sent instead
    /// of a user name and password.
    pub identity_token: Option<String>,
    /// The registry host the credentials are for.
    pub server: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password or the token.
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server", &self.server)
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Port in the container.
    pub container_port: u16,
    /// Host port; `None` lets the engine choose.
    pub host_port: Option<u16>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A Docker health check; durations in seconds as ECS gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// `["CMD-SHELL", "..."]` or `["CMD", ...]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_s: u32,
    /// Seconds before a check times out.
    pub timeout_s: u32,
    /// Failures before unhealthy.
    pub retries: u32,
    /// Grace period, seconds.
    pub start_period_s: u32,
}

/// A ulimit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UlimitSpec {
    /// Name (`nofile`...).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// A device mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Path on the host.
    pub host_path: String,
    /// Path in the container.
    pub container_path: String,
    /// `rwm` subset.
    pub permissions: String,
}

/// Everything needed to create one container; runtime-neutral.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    /// Container name (deterministic, so a retried create finds what an earlier one made).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Labels (Flotilla's and `dockerLabels`).
    pub labels: BTreeMap<String, String>,
    /// `bridge`, `host` or `none`.
    pub network_mode: String,
    /// Published ports (bridge mode).
    pub ports: Vec<PortSpec>,
    /// Ports exposed without publishing (host mode informational).
    pub exposed_ports: Vec<PortSpec>,
    /// CPU shares.
    pub cpu_shares: Option<i64>,
    /// Hard memory limit, bytes.
    pub memory_bytes: Option<i64>,
    /// Soft memory reservation, bytes.
    pub memory_reservation_bytes: Option<i64>,
    /// Memory + swap, bytes.
    pub memory_swap_bytes: Option<i64>,
    /// Swappiness.
    pub memory_swappiness: Option<i64>,
    /// Ulimits.
    pub ulimits: Vec<UlimitSpec>,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Run an init process.
    pub init: bool,
    /// tmpfs mounts: path -> options.
    pub tmpfs: BTreeMap<String, String>,
    /// /dev/shm size, bytes.
    pub shm_size_bytes: Option<i64>,
    /// Devices.
    pub devices: Vec<DeviceSpec>,
    /// Binds: `source:target[:ro]` (host paths or volume names).
    pub binds: Vec<String>,
    /// `container[:ro]`.
    pub volumes_from: Vec<String>,
    /// `container:alias`.
    pub links: Vec<String>,
    /// `host:ip`.
    pub extra_hosts: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// Read-only root filesystem.
    pub readonly_rootfs: bool,
    /// Privileged.
    pub privileged: bool,
    /// Disable networking.
    pub network_disabled: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Allocate a TTY.
    pub tty: bool,
    /// Security options.
    pub security_opt: Vec<String>,
    /// Sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Health check.
    pub health_check: Option<HealthCheckSpec>,
    /// Log driver and options.
    pub log_driver: Option<(String, BTreeMap<String, String>)>,
    /// PID namespace mode.
    pub pid_mode: Option<flotilla_model::shapes::PidMode>,
    /// IPC namespace mode.
    pub ipc_mode: Option<flotilla_model::shapes::IpcMode>,
    /// Stop timeout (seconds) recorded on the container.
    pub stop_timeout_s: Option<i64>,
    /// The parent cgroup (a task's cgroup, so its containers share the task's limits).
    pub cgroup_parent: Option<String>,
    /// A fixed IPv4 address on the network named by `network_mode` (awsvpc pause container).
    pub ipv4_address: Option<String>,
    /// A fixed MAC address on that network.
    pub mac_address: Option<String>,
}

/// A Docker network the agent manages (the awsvpc task network).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Network name.
    pub name: String,
    /// IPv4 subnet (CIDR).
    pub subnet: String,
    /// Gateway address.
    pub gateway: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// What inspecting a network tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Engine id.
    pub id: String,
    /// Driver (`bridge`...).
    pub driver: String,
    /// The IPAM subnets (CIDRs).
    pub subnets: Vec<String>,
    /// The IPAM gateways.
    pub gateways: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A volume to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeSpec {
    /// Name.
    pub name: String,
    /// Driver (`local` when unset).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A signal the engine sends to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `SIGTERM`: asks the container to stop.
    Term,
    /// `SIGKILL`: ends it at once (exit code 137).
    Kill,
}

impl Signal {
    /// The name Docker's kill endpoint takes (`SIGTERM`, `SIGKILL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }

    /// The exit code of a process this signal ended (128 + the signal number), as Docker
    /// reports it.
    pub fn exit_code(self) -> i64 {
        match self {
            Signal::Term => 143,
            Signal::Kill => 137,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runtime-neutral health of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No health check.
    None,
    /// In the start period / not decided.
    Starting,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
}

/// A host port binding read back from the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Host IP.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// What inspecting a container tells.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Engine id.
    pub id: String,
    /// Name (without a leading `/`).
    pub name: String,
    /// Whether it runs.
    pub running: bool,
    /// Created but never started.
    pub created_only: bool,
    /// Exit code, meaningful once exited.
    pub exit_code: i64,
    /// Killed by the kernel for memory.
    pub oom_killed: bool,
    /// Error the engine recorded (e.g. a start failure).
    pub error: Option<String>,
    /// RFC 3339 start time, as the engine gives it.
    pub started_at: Option<String>,
    /// RFC 3339 finish time.
    pub finished_at: Option<String>,
    /// Health.
    pub health: Health,
    /// Port bindings.
    pub bindings: Vec<Binding>,
    /// The image id it runs.
    pub image_id: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its IPv4 address on its network (a bridge container, while it runs).
    pub ip_address: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: Option<String>,
}

/// A container found by [`Runtime::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSummary {
    /// Engine id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// What inspecting an image tells.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// Image id.
    pub id: String,
    /// A repo digest (`name@sha256:...`), when the image came from a registry.
    pub digest: Option<String>,
}

/// One-shot usage of a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerStats {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use (without page cache), bytes.
    pub memory_bytes: u64,
}

/// Engine version and host facts.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeVersion {
    /// The engine version, e.g. `20.10.24`.
    pub version: String,
    /// The highest API version the engine speaks, e.g. `1.41`.
    pub api_version: String,
    /// CPUs.
    pub ncpu: u32,
    /// Host memory, bytes.
    pub mem_total_bytes: u64,
    /// Architecture as the engine says it (`x86_64`, `aarch64`).
    pub architecture: String,
    /// The engine's cgroup driver (`cgroupfs`, `systemd`; empty when unknown).
    pub cgroup_driver: String,
    /// The engine's cgroup version (`1`, `2`; empty when unknown).
    pub cgroup_version: String,
}

/// Which output of a container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (and a TTY's output).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One piece of a container's output as the engine recorded it: a line with its newline, or
/// a part of a long line (the engine splits lines over 16 KiB; the last part has the newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// When the engine received it, nanoseconds since the epoch.
    pub ns: i64,
    /// Which output.
    pub stream: OutputStream,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A container's output, followed.
pub type OutputStreamOf = futures::stream::BoxStream<'static, Result<OutputLine, RuntimeError>>;

/// A command to run in a running container ([`Runtime::exec_create`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Allocate a pseudo-terminal: the output is one stream (as [`OutputStream::Stdout`]).
    pub tty: bool,
    /// Attach its stdin (without it the command reads end of file).
    pub stdin: bool,
}

/// An exec started attached ([`Runtime::exec_start`]): its output as the engine sends it,
/// and its stdin (shut down to send end of file).
pub struct ExecStreams {
    /// Stdout and stderr pieces, in order (one stream, as stdout, with a terminal); ends when
    /// the command ends.
    pub output: futures::stream::BoxStream<'static, Result<(OutputStream, Vec<u8>), RuntimeError>>,
    /// The command's stdin.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStreams").finish_non_exhaustive()
    }
}

/// What inspecting an exec tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecState {
    /// Whether the command still runs.
    pub running: bool,
    /// Its exit code, once it ended.
    pub exit_code: Option<i64>,
}

/// The container runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Engine version and host facts.
    async fn version(&self) -> Result<RuntimeVersion, RuntimeError>;
    /// Inspects an image; `Ok(None)` when absent.
    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>, RuntimeError>;
    /// Pulls an image.
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<(), RuntimeError>;
    /// Removes an image (not forced).
    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError>;
    /// Whether any container (of anyone) uses the image.
    async fn image_in_use(&self, image: &str) -> Result<bool, RuntimeError>;
    /// Creates a volume (idempotent).
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), RuntimeError>;
    /// Removes a volume; absent is fine.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;
    /// Creates a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    /// Starts a container.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Stops a container: SIGTERM (or its stop signal), SIGKILL after `timeout`.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    /// Sends a signal; [`RuntimeError::Conflict`] when the container is not running.
    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError>;
    /// Inspects a container (by id or name).
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;
    /// A fingerprint of what [`Runtime::inspect`] would tell of container `id` now, when the
    /// runtime can give it without a round trip to an engine: two equal fingerprints of a
    /// container mean inspect would tell the same, so a caller that read one before its last
    /// inspect and reads it again unchanged need not inspect again. `None` (the default, and
    /// Docker's): it cannot tell, and the caller inspects.
    fn state_token(&self, id: &str) -> Option<u64> {
        let _ = id;
        None
    }
    /// Waits until the container is not running; returns its exit code.
    async fn wait(&self, id: &str) -> Result<i64, RuntimeError>;
    /// Lists every container (running or not) carrying `label=value`.
    async fn list(&self, label: &str, value: &str) -> Result<Vec<ContainerSummary>, RuntimeError>;
    /// Removes a container (and its anonymous volumes); absent is fine.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Gives a container (by id or name) a new name, running or not; [`RuntimeError::Conflict`]
    /// when another container has that name, [`RuntimeError::NotFound`] when it does not exist.
    async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError>;
    /// One-shot usage.
    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError>;
    /// One-shot stats as the engine's API gives them (Docker's stats document: `read`,
    /// `cpu_stats`, `memory_stats`, `networks`, ...), for the task metadata endpoint.
    async fn stats_document(&self, id: &str) -> Result<serde_json::Value, RuntimeError>;
    /// Inspects a network; `Ok(None)` when absent.
    async fn inspect_network(&self, name: &str) -> Result<Option<NetworkInfo>, RuntimeError>;
    /// Creates a network; [`RuntimeError::Conflict`] when one of that name exists.
    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), RuntimeError>;
    /// Follows a container's output (stdout and stderr in the order the engine recorded them,
    /// with its timestamps) from `since_s` (whole seconds since the epoch) until the container
    /// stops; an ended stream of a running container was cut and may be followed again.
    async fn follow_output(&self, id: &str, since_s: i64) -> Result<OutputStreamOf, RuntimeError>;
    /// Creates an exec of `spec` in the running container `id`; returns the exec's id.
    /// [`RuntimeError::Conflict`] when the container is not running, [`RuntimeError::NotFound`]
    /// when it does not exist.
    async fn exec_create(&self, id: &str, spec: &ExecSpec) -> Result<String, RuntimeError>;
    /// Starts an exec, attached: its output and its stdin.
    async fn exec_start(&self, exec_id: &str) -> Result<ExecStreams, RuntimeError>;
    /// Sets the size of an exec's terminal (an exec without one: an error).
    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<(), RuntimeError>;
    /// Inspects an exec: whether it runs, and its exit code once it ended.
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState, RuntimeError>;
    /// Imports an image from a root filesystem tar (Docker's "create image from source"),
    /// tagged `repo:tag`, with Dockerfile `changes` (`CMD [...]`).
    async fn import_image(
        &self,
        rootfs_tar: Vec<u8>,
        repo: &str,
        tag: &str,
        changes: &[String],
    ) -> Result<(), RuntimeError>;
}
