//! The agent session: what a `flotilla agent` and the control plane say to each other.
//!
//! The ECS architecture, kept: the agent registers its host with the ECS API
//! (`RegisterContainerInstance`), asks `DiscoverPollEndpoint` where its session lives, then holds
//! ONE long-lived WebSocket at [`SESSION_PATH`] (`?containerInstance=<ARN>`), whose upgrade
//! request is signed with SigV4 like any ECS call. Over it:
//!
//! - the server **pushes** desired state ([`ServerMessage::Tasks`]): on connect the full set of
//!   tasks assigned to the instance that are not yet STOPPED (`full: true`), then every change
//!   as it is committed. Assignments are level-triggered: each carries the whole desired state of
//!   its task and a `version` that grows with every change of it, so a repeated or reordered
//!   message is harmless (the agent keeps the highest version);
//! - the agent **reports** observed state ([`AgentMessage::TaskState`]): each report carries the
//!   whole observed state of one task (not a delta), so applying it twice changes nothing; the
//!   server never moves a task's `lastStatus` backwards;
//! - the agent sends [`AgentMessage::Heartbeat`] every `heartbeat_interval_ms`; a session silent
//!   for [`MISSED_HEARTBEATS`] intervals is gone and the instance shows `agentConnected: false`;
//! - the agent samples usage ([`AgentMessage::Usage`]); the server keeps the latest per task;
//! - the agent asks for a task's secrets (and the registry credentials its containers'
//!   `repositoryCredentials` name) when it is about to pull its images
//!   ([`AgentMessage::GetSecrets`]); the server reads them then and answers on this session
//!   only ([`ServerMessage::Secrets`]): the values are never stored, neither in the control
//!   plane's store nor in the agent's data directory, and print as `***` in `Debug`.
//! - task role credentials: for a task with a `taskRoleArn`, the agent asks for the temporary
//!   keys Flotilla issues for it ([`AgentMessage::GetCredentials`]) before it creates the task's
//!   containers and again before they expire; the server answers on this session only
//!   ([`ServerMessage::Credentials`]). The agent keeps them in memory and serves them to the
//!   task's containers at `169.254.170.2`; the secret key and the token print as `***`.
//! - logs: the events of a container's `awslogs` stream stay on its host, so the server asks
//!   the agent for them ([`ServerMessage::Log`], a [`flotilla_logs::query::LogRequest`] with an
//!   id, answered by [`AgentMessage::Log`] with the same id), and tells it the log groups that
//!   exist with their retention ([`ServerMessage::LogGroups`], the whole list on connect and
//!   after every change: the agent drops what a retention expired and the streams of deleted
//!   groups).
//! - exec (ECS Exec): the server asks the agent to run a command in a task's container
//!   ([`ServerMessage::Exec`], an [`exec::ExecOrder`]); the agent checks the task is its own,
//!   has `enableExecuteCommand` and the container runs, then dials back to the server on a
//!   WebSocket of its own ([`exec::AGENT_PATH`]) that carries the command's streams as
//!   [`exec::Frame`]s, so a busy terminal never delays this session. The agent reports the
//!   `ExecuteCommandAgent` managed agent of each container of such a task
//!   ([`ContainerStateReport::managed_agents`]).
//!
//! - warm task networks (managed-pool hosts): the agent asks the server to keep up to N task
//!   networks reserved for it ([`AgentMessage::ReserveWarmNetworks`]); the server allocates
//!   their addresses and answers the whole list ([`ServerMessage::WarmNetworks`]). The agent
//!   starts a pause container for each ahead of time; a FARGATE task placed on the host takes
//!   one of those addresses, and the agent adopts the running pause container instead of
//!   making one on the task's critical path.
//!
//! Messages are JSON text frames, tagged by `"type"`.
//!
//! What this crate is not: transport. It has no sockets and no clock.

#![warn(missing_docs)]

pub mod dns;
pub mod exec;
pub mod runnable;

use flotilla_model::shapes::{
    ContainerDefinition, HealthStatus, ManagedAgentName, NetworkBinding, NetworkMode, TaskStopCode,
    Volume,
};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use serde::{Deserialize, Serialize};

