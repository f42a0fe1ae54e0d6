//! [`CloudWatch`]: the metrics and alarm operations. Each handler is thin: check the request
//! against the model ([`Model`]) and CloudWatch's rules, then read through the region's
//! [`RegionMetrics`] (every replica's series, the alarms in the store) or write this
//! replica's series / the alarm records.
//!
//! Not served, refused by name, never ignored: metric math (expressions) and percentiles,
//! composite, log and anomaly-detection alarms, alarm actions other than Application Auto
//! Scaling policies, entity metric data, tags, and every operation outside the seven served.

use crate::error::CwError;
use crate::reader::RegionMetrics;
use crate::shapes::*;
use crate::ErrorShape;
use flotilla_edge::json::validate::Model;
use flotilla_edge::json::{JsonApi, JsonCall, JsonError, JSON_1_0};
use flotilla_metrics::alarm::{AlarmRule, AlarmState as State};
use flotilla_metrics::{
    Aggregate, AlarmDefinition, AlarmWriter, MetricFilter, MetricId, MetricReader, StatQuery,
};
use serde_json::Value;
use std::sync::Arc;

/// The operations served.
pub const SERVED: &[&str] = &[
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "PutMetricData",
    "PutMetricAlarm",
    "DescribeAlarms",
    "DeleteAlarms",
];

/// At most this many datapoints per GetMetricStatistics, as CloudWatch.
const MAX_DATAPOINTS: i64 = 1440;
/// At most this many alarms per region.
const MAX_ALARMS: usize = 5000;
/// ListMetrics' page.
const LIST_PAGE: usize = 500;

/// CloudWatch metrics and alarms of one region.
pub struct CloudWatch {
    metrics: Arc<RegionMetrics>,
    model: Model,
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, CwError> {
    serde_json::to_value(v)
        .map_err(|e| CwError::internal(format!("could not encode the response: {e}")))
}

fn metric_id(namespace: &str, name: &str, dims: &[Dimension]) -> MetricId {
    MetricId::new(
        namespace,
        name,
        dims.iter()
            .map(|d| flotilla_metrics::Dimension::new(&d.name, &d.value)),
    )
}

fn dims_out(m: &MetricId) -> Vec<Dimension> {
    m.dimensions
        .iter()
        .map(|d| Dimension {
            name: d.name.clone(),
            value: d.value.clone(),
        })
        .collect()
}

fn statistic_of(s: Statistic) -> flotilla_metrics::Statistic {
    match s {
        Statistic::SampleCount => flotilla_metrics::Statistic::SampleCount,
        Statistic::Average => flotilla_metrics::Statistic::Average,
        Statistic::Sum => flotilla_metrics::Statistic::Sum,
        Statistic::Minimum => flotilla_metrics::Statistic::Minimum,
        Statistic::Maximum => flotilla_metrics::Statistic::Maximum,
    }
}

fn unit_of(s: &str) -> Option<StandardUnit> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

/// Duplicate dimension names are refused, as CloudWatch refuses them.
fn check_dimensions(dims: &[Dimension], at: &str) -> Result<(), CwError> {
    for (i, d) in dims.iter().enumerate() {
        if dims[..i].iter().any(|x| x.name == d.name) {
            return Err(CwError::invalid(format!(
                "The collection {at} must not have duplicate dimension names: {} is given twice.",
                d.name
            )));
        }
    }
    Ok(())
}

fn check_times(start: f64, end: f64) -> Result<(), CwError> {
    if start >= end {
        return Err(CwError::invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    Ok(())
}

fn check_period(period: i32, resolution: u32) -> Result<u32, CwError> {
    let p = u32::try_from(period).unwrap_or(0);
    if p == 0 || !p.is_multiple_of(resolution) {
        return Err(CwError::invalid(format!(
            "The parameter Period must be a multiple of {resolution}."
        )));
    }
    Ok(p)
}

fn page_token(token: Option<&str>) -> Result<usize, CwError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("flotilla-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                CwError::new(
                    ErrorShape::InvalidNextToken,
                    "The service returned an error: the NextToken is not valid.",
                )
            }),
    }
}

