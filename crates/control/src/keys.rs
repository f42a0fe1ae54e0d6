//! How ECS objects are laid out in the store: the key of every record, and the records that are
//! only bookkeeping (family counters, client tokens). Typed reads and writes are in
//! `flotilla_controllers::records`; this module only names things.
//!
//! Keys (values are JSON of the generated model shapes):
//! - `clusters/NAME` -> `Cluster` (tags, settings and configuration included; trimmed per request)
//! - `families/FAMILY` -> [`FamilyRecord`] (the last revision handed out)
//! - `taskdefs/FAMILY/REVISION(10 digits)` -> `RegisterTaskDefinitionResponse` (definition + tags)
//! - `account-settings/PRINCIPAL_OR_DEFAULT/NAME` -> `Setting`
//! - `attributes/CLUSTER/TARGET_ID/NAME` -> `Attribute`
//! - `container-instances/CLUSTER/ID` -> [`crate::instances::InstanceRecord`] (as registered:
//!   what its tasks hold is in their records)
//! - `placement-guards/CLUSTER/ID` -> [`PLACEMENT_GUARD_VALUE`]: rewritten by every placement on
//!   the instance, so two placements on it (from any replica) are serialized by a
//!   compare-and-swap on its `mod_revision`
//! - `tasks/CLUSTER/ID` -> [`crate::tasks::TaskRecord`] (the task, its observed state and the
//!   assignment its agent is sent)
//! - `client-tokens/CLUSTER/HEX(TOKEN)` -> [`ClientTokenRecord`] (RunTask idempotency)
//! - `services/CLUSTER/NAME` -> [`crate::services::ServiceRecord`] (see [`crate::services`])
//! - `addresses/IP` -> the ARN of the task holding the address on the managed task network, or
//!   of the container instance whose warm pool holds it
//! - `warm-networks/CLUSTER/ID` -> [`crate::warm::WarmRecord`] (the task networks reserved
//!   ahead of time for a managed-pool host, whose pause containers it keeps running)
//! - `agent-beats/CLUSTER/ID` -> [`BeatRecord`] (the instance's agent was heard by a session,
//!   on some replica; observed liveness, not desired state)
//! - `task-credentials/ACCESS_KEY_ID` -> [`crate::task_credentials::TaskCredentialRecord`] (a
//!   task role key Flotilla issued, its secret parts sealed; deleted when its task stops)
//! - `join-tokens/ID` -> [`crate::agent_identity::JoinTokenRecord`] (a join token: its cluster,
//!   expiry, revocation and only the hash of its secret)
//! - `agent-credentials/ACCESS_KEY_ID` -> [`crate::agent_identity::AgentCredentialRecord`] (an
//!   agent's own key, bound to its container instance, its secret sealed; deleted when the
//!   instance is deregistered)

use flotilla_model::EcsError;
use serde::{Deserialize, Serialize};

/// Prefix of cluster records.
pub const CLUSTERS: &str = "clusters/";
/// Prefix of family records.
pub const FAMILIES: &str = "families/";
/// Prefix of task definition records.
pub const TASK_DEFINITIONS: &str = "taskdefs/";
/// Prefix of account settings.
pub const ACCOUNT_SETTINGS: &str = "account-settings/";
/// Prefix of custom attributes.
pub const ATTRIBUTES: &str = "attributes/";
/// Prefix of container instance records (`container-instances/CLUSTER/ID`).
pub const CONTAINER_INSTANCES: &str = "container-instances/";
/// Prefix of the instances' placement guards (`placement-guards/CLUSTER/ID`).
pub const PLACEMENT_GUARDS: &str = "placement-guards/";
/// What a placement guard holds: only its `mod_revision` matters.
pub const PLACEMENT_GUARD_VALUE: &[u8] = b"{}";

/// Prefix of task records (`tasks/CLUSTER/ID`).
pub const TASKS: &str = "tasks/";
/// Server replicas, each under `replicas/ID` (on etcd, while its lease lives).
pub const REPLICAS: &str = "replicas/";
/// Prefix of the task addresses allocated on the managed task network (`addresses/IP`, whose
/// value is the task ARN), so no two live awsvpc tasks ever share an address.
pub const ADDRESSES: &str = "addresses/";
/// Prefix of the warm task networks reserved for an instance (`warm-networks/CLUSTER/ID`).
pub const WARM_NETWORKS: &str = "warm-networks/";
/// Prefix of agent beats (`agent-beats/CLUSTER/ID`): every session, on whatever replica, puts
/// its instance's beat when it opens and as it hears the agent; the leader's liveness loop
/// watches them.
pub const AGENT_BEATS: &str = "agent-beats/";
/// Prefix of RunTask client tokens.
pub const CLIENT_TOKENS: &str = "client-tokens/";

/// The key of a cluster.
pub fn cluster_key(name: &str) -> String {
    format!("{CLUSTERS}{name}")
}
/// The key of a family.
pub fn family_key(family: &str) -> String {
    format!("{FAMILIES}{family}")
}
/// The key of one task definition revision.
pub fn task_definition_key(family: &str, revision: i32) -> String {
    format!("{TASK_DEFINITIONS}{family}/{revision:010}")
}
/// The prefix of one family's revisions.
pub fn task_definition_prefix(family: &str) -> String {
    format!("{TASK_DEFINITIONS}{family}/")
}