/// Where the session WebSocket is served.
pub const SESSION_PATH: &str = "/agent/v1/session";
/// The query parameter naming the container instance.
pub const INSTANCE_PARAM: &str = "containerInstance";
/// The protocol version; a server refuses an agent with another major.
pub const PROTOCOL_VERSION: u32 = 1;
/// How many heartbeat intervals may pass silently before the instance is disconnected.
pub const MISSED_HEARTBEATS: u64 = 3;
/// The WebSocket close code with which an agent ends a session to move to another replica (its
/// preferred one, back again): the instance is not disconnected by that close (an application
/// code, 4000-4999, so no generic client sends it by accident).
pub const MOVING_CLOSE_CODE: u16 = 4001;
/// The cluster name a managed-pool host (`flotilla agent --managed`) registers with. It is not
/// a valid ECS cluster name (a dot is not allowed), so no user cluster can ever be called that:
/// managed hosts belong to no cluster, never appear in ListContainerInstances, and run the
/// Fargate tasks of every cluster.
pub const MANAGED_POOL: &str = ".managed";

/// The attribute a host registers with to join a custom capacity provider (`flotilla agent
/// --capacity-provider NAME`); the server records it as the container instance's
/// `capacityProviderName` and does not keep it as an attribute.
pub const CAPACITY_PROVIDER_ATTRIBUTE: &str = "flotilla.capacity-provider";
/// The name an awsvpc task's pause container carries in the [`labels::CONTAINER_NAME`] label
/// (the ECS agent's name for it).
pub const PAUSE_CONTAINER_NAME: &str = "~internal~ecs~pause";

/// The most warm task networks a host may keep reserved ([`AgentMessage::ReserveWarmNetworks`]);
/// a larger request is served this many.
pub const MAX_WARM_NETWORKS: u32 = 16;

/// Docker labels the agent puts on every container it creates, so a restarted agent can find
/// and adopt them.
pub mod labels {
    /// The container instance id (the last part of its ARN) that owns the container.
    pub const INSTANCE: &str = "com.flotilla.container-instance";
    /// The cluster name.
    pub const CLUSTER: &str = "com.flotilla.cluster";
    /// The task ARN.
    pub const TASK_ARN: &str = "com.flotilla.task-arn";
    /// The container's name in its task definition.
    pub const CONTAINER_NAME: &str = "com.flotilla.container-name";
    /// The task definition family and revision, `family:revision`.
    pub const TASK_DEFINITION: &str = "com.flotilla.task-definition";
    /// On a warm pause container (made before any task, so without [`TASK_ARN`]): the address
    /// of the warm task network it holds.
    pub const WARM_ADDRESS: &str = "com.flotilla.warm-address";
}

/// Desired status the control plane asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    /// Run the task.
    Running,
    /// Stop the task (and keep it stopped).
    Stopped,
}

/// Server -> agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// First message of a session.
    Welcome {
        /// The instance this session belongs to.
        container_instance_arn: String,
        /// How often the agent must send a heartbeat.
        heartbeat_interval_ms: u64,
        /// [`PROTOCOL_VERSION`] of the server.
        protocol_version: u32,
    },
    /// Desired state of tasks on this instance.
    Tasks {
        /// When true, this is every task the instance should know about; a task the agent runs
        /// that is not listed was stopped or forgotten by the control plane and must be stopped.
        full: bool,
        /// Upserts, by task ARN.
        tasks: Vec<TaskAssignment>,
    },
    /// The server has applied the agent's reports up to and including this sequence number.
    Ack {
        /// Highest applied `TaskStateReport::seq`.
        seq: u64,
    },
    /// The answer to [`AgentMessage::GetSecrets`]: the task's secrets, read when asked and sent
    /// only on the session of the instance that runs the task; never stored.
    Secrets {
        /// The request's id.
        request_id: u64,
        /// The task.
        task_arn: String,
        /// The values, or why they could not be read.
        outcome: SecretsOutcome,
    },
    /// The answer to [`AgentMessage::GetCredentials`]: the task role's temporary credentials,
    /// sent only on the session of the instance that runs the task.
    Credentials {
        /// The request's id.
        request_id: u64,
        /// The task.
        task_arn: String,
        /// The credentials, or why there are none.
        outcome: CredentialsOutcome,
    },
    /// A read (or stats) of log streams this host keeps; answered by [`AgentMessage::Log`]
    /// with the same `id`.
    Log {
        /// Chosen by the server, unique within the session.
        id: u64,
        /// What to do.
        request: flotilla_logs::query::LogRequest,
    },
    /// Every log group that exists, as listed at store revision `revision` (level-triggered:
    /// the whole list each time).
    LogGroups {
        /// The store revision of the list: a stream of a group generation at or before it whose
        /// group is not listed belongs to a deleted group.
        revision: u64,
        /// The groups.
        groups: Vec<flotilla_logs::query::GroupState>,
    },
    /// Run a command in a container of a task of this instance (ECS Exec): the agent dials
    /// back to [`exec::AGENT_PATH`] and runs it there.
    Exec(exec::ExecOrder),
    /// The answer to [`AgentMessage::ReserveWarmNetworks`]: every task network reserved for
    /// this instance now (level-triggered: the whole list). Only the address, MAC, hostname,
    /// network, subnet and gateway are meaningful; a task that takes one gets its own
    /// attachment and interface ids.
    WarmNetworks {
        /// The reserved networks, oldest first.
        networks: Vec<TaskNetwork>,
    },
}

