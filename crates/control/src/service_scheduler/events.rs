//! What happened to a service, as a type: [`ServiceEvent`] is every event the service scheduler,
//! the service loop and StopServiceDeployment add to a service, and [`ServiceEvent::render`] is
//! the one place that writes ECS's wording for each (scripts match it, so it is copied exactly).
//!
//! What it is not: the stored event (`flotilla_model::shapes::ServiceEvent`, id, time and the
//! rendered message), which `ServiceRecord::push_events` builds from these.

use flotilla_scheduler::Rejection;

/// ECS's closing sentence of the events that point to the troubleshooting guide.
const TROUBLESHOOTING: &str =
    "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.";

/// Why a service task could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    /// The scheduler ruled an instance out (the reason it reports first).
    Rejected(Rejection),
    /// Anything else, in the words it came with: a placement error, Fargate capacity, the task
    /// network out of addresses.
    Other(String),
}

impl Unplaced {
    /// The reason as RunTask's `failures[].reason` says it.
    pub fn as_ecs_str(&self) -> &str {
        match self {
            Unplaced::Rejected(r) => r.as_ecs_str(),
            Unplaced::Other(s) => s,
        }
    }

    /// What ECS says of the closest matching instance.
    fn closest(&self) -> String {
        match self {
            Unplaced::Rejected(Rejection::Cpu) => "has insufficient CPU units available".into(),
            Unplaced::Rejected(Rejection::Memory) => "has insufficient memory available".into(),
            Unplaced::Rejected(Rejection::Ports | Rejection::PortsUdp) => {
                "is already using a port required by your task".into()
            }
            other => format!("encountered error \"{}\"", other.as_ecs_str()),
        }
    }
}

/// One event of a service (task and deployment ids as ECS shows them).
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceEvent {
    /// Tasks were placed.
    Started {
        /// Their ids.
        tasks: Vec<String>,
    },
    /// Tasks were told to stop.
    Stopped {
        /// Their ids.
        tasks: Vec<String>,
    },
    /// A task of the service could not be placed.
    UnableToPlace {
        /// The closest matching container instance (its id), when one is named.
        instance: Option<String>,
        /// Why.
        reason: Unplaced,
    },
    /// The task could not be prepared (its task definition, its launch settings).
    LaunchFailed {
        /// The error's message.
        error: String,
    },
    /// A RUNNING task failed its health checks and is replaced.
    TaskUnhealthy {
        /// Its id.
        task: String,
    },
    /// A RUNNING task's target is unhealthy in a target group of the service: it is replaced.
    TaskUnhealthyInTargetGroup {
        /// Its id.
        task: String,
        /// The target group's ARN.
        target_group: String,
    },
    /// A task stopped without the scheduler or a user stopping it.
    TaskStoppedUnexpectedly {
        /// Its id.
        task: String,
        /// Its stopped reason.
        reason: String,
    },
    /// Starts wait after repeated failures.
    Throttled,
    /// The service reached a steady state.
    Steady,
    /// The primary deployment COMPLETED.
    DeploymentCompleted {
        /// Its id.
        deployment: String,
    },
    /// The circuit breaker failed the primary deployment.
    CircuitBreakerTripped {
        /// Its id.
        deployment: String,
    },
    /// Deployment alarms went to ALARM and failed the primary deployment.
    AlarmsTriggered {
        /// Its id.
        deployment: String,
        /// The alarms, by name.
        alarms: Vec<String>,
    },
    /// The circuit breaker (or the deployment alarms) rolls back.
    RollingBack {
        /// The deployment rolled back to.
        to: String,
    },
    /// SERVICE_REBALANCING_STARTED: the service's zones are out of balance.
    NotBalanced {
        /// Live tasks per zone.
        counts: Vec<(String, u32)>,
    },
    /// SERVICE_REBALANCING_COMPLETED: the zones are balanced again.
    Rebalanced {
        /// Live tasks per zone.
        counts: Vec<(String, u32)>,
    },
    /// TASKS_STARTED by a rebalancing.
    RebalanceStarted {
        /// The zone.
        zone: String,
        /// Their ids.
        tasks: Vec<String>,
    },
    /// TASKS_STOPPED by a rebalancing.
    RebalanceStopped {
        /// The zone.
        zone: String,
        /// Their ids.
        tasks: Vec<String>,
    },
    /// StopServiceDeployment stopped a deployment and rolls back.
    DeploymentStopped {
        /// The deployment stopped.
        deployment: String,
        /// The deployment rolled back to.
        to: String,
    },
    /// A blue/green, linear or canary deployment moved production traffic to its green
    /// revision.
    TrafficShifted {
        /// The green deployment.
        deployment: String,
        /// The share of production traffic the green revision now gets (percent).
        percent: u32,
    },
    /// A blue/green, linear or canary deployment sent production traffic back to its blue
    /// revision and stops the green one.
    TrafficRolledBack {
        /// The green deployment that failed.
        deployment: String,
        /// The blue deployment that serves again.
        to: String,
        /// Why.
        reason: String,
    },
}