/// The key of a container instance.
pub fn instance_key(cluster: &str, id: &str) -> String {
    format!("{CONTAINER_INSTANCES}{cluster}/{id}")
}
/// The prefix of one cluster's container instances.
pub fn instance_prefix(cluster: &str) -> String {
    format!("{CONTAINER_INSTANCES}{cluster}/")
}
/// The key of a task.
pub fn task_key(cluster: &str, id: &str) -> String {
    format!("{TASKS}{cluster}/{id}")
}
/// The prefix of one cluster's tasks.
pub fn task_prefix(cluster: &str) -> String {
    format!("{TASKS}{cluster}/")
}
/// The key of an instance's placement guard.
pub fn placement_guard_key(cluster: &str, id: &str) -> String {
    format!("{PLACEMENT_GUARDS}{cluster}/{id}")
}
/// The prefix of the placement guards of one cluster's (or the managed pool's) instances.
pub fn placement_guard_prefix(cluster: &str) -> String {
    format!("{PLACEMENT_GUARDS}{cluster}/")
}
/// The key of an instance's agent beat.
pub fn agent_beat_key(cluster: &str, id: &str) -> String {
    format!("{AGENT_BEATS}{cluster}/{id}")
}
/// The key of the container instance an agent beat (`agent-beats/CLUSTER/ID`) is about.
pub fn instance_key_of_beat(beat_key: &str) -> Option<String> {
    let (cluster, id) = beat_key.strip_prefix(AGENT_BEATS)?.split_once('/')?;
    Some(instance_key(cluster, id))
}
/// The key of an instance's warm task networks.
pub fn warm_key(cluster: &str, id: &str) -> String {
    format!("{WARM_NETWORKS}{cluster}/{id}")
}
/// The prefix of the warm task networks of one cluster's (or the managed pool's) instances.
pub fn warm_prefix(cluster: &str) -> String {
    format!("{WARM_NETWORKS}{cluster}/")
}
/// The key of an allocated task address.
pub fn address_key(ip: &str) -> String {
    format!("{ADDRESSES}{ip}")
}

/// The key of a RunTask client token (hex-encoded: tokens may contain `/`).
pub fn client_token_key(cluster: &str, token: &str) -> String {
    format!("{CLIENT_TOKENS}{cluster}/{}", hex::encode(token))
}

/// An agent heard by a session: written when the session opens and, at most about once per
/// heartbeat interval, as messages arrive. Only its arrival matters (the leader measures
/// silence on its own clock); the contents say who wrote it, for people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BeatRecord {
    /// The replica whose session heard the agent, when it has a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// When, by that replica's clock (epoch seconds; informational).
    pub at: f64,
}

/// A RunTask `clientToken` already used: what the request was and what it made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientTokenRecord {
    /// A digest of the request (without the token).
    pub request_digest: String,
    /// The tasks it started.
    pub task_arns: Vec<String>,
    /// The failures it answered.
    #[serde(default)]
    pub failures: Vec<flotilla_model::shapes::Failure>,
    /// When (epoch seconds); the sweeper forgets tokens after the stopped-task retention.
    pub created_at: f64,
}

/// Reduces a container instance id or ARN to the id, checking that an ARN's cluster (long
/// format) is `cluster`. `None` when it names something else.
pub fn instance_id_in<'a>(value: &'a str, cluster: &str) -> Option<&'a str> {
    resource_id_in(value, "container-instance", cluster)
}

/// Reduces a task id or ARN to the id, checking that an ARN's cluster is `cluster`.
pub fn task_id_in<'a>(value: &'a str, cluster: &str) -> Option<&'a str> {
    resource_id_in(value, "task", cluster)
}

fn resource_id_in<'a>(value: &'a str, kind: &str, cluster: &str) -> Option<&'a str> {
    if !value.starts_with("arn:") {
        return (!value.is_empty() && !value.contains('/')).then_some(value);
    }
    let p = flotilla_model::arn::parse(value)?;
    if p.resource_type != kind {
        return None;
    }
    if let Some(c) = flotilla_model::arn::embedded_cluster(value) {
        if c != cluster {
            return None;
        }
    }
    flotilla_model::arn::resource_name(value, kind)
}

/// The cluster a request addresses: its `cluster` member, else the cluster embedded in the
/// first long-format ARN it names, else `default`.
pub fn cluster_for(cluster: Option<&str>, arns: &[&str]) -> Option<String> {
    if let Some(c) = cluster {
        return Some(c.to_string());
    }
    arns.iter()
        .find_map(|a| flotilla_model::arn::embedded_cluster(a))
        .map(str::to_string)
}

/// The revision counter of a task definition family.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FamilyRecord {
    /// The last revision handed out (revisions never repeat, even after deregistration).
    pub last_revision: i32,
    /// How many revisions are ACTIVE (decides the family's status in ListTaskDefinitionFamilies).
    #[serde(default)]
    pub active_revisions: u32,
}

/// The name a `cluster` request member refers to: the short name, the name inside an ARN, or
/// `default` when omitted.
pub fn cluster_name(cluster: Option<&str>) -> Result<String, EcsError> {
    let raw = cluster.unwrap_or("default");
    let name = flotilla_model::arn::resource_name(raw, "cluster").ok_or_else(|| {
        EcsError::invalid_parameter(format!("'{raw}' is not a cluster name or cluster ARN."))
    })?;
    Ok(name.to_string())
}

/// True when `value` is an ARN of another region or account than `arns`'. Such an ARN names a
/// resource this server does not hold, even when a local resource has the same name.
pub fn foreign_arn(arns: &flotilla_model::arn::ArnContext, value: &str) -> bool {
    value.starts_with("arn:")
        && flotilla_model::arn::parse(value)
            .is_some_and(|p| p.region != arns.region || p.account != arns.account)
}
