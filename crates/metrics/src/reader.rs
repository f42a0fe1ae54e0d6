//! The in-process interface to metrics and alarms: [`MetricReader`] (read) and [`AlarmWriter`]
//! (define and delete alarms), object-safe so the server holds them as `Arc<dyn ...>`.
//!
//! Where they live: `flotilla_controllers::Plane::metrics` and `Plane::alarms` (so `api.metrics`
//! in a handler, `plane.metrics` in a controller). CloudWatch's implementation
//! (`flotilla_cloudwatch`) reads this replica's series and every other replica's of the
//! region, and the alarms from the control-plane store; [`NoMetrics`] is the plane's default
//! (nothing recorded, no alarms, writes refused).
//!
//! Stability: these signatures are what other parts build on; add methods (with defaults), do
//! not change them.

use crate::aggregate::Statistic;
use crate::alarm::{Alarm, AlarmDefinition, AlarmState};
use crate::id::MetricId;
use crate::series::Datapoint;

/// A query for one metric's datapoints.
#[derive(Debug, Clone, PartialEq)]
pub struct StatQuery {
    /// The metric (exactly: namespace, name and all its dimensions).
    pub metric: MetricId,
    /// From (inclusive, rounded down to a multiple of `period`), epoch seconds.
    pub start: f64,
    /// To (exclusive), epoch seconds.
    pub end: f64,
    /// The period, seconds: a multiple of [`MetricReader::resolution`].
    pub period: u32,
}

/// Which metrics ListMetrics answers: all that match every given part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricFilter {
    /// The namespace, if given.
    pub namespace: Option<String>,
    /// The metric name, if given.
    pub name: Option<String>,
    /// Dimensions the metric must have: a name, and the value if given.
    pub dimensions: Vec<(String, Option<String>)>,
}

impl MetricFilter {
    /// Whether `m` matches.
    pub fn matches(&self, m: &MetricId) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == m.namespace)
            && self.name.as_ref().is_none_or(|n| *n == m.name)
            && self.dimensions.iter().all(|(name, value)| {
                m.dimension(name)
                    .is_some_and(|v| value.as_ref().is_none_or(|x| x == v))
            })
    }
}

/// Why a metrics read or alarm write failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// The period is not a multiple of the resolution metrics are kept at.
    #[error("The parameter Period must be a multiple of {resolution}.")]
    InvalidPeriod {
        /// The period asked for.
        period: u32,
        /// The resolution, seconds.
        resolution: u32,
    },
    /// Part of the region's metrics could not be read (a replica did not answer); nothing
    /// partial is answered.
    #[error("metrics are unavailable: {0}")]
    Unavailable(String),
    /// This server keeps no metrics or alarms.
    #[error("this server does not serve CloudWatch metrics")]
    NotServed,
    /// The store or the series failed.
    #[error("{0}")]
    Internal(String),
}

/// Reads the region's metrics and alarms.
#[async_trait::async_trait]
pub trait MetricReader: Send + Sync {
    /// The resolution metrics are recorded at, seconds (`--metrics-period-seconds`): periods of
    /// queries and alarms are multiples of it, and alarms are evaluated once per resolution.
    fn resolution(&self) -> u32;

    /// The datapoints of a query, oldest first, every replica's samples merged.
    async fn datapoints(&self, query: &StatQuery) -> Result<Vec<Datapoint>, MetricsError>;

    /// `(timestamp, value)` of statistic `stat` for each period of `query` with data.
    async fn statistic(
        &self,
        query: &StatQuery,
        stat: Statistic,
    ) -> Result<Vec<(f64, f64)>, MetricsError> {
        Ok(self
            .datapoints(query)
            .await?
            .into_iter()
            .map(|d| (d.timestamp, d.aggregate.statistic(stat)))
            .collect())
    }

