//! Task records and the pure rules of a task's life on the server.
//!
//! A task is stored at `tasks/CLUSTER/ID` as a [`TaskRecord`]: the ECS `Task` shape (ARNs,
//! times, stop code, containers, overrides, tags, `version`), its observed status
//! ([`TaskStatus`], and one [`ContainerStatus`] per container), the [`TaskAssignment`] the agent
//! of its instance is sent (desired status, assignment version, resolved container definitions)
//! and the [`Reservation`] it holds on its instance.
//!
//! The rules, as pure functions with their tests here:
//! - [`resolve`]: RunTask/StartTask overrides applied to a task definition;
//! - [`task_spec`]: what placement needs to know of a resolved task;
//! - [`apply_report`]: an agent's report applied to a task (idempotent; `lastStatus` never moves
//!   backwards; a STOPPED task never changes again);
//! - [`stop`]: StopTask's transition.
//!
//! Invariant: the desired status and the assignment `version` move together: every change of
//! what the agent must do grows `assignment.version`, and nothing else does, so the session
//! pushes exactly the changes of desired state. The ECS `version` grows with every change.
//! Statuses are enums here; the wire strings appear only in [`TaskRecord::view`].

use crate::instances::Reservation;
use flotilla_model::shapes::{
    Attachment, Connectivity, ContainerDefinition, KeyValuePair, NetworkInterface, NetworkMode,
    Task, TaskDefinition, TaskOverride, TaskStopCode,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_model::task_definition::{parse_task_cpu, parse_task_memory};
use flotilla_model::EcsError;
use flotilla_protocol::{DesiredStatus, TaskAssignment, TaskNetwork, TaskStateReport};
use flotilla_scheduler as sched;
use serde::{Deserialize, Serialize};

/// A stored task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The ECS shape; `lastStatus`/`desiredStatus` strings are filled by [`TaskRecord::view`].
    pub task: Task,
    /// Observed status.
    pub last_status: Status,
    /// Observed status of each container, in the order of `task.containers`.
    #[serde(default)]
    pub container_status: Vec<ContainerStatus>,
    /// Cluster name.
    pub cluster: String,
    /// Task id (32 hex characters).
    pub id: String,
    /// Container instance id.
    pub instance_id: String,
    /// What the agent is told.
    pub assignment: Option<TaskAssignment>,
    /// What the task holds on its instance until it stops.
    pub reservation: Reservation,
    /// The task role credentials issued for it that may still be valid
    /// ([`crate::task_credentials`]): the transaction that records it STOPPED deletes their
    /// records, so they are refused from then on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<crate::task_credentials::IssuedKey>,
    /// Deactivating: the control plane asked the task to stop and deregistered it from its
    /// load balancers; the agent keeps it running until the targets have drained, at this time
    /// (epoch seconds), when the service loop makes the stop ([`deactivate`], then [`stop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after: Option<f64>,
    /// The service scheduler stopped it because a target group reported it unhealthy: a
    /// failure for the deployment circuit breaker, as a failed container health check is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_target_health: bool,
    /// Its scale-in protection (UpdateTaskProtection), evaluated against the clock
    /// ([`crate::protection`]): the service scheduler never stops a protected task to scale
    /// in or replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<crate::protection::Protection>,
}

/// What the replica's task index and instance cache read of a stored task record
/// (`flotilla_controllers::task_feed` decodes every task write): the rest of the record (the
/// ECS shape's containers and overrides, the assignment's container definitions) is skipped by
/// the decoder, never allocated. [`TaskHead::of`] is the same from a decoded record; a unit
/// test holds the two equal.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TaskHead {
    /// The parts of the ECS shape it reads.
    pub task: TaskShapeHead,
    /// Observed status.
    pub last_status: Status,
    /// Cluster name.
    pub cluster: String,
    /// Container instance id.
    pub instance_id: String,
    /// The parts of the assignment it reads.
    pub assignment: Option<AssignmentHead>,
    /// What the task holds on its instance until it stops.
    pub reservation: Reservation,
}

/// The members of the ECS task shape a [`TaskHead`] keeps.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TaskShapeHead {
    /// The task ARN.
    #[serde(rename = "taskArn", default)]
    pub task_arn: Option<String>,
    /// The launch type.
    #[serde(rename = "launchType", default)]
    pub launch_type: Option<flotilla_model::shapes::LaunchType>,
    /// `startedBy`.
    #[serde(rename = "startedBy", default)]
    pub started_by: Option<String>,
    /// `group`.
    #[serde(default)]
    pub group: Option<String>,
    /// `stoppedAt`.
    #[serde(rename = "stoppedAt", default)]
    pub stopped_at: Option<flotilla_model::Timestamp>,
}

