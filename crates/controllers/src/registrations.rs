//! RegisterTaskDefinition's writes, committed in groups per family.
//!
//! A family's revision numbers come from its family record, written in the same transaction as
//! the new revision, so the registrations of one family are serialized (the family record's
//! writer lock, [`crate::plane::Stripes`]). One commit per registration would make a family's
//! registrations wait for each other's commit (an fsync with the embedded store) one at a
//! time. Instead every registration joins its family's queue, and whoever holds the family's
//! lock takes everything queued (up to [`MAX_GROUP`]) and commits it in ONE transaction: the
//! family record once and one record per registration, each with the next revision number, in
//! the order they queued. That is group commit: concurrent registrations share one commit.
//!
//! Invariants:
//! - Nothing is answered before the transaction that holds it is committed (durable on ack, as
//!   with one commit per registration); a store failure or a lost compare-and-swap after
//!   [`crate::records::CAS_MAX_ATTEMPTS`] attempts is every member's answer.
//! - Revision numbers never repeat and each registration gets exactly one.
//! - A group's work runs in a task of its own, so a caller that goes away (its connection
//!   closed) never abandons the others' registrations half done.
//! - A group stays within [`MAX_GROUP`] registrations and about [`MAX_GROUP_BYTES`] of records,
//!   well within the store's limits (etcd: 128 operations, 1.5 MiB a request).

use crate::plane::Plane;
use crate::records::{family_key, get, task_definition_key, to_bytes, Attempt, FamilyRecord};
use flotilla_model::shapes::{RegisterTaskDefinitionRequest, RegisterTaskDefinitionResponse};
use flotilla_model::task_definition::{validate_and_build, Registration};
use flotilla_model::EcsError;
use flotilla_store::{Compare, Txn};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most registrations committed in one transaction.
pub const MAX_GROUP: usize = 64;

/// About the most bytes of records committed in one transaction: a group ends after the record
/// that crosses it (a single registration is never refused for it).
pub const MAX_GROUP_BYTES: usize = 512 * 1024;

/// One registration to commit.
pub struct Registering {
    /// The request, already validated ([`validate_and_build`] with a probe registration).
    pub request: RegisterTaskDefinitionRequest,
    /// The principal that registers it (`registeredBy`).
    pub principal: String,
    /// The request's time (`registeredAt`).
    pub now: f64,
}

struct Waiting {
    registering: Registering,
    reply: oneshot::Sender<Result<RegisterTaskDefinitionResponse, EcsError>>,
}

/// The registrations waiting for their family's turn, per family.
#[derive(Default)]
pub struct Registrations {
    queues: Mutex<HashMap<String, VecDeque<Waiting>>>,
}

impl Registrations {
    fn push(&self, family: &str, waiting: Waiting) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(family.to_string())
            .or_default()
            .push_back(waiting);
    }

    /// Up to [`MAX_GROUP`] of `family`'s waiting registrations, in the order they came.
    fn take(&self, family: &str) -> Vec<Waiting> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = queues.get_mut(family) else {
            return Vec::new();
        };
        let n = queue.len().min(MAX_GROUP);
        let group: Vec<Waiting> = queue.drain(..n).collect();
        if queue.is_empty() {
            queues.remove(family);
        }
        group
    }
}

/// Registers `registering` as the next revision of its family, committed with whatever other
/// registrations of the family are waiting then; answers the stored record.
pub async fn register(
    plane: &Arc<Plane>,
    registering: Registering,
) -> Result<RegisterTaskDefinitionResponse, EcsError> {
    let family = registering.request.family.clone();
    let (reply, answer) = oneshot::channel();
    plane
        .registrations
        .push(&family, Waiting { registering, reply });
    // Queued before this task takes the lock: either an earlier holder of the lock took it
    // into its group, or this task will.
    let plane = plane.clone();
    tokio::spawn(async move {
        let fkey = family_key(&family);
        let _serial = plane.writers.lock(&fkey).await;
        let group = plane.registrations.take(&family);
        if !group.is_empty() {
            commit(&plane, &family, group).await;
        }
    });
    answer.await.map_err(|_| {
        EcsError::server("The registration was interrupted before it was committed. Retry it.")
    })?
}

