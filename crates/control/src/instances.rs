//! Container instance records and their resource accounting.
//!
//! An instance is stored at `container-instances/CLUSTER/ID` as an [`InstanceRecord`]: the ECS
//! `ContainerInstance` shape as registered (ARN, `ec2InstanceId`, `versionInfo`, status,
//! `agentConnected`, the agent's attributes, tags, `registeredAt`, `version`) and the registered
//! capacity. It is written when the instance registers or changes state, never when a task is
//! placed on it or stops.
//!
//! What is derived, never stored with the instance: what its tasks hold ([`Held`]: the
//! [`Reservation`] each task record carries, for the tasks on it that have not stopped),
//! `remainingResources` (registered minus what is held; PORTS and PORTS_UDP are the registered
//! ports plus the static host ports in use), the custom attributes (their own records,
//! `attributes/CLUSTER/ID/NAME`), and the task counts.
//!
//! Why: when the reservations lived in the instance record, every placement and every stop
//! rewrote it (about 330 bytes per task on the host), and every replica decoded it again: at a
//! hundred tasks per host, 35 KB per placement. Placements on one instance are now serialized
//! by its placement guard (`crate::keys::placement_guard_key`), a record of a few bytes.
//!
//! Invariant: what is held is keyed by task ARN, so adding or removing a task twice is
//! harmless, and the remaining CPU and memory never go below zero (a reservation is refused by
//! the placement applier before it is written, and [`InstanceRecord::remaining`] saturates).
//!
//! Everything here is pure: no store, no clock.

use flotilla_model::shapes::{Attribute, ContainerInstance, Resource, TargetType};
use flotilla_model::EcsError;
use flotilla_scheduler as sched;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// CPU, memory and ports an instance registered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// CPU units.
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    /// Reserved TCP ports (the agent's own, SSH, Docker).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Reserved UDP ports.
    #[serde(default)]
    pub ports_udp: Vec<u16>,
}

/// What one task holds on its instance until it stops.
///
/// Its strings are shared (`Arc<str>`, stored as plain strings): the instance cache keeps one
/// per task not stopped, keyed by the same ARN, and hands the same strings to the scheduler's
/// [`sched::RunningTask`], so a task's ARN, group and family are held once per replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The task ARN.
    pub task_arn: Arc<str>,
    /// CPU units.
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    /// Static TCP host ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Static UDP host ports.
    #[serde(default)]
    pub ports_udp: Vec<u16>,
    /// The task group (for spread and distinctInstance).
    pub group: Arc<str>,
    /// Task definition family.
    pub family: Arc<str>,
    /// Task definition revision.
    pub revision: u32,
    /// `startedBy`.
    #[serde(default)]
    pub started_by: Option<Arc<str>>,
}

impl Reservation {
    /// The task as placement and the query language see it.
    pub fn running_task(&self) -> sched::RunningTask {
        sched::RunningTask {
            arn: Some(self.task_arn.clone()),
            group: self.group.clone(),
            family: self.family.clone(),
            revision: self.revision,
            started_by: self.started_by.clone(),
        }
    }

    /// What it takes from its instance (CPU, memory, static host ports).
    pub fn resources(&self) -> sched::Resources {
        sched::Resources {
            cpu: self.cpu,
            memory: self.memory,
            ports: self.ports.iter().copied().collect(),
            ports_udp: self.ports_udp.iter().copied().collect(),
        }
    }
}

/// What the tasks on one instance that have not stopped hold, by task ARN (the reservation's
/// own): their records' reservations, gathered by the caller (the task index, or the task
/// records).
pub type Held = BTreeMap<Arc<str>, Reservation>;

/// What an instance without tasks holds: nothing.
pub static NOTHING_HELD: Held = BTreeMap::new();

/// A stored container instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The ECS shape as registered; derived members are filled by [`InstanceRecord::view`].
    pub instance: ContainerInstance,
    /// Cluster name.
    pub cluster: String,
    /// Container instance id (32 hex characters).
    pub id: String,
    /// Registered capacity.
    pub registered: Capacity,
    /// From the instance identity document.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// From the instance identity document.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// The access key ids of the agent credentials bound to it (an agent that joined with a
    /// token, `crate::agent_identity`): deregistration deletes their records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_keys: Vec<String>,
}

