//! The token bucket: a bucket holds at most `burst` tokens, refills at `rate` tokens a second,
//! and each admitted request takes one token. So over any interval of `t` seconds at most
//! `burst + rate * t` requests are admitted, and a caller that keeps to `rate` is never refused.
//!
//! The clock is an argument (seconds, as the API's clock reads them): nothing here reads the
//! time, so every rule is a unit or property test. A clock that goes back adds no token.

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The most requests admitted at once (the bucket's capacity).
    pub burst: u32,
    /// The sustained rate: tokens added a second.
    pub rate: f64,
}

/// The largest burst and rate a limit may have.
pub const MAX_LIMIT: u32 = 1_000_000;

impl Limit {
    /// A limit, checked: `burst` at least 1, `rate` above 0, both at most [`MAX_LIMIT`].
    pub fn new(burst: u32, rate: f64) -> Result<Limit, String> {
        if !(1..=MAX_LIMIT).contains(&burst) {
            return Err(format!(
                "the burst must be between 1 and {MAX_LIMIT}, got {burst}"
            ));
        }
        if !(rate.is_finite() && rate > 0.0 && rate <= f64::from(MAX_LIMIT)) {
            return Err(format!(
                "the rate must be above 0 and at most {MAX_LIMIT} a second, got {rate}"
            ));
        }
        Ok(Limit { burst, rate })
    }

    /// How long an empty bucket takes to fill, seconds.
    pub fn refill_seconds(&self) -> f64 {
        f64::from(self.burst) / self.rate
    }
}

/// What a bucket says of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Admitted: it took a token.
    Admit,
    /// Refused: no token; one is there after `retry_after` seconds.
    Throttle {
        /// Seconds until the next token.
        retry_after: f64,
    },
}

/// One bucket's state: the tokens it held at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    at: f64,
}

