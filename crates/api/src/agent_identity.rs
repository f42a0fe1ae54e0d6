//! Agent identity at the edge: join tokens, the join itself, agent keys and what they may do.
//!
//! What this is:
//! - the operator's operations on join tokens, `FlotillaAdmin.CreateJoinToken` /
//!   `ListJoinTokens` / `RevokeJoinToken` (`flotilla token create|list|revoke`): a token's record
//!   keeps only the hash of its secret, which is shown once, in CreateJoinToken's answer;
//! - the join, `FlotillaAdmin.RegisterAgent` ([`REGISTER_AGENT`]): the one call served without
//!   a SigV4 signature, since the join token in its body is what authenticates it (as STS's
//!   AssumeRoleWithWebIdentity is authenticated by its token). It registers a new container
//!   instance in the token's cluster ([`crate::ops::register_container_instance::register`],
//!   `Registrant::Join`) and issues the agent a key of its own, bound to that instance, in the
//!   same transaction; the answer carries the key's secret, the only time it leaves the server;
//! - [`lookup`]: an agent key's credential for verifying a signature (its record, the secret
//!   sealed with the server's secrets key; the principal is the instance's ARN);
//! - [`agent_of`], [`authorize_ecs`], [`authorize_admin`], [`authorize_session`]: an agent key
//!   calls only what its agent needs for its own instance
//!   (`flotilla_control::agent_identity::decide_ecs`), anything else is AccessDeniedException
//!   in IAM's words, as AWS answers a principal no policy allows.
//!
//! What this is not: the rules (pure, `flotilla_control::agent_identity`), nor API keys, which
//! keep working as before for agents started with them.
//!
//! Invariant: a token's secret and an agent key's secret are never logged, never in an error
//! and never stored in clear.

use crate::context::{Api, Ctx};
use crate::ops::register_container_instance::{register, JoinGrant, Registrant};
use flotilla_control::agent_identity::{
    self as rules, AgentCredentialRecord, AgentDecision, AgentKey, BoundInstance, JoinToken,
    JoinTokenRecord, AGENT_KEY_RANDOM_BYTES, JOIN_TOKENS, TOKEN_RANDOM_BYTES,
};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{self, get, replace, task_key, to_bytes, Attempt};
use flotilla_controllers::reports::runs_on;
use flotilla_model::shapes::RegisterContainerInstanceRequest;
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::MANAGED_POOL;
use flotilla_seal::Sealed;
use flotilla_sigv4::{Caller, Credential};
use flotilla_store::{Compare, Txn};
use rand::RngCore;
use serde_json::{json, Value};

/// The join's operation (`X-Amz-Target: FlotillaAdmin.RegisterAgent`).
pub const REGISTER_AGENT: &str = "RegisterAgent";

fn seal_key(api: &Api) -> Result<&flotilla_seal::Key, EcsError> {
    api.task_credentials().map(|c| &c.key).ok_or_else(|| {
        EcsError::server(
            "this server has no secrets key to seal agent credentials with, so agents cannot join with a token",
        )
    })
}

/// An agent key's credential, for verifying a request signed with it; `Ok(None)` when there is
/// no such key (never issued, or revoked with its instance). `Err` when the store or the key
/// failed: the request is answered with a 5xx.
pub async fn lookup(api: &Api, access_key_id: &str) -> Result<Option<Credential>, EcsError> {
    let Some(cfg) = api.task_credentials() else {
        return Ok(None);
    };
    let Some((rec, _)) = get::<AgentCredentialRecord>(
        api.store.as_ref(),
        &rules::agent_credential_key(access_key_id),
    )
    .await?
    else {
        return Ok(None);
    };
    if BoundInstance::from_arn(&rec.container_instance_arn).is_none() {
        return Ok(None);
    }
    let secret = flotilla_seal::open(
        &cfg.key,
        &rules::seal_context(access_key_id),
        &Sealed::from_stored(rec.sealed_secret_access_key.clone()),
    )
    .map_err(|e| EcsError::server(format!("the agent key {access_key_id} does not open: {e}")))?;
    let secret = String::from_utf8(secret.to_vec())
        .map_err(|_| EcsError::server(format!("the agent key {access_key_id} is not text")))?;
    Ok(Some(Credential {
        access_key_id: rec.access_key_id,
        secret_access_key: secret,
        session_token: None,
        principal_arn: rec.container_instance_arn,
    }))
}