/// Task counts of an instance, from its tasks' records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Tasks whose desiredStatus is RUNNING.
    pub running: i32,
    /// Tasks whose lastStatus is PENDING.
    pub pending: i32,
}

impl InstanceRecord {
    /// The status as an enum (a record without one is ACTIVE).
    pub fn status(&self) -> sched::InstanceStatus {
        self.instance
            .status
            .as_deref()
            .and_then(sched::InstanceStatus::from_ecs_str)
            .unwrap_or(sched::InstanceStatus::Active)
    }

    /// Sets the status.
    pub fn set_status(&mut self, status: sched::InstanceStatus) {
        self.instance.status = Some(status.as_ecs_str().to_string());
    }

    /// Marks a change: ECS's `version` grows with every change of the instance.
    pub fn touch(&mut self) {
        self.instance.version += 1;
    }

    /// The ARN.
    pub fn arn(&self) -> &str {
        self.instance
            .container_instance_arn
            .as_deref()
            .unwrap_or("")
    }

    /// What remains: registered minus what its tasks hold (ports: registered plus those in use).
    pub fn remaining(&self, held: &Held) -> sched::Resources {
        let mut r = sched::Resources {
            cpu: self.registered.cpu,
            memory: self.registered.memory,
            ports: self.registered.ports.iter().copied().collect(),
            ports_udp: self.registered.ports_udp.iter().copied().collect(),
        };
        for res in held.values() {
            r.cpu = r.cpu.saturating_sub(res.cpu);
            r.memory = r.memory.saturating_sub(res.memory);
            for p in &res.ports {
                r.ports.insert(*p);
            }
            for p in &res.ports_udp {
                r.ports_udp.insert(*p);
            }
        }
        r
    }

    /// Every attribute: the agent's, the identity document's, then the custom ones.
    pub fn all_attributes(&self, custom: &[Attribute]) -> Vec<Attribute> {
        let mut out: Vec<Attribute> = self.instance.attributes.clone().unwrap_or_default();
        let mut add = |name: &str, value: Option<&String>| {
            if let Some(v) = value {
                if !out.iter().any(|a| a.name == name) {
                    out.push(Attribute {
                        name: name.to_string(),
                        value: Some(v.clone()),
                        target_type: None,
                        target_id: None,
                    });
                }
            }
        };
        add("ecs.availability-zone", self.availability_zone.as_ref());
        add("ecs.instance-type", self.instance_type.as_ref());
        for c in custom {
            match out.iter_mut().find(|a| a.name == c.name) {
                Some(a) => a.value = c.value.clone(),
                None => out.push(Attribute {
                    name: c.name.clone(),
                    value: c.value.clone(),
                    target_type: None,
                    target_id: None,
                }),
            }
        }
        out
    }

    /// The instance as placement and the query language see it, with what its tasks hold.
    pub fn to_scheduler(&self, custom: &[Attribute], held: &Held) -> sched::ContainerInstance {
        let registered = sched::Resources {
            cpu: self.registered.cpu,
            memory: self.registered.memory,
            ports: self.registered.ports.iter().copied().collect(),
            ports_udp: self.registered.ports_udp.iter().copied().collect(),
        };
        sched::ContainerInstance {
            id: self.id.clone(),
            arn: self.arn().to_string(),
            ec2_instance_id: self.instance.ec2_instance_id.clone(),
            status: self.status(),
            agent_connected: self.instance.agent_connected,
            agent_version: self
                .instance
                .version_info
                .as_ref()
                .and_then(|v| v.agent_version.clone()),
            registered_at: self.instance.registered_at.map_or(0, |t| t as i64),
            remaining: self.remaining(held),
            registered,
            attributes: self
                .all_attributes(custom)
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect(),
            tasks: held.values().map(Reservation::running_task).collect(),
        }
    }

