//! The service loop's side of traffic: a service's tasks registered in its target groups
//! (`loadBalancers`) and its Cloud Map service (`serviceRegistries`), their health read back,
//! and their targets drained before they stop, as ECS does.
//!
//! The load balancers and Cloud Map are other services' records (`flotilla-elbv2`,
//! `flotilla-servicediscovery`); the controllers reach them only through the [`Traffic`] trait,
//! which the binary implements over them and puts in the [`crate::Plane`]. A plane without
//! one refuses services that name load balancers or registries.
//!
//! What a reconcile does ([`apply_health`], [`sync`], [`stop_or_drain`]):
//! - every RUNNING task not being stopped is registered in each target group (awsvpc: its IP and
//!   the container port; bridge and host: its instance and host port) and, once healthy, in
//!   the Cloud Map service;
//! - a task counts as healthy for the deployment only when every target group says its target is
//!   `healthy`; a target `unhealthy` past the health check grace period makes the task
//!   unhealthy, so it is replaced and counted by the circuit breaker;
//! - a BLUE_GREEN, LINEAR or CANARY service's tasks register in the target group of their
//!   deployment's side (its own or the `advancedConfiguration`'s alternate one), and [`shift`]
//!   writes the production and test listener rules' weights its deployments ask for;
//! - a task the scheduler stops is first deregistered (its targets go `draining`, its Cloud Map
//!   instance goes) and only stopped once the longest deregistration delay has passed
//!   ([`flotilla_control::tasks::deactivate`]); tasks stopped any other way are deregistered
//!   when seen.

use crate::plane::Plane;
use crate::records::{self, get, task_key, to_bytes, Attempt};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::service_scheduler::blue_green::{self, Side};
use flotilla_control::service_scheduler::{DeploymentRecord, Phase, TaskObs};
use flotilla_control::services::ServiceRecord;
use flotilla_control::tasks::{deactivate, stop, TaskRecord};
use flotilla_control::traffic::{task_instance, task_targets, LbTarget, TargetType};
use flotilla_model::shapes::{LoadBalancer, TaskStopCode};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Fence, Txn};
use std::collections::{BTreeMap, BTreeSet};

/// A target's state in its target group, as DescribeTargetHealth shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Registered, not yet through the healthy threshold.
    Initial,
    /// Passing its health checks: it receives traffic.
    Healthy,
    /// Failing its health checks.
    Unhealthy,
    /// Deregistered, finishing the requests in flight.
    Draining,
    /// Its target group is used by no listener.
    Unused,
    /// Its health cannot be known.
    Unavailable,
}

/// One registered target and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// IP address or instance id.
    pub id: String,
    /// The port.
    pub port: u16,
    /// Its state.
    pub state: TargetState,
}

/// What ECS's validation needs to know of a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    /// `ip` or `instance`.
    pub target_type: TargetType,
    /// Whether a listener or rule of a load balancer forwards to it.
    pub has_load_balancer: bool,
}

/// What the service loop needs from the load balancers and Cloud Map.
#[async_trait::async_trait]
pub trait Traffic: Send + Sync {
    /// The target group, if it exists.
    async fn target_group(&self, arn: &str) -> Result<Option<TargetGroupInfo>, EcsError>;
    /// The targets registered in a target group and their states.
    async fn target_health(&self, arn: &str) -> Result<Vec<TargetHealth>, EcsError>;
    /// Registers targets (`(id, port)`); registering one again changes nothing.
    async fn register_targets(
        &self,
        arn: &str,
        targets: &[(String, u16)],
        now: f64,
    ) -> Result<(), EcsError>;
    /// Deregisters targets: they drain; returns when draining ends (epoch seconds).
    async fn deregister_targets(
        &self,
        arn: &str,
        targets: &[(String, u16)],
        now: f64,
    ) -> Result<f64, EcsError>;
    /// The target groups and weights of the forward action of a listener rule (or of a
    /// listener's default action, by the listener's ARN); `None` when nothing has this ARN.
    async fn listener_rule(&self, arn: &str) -> Result<Option<Vec<(String, u32)>>, EcsError>;
    /// Sets the weights of these target groups in a listener rule's (or listener's) forward
    /// action, which forwards to each of them; whether anything changed.
    async fn set_rule_weights(
        &self,
        arn: &str,
        weights: &[(String, u32)],
    ) -> Result<bool, EcsError>;
    /// Whether the Cloud Map service exists.
    async fn registry_exists(&self, service_arn: &str) -> Result<bool, EcsError>;
    /// The Cloud Map service's instances (ids).
    async fn registry_instances(&self, service_arn: &str) -> Result<BTreeSet<String>, EcsError>;
    /// Registers (or replaces) an instance with these attributes, healthy.
    async fn register_instance(
        &self,
        service_arn: &str,
        instance_id: &str,
        attributes: &BTreeMap<String, String>,
        now: f64,
    ) -> Result<(), EcsError>;
    /// Deregisters an instance (absent is fine).
    async fn deregister_instance(
        &self,
        service_arn: &str,
        instance_id: &str,
    ) -> Result<(), EcsError>;
    /// Starts what runs on the leader only (the health checker), stopped when the handles are
    /// aborted.
    fn leader_loops(&self) -> Vec<tokio::task::JoinHandle<()>>;
}

