//! The ECS API over HTTP.
//!
//! This is the only crate that knows about HTTP, `X-Amz-Target` and SigV4. A request flows:
//! [`server`] (HTTP, request id, metrics) -> [`flotilla_sigv4`] (who is calling) -> [`ops::dispatch`] (which
//! operation; the body is validated against the ECS model and deserialized into the generated
//! request type) -> one handler per operation in `ops/` (reads and writes the [`Store`] through
//! [`records`]) -> the generated response type, serialized back.
//!
//! Handlers return `Result<Response, EcsError>`; nothing on this path panics or answers 5xx for
//! bad input.
//!
//! [`Store`]: flotilla_store::Store

#![warn(missing_docs)]

pub mod agents;
pub mod context;
pub mod fargate;
pub mod instances;
pub mod metrics;
pub mod ops;
pub mod paginate;
pub mod placement;
pub mod records;
pub mod server;
pub mod service_loop;
pub mod service_scheduler;
pub mod services;
pub mod session;
pub mod tasks;

pub use agents::AgentTimings;
pub use context::{Api, ApiConfig, Clock, SystemClock};
pub use fargate::FargateConfig;
pub use server::router;
