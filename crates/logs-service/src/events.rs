//! Events: PutLogEvents, GetLogEvents, FilterLogEvents, each a [`LogRequest`] to the owners
//! of the streams (this replica's store, another replica, an agent).

use crate::records::{self, group, stream, StreamRecord};
use crate::{refuse_if, to_json, Logs, Owner};
use flotilla_logs::query::{
    merge_filter, Direction, FilterQuery, LogRequest, LogResponse, NewEvent, ReadQuery, StreamRef,
    StreamScan, END,
};
use flotilla_logs::shapes::{
    FilterLogEventsRequest, FilterLogEventsResponse, FilteredLogEvent, GetLogEventsRequest,
    GetLogEventsResponse, OutputLogEvent, PutLogEventsRequest, PutLogEventsResponse,
    RejectedLogEventsInfo,
};
use flotilla_logs::token::{decode_filter, decode_read, encode_filter, encode_read};
use flotilla_logs::validate::parse_input;
use flotilla_logs::{batch, filter, retention, LogsError};
use serde_json::Value;
use std::collections::HashMap;

/// How many bytes one FilterLogEvents request examines per stream at most.
const FILTER_SCAN_BYTES: usize = 8 << 20;

fn stream_ref(s: &StreamRecord) -> StreamRef {
    StreamRef {
        group: s.group.clone(),
        generation: s.generation,
        stream: s.name.clone(),
    }
}

fn unexpected() -> LogsError {
    LogsError::unavailable("The owner of the log stream answered something else than asked.")
}

/// PutLogEvents (the sequence token is ignored, as AWS now ignores it).
pub async fn put_log_events(logs: &Logs, input: Value, now_ms: i64) -> Result<Value, LogsError> {
    let r: PutLogEventsRequest = parse_input("PutLogEvents", input)?;
    refuse_if(
        r.entity.is_some(),
        "entity",
        "log events are not associated with entities",
    )?;
    let g = group(logs.store(), &r.log_group_name).await?;
    let s = stream(logs.store(), &g, &r.log_stream_name).await?;
    if let Owner::Agent { instance, .. } = &s.owner {
        return Err(LogsError::invalid(format!(
            "The log stream {} is written by the awslogs driver of container instance {instance}; PutLogEvents goes to streams created with CreateLogStream.",
            s.name
        )));
    }
    let oldest = retention::oldest_kept(now_ms, g.record.retention_in_days);
    let accepted = batch::check(&r.log_events, now_ms, oldest)?;
    let events: Vec<NewEvent> = r.log_events[accepted.accepted.clone()]
        .iter()
        .map(|e| NewEvent {
            timestamp: e.timestamp,
            message: e.message.clone(),
        })
        .collect();
    if !events.is_empty() {
        let req = LogRequest::Append {
            stream: stream_ref(&s),
            events,
        };
        match logs.ask(&s.owner, req, now_ms).await? {
            LogResponse::Appended => {}
            _ => return Err(unexpected()),
        }
    }
    to_json(&PutLogEventsResponse {
        rejected_log_events_info: accepted.rejected.map(|r| {
            let index = |n: Option<usize>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
            RejectedLogEventsInfo {
                too_new_log_event_start_index: index(r.too_new_start),
                too_old_log_event_end_index: index(r.too_old_end),
                expired_log_event_end_index: index(r.expired_end),
            }
        }),
        ..PutLogEventsResponse::default()
    })
}

/// GetLogEvents.
pub async fn get_log_events(logs: &Logs, input: Value, now_ms: i64) -> Result<Value, LogsError> {
    let r: GetLogEventsRequest = parse_input("GetLogEvents", input)?;
    refuse_if(
        r.unmask == Some(true),
        "unmask",
        "log events are never masked",
    )?;
    let name = logs.account().group_from(
        r.log_group_name.as_deref(),
        r.log_group_identifier.as_deref(),
    )?;
    let g = group(logs.store(), &name).await?;
    let s = stream(logs.store(), &g, &r.log_stream_name).await?;
    let sref = stream_ref(&s);
    let (direction, from) = match r.next_token.as_deref() {
        Some(t) => decode_read(&sref, t)?,
        None if r.start_from_head == Some(true) => (Direction::Forward, 0),
        None => (Direction::Backward, END),
    };
    let q = ReadQuery {
        stream: sref.clone(),
        direction,
        from,
        start_time: r.start_time,
        end_time: r.end_time,
        limit: usize::try_from(r.limit.unwrap_or(10_000)).unwrap_or(10_000),
    };
    let answer = match logs
        .ask(&s.owner, LogRequest::Read(q.clone()), now_ms)
        .await?
    {
        LogResponse::Read(a) => a,
        _ => return Err(unexpected()),
    };
    let (forward, backward) = answer.next_positions(&q);
    to_json(&GetLogEventsResponse {
        events: Some(
            answer
                .events
                .into_iter()
                .map(|e| OutputLogEvent {
                    timestamp: Some(e.timestamp),
                    message: Some(e.message),
                    ingestion_time: Some(e.ingestion_time),
                })
                .collect(),
        ),
        next_forward_token: Some(encode_read(&sref, Direction::Forward, forward)),
        next_backward_token: Some(encode_read(&sref, Direction::Backward, backward)),
    })
}

