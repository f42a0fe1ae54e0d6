//! The placement engine: a cluster that takes requests and reserves as it
//! places.
//!
//! What it is: [`Cluster`], built from a [`Snapshot`], which places
//! [`PlacementRequest`]s one after another ([`Cluster::place`]), each task
//! reserving its CPU, memory and static ports and joining its instance's task
//! list, so the next task — of the same request or a later one — sees it; and
//! [`Cluster::start_on`] for StartTask's named instances. The updated snapshot
//! comes back with [`Cluster::snapshot`] / [`Cluster::into_snapshot`]. What it
//! is not: a store or a clock; nothing is persisted and the only randomness
//! is a ChaCha8 generator seeded from the request.
//!
//! How a request is placed:
//! 1. validate (≤ 5 strategies, ≤ 10 constraints, a defined demand);
//! 2. one pass over the instances decides which are candidates: ACTIVE, agent
//!    connected, the demand fits, every constraint holds (memberOf results
//!    without `task:group`/`runningTasksCount` are cached per cluster);
//! 3. each task goes to the best candidate under the strategy chain (see
//!    `select.rs`), then only that instance is re-examined — its keys and
//!    whether it is still a candidate.
//! 4. when no candidate is left, the remaining tasks are not placed and every
//!    instance's reasons are reported.
//!
//! Invariants: an instance's remaining CPU and memory never go below zero and
//! a static port is never given twice (reservation refuses what does not
//! fit); per-group task counts and per-value spread counts always equal what
//! the instances' task lists say; an error leaves the cluster unchanged.

mod select;

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::constraint::{PlacementConstraint, MAX_CONSTRAINTS};
use crate::error::PlacementError;
use crate::query::Query;
use crate::reason::{ecs_failures, EcsFailure, InstanceRejection, Rejection};
use crate::resources::{Demand, TaskSpec};
use crate::snapshot::{ContainerInstance, InstanceStatus, Resources, RunningTask, Snapshot};
use crate::strategy::{
    default_strategy, BinpackField, PlacementKind, PlacementStrategy, SpreadField, MAX_STRATEGIES,
};
use select::{Index, Level, Scan};

/// A request to place `count` identical tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementRequest {
    /// What each task takes.
    pub task: TaskSpec,
    /// How many tasks.
    pub count: u32,
    /// The task group: `service:NAME` for a service, RunTask's `group` or by
    /// default `family:FAMILY`. Spread and distinctInstance count tasks of
    /// this group.
    pub group: String,
    /// Task definition family (recorded on placed tasks).
    pub family: String,
    /// Task definition revision (recorded on placed tasks).
    pub revision: u32,
    /// `startedBy` (recorded on placed tasks).
    pub started_by: Option<String>,
    /// Task or service: decides the default strategy.
    pub kind: PlacementKind,
    /// The strategy chain; empty means [`default_strategy`]`(kind)`.
    pub strategies: Vec<PlacementStrategy>,
    /// The task definition's constraints.
    pub task_definition_constraints: Vec<PlacementConstraint>,
    /// The request's constraints.
    pub constraints: Vec<PlacementConstraint>,
    /// Seed of the tie-breaking / random generator.
    pub seed: u64,
}

impl PlacementRequest {
    /// A RunTask-style request: group `family:FAMILY`, revision 1, no
    /// strategies or constraints, seed 0.
    pub fn new(family: impl Into<String>, task: TaskSpec, count: u32) -> Self {
        let family = family.into();
        Self {
            task,
            count,
            group: format!("family:{family}"),
            family,
            revision: 1,
            started_by: None,
            kind: PlacementKind::Task,
            strategies: Vec::new(),
            task_definition_constraints: Vec::new(),
            constraints: Vec::new(),
            seed: 0,
        }
    }

    /// Builder: a service's request (group `service:NAME`, kind Service).
    pub fn for_service(mut self, service: &str) -> Self {
        self.group = format!("service:{service}");
        self.kind = PlacementKind::Service;
        self
    }

    /// Builder: the strategy chain.
    pub fn with_strategies(mut self, s: Vec<PlacementStrategy>) -> Self {
        self.strategies = s;
        self
    }

