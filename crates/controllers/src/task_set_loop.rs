//! The service loop's reconcile of a service with task sets (`EXTERNAL`, `CODE_DEPLOY`): each
//! set keeps its computed desired count of real tasks (`startedBy` = the set's id), placed by
//! the one placement writer with the set's task definition, launch, platform and network.
//!
//! Traffic is the deployments' code ([`crate::traffic`]) run once per set, on the set's own
//! tasks, with a view of the service whose `loadBalancers` and `serviceRegistries` are the set's:
//! its RUNNING tasks are registered in its target groups (and Cloud Map), their health counts
//! for the set, and a task the loop stops is deregistered and stopped once drained.
//!
//! The decisions are [`compute_task_set_actions`]'s (pure); this module reads, applies and
//! writes the service (counts, stability, sets removed once drained, events) with one fenced
//! compare-and-swap, like the rest of the loop.

use crate::plane::Plane;
use crate::records::{commit_fenced, to_bytes};
use crate::service_loop::{
    grace_of, live_per_provider, observe_service, start_tasks, stop_one, Launching, Where,
};
use crate::traffic::{self, Health};
use flotilla_control::service_scheduler::{compute_task_set_actions, ServiceEvent, TaskObs};
use flotilla_control::services::{ServiceRecord, ServiceStatus};
use flotilla_control::task_sets::{mark, TaskSetRecord, TaskSetStatus};
use flotilla_control::tasks::TaskRecord;
use flotilla_model::EcsError;
use flotilla_store::{Compare, Fence, Txn};
use std::collections::BTreeMap;

/// One set's traffic for this round: the service as the set sees it, its tasks (indices into
/// what the reconcile saw) and their targets' health.
struct SetTraffic {
    view: ServiceRecord,
    tasks: Vec<usize>,
    health: Health,
}

/// The service as a set's tasks see it: the set's load balancers and registries, and the set
/// alone (so its tasks' Cloud Map instances carry its `externalId`).
fn set_view(rec: &ServiceRecord, set: &TaskSetRecord) -> ServiceRecord {
    let mut v = rec.clone();
    v.service.load_balancers = Some(set.load_balancers.clone());
    v.service.service_registries = Some(set.service_registries.clone());
    v.task_sets = vec![set.clone()];
    v
}

fn pick<T: Clone>(all: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| all[i].clone()).collect()
}

/// Reconciles a task set service read at revision `rev`; `Ok(false)` when it lost a race.
pub(crate) async fn reconcile(
    api: &Plane,
    fence: &Fence,
    rec: ServiceRecord,
    rev: u64,
    key: String,
    now: f64,
) -> Result<bool, EcsError> {
    let cluster = rec.cluster.clone();
    let mut seen = observe_service(api, &rec, now).await?;
    let grace = grace_of(&rec);
    let mut sets: BTreeMap<String, SetTraffic> = BTreeMap::new();
    if let Some(t) = api.traffic.clone() {
        for set in &rec.task_sets {
            let view = set_view(&rec, set);
            if !traffic::has_traffic(&view) {
                continue;
            }
            let idx: Vec<usize> = (0..seen.records.len())
                .filter(|&i| seen.records[i].task.started_by.as_deref() == Some(set.id.as_str()))
                .collect();
            let records = pick(&seen.records, &idx);
            let mut obs: Vec<TaskObs> = pick(&seen.tasks, &idx);
            let health = traffic::apply_health(
                t.as_ref(),
                &view,
                &records,
                &mut obs,
                &seen.hosts,
                grace,
                now,
            )
            .await?;
            for (o, &i) in obs.into_iter().zip(&idx) {
                seen.tasks[i] = o;
            }
            sets.insert(
                set.id.clone(),
                SetTraffic {
                    view,
                    tasks: idx,
                    health,
                },
            );
        }
    }
    let draining = rec.status == ServiceStatus::Draining;
    let actions = compute_task_set_actions(&rec.task_sets, &seen.tasks, draining);
    for (arn, reason) in &actions.stop {
        let obs = seen.tasks.iter().find(|o| &o.arn == arn);
        let set = obs.and_then(|o| sets.get(&o.deployment));
        match (&api.traffic, set) {
            (Some(t), Some(st)) => {
                traffic::stop_or_drain(
                    api,
                    t.as_ref(),
                    fence,
                    &st.health,
                    obs,
                    &cluster,
                    arn,
                    reason,
                    now,
                )
                .await?
            }
            _ => stop_one(api, fence, &cluster, arn, reason, now).await?,
        }
    }
    if let Some(t) = &api.traffic {
        for st in sets.values() {
            let records: Vec<TaskRecord> = pick(&seen.records, &st.tasks);
            let obs: Vec<TaskObs> = pick(&seen.tasks, &st.tasks);
            for arn in traffic::drained(&records, now) {
                traffic::stop_or_drain(
                    api,
                    t.as_ref(),
                    fence,
                    &st.health,
                    None,
                    &cluster,
                    &arn,
                    "",
                    now,
                )
                .await?;
            }
            traffic::sync(
                t.as_ref(),
                &st.view,
                &records,
                &obs,
                &st.health,
                &seen.hosts,
                now,
            )
            .await?;
        }
    }
    let providers = live_per_provider(&seen.records, &actions.stop);
    let mut events = actions.events.clone();
    for (set, plan) in rec.task_sets.iter().zip(&actions.sets) {
        if plan.start == 0 || draining || set.status == TaskSetStatus::Draining {
            continue;
        }
        let what = Launching {
            started_by: &set.id,
            task_definition: &set.task_definition,
            launch: flotilla_control::launch::Launch {
                launch_type: set
                    .launch_type
                    .unwrap_or(flotilla_model::shapes::LaunchType::Fargate),
                strategy: set.capacity_provider_strategy.clone(),
            },
            platform_version: set.platform_version.as_deref(),
            network: set.network_configuration.as_ref(),
        };
        let (started, _) = start_tasks(
            api,
            fence,
            &rec,
            &what,
            plan.start,
            Where::Anywhere,
            &providers,
        )
        .await?;
        events.extend(started);
    }
    let mut next = rec.clone();
    for (set, plan) in next.task_sets.iter_mut().zip(&actions.sets) {
        set.pending_count = plan.pending;
        set.running_count = plan.running;
        mark(set, plan.steady, now);
    }
    let gone: Vec<&str> = actions
        .sets
        .iter()
        .filter(|p| p.gone)
        .map(|p| p.id.as_str())
        .collect();
    next.task_sets.retain(|s| !gone.contains(&s.id.as_str()));
    if actions.steady && !rec.steady {
        events.push(ServiceEvent::Steady);
    }
    next.steady = actions.steady;
    if actions.inactive {
        next.status = ServiceStatus::Inactive;
    }
    next.record_events(&events, now, &mut || uuid::Uuid::new_v4().to_string());
    if next == rec {
        return Ok(true);
    }
    let txn = Txn::new()
        .when(Compare::ModRevision(key.clone(), rev))
        .put(key, to_bytes(&next)?);
    commit_fenced(api.store(), txn, Some(fence)).await
}