    /// The metrics that have data and match `filter`, in order.
    async fn list_metrics(&self, filter: &MetricFilter) -> Result<Vec<MetricId>, MetricsError>;

    /// Every alarm of the region with its state (and its `AlarmActions`), by name.
    async fn alarms(&self) -> Result<Vec<Alarm>, MetricsError>;

    /// The alarm named `name`, if it exists.
    async fn alarm(&self, name: &str) -> Result<Option<Alarm>, MetricsError> {
        Ok(self
            .alarms()
            .await?
            .into_iter()
            .find(|a| a.definition.name == name))
    }

    /// The state of the alarm named `name`, if it exists.
    async fn alarm_state(&self, name: &str) -> Result<Option<AlarmState>, MetricsError> {
        Ok(self.alarm(name).await?.map(|a| a.status.state))
    }
}

/// Defines and deletes alarms (what PutMetricAlarm and DeleteAlarms do), for parts that manage
/// alarms of their own (a target tracking policy's).
#[async_trait::async_trait]
pub trait AlarmWriter: Send + Sync {
    /// Creates or replaces the alarm `definition.name` (its state starts again at
    /// INSUFFICIENT_DATA when the rule changes, as PutMetricAlarm's does). `definition.arn` and
    /// `updated_at` are set by the writer.
    async fn put_alarm(&self, definition: AlarmDefinition, now: f64) -> Result<(), MetricsError>;

    /// Deletes the alarms named (names that do not exist are skipped).
    async fn delete_alarms(&self, names: &[String]) -> Result<(), MetricsError>;
}

/// No metrics and no alarms: the plane's default when CloudWatch is not wired in.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

#[async_trait::async_trait]
impl MetricReader for NoMetrics {
    fn resolution(&self) -> u32 {
        60
    }
    async fn datapoints(&self, _query: &StatQuery) -> Result<Vec<Datapoint>, MetricsError> {
        Ok(Vec::new())
    }
    async fn list_metrics(&self, _filter: &MetricFilter) -> Result<Vec<MetricId>, MetricsError> {
        Ok(Vec::new())
    }
    async fn alarms(&self) -> Result<Vec<Alarm>, MetricsError> {
        Ok(Vec::new())
    }
}

#[async_trait::async_trait]
impl AlarmWriter for NoMetrics {
    async fn put_alarm(&self, _definition: AlarmDefinition, _now: f64) -> Result<(), MetricsError> {
        Err(MetricsError::NotServed)
    }
    async fn delete_alarms(&self, _names: &[String]) -> Result<(), MetricsError> {
        Err(MetricsError::NotServed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Dimension;

    #[test]
    fn filters_match_every_given_part() {
        let m = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            [
                Dimension::new("ClusterName", "c"),
                Dimension::new("ServiceName", "s"),
            ],
        );
        let f =
            |ns: Option<&str>, name: Option<&str>, dims: &[(&str, Option<&str>)]| MetricFilter {
                namespace: ns.map(str::to_string),
                name: name.map(str::to_string),
                dimensions: dims
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                    .collect(),
            };
        assert!(f(None, None, &[]).matches(&m));
        assert!(f(
            Some("AWS/ECS"),
            Some("CPUUtilization"),
            &[("ServiceName", None)]
        )
        .matches(&m));
        assert!(f(None, None, &[("ClusterName", Some("c"))]).matches(&m));
        assert!(!f(None, None, &[("ClusterName", Some("d"))]).matches(&m));
        assert!(!f(None, None, &[("TaskId", None)]).matches(&m));
        assert!(!f(Some("Custom"), None, &[]).matches(&m));
    }

    #[test]
    fn the_trait_is_object_safe() {
        let r: std::sync::Arc<dyn MetricReader> = std::sync::Arc::new(NoMetrics);
        let w: std::sync::Arc<dyn AlarmWriter> = std::sync::Arc::new(NoMetrics);
        assert_eq!(r.resolution(), 60);
        drop(w);
    }
}