    /// The instance as ECS describes it.
    pub fn view(
        &self,
        custom: &[Attribute],
        counts: TaskCounts,
        held: &Held,
        include_tags: bool,
    ) -> ContainerInstance {
        let mut ci = self.instance.clone();
        ci.registered_resources = Some(ecs_resources(&sched::Resources {
            cpu: self.registered.cpu,
            memory: self.registered.memory,
            ports: self.registered.ports.iter().copied().collect(),
            ports_udp: self.registered.ports_udp.iter().copied().collect(),
        }));
        ci.remaining_resources = Some(ecs_resources(&self.remaining(held)));
        ci.attributes = Some(self.all_attributes(custom));
        ci.running_tasks_count = counts.running;
        ci.pending_tasks_count = counts.pending;
        ci.attachments = Some(ci.attachments.unwrap_or_default());
        if include_tags {
            ci.tags = Some(ci.tags.unwrap_or_default());
        } else {
            ci.tags = None;
        }
        ci
    }
}

fn integer(name: &str, v: u32) -> Resource {
    Resource {
        name: Some(name.to_string()),
        r#type: Some("INTEGER".into()),
        double_value: 0.0,
        long_value: 0,
        integer_value: i32::try_from(v).unwrap_or(i32::MAX),
        string_set_value: None,
    }
}

fn string_set(name: &str, ports: &sched::PortSet) -> Resource {
    Resource {
        name: Some(name.to_string()),
        r#type: Some("STRINGSET".into()),
        double_value: 0.0,
        long_value: 0,
        integer_value: 0,
        string_set_value: Some(ports.to_ecs_strings()),
    }
}

/// Resources as ECS lists them: CPU, MEMORY, PORTS, PORTS_UDP.
pub fn ecs_resources(r: &sched::Resources) -> Vec<Resource> {
    vec![
        integer("CPU", r.cpu),
        integer("MEMORY", r.memory),
        string_set("PORTS", &r.ports),
        string_set("PORTS_UDP", &r.ports_udp),
    ]
}

fn amount(r: &Resource) -> Result<u32, EcsError> {
    let name = r.name.as_deref().unwrap_or("");
    let v: i64 = if r.integer_value != 0 {
        i64::from(r.integer_value)
    } else if r.long_value != 0 {
        r.long_value
    } else {
        r.double_value as i64
    };
    u32::try_from(v).map_err(|_| {
        EcsError::invalid_parameter(format!(
            "Invalid value {v} for resource {name}: it must be a non-negative integer."
        ))
    })
}

fn ports(r: &Resource) -> Result<Vec<u16>, EcsError> {
    let name = r.name.as_deref().unwrap_or("");
    let mut out: Vec<u16> = Vec::new();
    for s in r.string_set_value.iter().flatten() {
        let p = s.trim().parse::<u16>().map_err(|_| {
            EcsError::invalid_parameter(format!(
                "Invalid port '{s}' in resource {name}: ports are integers from 0 to 65535."
            ))
        })?;
        out.push(p);
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > 100 {
        return Err(EcsError::invalid_parameter(format!(
            "Resource {name} lists {} ports; at most 100 ports can be reserved.",
            out.len()
        )));
    }
    Ok(out)
}

/// Reads RegisterContainerInstance's `totalResources`: CPU and MEMORY are required, PORTS and
/// PORTS_UDP optional; other names are ignored.
pub fn parse_total_resources(resources: &[Resource]) -> Result<Capacity, EcsError> {
    let mut cap = Capacity::default();
    let (mut cpu, mut mem) = (false, false);
    for r in resources {
        match r.name.as_deref() {
            Some("CPU") => {
                cap.cpu = amount(r)?;
                cpu = true;
            }
            Some("MEMORY") => {
                cap.memory = amount(r)?;
                mem = true;
            }
            Some("PORTS") => cap.ports = ports(r)?,
            Some("PORTS_UDP") => cap.ports_udp = ports(r)?,
            _ => {}
        }
    }
    if !cpu || !mem {
        return Err(EcsError::invalid_parameter(
            "totalResources must include CPU and MEMORY (INTEGER resources).",
        ));
    }
    Ok(cap)
}

/// The members of an EC2 instance identity document that Flotilla uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IdentityDocument {
    /// `instanceId`.
    #[serde(rename = "instanceId", default)]
    pub instance_id: Option<String>,
    /// `availabilityZone`.
    #[serde(rename = "availabilityZone", default)]
    pub availability_zone: Option<String>,
    /// `instanceType`.
    #[serde(rename = "instanceType", default)]
    pub instance_type: Option<String>,
    /// `region`.
    #[serde(rename = "region", default)]
    pub region: Option<String>,
}

