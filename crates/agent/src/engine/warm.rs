//! The warm pool of a managed-pool host, the I/O side: warm pause containers made in the
//! background for the task networks the server reserved (`ServerMessage::WarmNetworks`),
//! removed when the server no longer lists them, and handed to a task's owner whose assignment
//! names one of their addresses ([`WarmPool::claim`]), which then asks for a refill once its
//! task runs ([`RefillGuard`]).
//!
//! What this is not: the decisions ([`crate::warm::plan`]) or the adoption itself
//! (`provision`).
//!
//! Invariants: every address has at most one slot, and a slot's lock is held while its
//! container is made or removed, so a claim waits for either and never sees half of one; a
//! claimed address is held by its task until the task deprovisions, and is never made warm
//! meanwhile; no std lock is held across an `.await`.

use super::provision::{ensure_network, ensure_pause_image};
use super::{lock, Inner};
use crate::runtime::{ContainerSummary, RuntimeError};
use crate::spec;
use flotilla_protocol::{labels, TaskNetwork};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// One address's warm pause container: its id once made (`None`: being made, failed, or
/// claimed).
type Slot = Arc<tokio::sync::Mutex<Option<String>>>;

#[derive(Default)]
struct PoolState {
    /// The server's latest list (`None`: not heard since the agent started).
    listed: Option<Vec<TaskNetwork>>,
    /// Addresses with a warm pause container (or one being made).
    slots: BTreeMap<String, Slot>,
    /// Addresses held by tasks of this host.
    held: BTreeSet<String>,
    /// Since when each address with a slot has been missing from the list.
    unlisted_since: BTreeMap<String, Instant>,
}

/// The host's warm pool.
pub(super) struct WarmPool {
    /// How many warm networks the host asks for.
    size: u32,
    state: Mutex<PoolState>,
    /// One reconciliation at a time.
    reconciling: tokio::sync::Mutex<()>,
    /// Refill requests for the session (the size to ask for).
    refill: mpsc::UnboundedSender<u32>,
}

/// Held by an owner that adopted a warm pause container; dropped when its task runs (or its
/// owner ends), it asks the server for a refill, so the new pause container is made when the
/// task's own start no longer competes with it.
pub(super) struct RefillGuard {
    size: u32,
    refill: mpsc::UnboundedSender<u32>,
}

impl Drop for RefillGuard {
    fn drop(&mut self) {
        let _ = self.refill.send(self.size);
    }
}

impl WarmPool {
    /// A pool of `size` that starts with the warm pause containers found in the runtime
    /// (`found`, not adopted by a task) and the addresses tasks of this host hold.
    pub(super) fn new(
        size: u32,
        found: Vec<ContainerSummary>,
        held: BTreeSet<String>,
    ) -> (WarmPool, mpsc::UnboundedReceiver<u32>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = PoolState {
            held,
            ..Default::default()
        };
        for c in found {
            if let Some(ip) = c.labels.get(labels::WARM_ADDRESS) {
                debug!(ip = %ip, id = %c.id, "warm pause container found");
                state
                    .slots
                    .insert(ip.clone(), Arc::new(tokio::sync::Mutex::new(Some(c.id))));
            }
        }
        let pool = WarmPool {
            size,
            state: Mutex::new(state),
            reconciling: tokio::sync::Mutex::new(()),
            refill: tx,
        };
        (pool, rx)
    }

    /// How many warm networks the host asks for.
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    /// The server's list: makes and removes warm pause containers in the background.
    pub(super) fn set_listed(inner: &Arc<Inner>, networks: Vec<TaskNetwork>) {
        let Some(pool) = inner.warm.as_ref() else {
            return;
        };
        {
            let mut st = lock(&pool.state);
            let names: BTreeSet<&str> = networks
                .iter()
                .map(|n| n.private_ipv4_address.as_str())
                .collect();
            let now = Instant::now();
            let slots: Vec<String> = st.slots.keys().cloned().collect();
            for ip in slots {
                if names.contains(ip.as_str()) {
                    st.unlisted_since.remove(&ip);
                } else {
                    st.unlisted_since.entry(ip).or_insert(now);
                }
            }
            st.listed = Some(networks);
        }
        tokio::spawn(reconcile(Arc::downgrade(inner)));
    }