/// A task's secrets, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum SecretsOutcome {
    /// Every secret of every container, read.
    Resolved {
        /// Per container that has secrets.
        containers: Vec<ContainerSecrets>,
    },
    /// One could not be read: the task stops with `ResourceInitializationError: <reason>`.
    Failed {
        /// The reason, naming the secret (never holding a value).
        reason: String,
    },
}

/// One container's secrets: its `secrets` as environment variables, its log configuration's
/// `secretOptions` as log driver options, and the registry credentials its
/// `repositoryCredentials` name, for pulling its image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSecrets {
    /// The container's name.
    pub name: String,
    /// `secrets`: variable name and value.
    #[serde(default)]
    pub environment: Vec<SecretPair>,
    /// `logConfiguration.secretOptions`: option name and value.
    #[serde(default)]
    pub log_options: Vec<SecretPair>,
    /// `repositoryCredentials`: the user name and password the secret holds, used for this
    /// container's image pull only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<RegistryCredentials>,
}

/// Private registry credentials read from a Secrets Manager secret (`{"username", "password"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCredentials {
    /// The user name.
    pub username: SecretText,
    /// The password.
    pub password: SecretText,
}

/// A name and a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPair {
    /// The variable or option name.
    pub name: String,
    /// The value.
    pub value: SecretText,
}

/// A secret value in clear, only in memory and on the wire of one session. `Debug` prints
/// `***`, so a logged message never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A task role's credentials, or why they could not be issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum CredentialsOutcome {
    /// Issued (or the current ones, still fresh).
    Issued {
        /// The credentials.
        credentials: RoleCredentials,
    },
    /// None: the task stops with `ResourceInitializationError: <reason>` if it has not started,
    /// and keeps its current credentials (until they expire) if it has.
    Failed {
        /// Why (never holding a secret).
        reason: String,
    },
}

/// Temporary credentials Flotilla issued for a task's role: valid for Flotilla's APIs with the
/// session token, until `expiration`, and revoked when the task stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleCredentials {
    /// The task role's ARN.
    pub role_arn: String,
    /// `ASIA...`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretText,
    /// The session token that must accompany the key (`X-Amz-Security-Token`).
    pub session_token: SecretText,
    /// When they were issued, epoch seconds.
    pub issued_at: f64,
    /// When they stop being valid, epoch seconds.
    pub expiration: f64,
}

/// Agent -> server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AgentMessage {
    /// I am alive.
    Heartbeat {
        /// The agent's clock, epoch milliseconds (for skew diagnostics only).
        sent_at_ms: u64,
    },
    /// The observed state of one task.
    TaskState(TaskStateReport),
    /// Latest resource usage of running tasks.
    Usage {
        /// One sample per task.
        samples: Vec<TaskUsage>,
    },
    /// The secrets of a task this instance runs, needed to create its containers; answered by
    /// [`ServerMessage::Secrets`] on this session only.
    GetSecrets {
        /// Chosen by the agent, repeated in the answer.
        request_id: u64,
        /// The task.
        task_arn: String,
    },
    /// The credentials of a task's role (`taskRoleArn`) this instance runs; answered by
    /// [`ServerMessage::Credentials`] on this session only.
    GetCredentials {
        /// Chosen by the agent, repeated in the answer.
        request_id: u64,
        /// The task.
        task_arn: String,
    },
    /// Keep `size` task networks reserved for this instance (at most [`MAX_WARM_NETWORKS`];
    /// 0 releases them all), allocating what is missing; answered by
    /// [`ServerMessage::WarmNetworks`]. Sent when the session opens and after a task took one.
    ReserveWarmNetworks {
        /// How many.
        size: u32,
    },
    /// The answer to [`ServerMessage::Log`].
    Log {
        /// The request's id.
        id: u64,
        /// The answer, or why the agent could not read its store.
        result: Result<flotilla_logs::query::LogResponse, String>,
    },
}

