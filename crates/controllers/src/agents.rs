//! What the server knows about its agents in memory, and the background loops that keep the
//! stored view of them honest.
//!
//! - [`Agents`]: which session of this process is the current one of each container instance,
//!   and the latest usage sample per task. Nothing here is durable and nothing here is the
//!   region's view: another replica may hold an instance's session. `agentConnected` is durable
//!   (it is written to the instance record).
//! - Beats ([`beat`]): every session, on whatever replica, puts `agent-beats/CLUSTER/ID` when it
//!   opens and as it hears its agent (at most about once per heartbeat interval), and sets
//!   `agentConnected` back to true if the record says false while the session is alive (so a
//!   wrong or racing disconnect heals within a heartbeat).
//! - The liveness loop (leader only): watches the beats and the instance records from the
//!   revision it listed at, and keeps a deadline, on its own clock, for every instance that
//!   shows connected: each beat it observes moves the deadline `MISSED_HEARTBEATS` heartbeat
//!   intervals ahead. An instance whose deadline passes (no beat from any replica in that time:
//!   it registered and never opened a session, or its agent went silent) is marked
//!   `agentConnected: false`. Each tick first reads the store's revision: while the store does
//!   not answer (an etcd election, a member cut off), beats cannot be written either, so every
//!   deadline is pushed a whole silence limit past the outage instead of agents being declared
//!   lost for the store's silence. And before an instance is marked, its beat is read from the
//!   store: a beat newer than the last one the watch delivered (a watch can lag or stall, e.g.
//!   on a connection to an etcd member that was cut off) counts as heard. A session also watches its own silence (see
//!   `flotilla_api::session`).
//! - The sweeper: STOPPED tasks are kept for [`AgentTimings::stopped_task_retention`] after
//!   `stoppedAt` (ECS keeps them about an hour), then deleted (found through the replica's
//!   task index, each read again before its delete: the store's tasks are not scanned); RunTask client tokens are
//!   forgotten after the same time; beats of instances deregistered (or gone) are deleted.
//!
//! Invariant: the registry's lock is never held across an `.await`; every store write of a
//! record is a compare-and-swap on its `mod_revision` (a beat too, on its session's previous
//! beat: not to guard desired state, but so that the store may retry it on another member),
//! and the loops' writes carry their term's fence (a loop whose write is refused stops).

use crate::plane::Plane;
use crate::records::{
    self, agent_beat_key, commit_fenced, get, instance_key, instance_key_of_beat, store_error,
    to_bytes, Attempt, BeatRecord, ClientTokenRecord, AGENT_BEATS, CLIENT_TOKENS,
    CONTAINER_INSTANCES, WARM_NETWORKS,
};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::keys::task_key;
use flotilla_control::task_credentials::{TaskCredentialRecord, TASK_CREDENTIALS};
use flotilla_control::tasks::TaskRecord;
use flotilla_control::warm::WarmRecord;
use flotilla_model::EcsError;
use flotilla_protocol::{TaskUsage, MISSED_HEARTBEATS};
use flotilla_scheduler::InstanceStatus;
use flotilla_store::{Compare, Event, Fence, Store, Txn, TxnOutcome, WatchStream};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Timing of the agent protocol and of task retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTimings {
    /// How often agents send a heartbeat (sent to them in `Welcome`). Default 10 s.
    pub heartbeat_interval: Duration,
    /// How long STOPPED tasks stay describable. Default one hour, as ECS.
    pub stopped_task_retention: Duration,
}

impl Default for AgentTimings {
    fn default() -> Self {
        AgentTimings {
            heartbeat_interval: Duration::from_secs(10),
            stopped_task_retention: Duration::from_secs(3600),
        }
    }
}

impl AgentTimings {
    /// How long an agent may stay silent before it counts as disconnected.
    pub fn silence_limit(&self) -> Duration {
        self.heartbeat_interval
            .saturating_mul(u32::try_from(MISSED_HEARTBEATS).unwrap_or(3))
    }
}

