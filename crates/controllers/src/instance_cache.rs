//! This replica's copy of the container instance records, their custom attributes, their
//! placement guards and what the tasks on each hold, kept current by the server's one watch
//! ([`crate::task_feed::TaskFeed`] feeds it), with, per cluster, the scheduler's
//! [`sched::Cluster`] over them kept across placements.
//!
//! Why: placement used to read and decode every instance record of the cluster (each with the
//! reservations of every task on it) and build the scheduler's snapshot and indexes afresh, all
//! under the cluster's placement lock, on every RunTask and every service placement: with 10,000
//! hosts and a million tasks, each placement read and converted a million reservations. Now a
//! change of an instance, or of what a task holds on it, is applied once, here, and replaces
//! that one instance in the kept cluster ([`sched::Cluster::replace`]).
//!
//! How a placement uses it ([`crate::placement`]): under the cluster's placement lock it plans on
//! the kept cluster ([`InstanceCache::plan`]), which reserves tentatively as it plans and hands
//! back the records of the instances the plan used, with their `mod_revision` and their
//! placement guards' (`flotilla_control::keys::placement_guard_key`); the commit compares them,
//! so a plan made on an instance that changed, or that another placement used since, fails and
//! is made again. After the commit, what the new tasks hold and the guards written are applied
//! at once ([`InstanceCache::placed`], before the watch brings them) and the used instances are
//! put back to their records' state ([`InstanceCache::settle`]), which drops the tentative
//! reservations of a commit that failed.
//!
//! Invariants: the cache's lock is never held across an `.await`; a record or a guard is only
//! ever replaced by one at a higher revision (the watch's replay of older changes and the
//! write-through cannot step it back); what a host holds is exactly what the tasks the feed has
//! applied hold (the write-through of a placement adds its tasks only while the feed has not yet
//! applied the placement's revision, after which the feed's own changes decide); the kept cluster
//! holds the non-INACTIVE instances of its records in id order, each as
//! [`InstanceRecord::to_scheduler`] gives it, except for the tentative reservations of the
//! placement in flight. An instance added, removed or made INACTIVE drops the kept cluster; the
//! next placement builds it again.
//!
//! What it is not: the source of truth (the store is; a plan's compares guard what it used),
//! nor read before it has caught up with the store ([`crate::task_feed::TaskFeed::caught_up`]):
//! a caller that cannot wait reads the store.

use flotilla_control::instances::{
    custom_attribute, Held, InstanceRecord, Reservation, NOTHING_HELD,
};
use flotilla_control::keys::{ATTRIBUTES, CONTAINER_INSTANCES, PLACEMENT_GUARDS};
use flotilla_control::tasks::{TaskHead, TaskRecord};
use flotilla_model::shapes::Attribute;
use flotilla_scheduler as sched;
use flotilla_store::{Event, KeyValue};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// One cached instance record.
#[derive(Debug, Clone)]
pub struct Cached {
    /// Its store key.
    pub key: String,
    /// The record.
    pub record: Arc<InstanceRecord>,
    /// Its `mod_revision`.
    pub rev: u64,
    /// Its placement guard's `mod_revision` (0: it has none yet).
    pub guard_rev: u64,
}

#[derive(Default)]
struct Pool {
    /// By instance id.
    records: BTreeMap<String, Cached>,
    /// Custom attributes by instance id, then by attribute key: (attribute, mod_revision).
    custom: HashMap<String, BTreeMap<String, (Attribute, u64)>>,
    /// Placement guards' `mod_revision` by instance id.
    guards: HashMap<String, u64>,
    /// What the tasks on each instance hold, by instance id.
    held: HashMap<String, Held>,
    /// The scheduler's cluster over the non-INACTIVE records, when built.
    cluster: Option<sched::Cluster>,
}

/// Instance `id`'s custom attributes.
fn custom_of(
    custom: &HashMap<String, BTreeMap<String, (Attribute, u64)>>,
    id: &str,
) -> Vec<Attribute> {
    custom
        .get(id)
        .map(|m| m.values().map(|(a, _)| custom_attribute(a)).collect())
        .unwrap_or_default()
}