    /// Builder: one more request constraint.
    pub fn with_constraint(mut self, c: PlacementConstraint) -> Self {
        self.constraints.push(c);
        self
    }

    /// Builder: the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Builder: the group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// The chain actually applied: the request's, or the default.
    pub fn effective_strategies(&self) -> Vec<PlacementStrategy> {
        if self.strategies.is_empty() {
            default_strategy(self.kind)
        } else {
            self.strategies.clone()
        }
    }

    fn all_constraints(&self) -> impl Iterator<Item = &PlacementConstraint> {
        self.task_definition_constraints
            .iter()
            .chain(self.constraints.iter())
    }
}

/// One placed task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Which task of the request (0-based).
    pub task_index: u32,
    /// Index of the instance in the snapshot.
    pub instance_index: usize,
    /// Container instance id.
    pub container_instance_id: String,
    /// Container instance ARN.
    pub container_instance_arn: String,
    /// Static TCP host ports reserved for the task.
    pub host_ports: Vec<u16>,
    /// Static UDP host ports reserved for the task.
    pub host_ports_udp: Vec<u16>,
}

/// What became of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementOutcome {
    /// The tasks placed, in order.
    pub placements: Vec<Placement>,
    /// How many tasks could not be placed.
    pub unplaced: u32,
    /// When some were not placed: every instance and why it could not take
    /// the next task. Empty when all were placed.
    pub rejections: Vec<InstanceRejection>,
}

impl PlacementOutcome {
    /// Whether every task was placed.
    pub fn is_complete(&self) -> bool {
        self.unplaced == 0
    }

    /// RunTask's `failures`: one entry per instance with its primary reason.
    pub fn ecs_failures(&self) -> Vec<EcsFailure> {
        ecs_failures(&self.rejections)
    }
}

/// Which selector to use. Both give identical placements for the same
/// input and seed (a property test checks it); this exists for tests and
/// benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectMode {
    /// Scan for small requests, the incremental index for larger ones.
    #[default]
    Auto,
    /// Rescan the candidates for every task.
    Scan,
    /// The incremental index.
    Index,
}

/// Requests of at most this many tasks are placed by scanning.
const SCAN_MAX_COUNT: u32 = 32;

/// How many instances one [`Cluster::start_on`] names at most (StartTask's limit).
pub const MAX_START_INSTANCES: usize = 10;

/// Per attribute: each instance's value, as an id ordered like the values
/// (no value first, then values ascending).
struct FieldIndex {
    vid: Vec<u32>,
    values: usize,
}

impl FieldIndex {
    fn build(instances: &[ContainerInstance], name: &str) -> Self {
        let mut vals: Vec<&str> = instances
            .iter()
            .filter_map(|i| i.attributes.get(name).and_then(|v| v.as_deref()))
            .collect();
        vals.sort_unstable();
        vals.dedup();
        let ids: HashMap<&str, u32> = vals
            .iter()
            .enumerate()
            .map(|(n, v)| (*v, n as u32 + 1))
            .collect();
        let vid = instances
            .iter()
            .map(|i| {
                i.attributes
                    .get(name)
                    .and_then(|v| v.as_deref())
                    .and_then(|v| ids.get(v).copied())
                    .unwrap_or(0)
            })
            .collect();
        Self {
            vid,
            values: vals.len() + 1,
        }
    }
}

/// Spread-over-attribute state of one request: value ids and the group's
/// task count per value.
pub(crate) struct SharedState {
    field: Arc<FieldIndex>,
    pub(crate) counts: Vec<u64>,
}

impl SharedState {
    pub(crate) fn vid(&self, i: usize) -> u32 {
        self.field.vid.get(i).copied().unwrap_or(0)
    }

    pub(crate) fn count_of_vid(&self, v: u32) -> u64 {
        self.counts.get(v as usize).copied().unwrap_or(0)
    }

    pub(crate) fn count_of(&self, i: usize) -> u64 {
        self.count_of_vid(self.vid(i))
    }
}

