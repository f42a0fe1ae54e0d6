//! What one period of a metric holds, and CloudWatch's statistics of it.
//!
//! An [`Aggregate`] is CloudWatch's statistic set (sample count, sum, minimum, maximum) plus a
//! weighted sum and total weight. A plain sample (PutMetricData) has weight 1, so its average is
//! `sum / count` as CloudWatch's. A ratio sample (ECS utilization: a task using `u` of its `r`
//! reserved CPU units is the value `100 u / r` with weight `r`) averages as `Σ u / Σ r × 100`,
//! which is how ECS defines a service's or cluster's utilization, not the mean of the tasks'
//! percentages. Aggregates merge by adding (and min/max), so partial aggregates from several
//! replicas, or of several buckets, merge into the same answer whatever their order.

use serde::{Deserialize, Serialize};

/// One observation of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The value (for a ratio, in percent).
    pub value: f64,
    /// The weight in averages: 1 for a plain value, the denominator for a ratio.
    pub weight: f64,
}

impl Sample {
    /// A plain value (weight 1).
    pub fn plain(value: f64) -> Self {
        Sample { value, weight: 1.0 }
    }

    /// `used / of × 100` percent, weighted by `of`; `None` when `of` is not positive (a ratio
    /// over nothing has no value).
    pub fn percent(used: f64, of: f64) -> Option<Self> {
        (of > 0.0 && used.is_finite() && of.is_finite()).then(|| Sample {
            value: used / of * 100.0,
            weight: of,
        })
    }
}

/// A CloudWatch statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Statistic {
    /// `Sum / SampleCount` (weighted, see the module doc).
    Average,
    /// The sum of the values.
    Sum,
    /// The smallest value.
    Minimum,
    /// The largest value.
    Maximum,
    /// How many values.
    SampleCount,
}

impl Statistic {
    /// Every statistic, in the model's order.
    pub const ALL: [Statistic; 5] = [
        Statistic::SampleCount,
        Statistic::Average,
        Statistic::Sum,
        Statistic::Minimum,
        Statistic::Maximum,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::SampleCount => "SampleCount",
        }
    }

    /// The statistic named `s` (its wire name).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The samples of one period (or several merged), as a statistic set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// How many samples.
    pub count: f64,
    /// Σ value.
    pub sum: f64,
    /// Σ value × weight.
    pub weighted_sum: f64,
    /// Σ weight.
    pub weight: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Aggregate {
    /// The aggregate of one sample.
    pub fn of(s: Sample) -> Self {
        Aggregate {
            count: 1.0,
            sum: s.value,
            weighted_sum: s.value * s.weight,
            weight: s.weight,
            min: s.value,
            max: s.value,
        }
    }

    /// A statistic set as PutMetricData's `StatisticValues` gives it (weight 1 per sample).
    pub fn of_set(count: f64, sum: f64, min: f64, max: f64) -> Self {
        Aggregate {
            count,
            sum,
            weighted_sum: sum,
            weight: count,
            min,
            max,
        }
    }

    /// Adds one sample.
    pub fn add(&mut self, s: Sample) {
        self.merge(&Aggregate::of(s));
    }

    /// Merges another aggregate into this one (commutative and associative).
    pub fn merge(&mut self, o: &Aggregate) {
        self.count += o.count;
        self.sum += o.sum;
        self.weighted_sum += o.weighted_sum;
        self.weight += o.weight;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The weighted average (the plain average for weight-1 samples).
    pub fn average(&self) -> f64 {
        if self.weight > 0.0 {
            self.weighted_sum / self.weight
        } else if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The value of statistic `s`. `Sum` is `Average × SampleCount`, so CloudWatch's identity
    /// `Average = Sum / SampleCount` holds for weighted samples too (for plain samples it is the
    /// plain sum).
    pub fn statistic(&self, s: Statistic) -> f64 {
        match s {
            Statistic::Average => self.average(),
            Statistic::Sum => {
                if (self.weight - self.count).abs() < f64::EPSILON * self.count.max(1.0) {
                    self.sum
                } else {
                    self.average() * self.count
                }
            }
            Statistic::Minimum => self.min,
            Statistic::Maximum => self.max,
            Statistic::SampleCount => self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_ratio_averages_over_the_total_reservation() {
        // Task A uses 512 of 1024 units, task B 256 of 256: ECS's service utilization is
        // (512 + 256) / (1024 + 256) = 60 %, not the mean of 50 % and 100 %.
        let mut a = Aggregate::of(Sample::percent(512.0, 1024.0).unwrap());
        a.add(Sample::percent(256.0, 256.0).unwrap());
        assert!((a.average() - 60.0).abs() < 1e-9);
        assert_eq!(a.statistic(Statistic::Minimum), 50.0);
        assert_eq!(a.statistic(Statistic::Maximum), 100.0);
        assert_eq!(a.statistic(Statistic::SampleCount), 2.0);
        assert!((a.statistic(Statistic::Sum) - 120.0).abs() < 1e-9);
    }

    #[test]
    fn plain_samples_are_cloudwatch_statistics() {
        let mut a = Aggregate::of(Sample::plain(1.0));
        a.add(Sample::plain(2.0));
        a.add(Sample::plain(6.0));
        assert_eq!(a.statistic(Statistic::Sum), 9.0);
        assert_eq!(a.statistic(Statistic::Average), 3.0);
        assert_eq!(a.statistic(Statistic::SampleCount), 3.0);
        let set = Aggregate::of_set(3.0, 9.0, 1.0, 6.0);
        assert_eq!(set.statistic(Statistic::Average), 3.0);
    }

    #[test]
    fn a_ratio_over_nothing_has_no_value() {
        assert!(Sample::percent(10.0, 0.0).is_none());
    }

    #[test]
    fn statistic_names_round_trip() {
        for s in Statistic::ALL {
            assert_eq!(Statistic::parse(s.as_str()), Some(s));
        }
        assert_eq!(Statistic::parse("p99"), None);
    }

    proptest! {
        /// Merging partial aggregates in any grouping gives the aggregate of all samples:
        /// what lets replicas' partial answers be merged.
        #[test]
        fn merging_is_order_free(values in proptest::collection::vec((0.0f64..1000.0, 1.0f64..4096.0), 1..40), split in 0usize..40) {
            let samples: Vec<Sample> = values.iter().map(|&(u, r)| Sample::percent(u, r).unwrap()).collect();
            let mut whole = Aggregate::of(samples[0]);
            for s in &samples[1..] { whole.add(*s); }
            let cut = split.min(samples.len() - 1).max(1);
            let (left, right) = samples.split_at(cut);
            let mut l = Aggregate::of(left[0]);
            for s in &left[1..] { l.add(*s); }
            if !right.is_empty() {
                let mut r = Aggregate::of(right[0]);
                for s in &right[1..] { r.add(*s); }
                let mut rl = r;
                rl.merge(&l);
                l.merge(&r);
                prop_assert!((l.average() - rl.average()).abs() < 1e-6);
            }
            prop_assert!((l.average() - whole.average()).abs() < 1e-6);
            prop_assert_eq!(l.count, whole.count);
            prop_assert_eq!(l.max, whole.max);
            prop_assert_eq!(l.min, whole.min);
            // The average of a ratio is Σ used / Σ reserved.
            let used: f64 = values.iter().map(|&(u, _)| u).sum();
            let reserved: f64 = values.iter().map(|&(_, r)| r).sum();
            prop_assert!((whole.average() - used / reserved * 100.0).abs() < 1e-6);
        }
    }
}
