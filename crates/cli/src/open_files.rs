//! The process's limit on open files (`RLIMIT_NOFILE`). A server holds a socket per agent
//! session, and `flotilla bench scale` a socket (and more) per hollow agent: thousands of them,
//! beyond the soft limit many systems start processes with (1024), and, at 10,000 hollow
//! agents, beyond a hard limit of 20,000 (agents then fail with "Too many open files").
//!
//! [`raise_to`] lifts the soft limit toward what is wanted, up to the hard limit, and the hard
//! limit too when the process may (root); it says what the limit is afterwards.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What [`raise_to`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// The soft limit is at least what was wanted (`None`: unlimited).
    Enough(Option<u64>),
    /// The soft limit is below what was wanted: the most this process could get.
    Short {
        /// The soft limit now.
        have: u64,
        /// What was wanted.
        want: u64,
    },
}

/// Raises the soft limit on open files to `want` (or the hard limit, if lower and the hard
/// limit cannot be raised).
pub fn raise_to(want: u64) -> Raised {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current;
    if soft.is_none_or(|s| s >= want) {
        return Raised::Enough(soft);
    }
    // First with the hard limit raised as well (allowed for root), then within it.
    let raised_hard = Rlimit {
        current: Some(want),
        maximum: Some(now.maximum.map_or(want, |h| h.max(want))),
    };
    if setrlimit(Resource::Nofile, raised_hard).is_err() {
        let within = Rlimit {
            current: Some(now.maximum.map_or(want, |h| h.min(want))),
            maximum: now.maximum,
        };
        // Failing here leaves the limit as it was; the check below says so.
        let _ = setrlimit(Resource::Nofile, within);
    }
    match getrlimit(Resource::Nofile).current {
        None => Raised::Enough(None),
        Some(have) if have >= want => Raised::Enough(Some(have)),
        Some(have) => Raised::Short { have, want },
    }
}

/// Raises the soft limit to the hard limit, as a server does at start (what `ulimit -Sn`
/// says is often far below what thousands of agent sessions need).
pub fn raise_to_hard() -> Raised {
    match getrlimit(Resource::Nofile).maximum {
        Some(hard) => raise_to(hard),
        None => raise_to(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_to_what_is_already_allowed_is_enough_and_lowers_nothing() {
        let before = getrlimit(Resource::Nofile).current;
        assert!(matches!(raise_to(64), Raised::Enough(_)));
        assert_eq!(getrlimit(Resource::Nofile).current, before);
        // The hard limit is always reachable for the soft one.
        assert!(matches!(raise_to_hard(), Raised::Enough(_)));
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, now.maximum);
    }
}
