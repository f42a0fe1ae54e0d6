//! The metadata records in the control-plane store: a log group (`logs/groups/NAME`) and a log
//! stream (`logs/streams/GROUP/STREAM`, with its owner). Events are never here.
//!
//! A group's generation is its record's create revision: a group deleted and created again is
//! another group, and a stream record of an older generation (left by a delete that did not
//! finish) is stale: not found, and replaced by a create.

use crate::Owner;
use flotilla_logs::names::{group_key, stream_key};
use flotilla_logs::LogsError;
use flotilla_store::{KeyValue, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A log group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    /// The name.
    pub name: String,
    /// When it was created (epoch ms).
    pub creation_time: i64,
    /// Days its events are kept (`None`: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_in_days: Option<u32>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A group as read: the record and its generation (create revision) and revision.
#[derive(Debug, Clone)]
pub struct Group {
    /// The record.
    pub record: GroupRecord,
    /// Its create revision.
    pub generation: u64,
    /// Its mod revision (for a compare-and-swap).
    pub revision: u64,
}

/// A log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    /// The group's name.
    pub group: String,
    /// The group's generation when the stream was created.
    pub generation: u64,
    /// The name.
    pub name: String,
    /// When it was created (epoch ms).
    pub creation_time: i64,
    /// Where its events live.
    pub owner: Owner,
}

/// The control-plane store failed: Logs' fault.
pub fn store_error(e: StoreError) -> LogsError {
    LogsError::unavailable(format!("The control-plane store failed: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, LogsError> {
    serde_json::from_slice(&kv.value).map_err(|e| {
        LogsError::unavailable(format!("The record {} could not be read: {e}", kv.key))
    })
}

/// Encodes a record.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A group from its key-value.
pub fn group_of(kv: &KeyValue) -> Result<Group, LogsError> {
    Ok(Group {
        record: decode(kv)?,
        generation: kv.create_revision,
        revision: kv.mod_revision,
    })
}

/// The group, if it exists.
pub async fn get_group(store: &dyn Store, name: &str) -> Result<Option<Group>, LogsError> {
    match store.get(&group_key(name)).await.map_err(store_error)? {
        Some(kv) => group_of(&kv).map(Some),
        None => Ok(None),
    }
}

/// The group, or AWS's not-found error.
pub async fn group(store: &dyn Store, name: &str) -> Result<Group, LogsError> {
    get_group(store, name)
        .await?
        .ok_or_else(LogsError::group_not_found)
}

/// The stream of the group's current generation, if it exists, with its mod revision; a stale
/// record (older generation) is returned as `Err(revision)` so a create can replace it.
pub async fn get_stream(
    store: &dyn Store,
    g: &Group,
    name: &str,
) -> Result<Result<Option<(StreamRecord, u64)>, u64>, LogsError> {
    let Some(kv) = store
        .get(&stream_key(&g.record.name, name))
        .await
        .map_err(store_error)?
    else {
        return Ok(Ok(None));
    };
    let rec: StreamRecord = decode(&kv)?;
    if rec.generation != g.generation {
        return Ok(Err(kv.mod_revision));
    }
    Ok(Ok(Some((rec, kv.mod_revision))))
}

/// The stream, or AWS's not-found error.
pub async fn stream(store: &dyn Store, g: &Group, name: &str) -> Result<StreamRecord, LogsError> {
    match get_stream(store, g, name).await? {
        Ok(Some((rec, _))) => Ok(rec),
        _ => Err(LogsError::stream_not_found()),
    }
}

/// Every stream record of the group's current generation under `prefix` (a stream name
/// prefix), in name order, after `after`, at most `limit` (0: all).
pub async fn streams(
    store: &dyn Store,
    g: &Group,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<StreamRecord>, bool), LogsError> {
    let base = flotilla_logs::names::streams_prefix(&g.record.name);
    let after_key = after.map(|a| format!("{base}{a}"));
    let mut out = Vec::new();
    let mut start = after_key;
    loop {
        let want = if limit == 0 { 0 } else { limit - out.len() + 1 };
        let page = store
            .list(&format!("{base}{prefix}"), start.as_deref(), want)
            .await
            .map_err(store_error)?;
        let n = page.items.len();
        for kv in &page.items {
            let rec: StreamRecord = decode(kv)?;
            if rec.generation == g.generation {
                out.push(rec);
            }
        }
        if limit != 0 && out.len() > limit {
            out.truncate(limit);
            return Ok((out, true));
        }
        if !page.more || n == 0 {
            return Ok((out, false));
        }
        start = page.items.last().map(|kv| kv.key.clone());
    }
}
