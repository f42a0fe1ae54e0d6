//! Targets and their health, on the store: the API the ELB operations, the health checker and
//! the ECS service scheduler share.
//!
//! A target group's targets are one record, `elbv2/targets/NAME` ([`TargetsRecord`]), apart
//! from the group's configuration, so health writes never contend with ModifyTargetGroup.
//! Every write is a compare-and-swap on that record and on the group's record (so a group
//! deleted meanwhile is never given targets), retried on conflict
//! ([`flotilla_store::cas::retry`]); the rules are [`crate::health`]'s.
//!
//! - [`register`], [`deregister`]: RegisterTargets and DeregisterTargets (a target is an id and
//!   a port; no port means the group's).
//! - [`observe`]: one health-check result; writes only when what DescribeTargetHealth shows
//!   changes.
//! - [`sweep`]: removes the targets whose draining ended.
//! - [`snapshot`]: everything a data plane and a health checker need, read at one store
//!   revision: load balancers, listeners with their rules in evaluation order, target groups
//!   with their health checks, attributes and targets, and the container instances instance
//!   targets name.
//! - [`health`]: DescribeTargetHealth's view of a group.
//!
//! [`prefix`] is the key prefix of every ELB record, for a data plane to watch.

use crate::arn::{self, LISTENERS, LOAD_BALANCERS, TARGETS, TARGET_GROUPS};
use crate::error::Elbv2Error;
use crate::health::{self, Deregistered, GroupUse, Reason, State, Target};
use crate::record::{
    decode, encode, Condition, HealthCheck, LbKind, ListenerRecord, LoadBalancerRecord, Protocol,
    TargetGroupRecord, TargetKind, TargetsRecord, Weighted,
};
use crate::ErrorShape;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub use crate::health::{Failure, ProbeResult};

/// The key prefix of every ELB record (load balancers, listeners and rules, target groups,
/// targets): a data plane watches it.
pub fn prefix() -> &'static str {
    arn::PREFIX
}

/// The key prefix of ECS container instance records, read to resolve instance targets.
pub const CONTAINER_INSTANCES: &str = "container-instances/";

/// The container instance attribute that gives the address instance targets are reached at
/// (`flotilla agent --attribute flotilla.host-address=IP`).
pub const HOST_ADDRESS_ATTRIBUTE: &str = "flotilla.host-address";

/// A target as callers name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetRef {
    /// An IPv4 address (`ip` groups) or a container instance's EC2 instance id (`instance`
    /// groups).
    pub id: String,
    /// The port; none means the group's port.
    pub port: Option<u16>,
    /// The availability zone, when given.
    pub availability_zone: Option<String>,
}

/// A target group's name from its ARN (`...:targetgroup/NAME/ID`).
fn group_name(target_group_arn: &str) -> Option<&str> {
    let rest = target_group_arn.split_once(":targetgroup/")?.1;
    let (name, _) = rest.split_once('/')?;
    Some(name)
}

/// The target group `arn` names and its `mod_revision`.
pub(crate) async fn load_group(
    store: &dyn Store,
    target_group_arn: &str,
) -> Result<(TargetGroupRecord, u64), Elbv2Error> {
    let name = group_name(target_group_arn).ok_or_else(Elbv2Error::target_group_not_found)?;
    let kv = store
        .get(&arn::target_group_key(name))
        .await?
        .ok_or_else(Elbv2Error::target_group_not_found)?;
    let g: TargetGroupRecord = decode(&kv.value)?;
    if g.arn != target_group_arn {
        return Err(Elbv2Error::target_group_not_found());
    }
    Ok((g, kv.mod_revision))
}

