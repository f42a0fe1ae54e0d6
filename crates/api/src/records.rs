//! How ECS objects are laid out in the store, and typed access to them.
//!
//! Keys (values are JSON of the generated model shapes):
//! - `clusters/NAME` -> `Cluster` (tags, settings and configuration included; trimmed per request)
//! - `families/FAMILY` -> [`FamilyRecord`] (the last revision handed out)
//! - `taskdefs/FAMILY/REVISION(10 digits)` -> `RegisterTaskDefinitionResponse` (definition + tags)
//! - `account-settings/PRINCIPAL_OR_DEFAULT/NAME` -> `Setting`
//! - `attributes/CLUSTER/TARGET_ID/NAME` -> `Attribute`
//!
//! Every write is a compare-and-swap on the object's `mod_revision`, so concurrent requests never
//! lose each other's updates; a conflict is retried by the caller with fresh reads.

use flotilla_model::shapes::Cluster;
use flotilla_model::EcsError;
use flotilla_store::{Store, StoreError, Txn, TxnOutcome};
use serde::de::DeserializeOwned;
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

/// How many times a handler retries a compare-and-swap that lost a race.
pub const CAS_ATTEMPTS: usize = 16;

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

/// The revision counter of a task definition family.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FamilyRecord {
    /// The last revision handed out (revisions never repeat, even after deregistration).
    pub last_revision: i32,
    /// How many revisions are ACTIVE (decides the family's status in ListTaskDefinitionFamilies).
    #[serde(default)]
    pub active_revisions: u32,
}

/// A store failure, as the client sees it.
pub fn store_error(e: StoreError) -> EcsError {
    tracing::error!(error = %e, "store failure");
    EcsError::server(format!(
        "Flotilla could not reach its store: {e}. Retry the request."
    ))
}

/// Serializes a record.
pub fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(v).map_err(|e| EcsError::server(format!("could not encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, EcsError> {
    serde_json::from_slice(bytes)
        .map_err(|e| EcsError::server(format!("record {key} is unreadable: {e}")))
}

/// Reads one record with its `mod_revision`.
pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<(T, u64)>, EcsError> {
    match store.get(key).await.map_err(store_error)? {
        Some(kv) => Ok(Some((decode(key, &kv.value)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Reads every record under a prefix, in key order.
pub async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<(String, T, u64)>, EcsError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(prefix, after.as_deref(), 1000)
            .await
            .map_err(store_error)?;
        for kv in &page.items {
            out.push((kv.key.clone(), decode(&kv.key, &kv.value)?, kv.mod_revision));
        }
        if !page.more {
            break;
        }
        after = page.items.last().map(|kv| kv.key.clone());
    }
    Ok(out)
}

/// Commits a transaction; `Ok(false)` means a compare failed and the caller should retry.
pub async fn commit(store: &dyn Store, txn: Txn) -> Result<bool, EcsError> {
    match store.txn(txn).await.map_err(store_error)? {
        TxnOutcome::Committed { .. } => Ok(true),
        TxnOutcome::Conflict { .. } => Ok(false),
    }
}

/// The error for a compare-and-swap that kept losing.
pub fn contention() -> EcsError {
    EcsError::server(
        "The resource is being modified by other requests at the same time. Retry the request.",
    )
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

/// Loads an ACTIVE cluster by name or ARN, or answers `ClusterNotFoundException`.
pub async fn active_cluster(
    store: &dyn Store,
    cluster: Option<&str>,
) -> Result<(Cluster, u64), EcsError> {
    let name = cluster_name(cluster)?;
    match get::<Cluster>(store, &cluster_key(&name)).await? {
        Some((c, rev)) if c.status.as_deref() == Some("ACTIVE") => Ok((c, rev)),
        _ => Err(EcsError::cluster_not_found()),
    }
}
