//! Metric alarms: the definition a PutMetricAlarm stores, the state CloudWatch reports, and the
//! evaluation rule.
//!
//! The rule ([`evaluate`]), as CloudWatch documents it: each period the alarm looks at its
//! evaluation range, the `EvaluationPeriods` (N) most recent whole periods of its metric's
//! `Statistic`; a datapoint *breaches* when `value OP threshold` holds. It goes to ALARM when at
//! least `DatapointsToAlarm` (M, default N) datapoints breach, else to OK. Missing periods are
//! what `TreatMissingData` says:
//! - `breaching` / `notBreaching`: a missing period counts as breaching / not breaching;
//! - `missing` (the default): missing periods are left out; with none present the alarm goes to
//!   INSUFFICIENT_DATA; with fewer than M present, it goes to ALARM only if all of them breach
//!   (CloudWatch's "X X -" goes to ALARM for 3 out of 3);
//! - `ignore`: as `missing`, except that with none present the alarm keeps its state.
//!
//! What this is not: scheduling (the leader's loop calls [`evaluate`] once per period) or
//! storage (the service keeps [`AlarmDefinition`] and [`AlarmStatus`] in the control-plane
//! store).

use crate::aggregate::Statistic;
use crate::id::MetricId;
use serde::{Deserialize, Serialize};

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmState {
    /// `OK`: the metric is within the threshold.
    Ok,
    /// `ALARM`: the metric breaches the threshold.
    Alarm,
    /// `INSUFFICIENT_DATA`: not enough data to tell (every new alarm starts here).
    InsufficientData,
}

impl AlarmState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// How a datapoint is compared with the threshold (the static-threshold operators; the
/// anomaly-detection band operators are refused by the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComparisonOperator {
    /// `>=`.
    GreaterThanOrEqualToThreshold,
    /// `>`.
    GreaterThanThreshold,
    /// `<`.
    LessThanThreshold,
    /// `<=`.
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// The operator named `s` (static thresholds only).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::GreaterThanOrEqualToThreshold,
            Self::GreaterThanThreshold,
            Self::LessThanThreshold,
            Self::LessThanOrEqualToThreshold,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::GreaterThanThreshold => value > threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// The operator as a symbol, for state reasons.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::GreaterThanOrEqualToThreshold => ">=",
            Self::GreaterThanThreshold => ">",
            Self::LessThanThreshold => "<",
            Self::LessThanOrEqualToThreshold => "<=",
        }
    }
}

/// What a missing period counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TreatMissingData {
    /// `missing`: left out (the default).
    #[default]
    Missing,
    /// `ignore`: left out, and with no data the state is kept.
    Ignore,
    /// `breaching`.
    Breaching,
    /// `notBreaching`.
    NotBreaching,
}

impl TreatMissingData {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ignore => "ignore",
            Self::Breaching => "breaching",
            Self::NotBreaching => "notBreaching",
        }
    }

    /// The treatment named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Missing,
            Self::Ignore,
            Self::Breaching,
            Self::NotBreaching,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// What an alarm watches and when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRule {
    /// The metric.
    pub metric: MetricId,
    /// The statistic of each period.
    pub statistic: Statistic,
    /// The period, seconds.
    pub period: u32,
    /// N: how many recent periods are evaluated.
    pub evaluation_periods: u32,
    /// M: how many of them must breach (1..=N).
    pub datapoints_to_alarm: u32,
    /// The threshold.
    pub threshold: f64,
    /// How a value is compared with it.
    pub comparison: ComparisonOperator,
    /// What a missing period counts as.
    pub treat_missing_data: TreatMissingData,
    /// The unit asked for, if any (as given).
    pub unit: Option<String>,
}

impl AlarmRule {
    /// The evaluation range at `now`: `(start, end)` of the N most recent whole periods (a
    /// period still running is not evaluated).
    pub fn range(&self, now: f64) -> (f64, f64) {
        let end = crate::series::floor_to(now, self.period.max(1));
        #[allow(clippy::cast_precision_loss)]
        let end = end as f64;
        let start = end - f64::from(self.period) * f64::from(self.evaluation_periods);
        (start, end)
    }
}

