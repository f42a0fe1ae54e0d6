//! # flotilla-scheduler: where each task goes, as ECS decides it
//!
//! A pure crate — no I/O, no clocks, no async, no randomness but a ChaCha8
//! generator seeded by the caller — implementing ECS task placement:
//! placement strategies (`binpack`, `spread`, `random`, chained up to 5),
//! placement constraints (`distinctInstance`, `memberOf` with the whole
//! cluster query language, up to 10), resource reservation (CPU, memory,
//! static TCP/UDP host ports) and ECS's per-instance failure reasons.
//!
//! ## For RunTask and the service scheduler
//!
//! ```
//! use flotilla_scheduler::*;
//!
//! let snapshot = Snapshot::new(vec![
//!     ContainerInstance::new("a", 2048, 4096).with_attribute("ecs.availability-zone", "us-east-1a"),
//!     ContainerInstance::new("b", 2048, 4096).with_attribute("ecs.availability-zone", "us-east-1b"),
//! ]);
//! let mut cluster = Cluster::new(snapshot);
//! let req = PlacementRequest::new("web", TaskSpec::simple(256, 512), 4)
//!     .with_strategies(vec![
//!         PlacementStrategy::spread_az(),
//!         PlacementStrategy::Binpack(BinpackField::Memory),
//!     ])
//!     .with_constraint(PlacementConstraint::member_of("attribute:ecs.availability-zone =~ us-east-1.*")?)
//!     .with_seed(42);
//! let outcome = cluster.place(&req)?;
//! assert_eq!(outcome.placements.len(), 4);
//! // RunTask's `failures` (empty here) and the updated snapshot for the next batch:
//! let failures: Vec<EcsFailure> = outcome.ecs_failures();
//! assert!(failures.is_empty());
//! let after: Snapshot = cluster.snapshot();
//! assert_eq!(after.instances[0].remaining.memory, 4096 - 2 * 512);
//! # Ok::<(), PlacementError>(())
//! ```
//!
//! - [`Cluster::new`]`(Snapshot)` keeps the snapshot plus indexes (per-group
//!   task counts, attribute values, cached `memberOf` results) across
//!   requests; [`Cluster::place`] places one [`PlacementRequest`] (`count`
//!   identical tasks) and *reserves as it goes*: later tasks of the same
//!   request and later requests see earlier ones. [`Cluster::snapshot`] /
//!   [`Cluster::into_snapshot`] give the updated snapshot back. The free
//!   function [`place()`] does a single request on an owned snapshot.
//! - A [`PlacementOutcome`] lists [`Placement`]s; if some tasks did not fit,
//!   `unplaced > 0` and `rejections` holds every instance ruled out with all
//!   its [`Rejection`]s (first = what ECS reports). [`PlacementOutcome::ecs_failures`]
//!   builds RunTask's `failures` (`{arn, reason: "RESOURCE:MEMORY"}`, ...).
//! - A request that is itself wrong (6 strategies, 11 constraints, a bad
//!   field, a task without memory) is a [`PlacementError`]; so is a cluster
//!   with no instances at all ([`PlacementError::NoContainerInstances`],
//!   ECS's "No Container Instances were found in your cluster.").
//! - [`default_strategy`]: RunTask → `random`; services →
//!   `spread(attribute:ecs.availability-zone)`, `spread(instanceId)`.
//! - [`Cluster::explain`] tells why each instance cannot take one more task
//!   of a request, without placing anything.
//!
//! ## For StartTask
//!
//! [`Cluster::start_on`] puts one task on each named instance (id or ARN),
//! checking status, agent and resources only; unknown instances come back as
//! [`Rejection::Missing`] (`MISSING`).
//!
//! ## For ListContainerInstances' `filter`
//!
//! ```
//! use flotilla_scheduler::{query, ContainerInstance};
//! let q = query::parse("attribute:ecs.instance-type =~ t2.* and not(task:group == database)")?;
//! let i = ContainerInstance::new("a", 1024, 1024).with_attribute("ecs.instance-type", "t2.small");
//! assert!(q.matches(&i));
//! let err = query::parse("runningTasksCount >").unwrap_err();
//! assert_eq!(err.position, 19);
//! # Ok::<(), query::QueryError>(())
//! ```
//!
//! [`query::QueryError`] carries the byte position and what was expected;
//! [`query::QueryError::render`] draws a caret under it.
//!
//! ## Determinism and speed
//!
//! The same snapshot, requests and seeds give the same placements. Placing
//! `count` tasks costs one pass over the instances plus, per task, a walk
//! down an index with one level per strategy (see `place/select.rs`), not a
//! rescan of the fleet.

#![warn(missing_docs)]

pub mod capacity;
pub mod constraint;
pub mod error;
pub mod ipam;
pub mod place;
pub mod query;
pub mod reason;
pub mod resources;
pub mod snapshot;
pub mod strategy;

pub use constraint::{PlacementConstraint, MAX_CONSTRAINTS};
pub use error::PlacementError;
pub use place::{
    place, Cluster, Placement, PlacementOutcome, PlacementRequest, SelectMode, MAX_START_INSTANCES,
};
pub use query::{Query, QueryError};
pub use reason::{ecs_failures, EcsFailure, InstanceRejection, Rejection};
pub use resources::{
    ContainerSpec, Demand, DemandError, NetworkMode, PortMapping, Protocol, TaskSpec,
};
pub use snapshot::{ContainerInstance, InstanceStatus, PortSet, Resources, RunningTask, Snapshot};
pub use strategy::{
    default_strategy, BinpackField, PlacementKind, PlacementStrategy, SpreadField, MAX_STRATEGIES,
};
