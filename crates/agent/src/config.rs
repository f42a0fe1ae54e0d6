//! The agent's configuration: [`AgentConfig`] and [`ImagePullBehavior`].
//!
//! What this is: plain data with ECS-like defaults ([`AgentConfig::new`]). The CLI maps its
//! flags onto it; nothing here reads flags, files or the environment except
//! [`AgentConfig::credentials_from_env`], which the caller chooses to call.
//!
//! What this is not: validation of the server's answers or of task definitions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// ECS's reserved TCP ports (SSH, Docker, the agent's introspection ports).
pub const ECS_RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

/// When the agent pulls an image (ECS_IMAGE_PULL_BEHAVIOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePullBehavior {
    /// ECS `default`: pull every time; if the pull fails, use the cached image when there is one.
    Default,
    /// ECS `always`: pull every time; a failed pull fails the task.
    Always,
    /// ECS `once`: pull only if this agent has not pulled it before (or it was removed).
    Once,
    /// ECS `prefer-cached`: pull only if the image is absent.
    PreferCached,
}

impl ImagePullBehavior {
    /// Parses the ECS spelling (`default`, `always`, `once`, `prefer-cached`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(Self::Default),
            "always" => Some(Self::Always),
            "once" => Some(Self::Once),
            "prefer-cached" => Some(Self::PreferCached),
            _ => None,
        }
    }
}

/// Static credentials for signing requests to the server.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// AWS_ACCESS_KEY_ID.
    pub access_key_id: String,
    /// AWS_SECRET_ACCESS_KEY.
    pub secret_access_key: String,
    /// AWS_SESSION_TOKEN.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret or the token.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything `flotilla agent` needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Cluster name (or ARN) to register into.
    pub cluster: String,
    /// The server's replicas, base URLs such as `http://127.0.0.1:8080` or
    /// `https://flotilla.example:8443` (an item may also be a comma-separated list). The agent talks to one at a time, starting with the first, and
    /// moves to the next when one stops answering ([`crate::endpoints::Endpoints`]).
    pub server_urls: Vec<String>,
    /// Where the instance identity and task state are kept. One directory per instance.
    pub data_dir: PathBuf,
    /// Credentials that sign every request (API keys), unless the agent has its own
    /// ([`crate::identity`]: saved in `data_dir` after it joined with [`AgentConfig::join_token`]).
    /// Empty when it joins with a token.
    pub credentials: Credentials,
    /// The join token the agent joins its cluster with, when it has no credentials of its own
    /// yet (`flotilla agent --join-token`): it registers a new instance in the token's cluster
    /// and signs from then on with the key the server issued for it.
    pub join_token: Option<crate::identity::JoinTokenText>,
    /// Signing region.
    pub region: String,
    /// `ecs.availability-zone` attribute and identity document.
    pub availability_zone: String,
    /// `ecs.instance-type` attribute and identity document.
    pub instance_type: String,
    /// Custom attributes (name -> value) added to the registration.
    pub attributes: BTreeMap<String, String>,
    /// Memory (MiB) kept back from what is registered (ECS_RESERVED_MEMORY, default 0).
    pub reserved_memory_mib: u64,
    /// TCP ports registered as reserved, besides [`ECS_RESERVED_PORTS`] (ECS_RESERVED_PORTS).
    pub reserved_ports: Vec<u16>,
    /// UDP ports registered as reserved (ECS_RESERVED_PORTS_UDP).
    pub reserved_ports_udp: Vec<u16>,
    /// When images are pulled.
    pub image_pull_behavior: ImagePullBehavior,
    /// How long stopped containers (and images this agent pulled, once unused) are kept
    /// (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION, default 3 h).
    pub cleanup_delay: Duration,
    /// How often usage is sampled and sent.
    pub usage_interval: Duration,
    /// How often each task's owner looks at its containers while the task changes (four times
    /// less often once it is steadily RUNNING).
    pub poll_interval: Duration,
    /// The Docker socket.
    pub docker_socket: String,
    /// The Docker client config with registry `auths` (default `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// A managed-pool host (`flotilla agent --managed`): it registers with
    /// [`flotilla_protocol::MANAGED_POOL`] instead of `cluster`, and runs the Fargate tasks of
    /// every cluster. [`AgentConfig::managed`] builds such a configuration.
    pub managed: bool,
    /// Serve the task metadata endpoint and task role credentials at `169.254.170.2`
    /// ([`crate::metadata`]; it installs NAT rules with `iptables`), and the task resolver
    /// (DNS) there. Default true.
    pub task_endpoint: bool,
    /// The resolvers the task resolver forwards names that are not Cloud Map's to; `None`: the
    /// name servers of the host's `/etc/resolv.conf`.
    pub dns_upstreams: Option<Vec<std::net::SocketAddr>>,
    /// The CA certificates (PEM) an `https://` server is verified with; `None`: the system's
    /// root certificates. Read when the agent starts.
    pub ca_file: Option<PathBuf>,
    /// A managed-pool host: how many task networks (address, pause container) it keeps ready
    /// for the FARGATE tasks placed on it, refilled in the background (at most
    /// [`flotilla_protocol::MAX_WARM_NETWORKS`]; 0: none). Default [`DEFAULT_WARM_POOL_SIZE`].
    pub warm_pool_size: u32,
}

