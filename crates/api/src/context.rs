//! The state every handler needs: the control plane's shared state ([`Plane`]: store, ARNs,
//! clock, agent sessions, Fargate settings), the credentials the edge accepts and its metrics,
//! plus, per request, who is calling and how they reached the server.
//!
//! It also owns the background controllers: started directly (tests, a store nobody else
//! uses), or, with [`Api::with_election`], through a [`Supervisor`] that runs them only while
//! this replica leads.

use crate::metrics::Metrics;
use flotilla_controllers::{
    AgentTimings, Clock, Controllers, FargateConfig, Plane, Role, Supervisor,
};
use flotilla_edge::json::AwsJson;
use flotilla_edge::Service;
use flotilla_model::arn::ArnContext;
use flotilla_secretsmanager::SecretsManager;
use flotilla_sigv4::{Caller, Credential};
use flotilla_ssm::Ssm;
use flotilla_store::{Election, Fence, Store, Topology};
use std::sync::{Arc, Mutex};

/// Static configuration of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Region and account for ARNs.
    pub arns: ArnContext,
    /// The credentials accepted.
    pub credentials: Vec<Credential>,
}

/// Shared state of the API server. It dereferences to its [`Plane`], so handlers reach the
/// store, the clock and the agent registry as `api.store`, `api.clock`, `api.agents`.
pub struct Api {
    /// The control plane's shared state.
    pub plane: Arc<Plane>,
    /// Configuration.
    pub config: ApiConfig,
    /// Prometheus metrics.
    pub metrics: Metrics,
    election: Option<Arc<dyn Election>>,
    topology: Option<Arc<dyn Topology>>,
    replica: Option<crate::admin::ReplicaInfo>,
    controllers: Mutex<Option<Background>>,
    logs: Option<(
        Arc<flotilla_logs_service::Logs>,
        Arc<crate::logs::AgentLogs>,
    )>,
    /// The services served beside ECS on the same endpoint ([`Api::with_service`]).
    services: Vec<Arc<dyn Service>>,
    /// Secrets Manager and Parameter Store, for the `secrets` of tasks ([`Api::with_secrets`]).
    secrets: Option<SecretStores>,
    /// How task role credentials are issued (with the secrets key, [`Api::with_secrets`]).
    task_credentials: Option<crate::task_credentials::TaskCredentialsConfig>,
    /// ECS Exec: the sessions `ExecuteCommand` created here, the agent sessions commands are
    /// ordered through, and the orders waiting for their agent ([`crate::exec`]).
    pub exec: crate::exec::ExecHub,
    /// This replica's metric series (CloudWatch), answered to the other replicas.
    metric_series: Option<Arc<flotilla_cloudwatch::LocalSeries>>,
    /// The request rate limits, per caller and class of operations, in this replica's memory
    /// ([`Api::with_throttle`]; none: nothing is throttled).
    pub(crate) throttle: Option<Mutex<flotilla_throttle::Limiter>>,
    /// Where the audit records go ([`Api::with_audit`]; none: no audit log).
    pub(crate) audit: Option<Arc<crate::audit_log::AuditLog>>,
    /// How this server is reached (http or https) and how it reaches the other replicas.
    transport: crate::transport::Transport,
    /// The identity-based policies of the configured keys that have one
    /// ([`Api::with_policies`], [`crate::authorize`]).
    policies: crate::authorize::Policies,
    /// The task definition records DescribeTaskDefinition answered lately, encoded, each for
    /// the `mod_revision` it was read at ([`crate::ops::describe_task_definition`]).
    pub(crate) described: Mutex<
        flotilla_control::revision_cache::RevisionCache<
            crate::ops::describe_task_definition::Described,
        >,
    >,
}

/// The services a task's `secrets` are read from.
#[derive(Clone)]
pub struct SecretStores {
    /// Secrets Manager.
    pub secrets_manager: Arc<SecretsManager>,
    /// SSM Parameter Store.
    pub parameters: Arc<Ssm>,
}

/// How the controllers run.
enum Background {
    /// Always, on this server.
    Direct(Controllers),
    /// While this replica leads.
    Supervised(Supervisor),
}

impl std::ops::Deref for Api {
    type Target = Plane;
    fn deref(&self) -> &Plane {
        &self.plane
    }
}

