//! Service records (`services/CLUSTER/NAME`) and their pure helpers.
//!
//! A [`ServiceRecord`] keeps the ECS `Service` shape for the configuration the API set (name,
//! ARNs, task definition, desired count, deployment configuration, placement, tags, ...), the
//! status as an enum, the deployments ([`DeploymentRecord`], newest first) and the events
//! (newest first, at most [`MAX_EVENTS`]). The API writes the configuration and creates
//! deployments; the service loop (`flotilla_controllers::service_loop`) writes the counts, the deployments'
//! progress and the events. Both write with compare-and-swap on the record's `mod_revision`.

use crate::service_scheduler::blue_green::{Progress, Shift};
use crate::service_scheduler::rebalance;
use crate::service_scheduler::{DeploymentRecord, DeploymentStatus};
use crate::task_sets::{follow_desired, TaskSetRecord, TaskSetStatus};
use flotilla_model::arn::ArnContext;
use flotilla_model::shapes::{
    Deployment, DeploymentConfiguration, DeploymentControllerType, DeploymentRolloutState,
    DeploymentStrategy, LaunchType, Service, ServiceDeploymentStatus, ServiceEvent,
    UpdateServiceRequest,
};
use flotilla_model::{EcsError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Prefix of service records (`services/CLUSTER/NAME`).
pub const SERVICES: &str = "services/";
/// How many events a service keeps (ECS shows the latest 100).
pub const MAX_EVENTS: usize = 100;
/// Default `maximumPercent` of a REPLICA service.
pub const DEFAULT_MAXIMUM_PERCENT: i32 = 200;
/// Default `minimumHealthyPercent` of a REPLICA service.
pub const DEFAULT_MINIMUM_HEALTHY_PERCENT: i32 = 100;

/// The key of a service.
pub fn service_key(cluster: &str, name: &str) -> String {
    format!("{SERVICES}{cluster}/{name}")
}
/// The prefix of one cluster's services.
pub fn service_prefix(cluster: &str) -> String {
    format!("{SERVICES}{cluster}/")
}

/// The status of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ServiceStatus {
    /// Running its tasks.
    #[default]
    Active,
    /// Deleted; its tasks are being stopped.
    Draining,
    /// Deleted, with no task left.
    Inactive,
}

impl ServiceStatus {
    /// The wire string.
    pub fn as_ecs_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::Draining => "DRAINING",
            ServiceStatus::Inactive => "INACTIVE",
        }
    }
}

/// A stored service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The configuration, as the ECS shape (counts, status, deployments and events are filled
    /// by [`ServiceRecord::view`]).
    pub service: Service,
    /// Status.
    pub status: ServiceStatus,
    /// Cluster name.
    pub cluster: String,
    /// The CreateService `clientToken`.
    #[serde(default)]
    pub client_token: Option<String>,
    /// Deployments, newest (PRIMARY) first.
    #[serde(default)]
    pub deployments: Vec<DeploymentRecord>,
    /// Events, newest first.
    #[serde(default)]
    pub events: Vec<ServiceEvent>,
    /// Whether the service was steady at the last reconcile.
    #[serde(default)]
    pub steady: bool,
    /// The last deployment that COMPLETED (id, task definition ARN), for rollbacks.
    #[serde(default)]
    pub last_completed: Option<(String, String)>,
    /// Finished deployments the loop dropped from `deployments`, newest first, at most
    /// [`MAX_HISTORY`] (ListServiceDeployments / DescribeServiceDeployments).
    #[serde(default)]
    pub history: Vec<DeploymentRecord>,
    /// Deployments StopServiceDeployment stopped, by deployment id.
    #[serde(default)]
    pub stopped: BTreeMap<String, StopNote>,
    /// The ids of tasks the scheduler replaced elsewhere because their instance's agent was
    /// lost; when one is seen again (the agent is back) it is stopped first. A task leaves the
    /// set once it has stopped.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replaced: BTreeSet<String>,
    /// The task sets of an `EXTERNAL` or `CODE_DEPLOY` service (such a service has no
    /// deployments), oldest first. Kept in the service's record so a change to a set and to the
    /// service is one compare-and-swap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_sets: Vec<TaskSetRecord>,
    /// An Availability Zone rebalancing is in progress
    /// ([`crate::service_scheduler::rebalance`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalancing: bool,
}

/// How many finished deployments a service keeps.
pub const MAX_HISTORY: usize = 50;

/// A deployment StopServiceDeployment stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopNote {
    /// When (epoch seconds).
    pub at: f64,
    /// With `stopType: ROLLBACK`: the deployment rolled back to (its id) and the rollback
    /// deployment created (its id).
    pub rollback: Option<(String, String)>,
}