/// A group's targets record (empty when none was written) and the compare that guards it.
async fn load_targets(
    store: &dyn Store,
    g: &TargetGroupRecord,
) -> Result<(TargetsRecord, Compare), Elbv2Error> {
    let key = arn::targets_key(&g.name);
    match store.get(&key).await? {
        Some(kv) => {
            let mut r: TargetsRecord = decode(&kv.value)?;
            if r.target_group_arn != g.arn {
                // Left by a group of the same name that was deleted: not this group's.
                r = TargetsRecord {
                    target_group_arn: g.arn.clone(),
                    targets: Vec::new(),
                };
            }
            Ok((r, Compare::ModRevision(key, kv.mod_revision)))
        }
        None => Ok((
            TargetsRecord {
                target_group_arn: g.arn.clone(),
                targets: Vec::new(),
            },
            Compare::Absent(key),
        )),
    }
}

fn invalid_target(message: String) -> Elbv2Error {
    Elbv2Error::new(ErrorShape::InvalidTargetException, message)
}

/// The EC2 instance ids of the registered container instances.
async fn instance_ids(store: &dyn Store) -> Result<Vec<String>, Elbv2Error> {
    Ok(instances(store)
        .await?
        .into_iter()
        .map(|i| i.ec2_instance_id)
        .collect())
}

/// Checks targets against their group's type: an `ip` group takes IPv4 addresses, an
/// `instance` group the EC2 instance ids of registered container instances.
async fn check_targets(
    store: &dyn Store,
    g: &TargetGroupRecord,
    targets: &[TargetRef],
) -> Result<(), Elbv2Error> {
    match g.target_type {
        TargetKind::Ip => {
            if let Some(t) = targets.iter().find(|t| t.id.parse::<Ipv4Addr>().is_err()) {
                return Err(invalid_target(format!(
                    "The IP address '{}' is not a valid IPv4 address",
                    t.id
                )));
            }
        }
        TargetKind::Instance => {
            let known = instance_ids(store).await?;
            let unknown: Vec<&str> = targets
                .iter()
                .filter(|t| !known.contains(&t.id))
                .map(|t| t.id.as_str())
                .collect();
            if !unknown.is_empty() {
                return Err(invalid_target(format!(
                    "The following targets are not valid instances: '{}' (an instance target is the ec2InstanceId of a registered container instance)",
                    unknown.join("', '")
                )));
            }
        }
    }
    Ok(())
}

/// Reads the group and its targets, changes the targets with `change`, and writes them back
/// (with compares on both records) when `change` says something changed.
async fn update<T: Clone>(
    store: &dyn Store,
    target_group_arn: &str,
    change: impl Fn(&TargetGroupRecord, &mut TargetsRecord) -> Result<(bool, T), Elbv2Error>,
) -> Result<T, Elbv2Error> {
    let change = &change;
    retry(store, || async move {
        let (g, grev) = load_group(store, target_group_arn).await?;
        let (mut r, compare) = load_targets(store, &g).await?;
        let (changed, out) = change(&g, &mut r)?;
        if !changed {
            return Ok::<_, Elbv2Error>(Attempt::Done(out));
        }
        let txn = Txn::new()
            .when(Compare::ModRevision(arn::target_group_key(&g.name), grev))
            .when(compare)
            .put(arn::targets_key(&g.name), encode(&r)?);
        Ok(Attempt::Commit(txn, out))
    })
    .await?
    .map_err(|_| Elbv2Error::contended())
}

/// Registers targets with a group: each new one starts `initial`; one draining starts over.
pub async fn register(
    store: &dyn Store,
    target_group_arn: &str,
    targets: &[TargetRef],
    now: f64,
) -> Result<(), Elbv2Error> {
    let (g, _) = load_group(store, target_group_arn).await?;
    check_targets(store, &g, targets).await?;
    update(store, target_group_arn, |g, r| {
        let mut changed = false;
        for t in targets {
            let port = t.port.unwrap_or(g.port);
            changed |= health::register(
                &mut r.targets,
                Target::registered(t.id.clone(), Some(port), t.availability_zone.clone(), now),
            );
        }
        Ok((changed, ()))
    })
    .await
}

