//! Capacity provider strategies: which capacity provider each new task of a
//! RunTask call or a service goes to, and which provider a service scaling in
//! gives a task back from, computed as ECS documents
//! `CapacityProviderStrategyItem`.
//!
//! This module is **only** the arithmetic of `base` and `weight`. It does not
//! know whether a provider exists, is associated with the cluster or is
//! `ACTIVE` (the API checks that), it does not place tasks on instances (see
//! [`crate::place`]), and it treats an empty strategy as an error: a caller
//! that reads an empty or absent `capacityProviderStrategy` as "use the
//! cluster's default strategy" must do so before calling in here.
//!
//! ## The rules
//!
//! - A strategy has 1 to [`MAX_ITEMS`] items with distinct provider names;
//!   `base` is 0..=[`MAX_BASE`], `weight` 0..=[`MAX_WEIGHT`]; only one item
//!   may have `base > 0`; at least one must have `weight > 0`
//!   ([`validate`]).
//! - [`assign`] gives `n` new tasks providers one task at a time: first the
//!   base provider is filled up to its `base`, counting the tasks it already
//!   runs (`existing`); then each task goes to the provider with `weight > 0`
//!   whose `(tasks beyond its base + 1) / weight` is smallest, ties to the
//!   provider listed first. A provider with weight 0 gets nothing beyond its
//!   base.
//! - That rule alone (D'Hondt's) can, with many providers, give a provider
//!   more than one task over its exact share. So a provider that already
//!   holds at least its exact share of the next task count is skipped (the
//!   Balinski–Young quota method): starting from no tasks, every provider's
//!   tasks beyond the base stay within one task of `beyond_total × weight /
//!   Σweight`. On the two-provider strategies ECS users write this changes
//!   nothing.
//! - Because each task is chosen from the counts so far, assigning `n` tasks
//!   at once equals assigning them one at a time, and a service that scales
//!   up in steps or replaces a stopped task (pass the tasks still running as
//!   `existing`) keeps its split.
//!
//! For `FARGATE` (base 1, weight 1) and `FARGATE_SPOT` (weight 3), 8 tasks
//! come out as `FARGATE` 3, `FARGATE_SPOT` 5: the base task, then 7 split
//! 1:3 with ties to the provider listed first (SPOT, SPOT, FARGATE, SPOT,
//! SPOT, SPOT, FARGATE).
//!
//! ```
//! use flotilla_scheduler::capacity::{assign_counts, StrategyItem};
//! let strategy = [StrategyItem::new("FARGATE", 1, 1), StrategyItem::new("FARGATE_SPOT", 0, 3)];
//! assert_eq!(assign_counts(&strategy, &[0, 0], 8).unwrap(), vec![3, 5]);
//! ```
//!
//! [`scale_in`] is the reverse: which provider to stop a task on when a
//! service has too many, the one most over its share, never taking the base
//! provider below its base while other providers still have tasks.

use std::collections::HashSet;

/// The most items a capacity provider strategy may hold ("A capacity provider
/// strategy can contain a maximum of 20 capacity providers.", model docs; the
/// list shape itself declares no maximum).
pub const MAX_ITEMS: usize = 20;
/// The largest `base` (`CapacityProviderStrategyItemBase`, max 100000).
pub const MAX_BASE: u32 = 100_000;
/// The largest `weight` (`CapacityProviderStrategyItemWeight`, max 1000).
pub const MAX_WEIGHT: u32 = 1000;

/// One `CapacityProviderStrategyItem`: a provider's short name, its `base`
/// and its `weight` (both default to 0 on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StrategyItem {
    /// The capacity provider's short name (`FARGATE`, `FARGATE_SPOT`, ...).
    pub capacity_provider: String,
    /// The minimum number of tasks to run on this provider.
    pub base: u32,
    /// This provider's relative share of the tasks beyond the base.
    pub weight: u32,
}

impl StrategyItem {
    /// An item.
    pub fn new(capacity_provider: impl Into<String>, base: u32, weight: u32) -> Self {
        StrategyItem {
            capacity_provider: capacity_provider.into(),
            base,
            weight,
        }
    }
}

