//! Runs the control plane: opens the store (`--store`, by default the embedded SQLite store in
//! the data directory) with its leader election, builds the API and serves it until Ctrl-C or
//! SIGTERM. Each region served (`--region`, the primary, and `--regions`; any region for
//! `flotilla dev`) has its own store, election and `Api` ([`open_region`]), and requests go
//! to their region by their credential scope ([`flotilla_api::Regions`]). The controllers run under the election's supervisor: always on an embedded store
//! (its one server is always leader), on the elected replica on etcd. On shutdown a leading
//! replica resigns, so another takes over at once.
//!
//! The listener is TLS when a certificate was given (`--tls-cert`/`--tls-key`) or generated
//! (`dev --tls`): every route of the router (the APIs, /metrics, health, agent sessions, ECS
//! Exec, the console) is then served over it ([`TlsListener`]); plain HTTP only on loopback
//! unless `--insecure-http` ([`crate::tls`]).

use crate::config::{RegionsServed, ServerConfig};
use anyhow::Context;
use flotilla_api::admin::ReplicaInfo;
use flotilla_api::{Api, Clock, SystemClock};
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

/// What every region of this process shares: the configuration and this replica.
struct Replica {
    cfg: ServerConfig,
    id: String,
    me: ReplicaInfo,
    /// The audit log every region writes to.
    audit: Option<Arc<flotilla_api::audit_log::AuditLog>>,
}

