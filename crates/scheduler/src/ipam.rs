//! Task address allocation on a managed network: the IPv4 range an awsvpc
//! (Fargate) task network hands out addresses from, which address the next
//! task gets, and the names derived from an address (MAC, private DNS name).
//!
//! This module is **only** arithmetic on addresses. It does not create
//! networks, bridges or ENIs, does not remember which addresses are taken
//! (the caller passes the used set, read from its records) and does not make
//! ids: the server mints ENI and attachment ids itself.
//!
//! Layout of a [`Cidr`] such as `10.213.0.0/16`: the network address
//! (`10.213.0.0`), the gateway as the first usable address (`10.213.0.1`),
//! then the allocatable addresses (`10.213.0.2` up to `10.213.255.254`),
//! then the broadcast address (`10.213.255.255`). Prefixes from /8 to /28
//! are accepted.
//!
//! ```
//! use flotilla_scheduler::ipam::{allocate, mac_for, private_dns_name, Cidr};
//! use std::collections::BTreeSet;
//! use std::net::Ipv4Addr;
//!
//! let cidr: Cidr = "10.213.0.0/16".parse()?;
//! assert_eq!(cidr.gateway(), Ipv4Addr::new(10, 213, 0, 1));
//! let used = BTreeSet::from([Ipv4Addr::new(10, 213, 0, 2)]);
//! let ip = allocate(&cidr, &used, 0).unwrap();
//! assert_eq!(ip, Ipv4Addr::new(10, 213, 0, 3));
//! // The next allocation starts after it, so a just-freed address is not reused at once.
//! let hint = cidr.position(ip).unwrap() + 1;
//! assert_eq!(allocate(&cidr, &used, hint), Some(Ipv4Addr::new(10, 213, 0, 4)));
//! assert_eq!(mac_for(ip), "0a:58:0a:d5:00:03");
//! assert_eq!(private_dns_name(ip), "ip-10-213-0-3.ec2.internal");
//! # Ok::<(), flotilla_scheduler::ipam::CidrError>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The shortest prefix accepted (a /8, 16M addresses).
pub const MIN_PREFIX: u8 = 8;
/// The longest prefix accepted (a /28, 16 addresses of which 13 allocatable).
pub const MAX_PREFIX: u8 = 28;

/// Why a CIDR block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not of the form `a.b.c.d/p`.
    #[error("'{input}' is not an IPv4 CIDR block; expected an address and a prefix length such as 10.213.0.0/16.")]
    Malformed {
        /// What was given.
        input: String,
    },
    /// A prefix length outside /8../28.
    #[error("The prefix length /{prefix} of '{input}' is not supported; it must be between /{MIN_PREFIX} and /{MAX_PREFIX}.")]
    PrefixOutOfRange {
        /// What was given.
        input: String,
        /// Its prefix length.
        prefix: u8,
    },
    /// The address has bits set below the prefix.
    #[error(
        "'{input}' has host bits set; the network address of that /{prefix} is {network}/{prefix}."
    )]
    HostBitsSet {
        /// What was given.
        input: String,
        /// Its prefix length.
        prefix: u8,
        /// The address with the host bits cleared.
        network: Ipv4Addr,
    },
}

/// An IPv4 network with a prefix length from /8 to /28 and no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: u32,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/p` (decimal octets without leading zeros, a decimal prefix length).
    pub fn parse(input: &str) -> Result<Cidr, CidrError> {
        let malformed = || CidrError::Malformed {
            input: input.to_string(),
        };
        let (addr, prefix) = input.split_once('/').ok_or_else(malformed)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| malformed())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        if prefix > 32 {
            return Err(malformed());
        }
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(CidrError::PrefixOutOfRange {
                input: input.to_string(),
                prefix,
            });
        }
        let mask = u32::MAX << (32 - prefix);
        let bits = u32::from(addr);
        if bits & !mask != 0 {
            return Err(CidrError::HostBitsSet {
                input: input.to_string(),
                prefix,
                network: Ipv4Addr::from(bits & mask),
            });
        }
        Ok(Cidr {
            network: bits,
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The number of addresses in the block, network and broadcast included.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The broadcast address (the last one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + (self.size() - 1))
    }

    /// The gateway: the first usable address (network + 1).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// True if `ip` is inside the block (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(self.network) < self.size()
    }

    /// How many addresses tasks can get: all but network, gateway and broadcast.
    pub fn allocatable_count(&self) -> u32 {
        self.size() - 3
    }

    /// The allocatable address at `position` (0 = gateway + 1), taken modulo
    /// [`Cidr::allocatable_count`].
    pub fn allocatable_at(&self, position: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 2 + position % self.allocatable_count())
    }

    /// The position of an allocatable address (the inverse of
    /// [`Cidr::allocatable_at`]); `None` for the network, gateway and
    /// broadcast addresses and addresses outside the block. The server can
    /// keep `position(last allocated) + 1` as the next hint.
    pub fn position(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).wrapping_sub(self.network);
        (2..self.size() - 1).contains(&offset).then(|| offset - 2)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The first allocatable address of `cidr` not in `used`, looking from
