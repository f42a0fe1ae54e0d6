//! Following one container's output into its stream.
//!
//! [`follow`] asks the runtime for the output from one second before the last stored event
//! (the engine's timestamps of stdout and stderr may be a little out of order), skips up to
//! and including that event's piece ([`Resume`]), then assembles lines (a long line comes in
//! pieces; the last one has the newline), joins them into events
//! ([`flotilla_logs::multiline::Joiner`]) and appends each batch that was ready at once to the
//! store, the last event carrying its [`Cursor`]. When the output ends it stores what is
//! pending; if the container still runs (the stream was cut) it follows again; once it has
//! stopped, it reads the output again from the last stored event until a pass finds nothing
//! new (Docker can end a followed stream early when the reader is behind a log rotation).
//!
//! A multi-line event still pending when the agent stops is not stored, and neither is its
//! cursor: the restarted agent reads its lines again.

use super::{now_ms, LogsHub};
use crate::runtime::{OutputLine, RuntimeError};
use flotilla_logs::multiline::{Complete, Joiner, StartPattern};
use flotilla_logs::query::{NewEvent, StreamRef};
use flotilla_logstore::Cursor;
use futures::StreamExt;
use std::time::Duration;
use tracing::{debug, warn};

/// How far before the last stored piece the output is read again on a resume, seconds.
const SLACK_S: i64 = 1;
/// A resume that has not found the last stored piece by this much later output gives up
/// looking and takes what is newer (the engine no longer has it: rotated away).
const GIVE_UP_NS: i64 = 2_000_000_000;

/// Skips the output already stored.
#[derive(Debug)]
pub(crate) enum Resume {
    /// Looking for the last stored piece.
    Skipping(Cursor),
    /// Past it: everything is new.
    Taking,
}

impl Resume {
    /// Whether the piece at `cursor` is new.
    pub(crate) fn is_new(&mut self, cursor: Cursor) -> bool {
        match *self {
            Resume::Taking => true,
            Resume::Skipping(last) if cursor == last => {
                *self = Resume::Taking;
                false
            }
            Resume::Skipping(last) if cursor.ns > last.ns.saturating_add(GIVE_UP_NS) => {
                warn!(
                    "the last stored log line is no longer in the engine's output; resuming after its time"
                );
                *self = Resume::Taking;
                true
            }
            Resume::Skipping(_) => false,
        }
    }
}

/// Numbers pieces by timestamp: the n-th piece with a given timestamp.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    ns: i64,
    n: u32,
}

impl Numbering {
    pub(crate) fn cursor(&mut self, ns: i64) -> Cursor {
        if ns == self.ns {
            self.n += 1;
        } else {
            self.ns = ns;
            self.n = 0;
        }
        Cursor {
            ns: self.ns,
            n: self.n,
        }
    }
}

/// A line being assembled from pieces.
#[derive(Debug, Default)]
struct Partial {
    first_ns: Option<i64>,
    bytes: Vec<u8>,
}

fn to_events(done: Vec<Complete<Cursor>>) -> (Vec<NewEvent>, Option<Cursor>) {
    let cursor = done.last().map(|c| c.position);
    let events = done
        .into_iter()
        .map(|c| NewEvent {
            timestamp: c.timestamp,
            message: c.message,
        })
        .collect();
    (events, cursor)
}

async fn store(hub: &LogsHub, stream: &StreamRef, done: Vec<Complete<Cursor>>) {
    if done.is_empty() {
        return;
    }
    let (events, cursor) = to_events(done);
    let store = hub.store().clone();
    let s = stream.clone();
    let result =
        tokio::task::spawn_blocking(move || store.append(&s, &events, now_ms(), cursor)).await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(stream = %stream.stream, error = %e, "could not store log events"),
        Err(e) => warn!(stream = %stream.stream, error = %e, "could not store log events"),
    }
}

