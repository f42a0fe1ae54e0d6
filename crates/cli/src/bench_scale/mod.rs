//! `flotilla bench scale`: how the control plane behaves with thousands of hosts.
//!
//! What it does: starts a real server (this binary's `flotilla server`, as a child process, on a
//! fresh temporary data directory: the embedded store, or etcd with `--store etcd`), then runs
//! `--instances` *hollow agents* in this one process, as Kubernetes' kubemark runs hollow
//! nodes: each is the real agent ([`flotilla_agent::run_on`]: registration, the SigV4-signed
//! WebSocket session, the task engine and its owners) on a simulated host
//! ([`MemoryRuntime::simulated`]: containers in memory, each start taking `--start-latency-ms`
//! and failing with probability `--failure-rate`, seeded). They share this process's one tokio
//! runtime and one HTTP connection pool: an agent is a handful of tokio tasks, not a thread.
//! Then it measures, through the ECS API:
//! 1. launch: `--tasks` tasks by RunTask calls of up to ten, `--concurrency` in flight, while
//!    DescribeTasks (100 tasks) and ListTasks (a page of 100) are timed beside them; placements
//!    per second, RUNNING per second end to end (DescribeClusters' counts), p50/p99 of the
//!    three operations;
//! 2. services (`--services`, each of `--service-tasks`): from CreateService to steady state,
//!    and from UpdateService (a new task definition revision) to steady state again;
//! 3. lost hosts (`--lost-hosts`): the hollow agents running the most service tasks are
//!    stopped at once (their sockets close); the time until the server shows them
//!    disconnected, and until every service again has all its tasks RUNNING on live hosts;
//! 4. the server's RSS (now and peak), this process's, and the store's size.
//!
//! It prints progress on stderr while it runs and the figures on stdout ([`report::table`], or
//! the [`report::Report`] as JSON with `--output json`).
//!
//! What it is not: a test of timing (nothing here asserts a figure) or a load generator for the
//! API alone: the server also carries every agent's session, heartbeats and reports.

pub mod report;

use crate::client::EcsClient;
use crate::verbs::Output;
use anyhow::{anyhow, bail, Context};
use flotilla_agent::runtime::memory::{MemoryRuntime, Simulation};
use flotilla_agent::{AgentConfig, Credentials};
use futures::StreamExt;
use report::{Latencies, LostHostsFigures, Report, ServicesFigures};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `flotilla bench ...`.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Run a real server and thousands of hollow agents (simulated hosts speaking the real
    /// session protocol) in this process, launch tasks and services, and measure placements
    /// and RUNNING per second, API latencies under that load, service steady state and
    /// rollout, lost-host replacement, server RSS and store size.
    ///
    /// Example: `flotilla bench scale --instances 1000 --tasks 100000 --services 1
    /// --service-tasks 1000`; `--store etcd --etcd-endpoints 127.0.0.1:2379` against etcd.
    Scale(ScaleArgs),
}

/// Which store the server under test uses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite store in a temporary data directory.
    Embedded,
    /// etcd at --etcd-endpoints, under a fresh prefix.
    Etcd,
}