/// An alarm as PutMetricAlarm defines it (desired state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmDefinition {
    /// The name (unique in the region).
    pub name: String,
    /// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
    pub arn: String,
    /// The description, if any.
    pub description: Option<String>,
    /// Whether actions run on state changes.
    pub actions_enabled: bool,
    /// ARNs acted on when the alarm goes to ALARM (e.g. a scaling policy).
    pub alarm_actions: Vec<String>,
    /// ARNs acted on when it goes to OK.
    pub ok_actions: Vec<String>,
    /// ARNs acted on when it goes to INSUFFICIENT_DATA.
    pub insufficient_data_actions: Vec<String>,
    /// The rule.
    pub rule: AlarmRule,
    /// When the configuration was last written.
    pub updated_at: f64,
}

/// An alarm's ARN: `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
pub fn alarm_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

/// An alarm's state as CloudWatch reports it (observed state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmStatus {
    /// The state.
    pub state: AlarmState,
    /// Why, in CloudWatch's words.
    pub reason: String,
    /// The same as JSON (`{"version":"1.0",...}`), when evaluated from data.
    pub reason_data: Option<String>,
    /// When the state last changed (`StateUpdatedTimestamp`).
    pub updated_at: f64,
}

impl AlarmStatus {
    /// The state of a new (or redefined) alarm: INSUFFICIENT_DATA, "Unchecked: Initial alarm
    /// creation", as CloudWatch reports it.
    pub fn initial(now: f64) -> Self {
        AlarmStatus {
            state: AlarmState::InsufficientData,
            reason: "Unchecked: Initial alarm creation".into(),
            reason_data: None,
            updated_at: now,
        }
    }
}

/// An alarm: its definition and its current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// What PutMetricAlarm stored.
    pub definition: AlarmDefinition,
    /// Its state.
    pub status: AlarmStatus,
}

