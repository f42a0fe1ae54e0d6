//! What a reader asks the owner of log streams, and what the owner answers.
//!
//! The events of a stream live where they were produced: a container's on its host (kept by
//! that host's agent), an API caller's (PutLogEvents) on the server replica that owns the
//! stream. Every read and write of events is a [`LogRequest`] to the owner, answered by a
//! [`LogResponse`]; the owner runs it on its segment store (`flotilla-logstore`). The server
//! asks an agent through its session (`flotilla_protocol::ServerMessage::Log`) and another
//! replica through Flotilla's own `FlotillaAdmin.LogQuery` operation.
//!
//! Positions are sequence numbers: every event of a stream gets the next one when it is
//! stored, so a position names "everything before this event" and pages never repeat or skip
//! an event, whatever the timestamps.
//!
//! [`merge_filter`] is how FilterLogEvents combines the streams' answers into one page.

use serde::{Deserialize, Serialize};

/// One log stream, as the owners know it: its group, the group's generation (the store
/// revision that created the group, so a group deleted and created again is a new one), and
/// its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamRef {
    /// The log group name.
    pub group: String,
    /// The log group's generation.
    pub generation: u64,
    /// The log stream name.
    pub stream: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its position in the stream.
    pub seq: u64,
    /// When it happened (epoch ms).
    pub timestamp: i64,
    /// When it was stored (epoch ms).
    pub ingestion_time: i64,
    /// The message.
    pub message: String,
}

impl Event {
    /// Its size as Logs counts it (message bytes plus 26).
    pub fn size(&self) -> usize {
        self.message.len() + crate::batch::EVENT_OVERHEAD
    }
}

/// A log group as the owners of its streams need it: its identity and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The name.
    pub name: String,
    /// The store revision that created it (a group deleted and created again is another one).
    pub generation: u64,
    /// Days its events are kept (`None`: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// An event to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// When it happened (epoch ms).
    pub timestamp: i64,
    /// The message.
    pub message: String,
}

/// Which way a read goes from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// The events at and after the position, oldest first.
    Forward,
    /// The events before the position (the newest of them), oldest first.
    Backward,
}

/// The largest page of events, in bytes (messages plus 26 per event).
pub const MAX_PAGE_BYTES: usize = 1_048_576;

/// A position meaning "the end of the stream" (a backward read from the newest event).
pub const END: u64 = u64::MAX;

/// GetLogEvents on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadQuery {
    /// The stream.
    pub stream: StreamRef,
    /// Which way.
    pub direction: Direction,
    /// Where from ([`END`] for the end).
    pub from: u64,
    /// Only events at or after this time (epoch ms).
    pub start_time: Option<i64>,
    /// Only events before this time (epoch ms).
    pub end_time: Option<i64>,
    /// At most this many events.
    pub limit: usize,
}

impl ReadQuery {
    /// Whether an event's timestamp is in the query's time range.
    pub fn in_range(&self, ts: i64) -> bool {
        in_range(self.start_time, self.end_time, ts)
    }
}

/// Whether `ts` is in `[start, end)`.
pub fn in_range(start: Option<i64>, end: Option<i64>, ts: i64) -> bool {
    start.is_none_or(|s| ts >= s) && end.is_none_or(|e| ts < e)
}

/// The answer to a [`ReadQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAnswer {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// Forward: the position after the last event examined; backward: the position of the
    /// first event examined (every event between it and `from` was examined).
    pub boundary: u64,
    /// The stream's end (the position the next event will get).
    pub end: u64,
}

impl ReadAnswer {
    /// The next forward and backward positions, as GetLogEvents' tokens carry them: the same
    /// position back when there is nothing more in that direction.
    pub fn next_positions(&self, q: &ReadQuery) -> (u64, u64) {
        let from = q.from.min(self.end);
        match (q.direction, self.events.first(), self.events.last()) {
            (Direction::Forward, Some(first), Some(last)) => (last.seq + 1, first.seq),
            (Direction::Forward, _, _) => (self.boundary.max(from), from),
            (Direction::Backward, Some(first), Some(last)) => (last.seq + 1, first.seq),
            (Direction::Backward, _, _) => (from, self.boundary.min(from)),
        }
    }
}

