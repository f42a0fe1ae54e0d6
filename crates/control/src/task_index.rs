//! The task index: what the API and the agent sessions ask of a cluster's tasks, kept up to
//! date change by change instead of found by reading every task record on every call.
//!
//! What this is: [`TaskIndex`], fed every put and delete of a task record (in store revision
//! order, by the server's one watch of `tasks/`), keeps per cluster each task's
//! [`TaskSummary`] (what ListTasks filters on) in task id order, the cluster's
//! [`TaskCounts`] (DescribeClusters' running and pending counts by launch type), each
//! container instance's [`InstanceTaskCounts`] (DescribeContainerInstances'), and per host
//! (the instance's cluster, the managed pool for Fargate, and its id) the tasks not STOPPED
//! that run there (an agent session's full state). Strings repeated across tasks (cluster,
//! instance, family, group, startedBy) are shared, so a million tasks cost a few hundred bytes
//! each.
//!
//! Invariant: after any sequence of [`TaskIndex::put`] and [`TaskIndex::remove`], every count
//! equals what counting the current summaries from scratch gives (a property test checks it),
//! and a host's tasks are exactly the current tasks on it that are not STOPPED.
//!
//! What this is not: the source of truth (the store is) or a cache of records: it holds no
//! task's body, so a reader that needs one reads it from the store.

use crate::instances::{Held, Reservation};
use crate::tasks::{TaskHead, TaskRecord};
use flotilla_model::shapes::LaunchType;
use flotilla_model::status::TaskStatus;
use flotilla_protocol::DesiredStatus;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

/// What the index keeps of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    /// The task's ARN (shared with what the instance cache and the scheduler keep of the task).
    pub arn: Arc<str>,
    /// The cluster of the instance that runs it (the managed pool for Fargate).
    pub instance_cluster: Arc<str>,
    /// The container instance id.
    pub instance_id: Arc<str>,
    /// The desired status ([`TaskRecord::desired`]).
    pub desired: DesiredStatus,
    /// The observed status.
    pub last: TaskStatus,
    /// The launch type.
    pub launch_type: Option<LaunchType>,
    /// The task definition family.
    pub family: Arc<str>,
    /// `startedBy`.
    pub started_by: Option<Arc<str>>,
    /// `group` (`service:NAME` for a service's tasks).
    pub group: Option<Arc<str>>,
    /// What it holds on its instance while it has not stopped.
    pub hold: Hold,
    /// Its assignment's version (0 without one): it grows with every change of its desired
    /// state.
    pub version: u64,
    /// `stoppedAt`, once it has stopped.
    pub stopped_at: Option<flotilla_model::Timestamp>,
}

/// What a task holds on its instance (its record's [`Reservation`], its strings shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hold {
    /// CPU units.
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    /// Static TCP host ports.
    pub ports: Box<[u16]>,
    /// Static UDP host ports.
    pub ports_udp: Box<[u16]>,
    /// The placement group (`family:NAME` when the task has no `group`).
    pub group: Arc<str>,
    /// The task definition revision.
    pub revision: u32,
}

impl TaskSummary {
    /// Whether it has stopped.
    pub fn is_stopped(&self) -> bool {
        self.last == TaskStatus::Stopped
    }

    fn fargate_slot(&self) -> usize {
        usize::from(self.launch_type == Some(LaunchType::Fargate))
    }
}

/// A cluster's task counts, as DescribeClusters reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Tasks whose lastStatus is RUNNING: EC2/EXTERNAL, then Fargate.
    pub running: [i32; 2],
    /// Tasks whose lastStatus is PENDING: EC2/EXTERNAL, then Fargate.
    pub pending: [i32; 2],
    /// Tasks that have not STOPPED, in any status.
    pub unstopped: i32,
}

impl TaskCounts {
    fn of(s: &TaskSummary) -> TaskCounts {
        let mut c = TaskCounts::default();
        match s.last {
            TaskStatus::Running => c.running[s.fargate_slot()] = 1,
            TaskStatus::Pending => c.pending[s.fargate_slot()] = 1,
            _ => {}
        }
        c.unstopped = i32::from(!s.is_stopped());
        c
    }

    fn add(&mut self, o: TaskCounts, sign: i32) {
        for i in 0..2 {
            self.running[i] += sign * o.running[i];
            self.pending[i] += sign * o.pending[i];
        }
        self.unstopped += sign * o.unstopped;
    }
}

