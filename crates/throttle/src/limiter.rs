//! [`Limiter`]: one [`TokenBucket`] per caller (access key id) and bucket name, the names and
//! limits given by a [`Policy`] (ECS's classes by default, [`crate::classes`], with the
//! configured overrides).
//!
//! The map is bounded ([`Policy::max_buckets`]): when a new bucket would pass the bound, the
//! buckets that are full are forgotten first (a full bucket is the same as a new one, so that
//! loses nothing); if that is not enough, the tenth used longest ago goes too (its caller then
//! finds a full bucket again: only possible with more callers at once than the bound).

use crate::bucket::{Decision, Limit, TokenBucket};
use crate::classes::{class_of, parse_name};
use std::collections::{BTreeMap, HashMap};

/// How many buckets a limiter keeps at most, by default.
pub const DEFAULT_MAX_BUCKETS: usize = 100_000;

/// The limits: ECS's classes and every service's read and modify classes by default
/// ([`class_of`]), with overrides for a class or for one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    overrides: BTreeMap<String, Limit>,
    /// The most buckets kept at once.
    pub max_buckets: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            overrides: BTreeMap::new(),
            max_buckets: DEFAULT_MAX_BUCKETS,
        }
    }
}

impl Policy {
    /// Sets the limit of a class (`ecs:cluster-read`, `ssm:read`) or of one operation
    /// (`ecs:DescribeClusters`, which then has a bucket of its own); the name is checked
    /// ([`parse_name`]).
    pub fn set(&mut self, name: &str, limit: Limit) -> Result<(), String> {
        parse_name(name)?;
        self.overrides.insert(name.to_string(), limit);
        Ok(())
    }

    /// The configured overrides, by name.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, Limit)> {
        self.overrides.iter().map(|(n, l)| (n.as_str(), *l))
    }

    /// The bucket `operation` of `service` (its SigV4 signing name) draws from, and its limit.
    pub fn bucket(&self, service: &str, operation: &str) -> (String, Limit) {
        let own = format!("{service}:{operation}");
        if let Some(limit) = self.overrides.get(&own) {
            return (own, *limit);
        }
        let (class, default) = class_of(service, operation);
        let limit = self.overrides.get(&class).copied().unwrap_or(default);
        (class, limit)
    }
}

/// Parses `NAME=BURST/RATE` (`ecs:cluster-read=5/1`, `ecs:DescribeClusters=100/50`), as the
/// server's `--throttle-limit` flag takes it.
pub fn parse_setting(text: &str) -> Result<(String, Limit), String> {
    let form = "expected NAME=BURST/RATE, e.g. ecs:cluster-read=50/20";
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': {form}"))?;
    let (burst, rate) = value
        .split_once('/')
        .ok_or_else(|| format!("'{text}': {form}"))?;
    let burst: u32 = burst
        .trim()
        .parse()
        .map_err(|_| format!("'{text}': the burst '{burst}' is not a whole number; {form}"))?;
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("'{text}': the rate '{rate}' is not a number; {form}"))?;
    let name = name.trim();
    parse_name(name)?;
    let limit = Limit::new(burst, rate).map_err(|e| format!("'{text}': {e}"))?;
    Ok((name.to_string(), limit))
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    bucket: TokenBucket,
    limit: Limit,
}

/// The buckets of every caller and class, under a [`Policy`].
#[derive(Debug)]
pub struct Limiter {
    policy: Policy,
    buckets: HashMap<String, Entry>,
}