impl CloudWatch {
    /// CloudWatch on the region's metrics and alarms.
    pub fn new(metrics: Arc<RegionMetrics>) -> Self {
        CloudWatch {
            metrics,
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    fn resolution(&self) -> u32 {
        self.metrics.resolution().max(1)
    }

    async fn get_metric_statistics(
        &self,
        req: GetMetricStatisticsInput,
    ) -> Result<GetMetricStatisticsOutput, CwError> {
        if req
            .extended_statistics
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(CwError::invalid(
                "ExtendedStatistics (percentiles) are not supported by this Flotilla server: ask for Statistics (SampleCount, Average, Sum, Minimum, Maximum).",
            ));
        }
        let stats = req.statistics.clone().unwrap_or_default();
        if stats.is_empty() {
            return Err(CwError::combination(
                "At least one of the parameters Statistics and ExtendedStatistics must be specified.",
            ));
        }
        check_times(req.start_time, req.end_time)?;
        let period = check_period(req.period, self.resolution())?;
        #[allow(clippy::cast_possible_truncation)]
        let count = ((req.end_time - req.start_time) / f64::from(period)).ceil() as i64;
        if count > MAX_DATAPOINTS {
            return Err(CwError::combination(format!(
                "You have requested up to {count} datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )));
        }
        let dims = req.dimensions.clone().unwrap_or_default();
        check_dimensions(&dims, "Dimensions")?;
        let metric = metric_id(&req.namespace, &req.metric_name, &dims);
        let unit = self.metrics.unit(&metric);
        if let (Some(asked), Some(kept)) = (&req.unit, &unit) {
            if asked.as_str() != kept {
                return Ok(GetMetricStatisticsOutput {
                    label: Some(req.metric_name),
                    datapoints: Some(Vec::new()),
                });
            }
        }
        let points = self
            .metrics
            .datapoints(&StatQuery {
                metric,
                start: req.start_time,
                end: req.end_time,
                period,
            })
            .await?;
        let unit = unit
            .as_deref()
            .and_then(unit_of)
            .or(Some(StandardUnit::None));
        let datapoints = points
            .iter()
            .map(|d| {
                let a = &d.aggregate;
                let get = |s: Statistic| stats.contains(&s).then(|| a.statistic(statistic_of(s)));
                Datapoint {
                    timestamp: Some(d.timestamp),
                    sample_count: get(Statistic::SampleCount),
                    average: get(Statistic::Average),
                    sum: get(Statistic::Sum),
                    minimum: get(Statistic::Minimum),
                    maximum: get(Statistic::Maximum),
                    unit,
                    ..Default::default()
                }
            })
            .collect();
        Ok(GetMetricStatisticsOutput {
            label: Some(req.metric_name),
            datapoints: Some(datapoints),
        })
    }

    async fn get_metric_data(
        &self,
        req: GetMetricDataInput,
    ) -> Result<GetMetricDataOutput, CwError> {
        check_times(req.start_time, req.end_time)?;
        if req.next_token.is_some() {
            return Err(CwError::new(
                ErrorShape::InvalidNextToken,
                "This Flotilla server answers GetMetricData in one page; there is no next page to ask for.",
            ));
        }
        let ascending = matches!(req.scan_by, Some(ScanBy::TimestampAscending));
        let mut results = Vec::new();
        for (i, q) in req.metric_data_queries.iter().enumerate() {
            let at = format!("MetricDataQueries.member.{}", i + 1);
            if req.metric_data_queries[..i].iter().any(|x| x.id == q.id) {
                return Err(CwError::invalid(format!(
                    "The value {} for parameter {at}.Id is not unique.",
                    q.id
                )));
            }
            if q.expression.is_some() {
                return Err(CwError::invalid(format!(
                    "Metric math is not supported by this Flotilla server: {at} has an Expression; give each query a MetricStat."
                )));
            }
            if q.account_id.is_some() {
                return Err(CwError::invalid(format!(
                    "Cross-account queries are not supported by this Flotilla server: remove {at}.AccountId."
                )));
            }
            let Some(ms) = &q.metric_stat else {
                return Err(CwError::missing(format!(
                    "The parameter {at}.MetricStat is required (this Flotilla server serves MetricStat queries)."
                )));
            };
            let stat = [
                Statistic::SampleCount,
                Statistic::Average,
                Statistic::Sum,
                Statistic::Minimum,
                Statistic::Maximum,
            ]
            .into_iter()
            .find(|s| s.as_str() == ms.stat)
            .ok_or_else(|| {
                CwError::invalid(format!(
                    "The value {} for parameter {at}.MetricStat.Stat is not supported by this Flotilla server: use SampleCount, Average, Sum, Minimum or Maximum.",
                    ms.stat
                ))
            })?;
            let period = check_period(ms.period, self.resolution())?;
            let (Some(namespace), Some(name)) = (&ms.metric.namespace, &ms.metric.metric_name)
            else {
                return Err(CwError::missing(format!(
                    "The parameters {at}.MetricStat.Metric.Namespace and MetricName are required."
                )));
            };
            let dims = ms.metric.dimensions.clone().unwrap_or_default();
            check_dimensions(&dims, &format!("{at}.MetricStat.Metric.Dimensions"))?;
            let metric = metric_id(namespace, name, &dims);
            let unit_mismatch = match (&ms.unit, self.metrics.unit(&metric)) {
                (Some(asked), Some(kept)) => asked.as_str() != kept,
                _ => false,
            };
            if q.return_data == Some(false) {
                continue;
            }
            let mut points = if unit_mismatch {
                Vec::new()
            } else {
                self.metrics
                    .statistic(
                        &StatQuery {
                            metric,
                            start: req.start_time,
                            end: req.end_time,
                            period,
                        },
                        statistic_of(stat),
                    )
                    .await?
            };
            if !ascending {
                points.reverse();
            }
            results.push(MetricDataResult {
                id: Some(q.id.clone()),
                label: Some(q.label.clone().unwrap_or_else(|| name.clone())),
                timestamps: Some(points.iter().map(|p| p.0).collect()),
                values: Some(points.iter().map(|p| p.1).collect()),
                status_code: Some(StatusCode::Complete),
                messages: None,
            });
        }
        Ok(GetMetricDataOutput {
            metric_data_results: Some(results),
            next_token: None,
            messages: Some(Vec::new()),
        })
    }

    async fn list_metrics(
        &self,
        req: ListMetricsInput,
        now: f64,
    ) -> Result<ListMetricsOutput, CwError> {
        if req.include_linked_accounts == Some(true) || req.owning_account.is_some() {
            return Err(CwError::invalid(
                "Cross-account observability is not supported by this Flotilla server: omit IncludeLinkedAccounts and OwningAccount.",
            ));
        }
        let filter = MetricFilter {
            namespace: req.namespace.clone(),
            name: req.metric_name.clone(),
            dimensions: req
                .dimensions
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|d| (d.name, d.value))
                .collect(),
        };
        let mut all = self.metrics.list_metrics(&filter).await?;
        if req.recently_active.is_some() {
            // PT3H: only metrics with a datapoint in the last three hours.
            let mut recent = Vec::new();
            let r = self.resolution();
            let period = (3 * 3600 / r).max(1) * r;
            for m in all {
                let q = StatQuery {
                    metric: m.clone(),
                    start: now - 3.0 * 3600.0,
                    end: now + f64::from(r),
                    period,
                };
                if !self.metrics.datapoints(&q).await?.is_empty() {
                    recent.push(m);
                }
            }
            all = recent;
        }
        let start = page_token(req.next_token.as_deref())?;
        let page: Vec<Metric> = all
            .iter()
            .skip(start)
            .take(LIST_PAGE)
            .map(|m| Metric {
                namespace: Some(m.namespace.clone()),
                metric_name: Some(m.name.clone()),
                dimensions: Some(dims_out(m)),
            })
            .collect();
        let end = start + page.len();
        Ok(ListMetricsOutput {
            metrics: Some(page),
            next_token: (end < all.len()).then(|| format!("flotilla-{end}")),
            owning_accounts: None,
        })
    }

    fn put_metric_data(&self, req: PutMetricDataInput, now: f64) -> Result<(), CwError> {
        if req.namespace.starts_with("AWS/") {
            return Err(CwError::invalid(format!(
                "The value {} for parameter Namespace is invalid.",
                req.namespace
            )));
        }
        if req.namespace.starts_with(':') {
            return Err(CwError::invalid(format!(
                "The value {} for parameter Namespace is invalid.",
                req.namespace
            )));
        }
        if req
            .entity_metric_data
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(CwError::invalid(
                "EntityMetricData is not supported by this Flotilla server: send MetricData.",
            ));
        }
        let Some(data) = req.metric_data.as_ref().filter(|d| !d.is_empty()) else {
            return Err(CwError::missing("The parameter MetricData is required."));
        };
        // Check every datum before recording any: nothing half-written.
        let mut batch = Vec::with_capacity(data.len());
        for (i, d) in data.iter().enumerate() {
            let at = format!("MetricData.member.{}", i + 1);
            let dims = d.dimensions.clone().unwrap_or_default();
            check_dimensions(&dims, &format!("{at}.Dimensions"))?;
            let given = [
                d.value.is_some(),
                d.statistic_values.is_some(),
                d.values.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(CwError::combination(format!(
                    "The parameters {at}.Value, {at}.StatisticValues and {at}.Values are mutually exclusive and you have specified more than one."
                )));
            }
            if let Some(r) = d.storage_resolution {
                if r != 1 && r != 60 {
                    return Err(CwError::invalid(format!(
                        "The value {r} for parameter {at}.StorageResolution is invalid."
                    )));
                }
            }
            let t = d.timestamp.unwrap_or(now);
            if t > now + 2.0 * 3600.0 {
                return Err(CwError::invalid(format!(
                    "The parameter {at}.Timestamp must specify a time no more than two hours in the future."
                )));
            }
            if t < now - 14.0 * 86400.0 {
                return Err(CwError::invalid(format!(
                    "The parameter {at}.Timestamp must specify a time within the past two weeks."
                )));
            }
            let aggregate = if let Some(v) = d.value {
                Aggregate::of(flotilla_metrics::Sample::plain(v))
            } else if let Some(s) = &d.statistic_values {
                if s.sample_count <= 0.0 || s.minimum > s.maximum {
                    return Err(CwError::invalid(format!(
                        "The parameter {at}.StatisticValues must have a positive SampleCount and a Minimum no greater than its Maximum."
                    )));
                }
                Aggregate::of_set(s.sample_count, s.sum, s.minimum, s.maximum)
            } else if let Some(values) = d.values.as_ref().filter(|v| !v.is_empty()) {
                let counts = d.counts.clone().unwrap_or_else(|| vec![1.0; values.len()]);
                if counts.len() != values.len() {
                    return Err(CwError::invalid(format!(
                        "The parameters {at}.Values and {at}.Counts must be of the same size."
                    )));
                }
                let mut a: Option<Aggregate> = None;
                for (v, c) in values.iter().zip(&counts) {
                    let one = Aggregate::of_set(*c, v * c, *v, *v);
                    match &mut a {
                        Some(x) => x.merge(&one),
                        None => a = Some(one),
                    }
                }
                a.unwrap_or_else(|| Aggregate::of(flotilla_metrics::Sample::plain(0.0)))
            } else {
                return Err(CwError::missing(format!(
                    "One of the parameters {at}.Value, {at}.StatisticValues or {at}.Values is required."
                )));
            };
            let metric = metric_id(&req.namespace, &d.metric_name, &dims);
            batch.push((metric, d.unit.map(|u| u.as_str().to_string()), t, aggregate));
        }
        let series = self.metrics.series();
        let new = batch
            .iter()
            .filter(|(m, ..)| series.unit(m).is_none() && series.metrics(|x| x == m).is_empty())
            .count();
        if new > 0 && series.metrics(|_| true).len() + new > crate::series::Limits::at(1).max_series
        {
            return Err(CwError::new(
                ErrorShape::LimitExceededFault,
                "This server keeps at most 10000 metrics; no new metric is accepted until old ones age out.",
            ));
        }
        for (m, unit, t, a) in batch {
            series
                .record_aggregate(&m, unit.as_deref(), t, &a, now)
                .map_err(|e| CwError::new(ErrorShape::LimitExceededFault, e.to_string()))?;
        }
        Ok(())
    }

    async fn put_metric_alarm(&self, req: PutMetricAlarmInput, now: f64) -> Result<(), CwError> {
        let refuse = |what: &str| {
            Err(CwError::invalid(format!(
                "{what} is not supported by this Flotilla server: alarms watch one metric's statistic against a static threshold."
            )))
        };
        if req.metrics.is_some() || req.threshold_metric_id.is_some() {
            return refuse("Metric math and anomaly detection (Metrics, ThresholdMetricId)");
        }
        if req.extended_statistic.is_some() || req.evaluate_low_sample_count_percentile.is_some() {
            return refuse("A percentile statistic (ExtendedStatistic)");
        }
        if req.evaluation_criteria.is_some()
            || req.evaluation_interval.is_some()
            || req.evaluation_window.is_some()
            || req.warm_up_configuration.is_some()
        {
            return refuse(
                "EvaluationCriteria, EvaluationInterval, EvaluationWindow and WarmUpConfiguration",
            );
        }
        if req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(CwError::invalid(
                "Tags are not supported by this Flotilla server's CloudWatch: omit Tags.",
            ));
        }
        let required = |v: bool, name: &str| -> Result<(), CwError> {
            if v {
                Ok(())
            } else {
                Err(CwError::missing(format!(
                    "The parameter {name} is required."
                )))
            }
        };
        required(req.metric_name.is_some(), "MetricName")?;
        required(req.namespace.is_some(), "Namespace")?;
        required(req.statistic.is_some(), "Statistic")?;
        required(req.period.is_some(), "Period")?;
        required(req.evaluation_periods.is_some(), "EvaluationPeriods")?;
        required(req.threshold.is_some(), "Threshold")?;
        required(req.comparison_operator.is_some(), "ComparisonOperator")?;
        let comparison = req
            .comparison_operator
            .and_then(|c| flotilla_metrics::ComparisonOperator::parse(c.as_str()))
            .ok_or_else(|| {
                CwError::invalid(
                    "Only the static-threshold operators GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold and LessThanOrEqualToThreshold are supported by this Flotilla server (anomaly detection bands are not).",
                )
            })?;
        let treat = match req.treat_missing_data.as_deref() {
            None => flotilla_metrics::TreatMissingData::Missing,
            Some(t) => flotilla_metrics::TreatMissingData::parse(t).ok_or_else(|| {
                CwError::new(
                    ErrorShape::ValidationException,
                    format!("The value {t} for parameter TreatMissingData is invalid: use breaching, notBreaching, ignore or missing."),
                )
            })?,
        };
        let period = check_period(req.period.unwrap_or(0), self.resolution())?;
        let n = u32::try_from(req.evaluation_periods.unwrap_or(0))
            .unwrap_or(0)
            .max(1);
        let m = match req.datapoints_to_alarm {
            None => n,
            Some(m) => {
                let m = u32::try_from(m).unwrap_or(0);
                if m == 0 || m > n {
                    return Err(CwError::new(
                        ErrorShape::ValidationException,
                        "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
                    ));
                }
                m
            }
        };
        if u64::from(period) * u64::from(n) > 86_400 {
            return Err(CwError::invalid(
                "The product of EvaluationPeriods and Period must not exceed 86400 (1 day).",
            ));
        }
        for (list, name) in [
            (&req.alarm_actions, "AlarmActions"),
            (&req.ok_actions, "OKActions"),
            (&req.insufficient_data_actions, "InsufficientDataActions"),
        ] {
            for a in list.iter().flatten() {
                if !a.starts_with("arn:aws:autoscaling:") {
                    return Err(CwError::invalid(format!(
                        "The action {a} in {name} is not supported by this Flotilla server: alarm actions may only name Application Auto Scaling policies (arn:aws:autoscaling:...)."
                    )));
                }
            }
        }
        let dims = req.dimensions.clone().unwrap_or_default();
        check_dimensions(&dims, "Dimensions")?;
        let namespace = req.namespace.clone().unwrap_or_default();
        let name = req.metric_name.clone().unwrap_or_default();
        let existing = self.metrics.alarms().await?;
        if existing.len() >= MAX_ALARMS
            && !existing.iter().any(|a| a.definition.name == req.alarm_name)
        {
            return Err(CwError::new(
                ErrorShape::LimitExceededFault,
                format!("The maximum number of alarms ({MAX_ALARMS}) has been reached."),
            ));
        }
        let definition = AlarmDefinition {
            name: req.alarm_name.clone(),
            arn: String::new(),
            description: req.alarm_description.clone(),
            actions_enabled: req.actions_enabled.unwrap_or(true),
            alarm_actions: req.alarm_actions.clone().unwrap_or_default(),
            ok_actions: req.ok_actions.clone().unwrap_or_default(),
            insufficient_data_actions: req.insufficient_data_actions.clone().unwrap_or_default(),
            rule: AlarmRule {
                metric: metric_id(&namespace, &name, &dims),
                statistic: statistic_of(req.statistic.unwrap_or(Statistic::Average)),
                period,
                evaluation_periods: n,
                datapoints_to_alarm: m,
                threshold: req.threshold.unwrap_or(0.0),
                comparison,
                treat_missing_data: treat,
                unit: req.unit.map(|u| u.as_str().to_string()),
            },
            updated_at: now,
        };
        self.metrics.put_alarm(definition, now).await?;
        Ok(())
    }

    async fn describe_alarms(
        &self,
        req: DescribeAlarmsInput,
    ) -> Result<DescribeAlarmsOutput, CwError> {
        if req.alarm_names.is_some() && req.alarm_name_prefix.is_some() {
            return Err(CwError::combination(
                "AlarmNames and AlarmNamePrefix cannot be specified together.",
            ));
        }
        let types = req.alarm_types.clone().unwrap_or_default();
        let metric_alarms = types.is_empty() || types.contains(&AlarmType::MetricAlarm);
        let composite = types.contains(&AlarmType::CompositeAlarm);
        // Composite alarms cannot be created here, so none has children or parents.
        let family = req.children_of_alarm_name.is_some() || req.parents_of_alarm_name.is_some();
        let mut alarms: Vec<_> = if metric_alarms && !family {
            self.metrics.alarms().await?
        } else {
            Vec::new()
        };
        alarms.retain(|a| {
            let d = &a.definition;
            req.alarm_names.as_ref().is_none_or(|n| n.contains(&d.name))
                && req
                    .alarm_name_prefix
                    .as_ref()
                    .is_none_or(|p| d.name.starts_with(p.as_str()))
                && req
                    .state_value
                    .is_none_or(|s| s.as_str() == a.status.state.as_str())
                && req.action_prefix.as_ref().is_none_or(|p| {
                    d.alarm_actions
                        .iter()
                        .chain(&d.ok_actions)
                        .chain(&d.insufficient_data_actions)
                        .any(|x| x.starts_with(p.as_str()))
                })
        });
        let max = usize::try_from(req.max_records.unwrap_or(50))
            .unwrap_or(50)
            .clamp(1, 100);
        let start = page_token(req.next_token.as_deref())?;
        let page: Vec<MetricAlarm> = alarms.iter().skip(start).take(max).map(alarm_out).collect();
        let end = start + page.len();
        Ok(DescribeAlarmsOutput {
            composite_alarms: composite.then(Vec::new),
            metric_alarms: Some(page),
            log_alarms: None,
            next_token: (end < alarms.len()).then(|| format!("flotilla-{end}")),
        })
    }

    async fn delete_alarms(&self, req: DeleteAlarmsInput) -> Result<(), CwError> {
        let existing = self.metrics.alarms().await?;
        let missing: Vec<&String> = req
            .alarm_names
            .iter()
            .filter(|n| !existing.iter().any(|a| &&a.definition.name == n))
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            return Err(CwError::new(
                ErrorShape::ResourceNotFound,
                format!(
                    "The alarm(s) {} do(es) not exist; no alarm was deleted.",
                    names.join(", ")
                ),
            ));
        }
        self.metrics.delete_alarms(&req.alarm_names).await?;
        Ok(())
    }
}

