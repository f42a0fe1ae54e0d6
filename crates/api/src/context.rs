//! The state every handler needs: the store, the configuration (credentials, region, account),
//! the clock, the live agent sessions, plus who is calling and how they reached the server.

use crate::agents::{AgentTimings, Agents};
use crate::fargate::FargateConfig;
use crate::metrics::Metrics;
use flotilla_model::arn::ArnContext;
use flotilla_sigv4::{Caller, Credential};
use flotilla_store::Store;
use std::sync::Arc;

/// A source of wall-clock time, passed in so tests can control it.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> f64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// Static configuration of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Region and account for ARNs.
    pub arns: ArnContext,
    /// The credentials accepted.
    pub credentials: Vec<Credential>,
}

/// Shared state of the API server.
pub struct Api {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Configuration.
    pub config: ApiConfig,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Heartbeat interval and stopped-task retention.
    pub timings: AgentTimings,
    /// Live agent sessions, connection deadlines and the latest usage per task (in memory).
    pub agents: Agents,
    /// The managed task network and the Spot warning.
    pub fargate: FargateConfig,
    background: std::sync::atomic::AtomicBool,
}

impl Api {
    /// Builds the API state.
    pub fn new(store: Arc<dyn Store>, config: ApiConfig, clock: Arc<dyn Clock>) -> Self {
        Api {
            store,
            config,
            clock,
            metrics: Metrics::new(),
            timings: AgentTimings::default(),
            agents: Agents::default(),
            fargate: FargateConfig::default(),
            background: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Builder: the agent heartbeat interval and the stopped-task retention (tests shorten
    /// them).
    pub fn with_timings(mut self, timings: AgentTimings) -> Self {
        self.timings = timings;
        self
    }

    /// Builder: the managed task network and the Spot warning window.
    pub fn with_fargate(mut self, fargate: FargateConfig) -> Self {
        self.fargate = fargate;
        self
    }

    /// Starts the background loops (agent liveness, stopped-task sweeper, service scheduler) once; later calls do
    /// nothing. Needs a Tokio runtime; [`crate::router`] calls it. The loops end when the `Api`
    /// is dropped.
    pub fn start_background(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.background.swap(true, Ordering::SeqCst) {
            return;
        }
        crate::agents::spawn_background(Arc::downgrade(self));
        crate::service_loop::spawn(Arc::downgrade(self));
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
}
