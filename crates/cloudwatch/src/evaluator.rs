//! The alarm evaluation loop: on the leader only (started with the controllers under the
//! term's fence), once per resolution, half a period after each boundary (when the period that
//! just ended has been recorded), every alarm's evaluation range is read through the region's
//! [`MetricReader`] and judged by [`flotilla_metrics::alarm::evaluate`]; a changed state is
//! written to the alarm's record with a compare-and-swap carrying the fence, with CloudWatch's
//! `StateReason`, `StateReasonData` and `StateUpdatedTimestamp`. An unchanged state writes
//! nothing.

use crate::alarms;
use crate::error::CwError;
use flotilla_metrics::alarm::evaluate;
use flotilla_metrics::{AlarmStatus, MetricReader, StatQuery};
use flotilla_store::{Fence, Store};
use std::sync::Arc;
use std::time::Duration;

/// The wall clock, epoch seconds (passed in: tests control it).
pub type Now = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Evaluates the region's alarms.
pub struct Evaluator {
    reader: Arc<dyn MetricReader>,
    store: Arc<dyn Store>,
    now: Now,
}

impl Evaluator {
    /// Alarms in `store`, metrics through `reader`.
    pub fn new(reader: Arc<dyn MetricReader>, store: Arc<dyn Store>, now: Now) -> Self {
        Evaluator { reader, store, now }
    }

    /// Evaluates every alarm once at `now`; returns how many changed state.
    pub async fn evaluate_all(&self, now: f64, fence: &Fence) -> Result<usize, CwError> {
        let mut changed = 0;
        for (alarm, rev) in alarms::list(self.store.as_ref()).await? {
            let rule = &alarm.definition.rule;
            let (start, end) = rule.range(now);
            let query = StatQuery {
                metric: rule.metric.clone(),
                start,
                end,
                period: rule.period,
            };
            let points = match self.reader.statistic(&query, rule.statistic).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(alarm = %alarm.definition.name, error = %e, "an alarm could not be evaluated this period");
                    continue;
                }
            };
            let starts: Vec<f64> = (0..rule.evaluation_periods)
                .map(|i| start + f64::from(rule.period) * f64::from(i))
                .collect();
            let values: Vec<Option<f64>> = starts
                .iter()
                .map(|s| {
                    points
                        .iter()
                        .find(|(t, _)| (t - s).abs() < 0.5)
                        .map(|(_, v)| *v)
                })
                .collect();
            let Some(e) = evaluate(rule, &values, &starts) else {
                continue;
            };
            if e.state == alarm.status.state {
                continue;
            }
            let status = AlarmStatus {
                state: e.state,
                reason: e.reason,
                reason_data: Some(e.reason_data),
                updated_at: now,
            };
            tracing::info!(alarm = %alarm.definition.name, from = alarm.status.state.as_str(), to = status.state.as_str(), reason = %status.reason, "alarm state changed");
            if alarms::set_status(self.store.as_ref(), &alarm, rev, status, fence).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Runs [`Evaluator::evaluate_all`] once per resolution until aborted.
    pub fn spawn(self: Arc<Self>, fence: Fence) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let r = f64::from(self.reader.resolution().max(1));
                let now = (self.now)();
                // Half a period after the next boundary.
                let next = (now / r).floor() * r + r * 1.5;
                let wait = (next - now).rem_euclid(r).max(0.05);
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                if let Err(e) = self.evaluate_all((self.now)(), &fence).await {
                    tracing::warn!(error = %e, "alarm evaluation failed; retried next period");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::RegionMetrics;
    use crate::series::{Limits, LocalSeries};
    use flotilla_metrics::{
        AlarmDefinition, AlarmRule, AlarmState, AlarmWriter, ComparisonOperator, Dimension,
        MetricId, Sample, Statistic, TreatMissingData,
    };

    #[tokio::test]
    async fn an_alarm_goes_to_alarm_and_back_to_ok() {
        let store: Arc<dyn Store> = Arc::new(flotilla_store::MemoryStore::new());
        let series = Arc::new(LocalSeries::in_memory(Limits::at(10)));
        let region = Arc::new(RegionMetrics::new(
            series.clone(),
            store.clone(),
            None,
            "us-east-1",
            "123456789012",
        ));
        let m = MetricId::new("Custom", "Load", [Dimension::new("Host", "a")]);
        let def = AlarmDefinition {
            name: "high".into(),
            arn: String::new(),
            description: None,
            actions_enabled: true,
            alarm_actions: vec![],
            ok_actions: vec![],
            insufficient_data_actions: vec![],
            rule: AlarmRule {
                metric: m.clone(),
                statistic: Statistic::Average,
                period: 10,
                evaluation_periods: 2,
                datapoints_to_alarm: 2,
                threshold: 50.0,
                comparison: ComparisonOperator::GreaterThanThreshold,
                treat_missing_data: TreatMissingData::Missing,
                unit: None,
            },
            updated_at: 0.0,
        };
        region.put_alarm(def, 1000.0).await.unwrap();
        let ev = Evaluator::new(region.clone(), store.clone(), Arc::new(|| 0.0));
        let state = || async { region.alarm_state("high").await.unwrap().unwrap() };
        assert_eq!(state().await, AlarmState::InsufficientData);
        // 1000..1020 breach.
        for t in [1001.0, 1011.0] {
            series
                .record(&[(m.clone(), Sample::plain(90.0))], None, t, t)
                .unwrap();
        }
        assert_eq!(
            ev.evaluate_all(1025.0, &Fence::unfenced()).await.unwrap(),
            1
        );
        let a = region.alarm("high").await.unwrap().unwrap();
        assert_eq!(a.status.state, AlarmState::Alarm);
        assert_eq!(a.status.updated_at, 1025.0);
        assert!(
            a.status
                .reason
                .starts_with("Threshold Crossed: 2 out of the last 2 datapoints"),
            "{}",
            a.status.reason
        );
        // Unchanged: nothing written.
        assert_eq!(
            ev.evaluate_all(1029.0, &Fence::unfenced()).await.unwrap(),
            0
        );
        for t in [1021.0, 1031.0] {
            series
                .record(&[(m.clone(), Sample::plain(10.0))], None, t, t)
                .unwrap();
        }
        assert_eq!(
            ev.evaluate_all(1045.0, &Fence::unfenced()).await.unwrap(),
            1
        );
        assert_eq!(state().await, AlarmState::Ok);
        // Redefining with the same rule keeps the state; a new rule starts over.
        let mut again = region.alarm("high").await.unwrap().unwrap().definition;
        region.put_alarm(again.clone(), 1046.0).await.unwrap();
        assert_eq!(state().await, AlarmState::Ok);
        again.rule.threshold = 5.0;
        region.put_alarm(again, 1047.0).await.unwrap();
        assert_eq!(state().await, AlarmState::InsufficientData);
    }
}