/// One region opened: its `Api`, its store, and the tasks that run beside it (its janitor, its
/// record under `replicas/ID`), aborted at shutdown.
struct OpenedRegion {
    api: Arc<Api>,
    store: Arc<dyn flotilla_store::Store>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Opens `region`'s store (the installation's for the primary region, its own beside it for
/// the others: [`flotilla_store::StoreUrl::for_region`]) with its leader election, and builds
/// its `Api`: ECS and every service beside it, all in that region (its ARNs, its store, its
/// controllers under its own election). Load balancers are served in the primary region only
/// (their listeners share one address); other regions refuse Elastic Load Balancing.
async fn open_region(replica: &Replica, region: &str) -> anyhow::Result<OpenedRegion> {
    let cfg = &replica.cfg;
    let id = &replica.id;
    let primary = region == cfg.api.arns.region;
    let (url, data_dir) = if primary {
        (cfg.store.clone(), cfg.data_dir.clone())
    } else {
        (
            cfg.store.for_region(region),
            cfg.data_dir.join("regions").join(region),
        )
    };
    let (store, election, topology) = flotilla_store::open_replica(&url, id, cfg.election.clone())
        .await
        .with_context(|| format!("opening the store {url} (region {region})"))?;
    let mut tasks = Vec::new();
    // On etcd the replica records itself on a lease (in every region's store: each region's
    // API finds the other replicas there); the embedded stores have one replica.
    tasks.extend(topology.announce(
        replica.me.key(),
        serde_json::to_vec(&replica.me).context("encoding this replica")?,
    ));
    let arns = flotilla_model::arn::ArnContext {
        region: region.to_string(),
        account: cfg.api.arns.account.clone(),
    };
    // CloudWatch Logs: metadata in the store, this replica's PutLogEvents streams in its data
    // directory, containers' streams on their hosts (reached through the agents' sessions).
    let log_store = Arc::new(
        flotilla_logstore::LogStore::open(
            data_dir.join("logs"),
            flotilla_logstore::Limits::default(),
        )
        .with_context(|| format!("opening the log store in {}", data_dir.display()))?,
    );
    let agent_logs = Arc::new(flotilla_api::logs::AgentLogs::default());
    let transport = cfg.tls.api_transport();
    let owners = flotilla_api::logs::EdgeOwners::new(
        store.clone(),
        agent_logs.clone(),
        Some(id.clone()),
        topology.shared(),
        arns.region.clone(),
        cfg.api.credentials.first().cloned(),
    )
    .with_http(transport.http_client());
    let logs = Arc::new(flotilla_logs_service::Logs::new(
        store.clone(),
        flotilla_logs::names::Account {
            region: arns.region.clone(),
            account: arns.account.clone(),
        },
        log_store,
        Arc::new(owners),
        Some(id.clone()),
        topology.shared(),
    ));
    tasks.push(flotilla_logs_service::janitor::spawn(
        logs.clone(),
        std::time::Duration::from_secs(60),
    ));
    // Elastic Load Balancing v2 (awsQuery), its records in the same store.
    let elbv2: Arc<dyn flotilla_edge::Service> = Arc::new(flotilla_edge::query::AwsQuery(
        flotilla_elbv2::Elbv2::new(store.clone(), arns.region.clone(), arns.account.clone()),
    ));
    let elbv2: Arc<dyn flotilla_edge::Service> = if primary {
        elbv2
    } else {
        Arc::new(flotilla_api::regions::OnlyIn::new(
            elbv2,
            cfg.api.arns.region.clone(),
        ))
    };
    // AWS Cloud Map: its records in the store under `servicediscovery/`.
    let service_discovery = flotilla_servicediscovery::ServiceDiscovery::new(
        store.clone(),
        arns.region.clone(),
        arns.account.clone(),
    );
    // CloudWatch metrics: this replica's series in DATA_DIR/metrics, every replica's merged by
    // a query, alarms in the store evaluated on the leader.
    let resolution = cfg.metrics_period_seconds;
    let series = Arc::new(
        flotilla_cloudwatch::LocalSeries::open(
            data_dir.join("metrics"),
            flotilla_cloudwatch::series::Limits::at(resolution),
            SystemClock.now(),
        )
        .with_context(|| format!("opening the metrics in {}", data_dir.display()))?,
    );
    let peers: Option<Arc<dyn flotilla_cloudwatch::reader::Peers>> = topology.shared().then(|| {
        Arc::new(
            flotilla_api::metrics_peers::ReplicaPeers::new(
                store.clone(),
                id.clone(),
                arns.region.clone(),
                cfg.api.credentials.first().cloned(),
            )
            .with_http(transport.http_client()),
        ) as Arc<dyn flotilla_cloudwatch::reader::Peers>
    });
    let region_metrics = Arc::new(flotilla_cloudwatch::RegionMetrics::new(
        series.clone(),
        store.clone(),
        peers,
        arns.region.clone(),
        arns.account.clone(),
    ));
    let evaluator = Arc::new(flotilla_cloudwatch::evaluator::Evaluator::new(
        region_metrics.clone(),
        store.clone(),
        Arc::new(|| SystemClock.now()),
    ));
    let config = flotilla_api::ApiConfig {
        arns,
        credentials: cfg.api.credentials.clone(),
    };
    let mut api = Api::new(store.clone(), config, Arc::new(SystemClock));
    // Throttling buckets live in each region's `Api`, in this replica's memory.
    if let Some(policy) = &cfg.throttle {
        api = api.with_throttle(policy.clone());
    }
    if let Some(log) = &replica.audit {
        api = api.with_audit(log.clone());
    }
    let api = Arc::new(
        api.with_traffic(Arc::new(flotilla_traffic::StoreTraffic::new(store.clone())))
            .with_timings(cfg.timings)
            .with_policies(cfg.policies.clone())
            .with_fargate(cfg.fargate.clone())
            .with_deployment_minute(cfg.deployment_minute)
            .with_replica_id(id.clone())
            .with_transport(transport)
            .with_election(election)
            .with_replica(topology, replica.me.clone())
            .with_secrets(cfg.secrets_key.clone())
            .with_task_credentials_lifetime(cfg.task_credentials_seconds)
            .with_service(Arc::new(flotilla_edge::json::AwsJson(
                flotilla_logs_service::LogsApi(logs.clone()),
            )))
            .with_service(elbv2)
            .with_service(Arc::new(flotilla_edge::json::AwsJson(service_discovery)))
            .with_service(Arc::new(flotilla_edge::json::AwsJson(
                flotilla_cloudwatch::CloudWatch::new(region_metrics.clone()),
            )))
            .with_metrics(region_metrics.clone(), region_metrics.clone())
            .with_metric_series(series.clone())
            .with_leader_loop(Arc::new(AlarmLoop(evaluator)))
            .with_logs(logs, agent_logs)
            // After `with_metrics`: Application Auto Scaling reads and defines alarms through it.
            .with_autoscaling(),
    );
    tasks.push(flotilla_controllers::usage_metrics::spawn(
        Arc::downgrade(&api.plane),
        resolution,
        Arc::new(move |samples, at, now| {
            if let Err(e) = series.record(&samples, Some(flotilla_metrics::ecs::UNIT), at, now) {
                tracing::warn!(error = %e, "ECS metrics of a period were not recorded");
            }
            if let Err(e) = series.persist(now) {
                tracing::warn!(error = %e, "the metrics snapshot could not be written");
            }
        }),
    ));
    Ok(OpenedRegion { api, store, tasks })
}

/// CloudWatch's alarm evaluation, run with the controllers on the leader.
struct AlarmLoop(Arc<flotilla_cloudwatch::evaluator::Evaluator>);

impl flotilla_controllers::LeaderLoop for AlarmLoop {
    fn start(&self, fence: &flotilla_store::Fence) -> Vec<tokio::task::JoinHandle<()>> {
        vec![self.0.clone().spawn(fence.clone())]
    }
}

/// Where `flotilla dev` records the regions it opened on demand (`opened-regions/NAME`, in the
/// primary region's store), so that it opens them again when it starts: their controllers run
/// from the start, not from their first request.
const OPENED_REGIONS: &str = "opened-regions/";

/// `flotilla dev`'s regions: any region, opened on its first request.
struct AnyRegion {
    replica: Arc<Replica>,
    primary_store: Arc<dyn flotilla_store::Store>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

#[async_trait::async_trait]
impl flotilla_api::regions::OpenRegion for AnyRegion {
    async fn open(&self, region: &str) -> Result<Arc<Api>, String> {
        let opened = open_region(&self.replica, region)
            .await
            .map_err(|e| format!("{e:#}"))?;
        self.primary_store
            .txn(flotilla_store::Txn::new().put(format!("{OPENED_REGIONS}{region}"), Vec::new()))
            .await
            .map_err(|e| format!("recording the region: {e}"))?;
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(opened.tasks);
        Ok(opened.api)
    }
}

/// The regions `flotilla dev` opened before (see [`OPENED_REGIONS`]).
async fn opened_before(store: &dyn flotilla_store::Store) -> anyhow::Result<Vec<String>> {
    let page = store
        .list(OPENED_REGIONS, None, 0)
        .await
        .context("listing the regions opened before")?;
    Ok(page
        .items
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(OPENED_REGIONS))
        .filter(|name| flotilla_api::regions::is_region_name(name))
        .map(str::to_string)
        .collect())
}

/// Serves until a shutdown signal. With `local_agents`, also runs container agents in this
/// process (as `flotilla dev` does: one in its cluster, one serving the managed Fargate pool),
/// pointed at this server once it listens.
pub async fn run(cfg: ServerConfig, local_agents: Vec<LocalAgent>) -> anyhow::Result<()> {
    // A socket per agent session: the soft limit many systems start with (1024) is far below
    // what thousands of hosts need, and the hard limit is there to be used.
    match crate::open_files::raise_to_hard() {
        crate::open_files::Raised::Enough(limit) => {
            tracing::debug!(?limit, "open files limit")
        }
        crate::open_files::Raised::Short { have, want } => {
            tracing::warn!(have, want, "could not raise the open files limit")
        }
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let id = replica_id(addr);
    let scheme = cfg.tls.scheme();
    let me = ReplicaInfo {
        id: id.clone(),
        url: format!("{scheme}://{addr}"),
        started_at: SystemClock.now(),
    };
    let audit = match &cfg.audit_log {
        Some(path) => Some(Arc::new(
            flotilla_api::audit_log::AuditLog::open(path)
                .with_context(|| format!("opening the audit log {}", path.display()))?,
        )),
        None => None,
    };
    match &cfg.throttle {
        Some(policy) => {
            let overrides: Vec<String> = policy
                .overrides()
                .map(|(name, l)| format!("{name}={}/{}", l.burst, l.rate))
                .collect();
            tracing::info!(limits = %overrides.join(","), max_buckets = policy.max_buckets, "throttling API requests per access key (ECS's limits unless overridden)");
        }
        None => tracing::info!("API requests are not throttled"),
    }
    let replica = Arc::new(Replica {
        cfg: cfg.clone(),
        id,
        me,
        audit,
    });
    let primary = open_region(&replica, &cfg.api.arns.region).await?;
    let tasks = Arc::new(std::sync::Mutex::new(primary.tasks));
    // Load balancers (primary region): every replica serves the listeners; the health checker
    // runs with the controllers; the service loop registers and drains tasks
    // (`flotilla_traffic`).
    let data_plane = cfg.lb_address.map(|bind| {
        let plane = Arc::new(flotilla_lb::DataPlane::new(flotilla_lb::Config::default()));
        let feeder = tokio::spawn(flotilla_traffic::feeder::run(
            primary.store.clone(),
            plane.clone(),
            bind,
        ));
        (plane, feeder)
    });
    let mut regions = flotilla_api::Regions::new(primary.api.clone());
    match &cfg.regions {
        RegionsServed::Listed(names) => {
            for name in names {
                let opened = open_region(&replica, name).await?;
                tasks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(opened.tasks);
                regions = regions.with_region(opened.api);
            }
        }
        RegionsServed::Any => {
            for name in opened_before(primary.store.as_ref()).await? {
                if name == cfg.api.arns.region {
                    continue;
                }
                let opened = open_region(&replica, &name).await?;
                tasks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(opened.tasks);
                tracing::info!(region = %name, "serving a region opened before");
                regions = regions.with_region(opened.api);
            }
            regions = regions.with_any(Arc::new(AnyRegion {
                replica: replica.clone(),
                primary_store: primary.store.clone(),
                tasks: tasks.clone(),
            }));
        }
    }
    let regions = Arc::new(regions);
    tracing::info!(%addr, store = %cfg.store, region = %cfg.api.arns.region, regions = %cfg.regions, account = %cfg.api.arns.account, "serving the ECS API");
    for line in &cfg.banner {
        println!("{line}");
    }
    // Tests and scripts wait for this line to know the server is ready.
    println!("listening on {scheme}://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let agents = local_agents
        .into_iter()
        .map(|la| -> anyhow::Result<_> {
            let mut stop = stop_rx.clone();
            let config = la.into_config(format!("{scheme}://{addr}"));
            let cluster = config.registration_cluster().to_string();
            let managed = config.managed;
            let client = crate::client::EcsClient::new(
                config.server_urls.join(","),
                config.region.clone(),
                config.credentials.access_key_id.clone(),
                config.credentials.secret_access_key.clone(),
                config.credentials.session_token.clone(),
            )?
            .with_ca_file(config.ca_file.as_deref())?;
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
    // With each connection's peer address, for the audit log (`ConnectInfo<SocketAddr>`).
    let app = regions.clone().router();
    let stopping = async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    };
    let result = match &cfg.tls.server {
        Some(tls) => {
            let incoming = flotilla_tls::incoming::TlsIncoming::new(listener, tls.config())?;
            let app = app
                .layer(axum::middleware::map_request(tls_peer_as_socket_addr))
                .into_make_service_with_connect_info::<TlsPeer>();
            axum::serve(TlsListener(incoming), app)
                .with_graceful_shutdown(stopping)
                .await
        }
        None => {
            // Each response is written whole: Nagle's algorithm would only hold back a reply
            // behind the client's delayed ACK of the previous one.
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopping)
            .await
        }
    }
    .context("serving HTTP");
    for a in agents {
        let _ = a.await;
    }
    regions.stop_background().await;
    for task in tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        task.abort();
    }
    if let Some((plane, feeder)) = data_plane {
        feeder.abort();
        plane.shutdown().await;
    }
    result?;
    tracing::info!("shut down");
    Ok(())
}

/// The peer address of a TLS connection (axum's `ConnectInfo` for [`TlsListener`]).
#[derive(Clone, Copy, Debug)]
struct TlsPeer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

/// Gives a request over TLS the `ConnectInfo<SocketAddr>` a plain one has, so what reads the
/// peer address (the audit log) needs not know how the connection was made.
async fn tls_peer_as_socket_addr(mut req: axum::extract::Request) -> axum::extract::Request {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<TlsPeer>>()
        .map(|c| c.0 .0);
    if let Some(addr) = peer {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
    }
    req
}

/// Connections whose TLS handshake is done, for `axum::serve`.
struct TlsListener(flotilla_tls::incoming::TlsIncoming);

impl axum::serve::Listener for TlsListener {
    type Io = flotilla_tls::tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.0.local_addr())
    }
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
