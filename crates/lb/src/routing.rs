//! The pure decisions of the data plane: which rule a request matches, which target group of a
//! weighted forward it goes to, and which backend of the group gets it (round robin, least
//! outstanding requests, slow start).
//!
//! No I/O, clocks or ambient randomness: the caller passes the time, the counter and the random
//! draw, so every decision is a unit or property test.

/// Below this share a backend in slow start still gets an occasional request, so the ramp
/// starts at once rather than after the first tick.
pub const SLOW_START_FLOOR: f64 = 0.01;

/// `pattern` against `text`: `*` matches any run of bytes (also none), `?` exactly one; with
/// `fold_case`, ASCII letters compare case-insensitively (the pattern must then be lowercase).
pub fn wildcard_match(pattern: &[u8], text: &[u8], fold_case: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently assumed to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let c = if fold_case {
            text[t].to_ascii_lowercase()
        } else {
            text[t]
        };
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == c) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            // Let the last star swallow one more byte and retry from there.
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The host of a `Host` header without its port: `a.example:8080` -> `a.example`,
/// `[::1]:80` -> `[::1]`.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// A rule's conditions, compiled: host patterns lowercased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    hosts: Vec<Box<str>>,
    paths: Vec<Box<str>>,
}

impl Conditions {
    pub fn new(hosts: &[String], paths: &[String]) -> Self {
        Conditions {
            hosts: hosts
                .iter()
                .map(|h| h.to_ascii_lowercase().into_boxed_str())
                .collect(),
            paths: paths.iter().map(|p| p.clone().into_boxed_str()).collect(),
        }
    }

    /// Whether a request for `host` (a `Host` header, port allowed) and `path` (no query)
    /// satisfies every condition; an empty condition list matches anything.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host_ok = self.hosts.is_empty() || {
            let h = host_without_port(host).as_bytes();
            self.hosts
                .iter()
                .any(|p| wildcard_match(p.as_bytes(), h, true))
        };
        host_ok
            && (self.paths.is_empty()
                || self
                    .paths
                    .iter()
                    .any(|p| wildcard_match(p.as_bytes(), path.as_bytes(), false)))
    }
}

/// The index of the first rule whose conditions match, in priority order.
pub fn first_match<'a>(
    rules: impl IntoIterator<Item = &'a Conditions>,
    host: &str,
    path: &str,
) -> Option<usize> {
    rules.into_iter().position(|c| c.matches(host, path))
}

/// Which of `weights` a draw `r` (any `u64`, uniformly random) selects, proportionally to the
/// weights; when they are all 0, every index is equally likely. `None` only for no weights.
pub fn pick_weighted(weights: &[u32], r: u64) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return Some((r % weights.len() as u64) as usize);
    }
    let mut x = r % total;
    for (i, &w) in weights.iter().enumerate() {
        let w = u64::from(w);
        if x < w {
            return Some(i);
        }
        x -= w;
    }
    None
}

/// A backend's share while in slow start: 1.0 outside the window (or without slow start), else
/// rising linearly from [`SLOW_START_FLOOR`] to 1.0 over `window_seconds` after `since`.
pub fn slow_start_factor(now: f64, since: Option<f64>, window_seconds: u32) -> f64 {
    let Some(since) = since else { return 1.0 };
    if window_seconds == 0 {
        return 1.0;
    }
    let elapsed = now - since;
    if elapsed >= f64::from(window_seconds) {
        1.0
    } else {
        (elapsed / f64::from(window_seconds)).max(SLOW_START_FLOOR)
    }
}

/// Round robin over `n` backends at counter `tick`, stepping over `exclude` (a backend that just
/// refused a connection). `None` when nothing is left.
pub fn round_robin(n: usize, tick: u64, exclude: Option<usize>) -> Option<usize> {
    if n == 0 || (n == 1 && exclude == Some(0)) {
        return None;
    }
    let i = (tick % n as u64) as usize;
    Some(if Some(i) == exclude { (i + 1) % n } else { i })
}