/// FilterLogEvents on some streams of one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterQuery {
    /// Each stream and the position to scan from.
    pub streams: Vec<(StreamRef, u64)>,
    /// Only events at or after this time (epoch ms).
    pub start_time: Option<i64>,
    /// Only events before this time (epoch ms).
    pub end_time: Option<i64>,
    /// The filter pattern (checked by the server before it asks; see [`crate::filter`]).
    pub pattern: String,
    /// At most this many matches per stream.
    pub limit: usize,
    /// At most this many bytes examined per stream in one request.
    pub scan_bytes: usize,
}

/// One stream's part of a [`FilterAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamScan {
    /// The stream's name.
    pub stream: String,
    /// The matches, in stream order.
    pub events: Vec<Event>,
    /// Every event before this position was examined.
    pub scanned_to: u64,
    /// The scan reached the stream's end.
    pub exhausted: bool,
}

/// The answer to a [`FilterQuery`]: one scan per stream asked, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterAnswer {
    /// The scans.
    pub streams: Vec<StreamScan>,
}

/// What an owner knows of a stream, for DescribeLogStreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStats {
    /// The oldest kept event's timestamp.
    pub first_event_timestamp: Option<i64>,
    /// The newest event's timestamp.
    pub last_event_timestamp: Option<i64>,
    /// When the last event was stored.
    pub last_ingestion_time: Option<i64>,
    /// Bytes on disk.
    pub stored_bytes: u64,
}

/// A request to the owner of streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum LogRequest {
    /// GetLogEvents.
    Read(ReadQuery),
    /// FilterLogEvents.
    Filter(FilterQuery),
    /// DescribeLogStreams' event times.
    Stats {
        /// The streams.
        streams: Vec<StreamRef>,
    },
    /// PutLogEvents (already checked): store these events.
    Append {
        /// The stream.
        stream: StreamRef,
        /// The events, oldest first.
        events: Vec<NewEvent>,
    },
}

/// An owner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum LogResponse {
    /// To [`LogRequest::Read`].
    Read(ReadAnswer),
    /// To [`LogRequest::Filter`].
    Filter(FilterAnswer),
    /// To [`LogRequest::Stats`]: one per stream asked (`None` for a stream with no data).
    Stats {
        /// The stats.
        stats: Vec<Option<StreamStats>>,
    },
    /// To [`LogRequest::Append`].
    Appended,
}

/// One event of a merged FilterLogEvents page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The stream it came from.
    pub stream: String,
    /// The event.
    pub event: Event,
}

/// A merged page: the events, each stream's next position, and whether every stream is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPage {
    /// The events, by timestamp (ties by stream, then position).
    pub events: Vec<Matched>,
    /// Where each stream continues.
    pub positions: Vec<(String, u64)>,
    /// Every stream was scanned to its end and every match returned.
    pub done: bool,
}

