//! `flotilla agent` and the local agent of `flotilla dev`: flags to an `AgentConfig`.

use crate::config::ServerConfig;
use anyhow::{bail, Context};
use flotilla_agent::identity::JoinTokenText;
use flotilla_agent::{AgentConfig, Credentials, ImagePullBehavior};
use std::path::PathBuf;

/// What describes the host the agent runs on (shared by `agent` and `dev`).
#[derive(clap::Args, Debug, Clone)]
pub struct HostArgs {
    /// The availability zone of this host, reported as the `ecs.availability-zone` attribute
    /// (and in the instance identity document); services spread their tasks across zones.
    /// Managed-pool hosts (--managed) take it too.
    #[arg(long, default_value = "us-east-1a")]
    availability_zone: String,
    /// The instance type reported as the `ecs.instance-type` attribute.
    #[arg(long, default_value = "flotilla.local")]
    instance_type: String,
    /// A custom attribute NAME=VALUE for placement constraints (repeatable).
    #[arg(long = "attribute", value_name = "NAME=VALUE")]
    attributes: Vec<String>,
    /// Memory (MiB) kept back for the host: not offered to tasks.
    #[arg(long, default_value_t = 0)]
    reserved_memory: u64,
    /// When to pull images: default (always pull, fall back to a cached copy), always, once,
    /// prefer-cached (pull only images not present).
    #[arg(long, default_value = "prefer-cached")]
    image_pull_behavior: String,
    /// How long stopped containers are kept before they are removed.
    #[arg(long, default_value_t = 3 * 3600)]
    cleanup_delay_seconds: u64,
    /// How often the CPU and memory use of running tasks is sampled and sent to the server
    /// (seconds, 1-300): at least once per the server's --metrics-period-seconds, so every
    /// period of the AWS/ECS metrics has the figures.
    #[arg(long, default_value_t = 20)]
    usage_interval_seconds: u64,
    /// Do not serve the task metadata endpoint (ECS_CONTAINER_METADATA_URI_V4), task role
    /// credentials and the task resolver (DNS for Cloud Map names) at 169.254.170.2 (which
    /// takes NAT rules installed with iptables): containers get none of them (they keep
    /// Docker's DNS servers), and tasks with a taskRoleArn fail to start on this host.
    #[arg(long)]
    no_task_endpoint: bool,
    /// The resolvers (IP or IP:PORT, comma separated) the task resolver forwards names that are
    /// not Cloud Map's to [default: the name servers of the host's /etc/resolv.conf].
    #[arg(long, value_delimiter = ',', value_name = "IP[:PORT]")]
    task_dns_upstream: Vec<String>,
    /// Managed-pool hosts (--managed): how many task networks (an address reserved by the
    /// server and a running pause container holding it) to keep ready, so a FARGATE task placed
    /// here starts without making its network namespace first; refilled in the background.
    /// 0-16; 0 turns the warm pool off (and releases the addresses reserved).
    #[arg(long, default_value_t = flotilla_agent::config::DEFAULT_WARM_POOL_SIZE)]
    warm_pool_size: u32,
}

/// Flags of `flotilla agent`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The cluster to join [default: the join token's, else `default`].
    #[arg(long)]
    cluster: Option<String>,
    /// Join with this token (`flotilla token create --cluster C` prints one) instead of API
    /// keys: the agent registers a new container instance in the token's cluster and receives
    /// credentials of its own, bound to that instance and kept in --data-dir (credentials.json,
    /// mode 0600), so a restart needs neither the token nor API keys.
    #[arg(long, env = "FLOTILLA_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Join the managed pool (Fargate capacity for every cluster) instead of a cluster.
    #[arg(long, conflicts_with = "cluster")]
    managed: bool,
    /// Join this custom capacity provider (created with `aws ecs create-capacity-provider`):
    /// the host's container instance shows it as `capacityProviderName`, and tasks a capacity
    /// provider strategy sends to the provider run only on its hosts.
    #[arg(long, value_name = "NAME", conflicts_with = "managed")]
    capacity_provider: Option<String>,
    /// The Flotilla server URL, or the URLs of its replicas separated by commas
    /// (http://a:8080,http://b:8080,http://c:8080). The agent uses one at a time, starting with
    /// the first; when it gets no answer, a 5xx, or its session drops, it moves to the next one
    /// (with backoff). Its tasks keep running throughout, and reports not yet acknowledged are
    /// sent again to the new replica.
    ///
    /// An https:// server is verified with --ca-file, else the system's root certificates.
    #[arg(long, env = "FLOTILLA_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The CA certificates (PEM) an https:// server's certificate is verified with (e.g.
    /// DATA_DIR/tls/ca.pem of `flotilla dev --tls`) [default: FLOTILLA_CA_FILE, AWS_CA_BUNDLE,
    /// else the system's roots].
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Where the agent keeps its identity and state [default: ~/.local/share/flotilla/agent].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Region of the server [default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1].
    #[arg(long)]
    region: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