#[derive(Default)]
struct Inner {
    current: HashMap<String, u64>,
    /// The latest sample of each task, by its ARN (held once: a sample is kept without it).
    usage: HashMap<Box<str>, Sample>,
    /// Every sample since the metrics recorder last took them (bounded: the oldest go first).
    recent: std::collections::VecDeque<TaskUsage>,
}

/// A [`TaskUsage`] without its task's ARN (the key it is kept under).
#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_units: f64,
    memory_mib: f64,
    sampled_at: f64,
}

impl Sample {
    fn of(u: &TaskUsage) -> Self {
        Sample {
            cpu_units: u.cpu_units,
            memory_mib: u.memory_mib,
            sampled_at: u.sampled_at,
        }
    }

    fn of_task(self, task_arn: &str) -> TaskUsage {
        TaskUsage {
            task_arn: task_arn.to_string(),
            cpu_units: self.cpu_units,
            memory_mib: self.memory_mib,
            sampled_at: self.sampled_at,
        }
    }
}

/// How many usage samples wait for the metrics recorder at most.
const RECENT_SAMPLES: usize = 50_000;

/// The in-memory registry of agent sessions.
#[derive(Default)]
pub struct Agents {
    inner: Mutex<Inner>,
    next_session: AtomicU64,
}

impl Agents {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for the instance at `key`; it becomes the current one (an older session
    /// of the same instance notices and ends).
    pub fn open(&self, key: &str) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::SeqCst) + 1;
        let mut g = self.lock();
        g.current.insert(key.to_string(), id);
        id
    }

    /// Whether `session` is still the current session of the instance.
    pub fn is_current(&self, key: &str, session: u64) -> bool {
        self.lock().current.get(key) == Some(&session)
    }

    /// How many instances have a current session here.
    pub fn sessions(&self) -> usize {
        self.lock().current.len()
    }

    /// Whether the instance has a current session.
    pub fn has_session(&self, key: &str) -> bool {
        self.lock().current.contains_key(key)
    }

    /// Ends a session; true when it was the current one (the instance is then disconnected).
    pub fn close(&self, key: &str, session: u64) -> bool {
        let mut g = self.lock();
        if g.current.get(key) == Some(&session) {
            g.current.remove(key);
            true
        } else {
            false
        }
    }

    /// Keeps the latest usage sample of each task.
    pub fn record_usage(&self, samples: Vec<TaskUsage>) {
        let mut g = self.lock();
        for s in samples {
            let sample = Sample::of(&s);
            match g.usage.get_mut(s.task_arn.as_str()) {
                Some(old) if old.sampled_at <= s.sampled_at => *old = sample,
                Some(_) => {}
                None => {
                    g.usage.insert(s.task_arn.as_str().into(), sample);
                }
            }
            if g.recent.len() >= RECENT_SAMPLES {
                g.recent.pop_front();
            }
            g.recent.push_back(s);
        }
    }

    /// The latest usage sample of a task.
    pub fn usage(&self, task_arn: &str) -> Option<TaskUsage> {
        self.lock().usage.get(task_arn).map(|s| s.of_task(task_arn))
    }

    /// Takes every sample received since the last call (for the metrics recorder).
    pub fn take_recent_usage(&self) -> Vec<TaskUsage> {
        self.lock().recent.drain(..).collect()
    }

    /// The keys (`container-instances/CLUSTER/ID`) of the instances with a session here.
    pub fn session_keys(&self) -> Vec<String> {
        self.lock().current.keys().cloned().collect()
    }

    /// The latest usage sample of every task.
    pub fn all_usage(&self) -> Vec<TaskUsage> {
        self.lock()
            .usage
            .iter()
            .map(|(arn, s)| s.of_task(arn))
            .collect()
    }

    fn forget_usage(&self, task_arn: &str) {
        self.lock().usage.remove(task_arn);
    }
}

