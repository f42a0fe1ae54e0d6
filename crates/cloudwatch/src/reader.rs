//! [`RegionMetrics`]: the region's metrics and alarms, as one
//! [`flotilla_metrics::MetricReader`] and [`flotilla_metrics::AlarmWriter`].
//!
//! How a query on one replica sees every series: samples are recorded where they arrive (an
//! agent's usage on the replica that holds its session, a PutMetricData on the replica that
//! answers it), so each replica holds part of a metric's samples. A query asks this replica's
//! [`LocalSeries`] and every other replica of the region ([`Peers`]: Flotilla's own
//! `FlotillaAdmin.MetricQuery` on each replica recorded under `replicas/`, answered from that
//! replica's own series only, never forwarded further) and merges the answers: a period's
//! aggregates add up ([`flotilla_metrics::series::merge_datapoints`]), so the merged answer is
//! the one a single holder of every sample would give. A replica that does not answer makes the
//! query fail ([`MetricsError::Unavailable`]) rather than answer part of the figure. On an
//! embedded store there is one replica and no peer.

use crate::alarms;
use crate::series::LocalSeries;
use flotilla_metrics::series::merge_datapoints;
use flotilla_metrics::{
    Alarm, AlarmDefinition, AlarmWriter, Datapoint, MetricFilter, MetricId, MetricReader,
    MetricsError, StatQuery,
};
use flotilla_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What one replica is asked about its own series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "camelCase")]
pub enum PeerQuery {
    /// Its datapoints of one metric.
    Datapoints {
        /// The metric.
        metric: MetricId,
        /// From, epoch seconds.
        start: f64,
        /// To (exclusive).
        end: f64,
        /// The period, seconds.
        period: u32,
    },
    /// Its metrics matching a filter.
    ListMetrics {
        /// The namespace, if given.
        namespace: Option<String>,
        /// The name, if given.
        name: Option<String>,
        /// Dimension names with optional values.
        dimensions: Vec<(String, Option<String>)>,
    },
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", content = "items", rename_all = "camelCase")]
pub enum PeerAnswer {
    /// Its datapoints, oldest first.
    Datapoints(Vec<Datapoint>),
    /// Its metrics.
    Metrics(Vec<MetricId>),
}

/// Answers a [`PeerQuery`] from this replica's own series.
pub fn answer_locally(series: &LocalSeries, q: &PeerQuery) -> PeerAnswer {
    match q {
        PeerQuery::Datapoints {
            metric,
            start,
            end,
            period,
        } => PeerAnswer::Datapoints(series.query(metric, *start, *end, *period)),
        PeerQuery::ListMetrics {
            namespace,
            name,
            dimensions,
        } => {
            let f = MetricFilter {
                namespace: namespace.clone(),
                name: name.clone(),
                dimensions: dimensions.clone(),
            };
            PeerAnswer::Metrics(series.metrics(|m| f.matches(m)))
        }
    }
}

/// The other replicas of the region.
#[async_trait::async_trait]
pub trait Peers: Send + Sync {
    /// Every other replica's answer to `q`; an error when one does not answer.
    async fn ask_all(&self, q: &PeerQuery) -> Result<Vec<PeerAnswer>, MetricsError>;
}

/// The region's metrics and alarms.
pub struct RegionMetrics {
    series: Arc<LocalSeries>,
    store: Arc<dyn Store>,
    peers: Option<Arc<dyn Peers>>,
    region: String,
    account: String,
}

impl RegionMetrics {
    /// This replica's `series`, the other replicas through `peers` (none on an embedded
    /// store), the alarms in `store`.
    pub fn new(
        series: Arc<LocalSeries>,
        store: Arc<dyn Store>,
        peers: Option<Arc<dyn Peers>>,
        region: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        RegionMetrics {
            series,
            store,
            peers,
            region: region.into(),
            account: account.into(),
        }
    }

    /// This replica's series.
    pub fn series(&self) -> &Arc<LocalSeries> {
        &self.series
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The store alarms live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn ask(&self, q: &PeerQuery) -> Result<Vec<PeerAnswer>, MetricsError> {
        let mut answers = vec![answer_locally(&self.series, q)];
        if let Some(p) = &self.peers {
            answers.extend(p.ask_all(q).await?);
        }
        Ok(answers)
    }

    /// The unit last given for `metric` on this replica.
    pub fn unit(&self, metric: &MetricId) -> Option<String> {
        self.series.unit(metric)
    }
}

fn internal(e: crate::CwError) -> MetricsError {
    MetricsError::Internal(e.message)
}

#[async_trait::async_trait]
impl MetricReader for RegionMetrics {
    fn resolution(&self) -> u32 {
        self.series.resolution()
    }

    async fn datapoints(&self, query: &StatQuery) -> Result<Vec<Datapoint>, MetricsError> {
        let r = self.resolution();
        if query.period == 0 || !query.period.is_multiple_of(r) {
            return Err(MetricsError::InvalidPeriod {
                period: query.period,
                resolution: r,
            });
        }
        let q = PeerQuery::Datapoints {
            metric: query.metric.clone(),
            start: query.start,
            end: query.end,
            period: query.period,
        };
        let parts = self.ask(&q).await?.into_iter().filter_map(|a| match a {
            PeerAnswer::Datapoints(d) => Some(d),
            PeerAnswer::Metrics(_) => None,
        });
        Ok(merge_datapoints(parts))
    }

    async fn list_metrics(&self, filter: &MetricFilter) -> Result<Vec<MetricId>, MetricsError> {
        let q = PeerQuery::ListMetrics {
            namespace: filter.namespace.clone(),
            name: filter.name.clone(),
            dimensions: filter.dimensions.clone(),
        };
        let mut all = BTreeSet::new();
        for a in self.ask(&q).await? {
            if let PeerAnswer::Metrics(ms) = a {
                all.extend(ms);
            }
        }
        Ok(all.into_iter().collect())
    }

    async fn alarms(&self) -> Result<Vec<Alarm>, MetricsError> {
        Ok(alarms::list(self.store.as_ref())
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }

    async fn alarm(&self, name: &str) -> Result<Option<Alarm>, MetricsError> {
        Ok(alarms::get(self.store.as_ref(), name)
            .await
            .map_err(internal)?
            .map(|(a, _)| a))
    }
}

#[async_trait::async_trait]
impl AlarmWriter for RegionMetrics {
    async fn put_alarm(
        &self,
        mut definition: AlarmDefinition,
        now: f64,
    ) -> Result<(), MetricsError> {
        definition.arn =
            flotilla_metrics::alarm::alarm_arn(&self.region, &self.account, &definition.name);
        definition.updated_at = now;
        alarms::put(self.store.as_ref(), definition, now)
            .await
            .map_err(internal)
    }

    async fn delete_alarms(&self, names: &[String]) -> Result<(), MetricsError> {
        alarms::delete(self.store.as_ref(), names)
            .await
            .map_err(internal)
    }
}