/// Whether a service sends traffic through load balancers or Cloud Map.
pub fn has_traffic(rec: &ServiceRecord) -> bool {
    rec.service
        .load_balancers
        .as_ref()
        .is_some_and(|l| !l.is_empty())
        || rec
            .service
            .service_registries
            .as_ref()
            .is_some_and(|r| !r.is_empty())
}

/// What a reconcile read of its service's target groups: each group's targets by `(id, port)`.
#[derive(Debug, Default)]
pub struct Health {
    groups: BTreeMap<String, BTreeMap<(String, u16), TargetState>>,
    /// Each task's targets (by task ARN), as it is registered.
    targets: BTreeMap<String, Vec<LbTarget>>,
}

impl Health {
    fn state(&self, t: &LbTarget) -> Option<TargetState> {
        self.groups
            .get(&t.target_group_arn)?
            .get(&(t.id.clone(), t.port))
            .copied()
    }
}

/// The attribute an agent registers with its host's address (bridge and host tasks are reached
/// there).
pub const HOST_ADDRESS_ATTRIBUTE: &str = "flotilla.host-address";

/// The EC2 id and address of each container instance, by instance id.
pub type Hosts = BTreeMap<String, (String, Option<String>)>;

/// The hosts of `instances`: instance id to its EC2 id and address.
pub fn hosts<'a>(instances: impl IntoIterator<Item = &'a InstanceRecord>) -> Hosts {
    instances
        .into_iter()
        .map(|i| {
            let ec2 = i.instance.ec2_instance_id.clone().unwrap_or_default();
            let addr = i
                .instance
                .attributes
                .iter()
                .flatten()
                .find(|a| a.name == HOST_ADDRESS_ATTRIBUTE)
                .and_then(|a| a.value.clone());
            (i.id.clone(), (ec2, addr))
        })
        .collect()
}

/// Reads the service's target groups and folds their health into the scheduler's view of each
/// task: healthy only when every target is `healthy`; unhealthy (replaced) when one is
/// `unhealthy` after the grace period.
pub async fn apply_health(
    traffic: &dyn Traffic,
    rec: &ServiceRecord,
    records: &[TaskRecord],
    obs: &mut [TaskObs],
    hosts: &Hosts,
    grace: f64,
    now: f64,
) -> Result<Health, EcsError> {
    let lbs = rec.service.load_balancers.clone().unwrap_or_default();
    let alternates = alternate(&lbs);
    let mut health = Health::default();
    let groups = lbs
        .iter()
        .chain(alternates.iter())
        .filter_map(|lb| lb.target_group_arn.as_deref());
    for tg in groups {
        if health.groups.contains_key(tg) {
            continue;
        }
        let states = traffic
            .target_health(tg)
            .await?
            .into_iter()
            .map(|t| ((t.id, t.port), t.state))
            .collect();
        health.groups.insert(tg.to_string(), states);
    }
    for (t, o) in records.iter().zip(obs.iter_mut()) {
        let ec2 = hosts.get(&t.instance_id).map_or("", |h| h.0.as_str());
        let side = t
            .task
            .started_by
            .as_deref()
            .map_or(Side::Primary, |d| side_of(rec, d));
        let mine = match side {
            Side::Primary => &lbs,
            Side::Alternate => &alternates,
        };
        let targets = task_targets(mine, t, ec2);
        if o.phase == Phase::Running && !lbs.is_empty() {
            let states: Vec<(&LbTarget, Option<TargetState>)> =
                targets.iter().map(|x| (x, health.state(x))).collect();
            let all_healthy = targets.len() == lbs.len()
                && states.iter().all(|(_, s)| *s == Some(TargetState::Healthy));
            o.healthy = o.healthy && all_healthy;
            let past_grace = t.task.started_at.is_none_or(|s| now >= s + grace);
            if let Some((bad, _)) = states
                .iter()
                .find(|(_, s)| *s == Some(TargetState::Unhealthy))
            {
                if past_grace && !o.unhealthy {
                    o.unhealthy = true;
                    o.unhealthy_in = Some(bad.target_group_arn.clone());
                }
            }
        }
        health.targets.insert(t.arn().to_string(), targets);
    }
    Ok(health)
}