/// The liveness loop's deadlines, on its own clock: by when each instance that shows connected
/// must be heard of again (a beat from any replica).
#[derive(Default)]
struct Deadlines(HashMap<String, Instant>, HashMap<String, u64>);

impl Deadlines {
    /// A beat of the instance was observed: it must be heard of again before `deadline`.
    fn heard(&mut self, key: &str, deadline: Instant) {
        self.0.insert(key.to_string(), deadline);
    }

    /// The beat written at `revision` was observed (the watch's latest, or read directly).
    fn saw_beat(&mut self, key: &str, revision: u64) {
        let seen = self.1.entry(key.to_string()).or_default();
        *seen = (*seen).max(revision);
    }

    /// Whether a beat written at `revision` is newer than every beat observed of the instance.
    fn is_new_beat(&self, key: &str, revision: u64) -> bool {
        self.1.get(key).is_none_or(|seen| revision > *seen)
    }

    /// The instance shows connected: it gets `deadline` unless it already has one.
    fn expect(&mut self, key: &str, deadline: Instant) {
        self.0.entry(key.to_string()).or_insert(deadline);
    }

    fn forget(&mut self, key: &str) {
        self.0.remove(key);
        self.1.remove(key);
    }

    /// Every instance gets at least until `deadline`: the store could not be reached, so no
    /// silence since then says anything about the agents (their beats could not be written).
    fn postpone_all(&mut self, deadline: Instant) {
        for d in self.0.values_mut() {
            *d = (*d).max(deadline);
        }
    }

    /// Removes and returns the instances whose deadline passed.
    fn take_expired(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .0
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.0.remove(k);
        }
        expired
    }
}

/// What a session remembers between its beats: the revision its last beat was written at.
#[derive(Debug, Default)]
pub struct BeatState {
    revision: Option<u64>,
}

/// Records that a session heard the agent of `cluster`/`id`: puts its beat (unless the instance
/// is gone or INACTIVE), and, if the instance record says `agentConnected: false` while
/// `still_current()` (the session is alive and current here), sets it back to true. Unfenced:
/// every replica serves sessions.
///
/// The instance comes from the replica's instance cache (a beat per host every few seconds,
/// each reading and decoding the record, was a twentieth of the server's CPU at 10,000 hosts);
/// it may lag the store by the feed's delay, which at worst puts one beat of an instance
/// deregistered a moment before (the sweeper deletes it) or heals a disconnect one beat later.
/// An instance it does not hold is read from the store.
///
/// The beat is a compare-and-swap on the revision of the session's previous beat (the first
/// one, and the one after a failure, read it): a write that cannot be applied twice, so the
/// store may retry it on another etcd member when one does not answer, instead of waiting out
/// its whole timeout on a member just cut off (past the silence limit, which would have the
/// leader declare a healthy zone's agents lost). A conflict (another session of the same agent
/// wrote a beat meanwhile) reads the revision again and tries once more.
pub async fn beat(
    plane: &Plane,
    cluster: &str,
    id: &str,
    still_current: &(dyn Fn() -> bool + Send + Sync),
    state: &mut BeatState,
) -> Result<(), EcsError> {
    let store = plane.store();
    let rec = match plane.tasks.instances.record(cluster, id) {
        Some(rec) => rec,
        None => match get::<InstanceRecord>(store, &instance_key(cluster, id)).await? {
            Some((rec, _)) => std::sync::Arc::new(rec),
            None => return Ok(()),
        },
    };
    if rec.status() == InstanceStatus::Inactive {
        return Ok(());
    }
    let record = BeatRecord {
        replica: plane.replica.clone(),
        at: plane.clock.now(),
    };
    let key = agent_beat_key(cluster, id);
    let value = to_bytes(&record)?;
    let mut written = false;
    for _ in 0..2 {
        let previous = match state.revision.take() {
            Some(r) => r,
            None => store
                .get(&key)
                .await
                .map_err(store_error)?
                .map_or(0, |kv| kv.mod_revision),
        };
        let when = if previous == 0 {
            Compare::Absent(key.clone())
        } else {
            Compare::ModRevision(key.clone(), previous)
        };
        let txn = Txn::new().when(when).put(key.clone(), value.clone());
        match store.txn(txn).await.map_err(store_error)? {
            TxnOutcome::Committed { revision } => {
                state.revision = Some(revision);
                written = true;
                break;
            }
            TxnOutcome::Conflict { .. } => continue,
        }
    }
    if !written {
        tracing::debug!(container_instance = %id, cluster, "another session wrote this agent's beat twice meanwhile; this one is left out");
    }
    if !rec.instance.agent_connected && still_current() {
        tracing::info!(container_instance = %id, cluster, "the instance shows disconnected while its session is alive; marking it connected");
        set_agent_connected(store, cluster, id, true, still_current, None).await?;
    }
    Ok(())
}

