//! The harness the Docker test files (`engine.rs`, `awsvpc.rs`, and `crates/cli/tests/agent_server.rs` through `#[path]`) share: an engine
//! started on a real `DockerRuntime` with a temporary data directory, the reports it sends,
//! builders for containers, task assignments and their stop, the `docker` CLI, an HTTP probe,
//! and a guard that removes what a test left in Docker, also when the test fails.
//!
//! `MemoryHarness` is the same on the in-memory runtime (the decision tests on paused time).
//!
//! Each test file compiles its own copy (`mod common;`) and uses only a part of it.

#![allow(dead_code)]

use flotilla_agent::docker::DockerRuntime;
use flotilla_agent::engine::{Engine, EngineConfig};
use flotilla_agent::runtime::memory::MemoryRuntime;
use flotilla_agent::runtime::Runtime;
use flotilla_model::shapes::{
    ContainerCondition, ContainerDefinition, ContainerDependency, HealthCheck, LinuxParameters,
    NetworkMode, TaskStopCode,
};
use flotilla_model::status::TaskStatus;
use flotilla_protocol::{
    labels, ContainerAssignment, ContainerStateReport, DesiredStatus, TaskAssignment,
    TaskStateReport,
};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

pub const IMAGE: &str = "flotilla/busybox:latest";

/// Logs of the agent (`RUST_LOG`, else `flotilla_agent=info`) go to the test's output.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "flotilla_agent=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs the `docker` CLI; its standard output, trimmed, or `None` when it cannot run.
pub fn try_docker(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the `docker` CLI and returns its standard output, trimmed.
pub fn docker(args: &[&str]) -> String {
    try_docker(args).expect("the docker CLI runs")
}

/// `docker inspect --format <format> <id>`.
pub fn docker_inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, id])
}

/// Removes, when dropped, every container and volume with a label, then a Docker network if
/// one is named. Never panics: it may run while a failed test unwinds.
pub struct Cleanup {
    filter: String,
    network: Option<String>,
}

impl Cleanup {
    /// What an engine with this instance id created.
    pub fn instance(instance: &str) -> Self {
        Self::label(labels::INSTANCE, instance)
    }

    /// What the agents of a cluster created.
    pub fn cluster(cluster: &str) -> Self {
        Self::label(labels::CLUSTER, cluster)
    }

    fn label(label: &str, value: &str) -> Self {
        Cleanup {
            filter: format!("label={label}={value}"),
            network: None,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (list, rm) in [
            (&["ps", "-aq"][..], &["rm", "-f", "-v"][..]),
            (&["volume", "ls", "-q"][..], &["volume", "rm", "-f"][..]),
        ] {
            let mut args = list.to_vec();
            args.extend(["--filter", &self.filter]);
            let ids = try_docker(&args).unwrap_or_default();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = rm.to_vec();
                args.extend(ids);
                try_docker(&args);
            }
        }
        if let Some(network) = &self.network {
            try_docker(&["network", "rm", network]);
        }
    }
}

/// One engine's surroundings: a runtime (Docker unless said otherwise), an instance id of its
/// own and a data directory. On Docker (`Harness::new`, instance `<prefix>-<pid>-<name>`) what
/// the instance leaves is removed when it is dropped; on the in-memory runtime
/// (`Harness::memory`, with `IMAGE` present) nothing outlives the test. Starting a second engine
/// on the same harness is an agent restart.
pub struct Harness<R: Runtime = DockerRuntime> {
    pub runtime: Arc<R>,
    pub instance: String,
    pub dir: tempfile::TempDir,
    cleanup: Option<Cleanup>,
}

/// A harness on the in-memory runtime: for the decision tests on paused time.
pub type MemoryHarness = Harness<MemoryRuntime>;

/// The Docker engine at /var/run/docker.sock, with `IMAGE`; fails loudly without them.
pub async fn docker_runtime() -> DockerRuntime {
    init_tracing();
    let runtime = DockerRuntime::connect("/var/run/docker.sock")
        .await
        .expect("these tests need Docker at /var/run/docker.sock");
    assert!(
        runtime.inspect_image(IMAGE).await.unwrap().is_some(),
        "these tests need {IMAGE}: run scripts/images"
    );
    runtime
}

