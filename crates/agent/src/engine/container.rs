//! One container as its task's owner sees it (`Ctr`): its definition, its observed status,
//! exit code, health, bindings and reason, and the views the pure decisions of
//! [`crate::lifecycle`] take.
//!
//! What this is not: a runtime call. Nothing here talks to the engine; the owner applies what
//! inspecting a container said.

use crate::lifecycle::{ContainerView, Dependency, RestartPolicy};
use crate::runtime::Health;
use crate::{lifecycle, spec};
use flotilla_model::shapes::{
    ContainerDefinition, HealthStatus, NetworkBinding, TransportProtocol,
};
use flotilla_model::status::ContainerStatus;
use tokio::time::Instant;

/// One container as its owner sees it.
pub(super) struct Ctr {
    pub(super) name: String,
    pub(super) def: ContainerDefinition,
    pub(super) essential: bool,
    pub(super) runtime_id: Option<String>,
    pub(super) status: ContainerStatus,
    pub(super) exit_code: Option<i32>,
    pub(super) reason: Option<String>,
    pub(super) bindings: Vec<NetworkBinding>,
    pub(super) health: Option<HealthStatus>,
    pub(super) started: Option<Instant>,
    /// When it was first seen running (epoch seconds on the engine's clock): its
    /// `ExecuteCommandAgent`'s start.
    pub(super) running_since: Option<f64>,
    pub(super) waiting_since: Instant,
    pub(super) image_digest: Option<String>,
    pub(super) stop_requested: bool,
    /// What the engine last said about it, for the task metadata.
    pub(super) facts: Facts,
    /// The runtime's fingerprint of it, read just before its last inspect
    /// ([`crate::runtime::Runtime::state_token`]; `None`: none, or that inspect failed).
    pub(super) token: Option<u64>,
}

/// What inspecting a container last told, for the task metadata endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Facts {
    pub(super) ip_address: Option<String>,
    pub(super) created_at: Option<String>,
    pub(super) started_at: Option<String>,
    pub(super) finished_at: Option<String>,
    pub(super) image_id: Option<String>,
}

impl Ctr {
    pub(super) fn view(&self) -> ContainerView {
        ContainerView {
            name: self.name.clone(),
            essential: self.essential,
            status: self.status,
            exit_code: self.exit_code,
            health: self.health,
            has_health_check: self.def.health_check.is_some(),
        }
    }

    /// Keeps what inspecting the container said that the task metadata shows.
    pub(super) fn note(&mut self, info: &crate::runtime::ContainerInfo) {
        self.facts = Facts {
            // A stopped container has no address; the last one is kept.
            ip_address: info
                .ip_address
                .clone()
                .or_else(|| self.facts.ip_address.clone()),
            created_at: info.created_at.clone(),
            started_at: info.started_at.clone(),
            finished_at: info.finished_at.clone(),
            image_id: info.image_id.clone(),
        };
    }

    /// Applies what inspecting a running container says, at `now_epoch`.
    pub(super) fn apply_running(&mut self, info: &crate::runtime::ContainerInfo, now_epoch: f64) {
        self.status = ContainerStatus::Running;
        self.running_since.get_or_insert(now_epoch);
        self.health = match info.health {
            Health::None => None,
            Health::Starting => Some(HealthStatus::Unknown),
            Health::Healthy => Some(HealthStatus::Healthy),
            Health::Unhealthy => Some(HealthStatus::Unhealthy),
        };
        self.bindings = info
            .bindings
            .iter()
            .map(|b| NetworkBinding {
                bind_ip: Some(if b.host_ip.is_empty() {
                    "0.0.0.0".to_string()
                } else {
                    b.host_ip.clone()
                }),
                container_port: Some(i32::from(b.container_port)),
                host_port: Some(i32::from(b.host_port)),
                protocol: Some(if b.protocol == "udp" {
                    TransportProtocol::Udp
                } else {
                    TransportProtocol::Tcp
                }),
                ..Default::default()
            })
            .collect();
    }

    pub(super) fn deps(&self) -> Vec<Dependency> {
        let mut deps: Vec<Dependency> = self
            .def
            .depends_on
            .iter()
            .flatten()
            .map(|d| Dependency {
                container: d.container_name.clone(),
                condition: d.condition,
            })
            .collect();
        for target in spec::link_targets(&self.def) {
            if !deps.iter().any(|d| d.container == target) {
                deps.push(Dependency {
                    container: target,
                    condition: flotilla_model::shapes::ContainerCondition::Start,
                });
            }
        }
        deps
    }

    pub(super) fn restart_policy(&self) -> Option<RestartPolicy> {
        self.def.restart_policy.as_ref().map(|r| RestartPolicy {
            enabled: r.enabled,
            ignored_exit_codes: r.ignored_exit_codes.clone().unwrap_or_default(),
            attempt_period_s: r
                .restart_attempt_period
                .map(f64::from)
                .unwrap_or(lifecycle::DEFAULT_RESTART_ATTEMPT_PERIOD_S),
        })
    }
}

pub(super) fn to_i32(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(if code < 0 { i32::MIN } else { i32::MAX })
}