/// Writes `agentConnected` of an instance, as long as `still_wanted()` holds when the write is
/// decided (re-checked on every compare-and-swap attempt). A connect always writes (it bumps the
/// record's revision even when the value was already true), so a disconnect decided by an older
/// session just before fails its compare-and-swap, re-checks, and gives up. No write when the
/// instance is gone or INACTIVE, or when a disconnect finds it already disconnected.
///
/// `fence`: the liveness loop's term (its disconnect is refused once the term is over); an agent
/// session, on any replica, writes unfenced.
pub async fn set_agent_connected(
    store: &dyn Store,
    cluster: &str,
    id: &str,
    connected: bool,
    still_wanted: &(dyn Fn() -> bool + Send + Sync),
    fence: Option<&Fence>,
) -> Result<(), EcsError> {
    let key = instance_key(cluster, id);
    let changed = records::cas_fenced(store, fence, || async {
        let Some((mut rec, rev)) = get::<InstanceRecord>(store, &key).await? else {
            return Ok(Attempt::Done(None));
        };
        if !still_wanted()
            || (!connected && !rec.instance.agent_connected)
            || rec.status() == InstanceStatus::Inactive
        {
            return Ok(Attempt::Done(None));
        }
        let changed = rec.instance.agent_connected != connected;
        rec.instance.agent_connected = connected;
        if changed {
            rec.touch();
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key.clone(), to_bytes(&rec)?);
        Ok(Attempt::Commit(txn, changed.then(|| rec.arn().to_string())))
    })
    .await?;
    if let Some(arn) = changed {
        tracing::info!(container_instance = %arn, connected, "agent connection changed");
    }
    Ok(())
}

/// Splits `container-instances/CLUSTER/ID` into its parts.
fn split_instance_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(CONTAINER_INSTANCES)?.split_once('/')
}

/// Starts the liveness loop and the sweeper, their writes fenced with `fence`; both end when the
/// plane is dropped, their handles are aborted, or the fence refuses one of their writes.
pub fn spawn_background(plane: Weak<Plane>, fence: &Fence) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(liveness_loop(plane.clone(), fence.clone())),
        tokio::spawn(sweeper_loop(plane, fence.clone())),
    ]
}

/// The liveness loop's view of the region: a watch of the beats and one of the instance
/// records, from the revision it listed at, and the deadlines.
struct Liveness {
    beats: WatchStream,
    instances: WatchStream,
    deadlines: Deadlines,
}

