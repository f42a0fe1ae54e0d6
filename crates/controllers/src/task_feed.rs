//! The server's one watch of task records ([`TaskFeed`]): it keeps this replica's
//! [`TaskIndex`] (what ListTasks, DescribeClusters and DescribeContainerInstances count and
//! filter) and hands each change of a task to the agent session of the host that runs it.
//!
//! Why: before it, every call of those operations read and decoded every task record of the
//! cluster, and every agent session watched its whole cluster's task records and decoded every
//! change to find its own: with 10,000 hosts, each task write was decoded 10,000 times. Now a
//! change is decoded once here and goes to one session ([`TaskFeed::subscribe`]).
//!
//! How: it lists `tasks/` at revision N, then watches the whole store from N (every key, so
//! its applied revision follows the store's and a reader can wait for it: [`TaskFeed::caught_up`]),
//! applying task puts and deletes to the index and sending each to the subscribers of the host
//! the task runs on (before and after the change, when it moved). A watch that fails or is
//! compacted relists, and every subscriber is told to [`FeedEvent::Resync`]. It starts on first
//! use and ends when the feed is dropped.
//!
//! The same watch keeps the replica's [`InstanceCache`] (the container instance records, their
//! custom attributes and placement guards, and what the tasks on each hold, which placement
//! plans on): it lists them after the tasks and hands the cache every change of theirs, and of
//! what a task holds ([`InstanceCache::task_changed`]); [`TaskFeed::caught_up`] covers both.
//!
//! Invariants: the index and the subscriptions change under one lock, never held across an
//! `.await`; a subscriber sees every change applied after it subscribed, in revision order; a
//! revision is told applied only once every event of it is (a transaction that creates many
//! tasks is one revision, and a reader of that revision sees all of them).
//! A reader that must see its own writes calls [`TaskFeed::caught_up`] first and falls back to
//! the store when the feed cannot say (it is not running yet, or the store's revision is one
//! the feed never sees, as on an etcd shared with other installations).

use crate::instance_cache::{self, InstanceCache, TaskHold};
use flotilla_control::keys::{ATTRIBUTES, CONTAINER_INSTANCES, PLACEMENT_GUARDS, TASKS};
use flotilla_control::task_index::{TaskIndex, TaskSummary};
use flotilla_control::tasks::{AssignmentOnly, TaskHead};
use flotilla_protocol::TaskAssignment;
use flotilla_store::{Event, Store};
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// One change for a host's session.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A task record of the host was written (`key` is its store key).
    Put {
        /// The task's key.
        key: String,
        /// Its assignment, when it has one (boxed: the other variants are small).
        assignment: Option<Box<TaskAssignment>>,
    },
    /// A task record that was the host's was deleted or moved away.
    Delete {
        /// The task's key.
        key: String,
    },
    /// The feed relisted: the session must send its full state again.
    Resync,
}

type Host = (String, String);

struct State {
    index: TaskIndex,
    subscribers: HashMap<Host, Vec<(u64, mpsc::UnboundedSender<FeedEvent>)>>,
    next: u64,
}

/// See the module documentation.
pub struct TaskFeed {
    state: Mutex<State>,
    /// The store revision the index has applied (0: not loaded yet).
    applied: watch::Sender<u64>,
    /// The applied revision at which a reader last waited [`CATCH_UP_WAIT`] in vain
    /// ([`NOT_STALLED`] otherwise): see [`catch_up_wait`].
    stalled_at: AtomicU64,
    started: OnceLock<()>,
    /// The container instances and their custom attributes, fed by the same watch.
    pub instances: InstanceCache,
}

impl Default for TaskFeed {
    fn default() -> Self {
        TaskFeed {
            state: Mutex::new(State {
                index: TaskIndex::new(),
                subscribers: HashMap::new(),
                next: 0,
            }),
            applied: watch::channel(0).0,
            stalled_at: AtomicU64::new(NOT_STALLED),
            started: OnceLock::new(),
            instances: InstanceCache::default(),
        }
    }
}

/// A session's subscription to its host's changes; unsubscribes when dropped.
pub struct Subscription {
    feed: Weak<TaskFeed>,
    host: Host,
    id: u64,
    /// The changes, from the moment of subscribing.
    pub events: mpsc::UnboundedReceiver<FeedEvent>,
    /// The keys of the host's tasks not STOPPED when it subscribed.
    pub keys: Vec<String>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(feed) = self.feed.upgrade() {
            let mut st = feed.lock();
            if let Some(v) = st.subscribers.get_mut(&self.host) {
                v.retain(|(id, _)| *id != self.id);
                if v.is_empty() {
                    st.subscribers.remove(&self.host);
                }
            }
        }
    }
}

