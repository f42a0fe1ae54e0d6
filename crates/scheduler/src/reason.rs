//! Why an instance was ruled out, as ECS says it.
//!
//! What it is: the [`Rejection`] enum (one variant per reason, each with
//! ECS's wire string such as `RESOURCE:MEMORY`), the per-instance list
//! [`InstanceRejection`] a user can be shown, and the [`EcsFailure`] entries
//! RunTask's `failures` is made of. What it is not: an error type — a
//! rejection is a normal outcome of placement, not a fault.
//!
//! Invariants: an [`InstanceRejection`] always holds at least one reason, in
//! the order placement checks them (status, agent, CPU, memory, ports, UDP
//! ports, constraints); its first reason is the one ECS would report.

use crate::snapshot::InstanceStatus;

/// One reason an instance cannot take a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// The instance is not ACTIVE (e.g. DRAINING). ECS silently skips such
    /// instances: [`Rejection::reported_by_ecs`] is false.
    NotActive(InstanceStatus),
    /// The agent is not connected (`AGENT`).
    Agent,
    /// Not enough CPU (`RESOURCE:CPU`).
    Cpu,
    /// Not enough memory (`RESOURCE:MEMORY`).
    Memory,
    /// A static TCP host port is taken (`RESOURCE:PORTS`).
    Ports,
    /// A static UDP host port is taken (`RESOURCE:PORTS_UDP`).
    PortsUdp,
    /// A memberOf constraint does not hold (`ATTRIBUTE`); the index is the
    /// constraint's position among the request's constraints (task
    /// definition's first, then the request's).
    MemberOf(usize),
    /// distinctInstance: the instance already runs a task of the group
    /// (`ATTRIBUTE`).
    DistinctInstance,
    /// The instance named (StartTask) is not in the cluster (`MISSING`).
    Missing,
}

impl Rejection {
    /// ECS's wire string for RunTask's / StartTask's `failures[].reason`.
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            Self::NotActive(_) => "INACTIVE",
            Self::Agent => "AGENT",
            Self::Cpu => "RESOURCE:CPU",
            Self::Memory => "RESOURCE:MEMORY",
            Self::Ports => "RESOURCE:PORTS",
            Self::PortsUdp => "RESOURCE:PORTS_UDP",
            Self::MemberOf(_) | Self::DistinctInstance => "ATTRIBUTE",
            Self::Missing => "MISSING",
        }
    }

    /// Whether ECS lists this reason in `failures` (it does not list
    /// instances that are not ACTIVE for RunTask; it does for StartTask's
    /// explicitly named instances, which is the caller's choice).
    pub fn reported_by_ecs(self) -> bool {
        !matches!(self, Self::NotActive(_))
    }

    /// A sentence for humans (console, CLI).
    pub fn describe(self) -> String {
        match self {
            Self::NotActive(s) => format!("instance is {}, not ACTIVE", s.as_ecs_str()),
            Self::Agent => "container agent is not connected".into(),
            Self::Cpu => "not enough CPU units remaining".into(),
            Self::Memory => "not enough memory remaining".into(),
            Self::Ports => "a required TCP host port is already in use".into(),
            Self::PortsUdp => "a required UDP host port is already in use".into(),
            Self::MemberOf(i) => format!("memberOf constraint #{} does not match", i + 1),
            Self::DistinctInstance => "distinctInstance: already runs a task of this group".into(),
            Self::Missing => "no such container instance in the cluster".into(),
        }
    }
}

/// Every reason one instance was ruled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRejection {
    /// Index of the instance in the snapshot (`usize::MAX` for a
    /// [`Rejection::Missing`] instance, which is not in it).
    pub instance_index: usize,
    /// Container instance id.
    pub instance_id: String,
    /// Container instance ARN (or the id given, for a missing instance).
    pub arn: String,
    /// The reasons, never empty, first is primary.
    pub reasons: Vec<Rejection>,
}

impl InstanceRejection {
    /// The reason ECS would report (the first).
    pub fn primary(&self) -> Rejection {
        self.reasons.first().copied().unwrap_or(Rejection::Missing)
    }
}

/// One entry of ECS's `failures` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsFailure {
    /// `arn` field: the container instance ARN.
    pub arn: String,
    /// `reason` field, e.g. `RESOURCE:MEMORY`.
    pub reason: String,
}

/// Builds ECS's `failures` from per-instance rejections: one entry per
/// instance with its primary reason, skipping what ECS does not report.
pub fn ecs_failures(rejections: &[InstanceRejection]) -> Vec<EcsFailure> {
    rejections
        .iter()
        .filter(|r| r.primary().reported_by_ecs())
        .map(|r| EcsFailure {
            arn: r.arn.clone(),
            reason: r.primary().as_ecs_str().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings() {
        assert_eq!(Rejection::Cpu.as_ecs_str(), "RESOURCE:CPU");
        assert_eq!(Rejection::Memory.as_ecs_str(), "RESOURCE:MEMORY");
        assert_eq!(Rejection::Ports.as_ecs_str(), "RESOURCE:PORTS");
        assert_eq!(Rejection::PortsUdp.as_ecs_str(), "RESOURCE:PORTS_UDP");
        assert_eq!(Rejection::MemberOf(0).as_ecs_str(), "ATTRIBUTE");
        assert_eq!(Rejection::Agent.as_ecs_str(), "AGENT");
        assert_eq!(Rejection::Missing.as_ecs_str(), "MISSING");
    }

    #[test]
    fn failures_skip_inactive_and_use_primary() {
        let rs = vec![
            InstanceRejection {
                instance_index: 0,
                instance_id: "a".into(),
                arn: "arn:a".into(),
                reasons: vec![Rejection::Memory, Rejection::Ports],
            },
            InstanceRejection {
                instance_index: 1,
                instance_id: "b".into(),
                arn: "arn:b".into(),
                reasons: vec![Rejection::NotActive(InstanceStatus::Draining)],
            },
        ];
        assert_eq!(
            ecs_failures(&rs),
            vec![EcsFailure {
                arn: "arn:a".into(),
                reason: "RESOURCE:MEMORY".into()
            }]
        );
        assert!(Rejection::DistinctInstance.describe().contains("distinct"));
    }
}
