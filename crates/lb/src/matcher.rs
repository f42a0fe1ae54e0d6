//! A health check's success codes (`Matcher.HttpCode`): `"200"`, `"200-299"`, `"200,302"` or any
//! comma-separated mix of codes and ranges. Pure.

use std::fmt;
use std::str::FromStr;

/// Success codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    ranges: Vec<(u16, u16)>,
}

/// Why a matcher string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("the matcher is empty")]
    Empty,
    #[error("{0:?} is not an HTTP code")]
    NotACode(String),
    #[error("HTTP code {0} is outside 100-599")]
    OutOfRange(u16),
    #[error("range {0}-{1} ends before it starts")]
    Backwards(u16, u16),
}

impl Matcher {
    pub fn matches(&self, code: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl Default for Matcher {
    /// ALB's default for HTTP health checks: `200`.
    fn default() -> Self {
        Matcher {
            ranges: vec![(200, 200)],
        }
    }
}

fn code(s: &str) -> Result<u16, MatcherError> {
    let s = s.trim();
    let c: u16 = s
        .parse()
        .map_err(|_| MatcherError::NotACode(s.to_string()))?;
    if (100..=599).contains(&c) {
        Ok(c)
    } else {
        Err(MatcherError::OutOfRange(c))
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(MatcherError::Empty);
        }
        let ranges = s
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        Err(MatcherError::Backwards(lo, hi))
                    } else {
                        Ok((lo, hi))
                    }
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<_, _>>()?;
        Ok(Matcher { ranges })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Matcher, MatcherError> {
        s.parse()
    }

    #[test]
    fn forms() {
        let one = parse("200").unwrap_or_default();
        assert!(one.matches(200) && !one.matches(201));
        let range = parse("200-299").unwrap_or_default();
        assert!(
            range.matches(200) && range.matches(299) && !range.matches(300) && !range.matches(199)
        );
        let list = parse("200,302").unwrap_or_default();
        assert!(list.matches(302) && !list.matches(301));
        let mix = parse(" 200 , 300-302 ").unwrap_or_default();
        assert!(mix.matches(301) && mix.matches(200) && !mix.matches(303));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(""), Err(MatcherError::Empty));
        assert_eq!(parse("ok"), Err(MatcherError::NotACode("ok".into())));
        assert_eq!(parse("200,"), Err(MatcherError::NotACode("".into())));
        assert_eq!(parse("700"), Err(MatcherError::OutOfRange(700)));
        assert_eq!(parse("299-200"), Err(MatcherError::Backwards(299, 200)));
        assert_eq!(parse("200-"), Err(MatcherError::NotACode("".into())));
    }

    proptest! {
        #[test]
        fn display_round_trips(ranges in proptest::collection::vec((100u16..600, 0u16..50), 1..5)) {
            let m = Matcher { ranges: ranges.iter().map(|&(lo, d)| (lo, (lo + d).min(599))).collect() };
            prop_assert_eq!(parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn a_range_matches_exactly_its_codes(lo in 100u16..600, hi in 100u16..600, c in 0u16..700) {
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            let m = parse(&format!("{lo}-{hi}"));
            prop_assert!(m.is_ok());
            prop_assert_eq!(m.map(|m| m.matches(c)).unwrap_or(false), lo <= c && c <= hi);
        }
    }
}