/// Moves targets to `draining`; returns the time at which draining ends (now + the group's
/// deregistration delay; `now` when the delay is 0 and they are gone at once). A target that is
/// not registered is `InvalidTarget`.
pub async fn deregister(
    store: &dyn Store,
    target_group_arn: &str,
    targets: &[TargetRef],
    now: f64,
) -> Result<f64, Elbv2Error> {
    update(store, target_group_arn, |g, r| {
        let delay = g.deregistration_delay();
        let mut changed = false;
        let mut until = now;
        let mut missing = Vec::new();
        for t in targets {
            let port = t.port.unwrap_or(g.port);
            match health::deregister(&mut r.targets, &t.id, Some(port), delay, now) {
                Deregistered::Draining(u) => {
                    changed = true;
                    until = until.max(u);
                }
                Deregistered::AlreadyDraining(u) => until = until.max(u),
                Deregistered::Removed => changed = true,
                Deregistered::NotRegistered => missing.push(format!("{}:{port}", t.id)),
            }
        }
        if !missing.is_empty() {
            return Err(invalid_target(format!(
                "The following targets are not registered in target group '{}': '{}'",
                g.arn,
                missing.join("', '")
            )));
        }
        Ok((changed, until))
    })
    .await
}

/// One health-check result for a target, applying the group's thresholds; writes only when the
/// target's state changes. A target no longer registered (deregistered meanwhile) is left
/// alone.
pub async fn observe(
    store: &dyn Store,
    target_group_arn: &str,
    target: &TargetRef,
    result: ProbeResult,
    now: f64,
) -> Result<(), Elbv2Error> {
    let _ = now;
    update(store, target_group_arn, |g, r| {
        let port = target.port.unwrap_or(g.port);
        let th = g.health.thresholds();
        let changed = r
            .targets
            .iter_mut()
            .find(|t| t.is(&target.id, Some(port)))
            .is_some_and(|t| health::observe(t, result, th));
        Ok((changed, ()))
    })
    .await
}

/// Removes the targets whose draining ended, in every group.
pub async fn sweep(store: &dyn Store, now: f64) -> Result<(), Elbv2Error> {
    let page = store.list(TARGETS, None, 0).await?;
    for kv in &page.items {
        let r: TargetsRecord = decode(&kv.value)?;
        let mut probe = r.targets.clone();
        if !health::sweep(&mut probe, now) {
            continue;
        }
        match update(store, &r.target_group_arn, |_, r| {
            Ok((health::sweep(&mut r.targets, now), ()))
        })
        .await
        {
            // The group is gone: its targets record went with it, or is stale and harmless.
            Err(e) if e.code() == "TargetGroupNotFound" => {}
            other => other?,
        }
    }
    Ok(())
}

/// A target's health as DescribeTargetHealth shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealthView {
    /// The instance id or IP address.
    pub id: String,
    /// The port.
    pub port: u16,
    /// The availability zone, when registered with one.
    pub availability_zone: Option<String>,
    /// The state.
    pub state: State,
    /// Why (none when healthy).
    pub reason: Option<Reason>,
    /// ELB's description.
    pub description: Option<String>,
    /// When draining ends, for a draining target.
    pub draining_until: Option<f64>,
}

fn use_of(g: &TargetGroupRecord) -> GroupUse {
    GroupUse {
        in_use: !g.used_by.is_empty(),
        checks_enabled: g.health.enabled,
    }
}

fn views(g: &TargetGroupRecord, r: &TargetsRecord) -> Vec<TargetHealthView> {
    let used = use_of(g);
    r.targets
        .iter()
        .map(|t| {
            let shown = health::view(t, used);
            TargetHealthView {
                id: t.id.clone(),
                port: t.port.unwrap_or(g.port),
                availability_zone: t.availability_zone.clone(),
                state: shown.state,
                reason: shown.reason,
                description: shown.description,
                draining_until: t.draining_until,
            }
        })
        .collect()
}

