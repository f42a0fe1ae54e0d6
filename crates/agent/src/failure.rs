//! [`TaskFailure`]: why a task failed to start, or why a container is gone, as a type that knows
//! the error name ECS shows (`ResourceInitializationError`, `CannotPullContainerError`...) and
//! its message.
//!
//! What this is: the outcomes the task engine reports as a stopped reason or a container's
//! `reason`. Their text (`Display`: `Name: message`) is the wire text, which scripts read:
//! every variant's rendering is fixed by the table test below.
//!
//! What this is not: the runtime's own errors ([`RuntimeError`], which several variants wrap),
//! nor the reasons of a task that ran and stopped (`Essential container in task exited`,
//! `OutOfMemoryError`), which [`crate::lifecycle`] decides.

use crate::runtime::RuntimeError;

/// Why a task failed to start, or a container is gone.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", self.ecs_name(), self.message())]
pub enum TaskFailure {
    /// The task cgroup (task-level cpu and memory) could not be created.
    TaskCgroup(String),
    /// An awsvpc task came without its network.
    NoNetwork,
    /// The awsvpc network could not be inspected or created.
    Network {
        /// The Docker network's name.
        network: String,
        /// What the runtime said.
        error: RuntimeError,
    },
    /// The awsvpc network exists with another subnet.
    NetworkSubnet {
        /// The Docker network's name.
        network: String,
        /// The subnets it has, comma-separated (`(none)` when none).
        found: String,
        /// The subnet the task needs.
        wanted: String,
    },
    /// The pause image could not be built.
    PauseImage(String),
    /// The existing pause container could not be inspected.
    Pause(RuntimeError),
    /// The existing (stopped) pause container could not be started again.
    RestartPause(RuntimeError),
    /// The pause container could not be created.
    CreatePause {
        /// The task's address.
        address: String,
        /// What the runtime said.
        error: RuntimeError,
    },
    /// The pause container could not be started.
    StartPause {
        /// The task's address.
        address: String,
        /// What the runtime said.
        error: RuntimeError,
    },
    /// The task asks for something Docker cannot do ([`crate::spec::validate`]).
    Invalid(String),
    /// An image could not be checked or pulled.
    Pull(RuntimeError),
    /// A task volume could not be created.
    Volume(RuntimeError),
    /// A container could not be created.
    Create(RuntimeError),
    /// A container could not be started.
    Start(RuntimeError),
    /// A container's dependencies can never be met (or not within its `startTimeout`).
    DependencyNotResolved(String),
    /// The task's `secrets` (or `secretOptions`) could not be read: the server's reason, in the
    /// ECS agent's words, naming the secret (never holding a value).
    Secrets(String),
    /// The task has a role, and its containers cannot reach the credentials endpoint
    /// (`169.254.170.2`) on this host: why.
    TaskRoleEndpoint(String),
    /// The task role's credentials could not be had from the server: its reason.
    TaskRoleCredentials(String),
    /// A container the agent created no longer exists.
    ContainerGone {
        /// Its runtime id.
        id: String,
    },
    /// The `awslogs` options are not valid (`flotilla_logs::awslogs::parse`).
    LogOptions(String),
    /// The `awslogs` stream could not be created: the group does not exist (and
    /// `awslogs-create-group` is not true), or the server refused or could not be reached.
    /// On Fargate ECS names it `ResourceInitializationError`, on EC2 Docker's logging driver
    /// fails the start (`CannotStartContainerError`).
    LogStream {
        /// A Fargate (managed pool) task.
        fargate: bool,
        /// What the server said.
        message: String,
    },
}