impl ServiceRecord {
    /// The deployment controller (ECS when none was given).
    pub fn controller(&self) -> DeploymentControllerType {
        self.service
            .deployment_controller
            .as_ref()
            .map_or(DeploymentControllerType::Ecs, |c| c.r#type)
    }

    /// Whether the service runs task sets (`EXTERNAL` or `CODE_DEPLOY`) rather than ECS's
    /// rolling deployments.
    pub fn uses_task_sets(&self) -> bool {
        self.controller() != DeploymentControllerType::Ecs
    }

    /// The PRIMARY task set, if any.
    pub fn primary_task_set(&self) -> Option<&TaskSetRecord> {
        self.task_sets
            .iter()
            .find(|t| t.status == TaskSetStatus::Primary)
    }

    /// How the service launches its tasks: its capacity provider strategy, or its launch type.
    pub fn launch(&self) -> crate::launch::Launch {
        let strategy = self
            .service
            .capacity_provider_strategy
            .clone()
            .unwrap_or_default();
        let launch_type = if strategy.is_empty() {
            self.service.launch_type.unwrap_or(LaunchType::Ec2)
        } else {
            // A stored strategy was checked when it was set; it is not a mix.
            crate::launch::strategy_launch_type(&strategy).unwrap_or(LaunchType::Fargate)
        };
        crate::launch::Launch {
            launch_type,
            strategy,
        }
    }

    /// The ARN of this service's deployment `id` (`ecs-svc/...`).
    pub fn deployment_arn(&self, arns: &ArnContext, id: &str) -> String {
        service_deployment_arn(arns, &self.cluster, self.name(), id)
    }

    /// The ARN of the service revision of this service's deployment `id`.
    pub fn revision_arn(&self, arns: &ArnContext, id: &str) -> String {
        service_revision_arn(arns, &self.cluster, self.name(), id)
    }

    /// The service name.
    pub fn name(&self) -> &str {
        self.service.service_name.as_deref().unwrap_or("")
    }

    /// The service ARN.
    pub fn arn(&self) -> &str {
        self.service.service_arn.as_deref().unwrap_or("")
    }

    /// The task group of its tasks.
    pub fn group(&self) -> String {
        format!("service:{}", self.name())
    }

    /// `(maximumPercent, minimumHealthyPercent)` with the defaults.
    pub fn percents(&self) -> (u32, u32) {
        let c = self.service.deployment_configuration.as_ref();
        let max = c
            .and_then(|c| c.maximum_percent)
            .unwrap_or(DEFAULT_MAXIMUM_PERCENT);
        let min = c
            .and_then(|c| c.minimum_healthy_percent)
            .unwrap_or(DEFAULT_MINIMUM_HEALTHY_PERCENT);
        (
            u32::try_from(max).unwrap_or(0),
            u32::try_from(min).unwrap_or(0),
        )
    }

    /// Whether the service rebalances its tasks across Availability Zones: ENABLED, and a
    /// configuration that allows it.
    pub fn rebalances(&self) -> bool {
        self.service.availability_zone_rebalancing
            == Some(flotilla_model::shapes::AvailabilityZoneRebalancing::Enabled)
            && rebalance::compatible(rebalance_shape(&self.service)).is_ok()
    }

    /// The deployment alarms, when enabled: their names and whether a failure rolls back.
    pub fn deployment_alarms(&self) -> Option<(Vec<String>, bool)> {
        let a = self
            .service
            .deployment_configuration
            .as_ref()?
            .alarms
            .as_ref()?;
        a.enable.then(|| (a.alarm_names.clone(), a.rollback))
    }

    /// The circuit breaker: `None` when disabled, else whether it rolls back.
    pub fn circuit_breaker(&self) -> Option<bool> {
        let cb = self
            .service
            .deployment_configuration
            .as_ref()?
            .deployment_circuit_breaker
            .as_ref()?;
        cb.enable.then_some(cb.rollback)
    }

    /// Adds events (given oldest first) on top, keeping at most [`MAX_EVENTS`]; a message equal
    /// to the newest event is not repeated. `new_id` names each event added (ECS uses UUIDs).
    pub fn push_events(
        &mut self,
        messages: &[String],
        now: f64,
        new_id: &mut dyn FnMut() -> String,
    ) {
        for m in messages {
            if self.events.first().and_then(|e| e.message.as_deref()) == Some(m.as_str()) {
                continue;
            }
            self.events.insert(
                0,
                ServiceEvent {
                    id: Some(new_id()),
                    created_at: Some(crate::time::timestamp(now)),
                    message: Some(m.clone()),
                },
            );
        }
        self.events.truncate(MAX_EVENTS);
    }

    /// Adds the events of the service (given oldest first) as [`Self::push_events`] does, in
    /// ECS's wording.
    pub fn record_events(
        &mut self,
        events: &[crate::service_scheduler::ServiceEvent],
        now: f64,
        new_id: &mut dyn FnMut() -> String,
    ) {
        let name = self.name().to_string();
        let messages: Vec<String> = events.iter().map(|e| e.render(&name)).collect();
        self.push_events(&messages, now, new_id);
    }

    /// Moves the deployments of `before` that are no longer in `deployments` to the history
    /// (newest first, capped at [`MAX_HISTORY`]), stamped finished at `now`; forgets the stop
    /// notes of deployments no longer kept.
    pub fn record_finished(&mut self, before: &[DeploymentRecord], now: f64) {
        for d in before.iter().rev() {
            let kept = self.deployments.iter().any(|n| n.id == d.id)
                || self.history.iter().any(|h| h.id == d.id);
            if !kept {
                let mut d = d.clone();
                d.status = DeploymentStatus::Active;
                d.updated_at = crate::time::timestamp(now);
                self.history.insert(0, d);
            }
        }
        self.history
            .sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        self.history.truncate(MAX_HISTORY);
        let (deployments, history) = (&self.deployments, &self.history);
        self.stopped.retain(|id, _| {
            deployments
                .iter()
                .chain(history.iter())
                .any(|d| &d.id == id)
        });
    }

    /// Every deployment known (current and finished), newest first.
    pub fn all_deployments(&self) -> Vec<&DeploymentRecord> {
        let mut all: Vec<&DeploymentRecord> =
            self.deployments.iter().chain(self.history.iter()).collect();
        all.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        all
    }

    /// The rollback of a deployment, when it was rolled back (by StopServiceDeployment with
    /// `ROLLBACK`, or by the circuit breaker): the id of the deployment rolled back to and the
    /// rollback deployment.
    pub fn rollback_of(&self, d: &DeploymentRecord) -> Option<(String, &DeploymentRecord)> {
        let all = self.all_deployments();
        // A blue/green rollback: production traffic went back to blue, PRIMARY again.
        if let Some(to) = &d.rolled_back_to {
            return all
                .into_iter()
                .find(|x| &x.id == to)
                .map(|x| (to.clone(), x));
        }
        if let Some(note) = self.stopped.get(&d.id) {
            let (to, rb) = note.rollback.as_ref()?;
            return all
                .into_iter()
                .find(|x| &x.id == rb)
                .map(|x| (to.clone(), x));
        }
        if d.rollout_state != DeploymentRolloutState::Failed {
            return None;
        }
        // The circuit breaker's rollback: the next newer deployment, created as one.
        let newer = all
            .into_iter()
            .filter(|x| x.created_at >= d.created_at && x.id != d.id)
            .min_by(|a, b| a.created_at.total_cmp(&b.created_at))?;
        let to = newer.rolls_back_to.clone()?;
        Some((to, newer))
    }

    /// The ECS service-deployment status of a deployment, with its reason.
    pub fn deployment_status(&self, d: &DeploymentRecord) -> (ServiceDeploymentStatus, String) {
        use ServiceDeploymentStatus as S;
        let primary = self.deployments.first().is_some_and(|p| p.id == d.id);
        let status = if let Some((_, rb)) = self.rollback_of(d) {
            match rb.rollout_state {
                DeploymentRolloutState::Completed => S::RollbackSuccessful,
                DeploymentRolloutState::Failed => S::RollbackFailed,
                _ => S::RollbackInProgress,
            }
        } else if self.stopped.contains_key(&d.id) {
            S::Stopped
        } else {
            match d.rollout_state {
                DeploymentRolloutState::Completed => S::Successful,
                DeploymentRolloutState::Failed => S::Stopped,
                _ if primary => S::InProgress,
                _ => return (S::Stopped, "Replaced by a newer deployment.".into()),
            }
        };
        (status, d.rollout_state_reason.clone())
    }

    /// The service as ECS describes it.
    pub fn view(&self, include_tags: bool) -> Service {
        if self.uses_task_sets() {
            return self.task_set_view(include_tags);
        }
        let mut s = self.service.clone();
        s.status = Some(self.status.as_ecs_str().to_string());
        s.running_count = self
            .deployments
            .iter()
            .map(|d| i32::try_from(d.running_count).unwrap_or(0))
            .sum();
        s.pending_count = self
            .deployments
            .iter()
            .map(|d| i32::try_from(d.pending_count).unwrap_or(0))
            .sum();
        if let Some(p) = self.deployments.first() {
            s.task_definition = Some(p.task_definition.clone());
        }
        s.deployments = Some(
            self.deployments
                .iter()
                .map(|d| deployment_view(d, &s))
                .collect(),
        );
        s.events = Some(self.events.clone());
        s.tags = include_tags.then(|| s.tags.unwrap_or_default());
        s
    }
}

impl ServiceRecord {
    /// The `Service` shape of a task set service: its `taskSets` (newest first) instead of
    /// deployments (an empty list), its counts their sums.
    fn task_set_view(&self, include_tags: bool) -> Service {
        let mut s = self.service.clone();
        s.status = Some(self.status.as_ecs_str().to_string());
        let sum = |f: fn(&TaskSetRecord) -> u32| {
            i32::try_from(self.task_sets.iter().map(|t| u64::from(f(t))).sum::<u64>())
                .unwrap_or(i32::MAX)
        };
        s.running_count = sum(|t| t.running_count);
        s.pending_count = sum(|t| t.pending_count);
        let cluster_arn = s.cluster_arn.clone().unwrap_or_default();
        let service_arn = s.service_arn.clone().unwrap_or_default();
        s.task_sets = Some(
            self.task_sets
                .iter()
                .rev()
                .map(|t| crate::task_sets::view(t, &service_arn, &cluster_arn, false))
                .collect(),
        );
        // ECS answers an empty list (which is why the ServicesStable waiter never sees such a
        // service stable).
        s.deployments = Some(Vec::new());
        s.events = Some(self.events.clone());
        s.tags = include_tags.then(|| s.tags.unwrap_or_default());
        s
    }
}

/// A deployment as ECS describes it, with the service's launch settings (launch type or
/// capacity provider strategy, platform, network configuration).
pub fn deployment_view(d: &DeploymentRecord, s: &Service) -> Deployment {
    Deployment {
        id: Some(d.id.clone()),
        status: Some(d.status.as_ecs_str().to_string()),
        task_definition: Some(d.task_definition.clone()),
        desired_count: i32::try_from(d.desired_count).unwrap_or(i32::MAX),
        pending_count: i32::try_from(d.pending_count).unwrap_or(i32::MAX),
        running_count: i32::try_from(d.running_count).unwrap_or(i32::MAX),
        failed_tasks: i32::try_from(d.failed_tasks).unwrap_or(i32::MAX),
        created_at: Some(d.created_at),
        updated_at: Some(d.updated_at),
        launch_type: s.launch_type,
        capacity_provider_strategy: s.capacity_provider_strategy.clone(),
        platform_version: s.platform_version.clone(),
        platform_family: s.platform_family.clone(),
        network_configuration: s.network_configuration.clone(),
        rollout_state: Some(d.rollout_state),
        rollout_state_reason: Some(d.rollout_state_reason.clone()),
        ..Deployment::default()
    }
}

/// A deployment id, `ecs-svc/` and 19 digits, from any number (the caller's random draw).
pub fn deployment_id(random: u64) -> String {
    let n: u64 = random % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000;
    format!("ecs-svc/{n}")
}

/// A new PRIMARY deployment, IN_PROGRESS, with the id `id` (see [`deployment_id`]).
pub fn new_deployment(
    id: String,
    task_definition: &str,
    desired: u32,
    now: f64,
) -> DeploymentRecord {
    let now = crate::time::timestamp(now);
    DeploymentRecord {
        id,
        status: DeploymentStatus::Primary,
        task_definition: task_definition.to_string(),
        rollout_state: DeploymentRolloutState::InProgress,
        rollout_state_reason: "ECS deployment ecs-svc in progress.".into(),
        desired_count: desired,
        pending_count: 0,
        running_count: 0,
        failed_tasks: 0,
        created_at: now,
        updated_at: now,
        rolls_back_to: None,
        side: Default::default(),
        blue_green: None,
        rolled_back_to: None,
    }
}

/// The minutes a bake time may last (24 hours).
pub const MAX_BAKE_MINUTES: i32 = 1440;

/// Merges the strategy and its settings of `g` into `c`: a configuration of another strategy
/// than the resulting one is refused when given and dropped when only stored; LINEAR and CANARY
/// get ECS's defaults (10 % every 6 minutes; 5 % for 10 minutes); values are checked against
/// ECS's ranges, and BLUE_GREEN needs `bakeTimeInMinutes`.
fn merge_strategy(
    c: &mut DeploymentConfiguration,
    g: &DeploymentConfiguration,
) -> Result<(), EcsError> {
    if g.strategy.is_some() {
        c.strategy = g.strategy;
    }
    if g.bake_time_in_minutes.is_some() {
        c.bake_time_in_minutes = g.bake_time_in_minutes;
    }
    let strategy = c.strategy.unwrap_or(DeploymentStrategy::Rolling);
    let invalid = |m: &str| Err(EcsError::invalid_parameter(m));
    if g.linear_configuration.is_some() && strategy != DeploymentStrategy::Linear {
        return invalid(
            "linearConfiguration is only valid when the deployment strategy is LINEAR.",
        );
    }
    if g.canary_configuration.is_some() && strategy != DeploymentStrategy::Canary {
        return invalid(
            "canaryConfiguration is only valid when the deployment strategy is CANARY.",
        );
    }
    if strategy == DeploymentStrategy::Rolling && g.bake_time_in_minutes.is_some() {
        return invalid("bakeTimeInMinutes is only valid with the BLUE_GREEN, LINEAR and CANARY deployment strategies.");
    }
    if strategy == DeploymentStrategy::Rolling {
        c.bake_time_in_minutes = None;
    }
    if let Some(b) = c.bake_time_in_minutes {
        if !(0..=MAX_BAKE_MINUTES).contains(&b) {
            return invalid("bakeTimeInMinutes must be between 0 and 1440.");
        }
    }
    let tenths = |v: f64| ((v * 10.0).round() - v * 10.0).abs() < 1e-6;
    let minutes_ok = |m: Option<i32>| m.is_none_or(|m| (0..=MAX_BAKE_MINUTES).contains(&m));
    match strategy {
        DeploymentStrategy::Linear => {
            let mut l = g
                .linear_configuration
                .clone()
                .or_else(|| c.linear_configuration.clone())
                .unwrap_or_default();
            let step = *l.step_percent.get_or_insert(10.0);
            l.step_bake_time_in_minutes.get_or_insert(6);
            if !(3.0..=100.0).contains(&step) || !tenths(step) {
                return invalid(
                    "linearConfiguration.stepPercent must be a multiple of 0.1 from 3.0 to 100.0.",
                );
            }
            if !minutes_ok(l.step_bake_time_in_minutes) {
                return invalid(
                    "linearConfiguration.stepBakeTimeInMinutes must be between 0 and 1440.",
                );
            }
            c.linear_configuration = Some(l);
        }
        _ => c.linear_configuration = None,
    }
    match strategy {
        DeploymentStrategy::Canary => {
            let mut k = g
                .canary_configuration
                .clone()
                .or_else(|| c.canary_configuration.clone())
                .unwrap_or_default();
            let pct = *k.canary_percent.get_or_insert(5.0);
            k.canary_bake_time_in_minutes.get_or_insert(10);
            if !(0.1..=100.0).contains(&pct) || !tenths(pct) {
                return invalid("canaryConfiguration.canaryPercent must be a multiple of 0.1 from 0.1 to 100.0.");
            }
            if !minutes_ok(k.canary_bake_time_in_minutes) {
                return invalid(
                    "canaryConfiguration.canaryBakeTimeInMinutes must be between 0 and 1440.",
                );
            }
            c.canary_configuration = Some(k);
        }
        _ => c.canary_configuration = None,
    }
    if strategy == DeploymentStrategy::BlueGreen && c.bake_time_in_minutes.is_none() {
        return invalid("bakeTimeInMinutes is required for the BLUE_GREEN deployment strategy.");
    }
    Ok(())
}

/// How a service's deployments move traffic, when its strategy is BLUE_GREEN, LINEAR or
/// CANARY: the shift and the bake time (minutes); `None` for ROLLING.
pub fn traffic_shift(c: Option<&DeploymentConfiguration>) -> Option<(Shift, u32)> {
    let c = c?;
    let bake = u32::try_from(c.bake_time_in_minutes.unwrap_or(0)).unwrap_or(0);
    let minutes =
        |m: Option<i32>, default: u32| m.map_or(default, |m| u32::try_from(m).unwrap_or(0));
    let shift = match c.strategy? {
        DeploymentStrategy::Rolling => return None,
        DeploymentStrategy::BlueGreen => Shift::BlueGreen,
        DeploymentStrategy::Linear => {
            let l = c.linear_configuration.clone().unwrap_or_default();
            Shift::Linear {
                step_percent: l.step_percent.unwrap_or(10.0),
                step_bake_minutes: minutes(l.step_bake_time_in_minutes, 6),
            }
        }
        DeploymentStrategy::Canary => {
            let k = c.canary_configuration.clone().unwrap_or_default();
            Shift::Canary {
                canary_percent: k.canary_percent.unwrap_or(5.0),
                canary_bake_minutes: minutes(k.canary_bake_time_in_minutes, 10),
            }
        }
    };
    Some((shift, bake))
}

/// The strategy's name as ECS spells it.
pub fn strategy_name(s: DeploymentStrategy) -> &'static str {
    match s {
        DeploymentStrategy::Rolling => "ROLLING",
        DeploymentStrategy::BlueGreen => "BLUE_GREEN",
        DeploymentStrategy::Linear => "LINEAR",
        DeploymentStrategy::Canary => "CANARY",
    }
}

