//! The Flotilla container agent: registers a host as an ECS container instance, holds the push
//! session with the server, and runs the tasks it is assigned on Docker.
//!
//! # Public API (for the CLI and `flotilla dev`)
//!
//! ```no_run
//! # async fn example() -> Result<(), flotilla_agent::AgentError> {
//! use flotilla_agent::{AgentConfig, Credentials, ImagePullBehavior};
//! let creds = AgentConfig::credentials_from_env().unwrap_or_default();
//! let mut config = AgentConfig::new("default", "http://127.0.0.1:8080", "/var/lib/flotilla/agent", creds);
//! config.image_pull_behavior = ImagePullBehavior::PreferCached;
//! config.cleanup_delay = std::time::Duration::from_secs(60);
//! flotilla_agent::run(config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! - A managed-pool host (Fargate capacity): `AgentConfig::managed(server_url, data_dir,
//!   credentials)` (or `config.managed = true`): it registers with
//!   [`flotilla_protocol::MANAGED_POOL`] and labels containers with their task's own cluster.
//! - [`AgentConfig`] (see [`config`]): cluster, server URLs (the replicas; [`endpoints`]), data
//!   directory, credentials, region, availability zone, instance type, custom attributes,
//!   reserved memory and ports, image pull behaviour, cleanup delay, usage interval, Docker
//!   socket and Docker config path.
//!   [`AgentConfig::new`] gives ECS-like defaults; there is no `clap` here, the CLI maps flags.
//! - [`run`]: registers (`RegisterContainerInstance`, passing the saved `containerInstanceArn`
//!   so a restarted agent stays the same instance), starts the [`engine::Engine`], and holds the
//!   session ([`session`]) until `shutdown` completes. Shutdown leaves containers running: a
//!   later `run` on the same data directory adopts them. Registration and the session move to
//!   the next replica when the current one stops answering; the engine runs on throughout.
//! - [`engine::Engine`]: the task engine on its own (tests drive it directly: assignments in,
//!   reports out).
//!
//! # Code map
//!
//! - [`lifecycle`]: the pure state machine (dependsOn, task status, stop codes, health,
//!   restarts). No I/O.
//! - [`spec`]: pure translation of a task definition into Docker container specs, and the
//!   rejection of what Docker cannot do.
//! - [`runtime`]: the [`runtime::Runtime`] trait; [`docker`]: its Docker implementation.
//! - [`engine`]: one owning tokio task per task; restart recovery from labels and [`state`].
//! - [`resources`]: what is registered; [`client`]: the two ECS calls; [`session`]: the
//!   WebSocket; [`endpoints`]: the server replicas and the one in use; [`exec`]: ECS Exec's
//!   commands, run in a task's container and streamed on a WebSocket dialled back to the
//!   session's replica.
//! - [`registry`]: registry credentials from `~/.docker/config.json`.
//! - [`pause`]: the pause image of awsvpc tasks, built in place; [`cgroup`]: task-level cpu and
//!   memory as one cgroup per task; [`warm`]: a managed-pool host's warm task networks (which
//!   pause containers to make ahead of time and which to remove).
//! - [`metadata`]: the task metadata (v4) and task role credentials endpoint at
//!   `169.254.170.2`, reached through per-task NAT rules.
//!
//! Architecture invariants: only a task's owner writes its status, and statuses only move
//! forward; the agent never restarts or removes a running container because it restarted; every
//! container it creates carries [`flotilla_protocol::labels`].

#![warn(missing_docs)]

pub mod cgroup;
pub mod client;
pub mod config;
pub mod docker;
pub mod endpoints;
pub mod engine;
pub mod exec;
pub mod failure;
pub mod identity;
pub mod lifecycle;
pub mod logs;
pub mod metadata;
pub mod pause;
pub mod registry;
pub mod resources;
pub mod runtime;
pub mod session;
pub mod spec;
pub mod state;
pub mod warm;

pub use config::{AgentConfig, Credentials, ImagePullBehavior};

