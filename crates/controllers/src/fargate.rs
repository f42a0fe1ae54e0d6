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
//! - **Warm task networks.** A managed-pool host's agent asks for up to N task networks ahead
//!   of time ([`reserve_warm`]): their addresses are allocated through the same IPAM and held
//!   by the instance (`addresses/IP` valued with its ARN, and its
//!   [`flotilla_control::warm::WarmRecord`]); the agent starts a pause container for each. The
//!   placement writer gives a task placed on that host one of them ([`WarmPool::take`]) in the
//!   task's creation transaction, so the agent adopts the running pause container. A
//!   deregistered or vanished instance's warm addresses are released
//!   ([`release_warm`], by DeregisterContainerInstance and by the sweeper).
//! - **Capacity providers.** FARGATE and FARGATE_SPOT, split by `base`/`weight` with
//!   [`flotilla_scheduler::capacity`].
//! - **Spot interruptions.** [`reclaim_spot`] interrupts FARGATE_SPOT tasks with stop code
//!   `SpotInterruption` and the warning window (SIGTERM now, SIGKILL at its end).
//!
//! What it is not: the placement writer ([`crate::placement`]) or request validation
//! ([`flotilla_model::fargate`]).

use crate::plane::Plane;
use crate::records::{
    self, address_key, get, instance_key, replace, task_key, to_bytes, warm_key, warm_prefix,
    Attempt, ADDRESSES, TASKS,
};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::tasks::{interrupt_spot, TaskRecord};
use flotilla_control::warm::{self, Host, WarmRecord};
use flotilla_model::shapes::AwsVpcConfiguration;
use flotilla_model::EcsError;
use flotilla_protocol::TaskNetwork;
use flotilla_scheduler::ipam;
use flotilla_store::{Compare, Store, Txn};
use std::collections::{BTreeMap, BTreeSet};
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

/// The network interface of a warm task network at `ip`: what the agent needs to make its pause
/// container (a task that takes it gets its own ids and subnet, [`task_network`]).
pub fn warm_network(cidr: &ipam::Cidr, ip: Ipv4Addr) -> TaskNetwork {
    TaskNetwork {
        attachment_id: String::new(),
        network_interface_id: String::new(),
        ..task_network(cidr, ip, &AwsVpcConfiguration::default())
    }
}

/// Keeps `size` warm task networks reserved for the instance `cluster`/`id` (fewer when
/// DRAINING, none when INACTIVE or gone; see [`warm::plan`]), allocating the missing ones
/// from the task network in one transaction; answers every network reserved now, oldest first.
pub async fn reserve_warm(
    plane: &Plane,
    cluster: &str,
    id: &str,
    size: u32,
) -> Result<Vec<TaskNetwork>, EcsError> {
    let store = plane.store();
    let cidr = plane.fargate.task_network;
    let wkey = warm_key(cluster, id);
    let ikey = instance_key(cluster, id);
    let arn = plane.arns.container_instance(cluster, id);
    let addresses = plane
        .cas(&wkey, || async {
            let inst = get::<InstanceRecord>(store, &ikey).await?;
            let host = match &inst {
                Some((r, _)) if r.status() == flotilla_scheduler::InstanceStatus::Active => {
                    Host::Accepting
                }
                _ => Host::Closed,
            };
            let current = get::<WarmRecord>(store, &wkey).await?;
            let (record, rev) = current.clone().unwrap_or_default();
            let refill = warm::plan(&record.addresses, size, &cidr, host);
            if refill.wanted == 0 && refill.release.is_empty() {
                return Ok(Attempt::Done(refill.keep));
            }
            let mut txn = Txn::new().when(match current {
                Some(_) => Compare::ModRevision(wkey.clone(), rev),
                None => Compare::Absent(wkey.clone()),
            });
            if let Some((_, irev)) = &inst {
                txn = txn.when(Compare::ModRevision(ikey.clone(), *irev));
            }
            for ip in &refill.release {
                txn = txn.delete(address_key(&ip.to_string()));
            }
            let mut next = WarmRecord {
                addresses: refill.keep,
            };
            if refill.wanted > 0 {
                let mut book = AddressBook::read(store).await?;
                for _ in 0..refill.wanted {
                    let Some(ip) = book.take(&cidr) else { break };
                    let akey = address_key(&ip.to_string());
                    txn = txn
                        .when(Compare::Absent(akey.clone()))
                        .put(akey, arn.as_bytes().to_vec());
                    next.addresses.push(ip);
                }
                txn = book.commit_cursor(txn)?;
            }
            txn = if next.addresses.is_empty() {
                txn.delete(wkey.clone())
            } else {
                txn.put(wkey.clone(), to_bytes(&next)?)
            };
            Ok(Attempt::Commit(txn, next.addresses))
        })
        .await?;
    Ok(addresses
        .into_iter()
        .map(|ip| warm_network(&cidr, ip))
        .collect())
}