impl Api {
    /// Builds the API state. Every store request's latency goes to the metrics.
    pub fn new(store: Arc<dyn Store>, config: ApiConfig, clock: Arc<dyn Clock>) -> Self {
        let metrics = Metrics::new();
        let store = metrics.timed(store);
        Api {
            plane: Arc::new(Plane::new(store, config.arns.clone(), clock)),
            config,
            metrics,
            election: None,
            topology: None,
            replica: None,
            controllers: Mutex::new(None),
            logs: None,
            services: Vec::new(),
            secrets: None,
            task_credentials: None,
            exec: crate::exec::ExecHub::default(),
            metric_series: None,
            throttle: None,
            audit: None,
            transport: crate::transport::Transport::default(),
            policies: crate::authorize::Policies::default(),
            described: Mutex::new(flotilla_control::revision_cache::RevisionCache::new(
                crate::ops::describe_task_definition::DESCRIBED_KEYS,
            )),
        }
    }

    /// Builder: throttles API requests per caller (access key id) and class of operations
    /// with `policy`'s token buckets ([`flotilla_throttle`]), kept in this `Api`'s memory.
    pub fn with_throttle(mut self, policy: flotilla_throttle::Policy) -> Self {
        self.throttle = Some(Mutex::new(flotilla_throttle::Limiter::new(policy)));
        self
    }

    /// Builder: writes an audit record of every mutating and every denied call to `log`
    /// ([`crate::audit`]); its dropped lines are counted on `/metrics`.
    pub fn with_audit(mut self, log: Arc<crate::audit_log::AuditLog>) -> Self {
        self.metrics.register_audit_dropped(log.dropped());
        self.audit = Some(log);
        self
    }

    /// Builder: this server is served over TLS (or not), and calls the other replicas with
    /// this trust ([`crate::transport`]). Without it: plain HTTP.
    pub fn with_transport(mut self, transport: crate::transport::Transport) -> Self {
        self.transport = transport;
        self
    }

    /// How this server is reached and reaches the other replicas.
    pub fn transport(&self) -> &crate::transport::Transport {
        &self.transport
    }

    /// Builder: the identity-based policies of the configured keys that have one; every
    /// request signed with such a key is authorized against it ([`crate::authorize`]). A key
    /// without a policy keeps full access.
    pub fn with_policies(mut self, policies: crate::authorize::Policies) -> Self {
        self.policies = policies;
        self
    }

    /// The keys' policies.
    pub fn policies(&self) -> &crate::authorize::Policies {
        &self.policies
    }

    /// Builder: serves Secrets Manager and SSM Parameter Store beside ECS, on this API's store
    /// (their own key prefixes), region and account, their values sealed with `key`; tasks'
    /// `secrets` are read from them. Task role credentials are issued too, sealed with the same
    /// key, valid for [`flotilla_control::task_credentials::DEFAULT_LIFETIME_SECONDS`] unless
    /// [`Api::with_task_credentials_lifetime`] says otherwise.
    pub fn with_secrets(mut self, key: flotilla_seal::Key) -> Self {
        self.task_credentials = Some(crate::task_credentials::TaskCredentialsConfig {
            key: key.clone(),
            lifetime_seconds: flotilla_control::task_credentials::DEFAULT_LIFETIME_SECONDS,
        });
        let arns = &self.config.arns;
        let sm = Arc::new(SecretsManager::new(
            self.plane.store.clone(),
            key.clone(),
            arns.region.clone(),
            arns.account.clone(),
        ));
        let ssm = Arc::new(Ssm::new(
            self.plane.store.clone(),
            key,
            arns.region.clone(),
            arns.account.clone(),
        ));
        self.services.push(Arc::new(AwsJson(sm.clone())));
        self.services.push(Arc::new(AwsJson(ssm.clone())));
        self.secrets = Some(SecretStores {
            secrets_manager: sm,
            parameters: ssm,
        });
        self
    }

    /// Secrets Manager and Parameter Store, when served.
    pub fn secret_stores(&self) -> Option<&SecretStores> {
        self.secrets.as_ref()
    }

    /// Builder (after [`Api::with_secrets`]): how long issued task role credentials are valid
    /// (at least [`flotilla_control::task_credentials::MIN_LIFETIME_SECONDS`]).
    pub fn with_task_credentials_lifetime(mut self, seconds: u64) -> Self {
        if let Some(c) = self.task_credentials.as_mut() {
            c.lifetime_seconds =
                seconds.max(flotilla_control::task_credentials::MIN_LIFETIME_SECONDS);
        }
        self
    }