/// A weighted draw over `n` backends whose shares `weight(i)` are in (0, 1]; `r01` is uniform in
/// [0, 1). Excluded backends have no share.
pub fn pick_by_share(
    n: usize,
    weight: impl Fn(usize) -> f64,
    r01: f64,
    exclude: Option<usize>,
) -> Option<usize> {
    let w = |i: usize| if Some(i) == exclude { 0.0 } else { weight(i) };
    let total: f64 = (0..n).map(w).sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = r01 * total;
    let mut last = None;
    for i in 0..n {
        let wi = w(i);
        if wi <= 0.0 {
            continue;
        }
        if x < wi {
            return Some(i);
        }
        x -= wi;
        last = Some(i);
    }
    last // rounding left x at the very end
}

/// Least outstanding requests: the backend with the smallest `(outstanding(i) + 1) / weight(i)`
/// (so a backend in slow start counts as busier), ties broken by scanning from `start` so equal
/// backends take turns.
pub fn least_outstanding(
    n: usize,
    outstanding: impl Fn(usize) -> u64,
    weight: impl Fn(usize) -> f64,
    start: usize,
    exclude: Option<usize>,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if Some(i) == exclude {
            continue;
        }
        let load = (outstanding(i) as f64 + 1.0) / weight(i).max(SLOW_START_FLOOR);
        if best.is_none_or(|(_, b)| load < b) {
            best = Some((i, load));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, t: &str) -> bool {
        wildcard_match(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn wildcards() {
        assert!(m("/api/*", "/api/users"));
        assert!(m("/api/*", "/api/"));
        assert!(!m("/api/*", "/api"));
        assert!(m("*", ""));
        assert!(m("/img/*.png", "/img/a/b.png"));
        assert!(!m("/img/*.png", "/img/a/b.jpg"));
        assert!(m("/v?/x", "/v1/x"));
        assert!(!m("/v?/x", "/v10/x"));
        assert!(m("*a*b*c", "xxaxxbxxc"));
        assert!(!m("*a*b*c", "xxaxxcxxb"));
        assert!(m("/exact", "/exact"));
        assert!(!m("/exact", "/exact/"));
        assert!(m(
            "a*",
            "abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        ));
    }

    #[test]
    fn hosts_fold_case_and_ignore_the_port() {
        let c = Conditions::new(&["*.Example.com".into()], &[]);
        assert!(c.matches("api.example.COM", "/"));
        assert!(c.matches("api.example.com:8080", "/"));
        assert!(!c.matches("example.com", "/"));
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("a:b"), "a:b");
        assert_eq!(host_without_port("a"), "a");
    }

    #[test]
    fn paths_are_case_sensitive_and_any_pattern_may_match() {
        let c = Conditions::new(&[], &["/API/*".into(), "/health".into()]);
        assert!(c.matches("h", "/API/x"));
        assert!(!c.matches("h", "/api/x"));
        assert!(c.matches("h", "/health"));
    }

    #[test]
    fn first_rule_in_order_wins_and_the_default_catches_the_rest() {
        let rules = [
            Conditions::new(&["a.test".into()], &["/x/*".into()]),
            Conditions::new(&["a.test".into()], &[]),
            Conditions::new(&[], &[]),
        ];
        assert_eq!(first_match(&rules, "a.test", "/x/1"), Some(0));
        assert_eq!(first_match(&rules, "a.test", "/y"), Some(1));
        assert_eq!(first_match(&rules, "b.test", "/x/1"), Some(2));
        assert_eq!(first_match(&rules[..2], "b.test", "/"), None);
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let mut counts = [0u64; 3];
        for r in 0..6000u64 {
            counts[pick_weighted(&[1, 2, 3], r).unwrap_or(9)] += 1;
        }
        assert_eq!(counts, [1000, 2000, 3000]);
        assert_eq!(pick_weighted(&[0, 5], 3), Some(1));
        assert_eq!(pick_weighted(&[0, 0], 3), Some(1));
        assert_eq!(pick_weighted(&[], 3), None);
    }

    #[test]
    fn round_robin_cycles_and_steps_over_the_excluded() {
        let seq: Vec<_> = (0..6).map(|t| round_robin(3, t, None)).collect();
        assert_eq!(seq, [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
        assert_eq!(round_robin(3, 4, Some(1)), Some(2));
        assert_eq!(round_robin(1, 4, Some(0)), None);
        assert_eq!(round_robin(0, 4, None), None);
    }

    #[test]
    fn least_outstanding_prefers_the_idlest_and_rotates_ties() {
        let load = [3u64, 1, 1, 5];
        let pick = |start| least_outstanding(4, |i| load[i], |_| 1.0, start, None);
        assert_eq!(pick(0), Some(1));
        assert_eq!(pick(2), Some(2));
        assert_eq!(
            least_outstanding(4, |i| load[i], |_| 1.0, 0, Some(1)),
            Some(2)
        );
        // A backend in slow start at a tenth of its share counts ten times as busy.
        assert_eq!(
            least_outstanding(2, |_| 0, |i| if i == 0 { 0.1 } else { 1.0 }, 0, None),
            Some(1)
        );
        assert_eq!(least_outstanding(1, |_| 0, |_| 1.0, 0, Some(0)), None);
    }

    #[test]
    fn slow_start_ramps_linearly() {
        assert_eq!(slow_start_factor(100.0, None, 30), 1.0);
        assert_eq!(slow_start_factor(100.0, Some(90.0), 0), 1.0);
        assert_eq!(slow_start_factor(100.0, Some(85.0), 30), 0.5);
        assert_eq!(slow_start_factor(100.0, Some(70.0), 30), 1.0);
        assert_eq!(slow_start_factor(100.0, Some(100.0), 30), SLOW_START_FLOOR);
        assert_eq!(slow_start_factor(100.0, Some(200.0), 30), SLOW_START_FLOOR);
    }

    #[test]
    fn share_draws_follow_the_shares() {
        let shares = [0.25, 1.0];
        let mut counts = [0u32; 2];
        for k in 0..1000 {
            let r = (k as f64 + 0.5) / 1000.0;
            counts[pick_by_share(2, |i| shares[i], r, None).unwrap_or(9)] += 1;
        }
        assert_eq!(counts, [200, 800]);
        assert_eq!(pick_by_share(2, |i| shares[i], 0.1, Some(0)), Some(1));
        assert_eq!(pick_by_share(1, |_| 1.0, 0.1, Some(0)), None);
    }

    /// A naive recursive matcher to check the linear one against.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn wildcard_agrees_with_the_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            prop_assert_eq!(wildcard_match(p.as_bytes(), t.as_bytes(), false), reference(p.as_bytes(), t.as_bytes()));
        }

        #[test]
        fn weighted_never_picks_a_zero_weight(ws in proptest::collection::vec(0u32..5, 1..6), r in any::<u64>()) {
            let i = pick_weighted(&ws, r);
            prop_assert!(i.is_some());
            let i = i.unwrap_or_default();
            prop_assert!(i < ws.len());
            if ws.iter().any(|&w| w > 0) {
                prop_assert!(ws[i] > 0);
            }
        }

        #[test]
        fn round_robin_over_a_cycle_visits_each_once(n in 1usize..10, start in any::<u32>()) {
            let mut seen = vec![0; n];
            for t in 0..n as u64 {
                seen[round_robin(n, u64::from(start) + t, None).unwrap_or(0)] += 1;
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }

        #[test]
        fn pickers_never_return_the_excluded(n in 1usize..6, ex in 0usize..6, tick in any::<u64>(), r in 0.0f64..1.0) {
            let ex = Some(ex % n);
            for i in [round_robin(n, tick, ex), pick_by_share(n, |_| 0.5, r, ex), least_outstanding(n, |i| i as u64, |_| 1.0, tick as usize % n, ex)] {
                prop_assert!(i != ex);
                prop_assert_eq!(i.is_none(), n == 1);
            }
        }

        #[test]
        fn slow_start_stays_in_range(now in 0.0f64..1e6, since in 0.0f64..1e6, w in 0u32..1000) {
            let f = slow_start_factor(now, Some(since), w);
            prop_assert!((SLOW_START_FLOOR..=1.0).contains(&f));
        }
    }
}
