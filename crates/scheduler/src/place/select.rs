//! Choosing the best candidate under a strategy chain, two ways that agree.
//!
//! What it is: [`Scan`], which looks at every candidate for every task (cheap
//! to set up, used for small requests and as the reference in tests), and
//! [`Index`], a tree with one level per strategy that is updated
//! incrementally as tasks are placed (set up in O(n log n), then O(log n)
//! per task for the usual chains). What it is not: feasibility — both hold
//! only candidates the caller has found feasible, and are told when one
//! changes.
//!
//! The order both use, so they give the same answer for the same seed:
//! 1. keys, level by level, smaller first — binpack: remaining CPU/memory;
//!    spread(instanceId): the group's tasks on the instance;
//!    spread(attribute): the group's tasks over the instance's value;
//! 2. the remaining ties are listed by (the instance's value id at each
//!    attribute-spread level, in level order; then instance index), and one
//!    is taken with `rng.gen_range(0..ties)` — exactly one draw per task.
//!
//! Invariants: [`Index`] never keeps an empty node; an instance is in it at
//! most once, under the keys it had when inserted, and must be removed before
//! any of its keys change.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Ctx;
use crate::snapshot::ContainerInstance;

/// One level of the strategy chain, as the selectors see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// binpack(cpu)
    Cpu,
    /// binpack(memory)
    Memory,
    /// spread(instanceId)
    Instance,
    /// spread(attribute:…), index into `Ctx::shared`.
    Shared(usize),
}

/// The key of instance `i` at level `level`.
pub(crate) fn key(ctx: &Ctx<'_>, inst: &[ContainerInstance], i: usize, level: Level) -> u64 {
    match level {
        Level::Cpu => inst.get(i).map_or(0, |x| u64::from(x.remaining.cpu)),
        Level::Memory => inst.get(i).map_or(0, |x| u64::from(x.remaining.memory)),
        Level::Instance => u64::from(ctx.gcount.get(i).copied().unwrap_or(0)),
        Level::Shared(s) => ctx.shared.get(s).map_or(0, |sh| sh.count_of(i)),
    }
}

const L: usize = crate::strategy::MAX_STRATEGIES;

/// A candidate as the scan keeps it: per level its own key (binpack,
/// spread(instanceId)) or its value id (spread(attribute)).
struct Cand {
    idx: u32,
    own: [u64; L],
    vids: [u32; L],
}

/// The reference selector: the candidates, scanned once per task.
pub(crate) struct Scan {
    cands: Vec<Cand>,
}

impl Scan {
    /// Over `candidates` (ascending instance indices).
    pub(crate) fn new(ctx: &Ctx<'_>, inst: &[ContainerInstance], candidates: &[u32]) -> Self {
        let cands = candidates
            .iter()
            .map(|&idx| {
                let mut c = Cand {
                    idx,
                    own: [0; L],
                    vids: [0; L],
                };
                Self::fill(ctx, inst, &mut c);
                c
            })
            .collect();
        Self { cands }
    }

    fn fill(ctx: &Ctx<'_>, inst: &[ContainerInstance], c: &mut Cand) {
        let i = c.idx as usize;
        for (n, &l) in ctx.levels.iter().enumerate().take(L) {
            match l {
                Level::Shared(s) => c.vids[n] = ctx.shared.get(s).map_or(0, |sh| sh.vid(i)),
                other => c.own[n] = key(ctx, inst, i, other),
            }
        }
    }