/// A BLUE_GREEN, LINEAR or CANARY strategy needs load balancers, each with an
/// `advancedConfiguration` naming its alternate target group and production listener rule
/// (checked against the load balancer records by the caller).
pub fn check_strategy_traffic(
    c: &DeploymentConfiguration,
    lbs: &[flotilla_model::shapes::LoadBalancer],
) -> Result<(), EcsError> {
    let Some(strategy) = c.strategy.filter(|s| *s != DeploymentStrategy::Rolling) else {
        return Ok(());
    };
    let name = strategy_name(strategy);
    if lbs.is_empty() {
        return Err(EcsError::invalid_parameter(format!(
            "The {name} deployment strategy requires a load balancer: specify loadBalancers with an advancedConfiguration (Service Connect is not supported by this Flotilla server)."
        )));
    }
    for (i, lb) in lbs.iter().enumerate() {
        let Some(a) = lb.advanced_configuration.as_ref() else {
            return Err(EcsError::invalid_parameter(format!(
                "loadBalancers[{i}].advancedConfiguration is required for the {name} deployment strategy."
            )));
        };
        let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
        if !given(&a.alternate_target_group_arn) {
            return Err(EcsError::invalid_parameter(format!(
                "loadBalancers[{i}].advancedConfiguration.alternateTargetGroupArn is required for the {name} deployment strategy."
            )));
        }
        if !given(&a.production_listener_rule) {
            return Err(EcsError::invalid_parameter(format!(
                "loadBalancers[{i}].advancedConfiguration.productionListenerRule is required for the {name} deployment strategy."
            )));
        }
        if a.alternate_target_group_arn == lb.target_group_arn {
            return Err(EcsError::invalid_parameter(format!(
                "loadBalancers[{i}].advancedConfiguration.alternateTargetGroupArn must differ from the load balancer's targetGroupArn."
            )));
        }
    }
    Ok(())
}

