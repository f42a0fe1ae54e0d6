//! What a task needs from an instance, and whether an instance has it.
//!
//! What it is: the task-side resource model ([`TaskSpec`], [`ContainerSpec`],
//! [`PortMapping`]) reduced to a [`Demand`] (CPU units, MiB, static TCP and
//! UDP host ports), plus the fit check and the reservation against an
//! instance's remaining [`Resources`]. What it is not: the task definition
//! model of the API (the caller maps that onto these types).
//!
//! Invariants: a [`Demand`]'s port lists are sorted and unique (a task that
//! maps the same static host port twice is rejected as invalid); reserving a
//! demand that does not fit is refused, so remaining CPU and memory never
//! underflow and a taken port is never handed out twice.
//!
//! ECS's rules kept here: a container reserves its hard `memory` if set, else
//! its `memoryReservation`; task-level `cpu`/`memory`, when given, replace the
//! sum over containers; in `bridge` mode a host port of 0 or none is dynamic
//! and needs no reservation to be placed; in `host` mode the host port is the
//! container port; `awsvpc` and `none` take no host ports.

use crate::snapshot::Resources;
use crate::Rejection;

/// A port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (ECS's default).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// ECS's wire string: `tcp` or `udp`.
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// The task's network mode, which decides what a port mapping takes on the
/// host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// Docker bridge (ECS's default on Linux for EC2): host port 0/unset is
    /// dynamic.
    #[default]
    Bridge,
    /// Host networking: the container port is taken on the host.
    Host,
    /// Task ENI: no host ports.
    Awsvpc,
    /// No networking: no host ports.
    None,
}

/// One port mapping of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Port inside the container.
    pub container_port: u16,
    /// Host port: `None` or `Some(0)` is dynamic in bridge mode.
    pub host_port: Option<u16>,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl PortMapping {
    /// A TCP mapping with a static host port.
    pub fn tcp(container_port: u16, host_port: u16) -> Self {
        Self {
            container_port,
            host_port: Some(host_port),
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP mapping with a static host port.
    pub fn udp(container_port: u16, host_port: u16) -> Self {
        Self {
            container_port,
            host_port: Some(host_port),
            protocol: Protocol::Udp,
        }
    }

    /// A TCP mapping with a dynamic host port.
    pub fn dynamic(container_port: u16) -> Self {
        Self {
            container_port,
            host_port: None,
            protocol: Protocol::Tcp,
        }
    }
}

/// One container's resource needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name (used in error messages).
    pub name: String,
    /// CPU units (0 if unset).
    pub cpu: u32,
    /// Hard memory limit in MiB.
    pub memory: Option<u32>,
    /// Soft memory limit in MiB.
    pub memory_reservation: Option<u32>,
    /// Port mappings.
    pub port_mappings: Vec<PortMapping>,
}

/// The resource side of a task definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskSpec {
    /// Task-level CPU units; replaces the containers' sum when set.
    pub cpu: Option<u32>,
    /// Task-level memory in MiB; replaces the containers' sum when set.
    pub memory: Option<u32>,
    /// Network mode.
    pub network_mode: NetworkMode,
    /// The containers.
    pub containers: Vec<ContainerSpec>,
}

impl TaskSpec {
    /// A task with task-level CPU and memory and one container without ports.
    pub fn simple(cpu: u32, memory: u32) -> Self {
        Self {
            cpu: Some(cpu),
            memory: Some(memory),
            network_mode: NetworkMode::Bridge,
            containers: vec![ContainerSpec {
                name: "main".into(),
                ..ContainerSpec::default()
            }],
        }
    }