struct MemberOf<'r> {
    index: usize,
    query: &'r Query,
    cached: Option<Arc<Vec<bool>>>,
}

/// Everything one request's placement needs besides the instances.
pub(crate) struct Ctx<'r> {
    demand: Demand,
    member_of: Vec<MemberOf<'r>>,
    distinct: bool,
    pub(crate) levels: Vec<Level>,
    /// Tasks of the request's group per instance.
    pub(crate) gcount: Vec<u32>,
    pub(crate) shared: Vec<SharedState>,
}

impl Ctx<'_> {
    fn feasible(&self, inst: &[ContainerInstance], i: usize) -> bool {
        let Some(x) = inst.get(i) else { return false };
        x.is_schedulable()
            && self.demand.fits(&x.remaining)
            && !(self.distinct && self.gcount.get(i).copied().unwrap_or(0) > 0)
            && self.member_of.iter().all(|m| match &m.cached {
                Some(c) => c.get(i).copied().unwrap_or(false),
                None => m.query.matches(x),
            })
    }

    fn reasons(&self, inst: &[ContainerInstance], i: usize) -> Vec<Rejection> {
        let Some(x) = inst.get(i) else {
            return vec![Rejection::Missing];
        };
        let mut r = Vec::new();
        if x.status != InstanceStatus::Active {
            r.push(Rejection::NotActive(x.status));
        }
        if !x.agent_connected {
            r.push(Rejection::Agent);
        }
        r.extend(self.demand.misfits(&x.remaining));
        for m in &self.member_of {
            if !m.query.matches(x) {
                r.push(Rejection::MemberOf(m.index));
            }
        }
        if self.distinct && self.gcount.get(i).copied().unwrap_or(0) > 0 {
            r.push(Rejection::DistinctInstance);
        }
        r
    }
}

/// One task of `group` fewer on instance `at` in the per-group counts (entries that reach zero
/// are removed).
fn uncount(groups: &mut HashMap<Arc<str>, HashMap<u32, u32>>, group: &str, at: u32) {
    if let Some(g) = groups.get_mut(group) {
        if let Some(c) = g.get_mut(&at) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                g.remove(&at);
            }
        }
        if g.is_empty() {
            groups.remove(group);
        }
    }
}

/// A cluster being placed into: the snapshot plus the indexes placement
/// keeps across requests.
pub struct Cluster {
    instances: Vec<ContainerInstance>,
    by_id: HashMap<String, usize>,
    /// group -> instance -> tasks of that group on it.
    groups: HashMap<Arc<str>, HashMap<u32, u32>>,
    fields: HashMap<String, Arc<FieldIndex>>,
    static_member_of: HashMap<String, Arc<Vec<bool>>>,
}

