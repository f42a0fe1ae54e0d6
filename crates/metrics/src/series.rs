//! Bounded in-memory time series at one resolution, and their aggregation into a query's
//! periods.
//!
//! A [`SeriesSet`] keeps, per metric, one [`Aggregate`] per bucket of `resolution` seconds
//! (bucket start = time rounded down to a multiple of the resolution, so every replica cuts the
//! same buckets), at most `capacity` buckets back from the newest time it was told of, and at
//! most `max_series` metrics. What falls out of the window is dropped; a new metric beyond
//! `max_series` is refused ([`SeriesFull`]), never silently lost.
//!
//! A query's period must be a multiple of the resolution; a datapoint's timestamp is the start
//! of its period (a multiple of the period), as CloudWatch reports them.
//!
//! What this is not: persistence (the owner snapshots it with [`SeriesSet::snapshot`]) or a
//! clock (every call passes the time).

use crate::aggregate::{Aggregate, Sample};
use crate::id::MetricId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One period of a metric in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    /// The start of the period, epoch seconds.
    pub timestamp: f64,
    /// What the period holds.
    pub aggregate: Aggregate,
}

/// A new metric was refused: the set already holds its maximum number of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesFull {
    /// The maximum.
    pub max_series: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    unit: Option<String>,
    buckets: BTreeMap<i64, Aggregate>,
}

/// What a [`SeriesSet`] holds, for persistence.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The resolution the buckets were cut at, seconds.
    pub resolution: u32,
    /// Each metric, its unit and its buckets.
    pub series: Vec<SeriesSnapshot>,
}

/// One metric in a [`Snapshot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesSnapshot {
    /// The metric.
    pub metric: MetricId,
    /// Its unit, if one was given.
    pub unit: Option<String>,
    /// Its buckets: (start, aggregate), oldest first.
    pub buckets: Vec<(i64, Aggregate)>,
}

/// Bounded series of many metrics at one resolution.
#[derive(Debug, Clone)]
pub struct SeriesSet {
    resolution: u32,
    capacity: usize,
    max_series: usize,
    series: BTreeMap<MetricId, Series>,
}

/// Rounds `t` down to a multiple of `step` seconds.
pub fn floor_to(t: f64, step: u32) -> i64 {
    let step = i64::from(step.max(1));
    // Epoch seconds fit an i64 for any time CloudWatch accepts.
    #[allow(clippy::cast_possible_truncation)]
    let secs = t.floor() as i64;
    secs.div_euclid(step) * step
}

impl SeriesSet {
    /// An empty set: buckets of `resolution` seconds (at least 1), `capacity` buckets per
    /// metric (at least 1), at most `max_series` metrics.
    pub fn new(resolution: u32, capacity: usize, max_series: usize) -> Self {
        SeriesSet {
            resolution: resolution.max(1),
            capacity: capacity.max(1),
            max_series,
            series: BTreeMap::new(),
        }
    }

    /// The bucket length, seconds.
    pub fn resolution(&self) -> u32 {
        self.resolution
    }

    /// How far back a bucket is kept, seconds.
    pub fn retention_seconds(&self) -> u64 {
        u64::from(self.resolution) * self.capacity as u64
    }

