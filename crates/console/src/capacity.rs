//! A cluster's capacity as the console shows it: the CPU units and MiB of memory its container
//! instances registered and have remaining (summed from DescribeContainerInstances'
//! `registeredResources` and `remainingResources`), and how many instances are connected.

use flotilla_model::shapes::{ContainerInstance, Resource};

/// CPU and memory of one instance or a whole cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// CPU units registered.
    pub cpu_registered: i64,
    /// CPU units not reserved by tasks.
    pub cpu_remaining: i64,
    /// MiB registered.
    pub memory_registered: i64,
    /// MiB not reserved by tasks.
    pub memory_remaining: i64,
    /// Container instances counted.
    pub instances: usize,
    /// Of those, the ones whose agent is connected.
    pub connected: usize,
}

impl Capacity {
    /// CPU units reserved by tasks.
    pub fn cpu_used(&self) -> i64 {
        self.cpu_registered - self.cpu_remaining
    }
    /// MiB reserved by tasks.
    pub fn memory_used(&self) -> i64 {
        self.memory_registered - self.memory_remaining
    }
}

/// The integer value of resource `name` (`CPU`, `MEMORY`) in `resources`, 0 when absent.
pub fn resource(resources: Option<&[Resource]>, name: &str) -> i64 {
    resources
        .unwrap_or_default()
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .map(|r| match r.r#type.as_deref() {
            Some("LONG") => r.long_value,
            Some("DOUBLE") => r.double_value as i64,
            _ => i64::from(r.integer_value),
        })
        .unwrap_or(0)
}

/// One container instance's capacity.
pub fn of_instance(i: &ContainerInstance) -> Capacity {
    let registered = i.registered_resources.as_deref();
    let remaining = i.remaining_resources.as_deref();
    Capacity {
        cpu_registered: resource(registered, "CPU"),
        cpu_remaining: resource(remaining, "CPU"),
        memory_registered: resource(registered, "MEMORY"),
        memory_remaining: resource(remaining, "MEMORY"),
        instances: 1,
        connected: usize::from(i.agent_connected),
    }
}

/// The capacity of the instances of a cluster (all that DescribeContainerInstances returned).
pub fn of_cluster(instances: &[ContainerInstance]) -> Capacity {
    instances
        .iter()
        .map(of_instance)
        .fold(Capacity::default(), |a, b| Capacity {
            cpu_registered: a.cpu_registered + b.cpu_registered,
            cpu_remaining: a.cpu_remaining + b.cpu_remaining,
            memory_registered: a.memory_registered + b.memory_registered,
            memory_remaining: a.memory_remaining + b.memory_remaining,
            instances: a.instances + b.instances,
            connected: a.connected + b.connected,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn res(name: &str, v: i32) -> Resource {
        Resource {
            name: Some(name.to_string()),
            r#type: Some("INTEGER".to_string()),
            integer_value: v,
            ..Default::default()
        }
    }

    pub(crate) fn instance(cpu: (i32, i32), mem: (i32, i32), connected: bool) -> ContainerInstance {
        ContainerInstance {
            container_instance_arn: Some(
                "arn:aws:ecs:us-east-1:000000000000:container-instance/c/i1".into(),
            ),
            ec2_instance_id: Some("i-1".into()),
            status: Some("ACTIVE".into()),
            agent_connected: connected,
            registered_resources: Some(vec![res("CPU", cpu.0), res("MEMORY", mem.0)]),
            remaining_resources: Some(vec![res("CPU", cpu.1), res("MEMORY", mem.1)]),
            ..Default::default()
        }
    }

    #[test]
    fn a_cluster_sums_its_instances() {
        let c = of_cluster(&[
            instance((2048, 1024), (4096, 3000), true),
            instance((1024, 1024), (2048, 2048), false),
        ]);
        assert_eq!(
            c,
            Capacity {
                cpu_registered: 3072,
                cpu_remaining: 2048,
                memory_registered: 6144,
                memory_remaining: 5048,
                instances: 2,
                connected: 1,
            }
        );
        assert_eq!(c.cpu_used(), 1024);
        assert_eq!(c.memory_used(), 1096);
        assert_eq!(of_cluster(&[]), Capacity::default());
    }

    #[test]
    fn a_missing_resource_is_zero() {
        assert_eq!(resource(None, "CPU"), 0);
        assert_eq!(resource(Some(&[res("MEMORY", 5)]), "CPU"), 0);
        let long = Resource {
            name: Some("CPU".into()),
            r#type: Some("LONG".into()),
            long_value: 7,
            ..Default::default()
        };
        assert_eq!(resource(Some(&[long]), "CPU"), 7);
    }
}