/// The container instance a caller's key is bound to: `Some` for an agent key (whose principal
/// is its instance's ARN, [`lookup`]), `None` for any other key.
pub fn agent_of(caller: &Caller) -> Result<Option<BoundInstance>, EcsError> {
    if !rules::looks_like_agent_key(&caller.access_key_id) {
        return Ok(None);
    }
    match BoundInstance::from_arn(&caller.principal_arn) {
        Some(b) => Ok(Some(b)),
        None => Err(denied(caller, "ecs:*", "*")),
    }
}

/// AccessDeniedException in IAM's words.
pub fn denied(caller: &Caller, action: &str, resource: &str) -> EcsError {
    EcsError::new(
        ErrorCode::AccessDeniedException,
        rules::denied_message(&caller.principal_arn, action, resource),
    )
}

async fn apply(
    api: &Api,
    caller: &Caller,
    bound: &BoundInstance,
    d: AgentDecision,
) -> Result<(), EcsError> {
    match d {
        AgentDecision::Allow => Ok(()),
        AgentDecision::Deny { action, resource } => {
            tracing::info!(principal = %caller.principal_arn, action = %action, "agent key denied");
            Err(denied(caller, &action, &resource))
        }
        AgentDecision::IfTasksRunHere {
            tasks,
            action,
            resource,
        } => {
            for (cluster, id) in tasks {
                let here = get::<TaskRecord>(api.store.as_ref(), &task_key(&cluster, &id))
                    .await?
                    .is_some_and(|(t, _)| runs_on(&t, &bound.cluster, &bound.id));
                if !here {
                    tracing::info!(principal = %caller.principal_arn, action = %action, task = %id, "agent key denied another instance's task");
                    return Err(denied(caller, &action, &resource));
                }
            }
            Ok(())
        }
    }
}

/// Holds an agent key to the ECS calls of its own instance; any other caller passes.
pub async fn authorize_ecs(
    api: &Api,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<(), EcsError> {
    match agent_of(caller)? {
        Some(bound) => {
            let d = rules::decide_ecs(&bound, operation, input);
            apply(api, caller, &bound, d).await
        }
        None => Ok(()),
    }
}

/// Holds an agent key to Flotilla's own operations its agent needs; any other caller passes.
pub async fn authorize_admin(
    api: &Api,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<(), EcsError> {
    match agent_of(caller)? {
        Some(bound) => {
            let d = rules::decide_admin(&bound, operation, input);
            apply(api, caller, &bound, d).await
        }
        None => Ok(()),
    }
}

/// Whether the caller may open the session (or ECS Exec's dial-back) of the container instance
/// `arn`: any configured key may; an agent key only its own instance's. `Ok(Some(key))` names
/// the agent key, whose revocation ends the session.
pub fn authorize_session(caller: &Caller, arn: &str) -> Result<Option<String>, EcsError> {
    match agent_of(caller)? {
        Some(bound) if rules::may_open_session(&bound, arn) => {
            Ok(Some(caller.access_key_id.clone()))
        }
        Some(_) => Err(denied(caller, "ecs:Poll", arn)),
        None => Ok(None),
    }
}

/// A token's view for `flotilla token list` (never its secret or hash).
fn view(rec: &JoinTokenRecord, now: f64) -> Value {
    json!({
        "id": rec.id,
        "cluster": rec.cluster,
        "managed": rec.cluster == MANAGED_POOL,
        "state": rec.state(now).as_str(),
        "createdAt": rec.created_at,
        "createdBy": rec.created_by,
        "expiresAt": rec.expires_at,
        "revokedAt": rec.revoked_at,
        "joins": rec.joins,
        "lastJoinedAt": rec.last_joined_at,
    })
}

/// `FlotillaAdmin.CreateJoinToken` `{"cluster"?: NAME|ARN, "managed"?: bool, "ttl"?: "24h"}`
/// -> `{"token": "ID.SECRET", ...the token's view}`: a token for the cluster (which must be
/// ACTIVE) or, with `managed`, the managed pool, valid for `ttl`
/// (`flotilla_control::agent_identity::parse_ttl`; absent: 24 hours; `"0"`: never expires).
pub async fn create_token(api: &Api, caller: &Caller, input: &Value) -> Result<Value, EcsError> {
    let managed = match input.get("managed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(EcsError::invalid_parameter(
                "managed must be true or false.",
            ))
        }
    };
    let named = match input.get("cluster") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.as_str()),
        Some(_) => {
            return Err(EcsError::invalid_parameter(
                "cluster must be a cluster name or ARN.",
            ))
        }
    };
    let cluster = match (managed, named) {
        (true, Some(_)) => {
            return Err(EcsError::invalid_parameter(
                "A token joins either a cluster or the managed pool (managed), not both.",
            ))
        }
        (true, None) => MANAGED_POOL.to_string(),
        (false, None) => {
            return Err(EcsError::invalid_parameter(
                "Name the cluster the token joins (cluster), or the managed pool (managed).",
            ))
        }
        (false, Some(c)) => {
            let (c, _) = records::active_cluster(api.store.as_ref(), Some(c)).await?;
            c.cluster_name.unwrap_or_default()
        }
    };
    let ttl = match input.get("ttl") {
        None | Some(Value::Null) => Some(rules::DEFAULT_TOKEN_TTL_SECONDS),
        Some(Value::String(t)) => {
            rules::parse_ttl(t).map_err(|e| EcsError::invalid_parameter(format!("ttl: {e}.")))?
        }
        Some(_) => {
            return Err(EcsError::invalid_parameter(
                "ttl must be a string such as 24h (or 0 for a token that never expires).",
            ))
        }
    };
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let token = JoinToken::from_random(&random);
    let now = api.clock.now();
    let rec = JoinTokenRecord::new(&token, &cluster, now, ttl, &caller.principal_arn);
    let key = rules::token_key(&token.id);
    let txn = Txn::new()
        .when(Compare::Absent(key.clone()))
        .put(key, to_bytes(&rec)?);
    if !records::commit(api.store.as_ref(), txn).await? {
        return Err(EcsError::server(
            "a join token of the same id exists; try again",
        ));
    }
    tracing::info!(token = %token.id, cluster = %cluster, expires_at = ?rec.expires_at, by = %caller.principal_arn, "join token created");
    let mut out = view(&rec, now);
    out["token"] = Value::String(token.text());
    Ok(out)
}

