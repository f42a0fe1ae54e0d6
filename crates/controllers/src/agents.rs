//! What the server knows about its agents in memory, and the background loops that keep the
//! stored view of them honest.
//!
//! - [`Agents`]: which session is the current one of each container instance, the deadline by
//!   which an instance that has no session must connect, and the latest usage sample per task.
//!   Nothing here is durable; `agentConnected` is (it is written to the instance record).
//! - The liveness loop: an instance registered (or found connected when the server starts) that
//!   opens no session within `MISSED_HEARTBEATS` heartbeat intervals is marked
//!   `agentConnected: false`. A session watches its own silence (see `flotilla_api::session`).
//! - The sweeper: STOPPED tasks are kept for [`AgentTimings::stopped_task_retention`] after
//!   `stoppedAt` (ECS keeps them about an hour), then deleted; RunTask client tokens are
//!   forgotten after the same time.
//!
//! Invariant: the registry's lock is never held across an `.await`; every store write is a
//! compare-and-swap on the record's `mod_revision`, and the loops' writes carry their term's
//! fence (a loop whose write is refused stops).

use crate::plane::Plane;
use crate::records::{
    self, commit_fenced, get, instance_key, to_bytes, Attempt, ClientTokenRecord, CLIENT_TOKENS,
    CONTAINER_INSTANCES, TASKS,
};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::tasks::TaskRecord;
use flotilla_model::EcsError;
use flotilla_protocol::{TaskUsage, MISSED_HEARTBEATS};
use flotilla_scheduler::InstanceStatus;
use flotilla_store::{Compare, Fence, Store, Txn};
use std::collections::HashMap;
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
    deadlines: HashMap<String, Instant>,
    usage: HashMap<String, TaskUsage>,
}

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
        g.deadlines.remove(key);
        id
    }

    /// Whether `session` is still the current session of the instance.
    pub fn is_current(&self, key: &str, session: u64) -> bool {
        self.lock().current.get(key) == Some(&session)
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

    /// The instance must open a session before `deadline`, or it is marked disconnected.
    pub fn expect(&self, key: &str, deadline: Instant) {
        let mut g = self.lock();
        if !g.current.contains_key(key) {
            g.deadlines.insert(key.to_string(), deadline);
        }
    }

    /// Removes and returns the instances whose deadline passed without a session.
    pub fn take_expired(&self, now: Instant) -> Vec<String> {
        let mut g = self.lock();
        let expired: Vec<String> = g
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            g.deadlines.remove(k);
        }
        expired
    }

    /// Keeps the latest usage sample of each task.
    pub fn record_usage(&self, samples: Vec<TaskUsage>) {
        let mut g = self.lock();
        for s in samples {
            let newer = g
                .usage
                .get(&s.task_arn)
                .is_none_or(|old| old.sampled_at <= s.sampled_at);
            if newer {
                g.usage.insert(s.task_arn.clone(), s);
            }
        }
    }

    /// The latest usage sample of a task.
    pub fn usage(&self, task_arn: &str) -> Option<TaskUsage> {
        self.lock().usage.get(task_arn).cloned()
    }

    fn forget_usage(&self, task_arn: &str) {
        self.lock().usage.remove(task_arn);
    }
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

async fn liveness_loop(weak: Weak<Plane>, fence: Fence) {
    let Some(api) = weak.upgrade() else { return };
    let limit = api.timings.silence_limit();
    let period = (api.timings.heartbeat_interval / 2).max(Duration::from_millis(10));
    // Instances that show connected when the server starts must reconnect in time.
    match records::list::<InstanceRecord>(api.store.as_ref(), CONTAINER_INSTANCES).await {
        Ok(all) => {
            let deadline = Instant::now() + limit;
            for (key, rec, _) in all {
                if rec.instance.agent_connected {
                    api.agents.expect(&key, deadline);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list container instances at start"),
    }
    drop(api);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(api) = weak.upgrade() else { return };
        for key in api.agents.take_expired(Instant::now()) {
            let Some((cluster, id)) = split_instance_key(&key) else {
                continue;
            };
            tracing::info!(container_instance = %id, cluster, "agent did not connect in time");
            let no_session = || !api.agents.has_session(&key);
            let store = api.store.as_ref();
            match set_agent_connected(store, cluster, id, false, &no_session, Some(&fence)).await {
                Ok(()) => {}
                Err(e) if crate::leadership::deposed("agent liveness", &e) => return,
                Err(e) => {
                    tracing::warn!(error = %e, container_instance = %id, "could not mark the agent disconnected");
                }
            }
        }
    }
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

/// Deletes STOPPED tasks older than the retention, and expired client tokens, each delete fenced
/// with `fence` (the sweeper's term). Returns how many tasks were deleted.
pub async fn sweep(api: &Plane, fence: &Fence, now: f64) -> Result<usize, EcsError> {
    let store = api.store.as_ref();
    let cutoff = now - api.timings.stopped_task_retention.as_secs_f64();
    let mut deleted = 0;
    for (key, rec, rev) in records::list::<TaskRecord>(store, TASKS).await? {
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
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_replace_each_other_and_deadlines_expire() {
        let a = Agents::default();
        let now = Instant::now();
        a.expect("k", now);
        let s1 = a.open("k");
        assert!(a.take_expired(now + Duration::from_secs(1)).is_empty());
        let s2 = a.open("k");
        assert!(!a.is_current("k", s1));
        assert!(!a.close("k", s1));
        assert!(a.close("k", s2));
        a.expect("k", now);
        assert_eq!(a.take_expired(now), vec!["k".to_string()]);
        assert!(a.take_expired(now).is_empty());
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
