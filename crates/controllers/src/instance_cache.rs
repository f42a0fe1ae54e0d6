//! This replica's copy of the container instance records and their custom attributes, kept
//! current by the server's one watch ([`crate::task_feed::TaskFeed`] feeds it), with, per
//! cluster, the scheduler's [`sched::Cluster`] over them kept across placements.
//!
//! Why: placement used to read and decode every instance record of the cluster (each with the
//! reservations of every task on it) and build the scheduler's snapshot and indexes afresh, all
//! under the cluster's placement lock, on every RunTask and every service placement: with 10,000
//! hosts and a million tasks, each placement read and converted a million reservations. Now a
//! change of an instance is decoded once, here, and replaces that one instance in the kept
//! cluster ([`sched::Cluster::replace`]).
//!
//! How a placement uses it ([`crate::placement`]): under the cluster's placement lock it plans on
//! the kept cluster ([`InstanceCache::plan`]), which reserves tentatively as it plans and hands
//! back the records (with their `mod_revision`) of the instances the plan used; the commit
//! compares those revisions, so a plan made on a record that changed since fails and is made
//! again. After the commit, the written records are applied at once
//! ([`InstanceCache::written`], before the watch brings them) and the used instances are put
//! back to their records' state ([`InstanceCache::settle`]), which drops the tentative
//! reservations of a commit that failed.
//!
//! Invariants: the cache's lock is never held across an `.await`; a record is only ever
//! replaced by one at a higher revision (the watch's replay of older changes and the
//! write-through cannot step it back); the kept cluster holds the non-INACTIVE instances of
//! its records in id order, each as [`InstanceRecord::to_scheduler`] gives it, except for the
//! tentative reservations of the placement in flight. An instance added, removed or made
//! INACTIVE drops the kept cluster; the next placement builds it again.
//!
//! What it is not: the source of truth (the store is; a plan's compares guard what it used),
//! nor read before it has caught up with the store ([`crate::task_feed::TaskFeed::caught_up`]):
//! a caller that cannot wait reads the store.

use flotilla_control::instances::{custom_attribute, InstanceRecord};
use flotilla_control::keys::{ATTRIBUTES, CONTAINER_INSTANCES};
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
}

#[derive(Default)]
struct Pool {
    /// By instance id.
    records: BTreeMap<String, Cached>,
    /// Custom attributes by instance id, then by attribute key: (attribute, mod_revision).
    custom: HashMap<String, BTreeMap<String, (Attribute, u64)>>,
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

    /// Brings instance `id` of the kept cluster to its record's state, or drops the cluster
    /// when the instance joins or leaves it.
    fn refresh(&mut self, id: &str) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let now = self.records.get(id).filter(|c| Self::scheduled(c));
        let was = cluster.instances().iter().any(|x| x.id == id);
        let keep = match now {
            Some(c) if was => {
                let x = c.record.to_scheduler(&custom_of(&self.custom, id));
                cluster.replace(x)
            }
            None => !was,
            Some(_) => false,
        };
        if !keep {
            self.cluster = None;
        }
    }

    fn cluster(&mut self) -> &mut sched::Cluster {
        let (records, custom) = (&self.records, &self.custom);
        self.cluster.get_or_insert_with(|| {
            sched::Cluster::new(sched::Snapshot::new(
                records
                    .values()
                    .filter(|c| Self::scheduled(c))
                    .map(|c| c.record.to_scheduler(&custom_of(custom, &c.record.id)))
                    .collect(),
            ))
        })
    }
}

#[derive(Default)]
struct State {
    /// By cluster name.
    pools: HashMap<String, Pool>,
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

/// `attributes/CLUSTER/ID/NAME` -> (cluster, id).
fn attribute_of(key: &str) -> Option<(&str, &str)> {
    let (cluster, rest) = key.strip_prefix(ATTRIBUTES)?.split_once('/')?;
    let (id, _) = rest.split_once('/')?;
    Some((cluster, id))
}

/// Whether the cache keeps the record at `key` (the feed hands it only those).
pub fn is_cached_key(key: &str) -> bool {
    key.starts_with(CONTAINER_INSTANCES) || key.starts_with(ATTRIBUTES)
}

/// What a plan used of the cache: the records of the instances it placed on, by id.
pub type Used = HashMap<String, Cached>;

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