impl Harness {
    pub async fn new(prefix: &str, name: &str) -> Self {
        let runtime = docker_runtime().await;
        let instance = format!("{prefix}-{}-{name}", std::process::id());
        Harness {
            runtime: Arc::new(runtime),
            cleanup: Some(Cleanup::instance(&instance)),
            instance,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Also removes this Docker network when dropped (after the containers).
    pub fn removing_network(mut self, network: &str) -> Self {
        if let Some(cleanup) = &mut self.cleanup {
            cleanup.network = Some(network.to_string());
        }
        self
    }
}

impl MemoryHarness {
    pub fn memory(name: &str) -> Self {
        init_tracing();
        let runtime = MemoryRuntime::new();
        runtime.add_image(IMAGE);
        Harness {
            runtime: Arc::new(runtime),
            instance: format!("mem-{name}"),
            dir: tempfile::tempdir().unwrap(),
            cleanup: None,
        }
    }
}

impl<R: Runtime> Harness<R> {
    pub fn config(&self) -> EngineConfig {
        let mut c = EngineConfig::new(&self.instance, "test", self.dir.path());
        c.poll_interval = Duration::from_millis(100);
        c
    }

    pub async fn engine(&self) -> (Engine, Reports) {
        self.engine_with(self.config()).await
    }

    pub async fn engine_with(&self, cfg: EngineConfig) -> (Engine, Reports) {
        let (e, rx) = Engine::start(self.runtime.clone(), cfg).await.unwrap();
        (e, Reports { rx, all: vec![] })
    }
}

/// The reports an engine sent, in order.
pub struct Reports {
    pub rx: UnboundedReceiver<TaskStateReport>,
    pub all: Vec<TaskStateReport>,
}

impl Reports {
    /// Waits (up to `secs`) until the latest report of `task` satisfies `f`.
    pub async fn until(
        &mut self,
        task: &str,
        secs: u64,
        f: impl Fn(&TaskStateReport) -> bool,
    ) -> TaskStateReport {
        if let Some(r) = self.all.iter().rev().find(|r| r.task_arn == task) {
            if f(r) {
                return r.clone();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(r)) => {
                    self.all.push(r.clone());
                    if r.task_arn == task && f(&r) {
                        return r;
                    }
                }
                Ok(None) => panic!("report channel closed"),
                Err(_) => panic!(
                    "no matching report for {task} within {secs}s; last: {:#?}",
                    self.all.iter().rev().find(|r| r.task_arn == task)
                ),
            }
        }
    }

    /// The reports of `task` so far.
    pub fn of(&self, task: &str) -> Vec<&TaskStateReport> {
        self.all.iter().filter(|r| r.task_arn == task).collect()
    }

    /// The statuses `task` reported so far, each once in a row.
    pub fn statuses(&self, task: &str) -> Vec<TaskStatus> {
        let mut s: Vec<TaskStatus> = self.of(task).iter().map(|r| r.last_status).collect();
        s.dedup();
        s
    }
}

/// An essential container of `IMAGE` running `command`.
pub fn container(name: &str, command: &[&str]) -> ContainerDefinition {
    ContainerDefinition {
        name: Some(name.into()),
        image: Some(IMAGE.into()),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        // tini forwards SIGTERM, so stops are quick.
        linux_parameters: Some(LinuxParameters {
            init_process_enabled: Some(true),
            ..Default::default()
        }),
        stop_timeout: Some(5),
        ..Default::default()
    }
}

/// A bridge task `id` to run, version 1.
pub fn task(id: &str, defs: Vec<ContainerDefinition>) -> TaskAssignment {
    TaskAssignment {
        task_arn: format!("arn:aws:ecs:us-east-1:000000000000:task/test/{id}"),
        cluster_arn: "arn:aws:ecs:us-east-1:000000000000:cluster/test".into(),
        task_definition_arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/t:1".into(),
        version: 1,
        desired_status: DesiredStatus::Running,
        stop_reason: None,
        stop_code: None,
        network_mode: NetworkMode::Bridge,
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
        containers: defs
            .into_iter()
            .map(|d| ContainerAssignment {
                container_arn: format!("arn:aws:ecs:us-east-1:000000000000:container/test/{id}/x"),
                definition: d,
            })
            .collect(),
    }
}

/// A dependency on `name` reaching `condition`.
pub fn dep(name: &str, condition: ContainerCondition) -> ContainerDependency {
    ContainerDependency {
        container_name: name.into(),
        condition,
    }
}

/// The `dependsOn` scenario both engines run: `init` (non-essential, running `init_command`,
/// which exits 0); `after-success` and `after-complete` waiting for it; `checked` with the
/// health check `check`; `after-healthy` waiting for `checked` HEALTHY and `after-success`
/// START.
pub fn dependency_chain(id: &str, init_command: &[&str], check: HealthCheck) -> TaskAssignment {
    let mut init = container("init", init_command);
    init.essential = Some(false);
    let mut after_success = container("after-success", &["sleep", "300"]);
    after_success.depends_on = Some(vec![dep("init", ContainerCondition::Success)]);
    let mut after_complete = container("after-complete", &["sleep", "300"]);
    after_complete.depends_on = Some(vec![dep("init", ContainerCondition::Complete)]);
    let mut checked = container("checked", &["sleep", "300"]);
    checked.health_check = Some(check);
    let mut after_healthy = container("after-healthy", &["sleep", "300"]);
    after_healthy.depends_on = Some(vec![
        dep("checked", ContainerCondition::Healthy),
        dep("after-success", ContainerCondition::Start),
    ]);
    task(
        id,
        vec![after_healthy, after_complete, after_success, checked, init],
    )
}

/// The essential-exit scenario both engines run: an essential `main` running `main_command`
/// (which exits 3) and a non-essential `side` that runs until it is stopped.
pub fn essential_exit_task(id: &str, main_command: &[&str]) -> TaskAssignment {
    let main = container("main", main_command);
    let mut side = container("side", &["sleep", "300"]);
    side.essential = Some(false);
    task(id, vec![main, side])
}

/// What the STOPPED report of [`essential_exit_task`] says: ECS's stop code and reason, both
/// exit codes (`side` ended by SIGTERM), and that the task was RUNNING before.
pub fn assert_essential_exit(stopped: &TaskStateReport, reports: &Reports) {
    assert_eq!(
        stopped.stop_code,
        Some(TaskStopCode::EssentialContainerExited)
    );
    assert_eq!(
        stopped.stopped_reason.as_deref(),
        Some("Essential container in task exited")
    );
    assert_eq!(ctr(stopped, "main").exit_code, Some(3));
    assert_eq!(ctr(stopped, "side").exit_code, Some(143));
    assert!(reports
        .statuses(&stopped.task_arn)
        .contains(&TaskStatus::Running));
}

/// What the STOPPED report of a task whose essential container `name` was killed for memory
/// says: exit code 137, `OutOfMemoryError`, and the essential exit's stop code.
pub fn assert_oom_killed(stopped: &TaskStateReport, name: &str) {
    let c = ctr(stopped, name);
    assert_eq!(c.exit_code, Some(137));
    assert_eq!(
        c.reason.as_deref(),
        Some("OutOfMemoryError: Container killed due to memory usage")
    );
    assert_eq!(
        stopped.stop_code,
        Some(TaskStopCode::EssentialContainerExited)
    );
}

/// The next version of `a`, stopped by the user.
pub fn stop(mut a: TaskAssignment) -> TaskAssignment {
    a.version += 1;
    a.desired_status = DesiredStatus::Stopped;
    a.stop_code = Some(TaskStopCode::UserInitiated);
    a.stop_reason = Some("stopped by test".into());
    a
}

/// The report of container `name`; panics if there is none.
pub fn ctr<'a>(r: &'a TaskStateReport, name: &str) -> &'a ContainerStateReport {
    r.containers.iter().find(|c| c.name == name).unwrap()
}

/// `GET /` over HTTP/1.0 at `ip:port`: the whole answer, or what came of it within 5 s.
pub fn http_get(ip: &str, port: u16) -> String {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