/// Parses `instanceIdentityDocument` (a JSON string).
pub fn parse_identity_document(doc: &str) -> Result<IdentityDocument, EcsError> {
    serde_json::from_str(doc).map_err(|e| {
        EcsError::invalid_parameter(format!(
            "instanceIdentityDocument is not a valid JSON instance identity document: {e}."
        ))
    })
}

/// Custom attributes as stored (`targetId` is the instance ARN); returned without target.
pub fn custom_attribute(a: &Attribute) -> Attribute {
    Attribute {
        name: a.name.clone(),
        value: a.value.clone(),
        target_type: None::<TargetType>,
        target_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, v: i32) -> Resource {
        Resource {
            integer_value: v,
            ..integer(name, 0)
        }
    }

    fn record() -> InstanceRecord {
        InstanceRecord {
            registered: Capacity {
                cpu: 1024,
                memory: 2048,
                ports: vec![22, 51678],
                ports_udp: vec![],
            },
            ..InstanceRecord::default()
        }
    }

    #[test]
    fn remaining_is_registered_minus_what_is_held() {
        let r = record();
        let mut held = Held::new();
        let hold = Reservation {
            cpu: 256,
            memory: 512,
            ports: vec![80],
            ..Reservation::default()
        };
        held.insert("t1".into(), hold.clone());
        held.insert("t1".into(), hold);
        let rem = r.remaining(&held);
        assert_eq!((rem.cpu, rem.memory), (768, 1536));
        assert_eq!(rem.ports.as_slice(), &[22, 80, 51678]);
        let s = r.to_scheduler(&[], &held);
        assert_eq!(s.tasks.len(), 1);
        assert_eq!(s.remaining.cpu, 768);
        held.remove("t1");
        assert_eq!(r.remaining(&held).memory, 2048);
        assert_eq!(r.remaining(&held).ports.as_slice(), &[22, 51678]);
    }

    #[test]
    fn total_resources() {
        let mut ports = string_set("PORTS", &[22u16, 2375].into_iter().collect());
        ports.string_set_value = Some(vec!["2375".into(), "22".into()]);
        let cap = parse_total_resources(&[res("CPU", 2048), res("MEMORY", 3768), ports]).unwrap();
        assert_eq!(cap.ports, vec![22, 2375]);
        assert_eq!(cap.memory, 3768);
        assert!(parse_total_resources(&[res("CPU", 1)]).is_err());
        assert!(parse_total_resources(&[res("CPU", -1), res("MEMORY", 1)]).is_err());
        let mut bad = string_set("PORTS", &sched::PortSet::new());
        bad.string_set_value = Some(vec!["http".into()]);
        assert!(parse_total_resources(&[res("CPU", 1), res("MEMORY", 1), bad]).is_err());
    }

    #[test]
    fn identity_document() {
        let d = parse_identity_document(
            r#"{"instanceId":"i-1","availabilityZone":"us-east-1a","instanceType":"t3.small","region":"us-east-1","x":1}"#,
        )
        .unwrap();
        assert_eq!(d.instance_id.as_deref(), Some("i-1"));
        assert!(parse_identity_document("nope").is_err());
    }

    #[test]
    fn custom_attributes_override_and_extend() {
        let mut r = record();
        r.availability_zone = Some("az1".into());
        r.instance.attributes = Some(vec![Attribute {
            name: "ecs.os-type".into(),
            value: Some("linux".into()),
            target_type: None,
            target_id: None,
        }]);
        let custom = vec![Attribute {
            name: "stack".into(),
            value: Some("prod".into()),
            target_type: None,
            target_id: None,
        }];
        let s = r.to_scheduler(&custom, &Held::new());
        assert_eq!(s.attribute("stack"), Some(Some("prod")));
        assert_eq!(s.attribute("ecs.availability-zone"), Some(Some("az1")));
        assert_eq!(s.attribute("ecs.os-type"), Some(Some("linux")));
        let v = r.view(&custom, TaskCounts::default(), &Held::new(), false);
        assert_eq!(v.attributes.map(|a| a.len()), Some(3));
        assert!(v.tags.is_none());
    }
}
