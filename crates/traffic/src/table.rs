//! From the load balancer records to what the data plane serves and what the health checker
//! probes (pure): [`table`] maps an ELBv2 [`Snapshot`] onto an [`lb::Table`], [`health_check`]
//! a target group's health check onto an [`lb::HealthCheck`].
//!
//! How a target's state routes (ELB's behaviour): `healthy` serves; `draining` finishes what
//! it has and gets nothing new; `unhealthy` gets nothing unless no target of its group is
//! healthy (then the group fails open); `initial`, `unused` and `unavailable` get nothing,
//! except that a group whose health checks are disabled routes to every registered target.

use flotilla_elbv2::health::State;
use flotilla_elbv2::record::{Condition, Protocol};
use flotilla_elbv2::targets::{Snapshot, TargetGroupView};
use flotilla_lb as lb;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The data plane's table for `snapshot`, its listeners bound on `bind`.
pub fn table(snapshot: &Snapshot, bind: IpAddr) -> lb::Table {
    let mut listeners = Vec::new();
    for l in snapshot.load_balancers.iter().flat_map(|b| &b.listeners) {
        let rules = l
            .rules
            .iter()
            .map(|r| {
                let mut rule = lb::Rule {
                    forward: r
                        .forward
                        .iter()
                        .map(|w| lb::WeightedGroup {
                            target_group: w.target_group_arn.clone(),
                            weight: w.weight,
                        })
                        .collect(),
                    ..Default::default()
                };
                for c in &r.conditions {
                    match c {
                        Condition::PathPattern(p) => rule.paths.extend(p.iter().cloned()),
                        Condition::HostHeader(h) => rule.hosts.extend(h.iter().cloned()),
                    }
                }
                rule
            })
            .collect();
        listeners.push(lb::Listener {
            id: l.arn.clone(),
            bind: SocketAddr::new(bind, l.port),
            protocol: match l.protocol {
                Protocol::Http => lb::ListenerProtocol::Http,
                Protocol::Tcp => lb::ListenerProtocol::Tcp,
            },
            rules,
            idle_timeout_seconds: None,
        });
    }
    let target_groups = snapshot
        .target_groups
        .iter()
        .map(|g| (g.arn.clone(), group(g)))
        .collect::<BTreeMap<_, _>>();
    lb::Table {
        listeners,
        target_groups,
    }
}

fn group(g: &TargetGroupView) -> lb::TargetGroup {
    let algorithm = match g
        .attributes
        .get("load_balancing.algorithm.type")
        .map(String::as_str)
    {
        Some("least_outstanding_requests") => lb::Algorithm::LeastOutstandingRequests,
        _ => lb::Algorithm::RoundRobin,
    };
    let slow_start_seconds = g
        .attributes
        .get("slow_start.duration_seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let checks = g.health_check.enabled;
    let targets = g
        .targets
        .iter()
        .filter_map(|t| {
            let ip: IpAddr = t.address.as_deref()?.parse().ok()?;
            let routing = match t.health.state {
                State::Healthy => lb::Routing::Serve,
                State::Draining => lb::Routing::Drain,
                State::Unhealthy => lb::Routing::Unhealthy,
                State::Unavailable if !checks => lb::Routing::Serve,
                State::Initial | State::Unused | State::Unavailable => lb::Routing::Skip,
            };
            Some(lb::Backend {
                addr: SocketAddr::new(ip, t.health.port),
                routing,
                serving_since: None,
            })
        })
        .collect();
    lb::TargetGroup {
        id: g.arn.clone(),
        algorithm,
        slow_start_seconds,
        targets,
    }
}

/// The probe a target group's health check makes, or `None` when its checks are disabled (or
/// its matcher cannot be read, which the API never stores).
pub fn health_check(g: &TargetGroupView) -> Option<lb::HealthCheck> {
    let h = &g.health_check;
    if !h.enabled {
        return None;
    }
    let protocol = match h.protocol {
        Protocol::Http => lb::HealthCheckProtocol::Http,
        Protocol::Tcp => lb::HealthCheckProtocol::Tcp,
    };
    let matcher = h
        .matcher
        .as_deref()
        .unwrap_or("200")
        .parse::<lb::Matcher>()
        .ok()?;
    Some(lb::HealthCheck {
        protocol,
        port: h.port.parse().ok(),
        path: h.path.clone().unwrap_or_else(|| "/".into()),
        matcher,
        timeout: Duration::from_secs(u64::from(h.timeout.max(1))),
    })
}

/// Seconds between two checks of a target of `g`.
pub fn interval(g: &TargetGroupView) -> f64 {
    f64::from(g.health_check.interval.max(1))
}

/// Whether the checker probes a target in `state`: registered targets that are not draining,
/// of a group a listener uses.
pub fn probed(g: &TargetGroupView, state: State) -> bool {
    g.in_use && matches!(state, State::Initial | State::Healthy | State::Unhealthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_elbv2::record::{HealthCheck, TargetKind};
    use flotilla_elbv2::targets::{TargetHealthView, TargetView};

    fn target(ip: &str, state: State) -> TargetView {
        TargetView {
            health: TargetHealthView {
                id: ip.into(),
                port: 8080,
                availability_zone: None,
                state,
                reason: None,
                description: None,
                draining_until: None,
            },
            address: Some(ip.into()),
        }
    }

    fn group(targets: Vec<TargetView>, enabled: bool) -> TargetGroupView {
        let mut health_check = HealthCheck::defaults(Protocol::Http, Protocol::Http);
        health_check.enabled = enabled;
        TargetGroupView {
            arn: "tg".into(),
            name: "tg".into(),
            protocol: Protocol::Http,
            port: 8080,
            target_type: TargetKind::Ip,
            health_check,
            attributes: BTreeMap::from([(
                "load_balancing.algorithm.type".to_string(),
                "least_outstanding_requests".to_string(),
            )]),
            in_use: true,
            targets,
        }
    }

    #[test]
    fn each_state_routes_as_elb_routes_it() {
        let g = group(
            vec![
                target("10.0.0.1", State::Healthy),
                target("10.0.0.2", State::Draining),
                target("10.0.0.3", State::Unhealthy),
                target("10.0.0.4", State::Initial),
                target("10.0.0.5", State::Unused),
            ],
            true,
        );
        let t = super::group(&g);
        assert_eq!(t.algorithm, lb::Algorithm::LeastOutstandingRequests);
        let routing: Vec<lb::Routing> = t.targets.iter().map(|b| b.routing).collect();
        assert_eq!(
            routing,
            vec![
                lb::Routing::Serve,
                lb::Routing::Drain,
                lb::Routing::Unhealthy,
                lb::Routing::Skip,
                lb::Routing::Skip
            ]
        );
        assert_eq!(t.targets[0].addr, "10.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn disabled_checks_route_to_every_registered_target_and_probe_none() {
        let g = group(vec![target("10.0.0.1", State::Unavailable)], false);
        assert_eq!(super::group(&g).targets[0].routing, lb::Routing::Serve);
        assert!(health_check(&g).is_none());
    }

    #[test]
    fn the_checker_probes_registered_targets_of_groups_in_use_only() {
        let mut g = group(Vec::new(), true);
        assert!(probed(&g, State::Initial) && probed(&g, State::Unhealthy));
        assert!(!probed(&g, State::Draining));
        g.in_use = false;
        assert!(!probed(&g, State::Healthy));
        let check = health_check(&group(Vec::new(), true)).unwrap();
        assert_eq!(check.path, "/");
        assert_eq!(check.port, None);
    }
}
