//! Warm task networks: addresses on the managed task network reserved ahead of time for one
//! managed-pool host, whose agent keeps a running pause container (network namespace, address,
//! MAC, hostname) for each, so a FARGATE task placed there skips making one on its critical
//! path.
//!
//! What this is: the record (`warm-networks/CLUSTER/ID`, [`WarmRecord`]: the addresses, oldest
//! first; each also has its `addresses/IP` record, valued with the instance's ARN, so no task is
//! ever given one), the placement writer's take ([`WarmRecord::take`]) and what a reservation
//! request changes ([`plan`]). Pure: `flotilla_controllers::fargate` reads and commits.
//!
//! Invariants: an address is in at most one warm record, and while it is there no task holds it
//! (it moves from the warm record to a task in the task's creation transaction, compared on the
//! warm record); a record never holds more than [`MAX_WARM_NETWORKS`] addresses.

use flotilla_protocol::MAX_WARM_NETWORKS;
use flotilla_scheduler::ipam::Cidr;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The warm task networks reserved for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmRecord {
    /// Reserved addresses, oldest first (the oldest is the likeliest to have its pause
    /// container running already).
    pub addresses: Vec<Ipv4Addr>,
}

impl WarmRecord {
    /// Takes the oldest reserved address that is on the task network `cidr`, for a task placed
    /// on the instance; `None` when there is none (the task gets a fresh address).
    pub fn take(&mut self, cidr: &Cidr) -> Option<Ipv4Addr> {
        let at = self.addresses.iter().position(|ip| cidr.contains(*ip))?;
        Some(self.addresses.remove(at))
    }
}

/// What a reservation request changes on an instance's warm record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refill {
    /// The addresses that stay reserved, in order.
    pub keep: Vec<Ipv4Addr>,
    /// The addresses to release (their `addresses/IP` records deleted).
    pub release: Vec<Ipv4Addr>,
    /// How many fresh addresses to allocate and append.
    pub wanted: usize,
}

/// Whether an instance may keep warm networks: one that takes new tasks (ACTIVE); a DRAINING,
/// INACTIVE or missing one has every address released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// ACTIVE: placement may put tasks there.
    Accepting,
    /// DRAINING, INACTIVE, or no record.
    Closed,
}

/// What a request for `size` warm networks does to `current`, the instance's reserved addresses
/// on the task network `cidr`: an address off the network (the server's `--task-network`
/// changed) is released; a closed host releases everything; at most `size` (capped at
/// [`MAX_WARM_NETWORKS`]) are kept, the oldest; the rest of `size` is wanted fresh.
pub fn plan(current: &[Ipv4Addr], size: u32, cidr: &Cidr, host: Host) -> Refill {
    let size = match host {
        Host::Accepting => size.min(MAX_WARM_NETWORKS) as usize,
        Host::Closed => 0,
    };
    let mut keep = Vec::new();
    let mut release = Vec::new();
    for ip in current {
        if keep.contains(ip) || release.contains(ip) {
            // A repeat (a record never has one): the first decides.
        } else if keep.len() < size && cidr.contains(*ip) {
            keep.push(*ip);
        } else {
            release.push(*ip);
        }
    }
    Refill {
        wanted: size - keep.len(),
        keep,
        release,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn cidr() -> Cidr {
        "10.213.0.0/16".parse().unwrap()
    }
    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 0, last)
    }

    #[test]
    fn a_take_is_the_oldest_address_on_the_network() {
        let mut r = WarmRecord {
            addresses: vec![Ipv4Addr::new(10, 9, 0, 2), ip(7), ip(5)],
        };
        assert_eq!(r.take(&cidr()), Some(ip(7)));
        assert_eq!(r.take(&cidr()), Some(ip(5)));
        assert_eq!(
            r.take(&cidr()),
            None,
            "an address off the network is never taken"
        );
        assert_eq!(r.addresses, vec![Ipv4Addr::new(10, 9, 0, 2)]);
    }

    #[test]
    fn a_refill_tops_up_to_the_size() {
        let p = plan(&[ip(2)], 3, &cidr(), Host::Accepting);
        assert_eq!(
            p,
            Refill {
                keep: vec![ip(2)],
                release: vec![],
                wanted: 2
            }
        );
        let full = plan(&[ip(2), ip(3)], 2, &cidr(), Host::Accepting);
        assert_eq!(full.wanted, 0);
        assert!(full.release.is_empty());
    }

    #[test]
    fn a_smaller_size_releases_the_newest() {
        let p = plan(&[ip(2), ip(3), ip(4)], 1, &cidr(), Host::Accepting);
        assert_eq!(p.keep, vec![ip(2)]);
        assert_eq!(p.release, vec![ip(3), ip(4)]);
        assert_eq!(p.wanted, 0);
        let none = plan(&[ip(2)], 0, &cidr(), Host::Accepting);
        assert_eq!(
            (none.keep.len(), none.release, none.wanted),
            (0, vec![ip(2)], 0)
        );
    }

    #[test]
    fn a_closed_host_releases_everything() {
        let p = plan(&[ip(2), ip(3)], 4, &cidr(), Host::Closed);
        assert!(p.keep.is_empty());
        assert_eq!(p.release, vec![ip(2), ip(3)]);
        assert_eq!(p.wanted, 0);
    }

    #[test]
    fn the_size_is_capped_and_addresses_off_the_network_go() {
        let off = Ipv4Addr::new(192, 168, 0, 9);
        let p = plan(&[off, ip(2)], 1000, &cidr(), Host::Accepting);
        assert_eq!(p.keep, vec![ip(2)]);
        assert_eq!(p.release, vec![off]);
        assert_eq!(p.wanted, MAX_WARM_NETWORKS as usize - 1);
    }

    proptest! {
        /// Every current address is kept or released, exactly once; the kept ones are on the
        /// network, in their order, and kept plus wanted is the (capped) size.
        #[test]
        fn plan_partitions_and_reaches_the_size(
            lasts in proptest::collection::vec(0u8..40, 0..30),
            off in proptest::collection::vec(any::<bool>(), 30),
            size in 0u32..40,
            open in any::<bool>(),
        ) {
            let current: Vec<Ipv4Addr> = lasts
                .iter()
                .zip(off.iter())
                .map(|(l, o)| if *o { Ipv4Addr::new(10, 9, 0, *l) } else { ip(*l) })
                .collect();
            let host = if open { Host::Accepting } else { Host::Closed };
            let p = plan(&current, size, &cidr(), host);
            let target = if open { size.min(MAX_WARM_NETWORKS) as usize } else { 0 };
            prop_assert_eq!(p.keep.len() + p.wanted, target);
            prop_assert!(p.keep.iter().all(|a| cidr().contains(*a)));
            for a in &current {
                prop_assert!(p.keep.contains(a) != p.release.contains(a));
            }
            // The kept ones are a subsequence of the current ones, without repeats.
            let mut rest = current.iter();
            prop_assert!(p.keep.iter().all(|k| rest.any(|a| a == k)));
            let mut unique = p.keep.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), p.keep.len());
        }
    }
}