/// Why a capacity provider strategy is not valid. The messages follow ECS's
/// `InvalidParameterException` messages; the API answers with that code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    /// The strategy has no items.
    #[error("The capacity provider strategy must contain at least one capacity provider.")]
    Empty,
    /// More than [`MAX_ITEMS`] items.
    #[error("The capacity provider strategy can contain a maximum of {MAX_ITEMS} capacity providers; {count} were specified.")]
    TooMany {
        /// How many items there were.
        count: usize,
    },
    /// An item without a provider name.
    #[error("The capacity provider name in a capacity provider strategy can not be empty.")]
    EmptyName,
    /// The same provider listed twice.
    #[error("The capacity provider strategy cannot contain duplicate capacity providers: '{provider}' is specified more than once.")]
    Duplicate {
        /// The provider listed twice.
        provider: String,
    },
    /// A `base` above [`MAX_BASE`].
    #[error("The base value {base} for capacity provider '{provider}' is not valid. The valid range is 0 to {MAX_BASE}.")]
    BaseOutOfRange {
        /// The provider.
        provider: String,
        /// Its base.
        base: u32,
    },
    /// A `weight` above [`MAX_WEIGHT`].
    #[error("The weight value {weight} for capacity provider '{provider}' is not valid. The valid range is 0 to {MAX_WEIGHT}.")]
    WeightOutOfRange {
        /// The provider.
        provider: String,
        /// Its weight.
        weight: u32,
    },
    /// More than one item with `base > 0`.
    #[error(
        "Only one capacity provider in a capacity provider strategy can have a base specified."
    )]
    MultipleBases,
    /// Every weight is 0.
    #[error("At least one capacity provider in a capacity provider strategy must have a weight greater than zero.")]
    NoWeight,
}

/// Checks a strategy as ECS does for RunTask, CreateService, UpdateService,
/// CreateTaskSet and PutClusterCapacityProviders. Checks run in this order:
/// empty, too many, names (empty, duplicate), ranges, bases, weights.
pub fn validate(strategy: &[StrategyItem]) -> Result<(), StrategyError> {
    if strategy.is_empty() {
        return Err(StrategyError::Empty);
    }
    if strategy.len() > MAX_ITEMS {
        return Err(StrategyError::TooMany {
            count: strategy.len(),
        });
    }
    let mut seen = HashSet::new();
    for item in strategy {
        if item.capacity_provider.is_empty() {
            return Err(StrategyError::EmptyName);
        }
        if !seen.insert(item.capacity_provider.as_str()) {
            return Err(StrategyError::Duplicate {
                provider: item.capacity_provider.clone(),
            });
        }
    }
    for item in strategy {
        if item.base > MAX_BASE {
            return Err(StrategyError::BaseOutOfRange {
                provider: item.capacity_provider.clone(),
                base: item.base,
            });
        }
        if item.weight > MAX_WEIGHT {
            return Err(StrategyError::WeightOutOfRange {
                provider: item.capacity_provider.clone(),
                weight: item.weight,
            });
        }
    }
    if strategy.iter().filter(|i| i.base > 0).count() > 1 {
        return Err(StrategyError::MultipleBases);
    }
    if strategy.iter().all(|i| i.weight == 0) {
        return Err(StrategyError::NoWeight);
    }
    Ok(())
}

/// The counts the arithmetic works on: per provider, its tasks, base and weight.
struct Split<'a> {
    strategy: &'a [StrategyItem],
    counts: Vec<u64>,
}

impl<'a> Split<'a> {
    fn new(strategy: &'a [StrategyItem], existing: &[u32]) -> Self {
        let counts = (0..strategy.len())
            .map(|i| u64::from(existing.get(i).copied().unwrap_or(0)))
            .collect();
        Split { strategy, counts }
    }

    /// Tasks of provider `i` beyond its base.
    fn beyond(&self, i: usize) -> u64 {
        self.counts[i].saturating_sub(u64::from(self.strategy[i].base))
    }

    /// The base provider, if it is still short of its base.
    fn short_base(&self) -> Option<usize> {
        (0..self.strategy.len()).find(|&i| {
            self.strategy[i].base > 0 && self.counts[i] < u64::from(self.strategy[i].base)
        })
    }