/// Checks a deployment configuration and fills ECS's defaults for a REPLICA service.
pub fn deployment_configuration(
    given: Option<&DeploymentConfiguration>,
    base: Option<&DeploymentConfiguration>,
) -> Result<DeploymentConfiguration, EcsError> {
    let mut c = base.cloned().unwrap_or_default();
    if let Some(g) = given {
        if g.maximum_percent.is_some() {
            c.maximum_percent = g.maximum_percent;
        }
        if g.minimum_healthy_percent.is_some() {
            c.minimum_healthy_percent = g.minimum_healthy_percent;
        }
        if g.deployment_circuit_breaker.is_some() {
            c.deployment_circuit_breaker = g.deployment_circuit_breaker.clone();
        }
        if g.alarms.is_some() {
            c.alarms = g.alarms.clone();
        }
        refuse_unserved(g)?;
        merge_strategy(&mut c, g)?;
    }
    let max = *c.maximum_percent.get_or_insert(DEFAULT_MAXIMUM_PERCENT);
    let min = *c
        .minimum_healthy_percent
        .get_or_insert(DEFAULT_MINIMUM_HEALTHY_PERCENT);
    if !(0..=100).contains(&min) {
        return Err(EcsError::invalid_parameter(
            "minimumHealthyPercent must be between 0 and 100.",
        ));
    }
    if !(100..=1000).contains(&max) {
        return Err(EcsError::invalid_parameter(
            "maximumPercent must be between 100 and 1000 for a REPLICA service.",
        ));
    }
    c.deployment_circuit_breaker
        .get_or_insert_with(Default::default);
    Ok(c)
}