impl TaskFailure {
    /// The error name ECS shows.
    pub fn ecs_name(&self) -> &'static str {
        match self {
            TaskFailure::TaskCgroup(_)
            | TaskFailure::NoNetwork
            | TaskFailure::Network { .. }
            | TaskFailure::NetworkSubnet { .. }
            | TaskFailure::PauseImage(_)
            | TaskFailure::Pause(_)
            | TaskFailure::RestartPause(_)
            | TaskFailure::CreatePause { .. }
            | TaskFailure::StartPause { .. }
            | TaskFailure::Secrets(_)
            | TaskFailure::TaskRoleEndpoint(_)
            | TaskFailure::TaskRoleCredentials(_) => "ResourceInitializationError",
            TaskFailure::Invalid(_) | TaskFailure::Create(_) => "CannotCreateContainerError",
            TaskFailure::Pull(e) | TaskFailure::Volume(e) => e.ecs_name(),
            TaskFailure::Start(_) => "CannotStartContainerError",
            TaskFailure::DependencyNotResolved(_) => "DependencyNotResolvedError",
            TaskFailure::ContainerGone { .. } => "CannotInspectContainerError",
            TaskFailure::LogOptions(_) => "CannotCreateContainerError",
            TaskFailure::LogStream { fargate: true, .. } => "ResourceInitializationError",
            TaskFailure::LogStream { fargate: false, .. } => "CannotStartContainerError",
        }
    }

    /// The message after the name.
    pub fn message(&self) -> String {
        match self {
            TaskFailure::TaskCgroup(e) => format!("task cgroup: {e}"),
            TaskFailure::NoNetwork => "the awsvpc task has no network assigned".into(),
            TaskFailure::Network { network, error } => format!("network {network}: {error}"),
            TaskFailure::NetworkSubnet {
                network,
                found,
                wanted,
            } => format!(
                "Docker network {network} exists with subnet {found} instead of {wanted}; \
                 remove it or give the task network another name"
            ),
            TaskFailure::PauseImage(e) => format!("pause image: {e}"),
            TaskFailure::Pause(e) => e.to_string(),
            TaskFailure::RestartPause(e) => format!("start the pause container: {e}"),
            TaskFailure::CreatePause { address, error } => {
                format!("create the pause container with address {address}: {error}")
            }
            TaskFailure::StartPause { address, error } => {
                format!("start the pause container with address {address}: {error}")
            }
            TaskFailure::Invalid(reason)
            | TaskFailure::DependencyNotResolved(reason)
            | TaskFailure::Secrets(reason) => reason.clone(),
            TaskFailure::Pull(e) | TaskFailure::Volume(e) => e.detail(),
            // A runtime error of the same name is not named twice.
            TaskFailure::Create(e @ (RuntimeError::Create(_) | RuntimeError::Conflict(_)))
            | TaskFailure::Start(e @ RuntimeError::Start(_)) => e.detail(),
            TaskFailure::Create(e) | TaskFailure::Start(e) => e.to_string(),
            TaskFailure::TaskRoleEndpoint(why) => format!(
                "the task role's credentials cannot be served to this task at 169.254.170.2: {why}"
            ),
            TaskFailure::TaskRoleCredentials(reason) => {
                format!("unable to get the task role's credentials: {reason}")
            }
            TaskFailure::ContainerGone { id } => format!("container {id} no longer exists"),
            TaskFailure::LogOptions(why) => {
                format!("Error response from daemon: failed to create task for container: failed to initialize logging driver: {why}")
            }
            TaskFailure::LogStream {
                fargate: true,
                message,
            } => format!(
                "failed to validate logger args: create stream has been retried 1 times: failed to create Cloudwatch log stream: {message}"
            ),
            TaskFailure::LogStream {
                fargate: false,
                message,
            } => format!(
                "Error response from daemon: failed to initialize logging driver: failed to create Cloudwatch log stream: {message}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> RuntimeError {
        RuntimeError::Other("boom".into())
    }

    /// The wire text of every outcome, as the agent sent it when these were `format!`ed.
    #[test]
    fn every_failure_renders_its_wire_text() {
        let address = || "10.0.0.5".to_string();
        let cases: Vec<(TaskFailure, &str)> = vec![
            (
                TaskFailure::TaskCgroup("write 1 to x: denied".into()),
                "ResourceInitializationError: task cgroup: write 1 to x: denied",
            ),
            (
                TaskFailure::NoNetwork,
                "ResourceInitializationError: the awsvpc task has no network assigned",
            ),
            (
                TaskFailure::Network {
                    network: "n".into(),
                    error: other(),
                },
                "ResourceInitializationError: network n: DockerError: boom",
            ),
            (
                TaskFailure::NetworkSubnet {
                    network: "n".into(),
                    found: "(none)".into(),
                    wanted: "10.0.0.0/24".into(),
                },
                "ResourceInitializationError: Docker network n exists with subnet (none) \
                 instead of 10.0.0.0/24; remove it or give the task network another name",
            ),
            (
                TaskFailure::Secrets("unable to pull secrets or registry auth: x".into()),
                "ResourceInitializationError: unable to pull secrets or registry auth: x",
            ),
            (
                TaskFailure::LogStream {
                    fargate: false,
                    message: "ResourceNotFoundException: The specified log group does not exist.".into(),
                },
                "CannotStartContainerError: Error response from daemon: failed to initialize \
                 logging driver: failed to create Cloudwatch log stream: ResourceNotFoundException: \
                 The specified log group does not exist.",
            ),
            (
                TaskFailure::LogStream {
                    fargate: true,
                    message: "ResourceNotFoundException: The specified log group does not exist.".into(),
                },
                "ResourceInitializationError: failed to validate logger args: create stream has \
                 been retried 1 times: failed to create Cloudwatch log stream: \
                 ResourceNotFoundException: The specified log group does not exist.",
            ),
            (
                TaskFailure::PauseImage("no arch".into()),
                "ResourceInitializationError: pause image: no arch",
            ),
            (
                TaskFailure::Pause(other()),
                "ResourceInitializationError: DockerError: boom",
            ),
            (
                TaskFailure::RestartPause(RuntimeError::Start("x".into())),
                "ResourceInitializationError: start the pause container: \
                 CannotStartContainerError: x",
            ),
            (
                TaskFailure::CreatePause {
                    address: address(),
                    error: RuntimeError::Create("in use".into()),
                },
                "ResourceInitializationError: create the pause container with address \
                 10.0.0.5: CannotCreateContainerError: in use",
            ),
            (
                TaskFailure::StartPause {
                    address: address(),
                    error: RuntimeError::Start("x".into()),
                },
                "ResourceInitializationError: start the pause container with address \
                 10.0.0.5: CannotStartContainerError: x",
            ),
            (
                TaskFailure::Invalid("bad".into()),
                "CannotCreateContainerError: bad",
            ),
            (
                TaskFailure::Pull(RuntimeError::Pull {
                    image: "i".into(),
                    message: "denied".into(),
                }),
                "CannotPullContainerError: pull image i: denied",
            ),
            (TaskFailure::Pull(other()), "DockerError: boom"),
            (
                TaskFailure::Volume(RuntimeError::Create("volume v: x".into())),
                "CannotCreateContainerError: volume v: x",
            ),
            (
                TaskFailure::Create(RuntimeError::Conflict("c".into())),
                "CannotCreateContainerError: name conflict: c",
            ),
            (
                TaskFailure::Create(RuntimeError::NotFound("c".into())),
                "CannotCreateContainerError: CannotInspectContainerError: no such object: c",
            ),
            (
                TaskFailure::Start(RuntimeError::Start("s".into())),
                "CannotStartContainerError: s",
            ),
            (
                TaskFailure::Start(other()),
                "CannotStartContainerError: DockerError: boom",
            ),
            (
                TaskFailure::DependencyNotResolved("why".into()),
                "DependencyNotResolvedError: why",
            ),
            (
                TaskFailure::TaskRoleEndpoint("no cgroup v2".into()),
                "ResourceInitializationError: the task role's credentials cannot be served to \
                 this task at 169.254.170.2: no cgroup v2",
            ),
            (
                TaskFailure::TaskRoleCredentials("the task t has stopped".into()),
                "ResourceInitializationError: unable to get the task role's credentials: the \
                 task t has stopped",
            ),
            (
                TaskFailure::ContainerGone { id: "abc".into() },
                "CannotInspectContainerError: container abc no longer exists",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text, "{failure:?}");
            assert!(text.starts_with(failure.ecs_name()), "{failure:?}");
        }
    }
}