    /// The provider the next task goes to (`None` only for a strategy without weights, which
    /// [`validate`] refuses).
    fn next_up(&self) -> Option<usize> {
        if let Some(i) = self.short_base() {
            return Some(i);
        }
        let weights: u64 = self.strategy.iter().map(|s| u64::from(s.weight)).sum();
        let weighted = || (0..self.strategy.len()).filter(|&i| self.strategy[i].weight > 0);
        // The task count beyond the bases once this task is added.
        let total: u64 = weighted().map(|i| self.beyond(i)).sum::<u64>() + 1;
        // Quota guard: a provider already at or over its exact share of `total` is skipped.
        // Some provider is always under it: Σ beyond = total - 1 < total = Σ total·w/W.
        let eligible =
            |i: &usize| self.beyond(*i) * weights < total * u64::from(self.strategy[*i].weight);
        let mut best: Option<usize> = None;
        for i in weighted().filter(eligible) {
            best = match best {
                // (b_i + 1) / w_i < (b_j + 1) / w_j, strictly: ties stay with the first listed.
                Some(j)
                    if (self.beyond(i) + 1) * u64::from(self.strategy[j].weight)
                        >= (self.beyond(j) + 1) * u64::from(self.strategy[i].weight) =>
                {
                    Some(j)
                }
                _ => Some(i),
            };
        }
        best
    }

    /// The provider the next task is taken from, if any has tasks.
    fn next_down(&self) -> Option<usize> {
        let n = self.strategy.len();
        // Beyond-base tasks on weight-0 providers are over any share: most first, then last listed.
        let zero = (0..n)
            .filter(|&i| self.strategy[i].weight == 0 && self.beyond(i) > 0)
            .max_by_key(|&i| (self.beyond(i), i));
        if zero.is_some() {
            return zero;
        }
        // Then the provider with the largest beyond / weight; ties to the last listed, the
        // reverse of `next_up`'s ties to the first.
        let mut best: Option<usize> = None;
        for i in (0..n).filter(|&i| self.strategy[i].weight > 0 && self.beyond(i) > 0) {
            best = match best {
                Some(j)
                    if self.beyond(i) * u64::from(self.strategy[j].weight)
                        < self.beyond(j) * u64::from(self.strategy[i].weight) =>
                {
                    Some(j)
                }
                _ => Some(i),
            };
        }
        if best.is_some() {
            return best;
        }
        // Only base tasks are left.
        (0..n).rev().find(|&i| self.counts[i] > 0)
    }
}

/// The providers (indexes into `strategy`) of `n` new tasks, in order.
///
/// `existing[i]` is how many tasks of this service or group already run on
/// `strategy[i]` (entries past the end count as 0, extra entries are
/// ignored). Fails only if the strategy does not [`validate`].
pub fn assign(
    strategy: &[StrategyItem],
    existing: &[u32],
    n: u32,
) -> Result<Vec<usize>, StrategyError> {
    walk(strategy, existing, n, |split| {
        let i = split.next_up()?;
        split.counts[i] += 1;
        Some(i)
    })
}

/// [`assign`] as a count of new tasks per provider, in strategy order.
pub fn assign_counts(
    strategy: &[StrategyItem],
    existing: &[u32],
    n: u32,
) -> Result<Vec<u32>, StrategyError> {
    let mut counts = vec![0u32; strategy.len()];
    for i in assign(strategy, existing, n)? {
        counts[i] += 1;
    }
    Ok(counts)
}

/// The providers (indexes into `strategy`) to stop `n` tasks on when scaling
/// in, in order: each time the provider most over its share (largest
/// `beyond base / weight`; tasks beyond the base on a weight-0 provider
/// first; ties to the provider listed last, the reverse of [`assign`]). The
/// base provider goes below its base only once no other provider has tasks.
/// Returns fewer than `n` entries if fewer tasks exist. Tasks on providers
/// that are not in the strategy are the caller's to stop first.
pub fn scale_in(
    strategy: &[StrategyItem],
    existing: &[u32],
    n: u32,
) -> Result<Vec<usize>, StrategyError> {
    walk(strategy, existing, n, |split| {
        let i = split.next_down()?;
        split.counts[i] -= 1;
        Some(i)
    })
}