/// One container instance's task counts, as DescribeContainerInstances reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceTaskCounts {
    /// Tasks desired RUNNING that have not stopped.
    pub running: i32,
    /// Tasks whose lastStatus is PENDING.
    pub pending: i32,
}

impl InstanceTaskCounts {
    fn of(s: &TaskSummary) -> InstanceTaskCounts {
        InstanceTaskCounts {
            running: i32::from(s.desired == DesiredStatus::Running && !s.is_stopped()),
            pending: i32::from(s.last == TaskStatus::Pending),
        }
    }
}

#[derive(Debug, Default)]
struct ClusterTasks {
    /// By task id (the same string as in `groups` and the index's `hosts`).
    tasks: BTreeMap<Arc<str>, TaskSummary>,
    counts: TaskCounts,
    /// By instance id (the task's `instance_id`, whatever cluster that instance is in).
    instances: HashMap<Arc<str>, InstanceTaskCounts>,
    /// The ids of each group's tasks (`service:NAME` for a service's), stopped ones included.
    groups: HashMap<Arc<str>, BTreeSet<Arc<str>>>,
}

/// A host: (the instance's cluster, its id).
type Host = (Arc<str>, Arc<str>);

/// A task on a host: (the task's cluster, its id).
type HostTask = (Arc<str>, Arc<str>);

/// The index; see the module documentation.
#[derive(Debug, Default)]
pub struct TaskIndex {
    clusters: HashMap<Arc<str>, ClusterTasks>,
    /// The tasks not STOPPED on each host: (task cluster, task id).
    hosts: HashMap<Host, BTreeSet<HostTask>>,
    names: HashSet<Arc<str>>,
}