/// Everything the agent needs to run (or stop) one task. Overrides are already applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAssignment {
    /// The task ARN.
    pub task_arn: String,
    /// The cluster ARN.
    pub cluster_arn: String,
    /// Task definition ARN.
    pub task_definition_arn: String,
    /// Grows with every change of this task's desired state.
    pub version: u64,
    /// What the control plane wants.
    pub desired_status: DesiredStatus,
    /// Why the task is being stopped (shown as `stoppedReason`), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The stop code to report when the stop was asked for by the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<TaskStopCode>,
    /// The task definition's network mode (bridge when unset).
    pub network_mode: NetworkMode,
    /// Task-level CPU units, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Task-level memory MiB, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// The task definition's volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// `pidMode` of the task definition (`host` or `task`), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    /// `ipcMode` of the task definition, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    /// The containers, in task definition order.
    pub containers: Vec<ContainerAssignment>,
    /// For `awsvpc` tasks: the network interface the control plane allocated. The agent gives
    /// the task a network namespace owned by a pause container attached to `network_name` with
    /// exactly this address and MAC; the task's containers join that namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<TaskNetwork>,
    /// When set, the stop is a Fargate Spot interruption: every container gets SIGTERM at once
    /// and SIGKILL after this many seconds (instead of each container's `stopTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_seconds: Option<u64>,
    /// The task's IAM role (`taskRoleArn`, or RunTask's override): its containers get the
    /// credentials Flotilla issues for it at `169.254.170.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// The service that started the task (its group `service:NAME`), for the task metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// `enableExecuteCommand`: commands may be run in the task's containers (ECS Exec), and
    /// the agent reports each container's `ExecuteCommandAgent`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,
}

/// The elastic network interface of an `awsvpc` task, as the control plane allocated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNetwork {
    /// The ENI attachment id (a UUID), shown as the attachment's `id`.
    pub attachment_id: String,
    /// `eni-` and 17 hex digits.
    pub network_interface_id: String,
    /// The task's private IPv4 address, e.g. `10.213.0.7`.
    pub private_ipv4_address: String,
    /// The task's MAC address, e.g. `0a:58:0a:d5:00:07`.
    pub mac_address: String,
    /// The managed network's CIDR, e.g. `10.213.0.0/16`; the agent creates the network with it.
    pub subnet_cidr: String,
    /// The managed network's gateway (its first address), e.g. `10.213.0.1`.
    pub gateway: String,
    /// The Docker network the pause container joins.
    pub network_name: String,
    /// The subnet id the user named in `awsvpcConfiguration` (reported, not interpreted).
    pub subnet_id: String,
    /// `ip-10-213-0-7.ec2.internal`, the ENI's private DNS name; the pause container's hostname.
    pub private_dns_name: String,
}

/// One container of an assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerAssignment {
    /// The container ARN ECS reports for it.
    pub container_arn: String,
    /// The container definition with the RunTask overrides (command, environment, cpu,
    /// memory, memoryReservation) applied.
    pub definition: ContainerDefinition,
}

/// The observed state of one task, complete (not a delta).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStateReport {
    /// Agent-wide, increasing; acknowledged by [`ServerMessage::Ack`].
    pub seq: u64,
    /// The task ARN.
    pub task_arn: String,
    /// The assignment version this state answers.
    pub version: u64,
    /// The task's observed lifecycle state.
    pub last_status: TaskStatus,
    /// Each container's observed state.
    pub containers: Vec<ContainerStateReport>,
    /// When the first image pull started (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    /// When the last image pull finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    /// When the task reached RUNNING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// When the task's containers all stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<f64>,
    /// Why the task stopped, when the agent decided it (essential container exit, failed start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<TaskStopCode>,
    /// Human-readable reason that goes with `stop_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Task health from the essential containers' health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
}

/// The observed state of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStateReport {
    /// The container's name in the task definition.
    pub name: String,
    /// The Docker container id, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// Observed state.
    pub last_status: ContainerStatus,
    /// Exit code, once stopped after running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it stopped or failed to start (`CannotPullContainerError: ...`, `OutOfMemoryError: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Host ports actually bound.
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    /// Health check status, for containers that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// The image digest that runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The managed agents of the container (the `ExecuteCommandAgent` of a task with
    /// `enableExecuteCommand`), as the agent sees them now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_agents: Vec<ManagedAgentState>,
}