    /// The warm pause container of `ip` for the task that holds that address now, once made
    /// (waits while it is being made or removed); `None` when there is none (the task makes its
    /// own). From then on the address is the task's until [`WarmPool::released`]. The guard
    /// (when the address was a warm one) asks for a refill when dropped.
    pub(super) async fn claim(&self, ip: &str) -> (Option<String>, Option<RefillGuard>) {
        let (slot, warm) = {
            let mut st = lock(&self.state);
            st.held.insert(ip.to_string());
            let listed = st
                .listed
                .as_ref()
                .is_some_and(|l| l.iter().any(|n| n.private_ipv4_address == ip));
            let slot = st.slots.get(ip).cloned();
            let warm = listed || slot.is_some();
            (slot, warm)
        };
        let guard = warm.then(|| RefillGuard {
            size: self.size,
            refill: self.refill.clone(),
        });
        let Some(slot) = slot else {
            return (None, guard);
        };
        let id = slot.lock().await.take();
        let mut st = lock(&self.state);
        if st.slots.get(ip).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            st.slots.remove(ip);
            st.unlisted_since.remove(ip);
        }
        (id, guard)
    }

    /// The task that held `ip` released it (its pause container is gone).
    pub(super) fn released(&self, ip: &str) {
        lock(&self.state).held.remove(ip);
    }
}

/// Makes what the list names and removes what it dropped long enough ago; runs again after the
/// grace when something waits.
fn reconcile(weak: Weak<Inner>) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(reconcile_once(weak))
}

async fn reconcile_once(weak: Weak<Inner>) {
    let Some(inner) = weak.upgrade() else { return };
    let Some(pool) = inner.warm.as_ref() else {
        return;
    };
    let _one = pool.reconciling.lock().await;
    let plan = {
        let st = lock(&pool.state);
        let Some(listed) = st.listed.as_ref() else {
            return;
        };
        let existing: BTreeSet<String> = st.slots.keys().cloned().collect();
        let now = Instant::now();
        let unlisted_for = st
            .unlisted_since
            .iter()
            .map(|(ip, since)| (ip.clone(), now.saturating_duration_since(*since)))
            .collect();
        crate::warm::plan(listed, &existing, &unlisted_for, &st.held)
    };
    for ip in &plan.remove {
        let slot = lock(&pool.state).slots.get(ip).cloned();
        let Some(slot) = slot else { continue };
        let mut g = slot.lock().await;
        let still_unlisted = lock(&pool.state).unlisted_since.contains_key(ip);
        if !still_unlisted {
            continue;
        }
        if let Some(id) = g.as_ref() {
            if let Err(e) = inner.runtime.remove(id).await {
                warn!(ip = %ip, error = %e, "cannot remove a warm pause container; retrying later");
                continue;
            }
            info!(ip = %ip, id = %id, "warm pause container removed (no longer reserved)");
        }
        *g = None;
        let mut st = lock(&pool.state);
        st.slots.remove(ip);
        st.unlisted_since.remove(ip);
    }
    for n in &plan.create {
        let ip = n.private_ipv4_address.clone();
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(None));
        let mut g = slot.clone().lock_owned().await;
        {
            let mut st = lock(&pool.state);
            if st.held.contains(&ip) || st.slots.contains_key(&ip) {
                continue;
            }
            st.slots.insert(ip.clone(), slot.clone());
        }
        match make(&inner, n).await {
            Ok(id) => {
                info!(ip = %ip, id = %id, "warm pause container ready");
                *g = Some(id);
            }
            Err(e) => {
                warn!(ip = %ip, error = %e, "cannot make a warm pause container");
                let mut st = lock(&pool.state);
                if st.slots.get(&ip).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    st.slots.remove(&ip);
                }
            }
        }
    }
    if !plan.waiting.is_empty() || !plan.remove.is_empty() {
        drop(_one);
        tokio::spawn(async move {
            tokio::time::sleep(crate::warm::STALE_GRACE).await;
            reconcile(weak).await;
        });
    }
}

/// Makes and starts one warm pause container (the network and the pause image first, as a
/// task's provisioning does). A container of that name left by an earlier run is replaced.
async fn make(inner: &Inner, n: &TaskNetwork) -> Result<String, String> {
    let rt = inner.runtime.as_ref();
    {
        let _guard = inner.provisioning.lock().await;
        ensure_network(rt, n).await.map_err(|e| e.to_string())?;
        ensure_pause_image(rt).await.map_err(|e| e.to_string())?;
    }
    let spec = spec::warm_pause_spec(n, &inner.identity, inner.awsvpc_pause_dns(n));
    let id = match rt.create(&spec).await {
        Ok(id) => id,
        Err(RuntimeError::Conflict(_)) => {
            rt.remove(&spec.name).await.map_err(|e| e.to_string())?;
            rt.create(&spec).await.map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Err(e) = rt.start(&id).await {
        let _ = rt.remove(&id).await;
        return Err(e.to_string());
    }
    Ok(id)
}
