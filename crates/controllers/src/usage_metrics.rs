//! The metrics recorder: turns the usage samples this replica's agent sessions received into
//! the `AWS/ECS` metrics ([`flotilla_metrics::ecs`]), once per resolution, on every replica
//! (each records the agents whose sessions it holds; a query merges every replica's series).
//!
//! Each period it takes the samples received since the last one ([`Agents::take_recent_usage`]),
//! averages each task's, reads the task records (cluster, service, reservation, instance) and
//! the records of the instances whose sessions are here (registered and reserved resources),
//! and hands the period's samples to the `record` function (CloudWatch's series) at the start
//! of the period that just ended. Stopped or unknown tasks are skipped.
//!
//! [`Agents::take_recent_usage`]: crate::agents::Agents::take_recent_usage

use crate::plane::Plane;
use crate::records;
use flotilla_control::instances::{Held, InstanceRecord};
use flotilla_control::keys::{instance_key, CONTAINER_INSTANCES};
use flotilla_control::tasks::TaskRecord;
use flotilla_metrics::ecs::{compute_samples, InstanceFigures, TaskFigures};
use flotilla_metrics::{MetricId, Sample};
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Where the period's samples go: `(samples, period start, now)`.
pub type Record = Arc<dyn Fn(Vec<(MetricId, Sample)>, f64, f64) + Send + Sync>;

/// `(cluster, id)` of a task ARN (`arn:aws:ecs:R:A:task/CLUSTER/ID`).
pub fn task_of_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.split_once(":task/")?.1;
    rest.split_once('/')
}

/// The figures of one period from this replica's samples.
pub async fn compute_period(plane: &Plane) -> Vec<(MetricId, Sample)> {
    let samples = plane.agents.take_recent_usage();
    let mut per_task: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for s in samples {
        let e = per_task.entry(s.task_arn).or_insert((0.0, 0.0, 0.0));
        e.0 += s.cpu_units;
        e.1 += s.memory_mib;
        e.2 += 1.0;
    }
    let mut tasks = Vec::new();
    for (arn, (cpu, mem, n)) in per_task {
        let Some((cluster, id)) = task_of_arn(&arn) else {
            continue;
        };
        let key = flotilla_control::keys::task_key(cluster, id);
        let Ok(Some((t, _))) = records::get::<TaskRecord>(plane.store(), &key).await else {
            continue;
        };
        if t.is_stopped() {
            continue;
        }
        let on_instance = t.instance_cluster() == t.cluster;
        tasks.push(TaskFigures {
            cluster: t.cluster.clone(),
            service: t
                .reservation
                .group
                .strip_prefix("service:")
                .map(str::to_string),
            instance: on_instance.then(|| t.instance_id.clone()),
            cpu_used: cpu / n,
            memory_used: mem / n,
            cpu_reserved: f64::from(t.reservation.cpu),
            memory_reserved: f64::from(t.reservation.memory),
        });
    }
    let mut instances = Vec::new();
    // What the tasks on each instance hold, by cluster, read once per cluster.
    let mut held: std::collections::HashMap<String, std::collections::HashMap<String, Held>> =
        std::collections::HashMap::new();
    for key in plane.agents.session_keys() {
        let Some(rest) = key.strip_prefix(CONTAINER_INSTANCES) else {
            continue;
        };
        let Some((cluster, id)) = rest.split_once('/') else {
            continue;
        };
        if cluster == flotilla_protocol::MANAGED_POOL {
            continue;
        }
        let Ok(Some((i, _))) =
            records::get::<InstanceRecord>(plane.store(), &instance_key(cluster, id)).await
        else {
            continue;
        };
        if !held.contains_key(cluster) {
            let Ok(h) = crate::held::by_instance(plane, cluster).await else {
                continue;
            };
            held.insert(cluster.to_string(), h);
        }
        let on = held.get(cluster).and_then(|h| h.get(id));
        let reserved = |f: fn(&flotilla_control::instances::Reservation) -> u32| -> f64 {
            on.into_iter()
                .flat_map(|h| h.values())
                .map(|r| f64::from(f(r)))
                .sum()
        };
        instances.push(InstanceFigures {
            cluster: i.cluster.clone(),
            instance: i.id.clone(),
            cpu_registered: f64::from(i.registered.cpu),
            memory_registered: f64::from(i.registered.memory),
            cpu_reserved: reserved(|r| r.cpu),
            memory_reserved: reserved(|r| r.memory),
        });
    }
    compute_samples(&tasks, &instances)
}

/// Runs the recorder every `resolution` seconds (at period boundaries) until the plane is
/// dropped or the handle aborted.
pub fn spawn(plane: Weak<Plane>, resolution: u32, record: Record) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let r = f64::from(resolution.max(1));
        loop {
            let Some(now) = plane.upgrade().map(|p| p.clock.now()) else {
                return;
            };
            let next = (now / r).floor() * r + r;
            tokio::time::sleep(Duration::from_secs_f64((next - now).max(0.01))).await;
            let Some(p) = plane.upgrade() else {
                return;
            };
            let now = p.clock.now();
            let period_start = (now / r).floor() * r - r;
            let samples = compute_period(&p).await;
            record(samples, period_start, now);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_arns_name_their_cluster_and_id() {
        assert_eq!(
            task_of_arn("arn:aws:ecs:us-east-1:123456789012:task/default/abc"),
            Some(("default", "abc"))
        );
        assert_eq!(task_of_arn("arn:aws:ecs:us-east-1:1:task/abc"), None);
    }
}
