//! `flotilla`: Amazon ECS that you run yourself.
//!
//! Subcommands: `server` (the control plane), `dev` (everything on one machine with no
//! configuration), and human verbs on top of the same API. This is the only crate that prints to
//! stdout and the only one that reads the process environment.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A CLI talks to people on stdout/stderr.

mod agent_cmd;
mod bench_scale;
mod client;
mod config;
mod exec_cmd;
mod fargate_cmd;
mod lb_cmd;
mod logs_cmd;
mod open_files;
mod serve;
mod service_cmd;
mod status_cmd;
mod terminal;
mod tls;
mod token_cmd;
mod top_cmd;
mod verbs;

/// The allocator: mimalloc instead of the system's. The control plane allocates and frees small
/// objects on every thread (decoded records, the messages of thousands of agent sessions).
/// Measured together with the other changes of the same commit series, not alone: under
/// `flotilla bench scale` the server's peak RSS went from 1,138 to 863 MiB at 10,000 hosts and
/// from 163 to 196 MiB at 300 (README, `flotilla bench scale`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Amazon ECS that you run yourself.
///
/// Start the control plane with `flotilla dev`, then point the aws CLI, boto3 or any AWS SDK at
/// it with AWS_ENDPOINT_URL_ECS and the credentials it prints.
#[derive(Parser, Debug)]
#[command(name = "flotilla", version, about, long_about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text (filter with RUST_LOG).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control plane: the ECS API and /metrics, on the embedded store (or --store).
    ///
    /// Credentials come from --config (TOML, several keys allowed) or from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment.
    Server(ServerArgs),
    /// Run everything on this machine with zero configuration: embedded store, generated
    /// credentials (printed, and saved in DATA_DIR/credentials) unless AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY are set, and two container agents on the local Docker engine: one
    /// in the cluster (--cluster) and one serving the managed pool that runs Fargate tasks.
    Dev(DevArgs),
    /// Run the container agent on this host: register it as a container instance of a cluster
    /// and run the tasks the control plane places on it, on the local Docker engine. With
    /// --managed the host joins the managed pool instead: no cluster lists it, and it runs the
    /// Fargate tasks of every cluster.
    ///
    /// Credentials: a join token (--join-token, FLOTILLA_JOIN_TOKEN; `flotilla token create`
    /// prints one), with which the agent joins and receives credentials of its own, kept in
    /// --data-dir; or API keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
    /// AWS_SESSION_TOKEN). The instance identity is kept in --data-dir: an agent restarted on
    /// the same directory is the same container instance and adopts the containers it left
    /// running.
    Agent(agent_cmd::AgentArgs),
    /// Create, update, deploy and watch services (`flotilla service --help`).
    #[command(subcommand)]
    Service(service_cmd::ServiceCommand),
    /// Operate the capacity Flotilla manages for Fargate (reclaim Spot capacity).
    #[command(subcommand)]
    Fargate(fargate_cmd::FargateCommand),
    /// Create, list and revoke the join tokens agents join a cluster (or the managed pool)
    /// with: `flotilla token create --cluster C [--ttl 24h]` prints one for
    /// `flotilla agent --join-token`.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Print (or follow, with -f) the output of a task's containers, or of every task of a
    /// service, from their awslogs streams (CloudWatch Logs, on the same endpoint).
    ///
    /// Examples: `flotilla logs -f web --cluster prod` follows every task of service web, each
    /// line prefixed with its task and container; `flotilla logs TASK_ID --since 10m --output
    /// json` prints the last ten minutes as JSON lines.
    Logs(logs_cmd::LogsArgs),
    /// Run a command in a running container of a task, like `docker exec` (ECS Exec: the task
    /// needs enableExecuteCommand). Exits with the command's exit code.
    ///
    /// `flotilla exec TASK -- CMD ARGS...` runs it without a terminal (stdout and stderr apart);
    /// `-i` sends stdin; `-t` gives it a terminal that follows this one's size; `-it TASK -- sh`
    /// is a shell in the container.
    Exec(exec_cmd::ExecArgs),
    /// Show the server replicas and which one leads (its term), the store (kind, reachable,
    /// etcd members) and the container instances per availability zone.
    Status(ListArgs),
    /// Show utilization live: CPU and memory of every service and cluster (the AWS/ECS figures
    /// CloudWatch serves), and of the tasks and container instances of the replicas named by
    /// --endpoint (name every replica of a region, comma-separated, to see every task).
    ///
    /// Examples: `flotilla top --cluster prod` redraws every 5 s; `flotilla top --service web
    /// --once` prints the service and its tasks once; `--output json` for scripts.
    Top(top_cmd::TopArgs),
    /// List clusters with their instance, task and service counts.
    Clusters(ListArgs),
    /// Show load balancers: `flotilla lb ls` lists them with their listeners; `flotilla lb
    /// describe NAME` shows the listeners' rules and the health of every target.
    #[command(subcommand)]
    Lb(lb_cmd::LbCommand),
    /// List task definitions (latest first within each family order) with their containers.
    #[command(name = "task-definitions")]
    TaskDefinitions(TaskDefinitionsArgs),
    /// Benchmarks: `flotilla bench scale` runs a server and thousands of simulated hosts
    /// (hollow agents) and measures the control plane under their load.
    #[command(subcommand)]
    Bench(bench_scale::BenchCommand),
}

