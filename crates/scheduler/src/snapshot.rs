//! The cluster as placement sees it: container instances, their resources,
//! attributes and the tasks already on them.
//!
//! What it is: plain data handed in by the caller (the store's view of a
//! cluster at one moment) and handed back with this crate's reservations
//! applied. What it is not: a live view; nothing here talks to a store, an
//! agent or a clock.
//!
//! Invariants: a [`PortSet`] is always sorted and free of duplicates;
//! [`Resources::ports`] / [`Resources::ports_udp`] in an instance's
//! *remaining* resources are the ports that are taken (reserved ports such as
//! 22 or 51678 included), exactly as ECS reports `PORTS` and `PORTS_UDP`.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The status of a container instance, as ECS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceStatus {
    /// Registered and accepting tasks.
    Active,
    /// Being drained: no new tasks are placed on it.
    Draining,
    /// Registration in progress.
    Registering,
    /// Deregistration in progress.
    Deregistering,
    /// Registration failed.
    RegistrationFailed,
    /// Deregistered.
    Inactive,
}

impl InstanceStatus {
    /// ECS's wire string (`ACTIVE`, `DRAINING`, ...).
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Draining => "DRAINING",
            Self::Registering => "REGISTERING",
            Self::Deregistering => "DEREGISTERING",
            Self::RegistrationFailed => "REGISTRATION_FAILED",
            Self::Inactive => "INACTIVE",
        }
    }

    /// Parses ECS's wire string; `None` for anything else.
    pub fn from_ecs_str(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => Self::Active,
            "DRAINING" => Self::Draining,
            "REGISTERING" => Self::Registering,
            "DEREGISTERING" => Self::Deregistering,
            "REGISTRATION_FAILED" => Self::RegistrationFailed,
            "INACTIVE" => Self::Inactive,
            _ => return None,
        })
    }
}

/// A set of port numbers, kept sorted and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortSet(Vec<u16>);

impl PortSet {
    /// The empty set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// ECS's default reserved TCP ports of a container instance
    /// (SSH, Docker and the agent): 22, 2375, 2376, 51678, 51679.
    pub fn ecs_default_reserved() -> Self {
        [22, 2375, 2376, 51678, 51679].into_iter().collect()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.binary_search(&port).is_ok()
    }

    /// Adds `port`; returns false if it was already there.
    pub fn insert(&mut self, port: u16) -> bool {
        match self.0.binary_search(&port) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, port);
                true
            }
        }
    }

    /// Removes `port`; returns false if it was not there.
    pub fn remove(&mut self, port: u16) -> bool {
        match self.0.binary_search(&port) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The ports, ascending.
    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }

    /// Number of ports.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as ECS's `stringSetValue` (ports as decimal strings, ascending).
    pub fn to_ecs_strings(&self) -> Vec<String> {
        self.0.iter().map(u16::to_string).collect()
    }
}

impl FromIterator<u16> for PortSet {
    fn from_iter<T: IntoIterator<Item = u16>>(iter: T) -> Self {
        let mut v: Vec<u16> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self(v)
    }
}

/// CPU units, MiB of memory and TCP/UDP ports of an instance, registered or
/// remaining. For remaining resources the port sets hold the ports in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU units (1024 per vCPU).
    pub cpu: u32,
    /// Memory in MiB.
    pub memory: u32,
    /// TCP ports: reserved (registered) or taken (remaining).
    pub ports: PortSet,
    /// UDP ports: reserved (registered) or taken (remaining).
    pub ports_udp: PortSet,
}

/// A task already on an instance (or placed there by this crate).
///
/// Its strings are shared (`Arc<str>`): a caller that keeps a cluster of many hosts holds one
/// of these per task, and the same ARN, group and family are held by its own records of the
/// task too, so a task costs a few pointers here rather than copies of its strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningTask {
    /// The task's ARN, when it has one (tasks placed by this crate get theirs
    /// from the caller afterwards).
    pub arn: Option<Arc<str>>,
    /// Task group (`service:NAME`, `family:NAME` or a user group).
    pub group: Arc<str>,
    /// Task definition family.
    pub family: Arc<str>,
    /// Task definition revision.
    pub revision: u32,
    /// `startedBy`, if any.
    pub started_by: Option<Arc<str>>,
}