/// Flags of `flotilla bench scale`.
#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Hollow agents (simulated container instances) to run.
    #[arg(long, default_value_t = 100)]
    pub instances: u64,
    /// Tasks to launch with RunTask.
    #[arg(long, default_value_t = 1000)]
    pub tasks: u64,
    /// Services to create after the launch (0: no services and no lost-host phase).
    #[arg(long, default_value_t = 1)]
    pub services: u64,
    /// Desired tasks of each service [default: a tenth of --tasks, at least 1, at most 10000].
    #[arg(long)]
    pub service_tasks: Option<u64>,
    /// Hosts to stop for the lost-host phase (at most half the instances; 0: skip it).
    #[arg(long, default_value_t = 100)]
    pub lost_hosts: u64,
    /// The server's store.
    #[arg(long, value_enum, default_value = "embedded")]
    pub store: StoreKind,
    /// etcd's client URLs (HOST:PORT, separated by commas) for --store etcd.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// How long each simulated container start takes, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub start_latency_ms: u64,
    /// The probability (0 to 1) that a simulated container start fails.
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
    /// The seed of the simulated failures (each host draws from seed + its index).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// RunTask calls in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How often each hollow agent's task owners look at their containers, seconds (four
    /// times less often once a task is steadily RUNNING).
    #[arg(long, default_value_t = 1.0)]
    pub poll_seconds: f64,
    /// The server's agent heartbeat interval, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub heartbeat_seconds: f64,
    /// Give up a phase that makes no progress for this long, seconds.
    #[arg(long, default_value_t = 300)]
    pub stall_seconds: u64,
    /// Where the server's data and the agents' directories go [default: a new directory in
    /// /dev/shm when it exists, else the system's temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory (and the server's log in it) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    pub output: Output,
}

/// Runs `flotilla bench ...`.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scale(args) => {
            let output = args.output;
            let report = scale(args).await?;
            match output {
                Output::Table => print!("{}", report::table(&report)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(())
        }
    }
}

const CLUSTER: &str = "bench";
const IMAGE: &str = "public.ecr.aws/docker/library/busybox:latest";
const REGION: &str = "us-east-1";

/// Progress on stderr, with the time since the run began.
struct Progress(Instant);

