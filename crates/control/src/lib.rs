//! Flotilla's domain, as pure functions and records: what a cluster, container instance, task
//! and service is, how each changes, and what the service scheduler decides.
//!
//! What this is: the records stored for each ECS object and their transitions ([`tasks`],
//! [`instances`], [`services`]), the service scheduler ([`service_scheduler`]: desired count,
//! deployments, circuit breaker, rollback), launch resolution ([`launch`]: launch type or
//! capacity providers, the managed pool), ECS Exec's rules ([`exec`]), the task template every
//! task creation starts from ([`template`]), task role credentials ([`task_credentials`]), and
//! where each record lives in the store ([`keys`]).
//!
//! What this is not: anything that does I/O. No tokio, no HTTP, no store: `Cargo.toml` has no
//! such dependency. The writers that read the store, call these functions and commit the results
//! are `flotilla-controllers`; the HTTP edge is `flotilla-api`. Callers pass in times, ids and
//! random seeds, so every rule here is tested with plain unit and property tests.

#![warn(missing_docs)]

pub mod agent_identity;
pub mod agent_update;
pub mod capacity_providers;
pub mod clusters;
pub mod exec;
pub mod instances;
pub mod keys;
pub mod launch;
pub mod protection;
pub mod revision_cache;
pub mod secrets;
pub mod service_scheduler;
pub mod services;
pub mod tags;
pub mod task_credentials;
pub mod task_definitions;
pub mod task_index;
pub mod task_sets;
pub mod tasks;
pub mod template;
pub mod time;
pub mod traffic;
pub mod warm;

pub use time::timestamp;