    /// Reduces the task to what it takes from an instance.
    pub fn demand(&self) -> Result<Demand, DemandError> {
        let cpu = match self.cpu {
            Some(c) => c,
            None => self
                .containers
                .iter()
                .try_fold(0u32, |acc, c| acc.checked_add(c.cpu))
                .ok_or(DemandError::Overflow)?,
        };
        let memory = match self.memory {
            Some(m) => m,
            None => {
                let mut sum = 0u32;
                for c in &self.containers {
                    let m = c.memory.or(c.memory_reservation).ok_or_else(|| {
                        DemandError::MissingMemory {
                            container: c.name.clone(),
                        }
                    })?;
                    sum = sum.checked_add(m).ok_or(DemandError::Overflow)?;
                }
                sum
            }
        };
        let mut ports = Vec::new();
        let mut ports_udp = Vec::new();
        for c in &self.containers {
            for pm in &c.port_mappings {
                let host = match self.network_mode {
                    NetworkMode::Awsvpc | NetworkMode::None => None,
                    NetworkMode::Bridge => pm.host_port.filter(|p| *p != 0),
                    NetworkMode::Host => match pm.host_port {
                        None | Some(0) => Some(pm.container_port),
                        Some(h) if h == pm.container_port => Some(h),
                        Some(h) => {
                            return Err(DemandError::HostPortMismatch {
                                container: c.name.clone(),
                                container_port: pm.container_port,
                                host_port: h,
                            })
                        }
                    },
                };
                let Some(port) = host else { continue };
                let list = match pm.protocol {
                    Protocol::Tcp => &mut ports,
                    Protocol::Udp => &mut ports_udp,
                };
                if list.contains(&port) {
                    return Err(DemandError::DuplicateHostPort {
                        port,
                        protocol: pm.protocol,
                    });
                }
                list.push(port);
            }
        }
        ports.sort_unstable();
        ports_udp.sort_unstable();
        Ok(Demand {
            cpu,
            memory,
            ports,
            ports_udp,
        })
    }
}

/// Why a [`TaskSpec`] has no well-defined demand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    /// No task-level memory and a container with neither `memory` nor
    /// `memoryReservation`.
    #[error("container {container} has neither memory nor memoryReservation and the task sets no memory")]
    MissingMemory {
        /// The container.
        container: String,
    },
    /// The same static host port mapped twice in one task.
    #[error("host port {port}/{} is mapped more than once in the task", protocol.as_ecs_str())]
    DuplicateHostPort {
        /// The port.
        port: u16,
        /// Its protocol.
        protocol: Protocol,
    },
    /// In host mode, a host port that is not the container port.
    #[error("container {container}: in host network mode hostPort ({host_port}) must equal containerPort ({container_port})")]
    HostPortMismatch {
        /// The container.
        container: String,
        /// Its container port.
        container_port: u16,
        /// The host port given.
        host_port: u16,
    },
    /// CPU or memory summing beyond `u32`.
    #[error("task cpu or memory overflows")]
    Overflow,
}

/// What one task takes from an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Demand {
    /// CPU units.
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    /// Static TCP host ports, sorted, unique.
    pub ports: Vec<u16>,
    /// Static UDP host ports, sorted, unique.
    pub ports_udp: Vec<u16>,
}

impl Demand {
    /// Whether the demand fits in `remaining`.
    pub fn fits(&self, remaining: &Resources) -> bool {
        remaining.cpu >= self.cpu
            && remaining.memory >= self.memory
            && !self.ports.iter().any(|p| remaining.ports.contains(*p))
            && !self
                .ports_udp
                .iter()
                .any(|p| remaining.ports_udp.contains(*p))
    }

    /// Every resource reason the demand does not fit, in ECS's order
    /// (CPU, MEMORY, PORTS, PORTS_UDP). Empty if it fits.
    pub fn misfits(&self, remaining: &Resources) -> Vec<Rejection> {
        let mut out = Vec::new();
        if remaining.cpu < self.cpu {
            out.push(Rejection::Cpu);
        }
        if remaining.memory < self.memory {
            out.push(Rejection::Memory);
        }
        if self.ports.iter().any(|p| remaining.ports.contains(*p)) {
            out.push(Rejection::Ports);
        }
        if self
            .ports_udp
            .iter()
            .any(|p| remaining.ports_udp.contains(*p))
        {
            out.push(Rejection::PortsUdp);
        }
        out
    }