/// Commits `group` (registrations of `family`, in order), in as many transactions as
/// [`MAX_GROUP_BYTES`] asks, and answers each member.
async fn commit(plane: &Plane, family: &str, mut group: Vec<Waiting>) {
    // Each round takes at least one member, so this ends.
    while !group.is_empty() {
        match commit_some(plane, family, &group).await {
            Ok((taken, results)) => {
                for (w, result) in group.drain(..taken).zip(results) {
                    let _ = w.reply.send(result);
                }
            }
            Err(e) => {
                for w in group.drain(..) {
                    let _ = w.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One transaction: the first members of `group` that fit [`MAX_GROUP_BYTES`] (at least one),
/// each built with its revision number. Answers how many members it took and each one's
/// result (a member whose definition does not build gets its error and no revision).
async fn commit_some(
    plane: &Plane,
    family: &str,
    group: &[Waiting],
) -> Result<(usize, Vec<Result<RegisterTaskDefinitionResponse, EcsError>>), EcsError> {
    let fkey = family_key(family);
    crate::records::cas(plane.store(), || async {
        let existing = get::<FamilyRecord>(plane.store(), &fkey).await?;
        let (mut record, compare) = match existing {
            Some((f, rev)) => (f, Compare::ModRevision(fkey.clone(), rev)),
            None => (FamilyRecord::default(), Compare::Absent(fkey.clone())),
        };
        let mut puts = Vec::new();
        let mut results = Vec::new();
        let mut bytes = 0;
        for w in group {
            if bytes >= MAX_GROUP_BYTES {
                break;
            }
            let r = &w.registering;
            let revision = record.last_revision + 1;
            let reg = Registration {
                arn: plane.arns.task_definition(family, revision),
                revision,
                registered_at: flotilla_control::timestamp(r.now),
                registered_by: r.principal.clone(),
            };
            match validate_and_build(&r.request, &reg) {
                Ok(td) => {
                    let stored = RegisterTaskDefinitionResponse {
                        task_definition: Some(td),
                        tags: Some(r.request.tags.clone().unwrap_or_default()),
                    };
                    let value = to_bytes(&stored)?;
                    bytes += value.len();
                    record.last_revision = revision;
                    record.active_revisions += 1;
                    puts.push((task_definition_key(family, revision), value));
                    results.push(Ok(stored));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let taken = results.len();
        if puts.is_empty() {
            return Ok(Attempt::Done((taken, results)));
        }
        let mut txn = Txn::new()
            .when(compare)
            .put(fkey.clone(), to_bytes(&record)?);
        for (key, value) in puts {
            txn = txn.put(key, value);
        }
        Ok(Attempt::Commit(txn, (taken, results)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::SystemClock;
    use flotilla_model::arn::ArnContext;
    use flotilla_model::shapes::TaskDefinitionStatus;
    use flotilla_store::{MemoryStore, Store};

    fn request(family: &str, command: &str) -> RegisterTaskDefinitionRequest {
        serde_json::from_value(serde_json::json!({
            "family": family,
            "containerDefinitions": [
                {"name": "c", "image": "busybox", "memory": 64, "command": [command]}
            ],
        }))
        .unwrap()
    }

    fn plane(store: Arc<MemoryStore>) -> Arc<Plane> {
        Arc::new(Plane::new(
            store,
            ArnContext {
                region: "us-east-1".into(),
                account: "123456789012".into(),
            },
            Arc::new(SystemClock),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_registrations_get_every_revision_once_and_share_commits() {
        let store = Arc::new(MemoryStore::new());
        let plane = plane(store.clone());
        let n = 200;
        let calls = (0..n).map(|i| {
            let plane = plane.clone();
            tokio::spawn(async move {
                let r = Registering {
                    request: request("web", &format!("run {i}")),
                    principal: "arn:aws:iam::123456789012:root".into(),
                    now: 1.0,
                };
                register(&plane, r).await.unwrap()
            })
        });
        let mut revisions = Vec::new();
        for call in calls {
            let record = call.await.unwrap();
            let td = record.task_definition.unwrap();
            assert_eq!(td.status, Some(TaskDefinitionStatus::Active));
            let revision = td.revision;
            // What was answered is what was stored.
            let (stored, _) = get::<RegisterTaskDefinitionResponse>(
                store.as_ref(),
                &task_definition_key("web", revision),
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(stored.task_definition.unwrap().revision, revision);
            revisions.push(revision);
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=n).collect::<Vec<i32>>());
        let (family, _) = get::<FamilyRecord>(store.as_ref(), &family_key("web"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(family.last_revision, n);
        assert_eq!(family.active_revisions, n as u32);
        // Fewer commits than registrations: they were grouped (one commit per family write,
        // each advancing the revision by one).
        let commits = store.revision().await.unwrap();
        assert!(
            commits <= n as u64,
            "{commits} commits for {n} registrations"
        );
    }

    #[tokio::test]
    async fn a_group_is_cut_at_its_byte_budget_and_all_of_it_is_committed() {
        let store = Arc::new(MemoryStore::new());
        let plane = plane(store.clone());
        // Records of about 100 KiB: the group of 12 (1.2 MiB) takes at least two transactions.
        let big = "x".repeat(100 * 1024);
        let (replies, answers): (Vec<_>, Vec<_>) = (0..12).map(|_| oneshot::channel()).unzip();
        let group: Vec<Waiting> = replies
            .into_iter()
            .map(|reply| Waiting {
                registering: Registering {
                    request: request("big", &big),
                    principal: "p".into(),
                    now: 1.0,
                },
                reply,
            })
            .collect();
        commit(&plane, "big", group).await;
        let mut revisions = Vec::new();
        for a in answers {
            let record = a.await.unwrap().unwrap();
            revisions.push(record.task_definition.unwrap().revision);
        }
        assert_eq!(revisions, (1..=12).collect::<Vec<i32>>());
        let commits = store.revision().await.unwrap();
        assert!((2..12).contains(&commits), "{commits} commits");
    }
}
