//! Retention: the values PutRetentionPolicy allows, and which events it has expired.

use crate::error::LogsError;

/// The retention periods (days) CloudWatch Logs allows.
pub const ALLOWED_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Checks a `retentionInDays`, with AWS's message for a value it does not allow.
pub fn check_days(days: i32) -> Result<u32, LogsError> {
    if ALLOWED_DAYS.contains(&days) {
        return Ok(days.unsigned_abs());
    }
    let allowed: Vec<String> = ALLOWED_DAYS.iter().map(i32::to_string).collect();
    Err(LogsError::invalid(format!(
        "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    )))
}

/// The oldest timestamp a group with this retention keeps at `now_ms`: events with an older
/// timestamp are expired. `None` (never expire) without a retention.
pub fn oldest_kept(now_ms: i64, days: Option<u32>) -> Option<i64> {
    days.map(|d| now_ms.saturating_sub(i64::from(d).saturating_mul(DAY_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_values_are_allowed() {
        assert_eq!(check_days(7).unwrap(), 7);
        assert_eq!(check_days(3653).unwrap(), 3653);
        for bad in [0, 2, -1, 8, 10000] {
            let e = check_days(bad).unwrap_err();
            assert!(
                e.message.contains("Member must satisfy enum value set"),
                "{bad}"
            );
        }
        assert_eq!(oldest_kept(10 * DAY_MS, Some(3)), Some(7 * DAY_MS));
        assert_eq!(oldest_kept(10 * DAY_MS, None), None);
    }
}