/// What a deployment configuration may ask that this server does not do yet, refused rather
/// than ignored: lifecycle hooks (they call AWS Lambda, or pause for ContinueServiceDeployment,
/// neither served) and early success criteria. Deployment alarms are checked
/// (`service_scheduler::alarms::check`).
fn refuse_unserved(g: &DeploymentConfiguration) -> Result<(), EcsError> {
    let unsupported = |m: String| Err(EcsError::new(ErrorCode::UnsupportedFeatureException, m));
    if g.lifecycle_hooks.as_ref().is_some_and(|h| !h.is_empty()) {
        return unsupported(
            "Deployment lifecycle hooks (deploymentConfiguration.lifecycleHooks) are not supported by this Flotilla server: AWS_LAMBDA hooks invoke AWS Lambda and PAUSE hooks wait for ContinueServiceDeployment, neither of which it serves."
                .to_string(),
        );
    }
    if g.early_success_criteria.is_some() {
        return unsupported(
            "deploymentConfiguration.earlySuccessCriteria is not supported by this Flotilla server yet."
                .to_string(),
        );
    }
    crate::service_scheduler::alarms::check(g.alarms.as_ref())
}

/// The digits of a deployment id (`ecs-svc/<digits>`).
pub fn deployment_digits(id: &str) -> &str {
    id.strip_prefix("ecs-svc/").unwrap_or(id)
}

