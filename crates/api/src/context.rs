//! The state every handler needs: the store, the configuration (credentials, region, account)
//! and the clock, plus who is calling.

use crate::metrics::Metrics;
use crate::sigv4::{Caller, Credential};
use flotilla_model::arn::ArnContext;
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
}

impl Api {
    /// Builds the API state.
    pub fn new(store: Arc<dyn Store>, config: ApiConfig, clock: Arc<dyn Clock>) -> Self {
        Api {
            store,
            config,
            clock,
            metrics: Metrics::new(),
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
