//! ECS Exec's rules on the server: which container of a task `ExecuteCommand` runs a command
//! in, and when ECS refuses it, with ECS's words; and the `ExecuteCommandAgent` managed agent as
//! DescribeTasks shows it.
//!
//! What this is not: the session or the streams (`api::exec`, `agent::exec`): nothing here
//! reads a store or opens a socket.

use crate::tasks::TaskRecord;
use flotilla_model::shapes::{
    ClusterConfiguration, Container, ExecuteCommandLogging, ManagedAgent, ManagedAgentName,
};
use flotilla_model::EcsError;
use flotilla_protocol::exec::split_command;
use flotilla_protocol::{ManagedAgentState, ManagedAgentStatus};

/// ECS's refusal when the task was started without `enableExecuteCommand`, or its container's
/// `ExecuteCommandAgent` is not RUNNING (not started yet, or stopped). ECS writes the
/// apostrophe of "isn’t" as U+2019.
pub const NOT_ENABLED: &str = "The execute command failed because execute command was not enabled when the task was run or the execute command agent isn\u{2019}t running. Wait and try again or run a new task with execute command enabled and try again.";

/// ECS's refusal of `interactive: false`.
pub const INTERACTIVE_ONLY: &str = "Interactive is the only mode supported currently.";

/// ECS's `TargetNotConnectedException` message; Flotilla adds why after it.
pub const NOT_CONNECTED: &str =
    "The execute command failed due to an internal error. Try again later.";

/// A cluster's `executeCommandConfiguration` (CreateCluster, UpdateCluster): Flotilla neither
/// logs nor re-encrypts exec sessions, so `logging` `NONE` and `DEFAULT` (ECS's default; here
/// nothing is logged) are accepted, and what asks for more (`OVERRIDE`, a `logConfiguration`, a
/// `kmsKeyId`) is refused rather than ignored.
pub fn check_cluster_configuration(conf: &ClusterConfiguration) -> Result<(), EcsError> {
    let Some(e) = &conf.execute_command_configuration else {
        return Ok(());
    };
    let refuse = |what: &str| {
        Err(EcsError::invalid_parameter(format!(
            "executeCommandConfiguration: {what} is not supported by Flotilla, which does not log or re-encrypt execute command sessions. Use logging NONE or DEFAULT, without logConfiguration or kmsKeyId."
        )))
    };
    if e.logging == Some(ExecuteCommandLogging::Override) {
        return refuse("logging OVERRIDE");
    }
    if e.log_configuration.is_some() {
        return refuse("logConfiguration");
    }
    if e.kms_key_id.is_some() {
        return refuse("kmsKeyId");
    }
    Ok(())
}

/// The container a command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    /// Its name in the task definition.
    pub container_name: String,
    /// Its ARN.
    pub container_arn: String,
}

/// The managed agent of a container of a task with `enableExecuteCommand` before its agent
/// reported anything.
pub fn pending_agent() -> ManagedAgent {
    ManagedAgent {
        name: Some(ManagedAgentName::ExecuteCommandAgent),
        last_status: Some(ManagedAgentStatus::Pending.as_str().to_string()),
        last_started_at: None,
        reason: None,
    }
}

/// A managed agent as an agent reported it, as DescribeTasks shows it.
pub fn agent_shape(s: &ManagedAgentState) -> ManagedAgent {
    ManagedAgent {
        name: Some(s.name),
        last_status: Some(s.status.as_str().to_string()),
        last_started_at: s.started_at.map(crate::time::timestamp),
        reason: s.reason.clone(),
    }
}

/// A stopped task's managed agents are STOPPED (whatever its agent last said: it may never
/// say more).
pub fn stop_agents<'a>(containers: impl Iterator<Item = &'a mut Container>) {
    for a in containers.flat_map(|c| c.managed_agents.iter_mut().flatten()) {
        a.last_status = Some(ManagedAgentStatus::Stopped.as_str().to_string());
    }
}

/// Whether a container's `ExecuteCommandAgent` is RUNNING.
pub fn agent_running(c: &Container) -> bool {
    c.managed_agents.iter().flatten().any(|a| {
        a.name == Some(ManagedAgentName::ExecuteCommandAgent)
            && a.last_status.as_deref() == Some(ManagedAgentStatus::Running.as_str())
    })
}

/// `command` as words, or ECS's `InvalidParameterException`; `interactive: false` is refused
/// first, as ECS refuses it.
pub fn parse_command(command: &str, interactive: bool) -> Result<Vec<String>, EcsError> {
    if !interactive {
        return Err(EcsError::invalid_parameter(INTERACTIVE_ONLY));
    }
    split_command(command).map_err(|e| EcsError::invalid_parameter(e.to_string()))
}

