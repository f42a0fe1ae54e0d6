//! ISO 8601 timestamps for `registeredAt`.
//!
//! What it is: a small, strict parser for the forms ECS accepts in
//! `registeredAt` conditions — `2018-06-18`, `2018-06-18T22:28:28`,
//! `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28+00:00` (offset also as
//! `+0000` or `+00`), fractional seconds allowed and truncated. What it is
//! not: a clock or a general date library; no time zones by name.
//!
//! Invariants: the result is whole seconds since 1970-01-01T00:00:00Z; dates
//! are validated (month 1-12, day within the month, leap years honoured).

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    if s.len() < n || !s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s[..n].parse().ok()?;
    Some((v, &s[n..]))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses a timestamp into seconds since the epoch; `None` if malformed.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let (y, r) = digits(s, 4)?;
    let r = r.strip_prefix('-')?;
    let (mo, r) = digits(r, 2)?;
    let r = r.strip_prefix('-')?;
    let (d, r) = digits(r, 2)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if r.is_empty() {
        return Some(days * 86_400);
    }
    let r = r.strip_prefix('T').or_else(|| r.strip_prefix(' '))?;
    let (h, r) = digits(r, 2)?;
    let r = r.strip_prefix(':')?;
    let (mi, mut r) = digits(r, 2)?;
    let mut sec = 0;
    if let Some(rest) = r.strip_prefix(':') {
        let (s2, rest) = digits(rest, 2)?;
        sec = s2;
        r = rest;
        if let Some(frac) = r.strip_prefix('.') {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            r = &frac[n..];
        }
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let offset = match r {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match r.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &r[1..];
            let (oh, r) = digits(r, 2)?;
            let r = r.strip_prefix(':').unwrap_or(r);
            let om = if r.is_empty() {
                0
            } else {
                let (om, rest) = digits(r, 2)?;
                if !rest.is_empty() {
                    return None;
                }
                om
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2018-06-18T22:28:28+00:00"),
            Some(1_529_360_908)
        );
        assert_eq!(parse_timestamp("2018-06-18T22:28:28Z"), Some(1_529_360_908));
        assert_eq!(
            parse_timestamp("2018-06-18T22:28:28.123Z"),
            Some(1_529_360_908)
        );
        assert_eq!(
            parse_timestamp("2018-06-18T23:28:28+01:00"),
            Some(1_529_360_908)
        );
        assert_eq!(
            parse_timestamp("2018-06-18T21:28:28-0100"),
            Some(1_529_360_908)
        );
        assert_eq!(parse_timestamp("2018-06-18T22:28"), Some(1_529_360_880));
        assert_eq!(parse_timestamp("2000-02-29"), Some(951_782_400));
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2018",
            "2018-13-01",
            "2019-02-29",
            "2018-06-18T25:00",
            "2018-06-18X",
            "2018-06-18T22:28:28+",
            "2018-06-18T22:28:28.Z",
            "yesterday",
            "2018-6-18",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }
}