    /// Takes the demand out of `remaining`. Returns false, changing nothing,
    /// if it does not fit.
    pub fn reserve(&self, remaining: &mut Resources) -> bool {
        if !self.fits(remaining) {
            return false;
        }
        remaining.cpu -= self.cpu;
        remaining.memory -= self.memory;
        for p in &self.ports {
            remaining.ports.insert(*p);
        }
        for p in &self.ports_udp {
            remaining.ports_udp.insert(*p);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PortSet;

    fn container(cpu: u32, memory: Option<u32>, reservation: Option<u32>) -> ContainerSpec {
        ContainerSpec {
            name: "c".into(),
            cpu,
            memory,
            memory_reservation: reservation,
            port_mappings: vec![],
        }
    }

    #[test]
    fn hard_memory_wins_over_reservation_and_task_level_wins_over_sum() {
        let mut t = TaskSpec {
            containers: vec![
                container(100, Some(512), Some(128)),
                container(50, None, Some(256)),
            ],
            ..TaskSpec::default()
        };
        let d = t.demand().unwrap();
        assert_eq!((d.cpu, d.memory), (150, 768));
        t.cpu = Some(1024);
        t.memory = Some(2048);
        let d = t.demand().unwrap();
        assert_eq!((d.cpu, d.memory), (1024, 2048));
    }

    #[test]
    fn missing_memory_is_an_error() {
        let t = TaskSpec {
            containers: vec![container(1, None, None)],
            ..TaskSpec::default()
        };
        assert!(matches!(t.demand(), Err(DemandError::MissingMemory { .. })));
    }

    #[test]
    fn ports_by_network_mode() {
        let mut c = container(0, Some(1), None);
        c.port_mappings = vec![
            PortMapping::tcp(80, 8080),
            PortMapping::dynamic(81),
            PortMapping {
                container_port: 82,
                host_port: Some(0),
                protocol: Protocol::Tcp,
            },
            PortMapping::udp(53, 53),
        ];
        let mut t = TaskSpec {
            containers: vec![c],
            ..TaskSpec::default()
        };
        let d = t.demand().unwrap();
        assert_eq!(d.ports, vec![8080]);
        assert_eq!(d.ports_udp, vec![53]);
        t.network_mode = NetworkMode::Awsvpc;
        assert!(t.demand().unwrap().ports.is_empty());
        t.network_mode = NetworkMode::Host;
        assert!(matches!(
            t.demand(),
            Err(DemandError::HostPortMismatch { .. })
        ));
        t.containers[0].port_mappings.remove(0);
        assert_eq!(t.demand().unwrap().ports, vec![81, 82]);
    }

    #[test]
    fn duplicate_static_port_is_an_error() {
        let mut c = container(0, Some(1), None);
        c.port_mappings = vec![PortMapping::tcp(80, 80), PortMapping::tcp(81, 80)];
        let t = TaskSpec {
            containers: vec![c],
            ..TaskSpec::default()
        };
        assert!(matches!(
            t.demand(),
            Err(DemandError::DuplicateHostPort { port: 80, .. })
        ));
    }

    #[test]
    fn reserve_refuses_what_does_not_fit() {
        let mut r = Resources {
            cpu: 100,
            memory: 100,
            ports: PortSet::ecs_default_reserved(),
            ports_udp: PortSet::new(),
        };
        let d = Demand {
            cpu: 60,
            memory: 10,
            ports: vec![80],
            ports_udp: vec![],
        };
        assert!(d.reserve(&mut r));
        assert_eq!(d.misfits(&r), vec![Rejection::Cpu, Rejection::Ports]);
        assert!(!d.reserve(&mut r));
        assert_eq!((r.cpu, r.memory), (40, 90));
        let blocked = Demand {
            ports: vec![22],
            ..Demand::default()
        };
        assert_eq!(blocked.misfits(&r), vec![Rejection::Ports]);
    }
}