/// What one evaluation decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The state the alarm should be in.
    pub state: AlarmState,
    /// Why, in CloudWatch's words.
    pub reason: String,
    /// The reason as JSON, for `StateReasonData`.
    pub reason_data: String,
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Evaluates `rule` over `values`: the statistic of each of the N periods of the evaluation
/// range, oldest first, `None` where the period has no data (`period_starts` are their start
/// times, for the reason). Returns the state the alarm should be in with CloudWatch's reason,
/// or `None` to keep the current state (`ignore` with no data).
pub fn evaluate(
    rule: &AlarmRule,
    values: &[Option<f64>],
    period_starts: &[f64],
) -> Option<Evaluation> {
    let n = values.len();
    let m = usize::try_from(rule.datapoints_to_alarm)
        .unwrap_or(usize::MAX)
        .clamp(1, n.max(1));
    let present: Vec<(f64, f64)> = values
        .iter()
        .zip(period_starts)
        .filter_map(|(v, &t)| v.map(|v| (t, v)))
        .collect();
    let breaching = |v: f64| rule.comparison.breaches(v, rule.threshold);
    let missing = n - present.len();
    let present_breaching = present.iter().filter(|(_, v)| breaching(*v)).count();
    let state = match rule.treat_missing_data {
        TreatMissingData::Breaching => {
            if present_breaching + missing >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            }
        }
        TreatMissingData::NotBreaching => {
            if present_breaching >= m {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            }
        }
        TreatMissingData::Missing | TreatMissingData::Ignore => {
            if present.is_empty() {
                if rule.treat_missing_data == TreatMissingData::Ignore {
                    return None;
                }
                AlarmState::InsufficientData
            } else if present_breaching >= m.min(present.len()) {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            }
        }
    };
    let shown: Vec<String> = present
        .iter()
        .rev()
        .map(|(t, v)| format!("{} ({})", format_value(*v), format_time(*t)))
        .collect();
    let plural = |k: usize| if k == 1 { "" } else { "s" };
    let reason = if present.is_empty() {
        match rule.treat_missing_data {
            TreatMissingData::Breaching | TreatMissingData::NotBreaching => format!(
                "Threshold Crossed: no datapoints were received for {n} period{} and {n} missing datapoint{} {} treated as [{}].",
                plural(n),
                plural(n),
                if n == 1 { "was" } else { "were" },
                if state == AlarmState::Alarm { "Breaching" } else { "NonBreaching" },
            ),
            _ => format!(
                "Insufficient Data: {n} datapoint{} {} unknown.",
                plural(n),
                if n == 1 { "was" } else { "were" },
            ),
        }
    } else {
        let (crossed, verdict, transition) = if state == AlarmState::Alarm {
            (present_breaching, "was", "OK -> ALARM")
        } else {
            (present.len() - present_breaching, "was not", "ALARM -> OK")
        };
        format!(
            "Threshold Crossed: {crossed} out of the last {n} datapoints [{}] {verdict} {} the threshold ({}) (minimum {m} datapoint{} for {transition} transition).",
            shown.join(", "),
            comparison_words(rule.comparison),
            format_value(rule.threshold),
            plural(m),
        )
    };
    let recent: Vec<String> = present.iter().rev().map(|(_, v)| format!("{v}")).collect();
    let stamps: Vec<String> = present
        .iter()
        .rev()
        .map(|(t, _)| format!("\"{}\"", format_time(*t)))
        .collect();
    let reason_data = format!(
        "{{\"version\":\"1.0\",\"queryDate\":\"{}\",\"statistic\":\"{}\",\"period\":{},\"recentDatapoints\":[{}],\"startDate\":\"{}\",\"threshold\":{},\"evaluatedDatapoints\":[{}]}}",
        format_time(period_starts.last().copied().unwrap_or(0.0) + f64::from(rule.period)),
        rule.statistic.as_str(),
        rule.period,
        recent.join(","),
        format_time(period_starts.first().copied().unwrap_or(0.0)),
        rule.threshold,
        stamps.join(","),
    );
    Some(Evaluation {
        state,
        reason,
        reason_data,
    })
}

fn comparison_words(op: ComparisonOperator) -> &'static str {
    match op {
        ComparisonOperator::GreaterThanOrEqualToThreshold => "greater than or equal to",
        ComparisonOperator::GreaterThanThreshold => "greater than",
        ComparisonOperator::LessThanThreshold => "less than",
        ComparisonOperator::LessThanOrEqualToThreshold => "less than or equal to",
    }
}