    /// The chosen candidate, or `None` if there is none.
    pub(crate) fn pick(&self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        let nl = ctx.levels.len().min(L);
        let empty: &[u64] = &[];
        let mut counts: [&[u64]; L] = [empty; L];
        for (n, &l) in ctx.levels.iter().enumerate().take(L) {
            if let Level::Shared(s) = l {
                counts[n] = ctx.shared.get(s).map_or(empty, |sh| &sh.counts[..]);
            }
        }
        let shared: [bool; L] =
            std::array::from_fn(|n| matches!(ctx.levels.get(n), Some(Level::Shared(_))));
        let key_at = |c: &Cand, n: usize| -> u64 {
            if shared[n] {
                counts[n].get(c.vids[n] as usize).copied().unwrap_or(0)
            } else {
                c.own[n]
            }
        };
        let mut best = [0u64; L];
        let mut ties: Vec<&Cand> = Vec::new();
        for c in &self.cands {
            if ties.is_empty() {
                for (n, b) in best.iter_mut().enumerate().take(nl) {
                    *b = key_at(c, n);
                }
                ties.push(c);
                continue;
            }
            let mut ord = std::cmp::Ordering::Equal;
            let mut n = 0;
            while n < nl {
                ord = key_at(c, n).cmp(&best[n]);
                if ord != std::cmp::Ordering::Equal {
                    break;
                }
                n += 1;
            }
            match ord {
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Equal => ties.push(c),
                std::cmp::Ordering::Less => {
                    for (m, b) in best.iter_mut().enumerate().take(nl).skip(n) {
                        *b = key_at(c, m);
                    }
                    ties.clear();
                    ties.push(c);
                }
            }
        }
        if ties.is_empty() {
            return None;
        }
        if shared.iter().any(|&b| b) {
            ties.sort_by_key(|c| {
                let mut v = [0u32; L];
                let vids = shared.iter().zip(c.vids).take(nl).filter(|(s, _)| **s);
                for (slot, (_, vid)) in v.iter_mut().zip(vids) {
                    *slot = vid;
                }
                (v, c.idx)
            });
        }
        let k = rng.gen_range(0..ties.len());
        ties.get(k).map(|c| c.idx as usize)
    }

    /// Refreshes candidate `i`'s own keys after a task was placed on it.
    pub(crate) fn update(&mut self, ctx: &Ctx<'_>, inst: &[ContainerInstance], i: usize) {
        if let Ok(at) = self.cands.binary_search_by_key(&(i as u32), |c| c.idx) {
            if let Some(c) = self.cands.get_mut(at) {
                Self::fill(ctx, inst, c);
            }
        }
    }

    /// Drops candidate `i` (it no longer fits).
    pub(crate) fn remove(&mut self, i: usize) {
        if let Ok(at) = self.cands.binary_search_by_key(&(i as u32), |c| c.idx) {
            self.cands.remove(at);
        }
    }
}

enum Node {
    Leaf(Vec<u32>),
    Own(BTreeMap<u64, Node>),
    Shared(BTreeMap<u32, Node>),
}

impl Node {
    fn empty(levels: &[Level], at: usize) -> Self {
        match levels.get(at) {
            None => Self::Leaf(Vec::new()),
            Some(Level::Shared(_)) => Self::Shared(BTreeMap::new()),
            Some(_) => Self::Own(BTreeMap::new()),
        }
    }

    fn insert(&mut self, levels: &[Level], at: usize, path: &[u64], i: u32) {
        match self {
            Self::Leaf(v) => {
                if let Err(p) = v.binary_search(&i) {
                    v.insert(p, i);
                }
            }
            Self::Own(m) => {
                let k = path.get(at).copied().unwrap_or(0);
                m.entry(k)
                    .or_insert_with(|| Self::empty(levels, at + 1))
                    .insert(levels, at + 1, path, i);
            }
            Self::Shared(m) => {
                let k = path.get(at).copied().unwrap_or(0) as u32;
                m.entry(k)
                    .or_insert_with(|| Self::empty(levels, at + 1))
                    .insert(levels, at + 1, path, i);
            }
        }
    }

    /// Removes `i`; returns whether the node is now empty.
    fn remove(&mut self, at: usize, path: &[u64], i: u32) -> bool {
        match self {
            Self::Leaf(v) => {
                if let Ok(p) = v.binary_search(&i) {
                    v.remove(p);
                }
                v.is_empty()
            }
            Self::Own(m) => {
                let k = path.get(at).copied().unwrap_or(0);
                if let Some(child) = m.get_mut(&k) {
                    if child.remove(at + 1, path, i) {
                        m.remove(&k);
                    }
                }
                m.is_empty()
            }
            Self::Shared(m) => {
                let k = path.get(at).copied().unwrap_or(0) as u32;
                if let Some(child) = m.get_mut(&k) {
                    if child.remove(at + 1, path, i) {
                        m.remove(&k);
                    }
                }
                m.is_empty()
            }
        }
    }