/// `arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID`.
pub fn service_deployment_arn(arns: &ArnContext, cluster: &str, service: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:service-deployment/{cluster}/{service}/{}",
        arns.region,
        arns.account,
        deployment_digits(id)
    )
}

/// `arn:aws:ecs:REGION:ACCOUNT:service-revision/CLUSTER/SERVICE/ID` (one revision per
/// deployment: the same id).
pub fn service_revision_arn(arns: &ArnContext, cluster: &str, service: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:service-revision/{cluster}/{service}/{}",
        arns.region,
        arns.account,
        deployment_digits(id)
    )
}

/// `(cluster, service, deployment id)` of a service-deployment or service-revision ARN of this
/// server's region and account (`kind` is `service-deployment` or `service-revision`).
pub fn parse_deployment_arn(
    arns: &ArnContext,
    value: &str,
    kind: &str,
) -> Option<(String, String, String)> {
    let prefix = format!("arn:aws:ecs:{}:{}:{kind}/", arns.region, arns.account);
    let rest = value.strip_prefix(&prefix)?;
    let mut parts = rest.split('/');
    let (c, s, id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || c.is_empty() || s.is_empty() || id.is_empty() {
        return None;
    }
    if !id.chars().all(|ch| ch.is_ascii_digit()) {
        return None;
    }
    Some((c.to_string(), s.to_string(), format!("ecs-svc/{id}")))
}

/// ECS's `ServiceNotFoundException`.
pub fn service_not_found() -> EcsError {
    EcsError::new(ErrorCode::ServiceNotFoundException, "Service not found.")
}

/// ECS's `ServiceNotActiveException`.
pub fn service_not_active() -> EcsError {
    EcsError::new(
        ErrorCode::ServiceNotActiveException,
        "Service was not ACTIVE.",
    )
}

/// The service name a request member refers to (a name or an ARN, short or long format),
/// checking that a long ARN's cluster is `cluster`.
pub fn service_name_in<'a>(value: &'a str, cluster: &str) -> Option<&'a str> {
    if !value.starts_with("arn:") {
        return (!value.is_empty() && !value.contains('/')).then_some(value);
    }
    let p = flotilla_model::arn::parse(value)?;
    if p.resource_type != "service" {
        return None;
    }
    if let Some(c) = flotilla_model::arn::embedded_cluster(value) {
        if c != cluster {
            return None;
        }
    }
    flotilla_model::arn::resource_name(value, "service")
}

/// Applies UpdateService to a service record (checked by the caller: the service is ACTIVE,
/// `new_task_definition` is valid): settings replaced, and a new PRIMARY deployment (with the id
/// `deployment_id`) when the task definition, launch, network or placement changes or the
/// request forces one; otherwise the primary follows the desired count. Returns whether a
/// deployment started.
pub fn apply_update(
    rec: &mut ServiceRecord,
    req: &UpdateServiceRequest,
    new_task_definition: Option<&str>,
    deployment_id: String,
    now: f64,
) -> Result<bool, EcsError> {
    let mut wanted = apply_settings(&mut rec.service, req)?;
    let current_td = rec
        .deployments
        .first()
        .map(|d| d.task_definition.clone())
        .or_else(|| rec.service.task_definition.clone())
        .unwrap_or_default();
    let td = new_task_definition.map_or_else(|| current_td.clone(), str::to_string);
    wanted |= td != current_td;
    let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
    if wanted {
        let mut new = new_deployment(deployment_id, &td, desired, now);
        // A rolling deployment stays in the target group the service's traffic is in.
        new.side = rec.deployments.first().map(|d| d.side).unwrap_or_default();
        if let Some((shift, bake)) = traffic_shift(rec.service.deployment_configuration.as_ref()) {
            green(&mut new, &rec.deployments, shift, bake, now);
        }
        for d in rec.deployments.iter_mut() {
            d.status = DeploymentStatus::Active;
            d.desired_count = 0;
            d.updated_at = now;
        }
        rec.deployments.insert(0, new);
        rec.service.task_definition = Some(td);
        rec.steady = false;
    } else if let Some(p) = rec.deployments.first_mut() {
        if p.desired_count != desired {
            p.desired_count = desired;
            p.updated_at = now;
            rec.steady = false;
        }
    }
    Ok(wanted)
}