impl Progress {
    fn say(&self, what: impl std::fmt::Display) {
        eprintln!("[{:>7.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// The server under test: a child process.
struct Server {
    child: tokio::process::Child,
    url: String,
    data_dir: PathBuf,
}

impl Server {
    async fn start(args: &ScaleArgs, work: &Path, creds: &Credentials) -> anyhow::Result<Server> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let data_dir = work.join("server");
        std::fs::create_dir_all(&data_dir)?;
        let exe = std::env::current_exe().context("the path of this binary")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("server")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--region")
            .arg(REGION)
            .arg("--heartbeat-seconds")
            .arg(args.heartbeat_seconds.to_string())
            .arg("--no-lb")
            // The bench measures the control plane's capacity: with ECS's per-key rates (RunTask
            // 40 calls/s sustained, all hollow agents on one key) the rate limiter would be
            // what it measured.
            .arg("--no-throttle");
        if args.store == StoreKind::Etcd {
            if args.etcd_endpoints.is_empty() {
                bail!("--store etcd needs --etcd-endpoints HOST:PORT[,HOST:PORT...]");
            }
            let prefix = format!("flotilla-bench-{}", uuid_like());
            let key = work.join("secrets.key");
            write_secrets_key(&key)?;
            cmd.arg("--store")
                .arg(format!("etcd://{}/{prefix}", args.etcd_endpoints.join(",")))
                .arg("--secrets-key-file")
                .arg(&key);
        }
        let log = std::fs::File::create(work.join("server.log"))?;
        cmd.env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env(
                "RUST_LOG",
                std::env::var("FLOTILLA_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the server")?;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the server exited ({status}); see {}",
                    work.join("server.log").display()
                );
            }
            let ready = http
                .get(format!("{url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server {
            child,
            url,
            data_dir,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

fn write_secrets_key(path: &Path) -> anyhow::Result<()> {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let text = base64_standard(&key);
    std::fs::write(path, format!("{text}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Standard base64 with padding (the secrets key file's format).
fn base64_standard(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One hollow agent: its task and how to stop it.
struct Hollow {
    dir: PathBuf,
    handle: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn hollow_config(args: &ScaleArgs, url: &str, dir: &Path, creds: &Credentials) -> AgentConfig {
    let mut c = AgentConfig::new(CLUSTER, url, dir, creds.clone());
    c.region = REGION.into();
    c.task_endpoint = false;
    c.poll_interval = Duration::from_secs_f64(args.poll_seconds.max(0.05));
    c.usage_interval = Duration::from_secs(60);
    c
}

fn start_hollow(
    args: &ScaleArgs,
    index: u64,
    url: &str,
    root: &Path,
    creds: &Credentials,
    client: &flotilla_agent::client::EcsClient,
) -> anyhow::Result<Hollow> {
    let dir = root.join(format!("agent-{index:05}"));
    std::fs::create_dir_all(&dir)?;
    let config = hollow_config(args, url, &dir, creds);
    let sim = Simulation {
        start_latency: Duration::from_millis(args.start_latency_ms),
        failure_rate: args.failure_rate,
        seed: args.seed.wrapping_add(index),
    };
    let runtime = Arc::new(MemoryRuntime::simulated(sim, IMAGE));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = client.clone();
    let handle = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = flotilla_agent::run_on(config, runtime, Some(client), shutdown).await {
            tracing::warn!(agent = index, error = %e, "hollow agent ended");
        }
    });
    Ok(Hollow {
        dir,
        handle,
        stop: Some(stop),
    })
}

/// The CPU time (user and system) a process has used, seconds, from `/proc/PID/stat` (`self`
/// for this process); 0 when it cannot be read.
fn cpu_seconds_of(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces): state is field 3, utime
    // and stime are fields 14 and 15.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let per_second = rustix::param::clock_ticks_per_second();
    (ticks(11) + ticks(12)) as f64 / per_second.max(1) as f64
}

fn rss_of(status_path: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(status_path).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn etcd_db_size(endpoints: &[String]) -> u64 {
    let Some(ep) = endpoints.first() else {
        return 0;
    };
    let url = if ep.starts_with("http") {
        format!("{ep}/metrics")
    } else {
        format!("http://{ep}/metrics")
    };
    let Ok(resp) = reqwest::get(url).await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("etcd_mvcc_db_total_size_in_bytes ")
                || l.starts_with("etcd_debugging_mvcc_db_total_size_in_bytes ")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|v| v as u64)
        .next()
        .unwrap_or(0)
}

/// The number of open agent sessions the server reports on `/metrics`.
async fn sessions(http: &reqwest::Client, url: &str) -> u64 {
    let Ok(resp) = http.get(format!("{url}/metrics")).send().await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("flotilla_agent_sessions"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The cluster's counts: (registered instances, running tasks, pending tasks).
async fn cluster_counts(client: &EcsClient) -> anyhow::Result<(u64, u64, u64)> {
    let out = client
        .call("DescribeClusters", json!({"clusters": [CLUSTER]}))
        .await?;
    let c = &out["clusters"][0];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    Ok((
        n("registeredContainerInstancesCount"),
        n("runningTasksCount"),
        n("pendingTasksCount"),
    ))
}

fn task_definition(family: &str, marker: &str) -> Value {
    json!({
        "family": family,
        "containerDefinitions": [{
            "name": "app",
            "image": IMAGE,
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 864000"],
            "cpu": 2,
            "memory": 8,
            "essential": true,
            "environment": [{"name": "REVISION", "value": marker}],
        }],
    })
}

/// Waits until `done` says so, checking every `every`; fails after `stall` without progress
/// (`done` returns its progress figure, which must grow).
async fn wait_until<F, Fut>(
    what: &str,
    every: Duration,
    stall: Duration,
    progress: &Progress,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(bool, u64, String)>>,
{
    let mut best = 0u64;
    let mut since = Instant::now();
    let mut said = Instant::now();
    loop {
        let (done, figure, line) = match check().await {
            Ok(v) => v,
            Err(e) => (false, best, format!("(error: {e:#})")),
        };
        if done {
            return Ok(());
        }
        if figure > best {
            best = figure;
            since = Instant::now();
        }
        if said.elapsed() >= Duration::from_secs(2) {
            progress.say(format!("{what}: {line}"));
            said = Instant::now();
        }
        if since.elapsed() > stall {
            bail!("{what}: no progress for {} s ({line})", stall.as_secs());
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs the whole benchmark and returns its figures.
pub async fn scale(args: ScaleArgs) -> anyhow::Result<Report> {
    if args.instances == 0 {
        bail!("--instances must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.failure_rate) {
        bail!("--failure-rate must be between 0 and 1");
    }
    // Each hollow agent holds its session's socket (and, for a moment, files of its data
    // directory); the shared HTTP pool and the rest take a few thousand at most. The server,
    // a child, inherits the limit and holds a socket per session.
    let want = args
        .instances
        .saturating_add(args.instances / 2)
        .saturating_add(2048);
    if let crate::open_files::Raised::Short { have, want } = crate::open_files::raise_to(want) {
        bail!(
            "{} hollow agents need about {want} open files, and this process may have only {have}; raise the limit (`ulimit -n {want}`, as root or with a higher hard limit) or run fewer --instances",
            args.instances
        );
    }
    let progress = Progress(Instant::now());
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => {
            let base = if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            base.join(format!("flotilla-bench-{}", uuid_like()))
        }
    };
    std::fs::create_dir_all(&work)?;
    let result = scale_in(&args, &work, &progress).await;
    if args.keep {
        progress.say(format!("kept {}", work.display()));
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

async fn scale_in(args: &ScaleArgs, work: &Path, progress: &Progress) -> anyhow::Result<Report> {
    let creds = Credentials {
        access_key_id: format!("AKIABENCH{}", &uuid_like()[..11]).to_uppercase(),
        secret_access_key: format!("{}{}", uuid_like(), uuid_like()),
        session_token: None,
    };
    progress.say(format!(
        "starting the server ({:?} store) in {}",
        args.store,
        work.display()
    ));
    let mut server = Server::start(args, work, &creds).await?;
    let url = server.url.clone();
    let client = Arc::new(EcsClient::new(
        url.clone(),
        REGION.into(),
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        None,
    )?);
    let mut report = Report {
        store: match args.store {
            StoreKind::Embedded => "embedded".into(),
            StoreKind::Etcd => "etcd".into(),
        },
        instances: args.instances,
        tasks: args.tasks,
        start_latency_ms: args.start_latency_ms,
        failure_rate: args.failure_rate,
        ..Report::default()
    };
    let server_pid = server.pid().map(|p| p.to_string());
    let result = phases(
        args,
        work,
        progress,
        &client,
        (&url, server_pid.as_deref()),
        &creds,
        &mut report,
    )
    .await;
    // The figures of the end, whatever happened.
    if let Some(pid) = server.pid() {
        let (rss, peak) = rss_of(&format!("/proc/{pid}/status"));
        report.server_rss_bytes = rss;
        report.server_peak_rss_bytes = peak;
    }
    report.agents_rss_bytes = rss_of("/proc/self/status").0;
    report.store_bytes = match args.store {
        StoreKind::Embedded => dir_size(&server.data_dir),
        StoreKind::Etcd => etcd_db_size(&args.etcd_endpoints).await,
    };
    let _ = server.child.start_kill();
    let _ = server.child.wait().await;
    result.map(|()| report)
}

#[allow(clippy::too_many_arguments)]
async fn phases(
    args: &ScaleArgs,
    work: &Path,
    progress: &Progress,
    client: &Arc<EcsClient>,
    (url, server_pid): (&str, Option<&str>),
    creds: &Credentials,
    report: &mut Report,
) -> anyhow::Result<()> {
    client
        .call("CreateCluster", json!({"clusterName": CLUSTER}))
        .await?;
    client
        .call("RegisterTaskDefinition", task_definition("bench", "1"))
        .await?;

    // Hollow agents: one shared API client (one connection pool) for all of them.
    let agent_client = flotilla_agent::client::EcsClient::new(url, creds.clone(), REGION)
        .map_err(|e| anyhow!("{e}"))?;
    let agents_root = work.join("agents");
    let started = Instant::now();
    let mut hollows = Vec::new();
    for i in 0..args.instances {
        hollows.push(start_hollow(
            args,
            i,
            url,
            &agents_root,
            creds,
            &agent_client,
        )?);
        if i % 250 == 249 {
            // Let registrations through before the next wave of connections.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    progress.say(format!("{} hollow agents started", args.instances));
    let http = reqwest::Client::new();
    let stall = Duration::from_secs(args.stall_seconds);
    wait_until(
        "registering",
        Duration::from_millis(250),
        stall,
        progress,
        || async {
            let (registered, _, _) = cluster_counts(client).await?;
            let open = sessions(&http, url).await;
            Ok((
                registered >= args.instances && open >= args.instances,
                registered + open,
                format!(
                    "{registered} registered, {open} sessions of {}",
                    args.instances
                ),
            ))
        },
    )
    .await?;
    report.register_seconds = started.elapsed().as_secs_f64();
    progress.say(format!(
        "{} instances registered and connected in {:.1} s",
        args.instances, report.register_seconds
    ));

    // The CPU time each side uses for the launch: a figure that, unlike the rates, hardly
    // moves from run to run while both processes share the machine's cores.
    let cpu = || {
        (
            server_pid.map_or(0.0, cpu_seconds_of),
            cpu_seconds_of("self"),
        )
    };
    let before = cpu();
    launch(args, progress, client, report).await?;
    let after = cpu();
    report.server_cpu_seconds = after.0 - before.0;
    report.agents_cpu_seconds = after.1 - before.1;

    if args.services > 0 {
        let per = args
            .service_tasks
            .unwrap_or((args.tasks / 10).clamp(1, 10_000));
        let figures = services(args, progress, client, per).await?;
        report.services = Some(figures);
        let lost = args.lost_hosts.min(args.instances / 2);
        if lost > 0 {
            report.lost_hosts =
                Some(lost_hosts(args, progress, client, &mut hollows, lost, per).await?);
        }
    }

    progress.say("stopping the hollow agents");
    for h in &mut hollows {
        if let Some(stop) = h.stop.take() {
            let _ = stop.send(());
        }
    }
    for h in hollows {
        let _ = tokio::time::timeout(Duration::from_secs(5), h.handle).await;
    }
    Ok(())
}

/// The launch phase: RunTask calls with probes beside them, until every placed task runs.
async fn launch(
    args: &ScaleArgs,
    progress: &Progress,
    client: &Arc<EcsClient>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let placed = Arc::new(AtomicU64::new(0));
    let not_placed = Arc::new(AtomicU64::new(0));
    let arns: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let launching = Arc::new(AtomicBool::new(true));
    let probes_on = Arc::new(AtomicBool::new(true));
    let t0 = Instant::now();

    // Probes: ListTasks and DescribeTasks, one after the other, while tasks launch.
    let probe = {
        let (client, arns, on) = (client.clone(), arns.clone(), probes_on.clone());
        tokio::spawn(async move {
            let (mut list, mut describe) = (Vec::new(), Vec::new());
            let mut k = 0usize;
            while on.load(Ordering::Relaxed) {
                let s = Instant::now();
                if client
                    .call("ListTasks", json!({"cluster": CLUSTER, "maxResults": 100}))
                    .await
                    .is_ok()
                {
                    list.push(s.elapsed().as_secs_f64() * 1000.0);
                }
                let sample: Vec<String> = {
                    let a = arns.lock().unwrap_or_else(|p| p.into_inner());
                    if a.is_empty() {
                        Vec::new()
                    } else {
                        (0..100)
                            .map(|i| a[(k * 7919 + i * 104_729) % a.len()].clone())
                            .collect()
                    }
                };
                k += 1;
                if !sample.is_empty() {
                    let s = Instant::now();
                    if client
                        .call(
                            "DescribeTasks",
                            json!({"cluster": CLUSTER, "tasks": sample}),
                        )
                        .await
                        .is_ok()
                    {
                        describe.push(s.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (list, describe)
        })
    };

    // Progress: every 2 s.
    let ticker = {
        let (client, placed, launching) = (client.clone(), placed.clone(), launching.clone());
        let total = args.tasks;
        let start = t0;
        let p = Progress(Instant::now() - progress.0.elapsed());
        tokio::spawn(async move {
            while launching.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let n = placed.load(Ordering::Relaxed);
                let running = cluster_counts(&client).await.map(|c| c.1).unwrap_or(0);
                let secs = start.elapsed().as_secs_f64();
                p.say(format!(
                    "launch: placed {n}/{total} ({:.0}/s), RUNNING {running} ({:.0}/s)",
                    report::rate(n, secs),
                    report::rate(running, secs)
                ));
            }
        })
    };

    let calls = report::calls(args.tasks);
    let latencies: Vec<f64> = futures::stream::iter(calls)
        .map(|count| {
            let (client, placed, not_placed, arns) =
                (client.clone(), placed.clone(), not_placed.clone(), arns.clone());
            async move {
                let mut attempt = 0;
                loop {
                    let s = Instant::now();
                    let r = client
                        .call(
                            "RunTask",
                            json!({"cluster": CLUSTER, "taskDefinition": "bench", "count": count}),
                        )
                        .await;
                    let ms = s.elapsed().as_secs_f64() * 1000.0;
                    match r {
                        Ok(out) => {
                            let tasks = out["tasks"].as_array().cloned().unwrap_or_default();
                            let failures =
                                out["failures"].as_array().map_or(0, Vec::len) as u64;
                            placed.fetch_add(tasks.len() as u64, Ordering::Relaxed);
                            not_placed.fetch_add(failures, Ordering::Relaxed);
                            let mut a = arns.lock().unwrap_or_else(|p| p.into_inner());
                            a.extend(
                                tasks
                                    .iter()
                                    .filter_map(|t| t["taskArn"].as_str().map(str::to_string)),
                            );
                            return Ok(ms);
                        }
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            tracing::warn!(error = %format!("{e:#}"), attempt, "RunTask failed; retrying");
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<anyhow::Result<f64>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<f64>>>()?;
    report.place_seconds = t0.elapsed().as_secs_f64();
    report.placed = placed.load(Ordering::Relaxed);
    report.placement_failures = not_placed.load(Ordering::Relaxed);
    report.placements_per_second = report::rate(report.placed, report.place_seconds);
    report.run_task = Latencies::of(&latencies);
    progress.say(format!(
        "placed {} tasks in {:.1} s ({:.0}/s); waiting for RUNNING",
        report.placed, report.place_seconds, report.placements_per_second
    ));

    // Every placed task RUNNING (or, with simulated failures, none left PENDING).
    let target = report.placed;
    let last = Arc::new(AtomicU64::new(0));
    wait_until(
        "launch",
        Duration::from_millis(200),
        Duration::from_secs(args.stall_seconds),
        progress,
        || {
            let (client, last) = (client.clone(), last.clone());
            async move {
                let (_, running, pending) = cluster_counts(&client).await?;
                last.store(running, Ordering::Relaxed);
                let done = running >= target || (pending == 0 && args.failure_rate > 0.0);
                Ok((
                    done,
                    running,
                    format!("{running} RUNNING, {pending} PENDING of {target}"),
                ))
            }
        },
    )
    .await?;
    report.running_seconds = t0.elapsed().as_secs_f64();
    report.running = last.load(Ordering::Relaxed);
    report.running_per_second = report::rate(report.running, report.running_seconds);
    launching.store(false, Ordering::Relaxed);
    probes_on.store(false, Ordering::Relaxed);
    let (list, describe) = probe.await?;
    let _ = ticker.await;
    report.list_tasks = Latencies::of(&list);
    report.describe_tasks = Latencies::of(&describe);
    progress.say(format!(
        "{} RUNNING in {:.1} s ({:.0}/s)",
        report.running, report.running_seconds, report.running_per_second
    ));
    Ok(())
}

/// Whether every named service is steady on `revision`: all desired tasks RUNNING, one
/// deployment, COMPLETED. Also the RUNNING count summed, for progress.
async fn services_steady(
    client: &EcsClient,
    names: &[String],
    revision: &str,
) -> anyhow::Result<(bool, u64)> {
    let mut all = true;
    let mut running = 0;
    for chunk in names.chunks(10) {
        let out = client
            .call(
                "DescribeServices",
                json!({"cluster": CLUSTER, "services": chunk}),
            )
            .await?;
        for s in out["services"].as_array().cloned().unwrap_or_default() {
            let desired = s["desiredCount"].as_u64().unwrap_or(0);
            let r = s["runningCount"].as_u64().unwrap_or(0);
            running += r;
            let deployments = s["deployments"].as_array().cloned().unwrap_or_default();
            let steady = r == desired
                && deployments.len() == 1
                && deployments[0]["taskDefinition"]
                    .as_str()
                    .is_some_and(|td| td.ends_with(revision))
                && deployments[0]["rolloutState"].as_str() != Some("IN_PROGRESS")
                && deployments[0]["runningCount"].as_u64() == Some(desired);
            all &= steady;
        }
    }
    Ok((all, running))
}

async fn services(
    args: &ScaleArgs,
    progress: &Progress,
    client: &Arc<EcsClient>,
    per: u64,
) -> anyhow::Result<ServicesFigures> {
    client
        .call("RegisterTaskDefinition", task_definition("bench-svc", "1"))
        .await?;
    let names: Vec<String> = (0..args.services).map(|i| format!("bench-{i}")).collect();
    let stall = Duration::from_secs(args.stall_seconds);
    let t = Instant::now();
    for n in &names {
        client
            .call(
                "CreateService",
                json!({
                    "cluster": CLUSTER, "serviceName": n, "taskDefinition": "bench-svc:1",
                    "desiredCount": per,
                    "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100},
                }),
            )
            .await?;
    }
    let want = per * args.services;
    wait_until(
        "services",
        Duration::from_millis(250),
        stall,
        progress,
        || async {
            let (ok, running) = services_steady(client, &names, ":1").await?;
            Ok((ok, running, format!("{running}/{want} RUNNING")))
        },
    )
    .await?;
    let steady_seconds = t.elapsed().as_secs_f64();
    progress.say(format!(
        "{} service(s) of {per} tasks steady in {steady_seconds:.1} s; rolling to revision 2",
        args.services
    ));
    client
        .call("RegisterTaskDefinition", task_definition("bench-svc", "2"))
        .await?;
    let t = Instant::now();
    for n in &names {
        client
            .call(
                "UpdateService",
                json!({"cluster": CLUSTER, "service": n, "taskDefinition": "bench-svc:2"}),
            )
            .await?;
    }
    wait_until(
        "rollout",
        Duration::from_millis(250),
        stall,
        progress,
        || async {
            let (ok, running) = services_steady(client, &names, ":2").await?;
            Ok((ok, running, format!("{running}/{want} RUNNING")))
        },
    )
    .await?;
    let rollout_seconds = t.elapsed().as_secs_f64();
    progress.say(format!("rolled in {rollout_seconds:.1} s"));
    Ok(ServicesFigures {
        services: args.services,
        tasks_per_service: per,
        steady_seconds,
        rollout_seconds,
    })
}

/// Every RUNNING task of the services: (task ARN, container instance ARN).
async fn service_tasks(
    client: &EcsClient,
    names: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for n in names {
        let arns = client
            .list_all(
                "ListTasks",
                json!({"cluster": CLUSTER, "serviceName": n, "desiredStatus": "RUNNING"}),
                "taskArns",
            )
            .await?;
        let tasks = client
            .describe_all(
                "DescribeTasks",
                json!({"cluster": CLUSTER}),
                "tasks",
                &arns,
                100,
                "tasks",
            )
            .await?;
        for t in tasks {
            if t["lastStatus"].as_str() == Some("RUNNING") {
                out.push((
                    t["taskArn"].as_str().unwrap_or_default().to_string(),
                    t["containerInstanceArn"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
    }
    Ok(out)
}

async fn lost_hosts(
    args: &ScaleArgs,
    progress: &Progress,
    client: &Arc<EcsClient>,
    hollows: &mut [Hollow],
    lost: u64,
    per: u64,
) -> anyhow::Result<LostHostsFigures> {
    let names: Vec<String> = (0..args.services).map(|i| format!("bench-{i}")).collect();
    let before = service_tasks(client, &names).await?;
    let mut per_host: BTreeMap<String, u64> = BTreeMap::new();
    for (_, ci) in &before {
        *per_host.entry(ci.clone()).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = per_host.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let chosen: BTreeSet<String> = ranked
        .iter()
        .take(usize::try_from(lost).unwrap_or(usize::MAX))
        .map(|(ci, _)| ci.clone())
        .collect();
    let tasks_lost: u64 = ranked
        .iter()
        .filter(|(ci, _)| chosen.contains(ci))
        .map(|(_, n)| n)
        .sum();
    // Which hollow agent is which instance: its data directory says.
    let mut stopped = 0u64;
    for h in hollows.iter_mut() {
        let arn = flotilla_agent::state::DataDir::open(&h.dir)
            .ok()
            .and_then(|d| d.identity().ok())
            .and_then(|i| i.container_instance_arn);
        if arn.is_some_and(|a| chosen.contains(&a)) {
            // As a host that dies: the process is gone, its socket closes.
            h.handle.abort();
            h.stop = None;
            stopped += 1;
        }
    }
    progress.say(format!(
        "stopped {stopped} hosts running {tasks_lost} service tasks"
    ));
    let t = Instant::now();
    let chosen_list: Vec<Value> = chosen.iter().map(|c| json!(c)).collect();
    let stall = Duration::from_secs(args.stall_seconds);
    wait_until(
        "noticing",
        Duration::from_millis(100),
        stall,
        progress,
        || async {
            let described = client
                .describe_all(
                    "DescribeContainerInstances",
                    json!({"cluster": CLUSTER}),
                    "containerInstances",
                    &chosen_list,
                    100,
                    "containerInstances",
                )
                .await?;
            let gone = described
                .iter()
                .filter(|ci| ci["agentConnected"].as_bool() == Some(false))
                .count() as u64;
            Ok((
                gone >= stopped,
                gone,
                format!("{gone}/{stopped} disconnected"),
            ))
        },
    )
    .await?;
    let notice_seconds = t.elapsed().as_secs_f64();
    let want = per * args.services;
    wait_until(
        "replacing",
        Duration::from_millis(250),
        stall,
        progress,
        || async {
            let now = service_tasks(client, &names).await?;
            let live = now.iter().filter(|(_, ci)| !chosen.contains(ci)).count() as u64;
            Ok((
                live >= want,
                live,
                format!("{live}/{want} RUNNING on live hosts"),
            ))
        },
    )
    .await?;
    let replace_seconds = t.elapsed().as_secs_f64();
    progress.say(format!(
        "noticed in {notice_seconds:.1} s, replaced in {replace_seconds:.1} s"
    ));
    Ok(LostHostsFigures {
        hosts: stopped,
        tasks_lost,
        notice_seconds,
        replace_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_key_is_standard_base64() {
        assert_eq!(base64_standard(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_standard(b"fooba"), "Zm9vYmE=");
        assert_eq!(base64_standard(b"foob"), "Zm9vYg==");
        assert_eq!(base64_standard(&[0u8; 32]).len(), 44);
    }

    #[test]
    fn cpu_time_reads_the_kernel_s_fields() {
        let before = cpu_seconds_of("self");
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let used = cpu_seconds_of("self") - before;
        assert!(used >= 0.1, "{used} s of CPU after 300 ms of spinning");
        assert_eq!(cpu_seconds_of("no-such-process"), 0.0);
    }

    #[test]
    fn rss_reads_the_kernel_s_fields() {
        let (rss, peak) = rss_of("/proc/self/status");
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
    }
}