/// One container instance of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInstance {
    /// Container instance id (the last part of its ARN).
    pub id: String,
    /// Container instance ARN.
    pub arn: String,
    /// The EC2 instance id, e.g. `i-0abc...`.
    pub ec2_instance_id: Option<String>,
    /// ACTIVE, DRAINING, ...
    pub status: InstanceStatus,
    /// Whether the agent is connected.
    pub agent_connected: bool,
    /// The agent's version, e.g. `1.75.0`.
    pub agent_version: Option<String>,
    /// Registration time, seconds since the Unix epoch (UTC).
    pub registered_at: i64,
    /// Registered resources.
    pub registered: Resources,
    /// Remaining resources (ports: the ones taken).
    pub remaining: Resources,
    /// Attributes; a value of `None` is an attribute without a value.
    pub attributes: BTreeMap<String, Option<String>>,
    /// Tasks on the instance (they count towards `runningTasksCount`).
    pub tasks: Vec<RunningTask>,
}

impl ContainerInstance {
    /// A connected, ACTIVE instance with the given resources and ECS's default
    /// reserved ports, no attributes and no tasks: a starting point for
    /// callers and tests.
    pub fn new(id: impl Into<String>, cpu: u32, memory: u32) -> Self {
        let id = id.into();
        let reserved = Resources {
            cpu,
            memory,
            ports: PortSet::ecs_default_reserved(),
            ports_udp: PortSet::new(),
        };
        Self {
            arn: format!("arn:aws:ecs:us-east-1:000000000000:container-instance/default/{id}"),
            id,
            ec2_instance_id: None,
            status: InstanceStatus::Active,
            agent_connected: true,
            agent_version: None,
            registered_at: 0,
            remaining: reserved.clone(),
            registered: reserved,
            attributes: BTreeMap::new(),
            tasks: Vec::new(),
        }
    }

    /// Builder: sets an attribute with a value.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), Some(value.into()));
        self
    }

    /// The value of an attribute: `None` if absent, `Some(None)` if present
    /// without a value.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.attributes.get(name).map(Option::as_deref)
    }

    /// ECS's `runningTasksCount`: the tasks on the instance.
    pub fn running_tasks_count(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the instance can be given new tasks at all: ACTIVE with its
    /// agent connected.
    pub fn is_schedulable(&self) -> bool {
        self.status == InstanceStatus::Active && self.agent_connected
    }
}

/// The cluster at one moment: the instances placement may choose from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The container instances, in the caller's order (the order is part of
    /// the input: the same snapshot and seed give the same placements).
    pub instances: Vec<ContainerInstance>,
}

impl Snapshot {
    /// A snapshot of these instances.
    pub fn new(instances: Vec<ContainerInstance>) -> Self {
        Self { instances }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_set_stays_sorted_and_unique() {
        let mut s: PortSet = [80, 22, 80, 443].into_iter().collect();
        assert_eq!(s.as_slice(), &[22, 80, 443]);
        assert!(!s.insert(80));
        assert!(s.insert(8080));
        assert!(s.remove(22));
        assert!(!s.remove(22));
        assert_eq!(s.to_ecs_strings(), vec!["80", "443", "8080"]);
    }

    #[test]
    fn status_round_trips() {
        for s in [
            InstanceStatus::Active,
            InstanceStatus::Draining,
            InstanceStatus::Registering,
            InstanceStatus::Deregistering,
            InstanceStatus::RegistrationFailed,
            InstanceStatus::Inactive,
        ] {
            assert_eq!(InstanceStatus::from_ecs_str(s.as_ecs_str()), Some(s));
        }
        assert_eq!(InstanceStatus::from_ecs_str("active"), None);
    }

    #[test]
    fn new_instance_reserves_default_ports() {
        let i = ContainerInstance::new("a", 1024, 2048).with_attribute("k", "v");
        assert!(i.remaining.ports.contains(22));
        assert!(i.is_schedulable());
        assert_eq!(i.attribute("k"), Some(Some("v")));
        assert_eq!(i.attribute("nope"), None);
    }
}