impl Liveness {
    /// Lists the instances and watches beats and instances from the revision read before the
    /// list (what happened since is replayed, harmlessly). Every instance that shows connected
    /// must be heard of within `limit` from now: at the loop's start, and again after a watch
    /// failed (beats may have been missed, so nobody is judged on the gap).
    async fn start(api: &Plane, limit: Duration) -> Result<Liveness, EcsError> {
        let store = api.store();
        let rev = store.revision().await.map_err(store_error)?;
        let instances = records::list::<InstanceRecord>(store, CONTAINER_INSTANCES).await?;
        let mut deadlines = Deadlines::default();
        let deadline = Instant::now() + limit;
        for (key, rec, _) in instances {
            if shows_connected(&rec) {
                deadlines.expect(&key, deadline);
            }
        }
        Ok(Liveness {
            beats: store.watch(AGENT_BEATS, rev).await.map_err(store_error)?,
            instances: store
                .watch(CONTAINER_INSTANCES, rev)
                .await
                .map_err(store_error)?,
            deadlines,
        })
    }

    /// Applies one observed change; false when a watch ended (the caller starts afresh).
    fn observe(
        &mut self,
        beat: bool,
        ev: Option<Result<Event, flotilla_store::StoreError>>,
        limit: Duration,
    ) -> bool {
        let deadline = Instant::now() + limit;
        match ev {
            Some(Ok(Event::Put(kv))) if beat => {
                if let Some(key) = instance_key_of_beat(&kv.key) {
                    self.deadlines.heard(&key, deadline);
                    self.deadlines.saw_beat(&key, kv.mod_revision);
                }
            }
            Some(Ok(Event::Put(kv))) => match serde_json::from_slice::<InstanceRecord>(&kv.value) {
                Ok(rec) if shows_connected(&rec) => self.deadlines.expect(&kv.key, deadline),
                Ok(rec) if rec.status() == InstanceStatus::Inactive => {
                    self.deadlines.forget(&kv.key)
                }
                _ => {}
            },
            Some(Ok(Event::Delete { key, .. })) => {
                if !beat {
                    self.deadlines.forget(&key);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "agent liveness: a watch failed; listing afresh");
                return false;
            }
            None => return false,
        }
        true
    }
}

/// Whether the liveness loop holds the instance to a deadline: active and showing connected.
fn shows_connected(rec: &InstanceRecord) -> bool {
    rec.instance.agent_connected && rec.status() != InstanceStatus::Inactive
}

async fn liveness_loop(weak: Weak<Plane>, fence: Fence) {
    let Some(api) = weak.upgrade() else { return };
    let limit = api.timings.silence_limit();
    let period = (api.timings.heartbeat_interval / 2).max(Duration::from_millis(10));
    drop(api);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(api) = weak.upgrade() else { return };
        let started = Liveness::start(&api, limit).await;
        drop(api);
        let mut live = match started {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "agent liveness: could not list and watch the instances; retrying");
                tokio::time::sleep(period).await;
                continue;
            }
        };
        loop {
            let open = tokio::select! {
                ev = live.beats.next() => live.observe(true, ev, limit),
                ev = live.instances.next() => live.observe(false, ev, limit),
                _ = tick.tick() => {
                    let Some(api) = weak.upgrade() else { return };
                    if !store_answers(&api, api.timings.heartbeat_interval).await {
                        // An outage (an etcd election, a cut-off member) stops every
                        // replica's beats too: the agents are given a whole silence limit
                        // of a working store before any of them is declared lost.
                        live.deadlines.postpone_all(Instant::now() + limit);
                    } else if !disconnect_expired(&api, &fence, &mut live.deadlines, limit).await {
                        return;
                    }
                    true
                }
            };
            if !open {
                break;
            }
        }
    }
}

/// Whether the store answers a read of its revision within `within` (on etcd a linearizable
/// read: it fails while the cluster has no leader).
async fn store_answers(api: &Plane, within: Duration) -> bool {
    match tokio::time::timeout(within, api.store().revision()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "agent liveness: the store does not answer; no agent is declared lost until it does");
            false
        }
        Err(_) => {
            tracing::warn!(?within, "agent liveness: the store is too slow to answer; no agent is declared lost until it does");
            false
        }
    }
}

