//! botocore service models, shared by every AWS service Flotilla serves (ECS, CloudWatch
//! Logs, ...): [`generate`] writes a service's Rust types from its vendored `service-2.json` at
//! build time (a service crate's `build.rs` calls it), and [`Validator`] checks a request's JSON
//! against the same model at run time.
//!
//! Architecture invariant: pure at run time (no I/O, no clock); only [`generate`], which runs
//! in build scripts, reads and writes files.

#![warn(missing_docs)]

mod codegen;
pub mod validate;

pub use codegen::generate;
pub use validate::{Invalid, InvalidKind, Validator};