/// Merges streams' scans into one page of at most `limit` events (and [`MAX_PAGE_BYTES`]):
/// repeatedly the stream whose next match is the oldest gives it, so each stream gives a
/// prefix of its matches; a stream whose matches were all taken continues where its scan
/// stopped, another after its last event taken. Paging with the positions returns every match
/// exactly once.
pub fn merge_filter(scans: Vec<StreamScan>, limit: usize) -> MergedPage {
    let mut heads: Vec<usize> = vec![0; scans.len()];
    let mut events = Vec::new();
    let mut bytes = 0usize;
    while events.len() < limit {
        let next = scans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.events.get(heads[i]).map(|e| (i, e)))
            .min_by(|(i, a), (j, b)| {
                (a.timestamp, &scans[*i].stream, a.seq).cmp(&(
                    b.timestamp,
                    &scans[*j].stream,
                    b.seq,
                ))
            });
        let Some((i, e)) = next else { break };
        if bytes + e.size() > MAX_PAGE_BYTES && !events.is_empty() {
            break;
        }
        bytes += e.size();
        events.push(Matched {
            stream: scans[i].stream.clone(),
            event: e.clone(),
        });
        heads[i] += 1;
    }
    let mut done = true;
    let positions = scans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let all_taken = heads[i] == s.events.len();
            done &= all_taken && s.exhausted;
            let pos = if all_taken {
                s.scanned_to
            } else {
                s.events[heads[i]].seq
            };
            (s.stream.clone(), pos)
        })
        .collect();
    MergedPage {
        events,
        positions,
        done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(seq: u64, ts: i64) -> Event {
        Event {
            seq,
            timestamp: ts,
            ingestion_time: ts,
            message: format!("m{seq}"),
        }
    }

    #[test]
    fn read_positions_give_the_same_token_back_at_the_end() {
        let q = ReadQuery {
            stream: StreamRef {
                group: "g".into(),
                generation: 1,
                stream: "s".into(),
            },
            direction: Direction::Forward,
            from: 5,
            start_time: None,
            end_time: None,
            limit: 10,
        };
        let empty = ReadAnswer {
            events: vec![],
            boundary: 5,
            end: 5,
        };
        assert_eq!(empty.next_positions(&q), (5, 5));
        let some = ReadAnswer {
            events: vec![ev(5, 1), ev(6, 2)],
            boundary: 7,
            end: 7,
        };
        assert_eq!(some.next_positions(&q), (7, 5));
        let back = ReadQuery {
            direction: Direction::Backward,
            from: END,
            ..q.clone()
        };
        assert_eq!(some.next_positions(&back), (7, 5));
        let none_before = ReadAnswer {
            events: vec![],
            boundary: 0,
            end: 0,
        };
        assert_eq!(none_before.next_positions(&back), (0, 0));
    }

    /// A model of one owner: streams of events (seq = index); scanning returns at most
    /// `limit` matches from the position, examining at most `budget` events.
    fn scan(
        stream: &[(i64, bool)],
        name: &str,
        from: u64,
        limit: usize,
        budget: usize,
    ) -> StreamScan {
        let mut events = Vec::new();
        let mut pos = from as usize;
        let mut examined = 0;
        while pos < stream.len() && events.len() < limit && examined < budget {
            let (ts, matches) = stream[pos];
            if matches {
                events.push(ev(pos as u64, ts));
            }
            pos += 1;
            examined += 1;
        }
        StreamScan {
            stream: name.to_string(),
            events,
            scanned_to: pos as u64,
            exhausted: pos >= stream.len(),
        }
    }

    proptest! {
        #[test]
        fn paging_returns_every_match_exactly_once(
            streams in proptest::collection::vec(proptest::collection::vec((0i64..50, any::<bool>()), 0..30), 1..4),
            limit in 1usize..6,
            budget in 1usize..8,
        ) {
            let names: Vec<String> = (0..streams.len()).map(|i| format!("s{i}")).collect();
            let mut positions: Vec<u64> = vec![0; streams.len()];
            let mut seen = Vec::new();
            for _ in 0..1000 {
                let scans = streams.iter().enumerate()
                    .map(|(i, s)| scan(s, &names[i], positions[i], limit, budget))
                    .collect();
                let page = merge_filter(scans, limit);
                prop_assert!(page.events.len() <= limit);
                for m in &page.events {
                    seen.push((m.stream.clone(), m.event.seq));
                }
                for (i, (name, pos)) in page.positions.iter().enumerate() {
                    prop_assert_eq!(name, &names[i]);
                    prop_assert!(*pos >= positions[i]);
                    positions[i] = *pos;
                }
                if page.done {
                    break;
                }
            }
            let mut want = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                for (seq, (_, m)) in s.iter().enumerate() {
                    if *m {
                        want.push((names[i].clone(), seq as u64));
                    }
                }
            }
            let mut got = seen.clone();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