/// Marks disconnected (fenced) every instance whose deadline passed, unless this process holds
/// its session (which watches its own silence): that one gets a new deadline. False when the
/// fence refused a write (this replica no longer leads).
async fn disconnect_expired(
    api: &Plane,
    fence: &Fence,
    deadlines: &mut Deadlines,
    limit: Duration,
) -> bool {
    for key in deadlines.take_expired(Instant::now()) {
        let Some((cluster, id)) = split_instance_key(&key) else {
            continue;
        };
        if api.agents.has_session(&key) {
            deadlines.heard(&key, Instant::now() + limit);
            continue;
        }
        // A watch can lag or stall while beats are written (its connection to an etcd member
        // that was cut off stays silent until its keep-alive fails): the beat itself is read
        // before the instance is judged, and one newer than the last observed is a beat heard.
        match api.store().get(&agent_beat_key(cluster, id)).await {
            Ok(Some(kv)) if deadlines.is_new_beat(&key, kv.mod_revision) => {
                deadlines.saw_beat(&key, kv.mod_revision);
                deadlines.heard(&key, Instant::now() + limit);
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, container_instance = %id, "agent liveness: could not read the agent's beat; judging it later");
                deadlines.heard(&key, Instant::now() + limit);
                continue;
            }
        }
        tracing::info!(container_instance = %id, cluster, "no replica heard the agent in time");
        let no_session = || !api.agents.has_session(&key);
        match set_agent_connected(api.store(), cluster, id, false, &no_session, Some(fence)).await {
            Ok(()) => {}
            Err(e) if crate::leadership::deposed("agent liveness", &e) => return false,
            Err(e) => {
                tracing::warn!(error = %e, container_instance = %id, "could not mark the agent disconnected");
            }
        }
    }
    true
}