    /// How task role credentials are issued, when they are (the server has a secrets key).
    pub fn task_credentials(&self) -> Option<&crate::task_credentials::TaskCredentialsConfig> {
        self.task_credentials.as_ref()
    }

    /// Builder: serves `service` beside ECS on the same endpoint, routed by its marker
    /// (`X-Amz-Target` prefix) and its SigV4 signing name ([`crate::routing`]). This is the
    /// one place a new AWS service plugs in.
    pub fn with_service(mut self, service: Arc<dyn Service>) -> Self {
        self.services.push(service);
        self
    }

    /// The services served beside ECS.
    pub fn services(&self) -> &[Arc<dyn Service>] {
        &self.services
    }

    /// Builder: the region's metrics and alarms (CloudWatch's reader and alarm writer), read by
    /// handlers and controllers as `plane.metrics` / `plane.alarms`. Call before the API serves
    /// (the plane is not shared yet).
    pub fn with_metrics(
        mut self,
        reader: Arc<dyn flotilla_metrics::MetricReader>,
        alarms: Arc<dyn flotilla_metrics::AlarmWriter>,
    ) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.metrics = reader;
            p.alarms = alarms;
        }
        self
    }

    /// Builder: this replica's metric series, answered to the other replicas'
    /// `FlotillaAdmin.MetricQuery` ([`crate::metrics_peers`]).
    pub fn with_metric_series(mut self, series: Arc<flotilla_cloudwatch::LocalSeries>) -> Self {
        self.metric_series = Some(series);
        self
    }

    /// This replica's metric series, when it keeps them.
    pub fn metric_series(&self) -> Option<&Arc<flotilla_cloudwatch::LocalSeries>> {
        self.metric_series.as_ref()
    }

    /// Builder: a loop that runs with the controllers, on the leader only
    /// ([`flotilla_controllers::LeaderLoop`]). Call before the API serves.
    pub fn with_leader_loop(mut self, l: Arc<dyn flotilla_controllers::LeaderLoop>) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.leader_loops.push(l);
        }
        self
    }

    /// Builder (after [`Api::with_metrics`], whose alarms it reads and defines): serves
    /// Application Auto Scaling beside ECS on this API's store, region and account, and runs its
    /// scaling loop with the controllers, on the leader only ([`flotilla_autoscaling`]). Call
    /// before the API serves.
    pub fn with_autoscaling(mut self) -> Self {
        let arns = &self.config.arns;
        let service = Arc::new(flotilla_autoscaling::AutoScaling::new(
            self.plane.store.clone(),
            arns.region.clone(),
            arns.account.clone(),
            self.plane.metrics.clone(),
            self.plane.alarms.clone(),
        ));
        let scaling = Arc::new(flotilla_autoscaling::ScalingLoop::new(
            service.clone(),
            self.plane.clock.clone(),
        ));
        self.services.push(Arc::new(AwsJson(service)));
        self.with_leader_loop(scaling)
    }

    /// Builder: run the controllers only while this replica wins `election` (see
    /// [`Supervisor`]). Without it they always run here.
    pub fn with_election(mut self, election: Arc<dyn Election>) -> Self {
        self.election = Some(election);
        self
    }

    /// Builder: this server as a replica of its installation (what `FlotillaAdmin.Status`
    /// reports), on a store of `topology`.
    pub fn with_replica(
        mut self,
        topology: Arc<dyn Topology>,
        replica: crate::admin::ReplicaInfo,
    ) -> Self {
        self.topology = Some(topology);
        self.replica = Some(replica);
        self
    }

    /// Builder: serve CloudWatch Logs with `logs`, reaching agents through this server's
    /// sessions, which register in `agents` (see [`crate::logs`]).
    pub fn with_logs(
        mut self,
        logs: Arc<flotilla_logs_service::Logs>,
        agents: Arc<crate::logs::AgentLogs>,
    ) -> Self {
        self.logs = Some((logs, agents));
        self
    }

    /// The Logs service, when this server serves it.
    pub fn logs(&self) -> Option<&Arc<flotilla_logs_service::Logs>> {
        self.logs.as_ref().map(|(l, _)| l)
    }

    /// The agent sessions' side of Logs, when this server serves it.
    pub fn agent_logs(&self) -> Option<&Arc<crate::logs::AgentLogs>> {
        self.logs.as_ref().map(|(_, a)| a)
    }

    /// The election, if the controllers run under one.
    pub fn election(&self) -> Option<&Arc<dyn Election>> {
        self.election.as_ref()
    }

    /// The store's topology, if known.
    pub fn topology(&self) -> Option<&Arc<dyn Topology>> {
        self.topology.as_ref()
    }

    /// This server as a replica, if known.
    pub fn replica(&self) -> Option<&crate::admin::ReplicaInfo> {
        self.replica.as_ref()
    }

    /// Builder: the agent heartbeat interval and the stopped-task retention (tests shorten
    /// them). Call before the API serves (the plane is not shared yet).
    pub fn with_timings(mut self, timings: AgentTimings) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.timings = timings;
        }
        self
    }

    /// Builder: how many seconds a minute of a deployment's bake times lasts (60; tests shorten
    /// it). Call before the API serves (the plane is not shared yet).
    pub fn with_deployment_minute(mut self, seconds: f64) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.deployment_minute = seconds;
        }
        self
    }

    /// Builder: this replica's name (the agent beats its sessions write carry it). Call before
    /// the API serves (the plane is not shared yet).
    pub fn with_replica_id(mut self, id: impl Into<String>) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.replica = Some(id.into());
        }
        self
    }

    /// Builder: the managed task network and the Spot warning window. Call before the API
    /// serves (the plane is not shared yet).
    pub fn with_fargate(mut self, fargate: FargateConfig) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.fargate = fargate;
        }
        self
    }

    /// Serves load balancers and Cloud Map to services: the service loop registers, health
    /// checks and drains their tasks through `traffic`, and CreateService accepts
    /// `loadBalancers` and `serviceRegistries`.
    pub fn with_traffic(
        mut self,
        traffic: Arc<dyn flotilla_controllers::traffic::Traffic>,
    ) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.traffic = Some(traffic);
        }
        self
    }

    /// Starts the controllers ([`Controllers::start`]: agent liveness, stopped-task sweeper,
    /// service loop) once, under the election's [`Supervisor`] if there is one; later calls do
    /// nothing. Needs a Tokio runtime; [`crate::router`] calls it. They stop when the `Api` is
    /// dropped (without resigning: see [`Api::stop_background`]).
    pub fn start_background(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut running = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_some() {
            return;
        }
        *running = Some(match &self.election {
            None => {
                self.metrics.set_leadership(Some(1));
                Background::Direct(Controllers::start(&self.plane, &Fence::unfenced()))
            }
            Some(election) => {
                let sup = Supervisor::spawn(self.plane.clone(), election.clone());
                self.metrics.set_leadership(None);
                let mut role = sup.role();
                let metrics_role = self.metrics.leadership_recorder();
                // Follows the role into the metrics; ends with the supervisor.
                tokio::spawn(async move {
                    loop {
                        let term = match *role.borrow_and_update() {
                            Role::Leader { term } => Some(term),
                            Role::Campaigning | Role::Stopped => None,
                        };
                        metrics_role.set(term);
                        if role.changed().await.is_err() {
                            metrics_role.set(None);
                            return;
                        }
                    }
                });
                Background::Supervised(sup)
            }
        });
    }

    /// This replica's role in the election (`None` when the controllers run without one, or
    /// have not started).
    pub fn role(&self) -> Option<Role> {
        let running = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        match running.as_ref()? {
            Background::Direct(_) => None,
            Background::Supervised(s) => Some(*s.role().borrow()),
        }
    }

    /// Stops the controllers; a leading replica resigns, so another takes over at once.
    pub async fn stop_background(&self) {
        let running = self
            .controllers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match running {
            Some(Background::Supervised(s)) => s.shutdown().await,
            Some(Background::Direct(c)) => c.stop(),
            None => {}
        }
        self.metrics.set_leadership(None);
    }
}

/// One request's view: the API plus the verified caller.
pub struct Ctx<'a> {
    /// The API state.
    pub api: &'a Api,
    /// Who signed the request.
    pub caller: Caller,
    /// Request time, read once per request.
    pub now: f64,
    /// The `Host` header the client reached the server with (DiscoverPollEndpoint answers it).
    pub host: Option<String>,
}

impl Ctx<'_> {
    /// ARN builder.
    pub fn arns(&self) -> &ArnContext {
        &self.api.config.arns
    }
    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.api.store.as_ref()
    }
    /// The control plane.
    pub fn plane(&self) -> &Plane {
        &self.api.plane
    }
}