    /// Replaces the whole cache with listings of `container-instances/` and `attributes/`.
    pub fn load(&self, instances: &[KeyValue], attributes: &[KeyValue]) {
        let mut st = self.lock();
        st.pools.clear();
        for kv in instances {
            Self::put_instance(&mut st, kv);
        }
        for kv in attributes {
            Self::put_attribute(&mut st, kv);
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
        pool.records.insert(
            id.to_string(),
            Cached {
                key: kv.key.clone(),
                record: Arc::new(rec),
                rev: kv.mod_revision,
            },
        );
        pool.refresh(id);
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

    /// Applies one change of the store (others than instances and attributes are ignored).
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
            Event::Put(kv) => Self::put_attribute(&mut st, kv),
            Event::Delete { revision, .. } => {
                if let Some((cluster, id)) = instance_of(key) {
                    if let Some(pool) = st.pools.get_mut(cluster) {
                        if pool.records.get(id).is_some_and(|c| c.rev < *revision) {
                            pool.records.remove(id);
                            pool.refresh(id);
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

    /// Applies records this replica has just written at `revision` (the watch brings them
    /// again later; the older or equal revision is then ignored).
    pub fn written(&self, records: &[(String, InstanceRecord)], revision: u64) {
        let mut st = self.lock();
        for (key, rec) in records {
            let Some((cluster, id)) = instance_of(key) else {
                continue;
            };
            let pool = st.pools.entry(cluster.to_string()).or_default();
            if pool.records.get(id).is_some_and(|c| c.rev >= revision) {
                continue;
            }
            pool.records.insert(
                id.to_string(),
                Cached {
                    key: key.clone(),
                    record: Arc::new(rec.clone()),
                    rev: revision,
                },
            );
            pool.refresh(id);
        }
    }

    /// Puts the instances `ids` of `cluster`'s kept cluster back to their records' state
    /// (drops a plan's tentative reservations).
    pub fn settle(&self, cluster: &str, ids: &[String]) {
        let mut st = self.lock();
        if let Some(pool) = st.pools.get_mut(cluster) {
            for id in ids {
                pool.refresh(id);
            }
        }
    }

    /// Runs `plan` on `cluster`'s kept scheduler cluster (which it may reserve on), and hands
    /// back its result with the records of the instances whose ids `used` picks out of it, and
    /// the guard that puts those instances back to their records' state when dropped
    /// ([`Tentative`]). The caller commits against those records' revisions, applies what it
    /// wrote ([`InstanceCache::written`]), then drops the guard.
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
    use flotilla_control::instances::{Capacity, Reservation};
    use flotilla_model::shapes::ContainerInstance;

    fn record(id: &str, tasks: usize) -> InstanceRecord {
        let mut r = InstanceRecord {
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
        };
        for n in 0..tasks {
            r.reserve(
                &format!("t{n}"),
                Reservation {
                    task_arn: format!("arn:t{n}"),
                    cpu: 256,
                    memory: 512,
                    group: "g".into(),
                    ..Reservation::default()
                },
            );
        }
        r
    }

    fn kv(key: &str, value: Vec<u8>, rev: u64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value,
            create_revision: rev,
            mod_revision: rev,
        }
    }

    fn put(id: &str, tasks: usize, rev: u64) -> Event {
        let key = format!("{CONTAINER_INSTANCES}c/{id}");
        Event::Put(kv(
            &key,
            serde_json::to_vec(&record(id, tasks)).unwrap(),
            rev,
        ))
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

    #[test]
    fn the_kept_cluster_follows_the_records_and_never_steps_back() {
        let cache = InstanceCache::default();
        cache.load(&[], &[]);
        cache.apply(&put("a", 0, 5));
        cache.apply(&put("b", 0, 6));
        assert_eq!(remaining_cpu(&cache, "a"), 4096);
        // A newer record of a replaces it in the kept cluster; an older one is ignored.
        cache.apply(&put("a", 2, 8));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        cache.apply(&put("a", 0, 7));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        // A plan's tentative reservation is dropped by settle; a write-through keeps it.
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
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        drop(tentative);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512);
        let mut next = (*used["a"].record).clone();
        next.reserve(
            "t9",
            Reservation {
                cpu: 1024,
                memory: 1024,
                ..Reservation::default()
            },
        );
        cache.written(&[(used["a"].key.clone(), next)], 9);
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        // The watch bringing the same write again changes nothing; a delete removes it.
        cache.apply(&put("a", 0, 9));
        assert_eq!(remaining_cpu(&cache, "a"), 4096 - 512 - 1024);
        cache.apply(&Event::Delete {
            key: format!("{CONTAINER_INSTANCES}c/a"),
            revision: 10,
        });
        assert_eq!(cache.records("c").len(), 1);
        assert_eq!(remaining_cpu(&cache, "a"), 0);
        assert_eq!(remaining_cpu(&cache, "b"), 4096);
    }
}
