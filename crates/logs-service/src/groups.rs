//! Log groups: CreateLogGroup, DeleteLogGroup, DescribeLogGroups, PutRetentionPolicy.
//!
//! A group is one record; deleting it deletes its stream records (in batches, after the group:
//! a stream record of a deleted generation is stale and never found) and, through the
//! janitors of the replicas and the agents (which the group list reaches), its events.

use crate::records::{self, encode, get_group, group, group_of, store_error, GroupRecord};
use crate::{refuse_if, to_json, Logs};
use flotilla_logs::names::{group_key, streams_prefix, GROUPS};
use flotilla_logs::shapes::{
    CreateLogGroupRequest, DeleteLogGroupRequest, DescribeLogGroupsRequest,
    DescribeLogGroupsResponse, LogGroup, LogGroupClass, PutRetentionPolicyRequest,
};
use flotilla_logs::token::{decode_list, encode_list, ListToken};
use flotilla_logs::validate::parse_input;
use flotilla_logs::{retention, LogsError};
use flotilla_store::{Compare, Txn};
use serde_json::{json, Value};

/// CreateLogGroup.
pub async fn create_log_group(logs: &Logs, input: Value, now_ms: i64) -> Result<Value, LogsError> {
    let r: CreateLogGroupRequest = parse_input("CreateLogGroup", input)?;
    refuse_if(
        r.kms_key_id.is_some(),
        "kmsKeyId",
        "log events are not encrypted with a KMS key",
    )?;
    refuse_if(
        r.log_group_class
            .is_some_and(|c| c != LogGroupClass::Standard),
        "A logGroupClass other than STANDARD",
        "every log group is STANDARD",
    )?;
    refuse_if(
        r.deletion_protection_enabled == Some(true),
        "deletionProtectionEnabled",
        "log groups have no deletion protection",
    )?;
    let record = GroupRecord {
        name: r.log_group_name.clone(),
        creation_time: now_ms,
        retention_in_days: None,
        tags: r.tags.unwrap_or_default(),
    };
    let key = group_key(&r.log_group_name);
    let txn = Txn::new()
        .when(Compare::Absent(key.clone()))
        .put(key, encode(&record));
    let outcome = logs.store().txn(txn).await.map_err(store_error)?;
    if !outcome.is_committed() {
        return Err(LogsError::group_exists());
    }
    tracing::info!(group = %r.log_group_name, "log group created");
    Ok(json!({}))
}

/// Creates a group for the `awslogs` driver's `awslogs-create-group`: an existing one is
/// fine. Returns it.
pub async fn ensure_group(
    logs: &Logs,
    name: &str,
    now_ms: i64,
) -> Result<records::Group, LogsError> {
    for _ in 0..3 {
        if let Some(g) = get_group(logs.store(), name).await? {
            return Ok(g);
        }
        match create_log_group(logs, json!({ "logGroupName": name }), now_ms).await {
            Ok(_) => {}
            Err(e) if e.code == flotilla_logs::LogsErrorCode::ResourceAlreadyExistsException => {}
            Err(e) => return Err(e),
        }
    }
    group(logs.store(), name).await
}

/// DeleteLogGroup.
pub async fn delete_log_group(logs: &Logs, input: Value) -> Result<Value, LogsError> {
    let r: DeleteLogGroupRequest = parse_input("DeleteLogGroup", input)?;
    let g = group(logs.store(), &r.log_group_name).await?;
    let key = group_key(&r.log_group_name);
    let txn = Txn::new()
        .when(Compare::ModRevision(key.clone(), g.revision))
        .delete(key);
    if !logs
        .store()
        .txn(txn)
        .await
        .map_err(store_error)?
        .is_committed()
    {
        return Err(LogsError::new(
            flotilla_logs::LogsErrorCode::OperationAbortedException,
            "Multiple concurrent requests to update the same resource were in conflict; try again.",
        ));
    }
    // The stream records of this generation, in batches (a record left by a crash here is
    // stale: it names a generation that no longer exists).
    let prefix = streams_prefix(&r.log_group_name);
    loop {
        let page = logs
            .store()
            .list(&prefix, None, 100)
            .await
            .map_err(store_error)?;
        let mut txn = Txn::new();
        let mut n = 0;
        for kv in &page.items {
            let stale_or_ours = serde_json::from_slice::<records::StreamRecord>(&kv.value)
                .map_or(true, |s| s.generation <= g.generation);
            if stale_or_ours {
                txn = txn.delete(kv.key.clone());
                n += 1;
            }
        }
        if n > 0 {
            logs.store().txn(txn).await.map_err(store_error)?;
        }
        if !page.more || n == 0 {
            break;
        }
    }
    // This replica's events of the group go at once; the other replicas' and the agents' when
    // they get the new group list.
    let local = logs.local().clone();
    let (name, generation) = (r.log_group_name.clone(), g.generation);
    let _ = tokio::task::spawn_blocking(move || local.delete_group(&name, generation)).await;
    tracing::info!(group = %r.log_group_name, "log group deleted");
    Ok(json!({}))
}