impl Pool {
    fn scheduled(c: &Cached) -> bool {
        c.record.status() != sched::InstanceStatus::Inactive
    }

    fn held_on(&self, id: &str) -> &Held {
        self.held.get(id).unwrap_or(&NOTHING_HELD)
    }

    /// Brings instance `id` of the kept cluster to its record's state, or drops the cluster
    /// when the instance joins or leaves it.
    fn refresh(&mut self, id: &str) {
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let now = self.records.get(id).filter(|c| Self::scheduled(c));
        let was = cluster.instances().iter().any(|x| x.id == id);
        let keep = match now {
            Some(c) if was => {
                let x = c
                    .record
                    .to_scheduler(&custom_of(&self.custom, id), self.held_on(id));
                self.cluster.as_mut().is_some_and(|cl| cl.replace(x))
            }
            None => !was,
            Some(_) => false,
        };
        if !keep {
            self.cluster = None;
        }
    }

    fn cluster(&mut self) -> &mut sched::Cluster {
        let (records, custom, held) = (&self.records, &self.custom, &self.held);
        self.cluster.get_or_insert_with(|| {
            sched::Cluster::new(sched::Snapshot::new(
                records
                    .values()
                    .filter(|c| Self::scheduled(c))
                    .map(|c| {
                        c.record.to_scheduler(
                            &custom_of(custom, &c.record.id),
                            held.get(&c.record.id).unwrap_or(&NOTHING_HELD),
                        )
                    })
                    .collect(),
            ))
        })
    }

    /// Task `arn` holds `r` on instance `id` (from now on, or still). With `claim`, the task was
    /// placed by this replica and its placement's tentative reservation becomes its own.
    ///
    /// What a task holds, unchanged, is kept with the caller's strings when they are other
    /// strings than the kept ones (the feed's, which the task index holds too, replace those of
    /// the placement's write-through), so a task's ARN, group and family are held once.
    fn hold(&mut self, id: &str, arn: &Arc<str>, r: &Reservation, claim: bool) {
        let held = self.held.entry(id.to_string()).or_default();
        if let Some((k, kept)) = held.get_key_value(&**arn) {
            if kept == r {
                if !Arc::ptr_eq(k, arn) || !Arc::ptr_eq(&kept.task_arn, &r.task_arn) {
                    held.remove(&**arn);
                    held.insert(arn.clone(), r.clone());
                    if let Some(cluster) = self.cluster.as_mut() {
                        cluster.share(id, r.running_task());
                    }
                }
                return;
            }
        }
        let before = held.insert(arn.clone(), r.clone());
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let fresh_hold =
            before.is_none() && cluster.hold(id, r.running_task(), &r.resources(), claim);
        if !fresh_hold {
            self.refresh(id);
        }
    }

    /// Task `arn` no longer holds anything on instance `id`.
    fn release(&mut self, id: &str, arn: &str) {
        let Some(held) = self.held.get_mut(id) else {
            return;
        };
        let Some(r) = held.remove(arn) else {
            return;
        };
        if held.is_empty() {
            self.held.remove(id);
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if !cluster.release(id, arn, &r.resources()) {
            self.refresh(id);
        }
    }
}

#[derive(Default)]
struct State {
    /// By cluster name.
    pools: HashMap<String, Pool>,
    /// The store revision whose changes the feed has applied here.
    applied: u64,
}

/// See the module documentation.
#[derive(Default)]
pub struct InstanceCache {
    state: Mutex<State>,
}

/// `container-instances/CLUSTER/ID` -> (cluster, id).
fn instance_of(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(CONTAINER_INSTANCES)?.split_once('/')
}

/// `placement-guards/CLUSTER/ID` -> (cluster, id).
fn guard_of(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(PLACEMENT_GUARDS)?.split_once('/')
}

/// `attributes/CLUSTER/ID/NAME` -> (cluster, id).
fn attribute_of(key: &str) -> Option<(&str, &str)> {
    let (cluster, rest) = key.strip_prefix(ATTRIBUTES)?.split_once('/')?;
    let (id, _) = rest.split_once('/')?;
    Some((cluster, id))
}

/// Whether the cache keeps the record at `key` (the feed hands it only those, and every task
/// change as [`InstanceCache::task_changed`]).
pub fn is_cached_key(key: &str) -> bool {
    key.starts_with(CONTAINER_INSTANCES)
        || key.starts_with(ATTRIBUTES)
        || key.starts_with(PLACEMENT_GUARDS)
}

/// What a plan used of the cache: the records of the instances it placed on, by id.
pub type Used = HashMap<String, Cached>;

/// A host: (the instance's cluster, its id).
pub type HostId = (String, String);

/// What a task holds on its host, as the feed saw it change.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskHold {
    /// The host it runs on.
    pub host: HostId,
    /// The task's ARN (the reservation's own).
    pub arn: Arc<str>,
    /// What it holds there.
    pub reservation: Reservation,
}