impl Cluster {
    /// A cluster over `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        let instances = snapshot.instances;
        let mut by_id = HashMap::with_capacity(instances.len());
        let mut groups: HashMap<Arc<str>, HashMap<u32, u32>> = HashMap::new();
        for (n, x) in instances.iter().enumerate() {
            by_id.entry(x.id.clone()).or_insert(n);
            for t in &x.tasks {
                *groups
                    .entry(t.group.clone())
                    .or_default()
                    .entry(n as u32)
                    .or_default() += 1;
            }
        }
        Self {
            instances,
            by_id,
            groups,
            fields: HashMap::new(),
            static_member_of: HashMap::new(),
        }
    }

    /// Replaces the instance that has `x`'s id with `x`, keeping the indexes current (a
    /// caller that keeps one cluster across requests and learns of each instance's changes):
    /// the per-group task counts follow its tasks, and the attribute and `memberOf` caches are
    /// dropped when anything but its tasks and remaining resources changed. `false` (and
    /// nothing changes) when no instance has that id: the caller builds a new cluster.
    pub fn replace(&mut self, x: ContainerInstance) -> bool {
        let Some(&n) = self.by_id.get(&x.id) else {
            return false;
        };
        let Some(old) = self.instances.get_mut(n) else {
            return false;
        };
        let at = n as u32;
        for t in &old.tasks {
            uncount(&mut self.groups, &t.group, at);
        }
        for t in &x.tasks {
            *self
                .groups
                .entry(t.group.clone())
                .or_default()
                .entry(at)
                .or_default() += 1;
        }
        let same_shape = old.arn == x.arn
            && old.ec2_instance_id == x.ec2_instance_id
            && old.status == x.status
            && old.agent_connected == x.agent_connected
            && old.agent_version == x.agent_version
            && old.registered_at == x.registered_at
            && old.registered == x.registered
            && old.attributes == x.attributes;
        *old = x;
        if !same_shape {
            self.fields.clear();
            self.static_member_of.clear();
        }
        true
    }

    /// Adds `task`, holding `held` (its reservation: CPU, memory, static ports), to instance
    /// `id`, keeping the indexes current (a caller that keeps one cluster across requests and
    /// learns of each task that starts holding there). With `claim`, a task this cluster placed
    /// there without an ARN yet, of the same group, takes `task`'s ARN instead (its resources
    /// are already taken): the caller committed that placement. `false` (and nothing changes)
    /// when no instance has that id or `held` does not fit what remains: the caller rebuilds
    /// the instance ([`Cluster::replace`]).
    pub fn hold(&mut self, id: &str, task: RunningTask, held: &Resources, claim: bool) -> bool {
        let Some(&n) = self.by_id.get(id) else {
            return false;
        };
        let Some(x) = self.instances.get_mut(n) else {
            return false;
        };
        if claim {
            if let Some(t) = x
                .tasks
                .iter_mut()
                .find(|t| t.arn.is_none() && t.group == task.group)
            {
                // The caller's task (its ARN, and the strings it shares with the caller's own
                // records) replaces the tentative one.
                *t = task;
                return true;
            }
        }
        let fits = x.remaining.cpu >= held.cpu
            && x.remaining.memory >= held.memory
            && held
                .ports
                .as_slice()
                .iter()
                .all(|p| !x.remaining.ports.contains(*p))
            && held
                .ports_udp
                .as_slice()
                .iter()
                .all(|p| !x.remaining.ports_udp.contains(*p));
        if !fits {
            return false;
        }
        x.remaining.cpu -= held.cpu;
        x.remaining.memory -= held.memory;
        for p in held.ports.as_slice().iter() {
            x.remaining.ports.insert(*p);
        }
        for p in held.ports_udp.as_slice().iter() {
            x.remaining.ports_udp.insert(*p);
        }
        *self
            .groups
            .entry(task.group.clone())
            .or_default()
            .entry(n as u32)
            .or_default() += 1;
        x.tasks.push(task);
        true
    }

    /// Replaces instance `id`'s task that equals `task` with `task` itself: the same task, told
    /// again with the caller's strings, which the caller keeps elsewhere too (so each is held
    /// once). Nothing changes when the instance has no such task.
    pub fn share(&mut self, id: &str, task: RunningTask) {
        let Some(x) = self.by_id.get(id).and_then(|&n| self.instances.get_mut(n)) else {
            return;
        };
        if let Some(t) = x.tasks.iter_mut().find(|t| **t == task) {
            *t = task;
        }
    }

    /// Removes task `arn`, which held `held`, from instance `id`, giving back what it held and
    /// keeping the indexes current. `false` (and nothing changes) when no instance has that id
    /// or the task is not on it: the caller rebuilds the instance ([`Cluster::replace`]).
    pub fn release(&mut self, id: &str, arn: &str, held: &Resources) -> bool {
        self.take_task(id, held, |t| t.arn.as_deref() == Some(arn))
    }

    /// Removes one task of `group` this cluster placed on instance `id` that has no ARN yet (a
    /// tentative placement), giving back what it held (`held`): the caller learnt of the
    /// committed task by another way ([`Cluster::hold`] without `claim`). `false` (and nothing
    /// changes) when there is none.
    pub fn drop_tentative(&mut self, id: &str, group: &str, held: &Resources) -> bool {
        self.take_task(id, held, |t| t.arn.is_none() && &*t.group == group)
    }

    fn take_task(
        &mut self,
        id: &str,
        held: &Resources,
        which: impl Fn(&RunningTask) -> bool,
    ) -> bool {
        let Some(&n) = self.by_id.get(id) else {
            return false;
        };
        let Some(x) = self.instances.get_mut(n) else {
            return false;
        };
        let Some(at) = x.tasks.iter().position(which) else {
            return false;
        };
        let t = x.tasks.swap_remove(at);
        x.remaining.cpu = x
            .remaining
            .cpu
            .saturating_add(held.cpu)
            .min(x.registered.cpu);
        x.remaining.memory = x
            .remaining
            .memory
            .saturating_add(held.memory)
            .min(x.registered.memory);
        for p in held.ports.as_slice().iter() {
            if !x.registered.ports.contains(*p) {
                x.remaining.ports.remove(*p);
            }
        }
        for p in held.ports_udp.as_slice().iter() {
            if !x.registered.ports_udp.contains(*p) {
                x.remaining.ports_udp.remove(*p);
            }
        }
        uncount(&mut self.groups, &t.group, n as u32);
        true
    }

    /// Whether instance `id` has tasks this cluster placed that have no ARN yet (tentative
    /// placements nobody claimed with [`Cluster::hold`]).
    pub fn has_unclaimed(&self, id: &str) -> bool {
        self.by_id
            .get(id)
            .and_then(|&n| self.instances.get(n))
            .is_some_and(|x| x.tasks.iter().any(|t| t.arn.is_none()))
    }

    /// The instances, with every reservation made so far.
    pub fn instances(&self) -> &[ContainerInstance] {
        &self.instances
    }

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.instances.clone())
    }

    /// The current snapshot, consuming the cluster.
    pub fn into_snapshot(self) -> Snapshot {
        Snapshot::new(self.instances)
    }

    /// Places `req` (see the module doc), with the default selector.
    pub fn place(&mut self, req: &PlacementRequest) -> Result<PlacementOutcome, PlacementError> {
        self.place_with(req, SelectMode::Auto)
    }

    /// Places `req` with a chosen selector (identical results; for tests and
    /// benchmarks).
    pub fn place_with(
        &mut self,
        req: &PlacementRequest,
        mode: SelectMode,
    ) -> Result<PlacementOutcome, PlacementError> {
        let mut ctx = self.context(req)?;
        if req.count == 0 {
            return Ok(PlacementOutcome::default());
        }
        let candidates: Vec<u32> = (0..self.instances.len())
            .filter(|&i| ctx.feasible(&self.instances, i))
            .map(|i| i as u32)
            .collect();
        let use_scan = match mode {
            SelectMode::Scan => true,
            SelectMode::Index => false,
            SelectMode::Auto => req.count <= SCAN_MAX_COUNT,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
        let mut out = PlacementOutcome::default();
        let mut scan = None;
        let mut index = None;
        if use_scan {
            scan = Some(Scan::new(&ctx, &self.instances, &candidates));
        } else {
            index = Some(Index::new(&ctx, &self.instances, &candidates));
        }
        for task_index in 0..req.count {
            let chosen = match (&scan, &index) {
                (Some(s), _) => s.pick(&ctx, &mut rng),
                (_, Some(x)) => x.pick(&ctx, &mut rng),
                _ => None,
            };
            let Some(i) = chosen else {
                out.unplaced = req.count - task_index;
                out.rejections = self.rejections(&ctx);
                break;
            };
            if let Some(x) = index.as_mut() {
                x.remove(i);
            }
            let placed = self.commit(&mut ctx, req, i, task_index);
            let still = ctx.feasible(&self.instances, i);
            let keep = still && placed.is_some();
            match (scan.as_mut(), index.as_mut()) {
                (Some(s), _) if keep => s.update(&ctx, &self.instances, i),
                (Some(s), _) => s.remove(i),
                (_, Some(x)) if keep => x.insert(&ctx, &self.instances, i),
                _ => {}
            }
            match placed {
                Some(p) => out.placements.push(p),
                // Unreachable: a candidate is feasible, so its reservation
                // succeeds. Counted rather than lost if it ever happens.
                None => out.unplaced += 1,
            }
        }
        Ok(out)
    }

    /// Why each instance could not take one task of `req` right now (only the
    /// instances that could not; empty if every instance could).
    pub fn explain(
        &mut self,
        req: &PlacementRequest,
    ) -> Result<Vec<InstanceRejection>, PlacementError> {
        let ctx = self.context(req)?;
        Ok(self.rejections(&ctx))
    }

    /// StartTask: one task of `req` on each named instance (by id or ARN),
    /// without strategies or constraints — only status, agent and resources
    /// are checked, as ECS does for StartTask. Instances that cannot take it
    /// are reported (unknown ones as `MISSING`); `unplaced` counts them.
    pub fn start_on(
        &mut self,
        req: &PlacementRequest,
        instances: &[&str],
    ) -> Result<PlacementOutcome, PlacementError> {
        if instances.is_empty() || instances.len() > MAX_START_INSTANCES {
            return Err(PlacementError::InvalidInstanceCount(instances.len()));
        }
        let mut plain = req.clone();
        plain.task_definition_constraints.clear();
        plain.constraints.clear();
        plain.strategies = vec![PlacementStrategy::Random];
        let mut ctx = self.context(&plain)?;
        let mut out = PlacementOutcome::default();
        for (n, name) in instances.iter().enumerate() {
            let found = self
                .by_id
                .get(*name)
                .copied()
                .or_else(|| self.instances.iter().position(|x| x.arn == *name));
            let Some(i) = found else {
                out.unplaced += 1;
                out.rejections.push(InstanceRejection {
                    instance_index: usize::MAX,
                    instance_id: (*name).to_string(),
                    arn: (*name).to_string(),
                    reasons: vec![Rejection::Missing],
                });
                continue;
            };
            let placed = if ctx.feasible(&self.instances, i) {
                self.commit(&mut ctx, &plain, i, n as u32)
            } else {
                None
            };
            match placed {
                Some(p) => out.placements.push(p),
                None => {
                    out.unplaced += 1;
                    out.rejections.push(self.rejection(&ctx, i));
                }
            }
        }
        Ok(out)
    }

    fn rejection(&self, ctx: &Ctx<'_>, i: usize) -> InstanceRejection {
        let (id, arn) = self
            .instances
            .get(i)
            .map_or((String::new(), String::new()), |x| {
                (x.id.clone(), x.arn.clone())
            });
        InstanceRejection {
            instance_index: i,
            instance_id: id,
            arn,
            reasons: ctx.reasons(&self.instances, i),
        }
    }

    fn rejections(&self, ctx: &Ctx<'_>) -> Vec<InstanceRejection> {
        (0..self.instances.len())
            .filter(|&i| !ctx.feasible(&self.instances, i))
            .map(|i| self.rejection(ctx, i))
            .filter(|r| !r.reasons.is_empty())
            .collect()
    }

    /// Reserves one task on instance `i` and updates the counts.
    fn commit(
        &mut self,
        ctx: &mut Ctx<'_>,
        req: &PlacementRequest,
        i: usize,
        task_index: u32,
    ) -> Option<Placement> {
        let x = self.instances.get_mut(i)?;
        if !ctx.demand.reserve(&mut x.remaining) {
            return None;
        }
        let group: Arc<str> = req.group.as_str().into();
        x.tasks.push(RunningTask {
            arn: None,
            group: group.clone(),
            family: req.family.as_str().into(),
            revision: req.revision,
            started_by: req.started_by.as_deref().map(Arc::from),
        });
        let active = x.status == InstanceStatus::Active;
        let placement = Placement {
            task_index,
            instance_index: i,
            container_instance_id: x.id.clone(),
            container_instance_arn: x.arn.clone(),
            host_ports: ctx.demand.ports.clone(),
            host_ports_udp: ctx.demand.ports_udp.clone(),
        };
        if let Some(g) = ctx.gcount.get_mut(i) {
            *g += 1;
        }
        if active {
            for sh in &mut ctx.shared {
                let v = sh.vid(i) as usize;
                if let Some(c) = sh.counts.get_mut(v) {
                    *c += 1;
                }
            }
        }
        *self
            .groups
            .entry(group)
            .or_default()
            .entry(i as u32)
            .or_default() += 1;
        Some(placement)
    }

    /// Validates `req` and prepares its per-request state.
    fn context<'r>(&mut self, req: &'r PlacementRequest) -> Result<Ctx<'r>, PlacementError> {
        if req.strategies.len() > MAX_STRATEGIES {
            return Err(PlacementError::TooManyStrategies(req.strategies.len()));
        }
        let n_constraints = req.task_definition_constraints.len() + req.constraints.len();
        if n_constraints > MAX_CONSTRAINTS {
            return Err(PlacementError::TooManyConstraints(n_constraints));
        }
        let demand = req.task.demand()?;
        if self.instances.is_empty() {
            return Err(PlacementError::NoContainerInstances);
        }
        let mut gcount = vec![0u32; self.instances.len()];
        if let Some(g) = self.groups.get(req.group.as_str()) {
            for (&i, &c) in g {
                if let Some(slot) = gcount.get_mut(i as usize) {
                    *slot = c;
                }
            }
        }
        let mut levels = Vec::new();
        let mut shared = Vec::new();
        for s in req.effective_strategies() {
            let level = match s {
                PlacementStrategy::Random => break,
                PlacementStrategy::Binpack(BinpackField::Cpu) => Level::Cpu,
                PlacementStrategy::Binpack(BinpackField::Memory) => Level::Memory,
                PlacementStrategy::Spread(SpreadField::InstanceId) => Level::Instance,
                PlacementStrategy::Spread(SpreadField::Attribute(name)) => {
                    let field = self.field(&name);
                    let mut counts = vec![0u64; field.values];
                    for (i, (&g, x)) in gcount.iter().zip(&self.instances).enumerate() {
                        if g > 0 && x.status == InstanceStatus::Active {
                            if let Some(c) =
                                field.vid.get(i).and_then(|&v| counts.get_mut(v as usize))
                            {
                                *c += u64::from(g);
                            }
                        }
                    }
                    shared.push(SharedState { field, counts });
                    Level::Shared(shared.len() - 1)
                }
            };
            levels.push(level);
        }
        let mut member_of = Vec::new();
        let mut distinct = false;
        for (index, c) in req.all_constraints().enumerate() {
            match c {
                PlacementConstraint::DistinctInstance => distinct = true,
                PlacementConstraint::MemberOf(q) => {
                    let cached = if q.is_dynamic() {
                        None
                    } else {
                        Some(self.static_member_of(q))
                    };
                    member_of.push(MemberOf {
                        index,
                        query: q,
                        cached,
                    });
                }
            }
        }
        Ok(Ctx {
            demand,
            member_of,
            distinct,
            levels,
            gcount,
            shared,
        })
    }

    fn field(&mut self, name: &str) -> Arc<FieldIndex> {
        if let Some(f) = self.fields.get(name) {
            return Arc::clone(f);
        }
        let f = Arc::new(FieldIndex::build(&self.instances, name));
        self.fields.insert(name.to_string(), Arc::clone(&f));
        f
    }

    fn static_member_of(&mut self, q: &Query) -> Arc<Vec<bool>> {
        if let Some(c) = self.static_member_of.get(q.as_str()) {
            return Arc::clone(c);
        }
        let c = Arc::new(
            self.instances
                .iter()
                .map(|x| q.matches(x))
                .collect::<Vec<_>>(),
        );
        self.static_member_of
            .insert(q.as_str().to_string(), Arc::clone(&c));
        c
    }
}

/// One-shot placement: places `req` on `snapshot` and returns the outcome
/// with the snapshot as it is afterwards (reservations applied).
pub fn place(
    snapshot: Snapshot,
    req: &PlacementRequest,
) -> Result<(PlacementOutcome, Snapshot), PlacementError> {
    let mut c = Cluster::new(snapshot);
    let out = c.place(req)?;
    Ok((out, c.into_snapshot()))
}
