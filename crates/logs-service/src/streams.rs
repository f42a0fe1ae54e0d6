//! Log streams: CreateLogStream, DescribeLogStreams, and the streams the `awslogs` driver of an
//! agent opens ([`open_agent_stream`], Flotilla's `FlotillaAdmin.OpenLogStream`).
//!
//! A stream created with CreateLogStream is owned by the replica that created it (its events
//! go to that replica's data directory); a container's stream by the agent of its host.
//! DescribeLogStreams reads the names from the control-plane store and the event times from
//! the owners (an owner that cannot be reached leaves them out).

use crate::records::{self, encode, get_stream, group, store_error, StreamRecord};
use crate::{to_json, Logs, Owner};
use flotilla_logs::names::stream_key;
use flotilla_logs::query::{LogRequest, LogResponse, StreamRef, StreamStats};
use flotilla_logs::shapes::{
    CreateLogStreamRequest, DescribeLogStreamsRequest, DescribeLogStreamsResponse, LogStream,
    OrderBy,
};
use flotilla_logs::token::{decode_list, encode_list, ListToken};
use flotilla_logs::validate::parse_input;
use flotilla_logs::LogsError;
use flotilla_store::{Compare, Txn};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Creates a stream record owned by `owner`; an existing stream of the same owner is fine
/// when `idempotent`. Returns the group's generation.
async fn create(
    logs: &Logs,
    group_name: &str,
    name: &str,
    owner: Owner,
    now_ms: i64,
    idempotent: bool,
) -> Result<u64, LogsError> {
    let g = group(logs.store(), group_name).await?;
    let key = stream_key(group_name, name);
    let compare = match get_stream(logs.store(), &g, name).await? {
        Ok(Some((existing, _))) if idempotent && existing.owner == owner => return Ok(g.generation),
        Ok(Some(_)) => return Err(LogsError::stream_exists()),
        Ok(None) => Compare::Absent(key.clone()),
        // A stale record of a deleted generation of the group.
        Err(revision) => Compare::ModRevision(key.clone(), revision),
    };
    let record = StreamRecord {
        group: group_name.to_string(),
        generation: g.generation,
        name: name.to_string(),
        creation_time: now_ms,
        owner,
    };
    // The group must still be the same generation when the stream is created.
    let txn = Txn::new()
        .when(compare)
        .when(Compare::ModRevision(
            flotilla_logs::names::group_key(group_name),
            g.revision,
        ))
        .put(key, encode(&record));
    if logs
        .store()
        .txn(txn)
        .await
        .map_err(store_error)?
        .is_committed()
    {
        return Ok(g.generation);
    }
    // Lost a race: whoever won decides.
    let g = group(logs.store(), group_name).await?;
    match get_stream(logs.store(), &g, name).await? {
        Ok(Some((existing, _))) if idempotent && existing.owner == record.owner => Ok(g.generation),
        _ => Err(LogsError::stream_exists()),
    }
}

/// CreateLogStream: a stream this replica owns.
pub async fn create_log_stream(logs: &Logs, input: Value, now_ms: i64) -> Result<Value, LogsError> {
    let r: CreateLogStreamRequest = parse_input("CreateLogStream", input)?;
    create(
        logs,
        &r.log_group_name,
        &r.log_stream_name,
        logs.me(),
        now_ms,
        false,
    )
    .await?;
    tracing::info!(group = %r.log_group_name, stream = %r.log_stream_name, "log stream created");
    Ok(json!({}))
}

/// The stream a container's `awslogs` driver writes, owned by its host's agent: created (with
/// its group when `create_group`) if absent; the same agent opening it again is fine.
/// Returns the group's generation.
pub async fn open_agent_stream(
    logs: &Logs,
    owner: Owner,
    group_name: &str,
    name: &str,
    create_group: bool,
    now_ms: i64,
) -> Result<u64, LogsError> {
    // The names as the model allows them.
    parse_input::<CreateLogStreamRequest>(
        "CreateLogStream",
        json!({"logGroupName": group_name, "logStreamName": name}),
    )?;
    if create_group {
        crate::groups::ensure_group(logs, group_name, now_ms).await?;
    }
    create(logs, group_name, name, owner, now_ms, true).await
}

