//! Warm task networks on a managed-pool host, the pure part: which warm pause containers to
//! make and which to remove, given the server's list and what runs.
//!
//! A managed-pool host keeps a few task networks ready (the server reserves their addresses:
//! `AgentMessage::ReserveWarmNetworks`), each held by a running pause container named
//! [`container_name`] and labelled with `labels::WARM_ADDRESS`. A FARGATE task placed on the
//! host takes one of those addresses, and the engine adopts its pause container instead of
//! making one (`engine::warm`, the I/O side).
//!
//! What this is not: Docker calls, timers or the session.
//!
//! Invariants: a warm pause container is made only for an address the server's latest list
//! names and no task of this host holds; one the list no longer names is removed only once it
//! has been unlisted for [`STALE_GRACE`] (a task's assignment naming it may be on its way: the
//! server's answer and the task push race on the session).

use flotilla_protocol::TaskNetwork;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a warm pause container the server's list no longer names is kept before it is
/// removed.
pub const STALE_GRACE: Duration = Duration::from_secs(5);

/// The Docker name of the warm pause container of `ip` (before a task adopts it and it takes
/// the task's pause name).
pub fn container_name(ip: &str) -> String {
    format!("flotilla-warm-{ip}")
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Networks to make a warm pause container for, in the list's order.
    pub create: Vec<TaskNetwork>,
    /// Addresses whose warm pause containers were unlisted long enough: remove them.
    pub remove: Vec<String>,
    /// Addresses unlisted, not for long enough yet: look again later.
    pub waiting: Vec<String>,
}

/// Decides from the server's latest list (`listed`), the addresses with a warm pause container
/// (or one being made) and since when each unlisted one has been unlisted (`unlisted_for`,
/// absent: listed until now), and the addresses tasks of this host hold (`held`).
pub fn plan(
    listed: &[TaskNetwork],
    existing: &BTreeSet<String>,
    unlisted_for: &BTreeMap<String, Duration>,
    held: &BTreeSet<String>,
) -> Plan {
    let names: BTreeSet<&str> = listed
        .iter()
        .map(|n| n.private_ipv4_address.as_str())
        .collect();
    let mut p = Plan::default();
    let mut seen = BTreeSet::new();
    for n in listed {
        let ip = &n.private_ipv4_address;
        if !existing.contains(ip) && !held.contains(ip) && seen.insert(ip.clone()) {
            p.create.push(n.clone());
        }
    }
    for ip in existing.iter().filter(|ip| !names.contains(ip.as_str())) {
        match unlisted_for.get(ip) {
            Some(d) if *d >= STALE_GRACE => p.remove.push(ip.clone()),
            _ => p.waiting.push(ip.clone()),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn net(ip: &str) -> TaskNetwork {
        TaskNetwork {
            attachment_id: String::new(),
            network_interface_id: String::new(),
            private_ipv4_address: ip.into(),
            mac_address: String::new(),
            subnet_cidr: "10.213.0.0/16".into(),
            gateway: "10.213.0.1".into(),
            network_name: "flotilla-awsvpc".into(),
            subnet_id: String::new(),
            private_dns_name: String::new(),
        }
    }
    fn set(ips: &[&str]) -> BTreeSet<String> {
        ips.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn what_is_listed_and_missing_is_made() {
        let p = plan(
            &[net("10.213.0.2"), net("10.213.0.3")],
            &set(&["10.213.0.2"]),
            &BTreeMap::new(),
            &BTreeSet::new(),
        );
        assert_eq!(p.create, vec![net("10.213.0.3")]);
        assert!(p.remove.is_empty() && p.waiting.is_empty());
    }

    #[test]
    fn an_address_a_task_holds_is_never_made_warm() {
        // The server's answer was read before a task took the address, and came after it.
        let p = plan(
            &[net("10.213.0.2")],
            &BTreeSet::new(),
            &BTreeMap::new(),
            &set(&["10.213.0.2"]),
        );
        assert!(p.create.is_empty());
    }

    #[test]
    fn an_unlisted_container_goes_after_the_grace() {
        let existing = set(&["10.213.0.9"]);
        let fresh = plan(&[], &existing, &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(fresh.waiting, vec!["10.213.0.9".to_string()]);
        assert!(fresh.remove.is_empty());
        let short = BTreeMap::from([("10.213.0.9".to_string(), Duration::from_secs(1))]);
        assert!(plan(&[], &existing, &short, &BTreeSet::new())
            .remove
            .is_empty());
        let long = BTreeMap::from([("10.213.0.9".to_string(), STALE_GRACE)]);
        let p = plan(&[], &existing, &long, &BTreeSet::new());
        assert_eq!(p.remove, vec!["10.213.0.9".to_string()]);
        assert!(p.waiting.is_empty());
    }

    #[test]
    fn names_are_per_address() {
        assert_eq!(container_name("10.213.0.7"), "flotilla-warm-10.213.0.7");
    }

    proptest! {
        /// Nothing is both made and removed; nothing held or existing is made; nothing
        /// listed is removed; every unlisted existing one is removed or waits.
        #[test]
        fn plans_are_consistent(
            listed in proptest::collection::vec(0u8..20, 0..10),
            existing in proptest::collection::btree_set(0u8..20, 0..10),
            held in proptest::collection::btree_set(0u8..20, 0..5),
            ages in proptest::collection::vec(0u64..10, 20),
        ) {
            let ip = |n: &u8| format!("10.213.0.{n}");
            let listed: Vec<TaskNetwork> = listed.iter().map(|n| net(&ip(n))).collect();
            let existing: BTreeSet<String> = existing.iter().map(ip).collect();
            let held: BTreeSet<String> = held.iter().map(ip).collect();
            let unlisted_for: BTreeMap<String, Duration> = (0u8..20)
                .map(|n| (ip(&n), Duration::from_secs(ages[n as usize])))
                .collect();
            let p = plan(&listed, &existing, &unlisted_for, &held);
            let names: BTreeSet<String> =
                listed.iter().map(|n| n.private_ipv4_address.clone()).collect();
            for n in &p.create {
                prop_assert!(!existing.contains(&n.private_ipv4_address));
                prop_assert!(!held.contains(&n.private_ipv4_address));
            }
            let made: BTreeSet<&String> = p.create.iter().map(|n| &n.private_ipv4_address).collect();
            prop_assert_eq!(made.len(), p.create.len(), "each address made once");
            for r in &p.remove {
                prop_assert!(!names.contains(r) && existing.contains(r));
            }
            for e in existing.iter().filter(|e| !names.contains(*e)) {
                prop_assert!(p.remove.contains(e) != p.waiting.contains(e));
            }
        }
    }
}
