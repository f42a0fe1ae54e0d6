//! Alarm records in the control-plane store: `cloudwatch/alarms/NAME` ->
//! [`flotilla_metrics::Alarm`] (the definition PutMetricAlarm wrote, desired state, and the
//! state the leader's evaluation last wrote). Alarms are few and change rarely, and they must
//! survive restarts and be the same on every replica, so they live in the store (etcd
//! replicates them) rather than with the series. Every write is a compare-and-swap on the
//! record's `mod_revision`; the evaluator's carries its term's fence.

use crate::error::CwError;
use flotilla_metrics::{Alarm, AlarmDefinition, AlarmStatus};
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Fence, Store, Txn};

/// The prefix of alarm records.
pub const ALARMS: &str = "cloudwatch/alarms/";

/// The key of alarm `name`.
pub fn alarm_key(name: &str) -> String {
    format!("{ALARMS}{name}")
}

fn decode(bytes: &[u8]) -> Result<Alarm, CwError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CwError::internal(format!("a stored alarm is unreadable: {e}")))
}

fn encode(a: &Alarm) -> Result<Vec<u8>, CwError> {
    serde_json::to_vec(a).map_err(|e| CwError::internal(format!("could not encode an alarm: {e}")))
}

/// Every alarm, by name, with its `mod_revision`.
pub async fn list(store: &dyn Store) -> Result<Vec<(Alarm, u64)>, CwError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(ALARMS, after.as_deref(), 500).await?;
        for kv in &page.items {
            out.push((decode(&kv.value)?, kv.mod_revision));
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => after = Some(last.key.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// The alarm named `name`.
pub async fn get(store: &dyn Store, name: &str) -> Result<Option<(Alarm, u64)>, CwError> {
    match store.get(&alarm_key(name)).await? {
        Some(kv) => Ok(Some((decode(&kv.value)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Creates or replaces an alarm. A new alarm, or one whose rule changed, starts at
/// INSUFFICIENT_DATA ("Unchecked: Initial alarm creation"); one redefined with the same rule
/// keeps its state, as CloudWatch's does.
pub async fn put(store: &dyn Store, definition: AlarmDefinition, now: f64) -> Result<(), CwError> {
    let key = alarm_key(&definition.name);
    let done = retry(store, || {
        let definition = definition.clone();
        let key = key.clone();
        async move {
            let old = get(store, &definition.name).await?;
            let (compare, status) = match &old {
                Some((a, rev)) => (
                    Compare::ModRevision(key.clone(), *rev),
                    if a.definition.rule == definition.rule {
                        a.status.clone()
                    } else {
                        AlarmStatus::initial(now)
                    },
                ),
                None => (Compare::Absent(key.clone()), AlarmStatus::initial(now)),
            };
            let alarm = Alarm { definition, status };
            Ok::<_, CwError>(Attempt::Commit(
                Txn::new().when(compare).put(key, encode(&alarm)?),
                (),
            ))
        }
    })
    .await?;
    done.map_err(|_| CwError::internal("the alarm was changed concurrently too often; try again"))
}

/// Deletes the alarms named (absent ones are skipped).
pub async fn delete(store: &dyn Store, names: &[String]) -> Result<(), CwError> {
    let mut txn = Txn::new();
    for n in names {
        txn = txn.delete(alarm_key(n));
    }
    store.txn(txn).await?;
    Ok(())
}

/// Writes an evaluated state, if the alarm is still the one evaluated (`rev`), fenced with the
/// leader's term. `Ok(false)`: the alarm changed or was deleted meanwhile, or the fence refused
/// (the next evaluation reads it again).
pub async fn set_status(
    store: &dyn Store,
    alarm: &Alarm,
    rev: u64,
    status: AlarmStatus,
    fence: &Fence,
) -> Result<bool, CwError> {
    let key = alarm_key(&alarm.definition.name);
    let next = Alarm {
        definition: alarm.definition.clone(),
        status,
    };
    let mut txn = Txn::new().when(Compare::ModRevision(key.clone(), rev));
    if let Some(c) = fence.compare() {
        txn = txn.when(c.clone());
    }
    Ok(store
        .txn(txn.put(key, encode(&next)?))
        .await?
        .is_committed())
}