/// The warm records of a pool's (or cluster's) instances, by instance id, as the placement
/// writer reads them to give its tasks warm addresses.
#[derive(Debug, Default)]
pub struct WarmPool {
    records: BTreeMap<String, (String, WarmRecord, u64)>,
    taken: BTreeSet<String>,
}

impl WarmPool {
    /// Reads the warm records of `cluster`'s instances (`.managed` for the pool).
    pub async fn read(store: &dyn Store, cluster: &str) -> Result<WarmPool, EcsError> {
        let records = records::list::<WarmRecord>(store, &warm_prefix(cluster))
            .await?
            .into_iter()
            .filter_map(|(key, r, rev)| {
                let id = key.rsplit('/').next()?.to_string();
                Some((id, (key, r, rev)))
            })
            .collect();
        Ok(WarmPool {
            records,
            taken: BTreeSet::new(),
        })
    }

    /// Takes a warm address of instance `id` on `cidr`, if it has one.
    pub fn take(&mut self, id: &str, cidr: &ipam::Cidr) -> Option<Ipv4Addr> {
        let (_, record, _) = self.records.get_mut(id)?;
        let ip = record.take(cidr)?;
        self.taken.insert(id.to_string());
        Some(ip)
    }

    /// Adds to a transaction the writes of the records a take changed, each compared on the
    /// revision it was read at (the addresses' records change owner in the same transaction).
    pub fn commit(&self, mut txn: Txn) -> Result<Txn, EcsError> {
        for id in &self.taken {
            if let Some((key, record, rev)) = self.records.get(id) {
                txn = txn.when(Compare::ModRevision(key.clone(), *rev));
                txn = if record.addresses.is_empty() {
                    txn.delete(key.clone())
                } else {
                    txn.put(key.clone(), to_bytes(record)?)
                };
            }
        }
        Ok(txn)
    }

    /// Whether a take is to be committed.
    pub fn changed(&self) -> bool {
        !self.taken.is_empty()
    }
}

/// Adds to `txn` the release of every warm address of the instance `cluster`/`id` (its record
/// compared on the revision read now); `txn` unchanged when it has none.
pub async fn release_warm(
    store: &dyn Store,
    cluster: &str,
    id: &str,
    txn: Txn,
) -> Result<Txn, EcsError> {
    let key = warm_key(cluster, id);
    let Some((record, rev)) = get::<WarmRecord>(store, &key).await? else {
        return Ok(txn);
    };
    let mut txn = txn.when(Compare::ModRevision(key.clone(), rev)).delete(key);
    for ip in &record.addresses {
        txn = txn.delete(address_key(&ip.to_string()));
    }
    Ok(txn)
}

/// Every instance's warm addresses, by instance key (`container-instances/CLUSTER/ID`), for
/// the operator's status.
pub async fn warm_addresses(
    store: &dyn Store,
) -> Result<BTreeMap<String, Vec<Ipv4Addr>>, EcsError> {
    Ok(
        records::list::<WarmRecord>(store, flotilla_control::keys::WARM_NETWORKS)
            .await?
            .into_iter()
            .filter_map(|(key, r, _)| {
                let rest = key.strip_prefix(flotilla_control::keys::WARM_NETWORKS)?;
                Some((
                    format!("{}{rest}", flotilla_control::keys::CONTAINER_INSTANCES),
                    r.addresses,
                ))
            })
            .collect(),
    )
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