/// Flags of the human verbs.
#[derive(clap::Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    endpoint: client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: verbs::Output,
}

#[derive(clap::Args, Debug)]
struct TaskDefinitionsArgs {
    #[command(flatten)]
    list: ListArgs,
    /// Only this family.
    #[arg(long)]
    family: Option<String>,
    /// ACTIVE, INACTIVE or DELETE_IN_PROGRESS.
    #[arg(long, default_value = "ACTIVE")]
    status: String,
}

/// Flags shared by `server` and `dev`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Address to serve the ECS API on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded store keeps its data [default: ~/.local/share/flotilla].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The store: sqlite://PATH, memory: or etcd://HOST:PORT[,HOST:PORT...]/PREFIX (several
    /// replicas on one etcd elect one to run the controllers) [default: the embedded SQLite
    /// store in --data-dir].
    #[arg(long)]
    store: Option<flotilla_store::StoreUrl>,
    /// Region used in ARNs [default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// Twelve-digit account id used in ARNs.
    #[arg(long)]
    account: Option<String>,
    /// How often agents send heartbeats; an agent silent for 3 intervals shows
    /// agentConnected: false.
    #[arg(long, default_value_t = 10.0)]
    heartbeat_seconds: f64,
    /// On etcd: the time to live of the leader's lease, in whole seconds (1-60). A replica
    /// that dies or is cut off from etcd keeps the others waiting at most this long before one
    /// of them runs the controllers; a short lease also deposes a leader that is merely slow.
    #[arg(long, default_value_t = 5)]
    leader_lease_seconds: u64,
    /// How long STOPPED tasks stay describable and listable.
    #[arg(long, default_value_t = 3600)]
    stopped_task_retention_seconds: u64,
    /// How long an interrupted FARGATE_SPOT task has between SIGTERM and SIGKILL (ECS gives
    /// two minutes; tests shorten it).
    #[arg(long, default_value_t = 120)]
    spot_warning_seconds: u64,
    /// The resolution of CloudWatch metrics, in seconds (1-3600): the AWS/ECS utilization
    /// figures are recorded once per period, query and alarm periods are multiples of it, and
    /// alarms are evaluated once per period. ECS's is one minute; tests shorten it.
    #[arg(long, default_value_t = 60)]
    metrics_period_seconds: u32,
    /// How many seconds a minute of a deployment's bake times lasts (bakeTimeInMinutes, linear
    /// and canary steps); tests shorten it to run a blue/green deployment in seconds.
    #[arg(long, default_value_t = 60.0)]
    deployment_minute_seconds: f64,
    /// The network awsvpc tasks get their private IPv4 addresses on (every agent creates the
    /// Docker network `flotilla-awsvpc` with it). Pick a range no host network uses.
    #[arg(long, default_value = flotilla_api::fargate::DEFAULT_TASK_NETWORK)]
    task_network: String,
    /// The key that seals Secrets Manager secrets and SecureString parameters at rest: 32
    /// random bytes as base64 on one line (`head -c 32 /dev/urandom | base64 > secrets.key;
    /// chmod 600 secrets.key`). Without it the embedded store uses DATA_DIR/secrets.key,
    /// generated once (mode 0600); with --store etcd://... it is required, and every replica
    /// must be given the same key. Also `[secrets] key_file` in --config.
    #[arg(long)]
    secrets_key_file: Option<PathBuf>,
    /// How long the temporary credentials issued for a task's taskRoleArn are valid (agents
    /// ask for new ones at 60 % of that; a task's keys are revoked when it stops).
    #[arg(long, default_value_t = flotilla_api::task_credentials::DEFAULT_LIFETIME_SECONDS)]
    task_credentials_seconds: u64,
    /// The address load balancer listeners accept connections on: every listener created with
    /// `aws elbv2 create-listener --port P` is served at LB_ADDRESS:P by every replica
    /// [default: the IP address of --listen].
    #[arg(long)]
    lb_address: Option<std::net::IpAddr>,
    /// Serve no load balancer listeners on this replica (the ELBv2 API and the health checker
    /// still run; other replicas may serve the listeners).
    #[arg(long)]
    no_lb: bool,
    /// Throttle API requests per access key and class of operations with ECS's token buckets
    /// (burst and sustained rate per class: DescribeClusters 50 and 20/s, RunTask 100 and
    /// 40/s, ...), answering ThrottlingException over the rate. `flotilla server` throttles
    /// by default; `flotilla dev` only with this flag or --throttle-limit.
    #[arg(long, conflicts_with = "no_throttle")]
    throttle: bool,
    /// Throttle nothing (also `[throttle] enabled = false` in --config).
    #[arg(long)]
    no_throttle: bool,
    /// A class's or one operation's limit, NAME=BURST/RATE: `ecs:cluster-read=50/20`,
    /// `secretsmanager:modify=20/5`, `ecs:RunTask=10/2` (an operation named gets a bucket of
    /// its own). Repeatable; wins over `[throttle.limits]` in --config; implies --throttle.
    #[arg(
        long = "throttle-limit",
        value_name = "NAME=BURST/RATE",
        conflicts_with = "no_throttle"
    )]
    throttle_limits: Vec<String>,
    /// Where the audit log goes (one JSON line per mutating or denied call), appended:
    /// a file, or `-` for no audit log [default: DATA_DIR/audit.log].
    #[arg(long, value_name = "PATH|-")]
    audit_log: Option<String>,
    #[command(flatten)]
    tls: tls::ServeTlsArgs,
}