    /// Appends the best keys from this level down to `keys`, the tied
    /// leaves (in tie order) to `leaves`.
    fn best<'n>(
        &'n self,
        ctx: &Ctx<'_>,
        at: usize,
        keys: &mut Vec<u64>,
        leaves: &mut Vec<&'n [u32]>,
    ) {
        match self {
            Self::Leaf(v) => {
                if !v.is_empty() {
                    leaves.push(v);
                }
            }
            Self::Own(m) => {
                if let Some((k, child)) = m.iter().next() {
                    keys.push(*k);
                    child.best(ctx, at + 1, keys, leaves);
                }
            }
            Self::Shared(m) => {
                let Some(Level::Shared(s)) = ctx.levels.get(at).copied() else {
                    return;
                };
                let Some(sh) = ctx.shared.get(s) else { return };
                let Some(min) = m.keys().map(|&v| sh.count_of_vid(v)).min() else {
                    return;
                };
                keys.push(min);
                let mut best_sub: Option<Vec<u64>> = None;
                let mut best_leaves: Vec<&'n [u32]> = Vec::new();
                for (&v, child) in m {
                    if sh.count_of_vid(v) != min {
                        continue;
                    }
                    let mut sub = Vec::new();
                    let mut sub_leaves = Vec::new();
                    child.best(ctx, at + 1, &mut sub, &mut sub_leaves);
                    match &best_sub {
                        Some(b) if sub > *b => {}
                        Some(b) if sub == *b => best_leaves.extend(sub_leaves),
                        _ => {
                            best_sub = Some(sub);
                            best_leaves = sub_leaves;
                        }
                    }
                }
                keys.extend(best_sub.unwrap_or_default());
                leaves.extend(best_leaves);
            }
        }
    }
}

/// The incremental selector.
pub(crate) struct Index {
    root: Node,
    /// Per instance: the path keys it was inserted under, if it is in.
    paths: Vec<Option<[u64; L]>>,
}

impl Index {
    /// An index over `candidates` for `ctx`'s chain.
    pub(crate) fn new(ctx: &Ctx<'_>, inst: &[ContainerInstance], candidates: &[u32]) -> Self {
        let mut me = Self {
            root: Node::empty(&ctx.levels, 0),
            paths: vec![None; inst.len()],
        };
        for &c in candidates {
            me.insert(ctx, inst, c as usize);
        }
        me
    }

    fn path(ctx: &Ctx<'_>, inst: &[ContainerInstance], i: usize) -> [u64; L] {
        let mut p = [0u64; L];
        for (slot, &l) in p.iter_mut().zip(&ctx.levels) {
            *slot = match l {
                Level::Shared(s) => ctx.shared.get(s).map_or(0, |sh| u64::from(sh.vid(i))),
                other => key(ctx, inst, i, other),
            };
        }
        p
    }

    /// Adds candidate `i` under its current keys.
    pub(crate) fn insert(&mut self, ctx: &Ctx<'_>, inst: &[ContainerInstance], i: usize) {
        let path = Self::path(ctx, inst, i);
        self.root.insert(&ctx.levels, 0, &path, i as u32);
        if let Some(slot) = self.paths.get_mut(i) {
            *slot = Some(path);
        }
    }

    /// Takes candidate `i` out (before its keys change).
    pub(crate) fn remove(&mut self, i: usize) {
        if let Some(path) = self.paths.get_mut(i).and_then(Option::take) {
            self.root.remove(0, &path[..], i as u32);
        }
    }

    /// The chosen candidate, or `None` if there is none.
    pub(crate) fn pick(&self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Option<usize> {
        let mut keys = Vec::new();
        let mut leaves = Vec::new();
        self.root.best(ctx, 0, &mut keys, &mut leaves);
        let total: usize = leaves.iter().map(|l| l.len()).sum();
        if total == 0 {
            return None;
        }
        let mut k = rng.gen_range(0..total);
        for l in leaves {
            if let Some(&i) = l.get(k) {
                return Some(i as usize);
            }
            k -= l.len();
        }
        None
    }
}