/// `FlotillaAdmin.ListJoinTokens` `{}` -> `{"tokens": [view, ...]}`, by id.
pub async fn list_tokens(api: &Api) -> Result<Value, EcsError> {
    let now = api.clock.now();
    let all = records::list::<JoinTokenRecord>(api.store.as_ref(), JOIN_TOKENS).await?;
    let tokens: Vec<Value> = all.iter().map(|(_, r, _)| view(r, now)).collect();
    Ok(json!({ "tokens": tokens }))
}

/// `FlotillaAdmin.RevokeJoinToken` `{"id": ID}` (or the whole token) -> `{"token": view}`: no
/// agent joins with it any more; agents that joined with it keep their credentials until their
/// instance is deregistered.
pub async fn revoke_token(api: &Api, caller: &Caller, input: &Value) -> Result<Value, EcsError> {
    let id = input
        .get("id")
        .and_then(Value::as_str)
        .map(|t| t.trim().split('.').next().unwrap_or(t))
        .ok_or_else(|| EcsError::invalid_parameter("id must be a join token id (fjt-...)."))?;
    let not_found = || {
        EcsError::new(
            ErrorCode::ResourceNotFoundException,
            format!("There is no join token {id}."),
        )
    };
    if !rules::is_token_id(id) {
        return Err(not_found());
    }
    let key = rules::token_key(id);
    let store = api.store.as_ref();
    let rec = api
        .plane
        .cas(&key, || async {
            let Some((rec, rev)) = get::<JoinTokenRecord>(store, &key).await? else {
                return Err(not_found());
            };
            let next = rec.revoked(api.clock.now());
            if next == rec {
                return Ok(Attempt::Done(rec));
            }
            Ok(Attempt::Commit(replace(&key, rev, &next)?, next))
        })
        .await?;
    tracing::info!(token = %id, by = %caller.principal_arn, "join token revoked");
    Ok(json!({ "token": view(&rec, api.clock.now()) }))
}

