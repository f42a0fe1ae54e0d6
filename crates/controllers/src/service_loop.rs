//! The service scheduler's driver: one reconcile loop for every service, in the server process.
//!
//! - Triggers: store watches on `services/`, `tasks/` (a task of group `service:NAME`
//!   wakes its service) and `container-instances/` (a change wakes the cluster's services), plus a resync of every service each [`RESYNC`] as a safety net (and
//!   for throttled starts whose wait ran out). Level-triggered: a reconcile reads everything
//!   afresh, so a lost or repeated trigger is harmless.
//! - One worker reconciles the dirty services one at a time, so one service is never
//!   reconciled concurrently.
//! - A reconcile reads the service and its tasks, calls the pure
//!   [`compute_service_actions`](flotilla_control::service_scheduler::compute_service_actions) (through [`compute_blue_green_actions`], which drives a BLUE_GREEN, LINEAR or CANARY deployment in progress), then applies: stops with the transition StopTask uses
//!   ([`flotilla_control::tasks::stop`], stop code `ServiceSchedulerInitiated`), starts through the one
//!   placement writer ([`crate::placement::place`]) with the service's strategies (default:
//!   spread over `attribute:ecs.availability-zone`, then `instanceId`) and constraints, and
//!   writes the service (counts, deployments, events) with a compare-and-swap; a lost race
//!   queues the service again. Tasks on DRAINING instances are replaced (new ones placed
//!   elsewhere first, within maximumPercent; the old ones stopped within minimumHealthyPercent).
//!   Tasks on an instance whose agent is disconnected count as gone and are replaced; when the
//!   agent returns, the tasks that were replaced are stopped first (the scheduler's
//!   [`Actions::replaced_after`], stored in the service with the compare-and-swap: the lost
//!   tasks whose places this reconcile's placements took). DAEMON services use [`compute_daemon_actions`] on
//!   the ACTIVE, connected instances and start on named instances (the StartTask target), at
//!   most [`flotilla_scheduler::MAX_START_INSTANCES`] per placement.
//! - Every write of a reconcile (its stops, its placements, the service) is fenced with the
//!   term the loop was started for; a refused one ends the reconcile with
//!   [`records::deposed`], and the worker stops.

use crate::placement::{self, Committed, PlacementFailure, Target};
use crate::plane::Plane;
use crate::records::{self, commit_fenced, get, task_key, task_prefix, to_bytes, Attempt};
use crate::traffic;
use flotilla_control::instances::InstanceRecord;
use flotilla_control::launch;
use flotilla_control::service_scheduler::rebalance::AZ_ATTRIBUTE;
use flotilla_control::service_scheduler::{
    compute_blue_green_actions, compute_daemon_actions, Actions, Phase, ServiceEvent, ServiceSpec,
    TaskObs, Unplaced,
};
use flotilla_control::services::{
    deployment_id, service_key, ServiceRecord, ServiceStatus, SERVICES,
};
use flotilla_control::tasks::{stop, TaskRecord};
use flotilla_control::template::{placement_request, Common};
use flotilla_model::shapes::{
    HealthStatus, LaunchType, PlacementConstraint, PlacementConstraintType, PlacementStrategy,
    PlacementStrategyType, PropagateTags, SchedulingStrategy, TaskStopCode,
};
use flotilla_model::status::TaskStatus;
use flotilla_model::EcsError;
use flotilla_protocol::DesiredStatus;
use flotilla_scheduler::InstanceStatus;
use flotilla_store::{Compare, Event, Fence, Txn};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often every service is reconciled even without a change.
pub const RESYNC: Duration = Duration::from_secs(5);

type Key = (String, String);

/// Starts the watcher and the worker, whose writes are fenced with `fence`; both end when the
/// plane is dropped or their handles are aborted, and both once the fence refuses a write.
pub fn spawn(plane: Weak<Plane>, fence: &Fence) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::unbounded_channel::<Key>();
    vec![
        tokio::spawn(watcher(plane.clone(), tx)),
        tokio::spawn(worker(plane, rx, fence.clone())),
    ]
}

fn service_of_key(key: &str) -> Option<Key> {
    let (c, n) = key.strip_prefix(SERVICES)?.split_once('/')?;
    Some((c.to_string(), n.to_string()))
}

async fn all_services(api: &Plane) -> Vec<Key> {
    match records::list::<ServiceRecord>(api.store.as_ref(), SERVICES).await {
        Ok(all) => all
            .into_iter()
            .filter(|(_, s, _)| s.status != ServiceStatus::Inactive)
            .filter_map(|(k, _, _)| service_of_key(&k))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list services");
            Vec::new()
        }
    }
}