/// The service's load balancers with each one's alternate target group (blue/green) in place
/// of its own; one without an alternate keeps its own.
fn alternate(lbs: &[LoadBalancer]) -> Vec<LoadBalancer> {
    lbs.iter()
        .map(|lb| {
            let mut lb = lb.clone();
            if let Some(alt) = lb
                .advanced_configuration
                .as_ref()
                .and_then(|a| a.alternate_target_group_arn.clone())
            {
                lb.target_group_arn = Some(alt);
            }
            lb
        })
        .collect()
}

/// Which target group of each load balancer the tasks of deployment `id` register in.
fn side_of(rec: &ServiceRecord, id: &str) -> Side {
    rec.deployments
        .iter()
        .chain(rec.history.iter())
        .find(|d| d.id == id)
        .map_or(Side::Primary, |d| d.side)
}

/// Writes the weights the service's deployments (as they are about to be stored) ask of each
/// load balancer's production and test listener rules ([`blue_green::weights`]), for the load
/// balancers with an `advancedConfiguration`; a rule that already says so is not written.
pub async fn shift(
    traffic: &dyn Traffic,
    rec: &ServiceRecord,
    deployments: &[DeploymentRecord],
) -> Result<(), EcsError> {
    let w = blue_green::weights(deployments);
    for lb in rec.service.load_balancers.iter().flatten() {
        let (Some(tg), Some(a)) = (&lb.target_group_arn, &lb.advanced_configuration) else {
            continue;
        };
        let Some(alt) = &a.alternate_target_group_arn else {
            continue;
        };
        let rules = [
            (a.production_listener_rule.as_deref(), w.production),
            (a.test_listener_rule.as_deref(), w.test),
        ];
        for (rule, (main, other)) in rules {
            let Some(rule) = rule.filter(|r| !r.is_empty()) else {
                continue;
            };
            let weights = [(tg.clone(), main), (alt.clone(), other)];
            if traffic.set_rule_weights(rule, &weights).await? {
                tracing::info!(service = %rec.name(), rule, weights = ?weights, "listener rule weights set");
            }
        }
    }
    Ok(())
}

/// Keeps registrations in step with the tasks: RUNNING tasks not being stopped registered in
/// every target group (and, once healthy, in Cloud Map); every other task deregistered.
pub async fn sync(
    traffic: &dyn Traffic,
    rec: &ServiceRecord,
    records: &[TaskRecord],
    obs: &[TaskObs],
    health: &Health,
    hosts: &Hosts,
    now: f64,
) -> Result<(), EcsError> {
    let mut register: BTreeMap<&str, Vec<(String, u16)>> = BTreeMap::new();
    let mut deregister: BTreeMap<&str, Vec<(String, u16)>> = BTreeMap::new();
    for (t, o) in records.iter().zip(obs) {
        for target in health.targets.get(t.arn()).into_iter().flatten() {
            let state = health.state(target);
            let key = (target.id.clone(), target.port);
            if o.phase == Phase::Running {
                if state.is_none() {
                    register
                        .entry(&target.target_group_arn)
                        .or_default()
                        .push(key);
                }
            } else if state.is_some_and(|s| s != TargetState::Draining) {
                deregister
                    .entry(&target.target_group_arn)
                    .or_default()
                    .push(key);
            }
        }
    }
    for (tg, targets) in register {
        tracing::info!(target_group = tg, targets = ?targets, "registering service tasks");
        traffic.register_targets(tg, &targets, now).await?;
    }
    for (tg, targets) in deregister {
        tracing::info!(target_group = tg, targets = ?targets, "deregistering stopped service tasks");
        traffic.deregister_targets(tg, &targets, now).await?;
    }
    sync_registries(traffic, rec, records, obs, hosts, now).await
}