/// position `hint` (modulo the allocatable count) to the end of the range and
/// then from its start; `None` only when every allocatable address is used.
/// Addresses in `used` outside the allocatable range are ignored. Costs a
/// walk over the used addresses that directly follow the hint, not over the
/// whole range.
pub fn allocate(cidr: &Cidr, used: &BTreeSet<Ipv4Addr>, hint: u32) -> Option<Ipv4Addr> {
    let first = cidr.allocatable_at(0);
    let last = cidr.allocatable_at(cidr.allocatable_count() - 1);
    let start = cidr.allocatable_at(hint);
    // The first address in from..=to that is not used.
    let first_free = |from: Ipv4Addr, to: Ipv4Addr| -> Option<Ipv4Addr> {
        let mut candidate = u32::from(from);
        for &u in used.range(from..=to) {
            if u32::from(u) != candidate {
                break;
            }
            candidate += 1;
        }
        (candidate <= u32::from(to)).then(|| Ipv4Addr::from(candidate))
    };
    first_free(start, last).or_else(|| {
        if start == first {
            None
        } else {
            first_free(first, Ipv4Addr::from(u32::from(start) - 1))
        }
    })
}

/// The MAC address of a task's interface: `0a:58:` and the address's four
/// bytes in lowercase hex, as CNI bridge plugins derive it
/// (`10.213.0.7` → `0a:58:0a:d5:00:07`).
pub fn mac_for(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The private DNS name ECS reports for a task ENI's address
/// (`10.213.0.7` → `ip-10-213-0-7.ec2.internal`).
pub fn private_dns_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.ec2.internal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn layout_of_a_16() {
        let c = Cidr::parse("10.213.0.0/16").unwrap();
        assert_eq!(c.to_string(), "10.213.0.0/16");
        assert_eq!(c.network(), ip("10.213.0.0"));
        assert_eq!(c.gateway(), ip("10.213.0.1"));
        assert_eq!(c.broadcast(), ip("10.213.255.255"));
        assert_eq!(c.allocatable_count(), 65533);
        assert_eq!(c.allocatable_at(0), ip("10.213.0.2"));
        assert_eq!(c.allocatable_at(65532), ip("10.213.255.254"));
        assert_eq!(c.allocatable_at(65533), ip("10.213.0.2"));
        assert_eq!(c.position(ip("10.213.1.0")), Some(254));
        assert_eq!(c.position(c.gateway()), None);
        assert_eq!(c.position(c.broadcast()), None);
        assert_eq!(c.position(ip("10.214.0.5")), None);
        assert!(c.contains(ip("10.213.7.7")) && !c.contains(ip("10.212.255.255")));
    }

    #[test]
    fn parse_errors_say_what_to_fix() {
        let e = |s: &str| Cidr::parse(s).unwrap_err().to_string();
        for bad in [
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/33",
            "x/16",
            "010.0.0.0/8",
        ] {
            assert!(e(bad).contains("is not an IPv4 CIDR block"), "{bad}");
        }
        assert_eq!(
            e("10.0.0.0/7"),
            "The prefix length /7 of '10.0.0.0/7' is not supported; it must be between /8 and /28."
        );
        assert!(e("10.0.0.0/29").contains("/29"));
        assert_eq!(
            e("10.213.0.5/16"),
            "'10.213.0.5/16' has host bits set; the network address of that /16 is 10.213.0.0/16."
        );
        assert!(Cidr::parse("10.0.0.0/8").is_ok());
        assert_eq!(
            Cidr::parse("192.168.7.16/28").unwrap().allocatable_count(),
            13
        );
    }

    #[test]
    fn allocation_starts_at_the_hint_and_wraps() {
        let c = Cidr::parse("192.168.7.0/28").unwrap();
        let none = BTreeSet::new();
        assert_eq!(allocate(&c, &none, 0), Some(ip("192.168.7.2")));
        assert_eq!(allocate(&c, &none, 12), Some(ip("192.168.7.14")));
        assert_eq!(allocate(&c, &none, 13), Some(ip("192.168.7.2")));
        let used: BTreeSet<_> = ["192.168.7.13", "192.168.7.14", "192.168.7.2"]
            .into_iter()
            .map(ip)
            .collect();
        assert_eq!(allocate(&c, &used, 11), Some(ip("192.168.7.3")));
        // Used addresses outside the range do not matter.
        let odd: BTreeSet<_> = ["192.168.7.1", "10.0.0.2"].into_iter().map(ip).collect();
        assert_eq!(allocate(&c, &odd, 0), Some(ip("192.168.7.2")));
        let full: BTreeSet<_> = (2..=14).map(|d| Ipv4Addr::new(192, 168, 7, d)).collect();
        assert_eq!(allocate(&c, &full, 5), None);
    }

    #[test]
    fn mac_and_dns_name() {
        assert_eq!(mac_for(ip("10.213.0.7")), "0a:58:0a:d5:00:07");
        assert_eq!(mac_for(ip("255.1.16.171")), "0a:58:ff:01:10:ab");
        assert_eq!(
            private_dns_name(ip("10.213.0.7")),
            "ip-10-213-0-7.ec2.internal"
        );
    }

    fn cidr_and_used() -> impl Strategy<Value = (Cidr, BTreeSet<Ipv4Addr>)> {
        (any::<u32>(), 22u8..=28).prop_flat_map(|(bits, prefix)| {
            let network = bits & (u32::MAX << (32 - prefix));
            let size = 1u32 << (32 - prefix);
            let cidr = Cidr { network, prefix };
            // Offsets over the whole block (network, gateway and broadcast too) and a little
            // outside it; sometimes every address.
            let used = prop_oneof![
                proptest::collection::btree_set(0..size + 4, 0..size as usize + 4),
                Just((0..size).collect()),
            ]
            .prop_map(move |offsets: BTreeSet<u32>| {
                offsets
                    .into_iter()
                    .map(|o| Ipv4Addr::from(network.wrapping_add(o)))
                    .collect()
            });
            (Just(cidr), used)
        })
    }

    proptest! {
        #[test]
        fn allocate_finds_the_first_free_address_from_the_hint(
            (cidr, used) in cidr_and_used(), hint in any::<u32>(),
        ) {
            let got = allocate(&cidr, &used, hint);
            let n = cidr.allocatable_count();
            // The naive answer: positions hint, hint+1, ... wrapping.
            let expected = (0..n)
                .map(|k| cidr.allocatable_at(hint % n + k))
                .find(|a| !used.contains(a));
            prop_assert_eq!(got, expected);
            match got {
                Some(a) => {
                    prop_assert!(!used.contains(&a));
                    prop_assert!(cidr.contains(a));
                    prop_assert!(a != cidr.network() && a != cidr.gateway() && a != cidr.broadcast());
                    prop_assert!(cidr.position(a).is_some());
                }
                None => prop_assert!((0..n).all(|p| used.contains(&cidr.allocatable_at(p)))),
            }
        }

        #[test]
        fn parse_and_display_round_trip(bits in any::<u32>(), prefix in MIN_PREFIX..=MAX_PREFIX) {
            let network = Ipv4Addr::from(bits & (u32::MAX << (32 - prefix)));
            let c = Cidr::parse(&format!("{network}/{prefix}")).unwrap();
            prop_assert_eq!(c.network(), network);
            prop_assert_eq!(Cidr::parse(&c.to_string()).unwrap(), c);
        }
    }
}