fn log_group(logs: &Logs, g: &records::Group) -> LogGroup {
    let acct = logs.account();
    LogGroup {
        log_group_name: Some(g.record.name.clone()),
        creation_time: Some(g.record.creation_time),
        retention_in_days: g
            .record
            .retention_in_days
            .and_then(|d| i32::try_from(d).ok()),
        metric_filter_count: Some(0),
        arn: Some(acct.group_arn_star(&g.record.name)),
        log_group_class: Some(LogGroupClass::Standard),
        log_group_arn: Some(acct.group_arn(&g.record.name)),
        deletion_protection_enabled: Some(false),
        ..LogGroup::default()
    }
}

/// DescribeLogGroups.
pub async fn describe_log_groups(logs: &Logs, input: Value) -> Result<Value, LogsError> {
    let r: DescribeLogGroupsRequest = parse_input("DescribeLogGroups", input)?;
    let own = &logs.account().account;
    refuse_if(
        r.account_identifiers
            .as_ref()
            .is_some_and(|a| a.iter().any(|x| x != own)),
        "accountIdentifiers naming another account",
        "there is one account",
    )?;
    refuse_if(
        r.include_linked_accounts == Some(true),
        "includeLinkedAccounts",
        "there are no linked accounts",
    )?;
    if r.log_group_name_prefix.is_some() && r.log_group_name_pattern.is_some() {
        return Err(LogsError::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    if r.log_group_identifiers.is_some()
        && (r.log_group_name_prefix.is_some() || r.log_group_name_pattern.is_some())
    {
        return Err(LogsError::invalid(
            "logGroupIdentifiers cannot be used with logGroupNamePrefix or logGroupNamePattern.",
        ));
    }
    let names: Option<Vec<String>> = r.log_group_identifiers.as_ref().map(|ids| {
        ids.iter()
            .map(|id| logs.account().group_from(None, Some(id)))
            .filter_map(Result::ok)
            .collect()
    });
    let limit = usize::try_from(r.limit.unwrap_or(50)).unwrap_or(50);
    let after = match r.next_token.as_deref().map(decode_list).transpose()? {
        None => None,
        Some(ListToken::After(name)) => Some(name),
        Some(_) => return Err(LogsError::invalid("The specified nextToken is invalid.")),
    };
    let prefix = format!(
        "{GROUPS}{}",
        r.log_group_name_prefix.as_deref().unwrap_or("")
    );
    let mut start = after.map(|a| group_key(&a));
    let mut out: Vec<LogGroup> = Vec::new();
    let mut last_name = None;
    let mut more = false;
    'pages: loop {
        let page = logs
            .store()
            .list(&prefix, start.as_deref(), 200)
            .await
            .map_err(store_error)?;
        for kv in &page.items {
            let g = group_of(kv)?;
            let name = &g.record.name;
            let wanted = names.as_ref().is_none_or(|n| n.contains(name))
                && r.log_group_name_pattern
                    .as_deref()
                    .is_none_or(|p| name.contains(p))
                && r.log_group_class
                    .is_none_or(|c| c == LogGroupClass::Standard);
            if !wanted {
                continue;
            }
            if out.len() == limit {
                more = true;
                break 'pages;
            }
            last_name = Some(name.clone());
            out.push(log_group(logs, &g));
        }
        if !page.more || page.items.is_empty() {
            break;
        }
        start = page.items.last().map(|kv| kv.key.clone());
    }
    to_json(&DescribeLogGroupsResponse {
        log_groups: Some(out),
        next_token: more
            .then(|| last_name.map(|n| encode_list(&ListToken::After(n))))
            .flatten(),
    })
}

/// PutRetentionPolicy.
pub async fn put_retention_policy(logs: &Logs, input: Value) -> Result<Value, LogsError> {
    let r: PutRetentionPolicyRequest = parse_input("PutRetentionPolicy", input)?;
    let days = retention::check_days(r.retention_in_days)?;
    for _ in 0..5 {
        let g = group(logs.store(), &r.log_group_name).await?;
        let mut record = g.record.clone();
        record.retention_in_days = Some(days);
        let key = group_key(&r.log_group_name);
        let txn = Txn::new()
            .when(Compare::ModRevision(key.clone(), g.revision))
            .put(key, encode(&record));
        if logs
            .store()
            .txn(txn)
            .await
            .map_err(store_error)?
            .is_committed()
        {
            tracing::info!(group = %r.log_group_name, days, "log group retention set");
            return Ok(json!({}));
        }
    }
    Err(LogsError::new(
        flotilla_logs::LogsErrorCode::OperationAbortedException,
        "Multiple concurrent requests to update the same resource were in conflict; try again.",
    ))
}