/// Cloud Map: healthy RUNNING tasks registered, every other task of the service deregistered.
async fn sync_registries(
    traffic: &dyn Traffic,
    rec: &ServiceRecord,
    records: &[TaskRecord],
    obs: &[TaskObs],
    hosts: &Hosts,
    now: f64,
) -> Result<(), EcsError> {
    let name = rec.name();
    for reg in rec.service.service_registries.iter().flatten() {
        let Some(arn) = reg.registry_arn.as_deref() else {
            continue;
        };
        let present = traffic.registry_instances(arn).await?;
        for (t, o) in records.iter().zip(obs) {
            let wanted = o.phase == Phase::Running && o.healthy;
            let there = present.contains(&t.id);
            if wanted && !there {
                let host = hosts.get(&t.instance_id).and_then(|h| h.1.as_deref());
                if let Some(mut inst) = task_instance(reg, t, name, host) {
                    // A task set's tasks carry its `externalId`, as ECS registers them.
                    let set = rec
                        .task_sets
                        .iter()
                        .find(|s| t.task.started_by.as_deref() == Some(s.id.as_str()));
                    if let Some(x) = set.and_then(|s| s.external_id.clone()) {
                        inst.attributes
                            .insert("ECS_TASK_SET_EXTERNAL_ID".to_string(), x);
                    }
                    traffic
                        .register_instance(arn, &inst.instance_id, &inst.attributes, now)
                        .await?;
                }
            } else if !wanted && there {
                traffic.deregister_instance(arn, &t.id).await?;
            }
        }
    }
    Ok(())
}

/// Stops a task the scheduler asked to stop: a task registered in target groups is deregistered
/// and deactivated until its targets have drained; the others (and a deactivated task whose
/// time has come) stop at once. Cloud Map instances go with the next [`sync`].
#[allow(clippy::too_many_arguments)]
pub async fn stop_or_drain(
    api: &Plane,
    traffic: &dyn Traffic,
    fence: &Fence,
    health: &Health,
    obs: Option<&TaskObs>,
    cluster: &str,
    arn: &str,
    reason: &str,
    now: f64,
) -> Result<(), EcsError> {
    let Some(id) = records::task_id_in(arn, cluster) else {
        return Ok(());
    };
    let targets: Vec<&LbTarget> = health
        .targets
        .get(arn)
        .into_iter()
        .flatten()
        .filter(|t| health.state(t).is_some_and(|s| s != TargetState::Draining))
        .collect();
    let mut until = now;
    let mut by_group: BTreeMap<&str, Vec<(String, u16)>> = BTreeMap::new();
    for t in &targets {
        by_group
            .entry(&t.target_group_arn)
            .or_default()
            .push((t.id.clone(), t.port));
    }
    for (tg, list) in by_group {
        until = until.max(traffic.deregister_targets(tg, &list, now).await?);
    }
    let failed_health = obs.is_some_and(|o| o.unhealthy_in.is_some());
    let key = task_key(cluster, id);
    api.cas_fenced(&key, Some(fence), || async {
        let Some((rec, rev)) = get::<TaskRecord>(api.store(), &key).await? else {
            return Ok(Attempt::Done(()));
        };
        let code = TaskStopCode::ServiceSchedulerInitiated;
        let mut next = if until > now && rec.stop_after.is_none() {
            deactivate(&rec, code, reason, now, until)
        } else {
            stop(&rec, code, reason, now)
        };
        next.failed_target_health |= failed_health;
        if next == rec {
            return Ok(Attempt::Done(()));
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), rev))
            .put(key.clone(), to_bytes(&next)?);
        Ok(Attempt::Commit(txn, ()))
    })
    .await?;
    tracing::info!(task = %arn, cluster, reason, drain_until = until, "service task stop requested");
    Ok(())
}

/// The deactivated tasks whose targets have drained: their ARNs, to stop now.
pub fn drained(records: &[TaskRecord], now: f64) -> Vec<String> {
    records
        .iter()
        .filter(|t| t.stop_after.is_some_and(|u| u <= now) && !t.is_stopped())
        .map(|t| t.arn().to_string())
        .collect()
}
