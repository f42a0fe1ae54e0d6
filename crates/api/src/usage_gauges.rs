//! The utilization gauges of `/metrics`, computed as it is scraped:
//!
//! - `flotilla_ecs_utilization_percent{cluster, service, metric}`: the `AWS/ECS` figures of the
//!   last complete period (CPUUtilization and MemoryUtilization per cluster and per service,
//!   CPUReservation and MemoryReservation per cluster; `service=""` for a cluster's), read
//!   through the plane's [`MetricReader`], so every replica's samples are merged and any replica
//!   answers the same as CloudWatch's GetMetricStatistics would.
//! - `flotilla_task_{cpu,memory}_utilization_percent{cluster, service, task}` and
//!   `flotilla_container_instance_{cpu,memory}_utilization_percent{cluster, container_instance}`:
//!   from the latest sample of each task whose agent's session this replica holds (used over
//!   the task's reservation; an instance's tasks' use over what it registered). An agent holds
//!   one session, on one replica, so scraping every replica covers every task once.

use crate::Api;
use flotilla_control::instances::InstanceRecord;
use flotilla_control::keys::{instance_key, task_key};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::get;
use flotilla_controllers::usage_metrics::task_of_arn;
use flotilla_metrics::{MetricFilter, MetricReader, StatQuery, Statistic};
use std::collections::BTreeMap;

/// At most this many `AWS/ECS` series are read per scrape (each is a merged query).
const MAX_ECS_SERIES: usize = 2000;

/// One task's figures, in percent of its reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskGauge {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name, empty for a task of no service.
    pub service: String,
    /// The task's id.
    pub task: String,
    /// CPU used over reserved, percent (None when the task reserves no CPU units).
    pub cpu: Option<f64>,
    /// Memory used over reserved, percent.
    pub memory: Option<f64>,
}

/// One container instance's figures, in percent of what it registered.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceGauge {
    /// The cluster's name.
    pub cluster: String,
    /// The container instance's id.
    pub instance: String,
    /// CPU used by its tasks over registered, percent.
    pub cpu: f64,
    /// Memory used by its tasks over registered, percent.
    pub memory: f64,
}

/// One `AWS/ECS` figure of the last complete period.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsGauge {
    /// `ClusterName`.
    pub cluster: String,
    /// `ServiceName`, empty for a cluster's figure.
    pub service: String,
    /// `CPUUtilization`, `MemoryUtilization`, `CPUReservation` or `MemoryReservation`.
    pub metric: String,
    /// Percent.
    pub value: f64,
}

/// `used / reserved x 100`, None without a reservation.
fn percent(used: f64, reserved: f64) -> Option<f64> {
    (reserved > 0.0).then(|| used / reserved * 100.0)
}

/// The task and instance gauges of this replica's agents.
pub async fn local(api: &Api) -> (Vec<TaskGauge>, Vec<InstanceGauge>) {
    let store = api.plane.store();
    let mut tasks = Vec::new();
    // (cluster, instance) -> (cpu units used, MiB used)
    let mut on_instance: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for u in api.agents.all_usage() {
        let Some((cluster, id)) = task_of_arn(&u.task_arn) else {
            continue;
        };
        let Ok(Some((t, _))) = get::<TaskRecord>(store, &task_key(cluster, id)).await else {
            continue;
        };
        if t.is_stopped() {
            continue;
        }
        tasks.push(TaskGauge {
            cluster: t.cluster.clone(),
            service: t
                .reservation
                .group
                .strip_prefix("service:")
                .unwrap_or_default()
                .to_string(),
            task: id.to_string(),
            cpu: percent(u.cpu_units, f64::from(t.reservation.cpu)),
            memory: percent(u.memory_mib, f64::from(t.reservation.memory)),
        });
        if t.instance_cluster() == t.cluster {
            let e = on_instance
                .entry((t.cluster.clone(), t.instance_id.clone()))
                .or_default();
            e.0 += u.cpu_units;
            e.1 += u.memory_mib;
        }
    }
    let mut instances = Vec::new();
    for ((cluster, instance), (cpu, memory)) in on_instance {
        let Ok(Some((i, _))) =
            get::<InstanceRecord>(store, &instance_key(&cluster, &instance)).await
        else {
            continue;
        };
        let (Some(cpu), Some(memory)) = (
            percent(cpu, f64::from(i.registered.cpu)),
            percent(memory, f64::from(i.registered.memory)),
        ) else {
            continue;
        };
        instances.push(InstanceGauge {
            cluster,
            instance,
            cpu,
            memory,
        });
    }
    (tasks, instances)
}

/// The `AWS/ECS` figures of the last complete period at `now` (epoch seconds), every
/// replica's samples merged; an error when part of the region's metrics cannot be read.
pub async fn ecs(
    reader: &dyn MetricReader,
    now: f64,
) -> Result<Vec<EcsGauge>, flotilla_metrics::MetricsError> {
    let r = reader.resolution().max(1);
    let period = f64::from(r);
    let end = (now / period).floor() * period;
    let filter = MetricFilter {
        namespace: Some("AWS/ECS".into()),
        ..MetricFilter::default()
    };
    let mut out = Vec::new();
    for metric in reader
        .list_metrics(&filter)
        .await?
        .into_iter()
        .take(MAX_ECS_SERIES)
    {
        let Some(cluster) = metric.dimension("ClusterName").map(str::to_string) else {
            continue;
        };
        let service = metric
            .dimension("ServiceName")
            .unwrap_or_default()
            .to_string();
        let name = metric.name.clone();
        let q = StatQuery {
            metric,
            start: end - period,
            end,
            period: r,
        };
        if let Some((_, value)) = reader
            .statistic(&q, Statistic::Average)
            .await?
            .into_iter()
            .last()
        {
            out.push(EcsGauge {
                cluster,
                service,
                metric: name,
                value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_needs_a_reservation() {
        assert_eq!(percent(512.0, 1024.0), Some(50.0));
        assert_eq!(percent(10.0, 0.0), None);
    }
}