/// `(task a) (task b)`.
fn task_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("(task {id})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `3 tasks in a, 0 in b, and 1 in c` (`every`: "tasks" after each count, as ECS's completed
/// event says it).
fn zone_list(counts: &[(String, u32)], every: bool) -> String {
    let parts: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, (z, n))| {
            if i == 0 || every {
                format!("{n} tasks in {z}")
            } else {
                format!("{n} in {z}")
            }
        })
        .collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        2 => format!("{} and {}", parts[0], parts[1]),
        n => format!("{}, and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

impl ServiceEvent {
    /// The message ECS shows for this event of the service `service`.
    pub fn render(&self, service: &str) -> String {
        let s = format!("(service {service})");
        match self {
            Self::Started { tasks } => {
                format!(
                    "{s} has started {} tasks: {}.",
                    tasks.len(),
                    task_list(tasks)
                )
            }
            Self::Stopped { tasks } => format!(
                "{s} has stopped {} running tasks: {}.",
                tasks.len(),
                task_list(tasks)
            ),
            Self::UnableToPlace { instance, reason } => {
                let unable = format!(
                    "{s} was unable to place a task because no container instance met all of its requirements."
                );
                match instance {
                    Some(i) => format!(
                        "{unable} The closest matching (container-instance {i}) {}. {TROUBLESHOOTING}",
                        reason.closest()
                    ),
                    None => format!(
                        "{unable} Reason: {} {TROUBLESHOOTING}",
                        reason.as_ecs_str()
                    ),
                }
            }
            Self::LaunchFailed { error } => {
                format!("{s} failed to launch a task with (error {error}).")
            }
            Self::TaskUnhealthyInTargetGroup { task, target_group } => format!(
                "{s} (task {task}) is unhealthy in (target-group {target_group}) due to (reason Health checks failed)."
            ),
            Self::TaskUnhealthy { task } => {
                format!("{s} (task {task}) failed container health checks.")
            }
            Self::TaskStoppedUnexpectedly { task, reason } => format!(
                "{s} (task {task}) stopped unexpectedly: {}.",
                reason.trim_end_matches('.')
            ),
            Self::Throttled => {
                format!("{s} is unable to consistently start tasks successfully. {TROUBLESHOOTING}")
            }
            Self::Steady => format!("{s} has reached a steady state."),
            Self::DeploymentCompleted { deployment } => {
                format!("{s} (deployment {deployment}) deployment completed.")
            }
            Self::CircuitBreakerTripped { deployment } => {
                format!("{s} (deployment {deployment}) deployment failed: tasks failed to start.")
            }
            Self::AlarmsTriggered { deployment, alarms } => format!(
                "{s} (deployment {deployment}) deployment failed: alarm(s) {} in ALARM.",
                alarms.join(", ")
            ),
            Self::RollingBack { to } => format!("{s} rolling back to deployment {to}."),
            Self::NotBalanced { counts } => format!(
                "service ({service}) is not AZ balanced with {}. AZ Rebalancing in progress.",
                zone_list(counts, false)
            ),
            Self::Rebalanced { counts } => format!(
                "service ({service}) is AZ balanced with {}.",
                zone_list(counts, true)
            ),
            Self::RebalanceStarted { zone, tasks } => format!(
                "{service} has started {} tasks in {zone} to AZ Rebalance: {}.",
                tasks.len(),
                task_list(tasks)
            ),
            Self::RebalanceStopped { zone, tasks } => format!(
                "{service} has stopped {} running tasks in {zone} due to AZ rebalancing: {}.",
                tasks.len(),
                task_list(tasks)
            ),
            Self::DeploymentStopped { deployment, to } => format!(
                "{s} (deployment {deployment}) deployment stopped: rolling back to deployment {to}."
            ),
            Self::TrafficShifted {
                deployment,
                percent,
            } => format!(
                "{s} (deployment {deployment}) shifted {percent}% of production traffic to the new service revision."
            ),
            Self::TrafficRolledBack {
                deployment,
                to,
                reason,
            } => format!(
                "{s} (deployment {deployment}) rolled back: production traffic returned to deployment {to} ({reason})."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: ServiceEvent, want: &str) {
        assert_eq!(e.render("web"), want);
    }

    #[test]
    fn ecs_wording() {
        let ids = vec!["a".to_string(), "b".to_string()];
        check(
            ServiceEvent::Started { tasks: ids.clone() },
            "(service web) has started 2 tasks: (task a) (task b).",
        );
        check(
            ServiceEvent::Stopped { tasks: ids },
            "(service web) has stopped 2 running tasks: (task a) (task b).",
        );
        check(
            ServiceEvent::UnableToPlace {
                instance: Some("i1".into()),
                reason: Unplaced::Rejected(Rejection::Memory),
            },
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance i1) has insufficient memory available. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
        );
        check(
            ServiceEvent::UnableToPlace {
                instance: Some("i1".into()),
                reason: Unplaced::Rejected(Rejection::DistinctInstance),
            },
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance i1) encountered error \"ATTRIBUTE\". For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
        );
        check(
            ServiceEvent::UnableToPlace {
                instance: None,
                reason: Unplaced::Other("No Container Instances were found in your cluster.".into()),
            },
            "(service web) was unable to place a task because no container instance met all of its requirements. Reason: No Container Instances were found in your cluster. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
        );
        check(
            ServiceEvent::TaskStoppedUnexpectedly {
                task: "t".into(),
                reason: "Essential container in task exited.".into(),
            },
            "(service web) (task t) stopped unexpectedly: Essential container in task exited.",
        );
        check(
            ServiceEvent::Throttled,
            "(service web) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
        );
        check(
            ServiceEvent::DeploymentStopped {
                deployment: "ecs-svc/2".into(),
                to: "ecs-svc/1".into(),
            },
            "(service web) (deployment ecs-svc/2) deployment stopped: rolling back to deployment ecs-svc/1.",
        );
    }
}
