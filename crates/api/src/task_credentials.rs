//! Task role credentials on the server: issued for the agent that runs a task with a
//! `taskRoleArn` (the server end of `AgentMessage::GetCredentials`), and looked up when a
//! request is signed with one of them.
//!
//! What this is: [`for_agent`] checks the task runs on the asking session's container instance
//! and has not stopped, then hands out its newest key while that key is in the first half of its
//! life, or issues a new one ([`flotilla_control::task_credentials::decide`]): the key's record
//! (`task-credentials/ACCESS_KEY_ID`, its secret access key and session token sealed with the
//! server's secrets key, bound to the record) and the key's entry in the task record are written
//! in one transaction with a compare on the task record, so a task that stopped meanwhile gets
//! nothing, and its STOPPED transaction (`flotilla_controllers::reports::release_on_stop`)
//! deletes every key it holds. Keys that expired are deleted with the next issue (and by the
//! sweeper). [`lookup`] finds a key's credential for SigV4 verification (`crate::server`).
//!
//! Why the secret parts are sealed rather than hashed: verifying a signature needs the secret
//! access key itself, and an agent that restarts gets its task's current key back.
//!
//! What this is not: the rules (pure, in `flotilla_control::task_credentials`), nor the
//! endpoint that serves them to containers (the agent's `metadata` module).
//!
//! Invariant: a secret access key or session token is never logged, never in an error message
//! and never stored in clear; it leaves the server only on the session of the agent that runs
//! the task.

use crate::context::Api;
use flotilla_control::task_credentials::{
    credential_key, decide, expired, principal_arn, seal_context, Issue, IssuedKey, KeyMaterial,
    Refusal, SealedPart, TaskCredentialRecord, RANDOM_BYTES,
};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, replace, task_key, to_bytes, Attempt};
use flotilla_controllers::reports::runs_on;
use flotilla_model::EcsError;
use flotilla_protocol::{CredentialsOutcome, RoleCredentials, SecretText};
use flotilla_seal::{Key, Sealed};
use flotilla_sigv4::Credential;
use flotilla_store::Compare;
use rand::RngCore;

pub use flotilla_control::task_credentials::{DEFAULT_LIFETIME_SECONDS, MIN_LIFETIME_SECONDS};

/// How the server issues task role credentials.
#[derive(Clone)]
pub struct TaskCredentialsConfig {
    /// The key their secret parts are sealed with (the server's secrets key).
    pub key: Key,
    /// How long a key is valid, seconds.
    pub lifetime_seconds: u64,
}

fn seal(key: &Key, access_key_id: &str, part: SealedPart, value: &str) -> String {
    let mut nonce = [0u8; flotilla_seal::NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    flotilla_seal::seal(
        key,
        nonce,
        &seal_context(access_key_id, part),
        value.as_bytes(),
    )
    .as_str()
    .to_string()
}

fn open(key: &Key, access_key_id: &str, part: SealedPart, sealed: &str) -> Result<String, String> {
    let bytes = flotilla_seal::open(
        key,
        &seal_context(access_key_id, part),
        &Sealed::from_stored(sealed.to_string()),
    )
    .map_err(|e| format!("the task credential {access_key_id} does not open: {e}"))?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| format!("the task credential {access_key_id} is not text"))
}

/// The credentials of a stored key, opened.
fn opened(key: &Key, rec: &TaskCredentialRecord) -> Result<RoleCredentials, String> {
    Ok(RoleCredentials {
        role_arn: rec.role_arn.clone(),
        access_key_id: rec.access_key_id.clone(),
        secret_access_key: SecretText(open(
            key,
            &rec.access_key_id,
            SealedPart::SecretAccessKey,
            &rec.sealed_secret_access_key,
        )?),
        session_token: SecretText(open(
            key,
            &rec.access_key_id,
            SealedPart::SessionToken,
            &rec.sealed_session_token,
        )?),
        issued_at: rec.issued_at,
        expiration: rec.expiration,
    })
}

/// The credentials of `task_arn`'s role for the agent of instance `cluster`/`id`.
pub async fn for_agent(api: &Api, cluster: &str, id: &str, task_arn: &str) -> CredentialsOutcome {
    match issue(api, cluster, id, task_arn).await {
        Ok(credentials) => {
            tracing::info!(task = %task_arn, access_key_id = %credentials.access_key_id, expiration = credentials.expiration, "task role credentials delivered to the task's agent");
            CredentialsOutcome::Issued { credentials }
        }
        Err(reason) => CredentialsOutcome::Failed { reason },
    }
}

