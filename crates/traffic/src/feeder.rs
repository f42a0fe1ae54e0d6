//! Keeps a replica's data plane serving what the load balancer records say: reads a
//! [`flotilla_elbv2::targets::Snapshot`], maps it ([`crate::table::table`]) and applies it
//! ([`flotilla_lb::DataPlane::apply`], a hot reload), again after every change under the ELB
//! prefix (a store watch) and every few seconds as a safety net. Every server replica runs one,
//! so each replica's host serves every listener.

use crate::table::table;
use flotilla_elbv2::targets;
use flotilla_lb::DataPlane;
use flotilla_store::Store;
use futures::StreamExt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the table is read again without a change.
const RESYNC: Duration = Duration::from_secs(5);

/// Runs until the task is aborted.
pub async fn run(store: Arc<dyn Store>, plane: Arc<DataPlane>, bind: IpAddr) {
    let mut applied = None;
    loop {
        let snap = match targets::snapshot(store.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "load balancers: could not read the records; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let t = table(&snap, bind);
        if applied.as_ref() != Some(&t) {
            for e in plane.apply(t.clone()).await {
                tracing::warn!(error = ?e, "load balancers: a listener could not be bound");
            }
            applied = Some(t);
        }
        let mut watch = match store.watch(targets::prefix(), snap.revision).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "load balancers: could not watch the records");
                tokio::time::sleep(RESYNC).await;
                continue;
            }
        };
        // The next change (or the resync), then whatever else arrived meanwhile.
        tokio::select! {
            _ = watch.next() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
