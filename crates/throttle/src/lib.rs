//! API request throttling, as ECS does it: token buckets ([`bucket`]), here one per caller
//! (access key id) and class of operations ([`classes`]: ECS's categories and rates by
//! default, every other service's reads and other operations), kept in a bounded map
//! ([`limiter`]). A request over its bucket's rate is answered `ThrottlingException`
//! ("Rate exceeded"), which the AWS SDKs' retry modes back off on and retry.
//!
//! The edge (`flotilla-api`) asks a [`Limiter`] once per API request, right after the
//! signature is verified; the agent session, ECS Exec, the health and metrics endpoints and
//! Flotilla's own calls between replicas never come here.
//!
//! **Architecture Invariant:** pure: no clock (the time is an argument), no I/O, no async
//! runtime, no dependency.

#![warn(missing_docs)]

pub mod bucket;
pub mod classes;
pub mod limiter;

pub use bucket::{Decision, Limit, TokenBucket};
pub use classes::{class_of, parse_name, Access, BucketName};
pub use limiter::{parse_setting, Limiter, Policy, DEFAULT_MAX_BUCKETS};