/// The health of every target of a group, as DescribeTargetHealth shows it.
pub async fn health(
    store: &dyn Store,
    target_group_arn: &str,
) -> Result<Vec<TargetHealthView>, Elbv2Error> {
    let (g, _) = load_group(store, target_group_arn).await?;
    let (r, _) = load_targets(store, &g).await?;
    Ok(views(&g, &r))
}

/// A container instance an instance target may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Its EC2 instance id (what an instance target's id is).
    pub ec2_instance_id: String,
    /// Its container instance ARN.
    pub container_instance_arn: Option<String>,
    /// Its cluster.
    pub cluster: String,
    /// Its availability zone.
    pub availability_zone: Option<String>,
    /// The address to connect to: the instance's [`HOST_ADDRESS_ATTRIBUTE`], when it has one.
    pub address: Option<String>,
}

/// The registered container instances that have an EC2 instance id.
async fn instances(store: &dyn Store) -> Result<Vec<InstanceView>, Elbv2Error> {
    let page = store.list(CONTAINER_INSTANCES, None, 0).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|kv| instance_view(&kv.value))
        .collect())
}

/// What an ECS container instance record says about the instance (read as JSON: the record is
/// `control`'s, which this crate does not depend on).
fn instance_view(bytes: &[u8]) -> Option<InstanceView> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let inst = &v["instance"];
    let text = |x: &serde_json::Value| x.as_str().map(str::to_string);
    Some(InstanceView {
        ec2_instance_id: text(&inst["ec2InstanceId"])?,
        container_instance_arn: text(&inst["containerInstanceArn"]),
        cluster: text(&v["cluster"]).unwrap_or_default(),
        availability_zone: text(&v["availability_zone"]),
        address: inst["attributes"].as_array().and_then(|attrs| {
            attrs
                .iter()
                .find(|a| a["name"].as_str() == Some(HOST_ADDRESS_ATTRIBUTE))
                .and_then(|a| text(&a["value"]))
        }),
    })
}

/// One rule of a listener in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// The rule's ARN.
    pub arn: String,
    /// Its priority; `None` for the default rule (always last).
    pub priority: Option<u32>,
    /// Its conditions (all must match; none for the default rule).
    pub conditions: Vec<Condition>,
    /// The target groups it forwards to, with their weights.
    pub forward: Vec<Weighted>,
    /// Stickiness duration in seconds, when enabled.
    pub stickiness_seconds: Option<i32>,
}

/// A listener as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    /// The ARN.
    pub arn: String,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// The port.
    pub port: u16,
    /// The rules by priority, the default rule last.
    pub rules: Vec<RouteRule>,
}

/// A load balancer as the data plane needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerView {
    /// The ARN.
    pub arn: String,
    /// The name.
    pub name: String,
    /// application or network.
    pub kind: LbKind,
    /// The DNS name.
    pub dns_name: String,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// Its listeners by port.
    pub listeners: Vec<ListenerView>,
}

/// One target as the data plane and the health checker need it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetView {
    /// The health view (id, port, state, reason, draining deadline).
    pub health: TargetHealthView,
    /// The address to connect to: the IP of an `ip` target; for an `instance` target its
    /// container instance's address when one is recorded ([`InstanceView::address`]).
    pub address: Option<String>,
}

/// A target group as the data plane and the health checker need it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupView {
    /// The ARN.
    pub arn: String,
    /// The name.
    pub name: String,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// The group's port.
    pub port: u16,
    /// ip or instance.
    pub target_type: TargetKind,
    /// The health check.
    pub health_check: HealthCheck,
    /// Its attributes (deregistration delay, slow start, algorithm).
    pub attributes: BTreeMap<String, String>,
    /// Whether a listener forwards to it.
    pub in_use: bool,
    /// Its targets.
    pub targets: Vec<TargetView>,
}

