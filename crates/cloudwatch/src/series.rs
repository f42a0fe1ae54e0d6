//! [`LocalSeries`]: this replica's metric series, in memory, snapshotted to one file.
//!
//! What and why: metrics are neither desired nor observed state, and the control-plane store
//! (etcd: small, every write replicated to a quorum) is no time-series store; a sample every
//! period for every service would be most of its write load. So each replica keeps the series
//! it records itself (the ECS figures of the agents whose sessions it holds, the PutMetricData
//! calls it answers) in a [`SeriesSet`]: one aggregate per metric per period, at most
//! [`Limits::periods`] periods back and [`Limits::max_series`] metrics, and writes the whole set
//! to `DIR/series.json` (a temporary file renamed over it, so a crash leaves the old or the new
//! snapshot, never half of one) after each period. A restarted replica loads it, so a restart
//! loses at most the running period. A query merges every replica's answer
//! ([`crate::reader::RegionMetrics`]).

use flotilla_metrics::series::Snapshot;
use flotilla_metrics::{Aggregate, Datapoint, MetricId, Sample, SeriesSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// How much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The resolution, seconds (`--metrics-period-seconds`).
    pub resolution: u32,
    /// How many periods are kept per metric (1440: a day at one minute).
    pub periods: usize,
    /// How many metrics at most (a new one beyond is refused).
    pub max_series: usize,
}

impl Limits {
    /// The defaults at `resolution` seconds.
    pub fn at(resolution: u32) -> Self {
        Limits {
            resolution: resolution.max(1),
            periods: 1440,
            max_series: 10_000,
        }
    }
}

/// A new metric beyond the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this server already keeps {0} metrics, its limit; no new metric is accepted until old ones age out")]
pub struct TooManyMetrics(pub usize);

/// This replica's series.
pub struct LocalSeries {
    set: Mutex<SeriesSet>,
    file: Option<PathBuf>,
}

impl LocalSeries {
    /// In memory only (tests, or a server with no data directory).
    pub fn in_memory(limits: Limits) -> Self {
        LocalSeries {
            set: Mutex::new(SeriesSet::new(
                limits.resolution,
                limits.periods,
                limits.max_series,
            )),
            file: None,
        }
    }

    /// Kept in `dir/series.json`, loaded from it if it exists (an unreadable snapshot is
    /// logged and set aside as `series.json.bad`, not fatal: metrics are not desired state).
    pub fn open(dir: PathBuf, limits: Limits, now: f64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("series.json");
        let mut set = SeriesSet::new(limits.resolution, limits.periods, limits.max_series);
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) => set.restore(s, now),
                Err(e) => {
                    tracing::warn!(error = %e, file = %file.display(), "an unreadable metrics snapshot was set aside");
                    let _ = std::fs::rename(&file, dir.join("series.json.bad"));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(LocalSeries {
            set: Mutex::new(set),
            file: Some(file),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SeriesSet> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resolution, seconds.
    pub fn resolution(&self) -> u32 {
        self.lock().resolution()
    }

    /// Adds samples at `at`.
    pub fn record(
        &self,
        samples: &[(MetricId, Sample)],
        unit: Option<&str>,
        at: f64,
        now: f64,
    ) -> Result<(), TooManyMetrics> {
        let mut set = self.lock();
        for (m, s) in samples {
            set.record(m, unit, at, *s, now)
                .map_err(|e| TooManyMetrics(e.max_series))?;
        }
        Ok(())
    }

    /// Merges an aggregate (a PutMetricData datum) at `at`; `Ok(false)` when it is older than
    /// what is kept.
    pub fn record_aggregate(
        &self,
        metric: &MetricId,
        unit: Option<&str>,
        at: f64,
        aggregate: &Aggregate,
        now: f64,
    ) -> Result<bool, TooManyMetrics> {
        self.lock()
            .record_aggregate(metric, unit, at, aggregate, now)
            .map_err(|e| TooManyMetrics(e.max_series))
    }

    /// This replica's datapoints of `metric`.
    pub fn query(&self, metric: &MetricId, start: f64, end: f64, period: u32) -> Vec<Datapoint> {
        self.lock().query(metric, start, end, period)
    }

    /// This replica's metrics that `keep` accepts.
    pub fn metrics(&self, keep: impl FnMut(&MetricId) -> bool) -> Vec<MetricId> {
        self.lock().metrics(keep)
    }

    /// The unit last given for `metric` here.
    pub fn unit(&self, metric: &MetricId) -> Option<String> {
        self.lock().unit(metric).map(str::to_string)
    }

    /// Drops what aged out and writes the snapshot (when kept in a file).
    pub fn persist(&self, now: f64) -> std::io::Result<()> {
        let snapshot = {
            let mut set = self.lock();
            set.prune(now);
            set.snapshot()
        };
        let Some(file) = &self.file else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_metrics::Dimension;

    #[test]
    fn a_snapshot_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("flotilla-cw-series-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let m = MetricId::new("Custom", "Load", [Dimension::new("Host", "a")]);
        let s = LocalSeries::open(dir.clone(), Limits::at(10), 1000.0).unwrap();
        s.record(
            &[(m.clone(), Sample::plain(3.0))],
            Some("Count"),
            1000.0,
            1000.0,
        )
        .unwrap();
        s.persist(1000.0).unwrap();
        let again = LocalSeries::open(dir.clone(), Limits::at(10), 1005.0).unwrap();
        assert_eq!(
            again.query(&m, 0.0, 2000.0, 10),
            s.query(&m, 0.0, 2000.0, 10)
        );
        assert_eq!(again.unit(&m).as_deref(), Some("Count"));
        // A broken snapshot is set aside, not fatal.
        std::fs::write(dir.join("series.json"), b"{not json").unwrap();
        let fresh = LocalSeries::open(dir.clone(), Limits::at(10), 1005.0).unwrap();
        assert!(fresh.metrics(|_| true).is_empty());
        assert!(dir.join("series.json.bad").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