impl Limiter {
    /// An empty limiter.
    pub fn new(policy: Policy) -> Limiter {
        Limiter {
            policy,
            buckets: HashMap::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many buckets are kept now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// One request of `key` (the caller's access key id) for `operation` of `service` at
    /// `now`: admitted (a token taken from its bucket) or throttled.
    pub fn check(&mut self, key: &str, service: &str, operation: &str, now: f64) -> Decision {
        let (name, limit) = self.policy.bucket(service, operation);
        let id = format!("{key}\u{0}{name}");
        if !self.buckets.contains_key(&id) && self.buckets.len() >= self.policy.max_buckets {
            self.evict(now);
        }
        let entry = self.buckets.entry(id).or_insert(Entry {
            bucket: TokenBucket::full(limit, now),
            limit,
        });
        entry.limit = limit;
        entry.bucket.take(limit, now)
    }

    /// Makes room for one bucket: the full ones go, then if need be the tenth used longest ago.
    fn evict(&mut self, now: f64) {
        self.buckets.retain(|_, e| !e.bucket.is_full(e.limit, now));
        let max = self.policy.max_buckets.max(1);
        if self.buckets.len() < max {
            return;
        }
        let mut ages: Vec<(f64, String)> = self
            .buckets
            .iter()
            .map(|(id, e)| (e.bucket.last_used(), id.clone()))
            .collect();
        ages.sort_by(|a, b| a.0.total_cmp(&b.0));
        let excess = self.buckets.len() + 1 - max;
        let drop = excess.max(max / 10).min(ages.len());
        for (_, id) in ages.into_iter().take(drop) {
            self.buckets.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn low(burst: u32, rate: f64) -> Policy {
        let mut p = Policy::default();
        p.set("ecs:cluster-read", Limit::new(burst, rate).unwrap())
            .unwrap();
        p
    }

    #[test]
    fn callers_and_classes_have_their_own_buckets() {
        let mut l = Limiter::new(low(2, 1.0));
        assert_eq!(
            l.check("A", "ecs", "DescribeClusters", 0.0),
            Decision::Admit
        );
        assert_eq!(l.check("A", "ecs", "ListClusters", 0.0), Decision::Admit);
        // DescribeClusters and ListClusters share ECS's "cluster read" bucket.
        assert!(matches!(
            l.check("A", "ecs", "DescribeClusters", 0.0),
            Decision::Throttle { .. }
        ));
        // Another key, another class: untouched.
        assert_eq!(
            l.check("B", "ecs", "DescribeClusters", 0.0),
            Decision::Admit
        );
        assert_eq!(
            l.check("A", "ecs", "DescribeServices", 0.0),
            Decision::Admit
        );
        assert_eq!(
            l.check("A", "ecs", "DescribeClusters", 1.0),
            Decision::Admit
        );
    }

    #[test]
    fn an_operation_can_have_a_bucket_of_its_own() {
        let mut p = low(1, 1.0);
        p.set("ecs:ListClusters", Limit::new(3, 1.0).unwrap())
            .unwrap();
        assert_eq!(p.bucket("ecs", "ListClusters").0, "ecs:ListClusters");
        assert_eq!(p.bucket("ecs", "DescribeClusters").0, "ecs:cluster-read");
        let mut l = Limiter::new(p);
        assert_eq!(
            l.check("A", "ecs", "DescribeClusters", 0.0),
            Decision::Admit
        );
        for _ in 0..3 {
            assert_eq!(l.check("A", "ecs", "ListClusters", 0.0), Decision::Admit);
        }
        assert!(matches!(
            l.check("A", "ecs", "ListClusters", 0.0),
            Decision::Throttle { .. }
        ));
    }

    #[test]
    fn settings_parse() {
        let (name, limit) = parse_setting("ecs:cluster-read=5/0.5").unwrap();
        assert_eq!(name, "ecs:cluster-read");
        assert_eq!(limit, Limit::new(5, 0.5).unwrap());
        for bad in [
            "ecs:cluster-read",
            "ecs:cluster-read=5",
            "ecs:cluster-read=x/1",
            "ecs:cluster-read=5/x",
            "ecs:cluster-read=0/1",
            "ecs:nope=5/1",
        ] {
            assert!(parse_setting(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idle_buckets_are_forgotten_first() {
        let mut p = low(2, 1.0);
        p.max_buckets = 3;
        let mut l = Limiter::new(p);
        l.check("A", "ecs", "DescribeClusters", 0.0);
        l.check("B", "ecs", "DescribeClusters", 0.0);
        l.check("C", "ecs", "DescribeClusters", 0.0);
        l.check("C", "ecs", "DescribeClusters", 0.0);
        assert_eq!(l.len(), 3);
        // At 1 s, A and B are full again and C is not: A and B go, C stays empty.
        l.check("D", "ecs", "DescribeClusters", 1.0);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.check("C", "ecs", "DescribeClusters", 1.0),
            Decision::Admit
        );
        assert!(matches!(
            l.check("C", "ecs", "DescribeClusters", 1.0),
            Decision::Throttle { .. }
        ));
    }

    #[test]
    fn the_map_never_passes_its_bound() {
        let mut p = low(5, 0.001);
        p.max_buckets = 50;
        let mut l = Limiter::new(p);
        for i in 0..1000 {
            l.check(
                &format!("K{i}"),
                "ecs",
                "DescribeClusters",
                i as f64 * 0.001,
            );
            assert!(l.len() <= 50);
        }
    }

    proptest! {
        /// Whatever key A does, key B's requests within its own burst and rate are admitted;
        /// and no key ever gets more than burst + rate * elapsed.
        #[test]
        fn keys_are_independent_and_bounded(
            requests in proptest::collection::vec((0usize..3, 0.0..0.2f64), 1..300),
        ) {
            let (burst, rate) = (4u32, 2.0);
            let mut l = Limiter::new(low(burst, rate));
            let mut t = 0.0;
            let mut admitted: [Vec<f64>; 3] = Default::default();
            for (who, gap) in requests {
                t += gap;
                let key = ["A", "B", "C"][who];
                if l.check(key, "ecs", "DescribeClusters", t) == Decision::Admit {
                    admitted[who].push(t);
                }
            }
            for times in &admitted {
                for i in 0..times.len() {
                    for j in i..times.len() {
                        let bound = f64::from(burst) + rate * (times[j] - times[i]);
                        prop_assert!((j - i + 1) as f64 <= bound + 1e-6);
                    }
                }
            }
        }

        /// A key whose traffic keeps within its limit is never throttled, however hard
        /// another key hammers the same class.
        #[test]
        fn a_quiet_key_is_never_throttled(hammer in 1usize..50, rounds in 1usize..40) {
            let (burst, rate) = (3u32, 1.0);
            let mut l = Limiter::new(low(burst, rate));
            for r in 0..rounds {
                let t = r as f64 * 1.0;
                for _ in 0..hammer {
                    l.check("A", "ecs", "DescribeClusters", t);
                }
                prop_assert_eq!(l.check("B", "ecs", "DescribeClusters", t), Decision::Admit);
            }
        }
    }
}