#[derive(clap::Args, Debug)]
struct ServerArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// TOML configuration: region, account and [[credentials]] entries.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The other regions this installation serves beside --region (the primary), separated by
    /// commas (eu-west-1,ap-south-1): each has its own clusters, task definitions, settings,
    /// secrets and ARNs, and a request goes to the region its SigV4 credential scope names. A
    /// request scoped to a region not served is refused (InvalidSignatureException). Load
    /// balancers are served in the primary region only. `flotilla dev` serves any region.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct DevArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The cluster the local agent joins (created when missing).
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Serve only the API: no local agent.
    #[arg(long)]
    no_agent: bool,
    /// Serve over TLS with a local CA and a server certificate generated once into
    /// DATA_DIR/tls (ca.pem, keys mode 0600) for localhost, 127.0.0.1, ::1, this host's name
    /// and the --listen address; the banner says how to trust the CA (AWS_CA_BUNDLE).
    #[arg(long, conflicts_with_all = ["tls_cert", "insecure_http"])]
    tls: bool,
    /// Another name (DNS name or IP address) the generated certificate is valid for
    /// (repeatable), e.g. the address other machines reach this one by.
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls")]
    tls_names: Vec<String>,
    #[command(flatten)]
    agent: agent_cmd::HostArgs,
}

fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Output piped into a reader that stops early (`flotilla service ps web | head`) ends the
/// process quietly, as for any Unix tool, instead of a panic on a broken pipe. The one
/// `unsafe` call of the binary.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default is async-signal-safe and happens
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    // A benchmark's thousands of hollow agents would drown its progress in their info lines.
    let default_level = if matches!(cli.command, Command::Bench(_)) {
        // (A simulated host has no cgroup driver: every engine would say so.)
        "warn,flotilla_agent::engine=error"
    } else {
        "info"
    };
    init_logging(cli.log_json, default_level);
    if let Command::Exec(args) = cli.command {
        std::process::exit(exec(args));
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with the cause chain; no backtrace for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `flotilla exec`: its exit code is the command's. The process exits at once after it (a thread
/// may still wait on stdin).
fn exec(args: exec_cmd::ExecArgs) -> i32 {
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(exec_cmd::run(args)),
        Err(e) => {
            eprintln!("error: {e}");
            exec_cmd::FAILED
        }
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
    code
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => {
                let cfg =
                    config::server_config(&args.common, args.config.as_deref(), &args.regions)?;
                serve::run(cfg, Vec::new()).await
            }
            Command::Dev(args) => {
                let cfg = config::dev_config(&args.common, args.tls, &args.tls_names)?;
                let local_agents = if args.no_agent {
                    Vec::new()
                } else {
                    vec![
                        agent_cmd::dev_agent(&cfg, &args.cluster, &args.agent)?,
                        agent_cmd::dev_managed_agent(&cfg, &args.agent)?,
                    ]
                };
                serve::run(cfg, local_agents).await
            }
            Command::Agent(args) => agent_cmd::run(args).await,
            Command::Service(cmd) => service_cmd::run(cmd).await,
            Command::Fargate(cmd) => fargate_cmd::run(cmd).await,
            Command::Token(cmd) => token_cmd::run(cmd).await,
            Command::Logs(args) => logs_cmd::run(args).await,
            Command::Exec(args) => std::process::exit(exec_cmd::run(args).await),
            Command::Lb(cmd) => lb_cmd::run(cmd).await,
            Command::Status(args) => status_cmd::run(args.endpoint.client()?, args.output).await,
            Command::Top(args) => top_cmd::run(args).await,
            Command::Bench(cmd) => bench_scale::run(cmd).await,
            Command::Clusters(args) => {
                let client = args.endpoint.client()?;
                verbs::clusters(&client, args.output).await
            }
            Command::TaskDefinitions(args) => {
                let client = args.list.endpoint.client()?;
                verbs::task_definitions(
                    &client,
                    args.family.as_deref(),
                    &args.status,
                    args.list.output,
                )
                .await
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn agent_help_explains_replicas_and_the_zone() {
        let mut cli = Cli::command();
        let agent = cli.find_subcommand_mut("agent").unwrap();
        let help = agent.render_long_help().to_string();
        assert!(help.contains("--availability-zone"), "{help}");
        assert!(help.contains("ecs.availability-zone"), "{help}");
        assert!(help.contains("separated by commas"), "{help}");
        let parsed = Cli::try_parse_from([
            "flotilla",
            "agent",
            "--managed",
            "--availability-zone",
            "us-east-1c",
            "--server",
            "http://a:8080,http://b:8080",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
        // A host joins a custom capacity provider; the managed pool's hosts cannot.
        assert!(help.contains("--capacity-provider"), "{help}");
        assert!(Cli::try_parse_from(["flotilla", "agent", "--capacity-provider", "blue"]).is_ok());
        assert!(Cli::try_parse_from([
            "flotilla",
            "agent",
            "--managed",
            "--capacity-provider",
            "blue"
        ])
        .is_err());
    }

    #[test]
    fn exec_takes_the_command_after_the_double_dash_and_its_help_teaches() {
        let parsed = Cli::try_parse_from([
            "flotilla",
            "exec",
            "-it",
            "TASK",
            "--cluster",
            "c",
            "--",
            "sh",
            "-c",
            "echo --cluster",
        ])
        .unwrap();
        let Command::Exec(args) = parsed.command else {
            panic!("not exec: {parsed:?}");
        };
        let debug = format!("{args:?}");
        assert!(
            debug.contains("interactive: true") && debug.contains("tty: true"),
            "{debug}"
        );
        assert!(
            debug.contains(r#"command: ["sh", "-c", "echo --cluster"]"#),
            "{debug}"
        );
        // The command is required, after `--`.
        assert!(Cli::try_parse_from(["flotilla", "exec", "TASK"]).is_err());
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("exec")
            .unwrap()
            .render_long_help()
            .to_string();
        for needed in [
            "enableExecuteCommand",
            "255",
            "Session Manager",
            "--container",
            "SIGWINCH",
        ] {
            assert!(help.contains(needed), "{needed} missing from:\n{help}");
        }
    }
}