/// An event's id: its position and its stream's, as digits.
fn event_id(s: &StreamRef, seq: u64) -> String {
    let t = encode_read(s, Direction::Forward, seq);
    t.trim_start_matches("f/").to_string()
}

/// FilterLogEvents.
pub async fn filter_log_events(logs: &Logs, input: Value, now_ms: i64) -> Result<Value, LogsError> {
    let r: FilterLogEventsRequest = parse_input("FilterLogEvents", input)?;
    refuse_if(
        r.unmask == Some(true),
        "unmask",
        "log events are never masked",
    )?;
    refuse_if(
        r.start_from_head == Some(false),
        "startFromHead false",
        "events are returned oldest first",
    )?;
    if r.log_stream_names.is_some() && r.log_stream_name_prefix.is_some() {
        return Err(LogsError::invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    let pattern_text = r.filter_pattern.clone().unwrap_or_default();
    filter::parse(&pattern_text)?;
    let name = logs.account().group_from(
        r.log_group_name.as_deref(),
        r.log_group_identifier.as_deref(),
    )?;
    let g = group(logs.store(), &name).await?;
    let streams: Vec<StreamRecord> = match &r.log_stream_names {
        Some(names) => {
            let mut v = Vec::new();
            for n in names {
                v.push(stream(logs.store(), &g, n).await?);
            }
            v
        }
        None => {
            records::streams(
                logs.store(),
                &g,
                r.log_stream_name_prefix.as_deref().unwrap_or(""),
                None,
                0,
            )
            .await?
            .0
        }
    };
    let positions: HashMap<String, u64> = match r.next_token.as_deref() {
        Some(t) => decode_filter(&g.record.name, g.generation, t)?
            .into_iter()
            .collect(),
        None => HashMap::new(),
    };
    let limit = usize::try_from(r.limit.unwrap_or(10_000)).unwrap_or(10_000);
    let mut by_owner: HashMap<&Owner, Vec<&StreamRecord>> = HashMap::new();
    for s in &streams {
        by_owner.entry(&s.owner).or_default().push(s);
    }
    let asks = by_owner.into_iter().map(|(owner, list)| {
        let q = FilterQuery {
            streams: list
                .iter()
                .map(|s| (stream_ref(s), positions.get(&s.name).copied().unwrap_or(0)))
                .collect(),
            start_time: r.start_time,
            end_time: r.end_time,
            pattern: pattern_text.clone(),
            limit,
            scan_bytes: FILTER_SCAN_BYTES,
        };
        async move { logs.ask(owner, LogRequest::Filter(q), now_ms).await }
    });
    let mut scans: Vec<StreamScan> = Vec::new();
    // Every owner must answer: a page without one owner's streams would pretend they have no
    // events.
    for answer in futures::future::join_all(asks).await {
        match answer? {
            LogResponse::Filter(a) => scans.extend(a.streams),
            _ => return Err(unexpected()),
        }
    }
    scans.sort_by(|a, b| a.stream.cmp(&b.stream));
    let refs: HashMap<String, StreamRef> = streams
        .iter()
        .map(|s| (s.name.clone(), stream_ref(s)))
        .collect();
    let page = merge_filter(scans, limit);
    let events = page
        .events
        .into_iter()
        .map(|m| FilteredLogEvent {
            event_id: refs.get(&m.stream).map(|s| event_id(s, m.event.seq)),
            log_stream_name: Some(m.stream),
            timestamp: Some(m.event.timestamp),
            message: Some(m.event.message),
            ingestion_time: Some(m.event.ingestion_time),
        })
        .collect();
    to_json(&FilterLogEventsResponse {
        events: Some(events),
        next_token: (!page.done)
            .then(|| encode_filter(&g.record.name, g.generation, &page.positions)),
        ..FilterLogEventsResponse::default()
    })
}