use client::{ApiError, EcsClient};
use engine::{Engine, EngineConfig, EngineError};
use runtime::{Runtime, RuntimeError};
use session::{Backoff, SessionParams};
use state::{DataDir, StateError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another agent uses the data directory.
    #[error(transparent)]
    Locked(#[from] state::LockError),
    /// Docker is unreachable or failed.
    #[error("docker: {0}")]
    Runtime(#[from] RuntimeError),
    /// Registration was refused (not retried: the configuration is wrong).
    #[error("RegisterContainerInstance: {0}")]
    Register(ApiError),
    /// The join was refused (not retried: the token is wrong, expired or revoked, or names
    /// another cluster).
    #[error("joining with the token {token}: {error}")]
    Join {
        /// The token's id.
        token: String,
        /// The server's answer.
        error: ApiError,
    },
    /// The agent's own credentials were refused at registration: its instance was deregistered
    /// (which revokes them).
    #[error("RegisterContainerInstance: {error}. The credentials this agent was given when it joined (saved in {path}) were refused: its container instance was deregistered, which revokes them. Delete that file and start the agent with a new join token to join again as a new instance.")]
    Revoked {
        /// The server's answer.
        error: ApiError,
        /// The credentials file.
        path: String,
    },
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The instance id: the last part of a container instance ARN.
pub fn instance_id(container_instance_arn: &str) -> &str {
    container_instance_arn
        .rsplit('/')
        .next()
        .unwrap_or(container_instance_arn)
}

fn engine_config(config: &AgentConfig, instance_arn: &str, client: &EcsClient) -> EngineConfig {
    let mut e = EngineConfig::new(
        instance_id(instance_arn),
        config.registration_cluster(),
        &config.data_dir,
    );
    e.log_streams = logs::LogStreams(Arc::new(logs::ServerStreams {
        client: client.clone(),
        instance_arn: instance_arn.to_string(),
    }));
    e.region = Some(config.region.clone());
    e.availability_zone = Some(config.availability_zone.clone());
    if config.task_endpoint {
        let upstreams = config.dns_upstreams.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| metadata::dns::upstreams_from_resolv_conf(&t))
                .unwrap_or_default()
        });
        e.task_endpoint = Some(engine::TaskEndpointSetup {
            redirector: Arc::new(metadata::redirect::Iptables::default()),
            reach: None,
            names: Some(Arc::new(metadata::dns::ServerNames {
                client: client.clone(),
            })),
            protection: Some(Arc::new(metadata::protection::ServerProtection {
                client: client.clone(),
            })),
            upstreams,
        });
    }
    e.managed = config.managed;
    e.warm_pool_size = config.managed.then_some(config.warm_pool_size);
    e.image_pull_behavior = config.image_pull_behavior;
    e.cleanup_delay = config.cleanup_delay;
    e.poll_interval = config.poll_interval;
    e.docker_config = config.docker_config.clone();
    e
}

/// Registers, retrying transient failures with backoff. Returns the ARN.
async fn register(
    client: &EcsClient,
    config: &AgentConfig,
    data: &DataDir,
    runtime: &dyn Runtime,
) -> Result<String, AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let mut identity = data.identity()?;
        let version = runtime.version().await?;
        let req = resources::registration_request(config, &identity, &version);
        match client.register(&req).await {
            Ok(ci) => {
                let arn = ci.container_instance_arn.unwrap_or_default();
                if identity.container_instance_arn.as_deref() != Some(arn.as_str()) {
                    if let Some(old) = &identity.container_instance_arn {
                        warn!(old = %old, new = %arn, "the server gave a new container instance ARN");
                    }
                    identity.container_instance_arn = Some(arn.clone());
                    data.save_identity(&identity)?;
                }
                info!(container_instance = %arn, cluster = %config.registration_cluster(), "registered");
                return Ok(arn);
            }
            Err(e) if e.is_retryable() => {
                let d = backoff.next_delay();
                let next = client.endpoints().current().1;
                warn!(error = %e, next = %next, delay_ms = d.as_millis() as u64, "registration failed; retrying");
                tokio::time::sleep(d).await;
            }
            Err(e) => return Err(AgentError::Register(e)),
        }
    }
}

/// Joins with `token`, retrying transient failures with backoff: registers a new instance,
/// saves its ARN and the agent's own credentials, and returns them.
async fn join(
    client: &EcsClient,
    token: &identity::JoinTokenText,
    config: &AgentConfig,
    data: &DataDir,
    runtime: &dyn Runtime,
) -> Result<identity::AgentCredentials, AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let mut id = data.identity()?;
        let version = runtime.version().await?;
        let mut req = resources::registration_request(config, &id, &version);
        // A join always registers a new instance; the cluster is the token's unless the
        // operator named one (which must be the token's).
        req.container_instance_arn = None;
        if req.cluster.as_deref() == Some("") {
            req.cluster = None;
        }
        match identity::join(client, token, &req).await {
            Ok(creds) => {
                data.save_agent_credentials(&creds)?;
                if let Some(old) = &id.container_instance_arn {
                    warn!(old = %old, new = %creds.container_instance_arn, "joined as a new container instance");
                }
                id.container_instance_arn = Some(creds.container_instance_arn.clone());
                data.save_identity(&id)?;
                info!(container_instance = %creds.container_instance_arn, cluster = %creds.cluster, token = %token.id(), access_key_id = %creds.access_key_id, "joined with the token; credentials saved");
                return Ok(creds);
            }
            Err(e) if e.is_retryable() => {
                let d = backoff.next_delay();
                warn!(error = %e, token = %token.id(), delay_ms = d.as_millis() as u64, "join failed; retrying");
                tokio::time::sleep(d).await;
            }
            Err(e) => {
                return Err(AgentError::Join {
                    token: token.id().to_string(),
                    error: e,
                })
            }
        }
    }
}

