//! PutLogEvents' batch rules, as the Logs API documents them:
//! - at most 1,048,576 bytes (each message in UTF-8 plus 26 bytes per event), each event at
//!   most 1 MiB that way; at most 10,000 events (the model's limit);
//! - in chronological order, else the request fails;
//! - events more than 2 hours in the future, more than 14 days old, or older than the group's
//!   retention are rejected (reported in `rejectedLogEventsInfo`) while the rest is stored;
//! - the valid events may span at most 24 hours, else the request fails.

use crate::error::LogsError;
use crate::shapes::InputLogEvent;

/// The largest batch, in bytes.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// The bytes counted for each event beside its message.
pub const EVENT_OVERHEAD: usize = 26;
/// The largest event (message plus overhead), in bytes.
pub const MAX_EVENT_BYTES: usize = 1_048_576;
/// How far in the future an event may be, in milliseconds.
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;
/// How old an event may be, in milliseconds.
pub const MAX_AGE_MS: i64 = 14 * crate::retention::DAY_MS;
/// How long the valid events of one batch may span, in milliseconds.
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;

/// The events PutLogEvents rejected, as `rejectedLogEventsInfo` reports them (each member only
/// when there are such events; the generated shape would always send 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// The index of the first event too far in the future (the rest after it too).
    pub too_new_start: Option<usize>,
    /// Events before this index are more than 14 days old.
    pub too_old_end: Option<usize>,
    /// Events before this index are older than the group's retention.
    pub expired_end: Option<usize>,
}

impl Rejected {
    /// The wire form of `rejectedLogEventsInfo`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<usize>| {
            if let Some(v) = v {
                m.insert(k.to_string(), serde_json::json!(v));
            }
        };
        put("tooNewLogEventStartIndex", self.too_new_start);
        put("tooOldLogEventEndIndex", self.too_old_end);
        put("expiredLogEventEndIndex", self.expired_end);
        serde_json::Value::Object(m)
    }
}

/// What to store of a batch: the events `accepted` (a range of indices), and what was
/// rejected (`None` when nothing was).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The indices of the events to store.
    pub accepted: std::ops::Range<usize>,
    /// The rejections, as PutLogEvents reports them.
    pub rejected: Option<Rejected>,
}

/// Checks a batch at `now_ms` for a group keeping events since `oldest_kept` (its retention).
pub fn check(
    events: &[InputLogEvent],
    now_ms: i64,
    oldest_kept: Option<i64>,
) -> Result<Accepted, LogsError> {
    let mut total = 0usize;
    for e in events {
        let size = e.message.len() + EVENT_OVERHEAD;
        if size > MAX_EVENT_BYTES {
            return Err(LogsError::invalid(format!(
                "Log event too large: {size} bytes exceeds limit of {MAX_EVENT_BYTES}"
            )));
        }
        total += size;
    }
    if total > MAX_BATCH_BYTES {
        return Err(LogsError::invalid(format!(
            "Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
        return Err(LogsError::invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    let too_old = now_ms.saturating_sub(MAX_AGE_MS);
    let expired = oldest_kept.unwrap_or(i64::MIN);
    let too_old_end = events.iter().take_while(|e| e.timestamp < too_old).count();
    let expired_end = events.iter().take_while(|e| e.timestamp < expired).count();
    let too_new_start = events
        .iter()
        .position(|e| e.timestamp > now_ms.saturating_add(MAX_FUTURE_MS))
        .unwrap_or(events.len());
    let start = too_old_end.max(expired_end).min(too_new_start);
    let accepted = start..too_new_start;
    if let (Some(first), Some(last)) = (
        events.get(accepted.start),
        events.get(accepted.end.wrapping_sub(1)),
    ) {
        if !accepted.is_empty() && last.timestamp - first.timestamp > MAX_SPAN_MS {
            return Err(LogsError::invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
    }
    let rejected = Rejected {
        too_new_start: (too_new_start < events.len()).then_some(too_new_start),
        too_old_end: (too_old_end > 0).then_some(too_old_end),
        expired_end: (expired_end > 0).then_some(expired_end),
    };
    let nothing_rejected = rejected == Rejected::default();
    Ok(Accepted {
        accepted,
        rejected: (!nothing_rejected).then_some(rejected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::DAY_MS;

    fn ev(ts: i64, m: &str) -> InputLogEvent {
        InputLogEvent {
            timestamp: ts,
            message: m.to_string(),
        }
    }

    const NOW: i64 = 100 * DAY_MS;

    #[test]
    fn a_good_batch_is_accepted_whole() {
        let a = check(&[ev(NOW - 5, "a"), ev(NOW, "b")], NOW, None).unwrap();
        assert_eq!(a.accepted, 0..2);
        assert_eq!(a.rejected, None);
    }

    #[test]
    fn out_of_order_and_too_large_batches_fail() {
        assert!(check(&[ev(NOW, "a"), ev(NOW - 1, "b")], NOW, None)
            .unwrap_err()
            .message
            .contains("chronological order"));
        let big = "x".repeat(600_000);
        assert!(check(&[ev(NOW, &big), ev(NOW, &big)], NOW, None)
            .unwrap_err()
            .message
            .starts_with("Upload too large"));
        assert!(check(&[ev(NOW - DAY_MS - 1, "a"), ev(NOW, "b")], NOW, None)
            .unwrap_err()
            .message
            .contains("24 hours"));
    }

    #[test]
    fn old_expired_and_future_events_are_rejected_and_the_rest_kept() {
        let events = [
            ev(NOW - 15 * DAY_MS, "too old"),
            ev(NOW - 3 * DAY_MS, "expired by a 1-day retention"),
            ev(NOW - 10, "kept"),
            ev(NOW, "kept"),
            ev(NOW + 3 * 3600 * 1000, "too new"),
        ];
        let a = check(&events, NOW, Some(NOW - DAY_MS)).unwrap();
        assert_eq!(a.accepted, 2..4);
        let r = a.rejected.unwrap();
        assert_eq!(r.too_old_end, Some(1));
        assert_eq!(r.expired_end, Some(2));
        assert_eq!(r.too_new_start, Some(4));
        assert_eq!(
            r.to_json(),
            serde_json::json!({"tooNewLogEventStartIndex": 4, "tooOldLogEventEndIndex": 1, "expiredLogEventEndIndex": 2})
        );
    }
}