    /// How many metrics the set holds.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the set holds no metric.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn oldest_kept(&self, now: f64) -> i64 {
        floor_to(now, self.resolution) - i64::from(self.resolution) * (self.capacity as i64 - 1)
    }

    /// Adds `sample` at time `at` to `metric` (with its `unit`, if given). A sample older than
    /// the window at `now` is dropped (`Ok(false)`).
    pub fn record(
        &mut self,
        metric: &MetricId,
        unit: Option<&str>,
        at: f64,
        sample: Sample,
        now: f64,
    ) -> Result<bool, SeriesFull> {
        self.record_aggregate(metric, unit, at, &Aggregate::of(sample), now)
    }

    /// Merges `aggregate` at time `at` into `metric`; see [`SeriesSet::record`].
    pub fn record_aggregate(
        &mut self,
        metric: &MetricId,
        unit: Option<&str>,
        at: f64,
        aggregate: &Aggregate,
        now: f64,
    ) -> Result<bool, SeriesFull> {
        let bucket = floor_to(at, self.resolution);
        let oldest = self.oldest_kept(now.max(at));
        if bucket < oldest {
            return Ok(false);
        }
        if !self.series.contains_key(metric) && self.series.len() >= self.max_series {
            return Err(SeriesFull {
                max_series: self.max_series,
            });
        }
        let s = self.series.entry(metric.clone()).or_default();
        if let Some(u) = unit {
            s.unit = Some(u.to_string());
        }
        s.buckets
            .entry(bucket)
            .and_modify(|a| a.merge(aggregate))
            .or_insert(*aggregate);
        while s.buckets.len() > self.capacity {
            s.buckets.pop_first();
        }
        Ok(true)
    }

    /// Drops every bucket older than the window at `now`, and the metrics left empty.
    pub fn prune(&mut self, now: f64) {
        let oldest = self.oldest_kept(now);
        self.series.retain(|_, s| {
            s.buckets = s.buckets.split_off(&oldest);
            !s.buckets.is_empty()
        });
    }

    /// The unit last given for `metric`.
    pub fn unit(&self, metric: &MetricId) -> Option<&str> {
        self.series.get(metric).and_then(|s| s.unit.as_deref())
    }

    /// The datapoints of `metric` whose periods of `period` seconds start in `[start, end)`
    /// (`start` rounded down to a multiple of `period`), oldest first. `period` is a multiple of
    /// the resolution (checked by the caller; another is rounded up to one).
    pub fn query(&self, metric: &MetricId, start: f64, end: f64, period: u32) -> Vec<Datapoint> {
        let Some(s) = self.series.get(metric) else {
            return Vec::new();
        };
        let period = period.max(self.resolution).div_ceil(self.resolution) * self.resolution;
        let from = floor_to(start, period);
        let mut out: BTreeMap<i64, Aggregate> = BTreeMap::new();
        for (&b, a) in s.buckets.range(from..) {
            #[allow(clippy::cast_precision_loss)]
            if b as f64 >= end {
                break;
            }
            let p = b.div_euclid(i64::from(period)) * i64::from(period);
            out.entry(p).and_modify(|x| x.merge(a)).or_insert(*a);
        }
        out.into_iter()
            .map(|(t, aggregate)| Datapoint {
                #[allow(clippy::cast_precision_loss)]
                timestamp: t as f64,
                aggregate,
            })
            .collect()
    }

    /// The metrics held, in order, that `keep` accepts.
    pub fn metrics(&self, mut keep: impl FnMut(&MetricId) -> bool) -> Vec<MetricId> {
        self.series.keys().filter(|m| keep(m)).cloned().collect()
    }

    /// Everything held, for persistence.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            resolution: self.resolution,
            series: self
                .series
                .iter()
                .map(|(m, s)| SeriesSnapshot {
                    metric: m.clone(),
                    unit: s.unit.clone(),
                    buckets: s.buckets.iter().map(|(&b, &a)| (b, a)).collect(),
                })
                .collect(),
        }
    }

    /// Loads a snapshot taken at any resolution (its buckets are re-cut at this set's), within
    /// this set's window at `now` and its limit of metrics.
    pub fn restore(&mut self, snapshot: Snapshot, now: f64) {
        for s in snapshot.series {
            for (b, a) in s.buckets {
                #[allow(clippy::cast_precision_loss)]
                let _ = self.record_aggregate(&s.metric, s.unit.as_deref(), b as f64, &a, now);
            }
        }
        self.prune(now);
    }
}