fn alarm_out(a: &flotilla_metrics::Alarm) -> MetricAlarm {
    let d = &a.definition;
    let r = &d.rule;
    let state = match a.status.state {
        State::Ok => StateValue::Ok,
        State::Alarm => StateValue::Alarm,
        State::InsufficientData => StateValue::InsufficientData,
    };
    MetricAlarm {
        alarm_name: Some(d.name.clone()),
        alarm_arn: Some(d.arn.clone()),
        alarm_description: d.description.clone(),
        alarm_configuration_updated_timestamp: Some(d.updated_at),
        actions_enabled: Some(d.actions_enabled),
        ok_actions: Some(d.ok_actions.clone()),
        alarm_actions: Some(d.alarm_actions.clone()),
        insufficient_data_actions: Some(d.insufficient_data_actions.clone()),
        state_value: Some(state),
        state_reason: Some(a.status.reason.clone()),
        state_reason_data: a.status.reason_data.clone(),
        state_updated_timestamp: Some(a.status.updated_at),
        state_transitioned_timestamp: Some(a.status.updated_at),
        metric_name: Some(r.metric.name.clone()),
        namespace: Some(r.metric.namespace.clone()),
        statistic: serde_json::from_value(Value::String(r.statistic.as_str().into())).ok(),
        dimensions: Some(dims_out(&r.metric)),
        period: i32::try_from(r.period).ok(),
        unit: r.unit.as_deref().and_then(unit_of),
        evaluation_periods: i32::try_from(r.evaluation_periods).ok(),
        datapoints_to_alarm: i32::try_from(r.datapoints_to_alarm).ok(),
        threshold: Some(r.threshold),
        comparison_operator: serde_json::from_value(Value::String(r.comparison.as_str().into()))
            .ok(),
        treat_missing_data: Some(r.treat_missing_data.as_str().to_string()),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl JsonApi for CloudWatch {
    fn title(&self) -> &'static str {
        "Amazon CloudWatch"
    }

    fn signing_name(&self) -> &'static str {
        "monitoring"
    }

    fn target_prefix(&self) -> &'static str {
        "GraniteServiceVersion20100801"
    }

    fn content_type(&self) -> &'static str {
        JSON_1_0
    }

    fn has_operation(&self, name: &str) -> bool {
        self.model.has_operation(name)
    }

    fn invalid_request(&self, message: String) -> JsonError {
        CwError::invalid(message).into()
    }

    fn internal_error(&self, message: String) -> JsonError {
        CwError::internal(message).into()
    }

    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        let op = call.operation;
        let input = call.input;
        let now = call.now;
        if !SERVED.contains(&op) {
            return Err(JsonError::new(
                "UnsupportedOperationException",
                400,
                "message",
                format!(
                    "{op} is not supported by this Flotilla server: of CloudWatch it serves {}.",
                    SERVED.join(", ")
                ),
            ));
        }
        macro_rules! parse {
            () => {
                self.model.parse_input(op, input).map_err(CwError::from)?
            };
        }
        let result: Result<Value, CwError> = async {
            match op {
                "GetMetricStatistics" => to_value(self.get_metric_statistics(parse!()).await?),
                "GetMetricData" => to_value(self.get_metric_data(parse!()).await?),
                "ListMetrics" => to_value(self.list_metrics(parse!(), now).await?),
                "PutMetricData" => {
                    self.put_metric_data(parse!(), now)?;
                    Ok(Value::Object(Default::default()))
                }
                "PutMetricAlarm" => {
                    self.put_metric_alarm(parse!(), now).await?;
                    Ok(Value::Object(Default::default()))
                }
                "DescribeAlarms" => to_value(self.describe_alarms(parse!()).await?),
                "DeleteAlarms" => {
                    self.delete_alarms(parse!()).await?;
                    Ok(Value::Object(Default::default()))
                }
                other => Err(CwError::internal(format!("{other} has no handler"))),
            }
        }
        .await;
        result.map_err(JsonError::from)
    }
}
