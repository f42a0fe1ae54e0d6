//! Elastic Load Balancing v2, served by Flotilla on the ECS endpoint (awsQuery: `POST /` with a
//! form body naming `Action=...`, SigV4 scope `elasticloadbalancing`), enough for the aws CLI,
//! boto3 and infrastructure code that puts ECS services behind load balancers.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`health`] (pure): the target health state machine (initial, healthy, unhealthy,
//!   draining; unused and unavailable derived).
//! - [`record`] (pure): load balancers, listeners with their rules, target groups and their
//!   targets as stored, and ELB's rules for them (names, health-check defaults and ranges,
//!   attributes, actions and conditions).
//! - [`arn`] (pure): ELB's ARNs and the store keys they lead to.
//! - [`targets`]: the target API other crates call (register, deregister, observe a health
//!   check, sweep, snapshot, health), on the store under [`targets::prefix`].
//! - [`weights`]: a listener rule's forward action read and its weights rewritten (ECS's
//!   blue/green, linear and canary deployments).
//! - [`service`]: [`Elbv2`], the operations, served through `flotilla_edge::query::AwsQuery`.
//!
//! **Architecture Invariant:** every write is a compare-and-swap on the records it read
//! (`Absent` for creates); a listener and the target groups it forwards to change in one
//! transaction, so a target group in use is never deleted.

#![warn(missing_docs)]

/// Seconds since the Unix epoch; timestamps go on the wire as ISO 8601.
pub type Timestamp = f64;

/// Every shape of the Elastic Load Balancing v2 model, generated from `spec/service-2.json`.
#[allow(missing_docs, clippy::all, clippy::doc_lazy_continuation)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod arn;
pub mod error;
pub mod health;
pub mod record;
pub mod service;
pub mod targets;
pub mod weights;

pub use error::Elbv2Error;
pub use service::Elbv2;

/// The model without documentation, for the awsQuery protocol and input validation.
pub static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
