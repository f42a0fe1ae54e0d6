//! Fargate on the server: the managed pool, task networks, capacity providers and Spot
//! interruptions.
//!
//! - **The managed pool.** Hosts whose agent runs with `--managed` register under
//!   [`MANAGED_POOL`], a cluster name no user can create, so they never show up in any
//!   cluster's ListContainerInstances. A FARGATE task is stored with its own cluster
//!   (`tasks/CLUSTER/ID`); its instance is in the pool (`flotilla_control::launch::host_cluster`); the placement
//!   writer places it on the pool with Flotilla's own strategy (`flotilla_control::launch::pool_strategies`: spread
//!   over availability zones, then binpack memory), never the user's.
//! - **Task networks.** Every `awsvpc` task (FARGATE or EC2) gets an address on the managed
//!   task network (one CIDR for the whole deployment, [`FargateConfig::task_network`]), chosen
//!   by the control plane and recorded at `addresses/IP` in the same transaction as the task,
//!   so two live tasks never share one; it is released in the transaction that records the task
//!   STOPPED. The agent builds the network namespace with exactly that address.
//! - **Capacity providers.** FARGATE and FARGATE_SPOT, split by `base`/`weight` with
//!   [`flotilla_scheduler::capacity`].
//! - **Spot interruptions.** [`reclaim_spot`] interrupts FARGATE_SPOT tasks with stop code
//!   `SpotInterruption` and the warning window (SIGTERM now, SIGKILL at its end).
//!
//! What it is not: the placement writer ([`crate::placement`]) or request validation
//! ([`flotilla_model::fargate`]).

use crate::plane::Plane;
use crate::records::{self, get, replace, task_key, to_bytes, Attempt, ADDRESSES, TASKS};
use flotilla_control::tasks::{interrupt_spot, TaskRecord};
use flotilla_model::shapes::AwsVpcConfiguration;
use flotilla_model::EcsError;
use flotilla_protocol::TaskNetwork;
use flotilla_scheduler::ipam;
use flotilla_store::{Compare, Store, Txn};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use flotilla_protocol::MANAGED_POOL;

/// The Docker network every agent attaches awsvpc tasks to.
pub const TASK_NETWORK_NAME: &str = "flotilla-awsvpc";
/// The default managed task network.
pub const DEFAULT_TASK_NETWORK: &str = "10.213.0.0/16";
/// ECS's Spot warning: two minutes between the interruption notice and the end.
pub const DEFAULT_SPOT_WARNING: Duration = Duration::from_secs(120);
pub use flotilla_model::fargate::PLATFORM_FAMILY_LINUX;

/// Fargate settings of a server.
#[derive(Debug, Clone)]
pub struct FargateConfig {
    /// The managed task network.
    pub task_network: ipam::Cidr,
    /// How long a Spot task has between SIGTERM and SIGKILL when it is interrupted.
    pub spot_warning: Duration,
}

impl Default for FargateConfig {
    fn default() -> Self {
        FargateConfig {
            task_network: DEFAULT_TASK_NETWORK
                .parse()
                .unwrap_or_else(|_| unreachable!("the default task network is a valid CIDR")),
            spot_warning: DEFAULT_SPOT_WARNING,
        }
    }
}

/// The store key of the task network's allocation cursor: the position (in
/// [`ipam::Cidr::allocatable_at`] terms, taken modulo the range) where the next search starts,
/// so addresses are handed out in turn and a just-freed one is not reused at once.
pub const ADDRESS_CURSOR: &str = "address-cursor";

/// What allocation needs to know: the addresses in use, and the cursor with the revision it was
/// read at (0: never written).
#[derive(Debug, Default)]
pub struct AddressBook {
    /// Addresses held by tasks that have not stopped.
    pub used: BTreeSet<Ipv4Addr>,
    /// Where the next search starts.
    pub cursor: u32,
    /// The cursor's `mod_revision`.
    pub cursor_revision: u64,
}