/// The members of a task record the watcher needs: decoding only them skips the rest of the
/// record (containers, assignment, attachments), which matters at thousands of writes a second.
#[derive(serde::Deserialize)]
struct GroupOnly {
    task: GroupField,
    #[serde(default)]
    last_status: Option<flotilla_control::tasks::Status>,
}

#[derive(serde::Deserialize)]
struct GroupField {
    #[serde(default)]
    group: Option<String>,
}

/// What a task record written at `key` says to the watcher: its service, if any, and whether it
/// has stopped; `None` for what is not a task record.
fn task_write(key: &str, value: &[u8]) -> Option<(Option<Key>, bool)> {
    let cluster = key.strip_prefix(records::TASKS)?.split_once('/')?.0;
    let g: GroupOnly = serde_json::from_slice(value).ok()?;
    let stopped = g.last_status.is_some_and(|s| s.0 == TaskStatus::Stopped);
    let service = g
        .task
        .group
        .and_then(|g| g.strip_prefix("service:").map(str::to_string))
        .map(|name| (cluster.to_string(), name));
    Some((service, stopped))
}

/// The services a task write wakes: its own, and when it has stopped (what it held on its
/// instance is free again), every service of its cluster, as one that could not place for lack
/// of room may now.
fn woken_by_task(known: &Known, key: &str, value: &[u8]) -> Vec<Key> {
    let Some((service, stopped)) = task_write(key, value) else {
        return Vec::new();
    };
    let mut out: Vec<Key> = service.into_iter().collect();
    if stopped {
        if let Some((cluster, _)) = key
            .strip_prefix(records::TASKS)
            .and_then(|r| r.split_once('/'))
        {
            for k in known.of(cluster) {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out
}

/// Whether a service record written at some key is INACTIVE (deleted), from its status alone.
fn is_inactive(value: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct StatusOnly {
        status: ServiceStatus,
    }
    serde_json::from_slice::<StatusOnly>(value).is_ok_and(|s| s.status == ServiceStatus::Inactive)
}

/// The services the watcher knows of, per cluster: refreshed by every resync's listing and kept
/// by the services watch in between, so that an instance write wakes its cluster's services
/// without listing (and decoding) every service record.
#[derive(Default)]
struct Known(BTreeMap<String, BTreeSet<String>>);

impl Known {
    fn replace(&mut self, all: &[Key]) {
        self.0.clear();
        for (c, n) in all {
            self.0.entry(c.clone()).or_default().insert(n.clone());
        }
    }

    fn apply(&mut self, (cluster, name): &Key, active: bool) {
        if active {
            self.0
                .entry(cluster.clone())
                .or_default()
                .insert(name.clone());
        } else if let Some(set) = self.0.get_mut(cluster) {
            set.remove(name);
        }
    }

    fn of(&self, cluster: &str) -> Vec<Key> {
        self.0.get(cluster).map_or_else(Vec::new, |set| {
            set.iter()
                .map(|n| (cluster.to_string(), n.clone()))
                .collect()
        })
    }
}

async fn watcher(weak: Weak<Plane>, tx: mpsc::UnboundedSender<Key>) {
    let mut known = Known::default();
    loop {
        let Some(api) = weak.upgrade() else { return };
        let rev = match api.store.revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "service loop: no store revision; retrying");
                drop(api);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (services, tasks, instances) = match (
            api.store.watch(SERVICES, rev).await,
            api.store.watch(records::TASKS, rev).await,
            api.store.watch(records::CONTAINER_INSTANCES, rev).await,
        ) {
            (Ok(s), Ok(t), Ok(i)) => (s, t, i),
            _ => {
                tracing::warn!("service loop: could not watch; retrying");
                drop(api);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        drop(api);
        let mut services = services;
        let mut tasks = tasks;
        let mut instances = instances;
        // The first tick is at once: it fills `known` and reconciles every service.
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let keys = tokio::select! {
                _ = tick.tick() => {
                    let Some(api) = weak.upgrade() else { return };
                    let all = all_services(&api).await;
                    known.replace(&all);
                    all
                }
                e = services.next() => match e {
                    Some(Ok(Event::Put(kv))) => service_of_key(&kv.key)
                        .map(|k| {
                            known.apply(&k, !is_inactive(&kv.value));
                            vec![k]
                        })
                        .unwrap_or_default(),
                    Some(Ok(Event::Delete { key, .. })) => service_of_key(&key)
                        .map(|k| {
                            known.apply(&k, false);
                            vec![k]
                        })
                        .unwrap_or_default(),
                    _ => break,
                },
                e = tasks.next() => match e {
                    Some(Ok(Event::Put(kv))) => woken_by_task(&known, &kv.key, &kv.value),
                    Some(Ok(Event::Delete { .. })) => Vec::new(),
                    _ => break,
                },
                e = instances.next() => match e {
                    // An instance changed (registered, DRAINING, ACTIVE again, ...): every
                    // service of its cluster looks again.
                    Some(Ok(ev)) => ev
                        .key()
                        .strip_prefix(records::CONTAINER_INSTANCES)
                        .and_then(|r| r.split_once('/'))
                        .map(|(c, _)| known.of(c))
                        .unwrap_or_default(),
                    _ => break,
                },
            };
            for k in keys {
                if tx.send(k).is_err() {
                    return;
                }
            }
        }
        tracing::debug!("service loop: a watch ended; watching again");
    }
}

async fn worker(weak: Weak<Plane>, mut rx: mpsc::UnboundedReceiver<Key>, fence: Fence) {
    let mut dirty: BTreeSet<Key> = BTreeSet::new();
    loop {
        if dirty.is_empty() {
            match rx.recv().await {
                Some(k) => {
                    dirty.insert(k);
                }
                None => return,
            }
        }
        while let Ok(k) = rx.try_recv() {
            dirty.insert(k);
        }
        let Some(key) = dirty.pop_first() else {
            continue;
        };
        let Some(api) = weak.upgrade() else { return };
        match reconcile(&api, &fence, &key.0, &key.1).await {
            Ok(true) => {}
            Ok(false) => {
                dirty.insert(key);
            }
            // Dropping `rx` ends the watcher too.
            Err(e) if crate::leadership::deposed("service loop", &e) => return,
            Err(e) => {
                tracing::warn!(service = %key.1, cluster = %key.0, error = %e, "service reconcile failed; will retry");
            }
        }
    }
}

/// What the scheduler sees of one task (`draining`: its instance is DRAINING; `lost`: its
/// instance's agent is disconnected; `grace`: the service's health check grace period, seconds).
pub fn observe(t: &TaskRecord, draining: bool, lost: bool, grace: f64, now: f64) -> TaskObs {
    let phase = if t.is_stopped() {
        Phase::Stopped
    } else if t.desired() == DesiredStatus::Stopped || t.stop_after.is_some() {
        Phase::Stopping
    } else if t.last_status.0 >= TaskStatus::Running {
        Phase::Running
    } else {
        Phase::Pending
    };
    let has_checks = t.assignment.as_ref().is_some_and(|a| {
        a.containers
            .iter()
            .any(|c| c.definition.essential != Some(false) && c.definition.health_check.is_some())
    });
    let healthy = phase == Phase::Running
        && (!has_checks || t.task.health_status == Some(HealthStatus::Healthy));
    let by_scheduler = matches!(
        t.task.stop_code,
        Some(TaskStopCode::ServiceSchedulerInitiated | TaskStopCode::UserInitiated)
    );
    let failed_checks = t.task.health_status == Some(HealthStatus::Unhealthy);
    let failed = phase == Phase::Stopped
        && (failed_checks
            || t.failed_target_health
            || (!by_scheduler && t.task.started_at.is_none()));
    let unhealthy = phase == Phase::Running
        && has_checks
        && failed_checks
        && t.task.started_at.is_none_or(|s| now >= s + grace);
    TaskObs {
        arn: t.arn().to_string(),
        id: t.id.clone(),
        deployment: t.task.started_by.clone().unwrap_or_default(),
        phase,
        healthy,
        az: t.task.availability_zone.clone().unwrap_or_default(),
        instance: t.instance_id.clone(),
        started_at: t.task.started_at,
        stopped_at: t.task.stopped_at,
        failed,
        draining,
        lost,
        unhealthy,
        unhealthy_in: None,
        protected: flotilla_control::protection::is_protected(t, now),
        unexpected_stop: (phase == Phase::Stopped && !by_scheduler).then(|| {
            t.task
                .stopped_reason
                .clone()
                .unwrap_or_else(|| "Task stopped".into())
        }),
    }
}

pub(crate) async fn stop_one(
    api: &Plane,
    fence: &Fence,
    cluster: &str,
    arn: &str,
    reason: &str,
    now: f64,
) -> Result<(), EcsError> {
    let Some(id) = records::task_id_in(arn, cluster) else {
        return Ok(());
    };
    let key = task_key(cluster, id);
    let stopped = api
        .cas_fenced(&key, Some(fence), || async {
            let Some((rec, rev)) = get::<TaskRecord>(api.store(), &key).await? else {
                return Ok(Attempt::Done(false));
            };
            let next = stop(&rec, TaskStopCode::ServiceSchedulerInitiated, reason, now);
            if next == rec {
                return Ok(Attempt::Done(false));
            }
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key.clone(), to_bytes(&next)?);
            Ok(Attempt::Commit(txn, true))
        })
        .await?;
    if stopped {
        tracing::info!(task = %arn, cluster, reason, "service task stop requested");
    }
    Ok(())
}

/// The default placement of service tasks: spread over AZs, then instances.
pub fn default_strategies() -> Vec<PlacementStrategy> {
    vec![
        PlacementStrategy {
            r#type: Some(PlacementStrategyType::Spread),
            field: Some(AZ_ATTRIBUTE.into()),
        },
        PlacementStrategy {
            r#type: Some(PlacementStrategyType::Spread),
            field: Some("instanceId".into()),
        },
    ]
}

/// What a service starts tasks of: a deployment (its id, task definition and the service's
/// launch, platform and network) or a task set (its own).
pub(crate) struct Launching<'a> {
    /// The tasks' `startedBy`: the deployment's or task set's id.
    pub started_by: &'a str,
    /// The task definition ARN.
    pub task_definition: &'a str,
    /// Launch type or capacity provider strategy.
    pub launch: launch::Launch,
    /// Fargate platform version.
    pub platform_version: Option<&'a str>,
    /// Network configuration.
    pub network: Option<&'a flotilla_model::shapes::NetworkConfiguration>,
}

/// Where a service's new tasks go.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Where<'a> {
    /// Where the service's placement puts them.
    Anywhere,
    /// One on each of these instances (DAEMON).
    On(&'a [String]),
    /// In this Availability Zone (an AZ rebalancing's start).
    InZone(&'a str),
}

/// Starts `n` tasks of a deployment `at` where they go; returns the events and how many were
/// placed.
/// `providers`: how many of the service's live tasks run on each capacity provider, so new tasks
/// keep the strategy's split as the service scales and replaces tasks.
async fn start(
    api: &Plane,
    fence: &Fence,
    rec: &ServiceRecord,
    deployment: &str,
    n: u32,
    at: Where<'_>,
    providers: &BTreeMap<String, u32>,
) -> Result<(Vec<ServiceEvent>, u32), EcsError> {
    let Some(d) = rec.deployments.iter().find(|d| d.id == deployment) else {
        return Ok((Vec::new(), 0));
    };
    let s = &rec.service;
    let what = Launching {
        started_by: deployment,
        task_definition: &d.task_definition,
        launch: rec.launch(),
        platform_version: s.platform_version.as_deref(),
        network: s.network_configuration.as_ref(),
    };
    start_tasks(api, fence, rec, &what, n, at, providers).await
}

/// Starts `n` tasks of `what` for the service `at` where they go; returns the events and how
/// many were placed.
pub(crate) async fn start_tasks(
    api: &Plane,
    fence: &Fence,
    rec: &ServiceRecord,
    what: &Launching<'_>,
    n: u32,
    at: Where<'_>,
    providers: &BTreeMap<String, u32>,
) -> Result<(Vec<ServiceEvent>, u32), EcsError> {
    let name = rec.name();
    let s = &rec.service;
    let propagate = match s.propagate_tags {
        Some(PropagateTags::TaskDefinition) => Some(PropagateTags::TaskDefinition),
        _ => None,
    };
    let tags = match s.propagate_tags {
        Some(PropagateTags::Service) => s.tags.clone(),
        _ => None,
    };
    let launch = what.launch.clone();
    let template = crate::templates::prepare(
        api,
        &Common {
            cluster: Some(&rec.cluster),
            group: Some(&rec.group()),
            started_by: Some(what.started_by),
            tags: tags.as_deref(),
            propagate_tags: propagate,
            enable_ecs_managed_tags: s.enable_ecs_managed_tags,
            service_name: Some(name),
            enable_execute_command: s.enable_execute_command,
            allow_inactive: true,
            platform_version: what.platform_version,
            network_configuration: what.network,
            ..Common::new(what.task_definition, launch.launch_type)
        },
    )
    .await;
    let template = match template {
        Ok(mut t) => {
            t.providers = launch.providers(providers, n);
            t
        }
        Err(e) => return Ok((vec![ServiceEvent::LaunchFailed { error: e.message }], 0)),
    };
    let zone = match at {
        Where::InZone(z) => Some(z),
        _ => None,
    };
    // Placed in transactions of at most PLACEMENT_CHUNK tasks: a service of a thousand tasks
    // in one transaction is more operations than etcd accepts in one (128 by default), and
    // such a service never started there.
    let mut events = Vec::new();
    let mut started = Vec::new();
    let mut placed = 0;
    while placed < n {
        let count = match at {
            Where::On(_) => n,
            Where::Anywhere | Where::InZone(_) => (n - placed).min(PLACEMENT_CHUNK),
        };
        let mut chunk = template.clone();
        chunk.providers = template
            .providers
            .iter()
            .skip(placed as usize)
            .take(count as usize)
            .cloned()
            .collect();
        let target = placement_target(&chunk, s, count, at)?;
        let now = api.clock.now();
        match placement::place(api, now, &chunk, &target, None, Some(fence)).await {
            Ok(Committed::Placed(tasks, failures)) => {
                let got = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
                placed += got;
                started.extend(tasks.into_iter().map(|t| t.id));
                if let Some(f) = failures.into_iter().next() {
                    events.push(unable_to_place(f, &rec.cluster));
                }
                if got < count {
                    break;
                }
            }
            Ok(Committed::TokenUsed(_)) => break,
            Err(e) if records::is_deposed(&e) => return Err(e),
            Err(e) => {
                events.push(ServiceEvent::UnableToPlace {
                    instance: None,
                    reason: Unplaced::Other(e.message),
                });
                break;
            }
        }
    }
    if !started.is_empty() {
        tracing::info!(service = %name, cluster = %rec.cluster, started = started.len(), zone, "service tasks placed");
        events.insert(
            0,
            match zone {
                Some(z) => ServiceEvent::RebalanceStarted {
                    zone: z.to_string(),
                    tasks: started,
                },
                None => ServiceEvent::Started { tasks: started },
            },
        );
    }
    Ok((events, placed))
}

/// The most tasks a service places in one transaction.
pub(crate) const PLACEMENT_CHUNK: u32 = 25;

/// Where `count` tasks of `template` go for the service `s`: its strategies and constraints
/// (the pool's for Fargate), on the instances given or anywhere (in a zone, when given).
fn placement_target(
    template: &flotilla_control::template::TaskTemplate,
    s: &flotilla_model::shapes::Service,
    count: u32,
    at: Where<'_>,
) -> Result<Target, EcsError> {
    let mut preq = placement_request(template, count, rand::random::<u64>())?;
    if template.fargate.is_some() {
        preq.strategies = flotilla_control::launch::pool_strategies();
        preq.task_definition_constraints.clear();
    } else {
        let strategies = s
            .placement_strategy
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(default_strategies);
        preq.strategies = launch::strategies(&strategies)?;
        preq.constraints = launch::constraints(s.placement_constraints.as_deref().unwrap_or(&[]))?;
    }
    if let Where::InZone(z) = at {
        preq.constraints
            .extend(launch::constraints(&[PlacementConstraint {
                r#type: Some(PlacementConstraintType::MemberOf),
                expression: Some(format!("{AZ_ATTRIBUTE} == {z}")),
            }])?);
    }
    Ok(match at {
        Where::On(on) => {
            preq.strategies.clear();
            Target::Start(Box::new(preq), on.to_vec())
        }
        Where::Anywhere | Where::InZone(_) => Target::Run(Box::new(preq)),
    })
}

/// The event for a task that could not be placed: the instance is named by its id.
fn unable_to_place(f: PlacementFailure, cluster: &str) -> ServiceEvent {
    let instance = f
        .arn
        .as_deref()
        .and_then(|a| records::instance_id_in(a, cluster))
        .map(str::to_string);
    ServiceEvent::UnableToPlace {
        instance,
        reason: f.reason,
    }
}

/// Reconciles one service: observe its tasks, compute what to do
/// (`flotilla_control::service_scheduler`), make the stops and starts, write the service.
/// `Ok(false)`: it lost a race and should be reconciled again. Every write is fenced with
/// `fence`; a refused one ends the reconcile at once with [`records::deposed`].
pub async fn reconcile(
    api: &Plane,
    fence: &Fence,
    cluster: &str,
    name: &str,
) -> Result<bool, EcsError> {
    let key = service_key(cluster, name);
    let Some((rec, rev)) = get::<ServiceRecord>(api.store(), &key).await? else {
        return Ok(true);
    };
    if rec.status == ServiceStatus::Inactive {
        return Ok(true);
    }
    let now = flotilla_control::timestamp(api.clock.now());
    if rec.uses_task_sets() {
        return crate::task_set_loop::reconcile(api, fence, rec, rev, key, now).await;
    }
    let mut seen = observe_service(api, &rec, now).await?;
    let traffic = api.traffic.clone().filter(|_| traffic::has_traffic(&rec));
    let health = match &traffic {
        Some(t) => Some(
            traffic::apply_health(
                t.as_ref(),
                &rec,
                &seen.records,
                &mut seen.tasks,
                &seen.hosts,
                grace_of(&rec),
                now,
            )
            .await?,
        ),
        None => None,
    };
    let mut spec = spec_of(&rec, name);
    spec.alarms = crate::deployment_alarms::watch(api, &rec).await;
    if rec.rebalances() {
        spec.zones = seen.zones.clone();
    }
    let daemon = rec.service.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    let actions = if daemon {
        compute_daemon_actions(&spec, &rec.deployments, &seen.tasks, &seen.eligible, now)
    } else {
        // Rolling, unless a blue/green, linear or canary deployment is in progress.
        compute_blue_green_actions(
            &spec,
            &rec.deployments,
            &seen.tasks,
            api.deployment_minute,
            now,
        )
    };
    // Production traffic leaves blue before any of its tasks stops.
    if let Some(t) = &traffic {
        traffic::shift(t.as_ref(), &rec, &actions.deployments).await?;
    }
    for (arn, reason) in &actions.stop {
        match (&traffic, &health) {
            (Some(t), Some(h)) => {
                let obs = seen.tasks.iter().find(|o| &o.arn == arn);
                traffic::stop_or_drain(api, t.as_ref(), fence, h, obs, cluster, arn, reason, now)
                    .await?
            }
            _ => stop_one(api, fence, cluster, arn, reason, now).await?,
        }
    }
    if let (Some(t), Some(h)) = (&traffic, &health) {
        for arn in traffic::drained(&seen.records, now) {
            traffic::stop_or_drain(api, t.as_ref(), fence, h, None, cluster, &arn, "", now).await?;
        }
        traffic::sync(
            t.as_ref(),
            &rec,
            &seen.records,
            &seen.tasks,
            h,
            &seen.hosts,
            now,
        )
        .await?;
    }
    let providers = live_per_provider(&seen.records, &actions.stop);
    let mut next = rec.clone();
    next.deployments = actions.deployments.clone();
    next.record_finished(&rec.deployments, now);
    let mut events = actions.events.clone();
    let (started, placed) = start_all(api, fence, &next, &actions, &providers).await?;
    events.extend(started);
    next.replaced = actions.replaced_after(placed);
    settle(&mut next, &actions, daemon);
    next.record_events(&events, now, &mut || uuid::Uuid::new_v4().to_string());
    if next == rec {
        return Ok(true);
    }
    let txn = Txn::new()
        .when(Compare::ModRevision(key.clone(), rev))
        .put(key, to_bytes(&next)?);
    let ok = commit_fenced(api.store(), txn, Some(fence)).await?;
    if ok && next.steady != rec.steady {
        tracing::info!(service = %name, cluster, steady = next.steady, "service steadiness changed");
    }
    Ok(ok)
}

/// What a reconcile sees of a service: its task records, the scheduler's view of each, and (for
/// DAEMON services) the instances that should each run one.
pub(crate) struct Seen {
    pub(crate) records: Vec<TaskRecord>,
    pub(crate) tasks: Vec<TaskObs>,
    pub(crate) eligible: Vec<String>,
    pub(crate) hosts: traffic::Hosts,
    /// The Availability Zones the service can run in: those of the ACTIVE, connected instances
    /// of its capacity (its cluster's, or the managed pool's for Fargate).
    pub(crate) zones: BTreeSet<String>,
}

/// The service's health check grace period, seconds.
pub(crate) fn grace_of(rec: &ServiceRecord) -> f64 {
    f64::from(
        rec.service
            .health_check_grace_period_seconds
            .unwrap_or(0)
            .max(0),
    )
}

/// Reads the service's tasks and the instances they run on (its cluster's, and the managed
/// pool's for Fargate tasks: a pool host whose agent is gone loses its tasks too). Once the
/// replica's task feed has caught up with the store, the instances come from its instance cache
/// and the service's task ids from its task index (then only those records are read), not from
/// reading every instance and every task record of the cluster.
pub(crate) async fn observe_service(
    api: &Plane,
    rec: &ServiceRecord,
    now: f64,
) -> Result<Seen, EcsError> {
    let store = api.store();
    let cluster = rec.cluster.as_str();
    let group = rec.group();
    let grace = grace_of(rec);
    let index = api.task_index().await;
    let instances_of = |c: &str| {
        let cached = index.map(|f| f.instances.records(c));
        let c = c.to_string();
        async move {
            Ok::<_, EcsError>(match cached {
                Some(v) => v.into_iter().map(|c| c.record).collect::<Vec<_>>(),
                None => records::list::<InstanceRecord>(store, &records::instance_prefix(&c))
                    .await?
                    .into_iter()
                    .map(|(_, i, _)| Arc::new(i))
                    .collect(),
            })
        }
    };
    let instances = instances_of(cluster).await?;
    let pool = instances_of(flotilla_protocol::MANAGED_POOL).await?;
    let draining: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.status() == InstanceStatus::Draining)
        .map(|i| i.id.as_str())
        .collect();
    let lost: BTreeSet<&str> = instances
        .iter()
        .chain(pool.iter())
        .filter(|i| !i.instance.agent_connected)
        .map(|i| i.id.as_str())
        .collect();
    let records: Vec<TaskRecord> = match index {
        Some(f) => {
            let ids = f.read(|ix| ix.group_tasks(cluster, &group));
            futures::stream::iter(ids)
                .map(|id| async move { get::<TaskRecord>(store, &task_key(cluster, &id)).await })
                .buffered(16)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .filter_map(|r| r.transpose())
                .map(|r| r.map(|(t, _)| t))
                .filter(|t| {
                    t.as_ref()
                        .map_or(true, |t| t.task.group.as_deref() == Some(group.as_str()))
                })
                .collect::<Result<_, _>>()?
        }
        None => records::list::<TaskRecord>(store, &task_prefix(cluster))
            .await?
            .into_iter()
            .map(|(_, t, _)| t)
            .filter(|t| t.task.group.as_deref() == Some(group.as_str()))
            .collect(),
    };
    let tasks = records
        .iter()
        .map(|t| {
            let id = t.instance_id.as_str();
            observe(t, draining.contains(id), lost.contains(id), grace, now)
        })
        .collect();
    let eligible = instances
        .iter()
        .filter(|i| i.status() == InstanceStatus::Active && i.instance.agent_connected)
        .map(|i| i.id.clone())
        .collect();
    let hosts = traffic::hosts(instances.iter().chain(pool.iter()).map(|i| &**i));
    let capacity = if rec.launch().launch_type == LaunchType::Fargate {
        &pool
    } else {
        &instances
    };
    // A custom capacity provider's tasks run on its hosts only: their zones are the ones.
    let launch = rec.launch();
    let provider = match launch.strategy.as_slice() {
        [one] if launch.launch_type != LaunchType::Fargate => Some(one.capacity_provider.clone()),
        _ => None,
    };
    let zones = capacity
        .iter()
        .filter(|i| i.status() == InstanceStatus::Active && i.instance.agent_connected)
        .filter(|i| {
            provider.is_none() || i.instance.capacity_provider_name.as_ref() == provider.as_ref()
        })
        .filter_map(|i| i.availability_zone.clone())
        .filter(|z| !z.is_empty())
        .collect();
    Ok(Seen {
        records,
        tasks,
        eligible,
        hosts,
        zones,
    })
}

/// The scheduler's view of the service's configuration.
fn spec_of(rec: &ServiceRecord, name: &str) -> ServiceSpec {
    let (max, min) = rec.percents();
    ServiceSpec {
        name: name.to_string(),
        desired: u32::try_from(rec.service.desired_count).unwrap_or(0),
        maximum_percent: max,
        minimum_healthy_percent: min,
        circuit_breaker: rec.circuit_breaker(),
        draining: rec.status == ServiceStatus::Draining,
        last_completed: rec.last_completed.clone(),
        steady: rec.steady,
        next_deployment_id: deployment_id(rand::random::<u64>()),
        replaced: rec.replaced.clone(),
        zones: BTreeSet::new(),
        rebalancing: rec.rebalancing,
        alarms: None,
    }
}

/// The live tasks per capacity provider once this reconcile's stops are made.
pub(crate) fn live_per_provider(
    records: &[TaskRecord],
    stops: &[(String, String)],
) -> BTreeMap<String, u32> {
    let mut providers: BTreeMap<String, u32> = BTreeMap::new();
    for t in records {
        let stopping = stops.iter().any(|(arn, _)| arn == t.arn());
        if t.is_stopped() || t.desired() != DesiredStatus::Running || stopping {
            continue;
        }
        if let Some(p) = &t.task.capacity_provider_name {
            *providers.entry(p.clone()).or_insert(0) += 1;
        }
    }
    providers
}

/// Makes the starts the scheduler asked for: `n` tasks of a deployment anywhere, and one on
/// each named instance (DAEMON), at most as many instances per placement as StartTask takes.
/// Returns the events and how many of the `n` tasks were placed.
async fn start_all(
    api: &Plane,
    fence: &Fence,
    next: &ServiceRecord,
    actions: &Actions,
    providers: &BTreeMap<String, u32>,
) -> Result<(Vec<ServiceEvent>, u32), EcsError> {
    let mut events = Vec::new();
    let mut placed = 0;
    if let Some((dep, n)) = &actions.start {
        let zone = actions.start_in_az.as_deref();
        let at = zone.map_or(Where::Anywhere, Where::InZone);
        (events, placed) = start(api, fence, next, dep, *n, at, providers).await?;
    }
    if let (false, Some(p)) = (actions.start_on.is_empty(), next.deployments.first()) {
        let dep = p.id.clone();
        for on in actions
            .start_on
            .chunks(flotilla_scheduler::MAX_START_INSTANCES)
        {
            let n = u32::try_from(on.len()).unwrap_or(0);
            events.extend(
                start(api, fence, next, &dep, n, Where::On(on), providers)
                    .await?
                    .0,
            );
        }
    }
    Ok((events, placed))
}

/// What the scheduler decided about the service itself: steadiness, the last completed
/// deployment, the task definition of the primary, INACTIVE once drained, and a DAEMON
/// service's desired count (one per eligible instance).
fn settle(next: &mut ServiceRecord, actions: &Actions, daemon: bool) {
    if daemon && next.status == ServiceStatus::Active {
        if let Some(p) = next.deployments.first() {
            next.service.desired_count = i32::try_from(p.desired_count).unwrap_or(i32::MAX);
        }
    }
    next.steady = actions.steady;
    next.rebalancing = actions.rebalancing;
    if actions.completed.is_some() {
        next.last_completed = actions.completed.clone();
    }
    if let Some(p) = next.deployments.first() {
        next.service.task_definition = Some(p.task_definition.clone());
    }
    if actions.inactive {
        next.status = ServiceStatus::Inactive;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_write_names_its_service_from_its_group_alone() {
        let service_of_task = |key: &str, value: &[u8]| task_write(key, value).and_then(|w| w.0);
        let mut t = TaskRecord {
            cluster: "prod".into(),
            id: "abc".into(),
            ..Default::default()
        };
        t.task.group = Some("service:web".into());
        let bytes = to_bytes(&t).unwrap();
        let key = task_key("prod", "abc");
        assert_eq!(
            service_of_task(&key, &bytes),
            Some(("prod".into(), "web".into()))
        );
        t.task.group = Some("family:web".into());
        assert_eq!(service_of_task(&key, &to_bytes(&t).unwrap()), None);
        t.task.group = None;
        assert_eq!(service_of_task(&key, &to_bytes(&t).unwrap()), None);
        assert_eq!(service_of_task(&key, b"not json"), None);
    }

    #[test]
    fn a_stopped_task_wakes_every_service_of_its_cluster() {
        let mut known = Known::default();
        known.replace(&[
            ("prod".into(), "web".into()),
            ("prod".into(), "api".into()),
            ("dev".into(), "web".into()),
        ]);
        let mut t = TaskRecord {
            cluster: "prod".into(),
            id: "abc".into(),
            ..Default::default()
        };
        t.task.group = Some("service:web".into());
        t.last_status = flotilla_control::tasks::Status(TaskStatus::Running);
        let key = task_key("prod", "abc");
        assert_eq!(
            woken_by_task(&known, &key, &to_bytes(&t).unwrap()),
            vec![("prod".into(), "web".into())]
        );
        t.last_status = flotilla_control::tasks::Status(TaskStatus::Stopped);
        assert_eq!(
            woken_by_task(&known, &key, &to_bytes(&t).unwrap()),
            vec![("prod".into(), "web".into()), ("prod".into(), "api".into())]
        );
        t.task.group = None;
        assert_eq!(
            woken_by_task(&known, &key, &to_bytes(&t).unwrap()),
            vec![("prod".into(), "api".into()), ("prod".into(), "web".into())]
        );
        assert!(woken_by_task(&known, &key, b"not json").is_empty());
    }

    #[test]
    fn the_known_services_follow_the_services_watch() {
        let mut known = Known::default();
        known.replace(&[("a".into(), "x".into()), ("b".into(), "y".into())]);
        known.apply(&("a".into(), "z".into()), true);
        assert_eq!(
            known.of("a"),
            vec![("a".into(), "x".into()), ("a".into(), "z".into())]
        );
        known.apply(&("a".into(), "x".into()), false);
        assert_eq!(known.of("a"), vec![("a".into(), "z".into())]);
        assert!(known.of("c").is_empty());
        known.replace(&[]);
        assert!(known.of("b").is_empty());
    }

    #[test]
    fn a_deleted_service_is_read_from_its_status() {
        let rec = ServiceRecord {
            status: ServiceStatus::Inactive,
            ..Default::default()
        };
        assert!(is_inactive(&to_bytes(&rec).unwrap()));
        let rec = ServiceRecord {
            status: ServiceStatus::Active,
            ..Default::default()
        };
        assert!(!is_inactive(&to_bytes(&rec).unwrap()));
        assert!(!is_inactive(b"{}"));
    }
}
