//! The `AWS/ECS` metrics, computed as ECS documents them.
//!
//! - Service (`ClusterName`, `ServiceName`): `CPUUtilization` = CPU units used by the service's
//!   tasks / CPU units reserved by them × 100 (the task's `cpu`, else the sum of its
//!   containers'); `MemoryUtilization` the same with MiB (the task's `memory`, else its
//!   containers' `memory` or `memoryReservation`).
//! - Cluster (`ClusterName`): `CPUUtilization` = CPU units used by the cluster's tasks / CPU
//!   units registered by its container instances × 100; `CPUReservation` = CPU units reserved by
//!   its running tasks / registered × 100; the `Memory` pair the same with MiB. A task on no
//!   registered instance of the cluster (FARGATE, on the managed pool) counts against its own
//!   reservation, as ECS's cluster figures for Fargate do.
//!
//! Each figure is a weighted [`Sample`] (see [`crate::aggregate`]): one per task for a service,
//! one per container instance for a cluster, so the period's Average is exactly the ratio above
//! and Minimum/Maximum are the least and most utilized task or instance. A task or instance
//! with nothing reserved or registered gives no sample for that figure (a ratio over nothing).

use crate::aggregate::Sample;
use crate::id::{Dimension, MetricId};

/// The namespace.
pub const NAMESPACE: &str = "AWS/ECS";
/// The unit of every figure here.
pub const UNIT: &str = "Percent";

/// The four metric names, as ECS spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EcsMetric {
    /// `CPUUtilization`.
    CpuUtilization,
    /// `MemoryUtilization`.
    MemoryUtilization,
    /// `CPUReservation` (cluster only).
    CpuReservation,
    /// `MemoryReservation` (cluster only).
    MemoryReservation,
}

impl EcsMetric {
    /// The metric name.
    pub fn as_str(self) -> &'static str {
        match self {
            EcsMetric::CpuUtilization => "CPUUtilization",
            EcsMetric::MemoryUtilization => "MemoryUtilization",
            EcsMetric::CpuReservation => "CPUReservation",
            EcsMetric::MemoryReservation => "MemoryReservation",
        }
    }

    /// The metric of a cluster.
    pub fn of_cluster(self, cluster: &str) -> MetricId {
        MetricId::new(
            NAMESPACE,
            self.as_str(),
            [Dimension::new("ClusterName", cluster)],
        )
    }

    /// The metric of a service (utilization only).
    pub fn of_service(self, cluster: &str, service: &str) -> MetricId {
        MetricId::new(
            NAMESPACE,
            self.as_str(),
            [
                Dimension::new("ClusterName", cluster),
                Dimension::new("ServiceName", service),
            ],
        )
    }
}

/// What a running task used (averaged over the period) and reserves.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFigures {
    /// Its cluster's name.
    pub cluster: String,
    /// Its service's name, when a service started it.
    pub service: Option<String>,
    /// Its container instance's id, when it runs on a registered instance of the cluster.
    pub instance: Option<String>,
    /// CPU units used (1024 per core).
    pub cpu_used: f64,
    /// Memory used, MiB.
    pub memory_used: f64,
    /// CPU units reserved.
    pub cpu_reserved: f64,
    /// Memory reserved, MiB.
    pub memory_reserved: f64,
}

/// A container instance's registered and reserved resources.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFigures {
    /// Its cluster's name.
    pub cluster: String,
    /// Its id.
    pub instance: String,
    /// CPU units registered.
    pub cpu_registered: f64,
    /// Memory registered, MiB.
    pub memory_registered: f64,
    /// CPU units its running tasks reserve.
    pub cpu_reserved: f64,
    /// Memory its running tasks reserve, MiB.
    pub memory_reserved: f64,
}