/// Everything under [`prefix`] at one store revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The store revision it was read at (watch from here).
    pub revision: u64,
    /// The load balancers by name.
    pub load_balancers: Vec<LoadBalancerView>,
    /// The target groups by name.
    pub target_groups: Vec<TargetGroupView>,
    /// The container instances that instance-type targets name, by EC2 instance id (read just
    /// after, not at `revision`; none is read when no such target is registered).
    pub instances: BTreeMap<String, InstanceView>,
}

fn route(
    arn: String,
    priority: Option<u32>,
    conditions: Vec<Condition>,
    f: &crate::record::Forward,
) -> RouteRule {
    RouteRule {
        arn,
        priority,
        conditions,
        forward: f.target_groups.clone(),
        stickiness_seconds: f.stickiness.filter(|(e, _)| *e).map(|(_, d)| d),
    }
}

/// Everything the data plane and the health checker need, read at one store revision.
pub async fn snapshot(store: &dyn Store) -> Result<Snapshot, Elbv2Error> {
    let page = store.list(arn::PREFIX, None, 0).await?;
    let mut lbs: Vec<LoadBalancerRecord> = Vec::new();
    let mut listeners: Vec<ListenerRecord> = Vec::new();
    let mut groups: Vec<TargetGroupRecord> = Vec::new();
    let mut targets: BTreeMap<String, TargetsRecord> = BTreeMap::new();
    for kv in &page.items {
        if kv.key.starts_with(LOAD_BALANCERS) {
            lbs.push(decode(&kv.value)?);
        } else if kv.key.starts_with(LISTENERS) {
            listeners.push(decode(&kv.value)?);
        } else if kv.key.starts_with(TARGET_GROUPS) {
            groups.push(decode(&kv.value)?);
        } else if kv.key.starts_with(TARGETS) {
            let r: TargetsRecord = decode(&kv.value)?;
            targets.insert(r.target_group_arn.clone(), r);
        }
    }
    // Only the instances an instance-type target names: the health checker reads a snapshot
    // every 500 ms, and reading every container instance record each time, with no target to
    // resolve, was 7% of a server's CPU with a thousand hosts (`flotilla bench scale`).
    let named: std::collections::BTreeSet<&str> = groups
        .iter()
        .filter(|g| g.target_type == TargetKind::Instance)
        .filter_map(|g| targets.get(&g.arn))
        .flat_map(|r| r.targets.iter().map(|t| t.id.as_str()))
        .collect();
    let instances: BTreeMap<String, InstanceView> = if named.is_empty() {
        BTreeMap::new()
    } else {
        instances(store)
            .await?
            .into_iter()
            .filter(|i| named.contains(i.ec2_instance_id.as_str()))
            .map(|i| (i.ec2_instance_id.clone(), i))
            .collect()
    };
    let load_balancers = lbs
        .into_iter()
        .map(|lb| {
            let mut ls: Vec<ListenerView> = listeners
                .iter()
                .filter(|l| l.load_balancer_arn == lb.arn)
                .map(|l| {
                    let mut rules: Vec<RouteRule> = l
                        .rules_by_priority()
                        .into_iter()
                        .map(|r| {
                            route(
                                r.arn.clone(),
                                Some(r.priority),
                                r.conditions.clone(),
                                &r.action,
                            )
                        })
                        .collect();
                    rules.push(route(
                        l.default_rule_arn.clone(),
                        None,
                        Vec::new(),
                        &l.default_action,
                    ));
                    ListenerView {
                        arn: l.arn.clone(),
                        protocol: l.protocol,
                        port: l.port,
                        rules,
                    }
                })
                .collect();
            ls.sort_by_key(|l| l.port);
            LoadBalancerView {
                arn: lb.arn,
                name: lb.name,
                kind: lb.kind,
                dns_name: lb.dns_name,
                attributes: lb.attributes,
                listeners: ls,
            }
        })
        .collect();
    let target_groups = groups
        .into_iter()
        .map(|g| {
            let empty = TargetsRecord {
                target_group_arn: g.arn.clone(),
                targets: Vec::new(),
            };
            let r = targets.get(&g.arn).unwrap_or(&empty);
            let targets = views(&g, r)
                .into_iter()
                .map(|h| TargetView {
                    address: match g.target_type {
                        TargetKind::Ip => Some(h.id.clone()),
                        TargetKind::Instance => {
                            instances.get(&h.id).and_then(|i| i.address.clone())
                        }
                    },
                    health: h,
                })
                .collect();
            TargetGroupView {
                arn: g.arn.clone(),
                name: g.name.clone(),
                protocol: g.protocol,
                port: g.port,
                target_type: g.target_type,
                in_use: !g.used_by.is_empty(),
                health_check: g.health,
                attributes: g.attributes,
                targets,
            }
        })
        .collect();
    Ok(Snapshot {
        revision: page.revision,
        load_balancers,
        target_groups,
        instances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{tg_attribute_defaults, HealthCheck};
    use flotilla_store::MemoryStore;
    use std::collections::BTreeSet;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";

    async fn group(store: &MemoryStore, kind: TargetKind, used: bool) {
        let g = TargetGroupRecord {
            name: "web".into(),
            arn: ARN.into(),
            protocol: Protocol::Http,
            port: 8080,
            vpc_id: None,
            target_type: kind,
            protocol_version: None,
            health: HealthCheck {
                healthy: 2,
                unhealthy: 3,
                ..HealthCheck::defaults(Protocol::Http, Protocol::Http)
            },
            attributes: tg_attribute_defaults(Protocol::Http),
            tags: Vec::new(),
            used_by: if used {
                BTreeSet::from([
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/1/2"
                        .to_string(),
                ])
            } else {
                BTreeSet::new()
            },
            created: 0.0,
        };
        store
            .txn(Txn::new().put(arn::target_group_key("web"), encode(&g).unwrap()))
            .await
            .unwrap();
    }

    fn ip(id: &str) -> TargetRef {
        TargetRef {
            id: id.into(),
            port: None,
            availability_zone: None,
        }
    }

    fn states(h: &[TargetHealthView]) -> Vec<(String, State)> {
        h.iter().map(|t| (t.id.clone(), t.state)).collect()
    }

    #[tokio::test]
    async fn a_target_goes_initial_healthy_unhealthy_draining_gone() {
        let store = MemoryStore::new();
        group(&store, TargetKind::Ip, true).await;
        register(&store, ARN, &[ip("10.0.0.1")], 1.0).await.unwrap();
        let h = health(&store, ARN).await.unwrap();
        assert_eq!(h[0].port, 8080);
        assert_eq!(
            (h[0].state, h[0].reason),
            (State::Initial, Some(Reason::RegistrationInProgress))
        );
        for _ in 0..2 {
            observe(&store, ARN, &ip("10.0.0.1"), ProbeResult::Passed, 2.0)
                .await
                .unwrap();
        }
        assert_eq!(
            states(&health(&store, ARN).await.unwrap()),
            [("10.0.0.1".into(), State::Healthy)]
        );
        // A steady pass writes nothing.
        let rev = store.revision().await.unwrap();
        observe(&store, ARN, &ip("10.0.0.1"), ProbeResult::Passed, 3.0)
            .await
            .unwrap();
        assert_eq!(store.revision().await.unwrap(), rev);
        for _ in 0..3 {
            observe(
                &store,
                ARN,
                &ip("10.0.0.1"),
                ProbeResult::Failed(Failure::ResponseCodeMismatch(502)),
                4.0,
            )
            .await
            .unwrap();
        }
        let h = health(&store, ARN).await.unwrap();
        assert_eq!(
            (h[0].state, h[0].reason),
            (State::Unhealthy, Some(Reason::ResponseCodeMismatch))
        );
        let until = deregister(&store, ARN, &[ip("10.0.0.1")], 10.0)
            .await
            .unwrap();
        assert_eq!(until, 310.0);
        let h = health(&store, ARN).await.unwrap();
        assert_eq!(
            (h[0].state, h[0].draining_until),
            (State::Draining, Some(310.0))
        );
        sweep(&store, 309.0).await.unwrap();
        assert_eq!(health(&store, ARN).await.unwrap().len(), 1);
        sweep(&store, 310.0).await.unwrap();
        assert!(health(&store, ARN).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn targets_are_checked_against_the_groups_type() {
        let store = MemoryStore::new();
        group(&store, TargetKind::Ip, false).await;
        let e = register(&store, ARN, &[ip("not-an-ip")], 1.0)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidTarget");
        let e = deregister(&store, ARN, &[ip("10.0.0.9")], 1.0)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidTarget");
        let other = ARN.replace("0123456789abcdef", "fedcba9876543210");
        assert_eq!(
            register(&store, &other, &[ip("10.0.0.1")], 1.0)
                .await
                .unwrap_err()
                .code(),
            "TargetGroupNotFound"
        );
        // Unused: no listener forwards to the group.
        register(&store, ARN, &[ip("10.0.0.1")], 1.0).await.unwrap();
        let h = health(&store, ARN).await.unwrap();
        assert_eq!(
            (h[0].state, h[0].reason),
            (State::Unused, Some(Reason::NotInUse))
        );
    }

    #[tokio::test]
    async fn instance_targets_are_container_instances_and_the_snapshot_resolves_them() {
        let store = MemoryStore::new();
        group(&store, TargetKind::Instance, true).await;
        let inst = serde_json::json!({
            "instance": {"ec2InstanceId": "i-0123456789abcdef0", "containerInstanceArn": "arn:ci",
                         "attributes": [{"name": "ecs.os-type", "value": "linux"},
                                        {"name": "flotilla.host-address", "value": "192.0.2.7"}]},
            "cluster": "default", "id": "x", "availability_zone": "us-east-1a",
        });
        store
            .txn(Txn::new().put(
                "container-instances/default/x",
                serde_json::to_vec(&inst).unwrap(),
            ))
            .await
            .unwrap();
        let e = register(&store, ARN, &[ip("i-nope")], 1.0)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidTarget");
        let t = TargetRef {
            id: "i-0123456789abcdef0".into(),
            port: Some(32768),
            availability_zone: None,
        };
        register(&store, ARN, &[t], 1.0).await.unwrap();
        let s = snapshot(&store).await.unwrap();
        assert_eq!(s.target_groups.len(), 1);
        let tg = &s.target_groups[0];
        assert_eq!(tg.targets[0].health.port, 32768);
        assert_eq!(tg.targets[0].address.as_deref(), Some("192.0.2.7"));
        assert_eq!(s.instances["i-0123456789abcdef0"].cluster, "default");
    }

    #[tokio::test]
    async fn concurrent_observations_lose_no_update() {
        let store = std::sync::Arc::new(MemoryStore::new());
        group(&store, TargetKind::Ip, true).await;
        let ids: Vec<String> = (1..=8).map(|i| format!("10.0.0.{i}")).collect();
        let refs: Vec<TargetRef> = ids.iter().map(|i| ip(i)).collect();
        register(store.as_ref(), ARN, &refs, 1.0).await.unwrap();
        let mut tasks = Vec::new();
        for id in ids.clone() {
            for _ in 0..2 {
                let s = store.clone();
                let id = id.clone();
                tasks.push(tokio::spawn(async move {
                    observe(s.as_ref(), ARN, &ip(&id), ProbeResult::Passed, 2.0).await
                }));
            }
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let h = health(store.as_ref(), ARN).await.unwrap();
        assert!(h.iter().all(|t| t.state == State::Healthy), "{h:?}");
    }
}