impl TaskHold {
    /// What a task record holds on its host (nothing once it has stopped).
    pub fn of(t: &TaskRecord) -> Option<TaskHold> {
        TaskHold::of_head(&TaskHead::of(t))
    }

    /// [`TaskHold::of`] a record's head.
    pub fn of_head(t: &TaskHead) -> Option<TaskHold> {
        (!t.is_stopped()).then(|| TaskHold {
            host: (t.instance_cluster().to_string(), t.instance_id.clone()),
            arn: if *t.reservation.task_arn == *t.arn() {
                t.reservation.task_arn.clone()
            } else {
                t.arn().into()
            },
            reservation: t.reservation.clone(),
        })
    }
}

/// A plan's tentative reservations on the kept cluster: dropping it puts the instances it
/// placed on back to their records' state ([`InstanceCache::settle`]), whatever became of the
/// commit (a conflict, an error, a request abandoned half-way).
pub struct Tentative<'a> {
    cache: &'a InstanceCache,
    cluster: String,
    ids: Vec<String>,
}

impl Drop for Tentative<'_> {
    fn drop(&mut self) {
        self.cache.settle(&self.cluster, &self.ids);
    }
}

impl InstanceCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is applied whole before it is released.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole cache with listings of `container-instances/`, `attributes/` and
    /// `placement-guards/`, and what the listed tasks hold (`held`: the tasks not STOPPED).
    pub fn load(
        &self,
        instances: &[KeyValue],
        attributes: &[KeyValue],
        guards: &[KeyValue],
        held: Vec<TaskHold>,
    ) {
        let mut st = self.lock();
        st.pools.clear();
        st.applied = 0;
        for kv in instances {
            Self::put_instance(&mut st, kv);
        }
        for kv in attributes {
            Self::put_attribute(&mut st, kv);
        }
        for kv in guards {
            Self::put_guard(&mut st, kv.key.as_str(), kv.mod_revision);
        }
        for h in held {
            let pool = st.pools.entry(h.host.0).or_default();
            pool.held
                .entry(h.host.1)
                .or_default()
                .insert(h.arn, h.reservation);
        }
        for p in st.pools.values_mut() {
            p.cluster = None;
        }
    }

    fn put_instance(st: &mut State, kv: &KeyValue) {
        let Some((cluster, id)) = instance_of(&kv.key) else {
            return;
        };
        let Ok(rec) = serde_json::from_slice::<InstanceRecord>(&kv.value) else {
            return;
        };
        let pool = st.pools.entry(cluster.to_string()).or_default();
        if pool
            .records
            .get(id)
            .is_some_and(|c| c.rev >= kv.mod_revision)
        {
            return;
        }
        let guard_rev = pool.guards.get(id).copied().unwrap_or(0);
        pool.records.insert(
            id.to_string(),
            Cached {
                key: kv.key.clone(),
                record: Arc::new(rec),
                rev: kv.mod_revision,
                guard_rev,
            },
        );
        pool.refresh(id);
    }

    fn put_guard(st: &mut State, key: &str, rev: u64) {
        let Some((cluster, id)) = guard_of(key) else {
            return;
        };
        let pool = st.pools.entry(cluster.to_string()).or_default();
        let g = pool.guards.entry(id.to_string()).or_default();
        *g = (*g).max(rev);
        let g = *g;
        if let Some(c) = pool.records.get_mut(id) {
            c.guard_rev = g;
        }
    }

    fn put_attribute(st: &mut State, kv: &KeyValue) {
        let Some((cluster, id)) = attribute_of(&kv.key) else {
            return;
        };
        let Ok(a) = serde_json::from_slice::<Attribute>(&kv.value) else {
            return;
        };
        let pool = st.pools.entry(cluster.to_string()).or_default();
        let attrs = pool.custom.entry(id.to_string()).or_default();
        if attrs
            .get(&kv.key)
            .is_some_and(|(_, r)| *r >= kv.mod_revision)
        {
            return;
        }
        attrs.insert(kv.key.clone(), (a, kv.mod_revision));
        pool.refresh(id);
    }

    /// Applies one change of the store (others than instances, attributes and placement
    /// guards are ignored).
    pub fn apply(&self, ev: &Event) {
        let key = ev.key();
        if !is_cached_key(key) {
            return;
        }
        let mut st = self.lock();
        match ev {
            Event::Put(kv) if key.starts_with(CONTAINER_INSTANCES) => {
                Self::put_instance(&mut st, kv)
            }
            Event::Put(kv) if key.starts_with(PLACEMENT_GUARDS) => {
                Self::put_guard(&mut st, key, kv.mod_revision)
            }
            Event::Put(kv) => Self::put_attribute(&mut st, kv),
            Event::Delete { revision, .. } => {
                if let Some((cluster, id)) = instance_of(key) {
                    if let Some(pool) = st.pools.get_mut(cluster) {
                        if pool.records.get(id).is_some_and(|c| c.rev < *revision) {
                            pool.records.remove(id);
                            pool.refresh(id);
                        }
                    }
                } else if let Some((cluster, id)) = guard_of(key) {
                    if let Some(pool) = st.pools.get_mut(cluster) {
                        // A guard deleted and written again starts over at a higher revision,
                        // so what a plan saw before can never compare equal again.
                        pool.guards.remove(id);
                        if let Some(c) = pool.records.get_mut(id) {
                            c.guard_rev = 0;
                        }
                    }
                } else if let Some((cluster, id)) = attribute_of(key) {
                    if let Some(pool) = st.pools.get_mut(cluster) {
                        let gone = pool
                            .custom
                            .get_mut(id)
                            .filter(|m| m.get(key).is_some_and(|(_, r)| *r < *revision))
                            .map(|m| m.remove(key))
                            .is_some();
                        if gone {
                            pool.refresh(id);
                        }
                    }
                }
            }
        }
    }

    /// A task's record changed (the feed applies them in revision order): it held `before`
    /// and holds `after` (`None`: nothing, as a task that stopped, moved or was deleted).
    pub fn task_changed(&self, before: Option<&TaskHold>, after: Option<&TaskHold>) {
        if before == after {
            return;
        }
        let mut st = self.lock();
        if let Some(b) = before {
            if after.is_none_or(|a| a.host != b.host || a.arn != b.arn) {
                if let Some(pool) = st.pools.get_mut(&b.host.0) {
                    pool.release(&b.host.1, &b.arn);
                }
            }
        }
        if let Some(a) = after {
            let pool = st.pools.entry(a.host.0.clone()).or_default();
            pool.hold(&a.host.1, &a.arn, &a.reservation, false);
        }
    }

    /// The feed has applied every change up to `revision`.
    pub fn applied(&self, revision: u64) {
        let mut st = self.lock();
        st.applied = st.applied.max(revision);
    }

    /// Applies a placement this replica has just committed at `revision`: the guards it wrote
    /// (the used instances of `cluster`) and what its tasks hold. The watch brings them again
    /// later; what the tasks hold is only added while the feed has not applied `revision`
    /// (after that, the feed knows better: one of them may already have stopped).
    pub fn placed(&self, cluster: &str, ids: &[String], tasks: &[TaskHold], revision: u64) {
        let mut st = self.lock();
        let fresh = st.applied < revision;
        let pool = st.pools.entry(cluster.to_string()).or_default();
        for id in ids {
            let g = pool.guards.entry(id.clone()).or_default();
            *g = (*g).max(revision);
            let g = *g;
            if let Some(c) = pool.records.get_mut(id) {
                c.guard_rev = g;
            }
        }
        for t in tasks {
            let pool = st.pools.entry(t.host.0.clone()).or_default();
            if fresh {
                pool.hold(&t.host.1, &t.arn, &t.reservation, true);
            } else if let Some(c) = pool.cluster.as_mut() {
                // The feed told the task already (and held it): its tentative reservation
                // goes, so that settling has nothing to rebuild.
                c.drop_tentative(&t.host.1, &t.reservation.group, &t.reservation.resources());
            }
        }
    }

    /// Puts the instances `ids` of `cluster`'s kept cluster back to their records' state
    /// (drops a plan's tentative reservations that no committed task claimed).
    pub fn settle(&self, cluster: &str, ids: &[String]) {
        let mut st = self.lock();
        if let Some(pool) = st.pools.get_mut(cluster) {
            for id in ids {
                let unclaimed = pool.cluster.as_ref().is_some_and(|c| c.has_unclaimed(id));
                if unclaimed {
                    pool.refresh(id);
                }
            }
        }
    }

    /// Runs `plan` on `cluster`'s kept scheduler cluster (which it may reserve on), and hands
    /// back its result with the records of the instances whose ids `used` picks out of it, and
    /// the guard that puts those instances back to their records' state when dropped
    /// ([`Tentative`]). The caller commits against those records' and their placement guards'
    /// revisions, applies what it wrote ([`InstanceCache::placed`]), then drops the guard.
    pub fn plan<T>(
        &self,
        cluster: &str,
        plan: impl FnOnce(&mut sched::Cluster) -> T,
        used: impl FnOnce(&T) -> Vec<String>,
    ) -> (T, Used, Tentative<'_>) {
        let mut st = self.lock();
        let pool = st.pools.entry(cluster.to_string()).or_default();
        let out = plan(pool.cluster());
        let ids = used(&out);
        let records: Used = ids
            .iter()
            .filter_map(|id| pool.records.get(id).map(|c| (id.clone(), c.clone())))
            .collect();
        let tentative = Tentative {
            cache: self,
            cluster: cluster.to_string(),
            ids,
        };
        (out, records, tentative)
    }

    /// Instance `id` of `cluster` as the feed last applied it (`None`: not here, or the feed
    /// has not loaded yet; read the store).
    pub fn record(&self, cluster: &str, id: &str) -> Option<Arc<InstanceRecord>> {
        self.lock()
            .pools
            .get(cluster)?
            .records
            .get(id)
            .map(|c| c.record.clone())
    }

    /// `cluster`'s instance records, in id order.
    pub fn records(&self, cluster: &str) -> Vec<Cached> {
        self.lock()
            .pools
            .get(cluster)
            .map(|p| p.records.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_control::instances::Capacity;
    use flotilla_model::shapes::ContainerInstance;

    fn record(id: &str) -> InstanceRecord {
        InstanceRecord {
            instance: ContainerInstance {
                container_instance_arn: Some(format!("arn:aws:ecs:r:1:container-instance/c/{id}")),
                status: Some("ACTIVE".into()),
                agent_connected: true,
                ..ContainerInstance::default()
            },
            cluster: "c".into(),
            id: id.into(),
            registered: Capacity {
                cpu: 4096,
                memory: 8192,
                ..Capacity::default()
            },
            ..InstanceRecord::default()
        }
    }

    fn hold(id: &str, task: &str, cpu: u32) -> TaskHold {
        let arn: Arc<str> = format!("arn:{task}").into();
        TaskHold {
            host: ("c".into(), id.into()),
            arn: arn.clone(),
            reservation: Reservation {
                task_arn: arn,
                cpu,
                memory: 512,
                group: "g".into(),
                ..Reservation::default()
            },
        }
    }

    fn kv(key: &str, value: Vec<u8>, rev: u64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
            create_revision: rev,
            mod_revision: rev,
        }
    }

    fn put(id: &str, rev: u64) -> Event {
        let key = format!("{CONTAINER_INSTANCES}c/{id}");
        Event::Put(kv(&key, serde_json::to_vec(&record(id)).unwrap(), rev))
    }

    fn remaining_cpu(cache: &InstanceCache, id: &str) -> u32 {
        let (cpu, _, _) = cache.plan(
            "c",
            |c| {
                c.instances()
                    .iter()
                    .find(|x| x.id == id)
                    .map(|x| x.remaining.cpu)
            },
            |_| Vec::new(),
        );
        cpu.unwrap_or(0)
    }

    fn guard_rev(cache: &InstanceCache, id: &str) -> u64 {
        cache
            .records("c")
            .into_iter()
            .find(|c| c.record.id == id)
            .map_or(0, |c| c.guard_rev)
    }

    #[test]
    fn the_kept_cluster_follows_the_records_and_the_tasks_and_never_steps_back() {
        let cache = InstanceCache::default();
        cache.load(&[], &[], &[], Vec::new());
        cache.apply(&put("a", 5));
        cache.apply(&put("b", 6));
        assert_eq!(remaining_cpu(&cache, "a"), 4096);
        // A task placed on a holds its share there until it stops.
        cache.task_changed(None, Some(&hold("a", "t1", 512)));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        // The same hold seen again (a status change) changes nothing.
        cache.task_changed(Some(&hold("a", "t1", 512)), Some(&hold("a", "t1", 512)));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        // A newer record of a replaces it in the kept cluster; an older one is ignored.
        cache.apply(&put("a", 8));
        cache.apply(&put("a", 7));
        assert_eq!(cache.records("c")[0].rev, 8);
        // A plan's tentative reservation is dropped by settle; a committed placement stays.
        let req = sched::PlacementRequest::new("f", sched::TaskSpec::simple(1024, 1024), 1)
            .with_strategies(vec![sched::PlacementStrategy::Binpack(
                sched::BinpackField::Cpu,
            )]);
        let (out, used, tentative) = cache.plan(
            "c",
            |c| c.place(&req).unwrap(),
            |o| {
                o.placements
                    .iter()
                    .map(|p| p.container_instance_id.clone())
                    .collect()
            },
        );
        assert_eq!(used.len(), 1);
        let id = out.placements[0].container_instance_id.clone();
        assert_eq!(id, "a", "binpack picks the fuller host");
        assert_eq!(used["a"].guard_rev, 0, "no placement guard yet");
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        drop(tentative);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        cache.placed("c", &["a".into()], &[hold("a", "t9", 1024)], 9);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        assert_eq!(guard_rev(&cache, "a"), 9);
        // The watch bringing the same writes again changes nothing.
        cache.apply(&Event::Put(kv(
            &format!("{PLACEMENT_GUARDS}c/a"),
            b"{}".to_vec(),
            9,
        )));
        cache.task_changed(None, Some(&hold("a", "t9", 1024)));
        cache.applied(9);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        // t1 stops: a gets its share back.
        cache.task_changed(Some(&hold("a", "t1", 512)), None);
        cache.applied(10);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 1024);
        cache.apply(&Event::Delete {
            key: format!("{CONTAINER_INSTANCES}c/a"),
            revision: 11,
        });
        assert_eq!(cache.records("c").len(), 1);
        assert_eq!(remaining_cpu(&cache, "a"), 0);
        assert_eq!(remaining_cpu(&cache, "b"), 4096);
    }

    #[test]
    fn a_task_told_again_with_other_strings_is_kept_with_those() {
        let cache = InstanceCache::default();
        cache.load(&[], &[], &[], Vec::new());
        cache.apply(&put("a", 5));
        assert_eq!(
            remaining_cpu(&cache, "a"),
            4096,
            "the kept cluster is built"
        );
        // The placement's write-through, then the feed's equal hold with its own strings.
        let first = hold("a", "t1", 512);
        cache.placed("c", &["a".into()], std::slice::from_ref(&first), 6);
        let again = hold("a", "t1", 512);
        assert!(!Arc::ptr_eq(&first.arn, &again.arn));
        cache.task_changed(None, Some(&again));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512, "held once");
        let st = cache.lock();
        let pool = &st.pools["c"];
        let (k, r) = pool.held["a"].get_key_value("arn:t1").unwrap();
        assert!(Arc::ptr_eq(k, &again.arn));
        assert!(Arc::ptr_eq(&r.task_arn, &again.arn));
        let x = pool.cluster.as_ref().unwrap().instances();
        let t = &x.iter().find(|x| x.id == "a").unwrap().tasks;
        assert_eq!(t.len(), 1);
        assert!(Arc::ptr_eq(t[0].arn.as_ref().unwrap(), &again.arn));
    }

    #[test]
    fn a_committed_placement_keeps_its_tentative_reservation_once() {
        let cache = InstanceCache::default();
        cache.load(&[], &[], &[], Vec::new());
        cache.apply(&put("a", 5));
        let req = sched::PlacementRequest::new("f", sched::TaskSpec::simple(1024, 512), 2)
            .with_group("g");
        let (out, _, tentative) = cache.plan(
            "c",
            |c| c.place(&req).unwrap(),
            |o| {
                o.placements
                    .iter()
                    .map(|p| p.container_instance_id.clone())
                    .collect()
            },
        );
        assert_eq!(out.placements.len(), 2);
        // The commit's write-through claims both tentative reservations, then the guard drops.
        cache.placed(
            "c",
            &["a".into()],
            &[hold("a", "t1", 1024), hold("a", "t2", 1024)],
            6,
        );
        drop(tentative);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 2048);
        // The feed brings the same tasks: nothing changes; one stops: its share comes back.
        cache.task_changed(None, Some(&hold("a", "t1", 1024)));
        cache.applied(6);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 2048);
        cache.task_changed(Some(&hold("a", "t2", 1024)), None);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 1024);
        // This time the feed tells the committed task before the write-through comes.
        let one = sched::PlacementRequest::new("f", sched::TaskSpec::simple(1024, 512), 1)
            .with_group("g");
        let (_, _, tentative) = cache.plan("c", |c| c.place(&one).unwrap(), |_| vec!["a".into()]);
        cache.task_changed(None, Some(&hold("a", "t3", 1024)));
        cache.applied(7);
        cache.placed("c", &["a".into()], &[hold("a", "t3", 1024)], 7);
        drop(tentative);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 2048);
    }

    #[test]
    fn a_placement_applied_after_the_feed_passed_it_adds_no_hold() {
        let cache = InstanceCache::default();
        cache.load(&[], &[], &[], Vec::new());
        cache.apply(&put("a", 5));
        // The feed applied the placement (revision 9) and t9's stop (revision 10) before the
        // placing request got around to applying what it wrote.
        cache.task_changed(None, Some(&hold("a", "t9", 1024)));
        cache.task_changed(Some(&hold("a", "t9", 1024)), None);
        cache.applied(10);
        cache.placed("c", &["a".into()], &[hold("a", "t9", 1024)], 9);
        assert_eq!(
            remaining_cpu(&cache, "a"),
            4096,
            "a stopped task holds nothing"
        );
        assert_eq!(guard_rev(&cache, "a"), 9);
    }

    #[test]
    fn a_load_takes_the_guards_and_what_the_listed_tasks_hold() {
        let cache = InstanceCache::default();
        let instance = kv(
            &format!("{CONTAINER_INSTANCES}c/a"),
            serde_json::to_vec(&record("a")).unwrap(),
            3,
        );
        let guard = kv(&format!("{PLACEMENT_GUARDS}c/a"), b"{}".to_vec(), 4);
        cache.load(&[instance], &[], &[guard], vec![hold("a", "t1", 100)]);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 100);
        assert_eq!(guard_rev(&cache, "a"), 4);
        // A deleted guard compares as absent again.
        cache.apply(&Event::Delete {
            key: format!("{PLACEMENT_GUARDS}c/a"),
            revision: 5,
        });
        assert_eq!(guard_rev(&cache, "a"), 0);
    }
}