/// The container of `rec` that `ExecuteCommand` runs in: the one named `container`, or the
/// task's only container. Refused as ECS refuses: a task with several containers needs the
/// name; a task without `enableExecuteCommand`, or whose container's `ExecuteCommandAgent` is
/// not RUNNING (the container is not running, or the task stopped), is [`NOT_ENABLED`].
pub fn target(rec: &TaskRecord, container: Option<&str>) -> Result<ExecTarget, EcsError> {
    let containers = rec.task.containers.as_deref().unwrap_or_default();
    let names = || {
        containers
            .iter()
            .filter_map(|c| c.name.as_deref())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match container.filter(|c| !c.is_empty()) {
        Some(name) => containers
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .ok_or_else(|| {
                EcsError::invalid_parameter(format!(
                    "The container {name} was not found in the task. The task's containers are: {}.",
                    names()
                ))
            })?,
        None => match containers {
            [only] => only,
            _ => {
                return Err(EcsError::invalid_parameter(format!(
                    "The task has more than one container: specify the container to run the command in ({}).",
                    names()
                )))
            }
        },
    };
    if !rec.task.enable_execute_command || rec.is_stopped() || !agent_running(chosen) {
        return Err(EcsError::invalid_parameter(NOT_ENABLED));
    }
    Ok(ExecTarget {
        container_name: chosen.name.clone().unwrap_or_default(),
        container_arn: chosen.container_arn.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::status::TaskStatus;
    use flotilla_model::ErrorCode;

    fn container(name: &str, agent: Option<ManagedAgentStatus>) -> Container {
        Container {
            name: Some(name.into()),
            container_arn: Some(format!("arn:c/{name}")),
            managed_agents: agent.map(|status| {
                vec![agent_shape(&ManagedAgentState {
                    name: ManagedAgentName::ExecuteCommandAgent,
                    status,
                    started_at: Some(1.0),
                    reason: None,
                })]
            }),
            ..Container::default()
        }
    }

    fn task(enabled: bool, containers: Vec<Container>) -> TaskRecord {
        let mut t = TaskRecord::default();
        t.task.enable_execute_command = enabled;
        t.task.containers = Some(containers);
        t.last_status = crate::tasks::Status(TaskStatus::Running);
        t
    }

    fn message(r: Result<ExecTarget, EcsError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        e.message
    }

    #[test]
    fn the_only_container_or_the_named_one() {
        let running = Some(ManagedAgentStatus::Running);
        let one = task(true, vec![container("app", running)]);
        assert_eq!(target(&one, None).unwrap().container_name, "app");
        assert_eq!(target(&one, Some("")).unwrap().container_arn, "arn:c/app");
        let two = task(
            true,
            vec![container("app", running), container("side", running)],
        );
        assert_eq!(target(&two, Some("side")).unwrap().container_name, "side");
        assert!(message(target(&two, None)).contains("(app, side)"));
        assert!(message(target(&two, Some("nope"))).contains("The container nope was not found"));
    }

    #[test]
    fn without_a_running_exec_agent_ecs_refuses() {
        let running = Some(ManagedAgentStatus::Running);
        assert_eq!(
            message(target(&task(false, vec![container("app", None)]), None)),
            NOT_ENABLED
        );
        let pending = task(
            true,
            vec![container("app", Some(ManagedAgentStatus::Pending))],
        );
        assert_eq!(message(target(&pending, None)), NOT_ENABLED);
        let stopped_agent = task(
            true,
            vec![container("app", Some(ManagedAgentStatus::Stopped))],
        );
        assert_eq!(message(target(&stopped_agent, None)), NOT_ENABLED);
        let mut stopped = task(true, vec![container("app", running)]);
        stopped.last_status = crate::tasks::Status(TaskStatus::Stopped);
        assert_eq!(message(target(&stopped, None)), NOT_ENABLED);
        assert!(NOT_ENABLED.contains("isn\u{2019}t running"));
    }

    #[test]
    fn commands_are_interactive_words() {
        assert_eq!(
            parse_command("sh -c 'exit 3'", true).unwrap(),
            ["sh", "-c", "exit 3"]
        );
        assert_eq!(
            parse_command("ls", false).unwrap_err().message,
            INTERACTIVE_ONLY
        );
        let e = parse_command("  ", true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        assert!(parse_command("echo 'x", true).is_err());
    }

    #[test]
    fn session_logging_and_encryption_are_refused_not_ignored() {
        use flotilla_model::shapes::{ExecuteCommandConfiguration, ExecuteCommandLogConfiguration};
        let conf = |e: ExecuteCommandConfiguration| ClusterConfiguration {
            execute_command_configuration: Some(e),
            ..ClusterConfiguration::default()
        };
        assert!(check_cluster_configuration(&ClusterConfiguration::default()).is_ok());
        for logging in [
            None,
            Some(ExecuteCommandLogging::None),
            Some(ExecuteCommandLogging::Default),
        ] {
            let c = conf(ExecuteCommandConfiguration {
                logging,
                ..Default::default()
            });
            assert!(check_cluster_configuration(&c).is_ok());
        }
        let refused = [
            ExecuteCommandConfiguration {
                logging: Some(ExecuteCommandLogging::Override),
                ..Default::default()
            },
            ExecuteCommandConfiguration {
                log_configuration: Some(ExecuteCommandLogConfiguration::default()),
                ..Default::default()
            },
            ExecuteCommandConfiguration {
                kms_key_id: Some("k".into()),
                ..Default::default()
            },
        ];
        for e in refused {
            let err = check_cluster_configuration(&conf(e)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParameterException);
            assert!(
                err.message.contains("not supported by Flotilla"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn a_pending_agent_has_no_start_time() {
        let a = pending_agent();
        assert_eq!(a.last_status.as_deref(), Some("PENDING"));
        assert_eq!(a.name, Some(ManagedAgentName::ExecuteCommandAgent));
        assert!(a.last_started_at.is_none());
        assert!(!agent_running(&Container {
            managed_agents: Some(vec![a]),
            ..Container::default()
        }));
    }
}