/// `t` (epoch seconds) as CloudWatch writes times in reasons: `dd/MM/yy HH:mm:ss`.
pub fn format_time(t: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}",
        d,
        mo,
        y.rem_euclid(100),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Dimension;

    fn rule(n: u32, m: u32, treat: TreatMissingData) -> AlarmRule {
        AlarmRule {
            metric: MetricId::new("T", "M", [Dimension::new("D", "1")]),
            statistic: Statistic::Average,
            period: 60,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold: 50.0,
            comparison: ComparisonOperator::GreaterThanThreshold,
            treat_missing_data: treat,
            unit: None,
        }
    }

    /// `X` breaching, `0` not breaching, `-` missing, oldest first.
    fn values(s: &str) -> Vec<Option<f64>> {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                'X' => Some(90.0),
                '0' => Some(10.0),
                _ => None,
            })
            .collect()
    }

    fn check(n: u32, m: u32, data: &str, treat: TreatMissingData) -> Option<AlarmState> {
        let v = values(data);
        let starts: Vec<f64> = (0..v.len()).map(|i| 60.0 * i as f64).collect();
        evaluate(&rule(n, m, treat), &v, &starts).map(|e| e.state)
    }

    #[test]
    fn cloudwatchs_missing_data_table() {
        use AlarmState::*;
        use TreatMissingData::*;
        // Rows of CloudWatch's table for 3 evaluation periods, 3 datapoints to alarm:
        // (data, missing, ignore, breaching, notBreaching).
        type Row = (
            &'static str,
            Option<AlarmState>,
            Option<AlarmState>,
            AlarmState,
            AlarmState,
        );
        let rows: &[Row] = &[
            ("0 0 0", Some(Ok), Some(Ok), Ok, Ok),
            ("0 0 X", Some(Ok), Some(Ok), Ok, Ok),
            ("X X X", Some(Alarm), Some(Alarm), Alarm, Alarm),
            ("0 0 -", Some(Ok), Some(Ok), Ok, Ok),
            ("X X -", Some(Alarm), Some(Alarm), Alarm, Ok),
            ("0 - -", Some(Ok), Some(Ok), Ok, Ok),
            ("- - -", Some(InsufficientData), None, Alarm, Ok),
        ];
        for &(data, missing, ignore, breaching, not_breaching) in rows {
            assert_eq!(check(3, 3, data, Missing), missing, "missing: {data}");
            assert_eq!(check(3, 3, data, Ignore), ignore, "ignore: {data}");
            assert_eq!(
                check(3, 3, data, Breaching),
                Some(breaching),
                "breaching: {data}"
            );
            assert_eq!(
                check(3, 3, data, NotBreaching),
                Some(not_breaching),
                "notBreaching: {data}"
            );
        }
    }

    #[test]
    fn m_out_of_n() {
        use TreatMissingData::Missing;
        assert_eq!(check(5, 2, "0 X 0 X 0", Missing), Some(AlarmState::Alarm));
        assert_eq!(check(5, 3, "0 X 0 X 0", Missing), Some(AlarmState::Ok));
        assert_eq!(check(1, 1, "X", Missing), Some(AlarmState::Alarm));
    }

    #[test]
    fn operators_compare_as_named() {
        use ComparisonOperator::*;
        assert!(GreaterThanOrEqualToThreshold.breaches(5.0, 5.0));
        assert!(!GreaterThanThreshold.breaches(5.0, 5.0));
        assert!(LessThanThreshold.breaches(4.0, 5.0));
        assert!(LessThanOrEqualToThreshold.breaches(5.0, 5.0));
        for op in [
            GreaterThanOrEqualToThreshold,
            GreaterThanThreshold,
            LessThanThreshold,
            LessThanOrEqualToThreshold,
        ] {
            assert_eq!(ComparisonOperator::parse(op.as_str()), Some(op));
        }
        assert_eq!(ComparisonOperator::parse("GreaterThanUpperThreshold"), None);
    }

    #[test]
    fn reasons_read_as_cloudwatchs() {
        let r = rule(1, 1, TreatMissingData::Missing);
        let e = evaluate(&r, &[Some(90.0)], &[1_700_000_040.0]).unwrap();
        assert_eq!(
            e.reason,
            "Threshold Crossed: 1 out of the last 1 datapoints [90.0 (14/11/23 22:14:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition)."
        );
        let e = evaluate(&r, &[Some(10.0)], &[1_700_000_040.0]).unwrap();
        assert!(
            e.reason
                .contains("was not greater than the threshold (50.0)"),
            "{}",
            e.reason
        );
        assert!(e.reason_data.starts_with("{\"version\":\"1.0\""));
    }

    #[test]
    fn the_range_is_the_last_whole_periods() {
        let r = rule(3, 3, TreatMissingData::Missing);
        assert_eq!(r.range(1000.0), (780.0, 960.0));
    }

    #[test]
    fn states_round_trip() {
        for s in [
            AlarmState::Ok,
            AlarmState::Alarm,
            AlarmState::InsufficientData,
        ] {
            assert_eq!(AlarmState::parse(s.as_str()), Some(s));
        }
        for t in [
            TreatMissingData::Missing,
            TreatMissingData::Ignore,
            TreatMissingData::Breaching,
            TreatMissingData::NotBreaching,
        ] {
            assert_eq!(TreatMissingData::parse(t.as_str()), Some(t));
        }
    }
}
