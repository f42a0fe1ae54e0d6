//! The health checker: probes every registered target of every target group a listener uses,
//! at the group's interval, and records each result ([`flotilla_elbv2::targets::observe`]
//! applies the thresholds and writes only when a target's state changes); it also ends the
//! draining of deregistered targets once their delay has passed
//! ([`flotilla_elbv2::targets::sweep`]).
//!
//! It runs on the replica that runs the controllers (one checker per region, so a target's
//! state never flaps between replicas that see it differently); every replica's data plane
//! follows the states it writes. A target's first check is made as soon as it is registered.

use crate::table::{health_check, interval, probed};
use flotilla_elbv2::health::Failure;
use flotilla_elbv2::targets::{self, ProbeResult, TargetRef};
use flotilla_lb as lb;
use flotilla_store::Store;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How often the checker looks for targets whose check is due.
const TICK: Duration = Duration::from_millis(500);

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What a probe's failure is called in the target's reason.
pub fn failure(r: lb::ProbeResult) -> ProbeResult {
    match r {
        lb::ProbeResult::Passed => ProbeResult::Passed,
        lb::ProbeResult::Failed(f) => ProbeResult::Failed(match f {
            lb::FailReason::Timeout => Failure::Timeout,
            lb::FailReason::ConnectionRefused => Failure::ConnectionRefused,
            lb::FailReason::ResponseCodeMismatch(c) => Failure::ResponseCodeMismatch(c),
            lb::FailReason::Error(_) => Failure::FailedHealthChecks,
        }),
    }
}

/// Runs the checker until the task is aborted.
pub async fn run(store: Arc<dyn Store>) {
    // When each target (group ARN, id, port) was last probed.
    let mut last: HashMap<(String, String, u16), f64> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = now();
        if let Err(e) = targets::sweep(store.as_ref(), t).await {
            tracing::warn!(error = %e, "health checker: could not end draining");
        }
        let snap = match targets::snapshot(store.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "health checker: could not read the target groups");
                continue;
            }
        };
        let mut due = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for g in &snap.target_groups {
            let Some(check) = health_check(g) else {
                continue;
            };
            for tv in &g.targets {
                let key = (g.arn.clone(), tv.health.id.clone(), tv.health.port);
                seen.insert(key.clone());
                if !probed(g, tv.health.state) {
                    continue;
                }
                let Some(ip) = tv.address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                if last.get(&key).is_some_and(|l| t < l + interval(g)) {
                    continue;
                }
                last.insert(key, t);
                let target = TargetRef {
                    id: tv.health.id.clone(),
                    port: Some(tv.health.port),
                    availability_zone: None,
                };
                due.push((
                    g.arn.clone(),
                    target,
                    check.clone(),
                    SocketAddr::new(ip, tv.health.port),
                ));
            }
        }
        last.retain(|k, _| seen.contains(k));
        for (arn, target, check, addr) in due {
            let store = store.clone();
            tokio::spawn(async move {
                let result = failure(lb::probe(&check, addr).await);
                tracing::debug!(target_group = %arn, target = %addr, ?result, "health check");
                if let Err(e) = targets::observe(store.as_ref(), &arn, &target, result, now()).await
                {
                    tracing::warn!(target_group = %arn, target = %addr, error = %e, "could not record a health check");
                }
            });
        }
    }
}