/// Takes one piece: assembles it into a line and the line into events.
fn take(
    piece: OutputLine,
    cursor: Cursor,
    partial: &mut Partial,
    joiner: &mut Joiner<Cursor>,
    out: &mut Vec<Complete<Cursor>>,
) {
    partial.first_ns.get_or_insert(piece.ns);
    partial.bytes.extend_from_slice(&piece.bytes);
    if partial.bytes.last() != Some(&b'\n') {
        return;
    }
    let first_ns = partial.first_ns.take().unwrap_or(piece.ns);
    let mut bytes = std::mem::take(&mut partial.bytes);
    bytes.pop();
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let line = String::from_utf8_lossy(&bytes);
    out.extend(joiner.push(first_ns / 1_000_000, &line, cursor));
}

/// Follows container `id` into `stream` until its output ends and it has stopped (or it is
/// removed).
pub async fn follow(hub: &LogsHub, id: &str, stream: &StreamRef, start: Option<StartPattern>) {
    let mut joiner: Joiner<Cursor> = Joiner::new(start);
    loop {
        let last = hub.store().last_cursor(stream);
        let since_s = last
            .map_or(0, |c| c.ns.div_euclid(1_000_000_000) - SLACK_S)
            .max(0);
        let mut output = match hub.runtime().follow_output(id, since_s).await {
            Ok(o) => o.ready_chunks(1024),
            Err(RuntimeError::NotFound(_)) => return,
            Err(e) => {
                warn!(container = %id, error = %e, "cannot follow the container's output; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut resume = match last {
            Some(c) => Resume::Skipping(c),
            None => Resume::Taking,
        };
        let mut numbering = Numbering::default();
        let mut partial = Partial::default();
        let mut took_any = false;
        loop {
            let due = joiner.due_at().map(|at| {
                let wait = at.saturating_sub(now_ms()).max(0);
                tokio::time::Instant::now() + Duration::from_millis(wait.unsigned_abs())
            });
            let next = tokio::select! {
                n = output.next() => n,
                _ = async {
                    match due {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let done: Vec<_> = joiner.flush().into_iter().collect();
                    store(hub, stream, done).await;
                    continue;
                }
            };
            let Some(items) = next else { break };
            let mut done = Vec::new();
            for item in items {
                match item {
                    Ok(piece) => {
                        let cursor = numbering.cursor(piece.ns);
                        if resume.is_new(cursor) {
                            took_any = true;
                            take(piece, cursor, &mut partial, &mut joiner, &mut done);
                        }
                    }
                    Err(e) => {
                        debug!(container = %id, error = %e, "the output stream failed");
                        break;
                    }
                }
            }
            store(hub, stream, done).await;
        }
        // The output ended: store what is pending, then see whether the container still runs.
        let done: Vec<_> = joiner.flush().into_iter().collect();
        store(hub, stream, done).await;
        match hub.runtime().inspect(id).await {
            Ok(info) if info.running => {
                debug!(container = %id, "the output stream was cut; following again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Docker may end a followed stream of a stopped container early (a reader behind
            // a log file rotation): read again from the cursor until a pass finds nothing new.
            Ok(_) if took_any => {
                debug!(container = %id, "the container stopped; reading its output again to its end");
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_skips_through_the_last_stored_piece() {
        let last = Cursor { ns: 5_000, n: 1 };
        let mut r = Resume::Skipping(last);
        let mut numbering = Numbering::default();
        let seen: Vec<bool> = [4_000, 6_000, 5_000, 5_000, 5_000, 7_000]
            .iter()
            .map(|ns| r.is_new(numbering.cursor(*ns)))
            .collect();
        // 4000 and 6000 (out of order, before the stored one in the output) were stored; so
        // were the first two pieces at 5000; the third one and what follows are new.
        assert_eq!(seen, [false, false, false, false, true, true]);
    }

    #[test]
    fn a_resume_whose_piece_is_gone_takes_what_is_newer() {
        let mut r = Resume::Skipping(Cursor { ns: 0, n: 0 });
        assert!(!r.is_new(Cursor { ns: 1, n: 0 }));
        assert!(r.is_new(Cursor {
            ns: GIVE_UP_NS + 1,
            n: 0
        }));
        assert!(r.is_new(Cursor { ns: 2, n: 0 }));
    }
}