/// The members of a [`TaskAssignment`] a [`TaskHead`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AssignmentHead {
    /// Grows with every change of the task's desired state.
    pub version: u64,
    /// What the control plane wants.
    pub desired_status: DesiredStatus,
}

/// Only the assignment of a stored task record (the rest skipped by the decoder).
#[derive(Debug, Deserialize)]
pub struct AssignmentOnly {
    /// The assignment, when the record has one.
    pub assignment: Option<TaskAssignment>,
}

impl TaskHead {
    /// The head of a decoded record.
    pub fn of(t: &TaskRecord) -> TaskHead {
        TaskHead {
            task: TaskShapeHead {
                task_arn: t.task.task_arn.clone(),
                launch_type: t.task.launch_type,
                started_by: t.task.started_by.clone(),
                group: t.task.group.clone(),
                stopped_at: t.task.stopped_at,
            },
            last_status: t.last_status,
            cluster: t.cluster.clone(),
            instance_id: t.instance_id.clone(),
            assignment: t.assignment.as_ref().map(|a| AssignmentHead {
                version: a.version,
                desired_status: a.desired_status,
            }),
            reservation: t.reservation.clone(),
        }
    }

    /// [`TaskRecord::desired`].
    pub fn desired(&self) -> DesiredStatus {
        desired_of(self.assignment.map(|a| a.desired_status))
    }

    /// [`TaskRecord::assignment_version`].
    pub fn assignment_version(&self) -> u64 {
        self.assignment.map_or(0, |a| a.version)
    }

    /// [`TaskRecord::is_stopped`].
    pub fn is_stopped(&self) -> bool {
        self.last_status.0 == TaskStatus::Stopped
    }

    /// [`TaskRecord::arn`].
    pub fn arn(&self) -> &str {
        self.task.task_arn.as_deref().unwrap_or("")
    }

    /// [`TaskRecord::instance_cluster`].
    pub fn instance_cluster(&self) -> &str {
        host_cluster_of(self.task.launch_type, &self.cluster)
    }
}

/// The desired status of a task whose assignment wants `wanted` (none: stopped).
fn desired_of(wanted: Option<DesiredStatus>) -> DesiredStatus {
    wanted.unwrap_or(DesiredStatus::Stopped)
}

/// The cluster whose container instance runs a task of `launch_type` in `cluster` (the
/// managed pool for Fargate).
fn host_cluster_of(launch_type: Option<flotilla_model::shapes::LaunchType>, cluster: &str) -> &str {
    crate::launch::host_cluster(
        launch_type.unwrap_or(flotilla_model::shapes::LaunchType::Ec2),
        cluster,
    )
}

/// [`TaskStatus`] with a default, so the record can derive `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Status(pub TaskStatus);

impl Default for Status {
    fn default() -> Self {
        Status(TaskStatus::Pending)
    }
}

/// The wire string of a desired status.
pub fn desired_str(d: DesiredStatus) -> &'static str {
    match d {
        DesiredStatus::Running => "RUNNING",
        DesiredStatus::Stopped => "STOPPED",
    }
}

impl TaskRecord {
    /// The desired status.
    pub fn desired(&self) -> DesiredStatus {
        desired_of(self.assignment.as_ref().map(|a| a.desired_status))
    }

    /// The assignment version (0 without an assignment).
    pub fn assignment_version(&self) -> u64 {
        self.assignment.as_ref().map_or(0, |a| a.version)
    }

    /// Whether the task has stopped.
    pub fn is_stopped(&self) -> bool {
        self.last_status.0 == TaskStatus::Stopped
    }

    /// The ARN.
    pub fn arn(&self) -> &str {
        self.task.task_arn.as_deref().unwrap_or("")
    }

    /// The cluster whose container instance runs the task (the managed pool for Fargate).
    pub fn instance_cluster(&self) -> &str {
        host_cluster_of(self.task.launch_type, &self.cluster)
    }

    /// The task's network interface, for `awsvpc` tasks.
    pub fn network(&self) -> Option<&TaskNetwork> {
        self.assignment.as_ref().and_then(|a| a.network.as_ref())
    }