/// The samples of one period: every service's and cluster's figures.
pub fn compute_samples(
    tasks: &[TaskFigures],
    instances: &[InstanceFigures],
) -> Vec<(MetricId, Sample)> {
    use EcsMetric::*;
    let mut out = Vec::new();
    for t in tasks {
        if let Some(service) = &t.service {
            if let Some(s) = Sample::percent(t.cpu_used, t.cpu_reserved) {
                out.push((CpuUtilization.of_service(&t.cluster, service), s));
            }
            if let Some(s) = Sample::percent(t.memory_used, t.memory_reserved) {
                out.push((MemoryUtilization.of_service(&t.cluster, service), s));
            }
        }
        let on_instance = t.instance.as_ref().is_some_and(|id| {
            instances
                .iter()
                .any(|i| &i.instance == id && i.cluster == t.cluster)
        });
        if !on_instance {
            if let Some(s) = Sample::percent(t.cpu_used, t.cpu_reserved) {
                out.push((CpuUtilization.of_cluster(&t.cluster), s));
            }
            if let Some(s) = Sample::percent(t.memory_used, t.memory_reserved) {
                out.push((MemoryUtilization.of_cluster(&t.cluster), s));
            }
        }
    }
    for i in instances {
        let on = || {
            tasks
                .iter()
                .filter(|t| t.cluster == i.cluster && t.instance.as_deref() == Some(&i.instance))
        };
        let cpu_used: f64 = on().map(|t| t.cpu_used).sum();
        let memory_used: f64 = on().map(|t| t.memory_used).sum();
        let figures = [
            (CpuUtilization, cpu_used, i.cpu_registered),
            (MemoryUtilization, memory_used, i.memory_registered),
            (CpuReservation, i.cpu_reserved, i.cpu_registered),
            (MemoryReservation, i.memory_reserved, i.memory_registered),
        ];
        for (metric, used, of) in figures {
            if let Some(s) = Sample::percent(used, of) {
                out.push((metric.of_cluster(&i.cluster), s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use std::collections::BTreeMap;

    fn task(
        service: Option<&str>,
        instance: Option<&str>,
        cpu: (f64, f64),
        mem: (f64, f64),
    ) -> TaskFigures {
        TaskFigures {
            cluster: "c".into(),
            service: service.map(str::to_string),
            instance: instance.map(str::to_string),
            cpu_used: cpu.0,
            cpu_reserved: cpu.1,
            memory_used: mem.0,
            memory_reserved: mem.1,
        }
    }

    fn averages(samples: Vec<(MetricId, Sample)>) -> BTreeMap<String, f64> {
        let mut by: BTreeMap<MetricId, Aggregate> = BTreeMap::new();
        for (m, s) in samples {
            by.entry(m)
                .and_modify(|a| a.add(s))
                .or_insert(Aggregate::of(s));
        }
        by.into_iter()
            .map(|(m, a)| (m.to_string(), a.average()))
            .collect()
    }

    #[test]
    fn a_service_is_its_tasks_use_over_their_reservation() {
        let tasks = [
            task(Some("web"), Some("i1"), (512.0, 1024.0), (100.0, 512.0)),
            task(Some("web"), Some("i1"), (256.0, 256.0), (28.0, 512.0)),
        ];
        let a = averages(compute_samples(&tasks, &[]));
        assert!((a["AWS/ECS/CPUUtilization ClusterName=c ServiceName=web"] - 60.0).abs() < 1e-9);
        assert!((a["AWS/ECS/MemoryUtilization ClusterName=c ServiceName=web"] - 12.5).abs() < 1e-9);
    }

    #[test]
    fn a_cluster_is_its_tasks_use_over_its_instances_registration() {
        let tasks = [
            task(Some("web"), Some("i1"), (512.0, 1024.0), (256.0, 512.0)),
            task(None, Some("i2"), (1024.0, 1024.0), (0.0, 512.0)),
        ];
        let instances = [
            InstanceFigures {
                cluster: "c".into(),
                instance: "i1".into(),
                cpu_registered: 2048.0,
                memory_registered: 2048.0,
                cpu_reserved: 1024.0,
                memory_reserved: 512.0,
            },
            InstanceFigures {
                cluster: "c".into(),
                instance: "i2".into(),
                cpu_registered: 2048.0,
                memory_registered: 2048.0,
                cpu_reserved: 1024.0,
                memory_reserved: 512.0,
            },
        ];
        let a = averages(compute_samples(&tasks, &instances));
        // (512 + 1024) / (2048 + 2048)
        assert!((a["AWS/ECS/CPUUtilization ClusterName=c"] - 37.5).abs() < 1e-9);
        assert!((a["AWS/ECS/MemoryUtilization ClusterName=c"] - 6.25).abs() < 1e-9);
        assert!((a["AWS/ECS/CPUReservation ClusterName=c"] - 50.0).abs() < 1e-9);
        assert!((a["AWS/ECS/MemoryReservation ClusterName=c"] - 25.0).abs() < 1e-9);
        // A task outside a service has no service figure.
        assert_eq!(a.keys().filter(|k| k.contains("ServiceName")).count(), 2);
    }

    #[test]
    fn an_idle_instance_counts_as_zero_and_fargate_against_its_reservation() {
        let tasks = [task(Some("f"), None, (512.0, 1024.0), (256.0, 512.0))];
        let instances = [InstanceFigures {
            cluster: "c".into(),
            instance: "i1".into(),
            cpu_registered: 1024.0,
            memory_registered: 1024.0,
            cpu_reserved: 0.0,
            memory_reserved: 0.0,
        }];
        let a = averages(compute_samples(&tasks, &instances));
        // (512 + 0) / (1024 + 1024)
        assert!((a["AWS/ECS/CPUUtilization ClusterName=c"] - 25.0).abs() < 1e-9);
        assert_eq!(a["AWS/ECS/CPUReservation ClusterName=c"], 0.0);
    }

    #[test]
    fn nothing_reserved_gives_no_figure() {
        let tasks = [task(Some("web"), None, (512.0, 0.0), (10.0, 0.0))];
        assert!(compute_samples(&tasks, &[]).is_empty());
    }
}
