//! Pagination tokens.
//!
//! - GetLogEvents: `f/` or `b/` (forward, backward), then the position as 20 digits and a
//!   10-digit check of the stream it belongs to, all digits like AWS's. A token of another
//!   stream, or not one of ours, is `InvalidParameterException`.
//! - FilterLogEvents: each stream's position, with the group's generation (base64 of JSON).
//! - DescribeLogGroups/DescribeLogStreams: the last name returned, or an offset when sorted by
//!   event time (base64).
//!
//! Tokens are opaque to clients; they only compare them (the aws CLI stops paging
//! GetLogEvents when a token comes back unchanged).

use crate::error::LogsError;
use crate::query::{Direction, StreamRef};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

fn invalid() -> LogsError {
    LogsError::invalid("The specified nextToken is invalid.")
}

/// A 32-bit FNV-1a of the stream's identity: ties a token to its stream.
fn check(stream: &StreamRef) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let gen = stream.generation.to_string();
    for b in stream
        .group
        .bytes()
        .chain([0])
        .chain(gen.bytes())
        .chain([0])
        .chain(stream.stream.bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A GetLogEvents token.
pub fn encode_read(stream: &StreamRef, direction: Direction, position: u64) -> String {
    let d = match direction {
        Direction::Forward => 'f',
        Direction::Backward => 'b',
    };
    format!("{d}/{position:020}{:010}", check(stream))
}

/// Reads a GetLogEvents token of `stream`.
pub fn decode_read(stream: &StreamRef, token: &str) -> Result<(Direction, u64), LogsError> {
    let (d, rest) = token.split_once('/').ok_or_else(invalid)?;
    let direction = match d {
        "f" => Direction::Forward,
        "b" => Direction::Backward,
        _ => return Err(invalid()),
    };
    if rest.len() != 30 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let position: u64 = rest[..20].parse().map_err(|_| invalid())?;
    let sum: u64 = rest[20..].parse().map_err(|_| invalid())?;
    if sum != u64::from(check(stream)) {
        return Err(invalid());
    }
    Ok((direction, position))
}

#[derive(Serialize, Deserialize)]
struct FilterToken {
    g: String,
    n: u64,
    p: Vec<(String, u64)>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(token: &str) -> Result<Vec<u8>, LogsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())
}

/// A FilterLogEvents token: each stream's position in the group `group` of `generation`.
pub fn encode_filter(group: &str, generation: u64, positions: &[(String, u64)]) -> String {
    let t = FilterToken {
        g: group.to_string(),
        n: generation,
        p: positions.to_vec(),
    };
    b64(&serde_json::to_vec(&t).unwrap_or_default())
}

/// Reads a FilterLogEvents token of that group.
pub fn decode_filter(
    group: &str,
    generation: u64,
    token: &str,
) -> Result<Vec<(String, u64)>, LogsError> {
    let t: FilterToken = serde_json::from_slice(&unb64(token)?).map_err(|_| invalid())?;
    if t.g != group || t.n != generation {
        return Err(invalid());
    }
    Ok(t.p)
}

/// A Describe* token: where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListToken {
    /// After this name (pages in name order).
    After(String),
    /// Before this name (pages in descending name order).
    Before(String),
    /// Skip this many (pages in event-time order).
    Offset(usize),
}

/// Encodes a Describe* token.
pub fn encode_list(t: &ListToken) -> String {
    b64(&serde_json::to_vec(t).unwrap_or_default())
}

/// Reads a Describe* token.
pub fn decode_list(token: &str) -> Result<ListToken, LogsError> {
    serde_json::from_slice(&unb64(token)?).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(name: &str) -> StreamRef {
        StreamRef {
            group: "g".into(),
            generation: 7,
            stream: name.into(),
        }
    }

    #[test]
    fn read_tokens_are_digits_and_bound_to_their_stream() {
        let t = encode_read(&s("a"), Direction::Forward, 42);
        assert!(t.starts_with("f/"));
        assert!(t[2..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(decode_read(&s("a"), &t).unwrap(), (Direction::Forward, 42));
        assert!(decode_read(&s("b"), &t).is_err());
        for bad in ["", "f/", "x/000", "f/12", "b/abc"] {
            assert!(decode_read(&s("a"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_and_list_tokens_round_trip() {
        let p = vec![("a".to_string(), 3), ("b/c".to_string(), 0)];
        let t = encode_filter("g", 7, &p);
        assert_eq!(decode_filter("g", 7, &t).unwrap(), p);
        assert!(decode_filter("g", 8, &t).is_err());
        assert!(decode_filter("h", 7, &t).is_err());
        assert!(decode_filter("g", 7, "%%%").is_err());
        let l = ListToken::After("/ecs/x".into());
        assert_eq!(decode_list(&encode_list(&l)).unwrap(), l);
        assert!(decode_list("nope!").is_err());
    }

    proptest! {
        #[test]
        fn any_position_round_trips(pos in any::<u64>(), back in any::<bool>(), name in "[a-z/]{1,12}") {
            let d = if back { Direction::Backward } else { Direction::Forward };
            let t = encode_read(&s(&name), d, pos);
            prop_assert_eq!(decode_read(&s(&name), &t).unwrap(), (d, pos));
        }
    }
}