/// `FlotillaAdmin.RegisterAgent` `{"joinToken": "ID.SECRET", "registration":
/// RegisterContainerInstanceRequest}` (unsigned) -> `{"containerInstance", "cluster",
/// "credentials": {"accessKeyId", "secretAccessKey"}}`. The registration's `cluster` may be
/// left out (the token's); `containerInstanceArn` is ignored: a join always registers a new
/// instance, so a token never takes over an existing one.
pub async fn register_agent(
    api: &Api,
    input: &Value,
    host: Option<String>,
) -> Result<Value, EcsError> {
    let token = input
        .get("joinToken")
        .and_then(Value::as_str)
        .and_then(JoinToken::parse);
    let mut registration = input
        .get("registration")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !registration.is_object() {
        return Err(EcsError::invalid_parameter(
            "registration must be a RegisterContainerInstance request.",
        ));
    }
    let now = api.clock.now();
    // Checked here for a quick answer, and again in the registration's transaction.
    let stored = match &token {
        Some(t) => get::<JoinTokenRecord>(api.store.as_ref(), &rules::token_key(&t.id))
            .await?
            .map(|(r, _)| r),
        None => None,
    };
    let asked = registration
        .get("cluster")
        .and_then(Value::as_str)
        .map(str::to_string);
    let cluster = rules::check_join(token.as_ref(), stored.as_ref(), asked.as_deref(), now)
        .map_err(|r| {
            tracing::info!(token = ?token.as_ref().map(|t| &t.id), refusal = ?r, "join refused");
            r.error()
        })?;
    let Some(token) = token else {
        return Err(rules::JoinRefusal::Malformed.error());
    };
    registration["cluster"] = Value::String(cluster.clone());
    if let Some(m) = registration.as_object_mut() {
        m.remove("containerInstanceArn");
    }
    let req: RegisterContainerInstanceRequest =
        flotilla_model::validate::parse_input("RegisterContainerInstance", registration)?;
    let mut random = [0u8; AGENT_KEY_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let key = AgentKey::from_random(&random);
    let mut nonce = [0u8; flotilla_seal::NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = flotilla_seal::seal(
        seal_key(api)?,
        nonce,
        &rules::seal_context(&key.access_key_id),
        key.secret_access_key.as_bytes(),
    );
    let grant = JoinGrant {
        token: token.clone(),
        access_key_id: key.access_key_id.clone(),
        sealed_secret_access_key: sealed.as_str().to_string(),
    };
    let arns = &api.config.arns;
    let ctx = Ctx {
        api,
        caller: Caller {
            access_key_id: token.id.clone(),
            region: arns.region.clone(),
            service: "ecs".to_string(),
            principal_arn: format!(
                "arn:aws:ecs:{}:{}:join-token/{}",
                arns.region, arns.account, token.id
            ),
        },
        now,
        host,
    };
    let out = register(&ctx, req, Registrant::Join(&grant)).await?;
    let arn = out
        .container_instance
        .as_ref()
        .and_then(|c| c.container_instance_arn.clone())
        .unwrap_or_default();
    tracing::info!(token = %token.id, container_instance = %arn, cluster = %cluster, access_key_id = %key.access_key_id, "agent joined");
    Ok(json!({
        "containerInstance": out.container_instance,
        "cluster": cluster,
        "credentials": {
            "accessKeyId": key.access_key_id,
            "secretAccessKey": key.secret_access_key,
        },
    }))
}

/// Whether `target` is the join (`FlotillaAdmin.RegisterAgent`).
pub fn is_join(target: &str) -> bool {
    target
        .strip_prefix(crate::server::ADMIN_TARGET_PREFIX)
        .is_some_and(|op| op == REGISTER_AGENT)
}

/// Serves the join (unsigned; `POST /` with a JSON body, [`register_agent`]).
pub async fn serve_join(
    api: &Api,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Vec<u8>, EcsError> {
    if method != axum::http::Method::POST || uri.path() != "/" {
        return Err(EcsError::new(
            ErrorCode::UnknownOperationException,
            format!(
                "The ECS API is served at POST /, not {method} {}.",
                uri.path()
            ),
        ));
    }
    let input: Value = serde_json::from_slice(body).map_err(|e| {
        EcsError::serialization(format!("The request body is not valid JSON: {e}."))
    })?;
    if !input.is_object() {
        return Err(EcsError::serialization(
            "The request body must be a JSON object.",
        ));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let out = register_agent(api, &input, host).await?;
    serde_json::to_vec(&out)
        .map_err(|e| EcsError::server(format!("could not encode the response: {e}")))
}

/// Why an agent key may not call a service other than ECS (every other service serves users,
/// not agents): IAM's words, or `None` for any other key.
pub fn refuse_service(
    caller: &Caller,
    service: &dyn flotilla_edge::Service,
    operation: Option<&str>,
) -> Option<String> {
    rules::looks_like_agent_key(&caller.access_key_id).then(|| {
        let action = format!("{}:{}", service.signing_name(), operation.unwrap_or("*"));
        tracing::info!(principal = %caller.principal_arn, action = %action, "agent key denied");
        rules::denied_message(&caller.principal_arn, &action, "*")
    })
}