/// Merges the datapoints of one metric answered by several holders (replicas), each oldest
/// first, into one list, oldest first: datapoints of the same period merge.
pub fn merge_datapoints(parts: impl IntoIterator<Item = Vec<Datapoint>>) -> Vec<Datapoint> {
    let mut out: BTreeMap<i64, Aggregate> = BTreeMap::new();
    for part in parts {
        for d in part {
            let t = floor_to(d.timestamp, 1);
            out.entry(t)
                .and_modify(|x| x.merge(&d.aggregate))
                .or_insert(d.aggregate);
        }
    }
    out.into_iter()
        .map(|(t, aggregate)| Datapoint {
            #[allow(clippy::cast_precision_loss)]
            timestamp: t as f64,
            aggregate,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Statistic;
    use crate::id::Dimension;
    use proptest::prelude::*;

    fn m(name: &str) -> MetricId {
        MetricId::new("Test", name, [Dimension::new("D", "1")])
    }

    #[test]
    fn samples_fall_into_their_buckets_and_periods() {
        let mut s = SeriesSet::new(10, 100, 10);
        for (t, v) in [(1000.0, 1.0), (1005.0, 3.0), (1010.0, 5.0), (1025.0, 7.0)] {
            s.record(&m("a"), Some("Count"), t, Sample::plain(v), 1030.0)
                .unwrap();
        }
        let by10 = s.query(&m("a"), 1000.0, 1030.0, 10);
        let got: Vec<(f64, f64)> = by10
            .iter()
            .map(|d| (d.timestamp, d.aggregate.statistic(Statistic::Sum)))
            .collect();
        assert_eq!(got, vec![(1000.0, 4.0), (1010.0, 5.0), (1020.0, 7.0)]);
        let by20 = s.query(&m("a"), 1000.0, 1030.0, 20);
        let got: Vec<(f64, f64)> = by20
            .iter()
            .map(|d| (d.timestamp, d.aggregate.statistic(Statistic::Average)))
            .collect();
        assert_eq!(got, vec![(1000.0, 3.0), (1020.0, 7.0)]);
        assert_eq!(s.unit(&m("a")), Some("Count"));
        assert!(s.query(&m("b"), 0.0, 2000.0, 10).is_empty());
    }

    #[test]
    fn the_end_is_exclusive_and_the_start_rounds_down() {
        let mut s = SeriesSet::new(10, 100, 10);
        for t in [990.0, 1000.0, 1010.0, 1020.0] {
            s.record(&m("a"), None, t, Sample::plain(1.0), 1020.0)
                .unwrap();
        }
        let ts: Vec<f64> = s
            .query(&m("a"), 1005.0, 1020.0, 10)
            .iter()
            .map(|d| d.timestamp)
            .collect();
        assert_eq!(ts, vec![1000.0, 1010.0]);
    }

    #[test]
    fn the_window_is_bounded() {
        let mut s = SeriesSet::new(10, 3, 10);
        for i in 0..10 {
            let t = 1000.0 + f64::from(i) * 10.0;
            s.record(&m("a"), None, t, Sample::plain(1.0), t).unwrap();
        }
        assert_eq!(s.query(&m("a"), 0.0, 5000.0, 10).len(), 3);
        // Too old for the window: dropped, not an error.
        assert_eq!(
            s.record(&m("a"), None, 1000.0, Sample::plain(1.0), 1090.0),
            Ok(false)
        );
        s.prune(2000.0);
        assert!(s.is_empty());
    }

    #[test]
    fn the_number_of_metrics_is_bounded() {
        let mut s = SeriesSet::new(10, 3, 1);
        s.record(&m("a"), None, 0.0, Sample::plain(1.0), 0.0)
            .unwrap();
        assert_eq!(
            s.record(&m("b"), None, 0.0, Sample::plain(1.0), 0.0),
            Err(SeriesFull { max_series: 1 })
        );
        // An existing metric still takes samples.
        assert_eq!(
            s.record(&m("a"), None, 0.0, Sample::plain(1.0), 0.0),
            Ok(true)
        );
    }

    #[test]
    fn a_snapshot_restores_what_was_held() {
        let mut s = SeriesSet::new(10, 100, 10);
        s.record(&m("a"), Some("Percent"), 1000.0, Sample::plain(2.0), 1000.0)
            .unwrap();
        let mut t = SeriesSet::new(10, 100, 10);
        t.restore(s.snapshot(), 1000.0);
        assert_eq!(
            t.query(&m("a"), 0.0, 2000.0, 10),
            s.query(&m("a"), 0.0, 2000.0, 10)
        );
        assert_eq!(t.unit(&m("a")), Some("Percent"));
    }

    proptest! {
        /// Splitting the samples between two holders and merging their answers gives the
        /// answer of one holder of all samples (how a query sees every replica's series).
        #[test]
        fn merged_holders_answer_as_one(samples in proptest::collection::vec((0u32..600, 0.0f64..100.0, any::<bool>()), 0..60), period in 1u32..7) {
            let (mut all, mut left, mut right) = (SeriesSet::new(10, 100, 10), SeriesSet::new(10, 100, 10), SeriesSet::new(10, 100, 10));
            for &(t, v, side) in &samples {
                let t = 1000.0 + f64::from(t);
                all.record(&m("a"), None, t, Sample::plain(v), 1600.0).unwrap();
                let holder = if side { &mut left } else { &mut right };
                holder.record(&m("a"), None, t, Sample::plain(v), 1600.0).unwrap();
            }
            let p = period * 10;
            let merged = merge_datapoints([left.query(&m("a"), 1000.0, 1600.0, p), right.query(&m("a"), 1000.0, 1600.0, p)]);
            let whole = all.query(&m("a"), 1000.0, 1600.0, p);
            prop_assert_eq!(merged.len(), whole.len());
            for (x, y) in merged.iter().zip(whole.iter()) {
                prop_assert_eq!(x.timestamp, y.timestamp);
                prop_assert_eq!(x.aggregate.count, y.aggregate.count);
                prop_assert!((x.aggregate.sum - y.aggregate.sum).abs() < 1e-6);
                prop_assert_eq!(x.aggregate.max, y.aggregate.max);
            }
        }
    }
}