/// `tasks/CLUSTER/ID` -> (cluster, id).
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(TASKS)?.split_once('/')
}

/// How long a reader waits for the feed to reach the store's revision before it reads the
/// store itself.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// How long a reader waits when the feed has not moved since a reader last waited in vain: the
/// store's watch is stalled (an etcd member cut off, say), so every reader goes to the store
/// almost at once instead of each waiting [`CATCH_UP_WAIT`] on the hot path.
pub const STALLED_WAIT: Duration = Duration::from_millis(20);

/// `stalled_at` when no wait has failed since the feed last moved.
const NOT_STALLED: u64 = u64::MAX;

/// How long a reader waits for the feed: [`STALLED_WAIT`] when it still stands at the revision
/// where a wait last failed (`stalled_at`), [`CATCH_UP_WAIT`] otherwise (it is moving, or no
/// wait has failed).
pub fn catch_up_wait(stalled_at: u64, applied: u64) -> Duration {
    if stalled_at == applied {
        STALLED_WAIT
    } else {
        CATCH_UP_WAIT
    }
}

impl TaskFeed {
    /// Tells readers every revision up to `rev` is applied (it never moves back).
    fn mark_applied(&self, rev: u64) {
        self.instances.applied(rev);
        self.applied.send_if_modified(|a| {
            let newer = rev > *a;
            if newer {
                *a = rev;
            }
            newer
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is applied whole before it is released.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the watch (once) on `store`.
    pub fn ensure_started(self: &Arc<Self>, store: Arc<dyn Store>) {
        if self.started.set(()).is_err() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        handle.spawn(run(weak, store));
    }

    /// Waits until the index has applied the store's current revision (at most
    /// [`catch_up_wait`]); false when it did not (read the store instead).
    pub async fn caught_up(self: &Arc<Self>, store: &Arc<dyn Store>) -> bool {
        self.ensure_started(store.clone());
        let Ok(rev) = store.revision().await else {
            return false;
        };
        let mut rx = self.applied.subscribe();
        let applied = *rx.borrow();
        let wait = catch_up_wait(self.stalled_at.load(Ordering::Relaxed), applied);
        let ok = tokio::time::timeout(wait, rx.wait_for(|a| *a >= rev && *a > 0))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok {
            self.stalled_at.store(NOT_STALLED, Ordering::Relaxed);
        } else {
            self.stalled_at.store(*rx.borrow(), Ordering::Relaxed);
        }
        ok
    }

    /// Reads the index.
    pub fn read<T>(&self, f: impl FnOnce(&TaskIndex) -> T) -> T {
        f(&self.lock().index)
    }

    /// Subscribes to the changes of the tasks on host `id` of `instance_cluster`.
    pub fn subscribe(self: &Arc<Self>, instance_cluster: &str, id: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let host = (instance_cluster.to_string(), id.to_string());
        let mut st = self.lock();
        st.next += 1;
        let sub_id = st.next;
        st.subscribers
            .entry(host.clone())
            .or_default()
            .push((sub_id, tx));
        let keys = st
            .index
            .host_tasks(instance_cluster, id)
            .into_iter()
            .map(|(c, t)| flotilla_control::keys::task_key(&c, &t))
            .collect();
        Subscription {
            feed: Arc::downgrade(self),
            host,
            id: sub_id,
            events: rx,
            keys,
        }
    }

    fn send(st: &mut State, host: &Host, ev: &FeedEvent) {
        if let Some(v) = st.subscribers.get_mut(host) {
            v.retain(|(_, tx)| tx.send(ev.clone()).is_ok());
        }
    }

    fn apply(&self, ev: &Event) {
        let key = ev.key();
        if instance_cache::is_cached_key(key) {
            self.instances.apply(ev);
            return;
        }
        let Some((cluster, id)) = split_key(key) else {
            return;
        };
        let mut st = self.lock();
        match ev {
            Event::Put(kv) => {
                // The head only: most writes are reports, which change the status and not the
                // assignment, and the host's session needs the assignment only when its
                // version grew.
                let Ok(t) = serde_json::from_slice::<TaskHead>(&kv.value) else {
                    return;
                };
                let old = st.index.put_head(cluster, id, &t);
                let host = (t.instance_cluster().to_string(), t.instance_id.clone());
                // What it holds, from the index's summary: its strings are the index's, and
                // the instance cache keeps the same ones.
                let now = st.index.get(cluster, id).and_then(hold_of);
                let holds = (old.as_ref().and_then(hold_of), now);
                let mut told = false;
                if let Some(o) = &old {
                    let was = (o.instance_cluster.to_string(), o.instance_id.to_string());
                    if was != host {
                        Self::send(
                            &mut st,
                            &was,
                            &FeedEvent::Delete {
                                key: key.to_string(),
                            },
                        );
                    } else {
                        told = o.version == t.assignment_version();
                    }
                }
                if !told && st.subscribers.contains_key(&host) {
                    let assignment = serde_json::from_slice::<AssignmentOnly>(&kv.value)
                        .ok()
                        .and_then(|a| a.assignment);
                    Self::send(
                        &mut st,
                        &host,
                        &FeedEvent::Put {
                            key: key.to_string(),
                            assignment: assignment.map(Box::new),
                        },
                    );
                }
                drop(st);
                self.instances
                    .task_changed(holds.0.as_ref(), holds.1.as_ref());
            }
            Event::Delete { .. } => {
                if let Some(o) = st.index.remove(cluster, id) {
                    let was = (o.instance_cluster.to_string(), o.instance_id.to_string());
                    Self::send(
                        &mut st,
                        &was,
                        &FeedEvent::Delete {
                            key: key.to_string(),
                        },
                    );
                    drop(st);
                    self.instances.task_changed(hold_of(&o).as_ref(), None);
                }
            }
        }
    }

    /// Replaces the index with a listing read at `revision`.
    fn load(&self, items: &[flotilla_store::KeyValue], revision: u64) {
        let mut st = self.lock();
        st.index.clear();
        for kv in items {
            let Some((cluster, id)) = split_key(&kv.key) else {
                continue;
            };
            if let Ok(t) = serde_json::from_slice::<TaskHead>(&kv.value) {
                st.index.put_head(cluster, id, &t);
            }
        }
        let hosts: Vec<Host> = st.subscribers.keys().cloned().collect();
        for h in hosts {
            Self::send(&mut st, &h, &FeedEvent::Resync);
        }
        drop(st);
        self.instances.applied(revision);
        self.applied.send_replace(revision.max(1));
    }
}

/// What a task of the index holds on its host (nothing once it has stopped).
fn hold_of(s: &TaskSummary) -> Option<TaskHold> {
    (!s.is_stopped()).then(|| TaskHold {
        host: (s.instance_cluster.to_string(), s.instance_id.to_string()),
        arn: s.arn.clone(),
        reservation: s.reservation(),
    })
}

async fn run(feed: Weak<TaskFeed>, store: Arc<dyn Store>) {
    loop {
        let page = match store.list(TASKS, None, 0).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "task feed: listing tasks failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Read after the tasks: the watch from the tasks' revision replays what changed in
        // between, which the cache applies only over older revisions.
        let others = match (
            store.list(CONTAINER_INSTANCES, None, 0).await,
            store.list(ATTRIBUTES, None, 0).await,
            store.list(PLACEMENT_GUARDS, None, 0).await,
        ) {
            (Ok(i), Ok(a), Ok(g)) => (i.items, a.items, g.items),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(error = %e, "task feed: listing instances failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        {
            let Some(f) = feed.upgrade() else { return };
            let held = page
                .items
                .iter()
                .filter_map(|kv| serde_json::from_slice::<TaskHead>(&kv.value).ok())
                .filter_map(|t| TaskHold::of_head(&t))
                .collect();
            f.instances.load(&others.0, &others.1, &others.2, held);
            f.load(&page.items, page.revision);
        }
        let mut stream = match store.watch("", page.revision).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "task feed: watch failed; relisting");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        'watching: loop {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            let Some(f) = feed.upgrade() else { return };
            let mut next = match next {
                Err(_) => continue, // quiet store: check the feed is still wanted
                Ok(n) => n,
            };
            // A revision is applied whole before it is told: one transaction (a group of
            // placements) is many events of one revision, and a reader waiting for that
            // revision must see them all. The backends deliver a revision's events together,
            // so once no event is ready the last one's revision is whole.
            loop {
                match next {
                    Some(Ok(ev)) => {
                        let rev = ev.revision();
                        f.mark_applied(rev.saturating_sub(1));
                        f.apply(&ev);
                        match stream.next().now_or_never() {
                            Some(n) => next = n,
                            None => {
                                f.mark_applied(rev);
                                break;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "task feed: watch ended; relisting");
                        break 'watching;
                    }
                    None => break 'watching,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_control::tasks::TaskRecord;
    use flotilla_store::{MemoryStore, Txn};

    #[test]
    fn a_reader_waits_briefly_only_while_the_feed_stands_where_a_wait_failed() {
        assert_eq!(catch_up_wait(NOT_STALLED, 0), CATCH_UP_WAIT);
        assert_eq!(catch_up_wait(NOT_STALLED, 42), CATCH_UP_WAIT);
        // A wait failed at 42 and the feed is still there: the watch is stalled.
        assert_eq!(catch_up_wait(42, 42), STALLED_WAIT);
        // It moved since: wait in full again.
        assert_eq!(catch_up_wait(42, 43), CATCH_UP_WAIT);
        assert!(STALLED_WAIT < CATCH_UP_WAIT);
    }

    fn record(cluster: &str, id: &str, instance: &str, version: u64) -> Vec<u8> {
        let t = TaskRecord {
            cluster: cluster.into(),
            id: id.into(),
            instance_id: instance.into(),
            assignment: Some(TaskAssignment {
                task_arn: format!("arn:{id}"),
                cluster_arn: String::new(),
                task_definition_arn: String::new(),
                version,
                desired_status: flotilla_protocol::DesiredStatus::Running,
                stop_reason: None,
                stop_code: None,
                network_mode: flotilla_model::shapes::NetworkMode::Bridge,
                cpu: None,
                memory: None,
                volumes: vec![],
                pid_mode: None,
                ipc_mode: None,
                containers: vec![],
                network: None,
                stop_grace_seconds: None,
                task_role_arn: None,
                service_name: None,
                enable_execute_command: false,
            }),
            ..TaskRecord::default()
        };
        serde_json::to_vec(&t).unwrap()
    }

    #[tokio::test]
    async fn a_host_gets_only_its_changes_and_readers_see_their_writes() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        store
            .txn(Txn::new().put("tasks/c/t1", record("c", "t1", "i1", 1)))
            .await
            .unwrap();
        let feed = Arc::new(TaskFeed::default());
        assert!(feed.caught_up(&store).await);
        let mut sub = feed.subscribe("c", "i1");
        assert_eq!(sub.keys, vec!["tasks/c/t1".to_string()]);
        store
            .txn(
                Txn::new()
                    .put("tasks/c/t2", record("c", "t2", "i2", 1))
                    .put("tasks/c/t1", record("c", "t1", "i1", 2)),
            )
            .await
            .unwrap();
        // Another key moves the revision too.
        store
            .txn(Txn::new().put("agent-beats/c/i1", b"{}".to_vec()))
            .await
            .unwrap();
        assert!(feed.caught_up(&store).await);
        assert_eq!(feed.read(|ix| ix.len("c")), 2);
        match sub.events.try_recv() {
            Ok(FeedEvent::Put { key, assignment }) => {
                assert_eq!(key, "tasks/c/t1");
                assert_eq!(assignment.map(|a| a.version), Some(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(sub.events.try_recv().is_err(), "only i1's changes");
        // A write that leaves the assignment's version as it was (an agent's report) is not
        // the session's business: it has that assignment.
        let mut reported: TaskRecord = serde_json::from_slice(&record("c", "t1", "i1", 2)).unwrap();
        reported.last_status =
            flotilla_control::tasks::Status(flotilla_model::status::TaskStatus::Running);
        store
            .txn(Txn::new().put("tasks/c/t1", serde_json::to_vec(&reported).unwrap()))
            .await
            .unwrap();
        assert!(feed.caught_up(&store).await);
        assert!(sub.events.try_recv().is_err(), "no event for a report");
        assert_eq!(
            feed.read(|ix| ix.host_tasks("c", "i1").len()),
            1,
            "the index has it"
        );
        store.txn(Txn::new().delete("tasks/c/t1")).await.unwrap();
        assert!(feed.caught_up(&store).await);
        assert!(matches!(
            sub.events.try_recv(),
            Ok(FeedEvent::Delete { key }) if key == "tasks/c/t1"
        ));
        drop(sub);
        assert!(feed.lock().subscribers.is_empty());
    }

    /// A transaction of many tasks is one revision: a reader waiting for it sees every task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revision_is_told_applied_only_whole() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Not an empty store (whose revision 0 the feed tells as 1).
        store
            .txn(Txn::new().put("agent-beats/c/i1", b"{}".to_vec()))
            .await
            .unwrap();
        let feed = Arc::new(TaskFeed::default());
        assert!(feed.caught_up(&store).await);
        for round in 0..50 {
            let mut txn = Txn::new();
            for n in 0..40 {
                let id = format!("t{round}-{n}");
                txn = txn.put(format!("tasks/c/{id}"), record("c", &id, "i1", 1));
            }
            store.txn(txn).await.unwrap();
            assert!(feed.caught_up(&store).await);
            assert_eq!(feed.read(|ix| ix.len("c")), (round + 1) * 40);
        }
    }
}
