//! The ECS model: every request and response shape of the Amazon ECS API, generated at build
//! time from the botocore model (`spec/service-2.json`), plus the pieces of ECS semantics that are
//! pure functions: ARNs and ids, input validation against the model, task definition rules, and
//! the ECS error type.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and has no randomness. Callers
//! hand it times, ids and seeds.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as ECS puts timestamps on the wire (a JSON number).
pub type Timestamp = f64;

/// Every shape of the ECS model, generated from `spec/service-2.json`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

pub use shapes::Operation;

pub mod arn;
pub mod error;
pub mod fargate;
pub mod status;
pub mod task_definition;
pub mod validate;

pub use error::{EcsError, ErrorCode};