impl TokenBucket {
    /// A full bucket at `now` (a caller's first request finds its whole burst).
    pub fn full(limit: Limit, now: f64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(limit.burst),
            at: now,
        }
    }

    /// The tokens at `now` (never more than the burst; a clock gone back adds nothing).
    pub fn tokens(&self, limit: Limit, now: f64) -> f64 {
        let elapsed = (now - self.at).max(0.0);
        (self.tokens + elapsed * limit.rate).min(f64::from(limit.burst))
    }

    /// Takes a token for one request at `now`, or says how long until there is one.
    pub fn take(&mut self, limit: Limit, now: f64) -> Decision {
        let tokens = self.tokens(limit, now);
        self.at = self.at.max(now);
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            Decision::Admit
        } else {
            self.tokens = tokens;
            Decision::Throttle {
                retry_after: (1.0 - tokens) / limit.rate,
            }
        }
    }

    /// Whether the bucket is full at `now`: it is then the same as a new one, so forgetting
    /// it changes nothing for its caller.
    pub fn is_full(&self, limit: Limit, now: f64) -> bool {
        self.tokens(limit, now) >= f64::from(limit.burst)
    }

    /// When it was last used (or created).
    pub fn last_used(&self) -> f64 {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit(burst: u32, rate: f64) -> Limit {
        Limit::new(burst, rate).unwrap()
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_refuses() {
        let l = limit(50, 20.0);
        let mut b = TokenBucket::full(l, 100.0);
        for _ in 0..50 {
            assert_eq!(b.take(l, 100.0), Decision::Admit);
        }
        match b.take(l, 100.0) {
            Decision::Throttle { retry_after } => assert!((retry_after - 0.05).abs() < 1e-9),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn it_refills_at_the_rate_up_to_the_burst() {
        // ECS's example: 50 tokens, 20 a second: empty, it is full again after 2.5 s.
        let l = limit(50, 20.0);
        let mut b = TokenBucket::full(l, 0.0);
        for _ in 0..50 {
            b.take(l, 0.0);
        }
        assert!((b.tokens(l, 1.0) - 20.0).abs() < 1e-9);
        assert!(!b.is_full(l, 2.4));
        assert!(b.is_full(l, 2.5));
        assert_eq!(b.tokens(l, 1000.0), 50.0);
    }

    #[test]
    fn a_clock_gone_back_adds_no_token() {
        let l = limit(1, 1.0);
        let mut b = TokenBucket::full(l, 10.0);
        assert_eq!(b.take(l, 10.0), Decision::Admit);
        assert!(matches!(b.take(l, 5.0), Decision::Throttle { .. }));
        // Nor does returning to the time it had reached.
        assert!(matches!(b.take(l, 10.5), Decision::Throttle { .. }));
        assert_eq!(b.take(l, 11.0), Decision::Admit);
    }

    #[test]
    fn limits_are_checked() {
        assert!(Limit::new(0, 1.0).is_err());
        assert!(Limit::new(1, 0.0).is_err());
        assert!(Limit::new(1, -1.0).is_err());
        assert!(Limit::new(1, f64::NAN).is_err());
        assert!(Limit::new(1, f64::INFINITY).is_err());
        assert!(Limit::new(MAX_LIMIT + 1, 1.0).is_err());
        assert!(Limit::new(1, 0.001).is_ok());
    }

    fn arrivals() -> impl Strategy<Value = Vec<f64>> {
        // Gaps between requests, from simultaneous to a few seconds apart.
        proptest::collection::vec(prop_oneof![Just(0.0), 0.0..0.01f64, 0.0..3.0f64], 1..400)
            .prop_map(|gaps| {
                let mut t = 1000.0;
                gaps.into_iter()
                    .map(|g| {
                        t += g;
                        t
                    })
                    .collect()
            })
    }

    proptest! {
        /// Over every interval between two requests, at most burst + rate * (its length)
        /// requests are admitted.
        #[test]
        fn never_more_than_burst_plus_rate_times_elapsed(
            burst in 1u32..60,
            rate in 0.1f64..50.0,
            times in arrivals(),
        ) {
            let l = limit(burst, rate);
            let mut b = TokenBucket::full(l, times[0]);
            let admitted: Vec<f64> = times
                .iter()
                .copied()
                .filter(|&t| b.take(l, t) == Decision::Admit)
                .collect();
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let count = (j - i + 1) as f64;
                    let bound = f64::from(burst) + rate * (admitted[j] - admitted[i]);
                    prop_assert!(count <= bound + 1e-6,
                        "{count} admitted in {}s (burst {burst}, rate {rate})",
                        admitted[j] - admitted[i]);
                }
            }
        }

        /// A caller that keeps to the rate is never refused.
        #[test]
        fn a_caller_within_the_rate_is_never_refused(
            burst in 1u32..60,
            rate in 0.1f64..50.0,
            n in 1usize..300,
        ) {
            let l = limit(burst, rate);
            let start = 50.0;
            let mut b = TokenBucket::full(l, start);
            for i in 0..n {
                let t = start + i as f64 / rate * (1.0 + 1e-9);
                prop_assert_eq!(b.take(l, t), Decision::Admit, "request {} at {}", i, t);
            }
        }

        /// A refusal's retry_after is right: after it, the request is admitted.
        #[test]
        fn retry_after_is_when_a_token_is_there(
            burst in 1u32..20,
            rate in 0.1f64..50.0,
        ) {
            let l = limit(burst, rate);
            let mut b = TokenBucket::full(l, 0.0);
            for _ in 0..burst {
                prop_assert_eq!(b.take(l, 0.0), Decision::Admit);
            }
            let Decision::Throttle { retry_after } = b.take(l, 0.0) else {
                return Err(TestCaseError::fail("not throttled"));
            };
            prop_assert!(retry_after > 0.0);
            prop_assert_eq!(b.take(l, retry_after * (1.0 + 1e-9)), Decision::Admit);
        }
    }
}
