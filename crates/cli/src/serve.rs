//! Runs the control plane: opens the store (`--store`, by default the embedded SQLite store in
//! the data directory) with its leader election, builds the API and serves it until Ctrl-C or
//! SIGTERM. The controllers run under the election's supervisor: always on an embedded store
//! (its one server is always leader), on the elected replica on etcd. On shutdown a leading
//! replica resigns, so another takes over at once.

use crate::config::ServerConfig;
use anyhow::Context;
use flotilla_api::admin::ReplicaInfo;
use flotilla_api::{router, Api, Clock, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;

/// This replica's name in the leader election: the host name and the address it serves on.
fn replica_id(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}/{addr}")
}

/// Serves until a shutdown signal. With `local_agents`, also runs container agents in this
/// process (as `flotilla dev` does: one in its cluster, one serving the managed Fargate pool),
/// pointed at this server once it listens.
pub async fn run(cfg: ServerConfig, local_agents: Vec<LocalAgent>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let id = replica_id(addr);
    let (store, election, topology) =
        flotilla_store::open_replica(&cfg.store, &id, cfg.election.clone())
            .await
            .with_context(|| format!("opening the store {}", cfg.store))?;
    let me = ReplicaInfo {
        id: id.clone(),
        url: format!("http://{addr}"),
        started_at: SystemClock.now(),
    };
    // On etcd the replica records itself on a lease; the embedded stores have one replica.
    let announced = topology.announce(
        me.key(),
        serde_json::to_vec(&me).context("encoding this replica")?,
    );
    // CloudWatch Logs: metadata in the store, this replica's PutLogEvents streams in its data
    // directory, containers' streams on their hosts (reached through the agents' sessions).
    let log_store = Arc::new(
        flotilla_logstore::LogStore::open(
            cfg.data_dir.join("logs"),
            flotilla_logstore::Limits::default(),
        )
        .with_context(|| format!("opening the log store in {}", cfg.data_dir.display()))?,
    );
    let agent_logs = Arc::new(flotilla_api::logs::AgentLogs::default());
    let owners = flotilla_api::logs::EdgeOwners::new(
        store.clone(),
        agent_logs.clone(),
        Some(id.clone()),
        topology.shared(),
        cfg.api.arns.region.clone(),
        cfg.api.credentials.first().cloned(),
    );
    let logs = Arc::new(flotilla_logs_service::Logs::new(
        store.clone(),
        flotilla_logs::names::Account {
            region: cfg.api.arns.region.clone(),
            account: cfg.api.arns.account.clone(),
        },
        log_store,
        Arc::new(owners),
        Some(id.clone()),
        topology.shared(),
    ));
    let janitor =
        flotilla_logs_service::janitor::spawn(logs.clone(), std::time::Duration::from_secs(60));
    // Load balancers: every replica serves the listeners; the health checker runs with the
    // controllers; the service loop registers and drains tasks (`flotilla_traffic`).
    let data_plane = cfg.lb_address.map(|bind| {
        let plane = Arc::new(flotilla_lb::DataPlane::new(flotilla_lb::Config::default()));
        let feeder = tokio::spawn(flotilla_traffic::feeder::run(
            store.clone(),
            plane.clone(),
            bind,
        ));
        (plane, feeder)
    });
    // Elastic Load Balancing v2 (awsQuery), its records in the same store.
    let elbv2 = flotilla_elbv2::Elbv2::new(
        store.clone(),
        cfg.api.arns.region.clone(),
        cfg.api.arns.account.clone(),
    );
    // AWS Cloud Map: its records in the store under `servicediscovery/`.
    let service_discovery = flotilla_servicediscovery::ServiceDiscovery::new(
        store.clone(),
        cfg.api.arns.region.clone(),
        cfg.api.arns.account.clone(),
    );
    let api = Arc::new(
        Api::new(store.clone(), cfg.api.clone(), Arc::new(SystemClock))
            .with_traffic(Arc::new(flotilla_traffic::StoreTraffic::new(store)))
            .with_timings(cfg.timings)
            .with_fargate(cfg.fargate.clone())
            .with_replica_id(id.clone())
            .with_election(election)
            .with_replica(topology, me)
            .with_secrets(cfg.secrets_key.clone())
            .with_task_credentials_lifetime(cfg.task_credentials_seconds)
            .with_service(Arc::new(flotilla_edge::json::AwsJson(
                flotilla_logs_service::LogsApi(logs.clone()),
            )))
            .with_service(Arc::new(flotilla_edge::query::AwsQuery(elbv2)))
            .with_service(Arc::new(flotilla_edge::json::AwsJson(service_discovery)))
            .with_logs(logs, agent_logs),
    );
    tracing::info!(%addr, store = %cfg.store, region = %cfg.api.arns.region, account = %cfg.api.arns.account, "serving the ECS API");
    for line in &cfg.banner {
        println!("{line}");
    }
    // Tests and scripts wait for this line to know the server is ready.
    println!("listening on http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let agents = local_agents
        .into_iter()
        .map(|la| -> anyhow::Result<_> {
            let mut stop = stop_rx.clone();
            let config = la.into_config(format!("http://{addr}"));
            let cluster = config.registration_cluster().to_string();
            let managed = config.managed;
            let client = crate::client::EcsClient::new(
                config.server_urls.join(","),
                config.region.clone(),
                config.credentials.access_key_id.clone(),
                config.credentials.secret_access_key.clone(),
                config.credentials.session_token.clone(),
            )?;
            Ok(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                // Zero configuration: the local agent's cluster exists (CreateCluster is
                // idempotent). The managed pool is no cluster.
                if !managed {
                    if let Err(e) = client
                        .call("CreateCluster", serde_json::json!({"clusterName": cluster}))
                        .await
                    {
                        tracing::error!(error = %e, "could not create the local agent's cluster");
                        return;
                    }
                }
                if let Err(e) = flotilla_agent::run(config, shutdown).await {
                    tracing::error!(error = %e, cluster = %cluster, "a local agent stopped");
                }
            }))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let result = axum::serve(listener, router(api.clone()))
        .with_graceful_shutdown(async move {
            shutdown().await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving HTTP");
    for a in agents {
        let _ = a.await;
    }
    api.stop_background().await;
    if let Some(a) = announced {
        a.abort();
    }
    janitor.abort();
    if let Some((plane, feeder)) = data_plane {
        feeder.abort();
        plane.shutdown().await;
    }
    result?;
    tracing::info!("shut down");
    Ok(())
}

/// The in-process agent of `flotilla dev`, completed with the server URL once it listens.
pub struct LocalAgent(pub Box<dyn FnOnce(String) -> flotilla_agent::AgentConfig + Send>);

impl LocalAgent {
    fn into_config(self, server_url: String) -> flotilla_agent::AgentConfig {
        (self.0)(server_url)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