    /// The ENI attachment's status as ECS shows it through the task's life.
    pub fn attachment_status(&self) -> &'static str {
        match self.last_status.0 {
            TaskStatus::Provisioning => "ATTACHING",
            TaskStatus::Deprovisioning => "DETACHING",
            TaskStatus::Stopped => "DELETED",
            _ => "ATTACHED",
        }
    }

    /// The task as ECS describes it.
    pub fn view(&self, include_tags: bool) -> Task {
        let mut t = self.task.clone();
        t.last_status = Some(self.last_status.0.as_ecs_str().to_string());
        t.desired_status = Some(
            if self.stop_after.is_some() {
                "STOPPED"
            } else {
                desired_str(self.desired())
            }
            .to_string(),
        );
        if let Some(cs) = t.containers.as_mut() {
            for (c, s) in cs.iter_mut().zip(self.container_status.iter()) {
                c.last_status = Some(s.as_ecs_str().to_string());
            }
        }
        if let Some(net) = self.network() {
            t.attachments = Some(vec![eni_attachment(net, self.attachment_status())]);
            for c in t.containers.iter_mut().flatten() {
                c.network_interfaces = Some(vec![NetworkInterface {
                    attachment_id: Some(net.attachment_id.clone()),
                    private_ipv4_address: Some(net.private_ipv4_address.clone()),
                    ipv6_address: None,
                }]);
            }
        }
        t.tags = if include_tags {
            Some(t.tags.unwrap_or_default())
        } else {
            None
        };
        t
    }
}

/// The `ElasticNetworkInterface` attachment of an `awsvpc` task.
pub fn eni_attachment(net: &TaskNetwork, status: &str) -> Attachment {
    let kv = |name: &str, value: &str| KeyValuePair {
        name: Some(name.to_string()),
        value: Some(value.to_string()),
    };
    Attachment {
        id: Some(net.attachment_id.clone()),
        r#type: Some("ElasticNetworkInterface".into()),
        status: Some(status.into()),
        details: Some(vec![
            kv("subnetId", &net.subnet_id),
            kv("networkInterfaceId", &net.network_interface_id),
            kv("macAddress", &net.mac_address),
            kv("privateDnsName", &net.private_dns_name),
            kv("privateIPv4Address", &net.private_ipv4_address),
        ]),
    }
}

/// A task definition with the overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Container definitions with command, environment, cpu, memory and memoryReservation
    /// overridden.
    pub containers: Vec<ContainerDefinition>,
    /// Task-level CPU units.
    pub cpu: Option<u32>,
    /// Task-level MiB.
    pub memory: Option<u32>,
}

fn merge_environment(base: &mut Vec<KeyValuePair>, over: &[KeyValuePair]) {
    for kv in over {
        match base.iter_mut().find(|b| b.name == kv.name) {
            Some(b) => b.value = kv.value.clone(),
            None => base.push(kv.clone()),
        }
    }
}

/// Applies RunTask/StartTask `overrides` to a task definition.
pub fn resolve(
    td: &TaskDefinition,
    overrides: Option<&TaskOverride>,
) -> Result<Resolved, EcsError> {
    let mut containers = td.container_definitions.clone().unwrap_or_default();
    let mut cpu = td.cpu.as_deref().and_then(parse_task_cpu);
    let mut memory = td.memory.as_deref().and_then(parse_task_memory);
    if let Some(o) = overrides {
        for co in o.container_overrides.iter().flatten() {
            let name = co.name.as_deref().unwrap_or("");
            let Some(c) = containers
                .iter_mut()
                .find(|c| c.name.as_deref() == Some(name))
            else {
                return Err(EcsError::invalid_parameter(format!(
                    "Override for container named {name} is not a container in the TaskDefinition."
                )));
            };
            if let Some(cmd) = &co.command {
                c.command = Some(cmd.clone());
            }
            if let Some(env) = &co.environment {
                merge_environment(c.environment.get_or_insert_with(Vec::new), env);
            }
            if let Some(v) = co.cpu {
                c.cpu = v;
            }
            if let Some(v) = co.memory {
                c.memory = Some(v);
            }
            if let Some(v) = co.memory_reservation {
                c.memory_reservation = Some(v);
            }
            if let (Some(m), Some(r)) = (c.memory, c.memory_reservation) {
                if r > m {
                    return Err(EcsError::invalid_parameter(format!(
                        "Invalid overrides for container {name}: memoryReservation ({r}) must be lower than memory ({m})."
                    )));
                }
            }
        }
        if let Some(s) = &o.cpu {
            cpu = Some(parse_task_cpu(s).ok_or_else(|| {
                EcsError::invalid_parameter(format!(
                    "Invalid task cpu override '{s}': give CPU units (e.g. 512) or vCPUs (e.g. 1 vCPU)."
                ))
            })?);
        }
        if let Some(s) = &o.memory {
            memory = Some(parse_task_memory(s).ok_or_else(|| {
                EcsError::invalid_parameter(format!(
                    "Invalid task memory override '{s}': give MiB (e.g. 512) or GB (e.g. 1GB)."
                ))
            })?);
        }
    }
    Ok(Resolved {
        containers,
        cpu,
        memory,
    })
}

