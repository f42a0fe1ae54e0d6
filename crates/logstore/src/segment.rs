//! One segment file: records appended one after the other, each
//! `[u32 length][u32 crc32 of the payload][payload]` (little-endian), the payload being
//! `u64 seq | i64 timestamp | i64 ingestion time | u8 has-cursor [| i64 cursor ns | u32 cursor n] | message`.
//!
//! A crash can leave a torn last record: [`scan`] stops at the first record whose length or
//! checksum is wrong, and the store truncates the file there.

use crate::Cursor;
use flotilla_logs::query::Event;

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event.
    pub event: Event,
    /// Where in the producer's output the event ends (awslogs capture), if known.
    pub cursor: Option<Cursor>,
}

const HEADER: usize = 8;
const FIXED: usize = 8 + 8 + 8 + 1;

/// Encodes one record.
pub fn encode(event: &Event, cursor: Option<Cursor>, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(FIXED + 12 + event.message.len());
    payload.extend_from_slice(&event.seq.to_le_bytes());
    payload.extend_from_slice(&event.timestamp.to_le_bytes());
    payload.extend_from_slice(&event.ingestion_time.to_le_bytes());
    match cursor {
        Some(c) => {
            payload.push(1);
            payload.extend_from_slice(&c.ns.to_le_bytes());
            payload.extend_from_slice(&c.n.to_le_bytes());
        }
        None => payload.push(0),
    }
    payload.extend_from_slice(event.message.as_bytes());
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn decode(payload: &[u8]) -> Option<Record> {
    let seq = u64_at(payload, 0)?;
    let timestamp = i64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    let ingestion_time = i64::from_le_bytes(payload.get(16..24)?.try_into().ok()?);
    let (cursor, msg_at) = match payload.get(24)? {
        0 => (None, FIXED),
        1 => (
            Some(Cursor {
                ns: i64::from_le_bytes(payload.get(25..33)?.try_into().ok()?),
                n: u32_at(payload, 33)?,
            }),
            FIXED + 12,
        ),
        _ => return None,
    };
    let message = String::from_utf8(payload.get(msg_at..)?.to_vec()).ok()?;
    Some(Record {
        event: Event {
            seq,
            timestamp,
            ingestion_time,
            message,
        },
        cursor,
    })
}

/// Decodes the records of a segment's bytes, in order, calling `each` with every record and
/// its end offset; stops early when `each` returns false. Returns the end of the last good
/// record (the length to truncate a torn file to).
pub fn scan(bytes: &[u8], mut each: impl FnMut(Record, usize) -> bool) -> usize {
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let (Some(len), Some(crc)) = (u32_at(bytes, at), u32_at(bytes, at + 4)) else {
            break;
        };
        let start = at + HEADER;
        let Some(end) = start.checked_add(len as usize) else {
            break;
        };
        let Some(payload) = bytes.get(start..end) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(rec) = decode(payload) else { break };
        at = end;
        if !each(rec, at) {
            return at;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, msg: &str) -> Event {
        Event {
            seq,
            timestamp: 10 + seq as i64,
            ingestion_time: 20,
            message: msg.into(),
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let mut b = Vec::new();
        encode(&ev(0, "hello"), None, &mut b);
        let cursor = Some(Cursor { ns: 123, n: 2 });
        encode(&ev(1, "wörld"), cursor, &mut b);
        let good = b.len();
        encode(&ev(2, "torn"), None, &mut b);
        b.truncate(b.len() - 2);
        let mut got = Vec::new();
        let end = scan(&b, |r, _| {
            got.push(r);
            true
        });
        assert_eq!(end, good);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].event, ev(1, "wörld"));
        assert_eq!(got[1].cursor, cursor);
        // A flipped byte fails the checksum.
        let mut bad = b[..good].to_vec();
        bad[good - 1] ^= 0xff;
        let mut n = 0;
        scan(&bad, |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
    }
}