async fn sweeper_loop(weak: Weak<Plane>, fence: Fence) {
    let period = match weak.upgrade() {
        Some(api) => (api.timings.stopped_task_retention / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(60)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(api) = weak.upgrade() else { return };
        let now = api.clock.now();
        match sweep(&api, &fence, now).await {
            Ok(_) => {}
            Err(e) if crate::leadership::deposed("stopped-task sweeper", &e) => return,
            Err(e) => tracing::warn!(error = %e, "stopped-task sweep failed; will retry"),
        }
    }
}

/// Deletes STOPPED tasks older than the retention, expired client tokens, the beats and warm
/// task networks of instances deregistered or gone, and task role credentials past their expiration (a task's
/// own keys go when it stops; this catches what a crash left), each delete fenced
/// with `fence` (the sweeper's term). Returns how many tasks were deleted.
pub async fn sweep(api: &Plane, fence: &Fence, now: f64) -> Result<usize, EcsError> {
    let store = api.store.as_ref();
    let cutoff = now - api.timings.stopped_task_retention.as_secs_f64();
    let mut deleted = 0;
    // The replica's task index names the candidates (the store is not scanned: listing and
    // decoding every task record each period took 2.5 GB and seconds of CPU at 270,000 tasks);
    // each is read again and deleted only if the store still says it is due.
    let due = if api.tasks.caught_up(&api.store).await {
        api.tasks.read(|ix| ix.stopped_by(cutoff))
    } else {
        tracing::debug!(
            "the task index has not caught up with the store; stopped tasks are swept next time"
        );
        Vec::new()
    };
    for (cluster, id) in due {
        let key = task_key(&cluster, &id);
        let Some((rec, rev)) = get::<TaskRecord>(store, &key).await? else {
            continue;
        };
        let old = rec.is_stopped() && rec.task.stopped_at.is_some_and(|t| t <= cutoff);
        if !old {
            continue;
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .delete(key.clone());
        if commit_fenced(store, txn, Some(fence)).await? {
            api.agents.forget_usage(rec.arn());
            deleted += 1;
            tracing::debug!(task = %rec.arn(), "stopped task removed after retention");
        }
    }
    for (key, rec, rev) in records::list::<ClientTokenRecord>(store, CLIENT_TOKENS).await? {
        if rec.created_at <= cutoff {
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .delete(key);
            commit_fenced(store, txn, Some(fence)).await?;
        }
    }
    for (key, rec, rev) in records::list::<TaskCredentialRecord>(store, TASK_CREDENTIALS).await? {
        if rec.expiration <= now {
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .delete(key);
            commit_fenced(store, txn, Some(fence)).await?;
        }
    }
    let active: HashSet<String> = records::list::<InstanceRecord>(store, CONTAINER_INSTANCES)
        .await?
        .into_iter()
        .filter(|(_, rec, _)| rec.status() != InstanceStatus::Inactive)
        .map(|(key, _, _)| key)
        .collect();
    for (key, _, rev) in records::list::<BeatRecord>(store, AGENT_BEATS).await? {
        if instance_key_of_beat(&key).is_some_and(|k| !active.contains(&k)) {
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .delete(key);
            commit_fenced(store, txn, Some(fence)).await?;
        }
    }
    // Warm task networks of instances deregistered or gone (a crash between a deregistration
    // and its cleanup, or a record removed by hand): their addresses are free again.
    for (key, _, _) in records::list::<WarmRecord>(store, WARM_NETWORKS).await? {
        let Some((cluster, id)) = key
            .strip_prefix(WARM_NETWORKS)
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        if !active.contains(&records::instance_key(cluster, id)) {
            let txn = crate::fargate::release_warm(store, cluster, id, Txn::new()).await?;
            if commit_fenced(store, txn, Some(fence)).await? {
                tracing::info!(container_instance = %id, cluster, "warm task networks of a gone instance released");
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_replace_each_other() {
        let a = Agents::default();
        let s1 = a.open("k");
        let s2 = a.open("k");
        assert!(!a.is_current("k", s1));
        assert!(a.has_session("k"));
        assert!(!a.close("k", s1));
        assert!(a.close("k", s2));
        assert!(!a.has_session("k"));
    }

    #[test]
    fn beats_move_deadlines_and_expectations_do_not() {
        let mut d = Deadlines::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        d.expect("k", now);
        d.expect("k", later);
        assert_eq!(d.take_expired(now), vec!["k".to_string()]);
        assert!(d.take_expired(now).is_empty());
        d.expect("k", now);
        d.heard("k", later);
        assert!(d.take_expired(now).is_empty());
        d.forget("k");
        assert!(d.take_expired(later).is_empty());
    }

    #[test]
    fn an_outage_postpones_every_deadline_and_never_brings_one_forward() {
        let mut d = Deadlines::default();
        let now = Instant::now();
        let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(9));
        d.heard("due", now);
        d.heard("far", later);
        d.postpone_all(soon);
        assert!(d.take_expired(now).is_empty());
        assert_eq!(d.take_expired(soon), vec!["due".to_string()]);
        assert!(d.take_expired(later - Duration::from_millis(1)).is_empty());
        assert_eq!(d.take_expired(later), vec!["far".to_string()]);
    }

    #[test]
    fn a_beat_names_its_instance() {
        assert_eq!(
            instance_key_of_beat(&agent_beat_key("c", "i")).as_deref(),
            Some("container-instances/c/i")
        );
        assert_eq!(instance_key_of_beat("tasks/c/i"), None);
    }

    #[test]
    fn usage_keeps_the_latest_sample() {
        let a = Agents::default();
        let s = |t: f64| TaskUsage {
            task_arn: "t".into(),
            cpu_units: t,
            memory_mib: 1.0,
            sampled_at: t,
        };
        a.record_usage(vec![s(2.0)]);
        a.record_usage(vec![s(1.0)]);
        assert_eq!(a.usage("t").map(|u| u.sampled_at), Some(2.0));
        a.forget_usage("t");
        assert!(a.usage("t").is_none());
    }
}