impl AddressBook {
    /// Reads the addresses in use and the cursor.
    pub async fn read(store: &dyn Store) -> Result<AddressBook, EcsError> {
        let page = store
            .list(ADDRESSES, None, 0)
            .await
            .map_err(records::store_error)?;
        let used = page
            .items
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(ADDRESSES)?.parse().ok())
            .collect();
        // A new control plane starts at a random place in the range, so two of them sharing
        // one Docker engine (two test runs, say) rarely hand out the same address.
        let (cursor, cursor_revision) = match get::<u32>(store, ADDRESS_CURSOR).await? {
            Some((c, rev)) => (c, rev),
            None => (rand::random::<u32>(), 0),
        };
        Ok(AddressBook {
            used,
            cursor,
            cursor_revision,
        })
    }

    /// Takes the next free address at or after the cursor, and moves the cursor past it.
    pub fn take(&mut self, cidr: &ipam::Cidr) -> Option<Ipv4Addr> {
        let ip = ipam::allocate(cidr, &self.used, self.cursor)?;
        self.used.insert(ip);
        self.cursor = cidr.position(ip).map_or(0, |p| p.wrapping_add(1));
        Some(ip)
    }

    /// Adds the cursor's compare-and-swap write to a transaction that took addresses.
    pub fn commit_cursor(&self, txn: Txn) -> Result<Txn, EcsError> {
        let compare = if self.cursor_revision == 0 {
            Compare::Absent(ADDRESS_CURSOR.to_string())
        } else {
            Compare::ModRevision(ADDRESS_CURSOR.to_string(), self.cursor_revision)
        };
        Ok(txn
            .when(compare)
            .put(ADDRESS_CURSOR, to_bytes(&self.cursor)?))
    }
}

/// The network interface of a new task at `ip`, in the first of the user's subnets.
pub fn task_network(cidr: &ipam::Cidr, ip: Ipv4Addr, vpc: &AwsVpcConfiguration) -> TaskNetwork {
    let attachment_id = uuid::Uuid::new_v4().to_string();
    let eni = uuid::Uuid::new_v4().simple().to_string();
    TaskNetwork {
        attachment_id,
        network_interface_id: format!("eni-{}", &eni[..17]),
        private_ipv4_address: ip.to_string(),
        mac_address: ipam::mac_for(ip),
        subnet_cidr: cidr.to_string(),
        gateway: cidr.gateway().to_string(),
        network_name: TASK_NETWORK_NAME.to_string(),
        subnet_id: vpc.subnets.first().cloned().unwrap_or_default(),
        private_dns_name: ipam::private_dns_name(ip),
    }
}

/// Interrupts running FARGATE_SPOT tasks: those of `cluster` (every cluster when `None`), at
/// most `count` of them (all when `None`), oldest first. Returns the ARNs interrupted.
pub async fn reclaim_spot(
    plane: &Plane,
    cluster: Option<&str>,
    count: Option<usize>,
) -> Result<Vec<String>, EcsError> {
    let store = plane.store();
    let prefix = match cluster {
        Some(c) => {
            let (c, _) = records::active_cluster(store, Some(c)).await?;
            records::task_prefix(c.cluster_name.as_deref().unwrap_or_default())
        }
        None => TASKS.to_string(),
    };
    let mut spot: Vec<TaskRecord> = records::list::<TaskRecord>(store, &prefix)
        .await?
        .into_iter()
        .map(|(_, t, _)| t)
        .filter(|t| {
            t.task.capacity_provider_name.as_deref() == Some("FARGATE_SPOT")
                && t.desired() == flotilla_protocol::DesiredStatus::Running
                && !t.is_stopped()
        })
        .collect();
    spot.sort_by(|a, b| {
        a.task
            .created_at
            .partial_cmp(&b.task.created_at)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    spot.truncate(count.unwrap_or(usize::MAX));
    let grace = plane.fargate.spot_warning.as_secs();
    let mut out = Vec::new();
    for t in spot {
        let key = task_key(&t.cluster, &t.id);
        let interrupted = plane
            .cas(&key, || async {
                let Some((rec, rev)) = get::<TaskRecord>(store, &key).await? else {
                    return Ok(Attempt::Done(None));
                };
                let now = flotilla_control::timestamp(plane.clock.now());
                let next = interrupt_spot(&rec, grace, now);
                if next == rec {
                    return Ok(Attempt::Done(None));
                }
                let txn = replace(&key, rev, &next)?;
                Ok(Attempt::Commit(txn, Some(next)))
            })
            .await?;
        if let Some(next) = interrupted {
            tracing::info!(task = %next.arn(), cluster = %next.cluster, grace_seconds = grace, "Fargate Spot task interrupted");
            out.push(next.arn().to_string());
        }
    }
    Ok(out)
}