/// What signs the agent's requests: its own credentials (saved after a join, or obtained now
/// with the join token), else the configured API keys. `Ok(None)`: shutdown came first.
async fn signing_credentials(
    config: &mut AgentConfig,
    data: &DataDir,
    endpoints: &endpoints::Endpoints,
    runtime: &dyn Runtime,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<(Credentials, bool)>, AgentError> {
    let own = match data.agent_credentials()? {
        Some(c) => {
            info!(access_key_id = %c.access_key_id, container_instance = %c.container_instance_arn, "signing with the agent's own credentials");
            // They speak for one instance only: the one the agent is.
            let mut id = data.identity()?;
            if id.container_instance_arn.as_deref() != Some(c.container_instance_arn.as_str()) {
                id.container_instance_arn = Some(c.container_instance_arn.clone());
                data.save_identity(&id)?;
            }
            c
        }
        None => match config.join_token.clone() {
            Some(token) => {
                let client = EcsClient::with_endpoints(
                    endpoints.clone(),
                    identity::join_signer(),
                    &config.region,
                )
                .map_err(|e| AgentError::Config(e.to_string()))?;
                tokio::select! {
                    _ = shutdown => return Ok(None),
                    r = join(&client, &token, config, data, runtime) => r?,
                }
            }
            None if config.credentials.access_key_id.is_empty() => {
                return Err(AgentError::Config(
                    "no credentials: give a join token (flotilla token create) or API keys".into(),
                ))
            }
            None => return Ok(Some((config.credentials.clone(), false))),
        },
    };
    // The instance's cluster is the one it joined.
    config.managed = own.cluster == flotilla_protocol::MANAGED_POOL;
    config.cluster = own.cluster.clone();
    Ok(Some((own.signing(), true)))
}

/// Runs the agent until `shutdown` completes: registers the host, starts the task engine and
/// holds the session with the server (reconnecting as needed).
///
/// With a container instance ARN saved in the data directory, the engine starts before the
/// registration answers, so tasks are resumed (stops finished, exits noticed) even while the
/// server is unreachable.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let runtime: Arc<dyn Runtime> =
        Arc::new(docker::DockerRuntime::connect(&config.docker_socket).await?);
    run_on(config, runtime, None, shutdown).await
}

/// [`run`] on a given container runtime (a simulated host's
/// [`runtime::memory::MemoryRuntime`]: `flotilla bench scale` runs thousands in one process),
/// with `client` when given (agents of one process share its connection pool; it must name the
/// same servers and credentials as `config`), else a client of its own.
pub async fn run_on(
    mut config: AgentConfig,
    runtime: Arc<dyn Runtime>,
    client: Option<EcsClient>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    let data = DataDir::open(&config.data_dir)?;
    let _lock = data.lock()?;
    let (client, own) = match client {
        Some(c) => (c, false),
        None => {
            let endpoints = config
                .endpoints()
                .ok_or_else(|| AgentError::Config("no server URL".into()))?;
            let Some((credentials, own)) = signing_credentials(
                &mut config,
                &data,
                &endpoints,
                runtime.as_ref(),
                &mut shutdown,
            )
            .await?
            else {
                return Ok(());
            };
            let tls = if config.ca_file.is_some()
                || flotilla_tls::client::any_tls(endpoints.urls().iter().map(String::as_str))
            {
                Some(
                    flotilla_tls::ClientTls::load(config.ca_file.as_deref())
                        .map_err(|e| AgentError::Config(e.to_string()))?,
                )
            } else {
                None
            };
            let client = EcsClient::with_tls(endpoints, credentials, &config.region, tls)
                .map_err(|e| AgentError::Config(e.to_string()))?;
            (client, own)
        }
    };
    let saved = data.identity()?.container_instance_arn;
    let mut started = None;
    if let Some(arn) = &saved {
        info!(container_instance = %arn, "resuming as the saved container instance");
        started = Some(Engine::start(runtime.clone(), engine_config(&config, arn, &client)).await?);
    }
    let arn = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        r = register(&client, &config, &data, runtime.as_ref()) => match r {
            Err(AgentError::Register(error)) if own && identity::refused_key(&error) => {
                return Err(AgentError::Revoked {
                    error,
                    path: data.agent_credentials_path().display().to_string(),
                })
            }
            r => r?,
        },
    };
    let (engine, mut reports) = match started {
        Some(s) => s,
        None => Engine::start(runtime.clone(), engine_config(&config, &arn, &client)).await?,
    };
    let params = SessionParams {
        client: &client,
        cluster: config.registration_cluster(),
        instance_arn: &arn,
        engine: &engine,
        usage_interval: config.usage_interval,
    };
    session::run_session(params, &mut reports, shutdown).await;
    info!(container_instance = %arn, "agent shutting down; containers keep running");
    Ok(())
}