/// Sets the desired count as an UpdateService naming only `desiredCount` does (what Application
/// Auto Scaling changes): the primary deployment, or every task set, follows it; no new
/// deployment starts.
pub fn set_desired_count(rec: &mut ServiceRecord, desired: u32, now: f64) -> Result<(), EcsError> {
    let req = UpdateServiceRequest {
        service: rec.service.service_name.clone().unwrap_or_default(),
        desired_count: Some(i32::try_from(desired).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    if rec.uses_task_sets() {
        apply_task_set_update(rec, &req, now)
    } else {
        apply_update(rec, &req, None, String::new(), now).map(|_| ())
    }
}

/// Makes `new` the green deployment of a BLUE_GREEN, LINEAR or CANARY service whose current
/// deployments are `current` (newest first): blue is the deployment production traffic is on
/// (the current primary, or the blue of a green deployment that did not complete), and green
/// takes the other target group. With no deployment to replace, `new` stays as it is.
fn green(
    new: &mut DeploymentRecord,
    current: &[DeploymentRecord],
    shift: Shift,
    bake: u32,
    now: f64,
) {
    let Some(prev) = current.first() else {
        return;
    };
    let blue_id = match &prev.blue_green {
        Some(p) if prev.rollout_state != DeploymentRolloutState::Completed => p.blue.clone(),
        _ => prev.id.clone(),
    };
    let Some(blue) = current.iter().find(|d| d.id == blue_id) else {
        return;
    };
    new.side = blue.side.other();
    let reconcile = current.iter().any(|d| d.id != blue_id);
    new.blue_green = Some(Progress::new(shift, bake, blue_id, reconcile, now));
}

/// Applies UpdateService to a task set service (`EXTERNAL` or `CODE_DEPLOY`): only the desired
/// count (which every set's computed count follows), the health check grace period and the
/// other settings that start no deployment; what a new task set would carry is refused, as ECS
/// refuses it.
pub fn apply_task_set_update(
    rec: &mut ServiceRecord,
    req: &UpdateServiceRequest,
    now: f64,
) -> Result<(), EcsError> {
    check_task_set_update(rec.controller(), req)?;
    apply_settings(&mut rec.service, req)?;
    let desired = u32::try_from(rec.service.desired_count).unwrap_or(0);
    follow_desired(&mut rec.task_sets, desired, now);
    rec.steady &= rec.task_sets.iter().all(|t| t.steady);
    Ok(())
}

/// The UpdateService members a task set service does not take, with ECS's messages.
pub fn check_task_set_update(
    controller: DeploymentControllerType,
    req: &UpdateServiceRequest,
) -> Result<(), EcsError> {
    let (name, how) = match controller {
        DeploymentControllerType::CodeDeploy => (
            "CODE_DEPLOY",
            "Use AWS CodeDeploy to trigger a new deployment.",
        ),
        _ => (
            "EXTERNAL",
            "Create a new task set to trigger a new deployment.",
        ),
    };
    let refused = [
        (req.task_definition.is_some(), "task definition"),
        (req.load_balancers.is_some(), "load balancers"),
        (req.service_registries.is_some(), "service registries"),
        (req.network_configuration.is_some(), "network configuration"),
        (req.platform_version.is_some(), "platform version"),
        (
            req.capacity_provider_strategy.is_some(),
            "capacity provider strategy",
        ),
        (req.force_new_deployment, "force new deployment"),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, what)) => Err(EcsError::invalid_parameter(format!(
            "Unable to update {what} on services with a {name} deployment controller. {how}"
        ))),
        None => Ok(()),
    }
}

/// What AZ rebalancing needs to know of a service's configuration.
pub fn rebalance_shape(s: &Service) -> rebalance::Shape<'_> {
    let max = s
        .deployment_configuration
        .as_ref()
        .and_then(|c| c.maximum_percent)
        .unwrap_or(DEFAULT_MAXIMUM_PERCENT);
    rebalance::Shape {
        scheduling: s
            .scheduling_strategy
            .unwrap_or(flotilla_model::shapes::SchedulingStrategy::Replica),
        launch_type: s.launch_type,
        maximum_percent: u32::try_from(max).unwrap_or(0),
        strategies: s.placement_strategy.as_deref().unwrap_or(&[]),
        constraints: s.placement_constraints.as_deref().unwrap_or(&[]),
        providers: s.capacity_provider_strategy.as_ref().map_or(0, Vec::len),
    }
}

