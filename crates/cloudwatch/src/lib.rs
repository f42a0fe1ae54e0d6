//! Amazon CloudWatch (metrics), served by Flotilla on the ECS endpoint (`X-Amz-Target:
//! GraniteServiceVersion20100801.*`, awsJson1_0, SigV4 scope `monitoring`), enough for the aws
//! CLI, boto3 and dashboards to read ECS's utilization metrics and to alarm on them.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`series`]: [`LocalSeries`], this replica's series ([`flotilla_metrics::SeriesSet`]) in
//!   memory, snapshotted to a file under the data directory each period; bounded in metrics
//!   and in time.
//! - [`alarms`]: alarm records in the control-plane store (`cloudwatch/alarms/NAME`: the
//!   definition, desired state, and the state the leader last evaluated).
//! - [`reader`]: [`RegionMetrics`], the region's [`flotilla_metrics::MetricReader`] and
//!   [`flotilla_metrics::AlarmWriter`]: this replica's series merged with every other
//!   replica's ([`reader::Peers`]), alarms from the store.
//! - [`evaluator`]: the alarm evaluation loop, run on the leader once per resolution.
//! - [`service`]: [`CloudWatch`], the operations.
//!
//! Operations served: GetMetricStatistics, GetMetricData (MetricStat queries), ListMetrics,
//! PutMetricData, PutMetricAlarm, DescribeAlarms, DeleteAlarms. Every other operation of the
//! model answers `UnsupportedOperationException` naming the ones served.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as CloudWatch's JSON protocol puts timestamps on the wire.
pub type Timestamp = f64;

/// Every shape of the CloudWatch model, generated from `spec/service-2.json`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod alarms;
pub mod error;
pub mod evaluator;
pub mod reader;
pub mod series;
pub mod service;

pub use error::CwError;
pub use reader::RegionMetrics;
pub use series::LocalSeries;
pub use service::CloudWatch;

/// The model without documentation, for input validation.
pub(crate) static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
