//! The load balancer data plane: HTTP listeners (application load balancer: routed per request
//! by host and path, forwarded over pooled keep-alive connections) and TCP listeners (network
//! load balancer: spliced per connection), served from a plain [`Table`] that [`DataPlane::apply`]
//! swaps in without dropping connections; and the target health [`probe`].
//!
//! It knows nothing of the store, the API or Elastic Load Balancing's records: the integrator
//! maps those onto a [`Table`], and probe results back onto target health.
//!
//! Modules: [`table`] (what to serve; pure data), `routing` (rule matching and backend choice;
//! pure), `matcher` (health check success codes; pure), `state` (the compiled table and the
//! per-backend pools), `upstream` (a backend connection driven by its request), `http` and `tcp` (one request, one connection), [`plane`] (listeners and
//! reloads), `workers` (one single-threaded runtime per core), [`probe`], [`metrics`].

mod body;
mod http;
mod matcher;
pub mod metrics;
pub mod plane;
pub mod probe;
pub mod routing;
mod state;
pub mod table;
mod tcp;
mod upstream;
mod workers;

pub use body::ProxyBody;
pub use metrics::{BackendMetrics, MetricsSnapshot};
pub use plane::{BindError, Config, DataPlane};
pub use probe::{
    probe, FailReason, HealthCheck, HealthCheckProtocol, Matcher, MatcherError, ProbeResult,
};
pub use table::{
    Algorithm, Backend, Listener, ListenerProtocol, Routing, Rule, Table, TargetGroup,
    WeightedGroup,
};