/// The state of one managed agent of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedAgentState {
    /// Which (ECS has one: `ExecuteCommandAgent`).
    pub name: ManagedAgentName,
    /// Its status.
    pub status: ManagedAgentStatus,
    /// When it last started (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// Why it is in that status, when it is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A managed agent's status, as ECS shows it in `managedAgents[].lastStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ManagedAgentStatus {
    /// Not started yet (its container is not running yet).
    Pending,
    /// Commands can be run in the container.
    Running,
    /// Its container stopped.
    Stopped,
}

impl ManagedAgentStatus {
    /// The wire string (`PENDING`, `RUNNING`, `STOPPED`).
    pub fn as_str(self) -> &'static str {
        match self {
            ManagedAgentStatus::Pending => "PENDING",
            ManagedAgentStatus::Running => "RUNNING",
            ManagedAgentStatus::Stopped => "STOPPED",
        }
    }
}

/// Resource usage of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUsage {
    /// The task ARN.
    pub task_arn: String,
    /// CPU used, in CPU units (1024 per core), averaged since the last sample.
    pub cpu_units: f64,
    /// Memory in use, MiB.
    pub memory_mib: f64,
    /// When sampled (epoch seconds).
    pub sampled_at: f64,
}

/// Encodes a message as a JSON text frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(msg)
}

/// Decodes a JSON text frame.
pub fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_type_tag() {
        let m = ServerMessage::Ack { seq: 7 };
        let text = encode(&m).unwrap();
        assert_eq!(text, r#"{"type":"Ack","seq":7}"#);
        assert_eq!(decode::<ServerMessage>(&text).unwrap(), m);
        let r = AgentMessage::TaskState(TaskStateReport {
            seq: 1,
            task_arn: "t".into(),
            version: 3,
            last_status: TaskStatus::Running,
            containers: vec![ContainerStateReport {
                name: "web".into(),
                runtime_id: Some("abc".into()),
                last_status: ContainerStatus::Running,
                exit_code: None,
                reason: None,
                network_bindings: vec![],
                health_status: None,
                image_digest: None,
                managed_agents: vec![],
            }],
            pull_started_at: Some(1.5),
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            health_status: None,
        });
        let text = encode(&r).unwrap();
        assert!(text.contains(r#""last_status":"RUNNING""#), "{text}");
        assert_eq!(decode::<AgentMessage>(&text).unwrap(), r);
    }

    #[test]
    fn secret_values_travel_but_never_print() {
        let m = ServerMessage::Secrets {
            request_id: 4,
            task_arn: "t".into(),
            outcome: SecretsOutcome::Resolved {
                containers: vec![ContainerSecrets {
                    name: "app".into(),
                    environment: vec![SecretPair {
                        name: "PW".into(),
                        value: SecretText("hunter2".into()),
                    }],
                    log_options: vec![],
                    registry_auth: Some(RegistryCredentials {
                        username: SecretText("puller".into()),
                        password: SecretText("reg-pw-9".into()),
                    }),
                }],
            },
        };
        let text = encode(&m).unwrap();
        assert!(text.contains(r#""value":"hunter2""#), "{text}");
        assert!(text.contains(r#""password":"reg-pw-9""#), "{text}");
        assert!(!format!("{m:?}").contains("reg-pw-9"));
        assert_eq!(decode::<ServerMessage>(&text).unwrap(), m);
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn role_credentials_travel_but_never_print() {
        let m = ServerMessage::Credentials {
            request_id: 9,
            task_arn: "t".into(),
            outcome: CredentialsOutcome::Issued {
                credentials: RoleCredentials {
                    role_arn: "arn:aws:iam::1:role/app".into(),
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: SecretText("s3cr3t-key".into()),
                    session_token: SecretText("t0k3n".into()),
                    issued_at: 1.0,
                    expiration: 3601.0,
                },
            },
        };
        let text = encode(&m).unwrap();
        assert!(
            text.contains("s3cr3t-key") && text.contains("t0k3n"),
            "{text}"
        );
        assert_eq!(decode::<ServerMessage>(&text).unwrap(), m);
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("s3cr3t-key") && !shown.contains("t0k3n"),
            "{shown}"
        );
        let ask = AgentMessage::GetCredentials {
            request_id: 9,
            task_arn: "t".into(),
        };
        assert_eq!(decode::<AgentMessage>(&encode(&ask).unwrap()).unwrap(), ask);
    }
}