/// Takes up to `n` steps over a validated strategy's split, collecting the provider each step
/// picks; stops early when `step` picks none.
fn walk(
    strategy: &[StrategyItem],
    existing: &[u32],
    n: u32,
    mut step: impl FnMut(&mut Split) -> Option<usize>,
) -> Result<Vec<usize>, StrategyError> {
    validate(strategy)?;
    let mut split = Split::new(strategy, existing);
    Ok((0..n).map_while(|_| step(&mut split)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(name: &str, base: u32, weight: u32) -> StrategyItem {
        StrategyItem::new(name, base, weight)
    }

    fn fargate_spot() -> Vec<StrategyItem> {
        vec![item("FARGATE", 1, 1), item("FARGATE_SPOT", 0, 3)]
    }

    #[test]
    fn the_documented_fargate_spot_example() {
        let s = fargate_spot();
        assert_eq!(assign_counts(&s, &[0, 0], 8).unwrap(), vec![3, 5]);
        assert_eq!(
            assign(&s, &[0, 0], 8).unwrap(),
            vec![0, 1, 1, 0, 1, 1, 1, 0]
        );
    }

    #[test]
    fn equal_weights_split_evenly_ties_to_the_first_listed() {
        let s = vec![item("a", 0, 1), item("b", 0, 1)];
        assert_eq!(assign(&s, &[], 5).unwrap(), vec![0, 1, 0, 1, 0]);
        assert_eq!(assign_counts(&s, &[], 10).unwrap(), vec![5, 5]);
    }

    #[test]
    fn one_to_four() {
        let s = vec![item("a", 0, 1), item("b", 0, 4)];
        assert_eq!(assign_counts(&s, &[], 10).unwrap(), vec![2, 8]);
        assert_eq!(assign_counts(&s, &[], 5).unwrap(), vec![1, 4]);
    }

    #[test]
    fn a_base_larger_than_n_takes_everything() {
        let s = vec![item("a", 0, 1), item("b", 10, 1)];
        assert_eq!(assign(&s, &[], 4).unwrap(), vec![1, 1, 1, 1]);
        // ... and counts the tasks already running towards the base.
        assert_eq!(assign_counts(&s, &[0, 8], 4).unwrap(), vec![1, 3]);
    }

    #[test]
    fn weight_zero_providers_get_only_their_base() {
        let s = vec![item("ondemand", 2, 0), item("spot", 0, 1)];
        assert_eq!(assign_counts(&s, &[], 6).unwrap(), vec![2, 4]);
        let s = vec![item("x", 0, 0), item("y", 0, 5)];
        assert_eq!(assign_counts(&s, &[], 6).unwrap(), vec![0, 6]);
    }

    #[test]
    fn existing_tasks_keep_the_split_when_a_task_is_replaced() {
        let s = fargate_spot();
        // 8 tasks run as 3 / 5; a spot task stops and is replaced on spot.
        assert_eq!(assign(&s, &[3, 4], 1).unwrap(), vec![1]);
        // The base task stops: it is replaced on the base provider.
        assert_eq!(assign(&s, &[2, 5], 1).unwrap(), vec![0]);
    }

    #[test]
    fn scale_in_takes_from_the_provider_most_over_its_share() {
        let s = fargate_spot();
        assert_eq!(scale_in(&s, &[3, 5], 1).unwrap(), vec![0]);
        // Down to the base task only, which goes last.
        assert_eq!(
            scale_in(&s, &[3, 5], 10).unwrap(),
            vec![0, 1, 1, 1, 0, 1, 1, 0]
        );
        let s = vec![item("a", 0, 1), item("b", 0, 1)];
        assert_eq!(scale_in(&s, &[2, 2], 1).unwrap(), vec![1]);
        // Tasks beyond the base on a weight-0 provider go first.
        let s = vec![item("a", 0, 0), item("b", 0, 1)];
        assert_eq!(scale_in(&s, &[2, 5], 3).unwrap(), vec![0, 0, 1]);
    }

    #[test]
    fn validation_messages() {
        let msg = |s: &[StrategyItem]| validate(s).unwrap_err().to_string();
        assert_eq!(
            msg(&[item("a", 1, 1), item("b", 2, 1)]),
            "Only one capacity provider in a capacity provider strategy can have a base specified."
        );
        assert_eq!(
            msg(&[item("a", 1, 0), item("b", 0, 0)]),
            "At least one capacity provider in a capacity provider strategy must have a weight greater than zero."
        );
        assert_eq!(
            msg(&[item("a", 0, 1), item("a", 0, 1)]),
            "The capacity provider strategy cannot contain duplicate capacity providers: 'a' is specified more than once."
        );
        assert!(msg(&[]).contains("at least one"));
        assert!(msg(&[item("", 0, 1)]).contains("can not be empty"));
        assert!(msg(&[item("a", 100_001, 1)]).contains("0 to 100000"));
        assert!(msg(&[item("a", 0, 1001)]).contains("0 to 1000"));
        let many: Vec<_> = (0..21).map(|i| item(&format!("p{i}"), 0, 1)).collect();
        assert!(msg(&many).contains("maximum of 20"));
        assert!(validate(&many[..20]).is_ok());
        assert_eq!(
            assign(&[item("a", 0, 0)], &[], 1),
            Err(StrategyError::NoWeight)
        );
    }

    fn strategy() -> impl Strategy<Value = (Vec<StrategyItem>, Vec<u32>)> {
        (1usize..=MAX_ITEMS)
            .prop_flat_map(|k| {
                (
                    proptest::collection::vec(
                        prop_oneof![Just(0u32), 1u32..=4, 0u32..=MAX_WEIGHT],
                        k,
                    ),
                    proptest::option::of((0..k, 1u32..=30)),
                    proptest::collection::vec(0u32..=20, k),
                )
            })
            .prop_filter("some weight", |(w, _, _)| w.iter().any(|&w| w > 0))
            .prop_map(|(weights, base, existing)| {
                let s = weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| {
                        let b = match base {
                            Some((j, b)) if j == i => b,
                            _ => 0,
                        };
                        item(&format!("p{i}"), b, w)
                    })
                    .collect();
                (s, existing)
            })
    }

    proptest! {
        #[test]
        fn base_first_weight_zero_nothing_and_deterministic(
            (s, existing) in strategy(), n in 0u32..200,
        ) {
            let out = assign(&s, &existing, n).unwrap();
            prop_assert_eq!(out.len(), n as usize);
            prop_assert_eq!(&out, &assign(&s, &existing, n).unwrap());
            let counts = assign_counts(&s, &existing, n).unwrap();
            for (i, it) in s.iter().enumerate() {
                let short = it.base.saturating_sub(existing[i]);
                if it.base > 0 {
                    // The base is filled first.
                    let first = short.min(n) as usize;
                    prop_assert!(out[..first].iter().all(|&p| p == i));
                    if it.weight == 0 {
                        prop_assert_eq!(counts[i], short.min(n));
                    }
                } else if it.weight == 0 {
                    prop_assert_eq!(counts[i], 0);
                }
            }
        }

        #[test]
        fn the_split_beyond_the_base_is_within_one_of_the_exact_share(
            (s, _) in strategy(), n in 0u32..300,
        ) {
            let counts = assign_counts(&s, &[], n).unwrap();
            let beyond: Vec<u64> = s.iter().zip(&counts)
                .map(|(it, &c)| u64::from(c.saturating_sub(it.base))).collect();
            let total: u64 = s.iter().zip(&beyond).filter(|(it, _)| it.weight > 0).map(|(_, b)| b).sum();
            let weights: u64 = s.iter().map(|it| u64::from(it.weight)).sum();
            for (it, &b) in s.iter().zip(&beyond) {
                if it.weight == 0 { continue; }
                // |b - total·w/W| < 1, in integers.
                let exact = total * u64::from(it.weight);
                prop_assert!(b * weights < exact + weights && exact < (b + 1) * weights,
                    "{} got {} of {} (weight {} of {})", it.capacity_provider, b, total, it.weight, weights);
            }
        }

        #[test]
        fn assigning_at_once_equals_one_at_a_time(
            (s, existing) in strategy(), n in 0u32..100, cut in 0u32..100,
        ) {
            let all = assign(&s, &existing, n).unwrap();
            let mut counts = existing.clone();
            let mut one_by_one = Vec::new();
            for _ in 0..n {
                let next = assign(&s, &counts, 1).unwrap()[0];
                counts[next] += 1;
                one_by_one.push(next);
            }
            prop_assert_eq!(&all, &one_by_one);
            // Two batches equal one.
            let cut = cut.min(n);
            let mut first = assign(&s, &existing, cut).unwrap();
            let mut counts = existing.clone();
            for &p in &first { counts[p] += 1; }
            first.extend(assign(&s, &counts, n - cut).unwrap());
            prop_assert_eq!(all, first);
        }

        #[test]
        fn scale_in_keeps_the_base_and_removes_existing_tasks(
            (s, existing) in strategy(), n in 0u32..100,
        ) {
            let out = scale_in(&s, &existing, n).unwrap();
            let total: u32 = existing.iter().sum();
            prop_assert_eq!(out.len() as u32, n.min(total));
            let mut counts = existing.clone();
            for &p in &out {
                prop_assert!(counts[p] > 0);
                let others: u32 = counts.iter().enumerate().filter(|(j, _)| *j != p).map(|(_, c)| c).sum();
                if counts[p] <= s[p].base {
                    prop_assert_eq!(others, 0, "took {} below its base while others ran tasks", p);
                }
                counts[p] -= 1;
            }
        }
    }
}