/// Replaces the settings UpdateService names; whether one of them needs a new deployment.
fn apply_settings(s: &mut Service, req: &UpdateServiceRequest) -> Result<bool, EcsError> {
    if let Some(d) = req.desired_count {
        s.desired_count = d;
    }
    if req.deployment_configuration.is_some() {
        s.deployment_configuration = Some(deployment_configuration(
            req.deployment_configuration.as_ref(),
            s.deployment_configuration.as_ref(),
        )?);
    }
    let mut wanted = req.force_new_deployment;
    if let Some(strategy) = req
        .capacity_provider_strategy
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        wanted |= s.capacity_provider_strategy.as_deref() != Some(strategy);
        s.capacity_provider_strategy = Some(strategy.to_vec());
        s.launch_type = None;
    }
    wanted |= replace(&mut s.network_configuration, &req.network_configuration);
    wanted |= replace(&mut s.platform_version, &req.platform_version);
    wanted |= replace(&mut s.placement_constraints, &req.placement_constraints);
    wanted |= replace(&mut s.placement_strategy, &req.placement_strategy);
    // ECS starts a new deployment when the load balancers or registries change.
    wanted |= replace(&mut s.load_balancers, &req.load_balancers);
    wanted |= replace(&mut s.service_registries, &req.service_registries);
    if let Some(g) = req.health_check_grace_period_seconds {
        s.health_check_grace_period_seconds = Some(g);
    }
    // Never a new deployment. ENABLED is checked against the configuration as updated.
    if let Some(r) = req.availability_zone_rebalancing {
        if r == flotilla_model::shapes::AvailabilityZoneRebalancing::Enabled {
            rebalance::compatible(rebalance_shape(s)).map_err(|why| why.error())?;
        }
        s.availability_zone_rebalancing = Some(r);
    }
    if let Some(p) = req.propagate_tags {
        s.propagate_tags = Some(p);
    }
    if let Some(e) = req.enable_ecs_managed_tags {
        s.enable_ecs_managed_tags = e;
    }
    if let Some(e) = req.enable_execute_command {
        s.enable_execute_command = e;
    }
    Ok(wanted)
}

/// Sets `current` to `given` when given; whether that changed it.
fn replace<T: Clone + PartialEq>(current: &mut Option<T>, given: &Option<T>) -> bool {
    match given {
        Some(v) => {
            let changed = current.as_ref() != Some(v);
            *current = Some(v.clone());
            changed
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_have_19_digits() {
        for n in [
            0,
            1,
            8_999_999_999_999_999_999,
            u64::MAX,
            0x5555_5555_5555_5555,
        ] {
            let id = deployment_id(n);
            let digits = id.strip_prefix("ecs-svc/").unwrap_or("");
            assert_eq!(digits.len(), 19, "{id}");
            assert!(digits.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn events_are_newest_first_capped_and_not_repeated() {
        let mut r = ServiceRecord::default();
        for i in 0..150 {
            r.push_events(&[format!("e{i}")], f64::from(i), &mut || format!("id{i}"));
        }
        r.push_events(&["e149".to_string()], 200.0, &mut || "id".to_string());
        assert_eq!(r.events.len(), MAX_EVENTS);
        assert_eq!(r.events[0].message.as_deref(), Some("e149"));
        assert_eq!(r.events[99].message.as_deref(), Some("e50"));
    }

    #[test]
    fn deployment_configuration_defaults_and_limits() {
        let c = deployment_configuration(None, None).unwrap_or_default();
        assert_eq!(c.maximum_percent, Some(200));
        assert_eq!(c.minimum_healthy_percent, Some(100));
        let bad = DeploymentConfiguration {
            minimum_healthy_percent: Some(150),
            ..Default::default()
        };
        assert!(deployment_configuration(Some(&bad), None).is_err());
    }

    #[test]
    fn circuit_breaker_rollbacks_have_rollback_statuses() {
        let dep = |id: &str, state, reason: &str, at: f64| {
            let mut d = new_deployment(deployment_id(at.to_bits()), "td", 1, at);
            d.id = id.into();
            d.rollout_state = state;
            d.rollout_state_reason = reason.into();
            d
        };
        let mut r = ServiceRecord {
            deployments: vec![
                DeploymentRecord {
                    rolls_back_to: Some("ecs-svc/1".into()),
                    ..dep(
                        "ecs-svc/3",
                        DeploymentRolloutState::InProgress,
                        "rolling back",
                        3.0,
                    )
                },
                dep("ecs-svc/2", DeploymentRolloutState::Failed, "failed", 2.0),
            ],
            ..ServiceRecord::default()
        };
        r.record_finished(
            &[dep("ecs-svc/1", DeploymentRolloutState::Completed, "", 1.0)],
            4.0,
        );
        assert_eq!(r.history.len(), 1);
        let failed = r.deployments[1].clone();
        assert_eq!(
            r.deployment_status(&failed).0,
            ServiceDeploymentStatus::RollbackInProgress
        );
        assert_eq!(
            r.rollback_of(&failed).map(|(to, _)| to),
            Some("ecs-svc/1".to_string())
        );
        r.deployments[0].rollout_state = DeploymentRolloutState::Completed;
        assert_eq!(
            r.deployment_status(&failed).0,
            ServiceDeploymentStatus::RollbackSuccessful
        );
        let ids: Vec<&str> = r.all_deployments().iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["ecs-svc/3", "ecs-svc/2", "ecs-svc/1"]);
    }

    #[test]
    fn deployment_arns_round_trip() {
        let a = ArnContext {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        let arn = service_deployment_arn(&a, "c1", "web", "ecs-svc/42");
        assert_eq!(
            arn,
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/c1/web/42"
        );
        assert_eq!(
            parse_deployment_arn(&a, &arn, "service-deployment"),
            Some(("c1".into(), "web".into(), "ecs-svc/42".into()))
        );
        assert_eq!(parse_deployment_arn(&a, &arn, "service-revision"), None);
        assert_eq!(
            parse_deployment_arn(
                &a,
                "arn:aws:ecs:us-east-1:123456789012:service-deployment/c1/web/x",
                "service-deployment"
            ),
            None
        );
    }

    #[test]
    fn service_names_from_arns() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service/c1/web";
        assert_eq!(service_name_in(arn, "c1"), Some("web"));
        assert_eq!(service_name_in(arn, "c2"), None);
        assert_eq!(service_name_in("web", "c2"), Some("web"));
    }
}
