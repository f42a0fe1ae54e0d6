//! Lines into events, as Docker's `awslogs` driver makes them.
//!
//! Without a start pattern every line is one event. With `awslogs-datetime-format` (a
//! strftime format, converted to a regular expression as Docker converts it) or
//! `awslogs-multiline-pattern` (a regular expression), a line matching the pattern at its
//! start begins an event and every other line is appended to the current one (joined with
//! `\n`); the pending event is complete when the next one starts, when it has waited
//! [`FLUSH_AFTER_MS`] with no new line, when it would exceed [`MAX_EVENT_BYTES`], or when the
//! output ends. [`Joiner`] is that state machine; the caller passes every time in.
//!
//! An event carries the position of its last line (the caller's cursor), so a reader that
//! stores only complete events and resumes after the last stored position neither loses nor
//! repeats a line.

use regex::Regex;

/// How long a pending multi-line event waits for more lines (Docker's default flush
/// interval).
pub const FLUSH_AFTER_MS: i64 = 5_000;
/// The largest event message, in bytes (the Logs limit less the 26 bytes of overhead).
pub const MAX_EVENT_BYTES: usize = 1_048_576 - 26;

/// The pattern of a line that starts an event.
#[derive(Debug, Clone)]
pub struct StartPattern(Regex);

impl PartialEq for StartPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl StartPattern {
    /// Whether a line starts an event.
    pub fn starts(&self, line: &str) -> bool {
        self.0.is_match(line)
    }

    /// The regular expression.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Docker's conversion of strftime directives.
fn directive(c: char) -> Option<&'static str> {
    Some(match c {
        'a' => "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)",
        'A' => "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
        'w' => "[0-6]",
        'd' => "(?:0[1-9]|[1,2][0-9]|3[0,1])",
        'b' => "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
        'B' => "(?:January|February|March|April|May|June|July|August|September|October|November|December)",
        'm' => "(?:0[1-9]|1[0-2])",
        'Y' => r"\d{4}",
        'y' => r"\d{2}",
        'H' => "(?:[0,1][0-9]|2[0-3])",
        'I' => "(?:0[0-9]|1[0-2])",
        'p' => "[A,P]M",
        'M' => "[0-5][0-9]",
        'S' => "[0-5][0-9]",
        'f' => r"\d{6}",
        'z' => r"[+-]\d{4}",
        'Z' => "[A-Z]{1,4}T",
        'j' => "(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])",
        'L' => r"\.\d{3}",
        _ => return None,
    })
}

/// `awslogs-datetime-format`: the strftime format, converted, anchored at the line's start.
pub fn from_datetime_format(format: &str) -> Result<StartPattern, String> {
    let mut re = String::from("^");
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => re.push('%'),
                Some(d) => match directive(d) {
                    Some(r) => re.push_str(r),
                    None => {
                        return Err(format!(
                            "awslogs-datetime-format '{format}': %{d} is not a directive the awslogs driver knows"
                        ))
                    }
                },
                None => re.push('%'),
            }
        } else {
            re.push_str(&regex::escape(&c.to_string()));
        }
    }
    Regex::new(&re)
        .map(StartPattern)
        .map_err(|e| format!("awslogs-datetime-format '{format}': {e}"))
}

/// `awslogs-multiline-pattern`: the regular expression, anchored at the line's start.
pub fn from_multiline_pattern(pattern: &str) -> Result<StartPattern, String> {
    Regex::new(&format!("^(?:{pattern})"))
        .map(StartPattern)
        .map_err(|e| format!("awslogs-multiline-pattern '{pattern}': {e}"))
}

/// A complete event, with the position of its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete<P> {
    /// When its first line was written (epoch ms).
    pub timestamp: i64,
    /// Its lines, joined with `\n`.
    pub message: String,
    /// The position of its last line.
    pub position: P,
}

/// Joins lines into events.
#[derive(Debug)]
pub struct Joiner<P> {
    start: Option<StartPattern>,
    pending: Option<Pending<P>>,
}

#[derive(Debug)]
struct Pending<P> {
    timestamp: i64,
    message: String,
    position: P,
    last_line_at: i64,
}

impl<P: Clone> Joiner<P> {
    /// A joiner; without a start pattern every line is an event.
    pub fn new(start: Option<StartPattern>) -> Self {
        Self {
            start,
            pending: None,
        }
    }

