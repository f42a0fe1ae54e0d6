//! CloudWatch Logs as Flotilla serves it, the pure part: every request and response shape of
//! the Logs API generated at build time from the botocore model (`spec/service-2.json`), the
//! error type, and the rules that need no I/O:
//!
//! - [`names`]: log group and stream ARNs, the stream name the `awslogs` driver gives a
//!   container (`prefix/container/task-id`), store keys;
//! - [`retention`]: the retention values PutRetentionPolicy allows, and what is expired;
//! - [`batch`]: PutLogEvents' batch rules (order, span, size, too old/new/expired);
//! - [`filter`]: filter patterns (terms, quoted phrases, `?` alternatives, `-` exclusions);
//! - [`token`]: GetLogEvents' forward/backward tokens, FilterLogEvents' and the Describe
//!   operations' `nextToken`;
//! - [`query`]: what a reader asks the owner of a stream (its host's agent or a server) and
//!   what it answers, and how FilterLogEvents merges the answers of several owners;
//! - [`awslogs`]: the `awslogs` log driver's options in a container definition, checked as
//!   ECS and Docker check them; [`multiline`]: joining lines into events with
//!   `awslogs-datetime-format` or `awslogs-multiline-pattern`.
//!
//! Architecture invariant: no I/O, no clock, no randomness; callers pass times in (epoch
//! milliseconds, as Logs puts them on the wire).

#![warn(missing_docs)]

/// Every shape of the CloudWatch Logs model, generated from `spec/service-2.json`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

/// A timestamp member of the model (Logs has none: its times are `long` epoch milliseconds).
pub type Timestamp = f64;

pub use shapes::Operation;

pub mod awslogs;
pub mod batch;
pub mod error;
pub mod filter;
pub mod multiline;
pub mod names;
pub mod query;
pub mod retention;
pub mod token;
pub mod validate;

pub use error::{LogsError, LogsErrorCode};

/// The `X-Amz-Target` prefix of the Logs API (awsJson1_1), with its dot.
pub const TARGET_PREFIX: &str = "Logs_20140328.";
/// The SigV4 signing name of the Logs API.
pub const SIGNING_NAME: &str = "logs";
