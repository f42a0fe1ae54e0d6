//! Keeps a replica's own store of events in step with the log groups: the streams of deleted
//! groups go, and retention drops expired events. The same group list reaches the agents
//! (the edge pushes [`group_states`] through their sessions), which do the same on their hosts.

use crate::records::{group_of, store_error};
use crate::Logs;
use flotilla_logs::names::GROUPS;
use flotilla_logs::query::GroupState;
use flotilla_logs::LogsError;
use flotilla_store::Store;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Every log group, as listed at the returned store revision.
pub async fn group_states(store: &dyn Store) -> Result<(u64, Vec<GroupState>), LogsError> {
    let page = store.list(GROUPS, None, 0).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(page.items.len());
    for kv in &page.items {
        let g = group_of(kv)?;
        out.push(GroupState {
            name: g.record.name,
            generation: g.generation,
            retention_days: g.record.retention_in_days,
        });
    }
    Ok((page.revision, out))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn apply(logs: &Logs, revision: u64, groups: &[GroupState]) {
    let local = logs.local().clone();
    let listed: Vec<(String, u64)> = groups
        .iter()
        .map(|g| (g.name.clone(), g.generation))
        .collect();
    let retention: HashMap<(String, u64), Option<u32>> = groups
        .iter()
        .map(|g| ((g.name.clone(), g.generation), g.retention_days))
        .collect();
    let done = tokio::task::spawn_blocking(move || {
        let gone = local.retain_groups(&listed, revision)?;
        local.sweep(now_ms(), &|s| {
            retention
                .get(&(s.group.clone(), s.generation))
                .copied()
                .flatten()
        })?;
        Ok::<_, flotilla_logstore::StoreError>(gone)
    })
    .await;
    match done {
        Ok(Ok(gone)) => {
            for s in gone {
                tracing::info!(group = %s.group, stream = %s.stream, "log group deleted; its stream's events are removed");
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "log store maintenance failed"),
        Err(e) => tracing::warn!(error = %e, "log store maintenance failed"),
    }
}

/// Runs until aborted: re-lists the groups when one changes (a watch) and every `every`, and
/// applies them to this replica's store.
pub fn spawn(logs: Arc<Logs>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (revision, groups) = match group_states(logs.store()).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list log groups; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            apply(&logs, revision, &groups).await;
            let mut watch = match logs.store().watch(GROUPS, revision).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch log groups; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            tokio::select! {
                _ = watch.next() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}