    /// Takes one line (without its newline) written at `timestamp`; returns the events it
    /// completes. Empty lines are dropped, as the awslogs driver drops them; a line longer
    /// than an event is split.
    pub fn push(&mut self, timestamp: i64, line: &str, position: P) -> Vec<Complete<P>> {
        let mut out = Vec::new();
        if line.is_empty() {
            return out;
        }
        let Some(start) = &self.start else {
            for piece in split(line) {
                out.push(Complete {
                    timestamp,
                    message: piece.to_string(),
                    position: position.clone(),
                });
            }
            return out;
        };
        let begins = start.starts(line);
        if let Some(p) = &mut self.pending {
            if !begins && p.message.len() + 1 + line.len() <= MAX_EVENT_BYTES {
                p.message.push('\n');
                p.message.push_str(line);
                p.position = position;
                p.last_line_at = timestamp;
                return out;
            }
        }
        out.extend(self.flush());
        let mut pieces = split(line);
        let last = pieces.pop().unwrap_or_default();
        for piece in pieces {
            out.push(Complete {
                timestamp,
                message: piece.to_string(),
                position: position.clone(),
            });
        }
        self.pending = Some(Pending {
            timestamp,
            message: last.to_string(),
            position,
            last_line_at: timestamp,
        });
        out
    }

    /// Whether the pending event has waited long enough at `now_ms`.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| now_ms - p.last_line_at >= FLUSH_AFTER_MS)
    }

    /// When the pending event is due (epoch ms), if there is one.
    pub fn due_at(&self) -> Option<i64> {
        self.pending
            .as_ref()
            .map(|p| p.last_line_at + FLUSH_AFTER_MS)
    }

    /// Completes the pending event, if any.
    pub fn flush(&mut self) -> Option<Complete<P>> {
        self.pending.take().map(|p| Complete {
            timestamp: p.timestamp,
            message: p.message,
            position: p.position,
        })
    }
}

/// A line in pieces of at most [`MAX_EVENT_BYTES`], on character boundaries.
fn split(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_EVENT_BYTES {
        let mut cut = MAX_EVENT_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_pattern_every_line_is_an_event() {
        let mut j = Joiner::new(None);
        let out = j.push(5, "hello", 1);
        assert_eq!(
            out,
            vec![Complete {
                timestamp: 5,
                message: "hello".into(),
                position: 1
            }]
        );
        assert!(j.push(6, "", 2).is_empty());
        assert_eq!(j.flush(), None);
    }

    #[test]
    fn a_multiline_pattern_joins_continuation_lines() {
        let mut j = Joiner::new(Some(from_multiline_pattern("INFO|ERROR").unwrap()));
        assert!(j.push(1, "ERROR boom", 1).is_empty());
        assert!(j.push(2, "  at frame 1", 2).is_empty());
        assert!(j.push(3, "  at frame 2", 3).is_empty());
        let out = j.push(4, "INFO next", 4);
        assert_eq!(
            out,
            vec![Complete {
                timestamp: 1,
                message: "ERROR boom\n  at frame 1\n  at frame 2".into(),
                position: 3
            }]
        );
        assert!(!j.flush_due(4 + FLUSH_AFTER_MS - 1));
        assert!(j.flush_due(4 + FLUSH_AFTER_MS));
        assert_eq!(j.flush().unwrap().message, "INFO next");
    }

    #[test]
    fn datetime_formats_convert_as_docker_converts_them() {
        let p = from_datetime_format("%Y-%m-%d %H:%M:%S").unwrap();
        assert!(p.starts("2024-05-01 13:45:10 started"));
        assert!(!p.starts("  2024-05-01 13:45:10"));
        assert!(!p.starts("Traceback (most recent call last):"));
        let p = from_datetime_format("[%b %d, %Y %H:%M:%S]").unwrap();
        assert!(p.starts("[Jan 05, 2024 10:00:00] x"));
        assert!(from_datetime_format("%Q").is_err());
        assert!(from_multiline_pattern("(").is_err());
    }

    #[test]
    fn long_lines_are_split() {
        let mut j = Joiner::new(None);
        let line = "x".repeat(MAX_EVENT_BYTES + 10);
        let out = j.push(1, &line, 0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].message.len(), MAX_EVENT_BYTES);
        assert_eq!(out[1].message.len(), 10);
    }
}
