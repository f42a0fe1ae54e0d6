//! The state every handler needs: the control plane's shared state ([`Plane`]: store, ARNs,
//! clock, agent sessions, Fargate settings), the credentials the edge accepts and its metrics,
//! plus, per request, who is calling and how they reached the server.

use crate::metrics::Metrics;
use flotilla_controllers::{AgentTimings, Clock, Controllers, FargateConfig, Plane};
use flotilla_model::arn::ArnContext;
use flotilla_sigv4::{Caller, Credential};
use flotilla_store::Store;
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
    controllers: Mutex<Option<Controllers>>,
}

impl std::ops::Deref for Api {
    type Target = Plane;
    fn deref(&self) -> &Plane {
        &self.plane
    }
}

impl Api {
    /// Builds the API state.
    pub fn new(store: Arc<dyn Store>, config: ApiConfig, clock: Arc<dyn Clock>) -> Self {
        Api {
            plane: Arc::new(Plane::new(store, config.arns.clone(), clock)),
            config,
            metrics: Metrics::new(),
            controllers: Mutex::new(None),
        }
    }

    /// Builder: the agent heartbeat interval and the stopped-task retention (tests shorten
    /// them). Call before the API serves (the plane is not shared yet).
    pub fn with_timings(mut self, timings: AgentTimings) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.plane) {
            p.timings = timings;
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

    /// Starts the controllers ([`Controllers::start`]: agent liveness, stopped-task sweeper,
    /// service loop) once; later calls do nothing. Needs a Tokio runtime; [`crate::router`]
    /// calls it. They stop when the `Api` is dropped.
    pub fn start_background(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut running = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_none() {
            *running = Some(Controllers::start(&self.plane));
        }
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