fn apply_host(cfg: &mut AgentConfig, host: &HostArgs) -> anyhow::Result<()> {
    cfg.availability_zone = host.availability_zone.clone();
    cfg.instance_type = host.instance_type.clone();
    for a in &host.attributes {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--attribute takes NAME=VALUE, got '{a}'");
        };
        cfg.attributes.insert(k.to_string(), v.to_string());
    }
    cfg.reserved_memory_mib = host.reserved_memory;
    cfg.image_pull_behavior =
        ImagePullBehavior::parse(&host.image_pull_behavior).with_context(|| {
            format!(
                "unknown --image-pull-behavior '{}': use default, always, once or prefer-cached",
                host.image_pull_behavior
            )
        })?;
    cfg.cleanup_delay = std::time::Duration::from_secs(host.cleanup_delay_seconds);
    if !(1..=300).contains(&host.usage_interval_seconds) {
        anyhow::bail!(
            "--usage-interval-seconds must be between 1 and 300, got {}",
            host.usage_interval_seconds
        );
    }
    cfg.usage_interval = std::time::Duration::from_secs(host.usage_interval_seconds);
    cfg.task_endpoint = !host.no_task_endpoint;
    if host.warm_pool_size > flotilla_protocol::MAX_WARM_NETWORKS {
        bail!(
            "--warm-pool-size must be between 0 and {}, got {}",
            flotilla_protocol::MAX_WARM_NETWORKS,
            host.warm_pool_size
        );
    }
    cfg.warm_pool_size = host.warm_pool_size;
    if !host.task_dns_upstream.is_empty() {
        let mut upstreams = Vec::new();
        for u in &host.task_dns_upstream {
            let addr = u
                .parse::<std::net::SocketAddr>()
                .or_else(|_| u.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .with_context(|| format!("--task-dns-upstream takes IP or IP:PORT, got '{u}'"))?;
            upstreams.push(addr);
        }
        cfg.dns_upstreams = Some(upstreams);
    }
    Ok(())
}

/// `flotilla agent`.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::config::default_data_dir().join("agent"));
    let join_token = args
        .join_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| JoinTokenText(t.to_string()));
    // With a token the agent signs with its own credentials; API keys are not used.
    let credentials = if join_token.is_some() {
        Credentials::default()
    } else {
        AgentConfig::credentials_from_env().unwrap_or_default()
    };
    if join_token.is_none()
        && credentials.access_key_id.is_empty()
        && !data_dir.join("credentials.json").exists()
    {
        bail!(
            "no credentials: pass --join-token (flotilla token create --cluster C prints one), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (flotilla dev prints them)"
        );
    }
    let cluster = match (&args.cluster, &join_token) {
        (Some(c), _) => c.clone(),
        // The token's cluster (the server answers it).
        (None, Some(_)) => String::new(),
        (None, None) => "default".to_string(),
    };
    let mut cfg = if args.managed {
        AgentConfig::managed(&args.server, data_dir, credentials)
    } else {
        AgentConfig::new(cluster, &args.server, data_dir, credentials)
    };
    cfg.join_token = join_token;
    if let Some(r) = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
    {
        cfg.region = r;
    }
    apply_host(&mut cfg, &args.host)?;
    cfg.ca_file = crate::tls::ca_file(args.ca_file.as_deref());
    if let Some(p) = &args.capacity_provider {
        cfg.attributes.insert(
            flotilla_protocol::CAPACITY_PROVIDER_ATTRIBUTE.to_string(),
            p.clone(),
        );
    }
    flotilla_agent::run(cfg, crate::serve::shutdown())
        .await
        .context("agent")?;
    Ok(())
}

/// The local agent of `flotilla dev`: the dev credentials, a data directory inside the dev one.
pub fn dev_agent(
    server: &ServerConfig,
    cluster: &str,
    host: &HostArgs,
) -> anyhow::Result<crate::serve::LocalAgent> {
    dev_agent_with(server, cluster, host, false)
}

/// The local managed-pool agent of `flotilla dev` (Fargate capacity): like [`dev_agent`],
/// registered with `flotilla_protocol::MANAGED_POOL`, its data in `DATA_DIR/managed-agent`.
pub fn dev_managed_agent(
    server: &ServerConfig,
    host: &HostArgs,
) -> anyhow::Result<crate::serve::LocalAgent> {
    dev_agent_with(server, "", host, true)
}

fn dev_agent_with(
    server: &ServerConfig,
    cluster: &str,
    host: &HostArgs,
    managed: bool,
) -> anyhow::Result<crate::serve::LocalAgent> {
    let cred = server
        .api
        .credentials
        .first()
        .context("dev has no credentials")?;
    let credentials = Credentials {
        access_key_id: cred.access_key_id.clone(),
        secret_access_key: cred.secret_access_key.clone(),
        session_token: cred.session_token.clone(),
    };
    let data_dir = server
        .data_dir
        .join(if managed { "managed-agent" } else { "agent" });
    let mut template = if managed {
        AgentConfig::managed(String::new(), data_dir, credentials)
    } else {
        AgentConfig::new(cluster, String::new(), data_dir, credentials)
    };
    template.region = server.api.arns.region.clone();
    // The local agents trust what this server's certificate is signed by (dev --tls's CA).
    template.ca_file = server.tls.ca_file.clone();
    // Samples at least once per metrics period, so every period has the figures.
    template.usage_interval =
        template
            .usage_interval
            .min(std::time::Duration::from_secs(u64::from(
                server.metrics_period_seconds,
            )));
    apply_host(&mut template, host)?;
    Ok(crate::serve::LocalAgent(Box::new(move |url| {
        let mut cfg = template;
        cfg.server_urls = vec![url];
        cfg
    })))
}