/// The network mode placement uses.
pub fn network_mode(m: Option<NetworkMode>) -> sched::NetworkMode {
    match m {
        None | Some(NetworkMode::Bridge) => sched::NetworkMode::Bridge,
        Some(NetworkMode::Host) => sched::NetworkMode::Host,
        Some(NetworkMode::Awsvpc) => sched::NetworkMode::Awsvpc,
        Some(NetworkMode::None) => sched::NetworkMode::None,
    }
}

fn to_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// What placement needs to know of a resolved task.
pub fn task_spec(r: &Resolved, mode: Option<NetworkMode>) -> sched::TaskSpec {
    sched::TaskSpec {
        cpu: r.cpu,
        memory: r.memory,
        network_mode: network_mode(mode),
        containers: r
            .containers
            .iter()
            .map(|c| sched::ContainerSpec {
                name: c.name.clone().unwrap_or_default(),
                cpu: to_u32(c.cpu),
                memory: c.memory.map(to_u32),
                memory_reservation: c.memory_reservation.map(to_u32),
                port_mappings: c
                    .port_mappings
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        Some(sched::PortMapping {
                            container_port: u16::try_from(p.container_port?).ok()?,
                            host_port: p.host_port.and_then(|h| u16::try_from(h).ok()),
                            protocol: match p.protocol {
                                Some(flotilla_model::shapes::TransportProtocol::Udp) => {
                                    sched::Protocol::Udp
                                }
                                _ => sched::Protocol::Tcp,
                            },
                        })
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Applies one agent report. Returns the record unchanged (same `version`) when the report
/// brings nothing new, so applying the same report twice is harmless.
pub fn apply_report(rec: &TaskRecord, r: &TaskStateReport, now: f64) -> TaskRecord {
    let mut n = rec.clone();
    if rec.is_stopped() {
        return n;
    }
    let status = rec.last_status.0.max(r.last_status);
    n.last_status = Status(status);
    if n.task.connectivity.is_none() {
        n.task.connectivity = Some(Connectivity::Connected);
        n.task.connectivity_at = Some(now);
    }
    let containers = n.task.containers.get_or_insert_with(Vec::new);
    n.container_status
        .resize(containers.len(), ContainerStatus::Pending);
    for c in &r.containers {
        let Some(i) = containers
            .iter()
            .position(|x| x.name.as_deref() == Some(c.name.as_str()))
        else {
            continue;
        };
        if let (Some(slot), Some(s)) = (n.container_status.get_mut(i), Some(c.last_status)) {
            *slot = (*slot).max(s);
        }
        let Some(ct) = containers.get_mut(i) else {
            continue;
        };
        if c.runtime_id.is_some() {
            ct.runtime_id = c.runtime_id.clone();
        }
        if c.exit_code.is_some() {
            ct.exit_code = c.exit_code;
        }
        if c.reason.is_some() {
            ct.reason = c.reason.clone();
        }
        if !c.network_bindings.is_empty() {
            ct.network_bindings = Some(c.network_bindings.clone());
        }
        if c.health_status.is_some() {
            ct.health_status = c.health_status;
        }
        if c.image_digest.is_some() {
            ct.image_digest = c.image_digest.clone();
        }
        if !c.managed_agents.is_empty() {
            ct.managed_agents = Some(
                c.managed_agents
                    .iter()
                    .map(crate::exec::agent_shape)
                    .collect(),
            );
        }
    }
    let t = &mut n.task;
    if t.pull_started_at.is_none() {
        t.pull_started_at = r.pull_started_at.map(crate::time::timestamp);
    }
    if r.pull_stopped_at.is_some() {
        t.pull_stopped_at = r.pull_stopped_at.map(crate::time::timestamp);
    }
    if t.started_at.is_none() {
        t.started_at = r.started_at.map(crate::time::timestamp);
        // Only a task seen RUNNING has started: one that failed to start passes through
        // STOPPING and DEPROVISIONING (awsvpc) without ever running.
        if t.started_at.is_none() && status == TaskStatus::Running {
            t.started_at = Some(now);
        }
    }
    if r.health_status.is_some() {
        t.health_status = r.health_status;
    }
    if status >= TaskStatus::Deactivating && t.stopping_at.is_none() {
        t.stopping_at = Some(now);
    }
    if t.stop_code.is_none() && r.stop_code.is_some() {
        t.stop_code = r.stop_code;
        t.stopped_reason = r.stopped_reason.clone();
    }
    if status == TaskStatus::Stopped {
        if t.execution_stopped_at.is_none() {
            t.execution_stopped_at =
                Some(r.execution_stopped_at.map_or(now, crate::time::timestamp));
        }
        t.stopped_at = Some(now);
        for s in n.container_status.iter_mut() {
            *s = ContainerStatus::Stopped;
        }
        crate::exec::stop_agents(t.containers.iter_mut().flatten());
    }
    // The agent stopped a task it was told to run (an essential container exited, the start
    // failed): the control plane now wants it stopped too, as ECS shows.
    if status >= TaskStatus::Deactivating || r.stop_code.is_some() {
        if let Some(a) = n.assignment.as_mut() {
            if a.desired_status == DesiredStatus::Running {
                a.desired_status = DesiredStatus::Stopped;
                a.version += 1;
                a.stop_code = n.task.stop_code;
                a.stop_reason = n.task.stopped_reason.clone();
            }
        }
    }
    if n != *rec {
        n.task.version += 1;
    }
    n
}

/// StopTask's transition: desired STOPPED with the stop code and reason; unchanged if the task
/// is already meant to stop.
pub fn stop(rec: &TaskRecord, code: TaskStopCode, reason: &str, now: f64) -> TaskRecord {
    let mut n = rec.clone();
    if rec.desired() == DesiredStatus::Stopped || rec.is_stopped() {
        return n;
    }
    // A deactivating task keeps the stop it was asked for (its code and reason).
    let (code, reason) = match (rec.stop_after, rec.task.stop_code, &rec.task.stopped_reason) {
        (Some(_), Some(c), Some(r)) => (c, r.clone()),
        _ => (code, reason.to_string()),
    };
    let reason = reason.as_str();
    n.stop_after = None;
    if let Some(a) = n.assignment.as_mut() {
        a.desired_status = DesiredStatus::Stopped;
        a.version += 1;
        a.stop_code = Some(code);
        a.stop_reason = Some(reason.to_string());
    }
    n.task.stop_code = Some(code);
    n.task.stopped_reason = Some(reason.to_string());
    if n.task.stopping_at.is_none() {
        n.task.stopping_at = Some(now);
    }
    // An awsvpc task shows the whole ECS stop sequence; DEACTIVATING is the control plane's
    // step, before the agent signals the containers (STOPPING).
    if n.network().is_some() && n.last_status.0 < TaskStatus::Deactivating {
        n.last_status = Status(TaskStatus::Deactivating);
    }
    n.task.version += 1;
    n
}

/// Asks a task to stop once its load balancers have drained it, at `until`: the task shows
/// desiredStatus STOPPED, lastStatus DEACTIVATING, and its stop code and reason from now on,
/// while its assignment still says RUNNING, so the agent keeps serving the requests in flight;
/// [`stop`] then makes the stop (with this code and reason). A task already stopping or
/// deactivating is left as it is.
pub fn deactivate(
    rec: &TaskRecord,
    code: TaskStopCode,
    reason: &str,
    now: f64,
    until: f64,
) -> TaskRecord {
    let mut n = rec.clone();
    if rec.desired() == DesiredStatus::Stopped || rec.is_stopped() || rec.stop_after.is_some() {
        return n;
    }
    n.stop_after = Some(until);
    n.task.stop_code = Some(code);
    n.task.stopped_reason = Some(reason.to_string());
    n.task.stopping_at = Some(now);
    if n.last_status.0 < TaskStatus::Deactivating {
        n.last_status = Status(TaskStatus::Deactivating);
    }
    n.task.version += 1;
    n
}

/// The reason ECS gives a Fargate Spot task it interrupts.
pub const SPOT_INTERRUPTED_REASON: &str = "Your Spot Task was interrupted.";

/// A Fargate Spot interruption: desired STOPPED with stop code `SpotInterruption`, and the
/// agent told to give the containers `grace_seconds` (the two-minute warning) between SIGTERM
/// and SIGKILL. Unchanged if the task is already meant to stop.
pub fn interrupt_spot(rec: &TaskRecord, grace_seconds: u64, now: f64) -> TaskRecord {
    let mut n = stop(
        rec,
        TaskStopCode::SpotInterruption,
        SPOT_INTERRUPTED_REASON,
        now,
    );
    if n != *rec {
        if let Some(a) = n.assignment.as_mut() {
            a.stop_grace_seconds = Some(grace_seconds);
        }
    }
    n
}

/// Marks a task stopped by the control plane itself (its instance was deregistered with
/// `force`, which the user asked for: `UserInitiated`): the agent, if any, is told to stop it,
/// and ECS forgets it now.
pub fn orphan(rec: &TaskRecord, reason: &str, now: f64) -> TaskRecord {
    let mut n = stop(rec, TaskStopCode::UserInitiated, reason, now);
    if !n.is_stopped() {
        n.last_status = Status(TaskStatus::Stopped);
        n.task.stopped_at = Some(now);
        n.task.execution_stopped_at.get_or_insert(now);
        for s in n.container_status.iter_mut() {
            *s = ContainerStatus::Stopped;
        }
        crate::exec::stop_agents(n.task.containers.iter_mut().flatten());
        n.task.version += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::{Container, ContainerOverride, PortMapping};
    use flotilla_protocol::ContainerStateReport;

    fn td() -> TaskDefinition {
        TaskDefinition {
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("web".into()),
                image: Some("nginx".into()),
                cpu: 128,
                memory: Some(256),
                environment: Some(vec![KeyValuePair {
                    name: Some("A".into()),
                    value: Some("1".into()),
                }]),
                port_mappings: Some(vec![PortMapping {
                    container_port: Some(80),
                    host_port: Some(8080),
                    ..PortMapping::default()
                }]),
                ..ContainerDefinition::default()
            }]),
            ..TaskDefinition::default()
        }
    }

    #[test]
    fn overrides_merge() {
        let o = TaskOverride {
            container_overrides: Some(vec![ContainerOverride {
                name: Some("web".into()),
                command: Some(vec!["sh".into()]),
                environment: Some(vec![
                    KeyValuePair {
                        name: Some("A".into()),
                        value: Some("2".into()),
                    },
                    KeyValuePair {
                        name: Some("B".into()),
                        value: Some("3".into()),
                    },
                ]),
                memory: Some(512),
                ..ContainerOverride::default()
            }]),
            cpu: Some("1 vCPU".into()),
            ..TaskOverride::default()
        };
        let r = resolve(&td(), Some(&o)).unwrap();
        let c = &r.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(c.environment.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            c.environment.as_ref().unwrap()[0].value.as_deref(),
            Some("2")
        );
        assert_eq!(c.memory, Some(512));
        assert_eq!(r.cpu, Some(1024));
        let spec = task_spec(&r, None);
        let d = spec.demand().unwrap();
        assert_eq!((d.cpu, d.memory, d.ports.clone()), (1024, 512, vec![8080]));

        let bad = TaskOverride {
            container_overrides: Some(vec![ContainerOverride {
                name: Some("nope".into()),
                ..ContainerOverride::default()
            }]),
            ..TaskOverride::default()
        };
        assert!(resolve(&td(), Some(&bad)).is_err());
        let bad_mem = TaskOverride {
            memory: Some("lots".into()),
            ..TaskOverride::default()
        };
        assert!(resolve(&td(), Some(&bad_mem)).is_err());
    }

    fn record() -> TaskRecord {
        TaskRecord {
            task: Task {
                containers: Some(vec![Container {
                    name: Some("web".into()),
                    ..Container::default()
                }]),
                version: 1,
                ..Task::default()
            },
            last_status: Status(TaskStatus::Pending),
            container_status: vec![ContainerStatus::Pending],
            assignment: Some(TaskAssignment {
                task_arn: "t".into(),
                cluster_arn: "c".into(),
                task_definition_arn: "td".into(),
                version: 1,
                desired_status: DesiredStatus::Running,
                stop_reason: None,
                stop_code: None,
                network_mode: NetworkMode::Bridge,
                cpu: None,
                memory: None,
                volumes: vec![],
                pid_mode: None,
                network: None,
                stop_grace_seconds: None,
                task_role_arn: None,
                service_name: None,
                enable_execute_command: false,
                ipc_mode: None,
                containers: vec![],
            }),
            ..TaskRecord::default()
        }
    }

    /// The feed decodes only a record's head: it must be what the whole record says, for every
    /// member it keeps (a renamed member would decode as its default and go unnoticed).
    #[test]
    fn a_record_s_head_decodes_as_the_record_says() {
        let mut t = record();
        t.task.task_arn = Some("arn:aws:ecs:us-east-1:1:task/c/abc".into());
        t.task.launch_type = Some(flotilla_model::shapes::LaunchType::Fargate);
        t.task.started_by = Some("me".into());
        t.task.group = Some("service:web".into());
        t.task.stopped_at = Some(1_700_000_123.5);
        t.last_status = Status(TaskStatus::Running);
        t.cluster = "c".into();
        t.id = "abc".into();
        t.instance_id = "i-1".into();
        t.reservation = Reservation {
            task_arn: "arn:aws:ecs:us-east-1:1:task/c/abc".into(),
            cpu: 256,
            memory: 512,
            ports: vec![8080],
            ports_udp: vec![53],
            group: "service:web".into(),
            family: "web".into(),
            revision: 3,
            started_by: Some("me".into()),
        };
        if let Some(a) = t.assignment.as_mut() {
            a.version = 7;
            a.desired_status = DesiredStatus::Stopped;
        }
        let bytes = serde_json::to_vec(&t).unwrap();
        let head: TaskHead = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(head, TaskHead::of(&t));
        assert_eq!(head.task.stopped_at, Some(1_700_000_123.5));
        assert_eq!(head.assignment_version(), 7);
        assert_eq!(head.desired(), t.desired());
        assert_eq!(head.instance_cluster(), t.instance_cluster());
        assert_ne!(
            head.instance_cluster(),
            "c",
            "a Fargate task runs in the pool"
        );
        assert!(!head.is_stopped());
        let only: AssignmentOnly = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(only.assignment, t.assignment);
        // A record without an assignment.
        t.assignment = None;
        let head: TaskHead = serde_json::from_slice(&serde_json::to_vec(&t).unwrap()).unwrap();
        assert_eq!(head, TaskHead::of(&t));
        assert_eq!(head.desired(), DesiredStatus::Stopped);
    }

    fn report(status: TaskStatus, c: ContainerStatus, exit: Option<i32>) -> TaskStateReport {
        TaskStateReport {
            seq: 1,
            task_arn: "t".into(),
            version: 1,
            last_status: status,
            containers: vec![ContainerStateReport {
                name: "web".into(),
                runtime_id: Some("abc".into()),
                last_status: c,
                exit_code: exit,
                reason: None,
                network_bindings: vec![],
                health_status: None,
                image_digest: None,
                managed_agents: vec![],
            }],
            pull_started_at: Some(10.0),
            pull_stopped_at: Some(11.0),
            started_at: Some(12.0),
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            health_status: None,
        }
    }

    #[test]
    fn reports_apply_idempotently_and_never_go_backwards() {
        let r0 = record();
        let running = report(TaskStatus::Running, ContainerStatus::Running, None);
        let r1 = apply_report(&r0, &running, 20.0);
        assert_eq!(r1.last_status.0, TaskStatus::Running);
        assert_eq!(r1.task.version, 2);
        assert_eq!(r1.task.started_at, Some(12.0));
        assert_eq!(r1.task.connectivity, Some(Connectivity::Connected));
        let c = &r1.task.containers.as_ref().unwrap()[0];
        assert_eq!(c.runtime_id.as_deref(), Some("abc"));
        // The same report again changes nothing.
        assert_eq!(apply_report(&r1, &running, 21.0), r1);
        // An older report does not move the status back.
        let old = report(TaskStatus::Pending, ContainerStatus::Pending, None);
        let r2 = apply_report(&r1, &old, 22.0);
        assert_eq!(r2.last_status.0, TaskStatus::Running);
        assert_eq!(r2.container_status, vec![ContainerStatus::Running]);
        assert_eq!(r2, r1);
        assert_eq!(r1.view(false).last_status.as_deref(), Some("RUNNING"));
    }

    #[test]
    fn an_essential_exit_stops_the_task_and_its_desired_status() {
        let r1 = apply_report(
            &record(),
            &report(TaskStatus::Running, ContainerStatus::Running, None),
            20.0,
        );
        let mut exit = report(TaskStatus::Stopped, ContainerStatus::Stopped, Some(3));
        exit.stop_code = Some(TaskStopCode::EssentialContainerExited);
        exit.stopped_reason = Some("Essential container in task exited".into());
        let r2 = apply_report(&r1, &exit, 30.0);
        assert!(r2.is_stopped());
        assert_eq!(r2.desired(), DesiredStatus::Stopped);
        assert_eq!(r2.assignment_version(), 2);
        assert_eq!(
            r2.task.stop_code,
            Some(TaskStopCode::EssentialContainerExited)
        );
        assert_eq!(r2.task.stopped_at, Some(30.0));
        assert_eq!(r2.task.stopping_at, Some(30.0));
        assert_eq!(r2.task.containers.as_ref().unwrap()[0].exit_code, Some(3));
        // A stopped task never changes again.
        let again = apply_report(
            &r2,
            &report(TaskStatus::Running, ContainerStatus::Running, None),
            40.0,
        );
        assert_eq!(again, r2);
    }

    #[test]
    fn stop_is_a_one_way_transition() {
        let r = record();
        let s = stop(&r, TaskStopCode::UserInitiated, "bye", 5.0);
        assert_eq!(s.desired(), DesiredStatus::Stopped);
        assert_eq!(s.assignment_version(), 2);
        assert_eq!(s.task.stopping_at, Some(5.0));
        assert_eq!(s.task.stopped_reason.as_deref(), Some("bye"));
        assert_eq!(s.view(false).desired_status.as_deref(), Some("STOPPED"));
        assert_eq!(stop(&s, TaskStopCode::UserInitiated, "again", 6.0), s);
        let o = orphan(&r, "gone", 7.0);
        assert!(o.is_stopped());
        assert_eq!(o.desired(), DesiredStatus::Stopped);
    }

    fn awsvpc_record() -> TaskRecord {
        let mut r = record();
        r.last_status = Status(TaskStatus::Provisioning);
        if let Some(a) = r.assignment.as_mut() {
            a.network_mode = NetworkMode::Awsvpc;
            a.network = Some(TaskNetwork {
                attachment_id: "att".into(),
                network_interface_id: "eni-0123456789abcdef0".into(),
                private_ipv4_address: "10.213.0.7".into(),
                mac_address: "0a:58:0a:d5:00:07".into(),
                subnet_cidr: "10.213.0.0/16".into(),
                gateway: "10.213.0.1".into(),
                network_name: "flotilla-awsvpc".into(),
                subnet_id: "subnet-0123456789abcdef0".into(),
                private_dns_name: "ip-10-213-0-7.ec2.internal".into(),
            });
        }
        r
    }

    #[test]
    fn an_awsvpc_task_shows_its_eni_through_its_life() {
        let r = awsvpc_record();
        let v = r.view(false);
        let att = &v.attachments.as_ref().unwrap()[0];
        assert_eq!(att.r#type.as_deref(), Some("ElasticNetworkInterface"));
        assert_eq!(att.status.as_deref(), Some("ATTACHING"));
        let detail = |k: &str| {
            att.details
                .iter()
                .flatten()
                .find(|d| d.name.as_deref() == Some(k))
                .and_then(|d| d.value.clone())
        };
        assert_eq!(detail("privateIPv4Address").as_deref(), Some("10.213.0.7"));
        assert_eq!(detail("macAddress").as_deref(), Some("0a:58:0a:d5:00:07"));
        assert_eq!(
            detail("networkInterfaceId").as_deref(),
            Some("eni-0123456789abcdef0")
        );
        assert_eq!(
            detail("subnetId").as_deref(),
            Some("subnet-0123456789abcdef0")
        );
        let nic = &v.containers.as_ref().unwrap()[0]
            .network_interfaces
            .as_ref()
            .unwrap()[0];
        assert_eq!(nic.private_ipv4_address.as_deref(), Some("10.213.0.7"));
        assert_eq!(nic.attachment_id.as_deref(), Some("att"));
        let running = apply_report(
            &r,
            &report(TaskStatus::Running, ContainerStatus::Running, None),
            20.0,
        );
        assert_eq!(
            running.view(false).attachments.unwrap()[0]
                .status
                .as_deref(),
            Some("ATTACHED")
        );
        // The control plane's own stop step: DEACTIVATING, then the agent takes over.
        let stopping = stop(&running, TaskStopCode::UserInitiated, "bye", 30.0);
        assert_eq!(stopping.last_status.0, TaskStatus::Deactivating);
        assert_eq!(stopping.desired(), DesiredStatus::Stopped);
        let stopped = apply_report(
            &stopping,
            &report(TaskStatus::Stopped, ContainerStatus::Stopped, Some(0)),
            40.0,
        );
        assert_eq!(
            stopped.view(false).attachments.unwrap()[0]
                .status
                .as_deref(),
            Some("DELETED")
        );
        // A bridge task keeps the short stop sequence.
        let bridge = stop(&record(), TaskStopCode::UserInitiated, "bye", 5.0);
        assert_eq!(bridge.last_status.0, TaskStatus::Pending);
        assert!(bridge
            .view(false)
            .attachments
            .unwrap_or_default()
            .is_empty());
    }

    #[test]
    fn a_spot_interruption_gives_the_warning_window() {
        let r = awsvpc_record();
        let s = interrupt_spot(&r, 120, 9.0);
        assert_eq!(s.task.stop_code, Some(TaskStopCode::SpotInterruption));
        assert_eq!(
            s.task.stopped_reason.as_deref(),
            Some(SPOT_INTERRUPTED_REASON)
        );
        let a = s.assignment.as_ref().unwrap();
        assert_eq!(a.stop_grace_seconds, Some(120));
        assert_eq!(a.desired_status, DesiredStatus::Stopped);
        // Interrupting again changes nothing.
        assert_eq!(interrupt_spot(&s, 5, 10.0), s);
    }

    #[test]
    fn a_task_that_never_ran_has_no_start_time() {
        let r = awsvpc_record();
        let mut failing = report(TaskStatus::Deprovisioning, ContainerStatus::Stopped, None);
        failing.started_at = None;
        failing.stop_code = Some(TaskStopCode::TaskFailedToStart);
        let n = apply_report(&r, &failing, 50.0);
        assert_eq!(n.last_status.0, TaskStatus::Deprovisioning);
        assert_eq!(n.task.started_at, None);
        let mut done = failing.clone();
        done.last_status = TaskStatus::Stopped;
        assert_eq!(apply_report(&n, &done, 51.0).task.started_at, None);
    }
}