/// The event times of streams, from their owners (all owners at once); an owner that cannot
/// be reached gives none.
pub async fn stats_of(
    logs: &Logs,
    streams: &[StreamRecord],
    now_ms: i64,
) -> HashMap<String, StreamStats> {
    let mut by_owner: HashMap<&Owner, Vec<&StreamRecord>> = HashMap::new();
    for s in streams {
        by_owner.entry(&s.owner).or_default().push(s);
    }
    let asks = by_owner.into_iter().map(|(owner, list)| async move {
        let refs: Vec<StreamRef> = list
            .iter()
            .map(|s| StreamRef {
                group: s.group.clone(),
                generation: s.generation,
                stream: s.name.clone(),
            })
            .collect();
        match logs
            .ask(owner, LogRequest::Stats { streams: refs }, now_ms)
            .await
        {
            Ok(LogResponse::Stats { stats }) => list
                .iter()
                .zip(stats)
                .filter_map(|(s, st)| st.map(|st| (s.name.clone(), st)))
                .collect::<Vec<_>>(),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::info!(owner = %owner, error = %e, "no event times for the owner's streams");
                Vec::new()
            }
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn log_stream(logs: &Logs, s: &StreamRecord, stats: Option<&StreamStats>) -> LogStream {
    LogStream {
        log_stream_name: Some(s.name.clone()),
        creation_time: Some(s.creation_time),
        first_event_timestamp: stats.and_then(|t| t.first_event_timestamp),
        last_event_timestamp: stats.and_then(|t| t.last_event_timestamp),
        last_ingestion_time: stats.and_then(|t| t.last_ingestion_time),
        arn: Some(logs.account().stream_arn(&s.group, &s.name)),
        stored_bytes: Some(stats.map_or(0, |t| i64::try_from(t.stored_bytes).unwrap_or(i64::MAX))),
        ..LogStream::default()
    }
}

/// DescribeLogStreams.
pub async fn describe_log_streams(
    logs: &Logs,
    input: Value,
    now_ms: i64,
) -> Result<Value, LogsError> {
    let r: DescribeLogStreamsRequest = parse_input("DescribeLogStreams", input)?;
    let name = logs.account().group_from(
        r.log_group_name.as_deref(),
        r.log_group_identifier.as_deref(),
    )?;
    let by_time = r.order_by == Some(OrderBy::LastEventTime);
    if by_time && r.log_stream_name_prefix.is_some() {
        return Err(LogsError::invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let g = group(logs.store(), &name).await?;
    let limit = usize::try_from(r.limit.unwrap_or(50)).unwrap_or(50);
    let descending = r.descending == Some(true);
    let token = r.next_token.as_deref().map(decode_list).transpose()?;
    let prefix = r.log_stream_name_prefix.as_deref().unwrap_or("");
    let (page, next) = if !by_time && !descending {
        let after = match token {
            None => None,
            Some(ListToken::After(a)) => Some(a),
            Some(_) => return Err(LogsError::invalid("The specified nextToken is invalid.")),
        };
        let (list, more) =
            records::streams(logs.store(), &g, prefix, after.as_deref(), limit).await?;
        let next = more
            .then(|| {
                list.last()
                    .map(|s| encode_list(&ListToken::After(s.name.clone())))
            })
            .flatten();
        (list, next)
    } else {
        // Sorted by time, or descending: the whole group, sorted here, paged by offset.
        let offset = match token {
            None => 0,
            Some(ListToken::Offset(n)) => n,
            Some(_) => return Err(LogsError::invalid("The specified nextToken is invalid.")),
        };
        let (mut all, _) = records::streams(logs.store(), &g, prefix, None, 0).await?;
        if by_time {
            let stats = stats_of(logs, &all, now_ms).await;
            let last = |s: &StreamRecord| {
                stats
                    .get(&s.name)
                    .and_then(|t| t.last_event_timestamp)
                    .unwrap_or(0)
            };
            all.sort_by(|a, b| last(a).cmp(&last(b)).then_with(|| a.name.cmp(&b.name)));
        }
        if descending {
            all.reverse();
        }
        let end = (offset + limit).min(all.len());
        let page: Vec<StreamRecord> = all.get(offset..end).map(<[_]>::to_vec).unwrap_or_default();
        let next = (end < all.len()).then(|| encode_list(&ListToken::Offset(end)));
        (page, next)
    };
    let stats = stats_of(logs, &page, now_ms).await;
    to_json(&DescribeLogStreamsResponse {
        log_streams: Some(
            page.iter()
                .map(|s| log_stream(logs, s, stats.get(&s.name)))
                .collect(),
        ),
        next_token: next,
    })
}
