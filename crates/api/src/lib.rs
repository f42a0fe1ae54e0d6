//! The HTTP edge of Flotilla: the ECS API and the agent session.
//!
//! A request flows: [`server`] (HTTP, request id, metrics) -> [`flotilla_sigv4`] (who is calling) ->
//! [`ops::dispatch`] (which operation; the body is validated against the ECS model and
//! deserialized into the generated request type) -> one thin handler per operation in `ops/`
//! (parse, call `flotilla_control` for the rules and `flotilla_controllers` for the writers,
//! answer) -> the generated response type, serialized back.
//!
//! Handlers return `Result<Response, EcsError>`; nothing on this path panics or answers 5xx for
//! bad input. A handler never imports another handler: what several share lives in
//! [`shared`].

#![warn(missing_docs)]

pub mod admin;
pub mod agent_identity;
pub mod audit;
pub mod audit_log;
pub mod authorize;
pub mod capacity_metrics;
pub mod console;
pub mod context;
pub mod exec;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod metrics_peers;
pub mod ops;
pub mod paginate;
pub mod peer_call;
pub mod regions;
pub mod routing;
pub mod secrets;
pub mod server;
pub mod session;
pub mod shared;
pub mod task_credentials;
pub mod transport;
pub mod usage_gauges;

pub use context::{Api, ApiConfig};
pub use flotilla_controllers::fargate;
pub use flotilla_controllers::{AgentTimings, Clock, FargateConfig, SystemClock};
pub use regions::Regions;
pub use server::router;