/// How many warm task networks a managed-pool host keeps by default.
pub const DEFAULT_WARM_POOL_SIZE: u32 = 2;

impl AgentConfig {
    /// A configuration with ECS-like defaults: region `us-east-1`, availability zone
    /// `us-east-1a`, instance type `flotilla.local`, no reserved memory, pull only absent
    /// images (`prefer-cached`, so a host without registry access runs what it has), cleanup
    /// after 3 hours, usage every 20 seconds. `server_url` is one base URL, or the replicas'
    /// URLs separated by commas (or set [`AgentConfig::server_urls`]).
    pub fn new(
        cluster: impl Into<String>,
        server_url: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        credentials: Credentials,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            server_urls: vec![server_url.into()],
            data_dir: data_dir.into(),
            credentials,
            join_token: None,
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            instance_type: "flotilla.local".into(),
            attributes: BTreeMap::new(),
            reserved_memory_mib: 0,
            reserved_ports: Vec::new(),
            reserved_ports_udp: Vec::new(),
            image_pull_behavior: ImagePullBehavior::PreferCached,
            cleanup_delay: Duration::from_secs(3 * 3600),
            usage_interval: Duration::from_secs(20),
            poll_interval: Duration::from_millis(250),
            docker_socket: crate::docker::DEFAULT_SOCKET.into(),
            docker_config: None,
            managed: false,
            task_endpoint: true,
            dns_upstreams: None,
            ca_file: None,
            warm_pool_size: DEFAULT_WARM_POOL_SIZE,
        }
    }

    /// A managed-pool host's configuration ([`AgentConfig::new`]'s defaults, `managed: true`).
    pub fn managed(
        server_url: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        credentials: Credentials,
    ) -> Self {
        let mut c = Self::new(
            flotilla_protocol::MANAGED_POOL,
            server_url,
            data_dir,
            credentials,
        );
        c.managed = true;
        c
    }

    /// The replicas of [`AgentConfig::server_urls`], in order; `None` when there is none.
    pub fn endpoints(&self) -> Option<crate::endpoints::Endpoints> {
        crate::endpoints::Endpoints::parse(&self.server_urls.join(","))
    }

    /// The cluster the host registers with: [`flotilla_protocol::MANAGED_POOL`] when managed.
    pub fn registration_cluster(&self) -> &str {
        if self.managed {
            flotilla_protocol::MANAGED_POOL
        } else {
            &self.cluster
        }
    }

    /// Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, if the
    /// first two are set.
    pub fn credentials_from_env() -> Option<Credentials> {
        Some(Credentials {
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok()?,
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }
}