impl TaskIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(a.clone());
        a
    }

    /// The summary of a record, its strings shared with the index's.
    pub fn summarize(&mut self, t: &TaskHead) -> TaskSummary {
        self.summary_of(t, t.arn().into())
    }

    /// [`TaskIndex::summarize`], with `arn` (the record's) as its ARN string.
    fn summary_of(&mut self, t: &TaskHead, arn: Arc<str>) -> TaskSummary {
        TaskSummary {
            arn,
            instance_cluster: self.intern(t.instance_cluster()),
            instance_id: self.intern(&t.instance_id),
            desired: t.desired(),
            last: t.last_status.0,
            launch_type: t.task.launch_type,
            family: self.intern(&t.reservation.family),
            started_by: t.task.started_by.as_deref().map(|s| self.intern(s)),
            group: t.task.group.as_deref().map(|s| self.intern(s)),
            hold: Hold {
                cpu: t.reservation.cpu,
                memory: t.reservation.memory,
                ports: t.reservation.ports.clone().into_boxed_slice(),
                ports_udp: t.reservation.ports_udp.clone().into_boxed_slice(),
                group: self.intern(&t.reservation.group),
                revision: t.reservation.revision,
            },
            version: t.assignment_version(),
            stopped_at: t.task.stopped_at,
        }
    }

    /// The record of task `id` of `cluster` was written: returns its summary before, if any.
    pub fn put(&mut self, cluster: &str, id: &str, t: &TaskRecord) -> Option<TaskSummary> {
        self.put_head(cluster, id, &TaskHead::of(t))
    }

    /// [`TaskIndex::put`] of a record's [`TaskHead`]. The task keeps the ARN string it had (a
    /// task's ARN never changes, and the instance cache shares it).
    pub fn put_head(&mut self, cluster: &str, id: &str, t: &TaskHead) -> Option<TaskSummary> {
        let arn = match self.get(cluster, id) {
            Some(prior) if *prior.arn == *t.arn() => prior.arn.clone(),
            _ => t.arn().into(),
        };
        let s = self.summary_of(t, arn);
        self.put_summary(cluster, id, s)
    }

    /// Task `id` of `cluster`'s summary.
    pub fn get(&self, cluster: &str, id: &str) -> Option<&TaskSummary> {
        self.clusters.get(cluster)?.tasks.get(id)
    }

    /// [`TaskIndex::put`] of a summary.
    pub fn put_summary(&mut self, cluster: &str, id: &str, s: TaskSummary) -> Option<TaskSummary> {
        let old = self.remove(cluster, id);
        let cluster = self.intern(cluster);
        let id: Arc<str> = Arc::from(id);
        if !s.is_stopped() {
            self.hosts
                .entry((s.instance_cluster.clone(), s.instance_id.clone()))
                .or_default()
                .insert((cluster.clone(), id.clone()));
        }
        let c = self.clusters.entry(cluster).or_default();
        c.counts.add(TaskCounts::of(&s), 1);
        let i = c.instances.entry(s.instance_id.clone()).or_default();
        let add = InstanceTaskCounts::of(&s);
        i.running += add.running;
        i.pending += add.pending;
        if let Some(g) = &s.group {
            c.groups.entry(g.clone()).or_default().insert(id.clone());
        }
        c.tasks.insert(id, s);
        old
    }

    /// The record of task `id` of `cluster` was deleted: returns its summary, if it had one.
    pub fn remove(&mut self, cluster: &str, id: &str) -> Option<TaskSummary> {
        let c = self.clusters.get_mut(cluster)?;
        let old = c.tasks.remove(id)?;
        c.counts.add(TaskCounts::of(&old), -1);
        let sub = InstanceTaskCounts::of(&old);
        if let Some(i) = c.instances.get_mut(&old.instance_id) {
            i.running -= sub.running;
            i.pending -= sub.pending;
            if *i == InstanceTaskCounts::default() {
                c.instances.remove(&old.instance_id);
            }
        }
        if let Some(g) = &old.group {
            if let Some(set) = c.groups.get_mut(g) {
                set.remove(id);
                if set.is_empty() {
                    c.groups.remove(g);
                }
            }
        }
        if c.tasks.is_empty() {
            self.clusters.remove(cluster);
        }
        let host = (old.instance_cluster.clone(), old.instance_id.clone());
        if let Some(set) = self.hosts.get_mut(&host) {
            set.remove(&(Arc::from(cluster), Arc::from(id)));
            if set.is_empty() {
                self.hosts.remove(&host);
            }
        }
        Some(old)
    }

    /// Forgets everything (before loading a fresh listing).
    pub fn clear(&mut self) {
        self.clusters.clear();
        self.hosts.clear();
    }

    /// A cluster's counts.
    pub fn counts(&self, cluster: &str) -> TaskCounts {
        self.clusters
            .get(cluster)
            .map(|c| c.counts)
            .unwrap_or_default()
    }

    /// An instance's counts among `cluster`'s tasks.
    pub fn instance_counts(&self, cluster: &str, instance_id: &str) -> InstanceTaskCounts {
        self.clusters
            .get(cluster)
            .and_then(|c| c.instances.get(instance_id))
            .copied()
            .unwrap_or_default()
    }

    /// `cluster`'s tasks in id order, starting after id `after`.
    pub fn tasks<'a>(
        &'a self,
        cluster: &str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a TaskSummary)> + 'a {
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.clusters
            .get(cluster)
            .into_iter()
            .flat_map(move |c| c.tasks.range::<str, _>((lower, Bound::Unbounded)))
            .map(|(id, s)| (&**id, s))
    }

    /// The ids of `cluster`'s tasks in `group` (stopped ones included), in id order.
    pub fn group_tasks(&self, cluster: &str, group: &str) -> Vec<String> {
        self.clusters
            .get(cluster)
            .and_then(|c| c.groups.get(group))
            .map(|set| set.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    /// The tasks STOPPED at or before `cutoff` (epoch seconds), as (cluster, task id): what
    /// the sweeper deletes once their retention is over, found without reading the store.
    pub fn stopped_by(&self, cutoff: flotilla_model::Timestamp) -> Vec<(String, String)> {
        self.clusters
            .iter()
            .flat_map(|(cluster, c)| {
                c.tasks
                    .iter()
                    .filter(|(_, s)| s.is_stopped() && s.stopped_at.is_some_and(|t| t <= cutoff))
                    .map(|(id, _)| (cluster.to_string(), id.to_string()))
            })
            .collect()
    }

    /// How many tasks `cluster` has in the index.
    pub fn len(&self, cluster: &str) -> usize {
        self.clusters.get(cluster).map_or(0, |c| c.tasks.len())
    }

    /// Whether the index holds no task.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// The tasks not STOPPED on the host `id` of `instance_cluster`: (task cluster, task id).
    pub fn host_tasks(&self, instance_cluster: &str, id: &str) -> Vec<(String, String)> {
        let key: Host = (Arc::from(instance_cluster), Arc::from(id));
        self.hosts
            .get(&key)
            .map(|set| {
                set.iter()
                    .map(|(c, i)| (c.to_string(), i.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the tasks not STOPPED on the host `id` of `instance_cluster` hold, by task ARN.
    pub fn held(&self, instance_cluster: &str, id: &str) -> Held {
        let key: Host = (Arc::from(instance_cluster), Arc::from(id));
        let mut out = Held::new();
        for (cluster, tid) in self.hosts.get(&key).into_iter().flatten() {
            if let Some(s) = self.clusters.get(cluster).and_then(|c| c.tasks.get(tid)) {
                out.insert(s.arn.clone(), s.reservation());
            }
        }
        out
    }

    /// What every host of `instance_cluster` with a task not STOPPED holds, by instance id.
    pub fn held_by_hosts(&self, instance_cluster: &str) -> HashMap<String, Held> {
        let mut out: HashMap<String, Held> = HashMap::new();
        for ((c, id), set) in &self.hosts {
            if &**c != instance_cluster {
                continue;
            }
            let held = out.entry(id.to_string()).or_default();
            for (cluster, tid) in set {
                if let Some(s) = self.clusters.get(cluster).and_then(|c| c.tasks.get(tid)) {
                    held.insert(s.arn.clone(), s.reservation());
                }
            }
        }
        out
    }
}

impl TaskSummary {
    /// What it holds, as a record's [`Reservation`].
    pub fn reservation(&self) -> Reservation {
        Reservation {
            task_arn: self.arn.clone(),
            cpu: self.hold.cpu,
            memory: self.hold.memory,
            ports: self.hold.ports.to_vec(),
            ports_udp: self.hold.ports_udp.to_vec(),
            group: self.hold.group.clone(),
            family: self.family.clone(),
            revision: self.hold.revision,
            started_by: self.started_by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn summary(host: u8, last: TaskStatus, desired: DesiredStatus, fargate: bool) -> TaskSummary {
        TaskSummary {
            arn: "arn".into(),
            instance_cluster: Arc::from(if fargate { "pool" } else { "c" }),
            instance_id: Arc::from(format!("i{host}").as_str()),
            desired,
            last,
            launch_type: Some(if fargate {
                LaunchType::Fargate
            } else {
                LaunchType::Ec2
            }),
            family: Arc::from("f"),
            started_by: None,
            // Tasks of even hosts are a service's; the others have no group.
            group: host.is_multiple_of(2).then(|| Arc::from("service:s")),
            hold: Hold {
                cpu: 256,
                memory: u32::from(host) + 1,
                ..Hold::default()
            },
            version: 1,
            stopped_at: (last == TaskStatus::Stopped).then_some(1000.0 + f64::from(host)),
        }
    }

    /// Counts from scratch, as the scans the index replaces computed them.
    fn recount(
        model: &BTreeMap<(String, String), TaskSummary>,
        cluster: &str,
    ) -> (TaskCounts, HashMap<String, InstanceTaskCounts>) {
        let mut c = TaskCounts::default();
        let mut per: HashMap<String, InstanceTaskCounts> = HashMap::new();
        for ((cl, _), s) in model {
            if cl != cluster {
                continue;
            }
            let slot = usize::from(s.launch_type == Some(LaunchType::Fargate));
            match s.last {
                TaskStatus::Running => c.running[slot] += 1,
                TaskStatus::Pending => c.pending[slot] += 1,
                _ => {}
            }
            if s.last != TaskStatus::Stopped {
                c.unstopped += 1;
            }
            let i = per.entry(s.instance_id.to_string()).or_default();
            if s.desired == DesiredStatus::Running && s.last != TaskStatus::Stopped {
                i.running += 1;
            }
            if s.last == TaskStatus::Pending {
                i.pending += 1;
            }
        }
        per.retain(|_, v| *v != InstanceTaskCounts::default());
        (c, per)
    }

    #[test]
    fn a_task_moves_through_the_counts() {
        let mut ix = TaskIndex::new();
        let run = DesiredStatus::Running;
        ix.put_summary("c", "t1", summary(1, TaskStatus::Pending, run, false));
        assert_eq!(ix.counts("c").pending, [1, 0]);
        assert_eq!(ix.host_tasks("c", "i1"), vec![("c".into(), "t1".into())]);
        ix.put_summary("c", "t1", summary(1, TaskStatus::Running, run, false));
        assert_eq!(ix.counts("c").running, [1, 0]);
        assert_eq!(ix.counts("c").pending, [0, 0]);
        assert_eq!(ix.instance_counts("c", "i1").running, 1);
        let held = ix.held("c", "i1");
        assert_eq!(held.len(), 1);
        assert_eq!((held["arn"].cpu, held["arn"].memory), (256, 2));
        ix.put_summary(
            "c",
            "t1",
            summary(1, TaskStatus::Stopped, DesiredStatus::Stopped, false),
        );
        assert_eq!(ix.counts("c"), TaskCounts::default());
        assert!(ix.host_tasks("c", "i1").is_empty());
        assert!(ix.held("c", "i1").is_empty());
        assert_eq!(ix.len("c"), 1);
        ix.remove("c", "t1");
        assert_eq!(ix.len("c"), 0);
        assert!(ix.is_empty());
    }

    #[test]
    fn a_task_keeps_its_arn_string_and_what_it_holds_shares_the_index_s_strings() {
        let mut ix = TaskIndex::new();
        let mut t = TaskRecord::default();
        t.task.task_arn = Some("arn:aws:ecs:us-east-1:1:task/c/t1".into());
        t.task.group = Some("service:web".into());
        t.cluster = "c".into();
        t.instance_id = "i1".into();
        t.reservation.task_arn = "arn:aws:ecs:us-east-1:1:task/c/t1".into();
        t.reservation.group = "service:web".into();
        t.reservation.family = "web".into();
        ix.put("c", "t1", &t);
        let arn = ix.get("c", "t1").unwrap().arn.clone();
        t.last_status = crate::tasks::Status(TaskStatus::Running);
        let before = ix.put("c", "t1", &t).unwrap();
        let now = ix.get("c", "t1").unwrap();
        assert!(Arc::ptr_eq(&before.arn, &arn));
        assert!(Arc::ptr_eq(&now.arn, &arn), "a report keeps the ARN string");
        assert_eq!(now.last, TaskStatus::Running);
        let r = now.reservation();
        assert!(Arc::ptr_eq(&r.task_arn, &arn));
        assert!(Arc::ptr_eq(&r.group, &now.hold.group));
        assert!(Arc::ptr_eq(&r.family, &now.family));
        let held = ix.held("c", "i1");
        let (k, _) = held.get_key_value(&*arn).unwrap();
        assert!(Arc::ptr_eq(k, &arn));
    }

    #[test]
    fn only_tasks_stopped_by_the_cutoff_are_due_for_the_sweeper() {
        let mut ix = TaskIndex::new();
        let (run, stop) = (DesiredStatus::Running, DesiredStatus::Stopped);
        // Stopped at 1001, 1002 and 1003 (the host's number); t4 still runs, t5 is stopping.
        ix.put_summary("a", "t1", summary(1, TaskStatus::Stopped, stop, false));
        ix.put_summary("b", "t2", summary(2, TaskStatus::Stopped, stop, false));
        ix.put_summary("b", "t3", summary(3, TaskStatus::Stopped, stop, false));
        ix.put_summary("b", "t4", summary(1, TaskStatus::Running, run, false));
        ix.put_summary("b", "t5", summary(1, TaskStatus::Running, stop, false));
        let mut due = ix.stopped_by(1002.0);
        due.sort();
        assert_eq!(
            due,
            [
                ("a".to_string(), "t1".to_string()),
                ("b".into(), "t2".into())
            ]
        );
        assert!(ix.stopped_by(1000.0).is_empty());
        assert_eq!(ix.stopped_by(f64::MAX).len(), 3);
        ix.remove("a", "t1");
        assert_eq!(ix.stopped_by(1002.0), [("b".to_string(), "t2".to_string())]);
    }

    #[test]
    fn tasks_page_in_id_order_after_a_token() {
        let mut ix = TaskIndex::new();
        for id in ["b", "a", "d", "c"] {
            ix.put_summary(
                "c",
                id,
                summary(1, TaskStatus::Running, DesiredStatus::Running, false),
            );
        }
        let all: Vec<&str> = ix.tasks("c", None).map(|(id, _)| id).collect();
        assert_eq!(all, ["a", "b", "c", "d"]);
        let after: Vec<&str> = ix.tasks("c", Some("b")).map(|(id, _)| id).collect();
        assert_eq!(after, ["c", "d"]);
        // A token whose task is gone still pages on from where it was.
        let gone: Vec<&str> = ix.tasks("c", Some("bb")).map(|(id, _)| id).collect();
        assert_eq!(gone, ["c", "d"]);
        assert_eq!(ix.tasks("other", None).count(), 0);
    }

    fn status() -> impl Strategy<Value = TaskStatus> {
        prop_oneof![
            Just(TaskStatus::Provisioning),
            Just(TaskStatus::Pending),
            Just(TaskStatus::Running),
            Just(TaskStatus::Stopped),
        ]
    }

    fn desired() -> impl Strategy<Value = DesiredStatus> {
        prop_oneof![Just(DesiredStatus::Running), Just(DesiredStatus::Stopped)]
    }

    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, u8, u8, TaskStatus, DesiredStatus, bool),
        Remove(u8, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..2, 0u8..12, 0u8..4, status(), desired(), any::<bool>())
                .prop_map(|(c, t, h, s, d, f)| Step::Put(c, t, h, s, d, f)),
            1 => (0u8..2, 0u8..12).prop_map(|(c, t)| Step::Remove(c, t)),
        ]
    }

    proptest! {
        #[test]
        fn counts_always_equal_a_recount(steps in proptest::collection::vec(step(), 0..120)) {
            let mut ix = TaskIndex::new();
            let mut model: BTreeMap<(String, String), TaskSummary> = BTreeMap::new();
            for s in steps {
                match s {
                    Step::Put(c, t, h, last, d, f) => {
                        let (c, t) = (format!("c{c}"), format!("t{t}"));
                        let mut sm = summary(h, last, d, f);
                        sm.arn = format!("arn:{c}/{t}").into();
                        ix.put_summary(&c, &t, sm.clone());
                        model.insert((c, t), sm);
                    }
                    Step::Remove(c, t) => {
                        let (c, t) = (format!("c{c}"), format!("t{t}"));
                        let had = model.remove(&(c.clone(), t.clone()));
                        prop_assert_eq!(ix.remove(&c, &t), had);
                    }
                }
            }
            for cluster in ["c0", "c1"] {
                let (counts, per) = recount(&model, cluster);
                prop_assert_eq!(ix.counts(cluster), counts);
                for h in 0..4 {
                    let id = format!("i{h}");
                    prop_assert_eq!(
                        ix.instance_counts(cluster, &id),
                        per.get(&id).copied().unwrap_or_default()
                    );
                }
                let listed: Vec<String> = ix.tasks(cluster, None).map(|(id, _)| id.to_string()).collect();
                let expected: Vec<String> = model.keys().filter(|(c, _)| c == cluster).map(|(_, t)| t.clone()).collect();
                prop_assert_eq!(listed, expected);
                let grouped: Vec<String> = model
                    .iter()
                    .filter(|((c, _), s)| c == cluster && s.group.as_deref() == Some("service:s"))
                    .map(|((_, t), _)| t.clone())
                    .collect();
                prop_assert_eq!(ix.group_tasks(cluster, "service:s"), grouped);
            }
            for (hc, h) in [("c", 0u8), ("c", 1), ("c", 2), ("c", 3), ("pool", 0), ("pool", 1), ("pool", 2), ("pool", 3)] {
                let id = format!("i{h}");
                let mut expected: Vec<(String, String)> = model
                    .iter()
                    .filter(|(_, s)| &*s.instance_cluster == hc && *s.instance_id == *id && s.last != TaskStatus::Stopped)
                    .map(|((c, t), _)| (c.clone(), t.clone()))
                    .collect();
                expected.sort();
                prop_assert_eq!(ix.host_tasks(hc, &id), expected);
                let held: Vec<(String, u32)> = model
                    .values()
                    .filter(|s| &*s.instance_cluster == hc && *s.instance_id == *id && s.last != TaskStatus::Stopped)
                    .map(|s| (s.arn.to_string(), s.hold.memory))
                    .collect();
                let indexed = ix.held(hc, &id);
                prop_assert_eq!(indexed.iter().map(|(a, r)| (a.to_string(), r.memory)).collect::<Vec<_>>(), held.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect::<Vec<_>>());
                let by_hosts = ix.held_by_hosts(hc);
                prop_assert_eq!(by_hosts.get(&id).cloned().unwrap_or_default(), indexed);
            }
        }
    }
}
