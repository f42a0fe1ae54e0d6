//! Metrics and alarms, pure: what CloudWatch's metrics API and ECS's utilization metrics mean,
//! with no I/O, no clock and no store.
//!
//! - [`id`]: a metric's identity ([`MetricId`]: namespace, name, dimensions sorted by name).
//! - [`aggregate`]: what one period of a metric holds ([`Aggregate`]: sample count, sum,
//!   minimum, maximum, and a weighted sum so a ratio such as ECS's utilization averages as
//!   ECS computes it), and CloudWatch's [`Statistic`]s of it.
//! - [`series`]: [`SeriesSet`], bounded in-memory series at one resolution, and the
//!   aggregation of their buckets into a query's periods ([`Datapoint`]).
//! - [`alarm`]: alarm definitions, states (OK, ALARM, INSUFFICIENT_DATA) and the evaluation
//!   rule (M datapoints out of N evaluation periods, `TreatMissingData`) as CloudWatch
//!   documents it.
//! - [`ecs`]: the `AWS/ECS` metrics (CPUUtilization, MemoryUtilization, CPUReservation,
//!   MemoryReservation) computed from task usage samples as ECS documents them.
//! - [`reader`]: the object-safe [`MetricReader`] (statistics, metric lists, alarms and their
//!   states) and [`AlarmWriter`] traits.
//!
//! **Where the server holds it:** `flotilla_controllers::Plane::metrics` is the region's
//! `Arc<dyn MetricReader>` (and `Plane::alarms` its `Arc<dyn AlarmWriter>`), so every API
//! handler (`api.metrics`) and every controller, including leader-only loops registered with
//! `Plane::leader_loops`, reads metrics and alarm states through it. `flotilla server` and
//! `flotilla dev` wire CloudWatch's implementation in (`crates/cloudwatch`); a plane built
//! without it has [`reader::NoMetrics`] (no metrics, no alarms).
//!
//! Times are seconds since the Unix epoch (`f64`), as the rest of Flotilla passes them.

#![warn(missing_docs)]

pub mod aggregate;
pub mod alarm;
pub mod ecs;
pub mod id;
pub mod reader;
pub mod series;

pub use aggregate::{Aggregate, Sample, Statistic};
pub use alarm::{
    Alarm, AlarmDefinition, AlarmRule, AlarmState, AlarmStatus, ComparisonOperator,
    TreatMissingData,
};
pub use id::{Dimension, MetricId};
pub use reader::{AlarmWriter, MetricFilter, MetricReader, MetricsError, NoMetrics, StatQuery};
pub use series::{Datapoint, SeriesSet};