async fn issue(
    api: &Api,
    cluster: &str,
    id: &str,
    task_arn: &str,
) -> Result<RoleCredentials, String> {
    let refused = |r: Refusal| r.reason(task_arn);
    let Some(cfg) = api.task_credentials() else {
        return Err(refused(Refusal::NotServed));
    };
    let (Some(task_cluster), Some(task_id)) = (
        flotilla_model::arn::embedded_cluster(task_arn),
        flotilla_model::arn::resource_name(task_arn, "task"),
    ) else {
        return Err(refused(Refusal::NotAssigned));
    };
    let key = task_key(task_cluster, task_id);
    let store = api.store.as_ref();
    let account = api.config.arns.account.clone();
    let outcome = api
        .plane
        .cas(&key, || async {
            let now = api.clock.now();
            let Some((rec, rev)) = get::<TaskRecord>(store, &key).await? else {
                return Ok(Attempt::Done(Err(Refusal::NotAssigned)));
            };
            if !runs_on(&rec, cluster, id) {
                return Ok(Attempt::Done(Err(Refusal::NotAssigned)));
            }
            if rec.is_stopped() {
                return Ok(Attempt::Done(Err(Refusal::Stopped)));
            }
            let Some(role_arn) = rec
                .assignment
                .as_ref()
                .and_then(|a| a.task_role_arn.clone())
            else {
                return Ok(Attempt::Done(Err(Refusal::NoRole)));
            };
            let expiration = match decide(&rec.credentials, now, cfg.lifetime_seconds) {
                Issue::Reuse(k) => {
                    let ckey = credential_key(&k.access_key_id);
                    if let Some((stored, _)) = get::<TaskCredentialRecord>(store, &ckey).await? {
                        return Ok(Attempt::Done(Ok(stored)));
                    }
                    // Its record is gone (swept): issue another.
                    now + cfg.lifetime_seconds as f64
                }
                Issue::New { expiration } => expiration,
            };
            let mut random = [0u8; RANDOM_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut random);
            let material = KeyMaterial::from_random(&random);
            let akid = material.access_key_id.clone();
            let stored = TaskCredentialRecord {
                access_key_id: akid.clone(),
                task_arn: task_arn.to_string(),
                principal_arn: principal_arn(&role_arn, task_id, &account),
                role_arn,
                issued_at: now,
                expiration,
                sealed_secret_access_key: seal(
                    &cfg.key,
                    &akid,
                    SealedPart::SecretAccessKey,
                    &material.secret_access_key,
                ),
                sealed_session_token: seal(
                    &cfg.key,
                    &akid,
                    SealedPart::SessionToken,
                    &material.session_token,
                ),
            };
            let gone = expired(&rec.credentials, now);
            let mut next = rec.clone();
            next.credentials.retain(|k| !gone.contains(k));
            next.credentials.push(IssuedKey {
                access_key_id: akid.clone(),
                issued_at: now,
                expiration,
            });
            let ckey = credential_key(&akid);
            let mut txn = replace(&key, rev, &next)?
                .when(Compare::Absent(ckey.clone()))
                .put(ckey, to_bytes(&stored)?);
            for k in gone {
                txn = txn.delete(credential_key(&k.access_key_id));
            }
            Ok(Attempt::Commit(txn, Ok(stored)))
        })
        .await
        .map_err(|e| format!("the task's credentials could not be issued: {}", e.message))?;
    let stored = outcome.map_err(refused)?;
    opened(&cfg.key, &stored)
}

/// A task key's credential (with its session token) and its expiration, for verifying a
/// request signed with it; `Ok(None)` when there is no such key (never issued, or revoked).
/// `Err` when the store or the key failed: the request is answered with a 5xx.
pub async fn lookup(api: &Api, access_key_id: &str) -> Result<Option<(Credential, f64)>, EcsError> {
    let Some(cfg) = api.task_credentials() else {
        return Ok(None);
    };
    let Some((rec, _)) =
        get::<TaskCredentialRecord>(api.store.as_ref(), &credential_key(access_key_id)).await?
    else {
        return Ok(None);
    };
    let creds = opened(&cfg.key, &rec).map_err(EcsError::server)?;
    Ok(Some((
        Credential {
            access_key_id: rec.access_key_id,
            secret_access_key: creds.secret_access_key.0,
            session_token: Some(creds.session_token.0),
            principal_arn: rec.principal_arn,
        },
        rec.expiration,
    )))
}
