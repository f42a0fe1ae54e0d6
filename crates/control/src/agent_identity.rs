//! Agent identity, as pure rules: join tokens an operator creates, the credentials an agent
//! receives when it joins with one, and what those credentials may do.
//!
//! What this is:
//! - **Join tokens** (`flotilla token create`): `fjt-` and 8 base-32 characters (the token's id,
//!   which is not secret: `flotilla token list` shows it and `revoke` takes it), a dot, and 32
//!   base-32 characters of secret (160 bits), drawn from random bytes the caller passes in
//!   ([`JoinToken::from_random`]). The record at `join-tokens/ID` ([`JoinTokenRecord`]) holds
//!   the cluster it joins (or `flotilla_protocol::MANAGED_POOL`), its expiry and revocation, and
//!   only the SHA-256 of its secret ([`secret_hash`]); [`check_join`] says whether a presented
//!   token admits an agent to a cluster, and why not ([`JoinRefusal`]).
//! - **Agent credentials**: a long-term access key of the agent's own, `AGNT` and 16 base-32
//!   characters with a 40-character secret ([`AgentKey::from_random`]), bound to the container
//!   instance the join registered. Its record at `agent-credentials/ACCESS_KEY_ID`
//!   ([`AgentCredentialRecord`]) holds the secret sealed with the server's secrets key (bound to
//!   the record, [`seal_context`]): verifying a SigV4 signature needs the secret itself.
//! - **What an agent key may do** ([`decide_ecs`], [`decide_admin`], [`may_open_session`]): the
//!   calls of an agent for its own instance only: RegisterContainerInstance (re-registering its
//!   own ARN), DiscoverPollEndpoint, Get/UpdateTaskProtection of the tasks that run on it,
//!   `FlotillaAdmin.OpenLogStream` for its own streams and `ResolveName`, its session and ECS
//!   Exec's dial-back for its own instance. Anything else is denied with IAM's message
//!   ([`denied_message`]), as AWS denies a principal whose policy does not allow the action.
//!
//! What this is not: sealing, hashing's storage, signature verification or any I/O, clock or
//! randomness (the edge, `flotilla_api::agent_identity`, does those).
//!
//! Invariants: a token's secret and an agent key's secret are never stored in clear (the token
//! only as a hash, the key only sealed) and never printed by `Debug`; an agent key speaks only
//! for the one container instance its record names, and is valid exactly as long as its record
//! exists (DeregisterContainerInstance deletes it in the transaction that makes the instance
//! INACTIVE).

use crate::task_credentials::{base32, base64};
use flotilla_model::{EcsError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of join token records (`join-tokens/ID`).
pub const JOIN_TOKENS: &str = "join-tokens/";
/// Prefix of agent credential records (`agent-credentials/ACCESS_KEY_ID`).
pub const AGENT_CREDENTIALS: &str = "agent-credentials/";
/// Every token id starts with this.
pub const TOKEN_ID_PREFIX: &str = "fjt-";
/// Base-32 characters of a token id after its prefix (40 random bits).
pub const TOKEN_ID_CHARS: usize = 8;
/// Base-32 characters of a token's secret (160 random bits).
pub const TOKEN_SECRET_CHARS: usize = 32;
/// How many random bytes [`JoinToken::from_random`] takes.
pub const TOKEN_RANDOM_BYTES: usize = 5 + 20;
/// How long a token is valid unless its creator says otherwise (24 hours, as kubeadm's).
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 24 * 3600;
/// Every agent access key id starts with this.
pub const AGENT_KEY_PREFIX: &str = "AGNT";
/// Base-32 characters of an agent key id after its prefix (80 random bits).
pub const AGENT_KEY_RANDOM_CHARS: usize = 16;
/// How many random bytes [`AgentKey::from_random`] takes.
pub const AGENT_KEY_RANDOM_BYTES: usize = 10 + 30;

const BASE32_UPPER: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The key of a join token's record.
pub fn token_key(id: &str) -> String {
    format!("{JOIN_TOKENS}{id}")
}

/// The key of an agent key's record.
pub fn agent_credential_key(access_key_id: &str) -> String {
    format!("{AGENT_CREDENTIALS}{access_key_id}")
}

fn is_base32_lower(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// Whether `id` has the shape of a token id (`fjt-` and 8 base-32 characters).
pub fn is_token_id(id: &str) -> bool {
    id.strip_prefix(TOKEN_ID_PREFIX)
        .is_some_and(|rest| is_base32_lower(rest, TOKEN_ID_CHARS))
}

/// A join token: its public id and its secret. `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `fjt-` and 8 base-32 characters.
    pub id: String,
    /// 32 base-32 characters.
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    /// A token from [`TOKEN_RANDOM_BYTES`] bytes of a cryptographic generator.
    pub fn from_random(random: &[u8; TOKEN_RANDOM_BYTES]) -> JoinToken {
        let (id, secret) = random.split_at(5);
        JoinToken {
            id: format!("{TOKEN_ID_PREFIX}{}", base32(id).to_ascii_lowercase()),
            secret: base32(secret).to_ascii_lowercase(),
        }
    }

    /// Reads a token as an operator pastes it (`ID.SECRET`, surrounding blanks ignored);
    /// `None` when it does not have a token's shape.
    pub fn parse(text: &str) -> Option<JoinToken> {
        let (id, secret) = text.trim().split_once('.')?;
        (is_token_id(id) && is_base32_lower(secret, TOKEN_SECRET_CHARS)).then(|| JoinToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The token as the operator hands it to an agent: `ID.SECRET`.
    pub fn text(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// The hash of a token's secret that its record keeps (hex SHA-256 of a label, the id and the
/// secret: a secret hashed under one id does not match under another).
pub fn secret_hash(id: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"flotilla-join-token\0");
    h.update(id.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two hashes in time that does not depend on where they differ.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A stored join token (no secret: only its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// The token's id.
    pub id: String,
    /// The cluster (name) an agent joins with it, or `flotilla_protocol::MANAGED_POOL`.
    pub cluster: String,
    /// [`secret_hash`] of its secret.
    pub secret_sha256: String,
    /// Creation time, epoch seconds.
    pub created_at: f64,
    /// Expiry, epoch seconds; `None`: it never expires.
    #[serde(default)]
    pub expires_at: Option<f64>,
    /// When it was revoked, epoch seconds.
    #[serde(default)]
    pub revoked_at: Option<f64>,
    /// The principal that created it.
    #[serde(default)]
    pub created_by: String,
    /// How many agents joined with it.
    #[serde(default)]
    pub joins: u64,
    /// When an agent last joined with it, epoch seconds.
    #[serde(default)]
    pub last_joined_at: Option<f64>,
}

/// Whether a token admits agents now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Yes.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by an operator.
    Revoked,
}

impl TokenState {
    /// How `flotilla token list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "ACTIVE",
            TokenState::Expired => "EXPIRED",
            TokenState::Revoked => "REVOKED",
        }
    }
}

impl JoinTokenRecord {
    /// A new token's record.
    pub fn new(
        token: &JoinToken,
        cluster: &str,
        now: f64,
        ttl_seconds: Option<u64>,
        created_by: &str,
    ) -> Self {
        JoinTokenRecord {
            id: token.id.clone(),
            cluster: cluster.to_string(),
            secret_sha256: secret_hash(&token.id, &token.secret),
            created_at: now,
            expires_at: ttl_seconds.map(|t| now + t as f64),
            revoked_at: None,
            created_by: created_by.to_string(),
            joins: 0,
            last_joined_at: None,
        }
    }

    /// Its state at `now` (revocation first: a revoked token stays revoked).
    pub fn state(&self, now: f64) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// The record once an agent joined with it at `now`.
    pub fn joined(&self, now: f64) -> Self {
        let mut next = self.clone();
        next.joins += 1;
        next.last_joined_at = Some(now);
        next
    }

    /// The record revoked at `now` (a token revoked already keeps its first revocation time).
    pub fn revoked(&self, now: f64) -> Self {
        let mut next = self.clone();
        next.revoked_at = next.revoked_at.or(Some(now));
        next
    }
}

/// Why a join is refused. The first two say nothing about whether the id exists, so a guessed
/// id learns nothing; the others are told only to a caller who holds the right secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The text is not a join token.
    Malformed,
    /// No token has this id, or its secret is not this one.
    Invalid,
    /// The token expired.
    Expired {
        /// Its id.
        id: String,
    },
    /// The token was revoked.
    Revoked {
        /// Its id.
        id: String,
    },
    /// The agent asked for another cluster than the token's.
    WrongCluster {
        /// Its id.
        id: String,
        /// The token's cluster.
        token_cluster: String,
        /// What the agent asked for.
        asked: String,
    },
}

impl JoinRefusal {
    /// The error the join is answered with: an invalid token is `UnrecognizedClientException`
    /// and an expired one `ExpiredTokenException` (AWS's answers for a bad or expired
    /// credential), a revoked one `UnrecognizedClientException` naming the revocation, another
    /// cluster `AccessDeniedException`.
    pub fn error(&self) -> EcsError {
        match self {
            JoinRefusal::Malformed => EcsError::new(
                ErrorCode::UnrecognizedClientException,
                "The join token is not valid: expected ID.SECRET as `flotilla token create` prints it.",
            ),
            JoinRefusal::Invalid => EcsError::new(
                ErrorCode::UnrecognizedClientException,
                "The join token is not valid.",
            ),
            JoinRefusal::Expired { id } => EcsError::new(
                ErrorCode::ExpiredTokenException,
                format!("The join token {id} has expired; create another with `flotilla token create`."),
            ),
            JoinRefusal::Revoked { id } => EcsError::new(
                ErrorCode::UnrecognizedClientException,
                format!("The join token {id} was revoked; create another with `flotilla token create`."),
            ),
            JoinRefusal::WrongCluster { id, token_cluster, asked } => EcsError::new(
                ErrorCode::AccessDeniedException,
                format!("The join token {id} joins {}, not {}.", describe_cluster(token_cluster), describe_cluster(asked)),
            ),
        }
    }
}

fn describe_cluster(c: &str) -> String {
    if c == flotilla_protocol::MANAGED_POOL {
        "the managed pool (Fargate capacity)".to_string()
    } else {
        format!("the cluster '{c}'")
    }
}

/// The cluster name a request names (a name or a cluster ARN; `None` is `default`).
fn cluster_name(value: Option<&str>) -> &str {
    match value {
        None => "default",
        Some(v) => flotilla_model::arn::resource_name(v, "cluster").unwrap_or(v),
    }
}

/// Whether `token` (as presented) admits an agent to `asked` (the cluster the registration
/// names: `None` for the token's own) at `now`, given the record stored under its id.
/// `Ok` is the cluster the agent joins.
pub fn check_join(
    token: Option<&JoinToken>,
    record: Option<&JoinTokenRecord>,
    asked: Option<&str>,
    now: f64,
) -> Result<String, JoinRefusal> {
    let Some(token) = token else {
        return Err(JoinRefusal::Malformed);
    };
    let Some(rec) = record.filter(|r| {
        r.id == token.id && same_hash(&r.secret_sha256, &secret_hash(&token.id, &token.secret))
    }) else {
        return Err(JoinRefusal::Invalid);
    };
    match rec.state(now) {
        TokenState::Active => {}
        TokenState::Expired => return Err(JoinRefusal::Expired { id: rec.id.clone() }),
        TokenState::Revoked => return Err(JoinRefusal::Revoked { id: rec.id.clone() }),
    }
    if let Some(asked) = asked {
        let name = cluster_name(Some(asked));
        if name != rec.cluster {
            return Err(JoinRefusal::WrongCluster {
                id: rec.id.clone(),
                token_cluster: rec.cluster.clone(),
                asked: name.to_string(),
            });
        }
    }
    Ok(rec.cluster.clone())
}

/// Reads a token's time to live: a whole number with a unit (`90s`, `30m`, `24h`, `7d`), or
/// `0` for a token that never expires. `Ok(None)` is "never".
pub fn parse_ttl(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(None);
    }
    let bad = || {
        format!("a time to live is a whole number with a unit (90s, 30m, 24h, 7d) or 0 for never, not '{text}'")
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit) {
        Some(0) => Err(bad()),
        // Ten years at most: a longer one is "never" in all but name.
        Some(s) if s <= 10 * 365 * 86400 => Ok(Some(s)),
        _ => Err(format!(
            "a time to live is at most ten years (3650d); use 0 for a token that never expires, not '{text}'"
        )),
    }
}

/// Whether `access_key_id` has the shape of an agent key (checked before any store read, so an
/// unknown key of another shape costs nothing).
pub fn looks_like_agent_key(access_key_id: &str) -> bool {
    access_key_id
        .strip_prefix(AGENT_KEY_PREFIX)
        .is_some_and(|rest| {
            rest.len() == AGENT_KEY_RANDOM_CHARS && rest.bytes().all(|b| BASE32_UPPER.contains(&b))
        })
}

/// A new agent key. `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentKey {
    /// `AGNT` and 16 base-32 characters.
    pub access_key_id: String,
    /// 40 characters.
    pub secret_access_key: String,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AgentKey {
    /// A key from [`AGENT_KEY_RANDOM_BYTES`] bytes of a cryptographic generator.
    pub fn from_random(random: &[u8; AGENT_KEY_RANDOM_BYTES]) -> AgentKey {
        let (id, secret) = random.split_at(10);
        AgentKey {
            access_key_id: format!("{AGENT_KEY_PREFIX}{}", base32(id)),
            secret_access_key: base64(secret),
        }
    }
}

/// A stored agent key: the instance it speaks for and its secret, sealed with the server's
/// secrets key (bound to this record by [`seal_context`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCredentialRecord {
    /// The access key id.
    pub access_key_id: String,
    /// The container instance it is bound to (also the principal its requests act as).
    pub container_instance_arn: String,
    /// The instance's cluster (or `flotilla_protocol::MANAGED_POOL`).
    pub cluster: String,
    /// The instance's id.
    pub instance_id: String,
    /// Issue time, epoch seconds.
    pub issued_at: f64,
    /// The join token it was issued for.
    pub join_token_id: String,
    /// The secret access key, sealed.
    pub sealed_secret_access_key: String,
}

/// What an agent key's sealed secret is bound to, so a value moved to another record does not
/// open.
pub fn seal_context(access_key_id: &str) -> Vec<u8> {
    format!("agent-credentials\0{access_key_id}\0secret-access-key").into_bytes()
}

/// The container instance an agent key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundInstance {
    /// Its ARN (long format).
    pub arn: String,
    /// Its cluster (or `flotilla_protocol::MANAGED_POOL`).
    pub cluster: String,
    /// Its id.
    pub id: String,
    region: String,
    account: String,
}

impl BoundInstance {
    /// From a long-format container instance ARN; `None` for anything else.
    pub fn from_arn(arn: &str) -> Option<BoundInstance> {
        let parsed = flotilla_model::arn::parse(arn)?;
        if parsed.resource_type != "container-instance" {
            return None;
        }
        let cluster = flotilla_model::arn::embedded_cluster(arn)?;
        let id = flotilla_model::arn::resource_name(arn, "container-instance")?;
        Some(BoundInstance {
            arn: arn.to_string(),
            cluster: cluster.to_string(),
            id: id.to_string(),
            region: parsed.region,
            account: parsed.account,
        })
    }

    /// Whether a request's `cluster` member (`None`: `default`) names this instance's cluster.
    pub fn names_cluster(&self, value: Option<&str>) -> bool {
        if value.is_some_and(|v| v.starts_with("arn:") && !self.same_place(v)) {
            return false;
        }
        cluster_name(value) == self.cluster
    }

    /// Whether `value` (an ARN, or an id) names this instance.
    pub fn names_instance(&self, value: &str) -> bool {
        if value.starts_with("arn:") {
            value == self.arn
        } else {
            value == self.id
        }
    }

    fn same_place(&self, arn: &str) -> bool {
        flotilla_model::arn::parse(arn)
            .is_some_and(|p| p.region == self.region && p.account == self.account)
    }

    /// A cluster's ARN in this instance's region and account (for messages).
    fn cluster_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:ecs:{}:{}:cluster/{name}",
            self.region, self.account
        )
    }
}

/// Whether an agent key bound to `bound` may open the session (or ECS Exec's dial-back) of the
/// container instance `requested` (the ARN the upgrade names).
pub fn may_open_session(bound: &BoundInstance, requested: &str) -> bool {
    requested == bound.arn
}

/// What an agent key's call is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentDecision {
    /// Allowed.
    Allow,
    /// Allowed if every one of these tasks (cluster, id) runs on the bound instance (the edge
    /// reads their records); denied otherwise.
    IfTasksRunHere {
        /// The tasks, by cluster and id.
        tasks: Vec<(String, String)>,
        /// The action, for the denial.
        action: String,
        /// The resource, for the denial.
        resource: String,
    },
    /// Denied.
    Deny {
        /// The IAM action (`ecs:RunTask`).
        action: String,
        /// The resource the call was for (`*` when none is named).
        resource: String,
    },
}

fn str_member<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// What an agent key bound to `bound` may do with the ECS operation `operation` (its name,
/// `RunTask`) on `input` (the request body).
pub fn decide_ecs(bound: &BoundInstance, operation: &str, input: &Value) -> AgentDecision {
    let action = format!("ecs:{operation}");
    let cluster = str_member(input, "cluster");
    let resource = match cluster {
        Some(_) if !bound.names_cluster(cluster) => bound.cluster_arn(cluster_name(cluster)),
        _ => bound.arn.clone(),
    };
    let deny = |resource: String| AgentDecision::Deny {
        action: action.clone(),
        resource,
    };
    match operation {
        "RegisterContainerInstance" => {
            let own =
                str_member(input, "containerInstanceArn").is_some_and(|a| bound.names_instance(a));
            if own && bound.names_cluster(cluster) {
                AgentDecision::Allow
            } else {
                deny(resource)
            }
        }
        "DiscoverPollEndpoint" => {
            let own = input
                .get("containerInstance")
                .is_none_or(|v| v.as_str().is_some_and(|a| bound.names_instance(a)));
            if own && (cluster.is_none() || bound.names_cluster(cluster)) {
                AgentDecision::Allow
            } else {
                deny(resource)
            }
        }
        "GetTaskProtection" | "UpdateTaskProtection" => {
            let Some(list) = input.get("tasks").and_then(Value::as_array) else {
                return deny(resource);
            };
            let mut tasks = Vec::new();
            for t in list {
                let Some(t) = t.as_str() else {
                    return deny(resource);
                };
                let task_cluster = flotilla_model::arn::embedded_cluster(t)
                    .unwrap_or_else(|| cluster_name(cluster));
                let Some(id) = flotilla_model::arn::resource_name(t, "task") else {
                    return deny(resource);
                };
                tasks.push((task_cluster.to_string(), id.to_string()));
            }
            AgentDecision::IfTasksRunHere {
                tasks,
                resource: bound.cluster_arn(cluster_name(cluster)),
                action,
            }
        }
        _ => deny(match cluster {
            Some(c) => bound.cluster_arn(cluster_name(Some(c))),
            None => "*".to_string(),
        }),
    }
}

/// What an agent key bound to `bound` may do with Flotilla's own operation `operation`
/// (`FlotillaAdmin.<operation>`) on `input`.
pub fn decide_admin(bound: &BoundInstance, operation: &str, input: &Value) -> AgentDecision {
    match operation {
        "OpenLogStream"
            if str_member(input, "containerInstanceArn").is_some_and(|a| a == bound.arn) =>
        {
            AgentDecision::Allow
        }
        flotilla_protocol::dns::RESOLVE_NAME => AgentDecision::Allow,
        _ => AgentDecision::Deny {
            action: format!("flotilla:{operation}"),
            resource: "*".to_string(),
        },
    }
}

/// IAM's words for a denied call: "User: PRINCIPAL is not authorized to perform: ACTION on
/// resource: RESOURCE because no identity-based policy allows the ACTION action".
pub fn denied_message(principal: &str, action: &str, resource: &str) -> String {
    format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:ecs:us-east-1:000000000000:container-instance/prod/0123abcd";

    fn bound() -> BoundInstance {
        BoundInstance::from_arn(ARN).unwrap()
    }

    fn token() -> JoinToken {
        JoinToken::from_random(&[7u8; TOKEN_RANDOM_BYTES])
    }

    fn record(now: f64, ttl: Option<u64>) -> JoinTokenRecord {
        JoinTokenRecord::new(&token(), "prod", now, ttl, "arn:aws:iam::000000000000:root")
    }

    #[test]
    fn tokens_have_their_shape_and_read_back() {
        let t = token();
        assert!(is_token_id(&t.id), "{}", t.id);
        assert_eq!(t.secret.len(), TOKEN_SECRET_CHARS);
        let text = t.text();
        assert_eq!(JoinToken::parse(&format!("  {text}\n")), Some(t.clone()));
        assert!(!format!("{t:?}").contains(&t.secret));
        for bad in [
            "",
            "fjt-abcdefgh",
            "fjt-abcdefgh.",
            "abc.def",
            "fjt-ABCDEFGH.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "fjt-abcdefgh.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "fjt-abcdefgh.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
            "fjt-abcdefg.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(JoinToken::parse(bad), None, "{bad}");
        }
        assert!(JoinToken::parse("fjt-abcdefgh.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_some());
    }

    #[test]
    fn the_record_keeps_only_a_hash_bound_to_the_id() {
        let t = token();
        let rec = record(0.0, None);
        let stored = serde_json::to_string(&rec).unwrap();
        assert!(!stored.contains(&t.secret));
        assert_eq!(rec.secret_sha256, secret_hash(&t.id, &t.secret));
        assert_ne!(secret_hash("fjt-aaaaaaaa", &t.secret), rec.secret_sha256);
    }

    #[test]
    fn a_join_needs_the_right_secret_an_active_token_and_its_cluster() {
        let t = token();
        let rec = record(100.0, Some(60));
        assert_eq!(
            check_join(Some(&t), Some(&rec), None, 120.0),
            Ok("prod".into())
        );
        assert_eq!(
            check_join(Some(&t), Some(&rec), Some("prod"), 120.0),
            Ok("prod".into())
        );
        assert_eq!(
            check_join(
                Some(&t),
                Some(&rec),
                Some("arn:aws:ecs:us-east-1:000000000000:cluster/prod"),
                120.0
            ),
            Ok("prod".into())
        );
        assert_eq!(
            check_join(None, Some(&rec), None, 120.0),
            Err(JoinRefusal::Malformed)
        );
        assert_eq!(
            check_join(Some(&t), None, None, 120.0),
            Err(JoinRefusal::Invalid)
        );
        let mut wrong = t.clone();
        wrong.secret = "a".repeat(TOKEN_SECRET_CHARS);
        assert_eq!(
            check_join(Some(&wrong), Some(&rec), None, 120.0),
            Err(JoinRefusal::Invalid)
        );
        assert_eq!(
            check_join(Some(&t), Some(&rec), None, 160.0),
            Err(JoinRefusal::Expired { id: t.id.clone() })
        );
        // A wrong secret is never told the token expired.
        assert_eq!(
            check_join(Some(&wrong), Some(&rec), None, 160.0),
            Err(JoinRefusal::Invalid)
        );
        assert_eq!(
            check_join(Some(&t), Some(&rec.revoked(130.0)), None, 140.0),
            Err(JoinRefusal::Revoked { id: t.id.clone() })
        );
        assert!(matches!(
            check_join(Some(&t), Some(&rec), Some("dev"), 120.0),
            Err(JoinRefusal::WrongCluster { .. })
        ));
        let never = record(0.0, None);
        assert_eq!(
            check_join(Some(&t), Some(&never), None, 1e12),
            Ok("prod".into())
        );
        for (r, code) in [
            (JoinRefusal::Invalid, ErrorCode::UnrecognizedClientException),
            (
                JoinRefusal::Expired { id: "x".into() },
                ErrorCode::ExpiredTokenException,
            ),
            (
                JoinRefusal::Revoked { id: "x".into() },
                ErrorCode::UnrecognizedClientException,
            ),
        ] {
            assert_eq!(r.error().code, code);
        }
    }

    #[test]
    fn states_count_and_revocation_stays() {
        let rec = record(0.0, Some(10));
        assert_eq!(rec.state(9.9), TokenState::Active);
        assert_eq!(rec.state(10.0), TokenState::Expired);
        let r = rec.revoked(5.0);
        assert_eq!(r.state(6.0), TokenState::Revoked);
        assert_eq!(r.revoked(8.0).revoked_at, Some(5.0));
        let j = rec.joined(3.0).joined(4.0);
        assert_eq!((j.joins, j.last_joined_at), (2, Some(4.0)));
    }

    #[test]
    fn ttls_read_as_operators_write_them() {
        assert_eq!(parse_ttl("90s"), Ok(Some(90)));
        assert_eq!(parse_ttl("30m"), Ok(Some(1800)));
        assert_eq!(parse_ttl("24h"), Ok(Some(86400)));
        assert_eq!(parse_ttl("7d"), Ok(Some(7 * 86400)));
        assert_eq!(parse_ttl("0"), Ok(None));
        for bad in [
            "",
            "h",
            "10",
            "0s",
            "-1h",
            "1.5h",
            "3w",
            "99999999999999999999d",
            "4000d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_keys_have_their_own_shape() {
        let k = AgentKey::from_random(&[0u8; AGENT_KEY_RANDOM_BYTES]);
        assert_eq!(k.access_key_id, "AGNTAAAAAAAAAAAAAAAA");
        assert_eq!(k.secret_access_key.len(), 40);
        assert!(looks_like_agent_key(&k.access_key_id));
        assert!(!format!("{k:?}").contains(&k.secret_access_key));
        for (akid, want) in [
            ("AGNTABCDEFGHIJKLMNOP", true),
            ("ASIAABCDEFGHIJKLMNOP", false),
            ("AGNTABCDEFGHIJKLMNO", false),
            ("AGNTabcdefghijklmnop", false),
            ("AGNTABCDEFGHIJKLMN01", false),
        ] {
            assert_eq!(looks_like_agent_key(akid), want, "{akid}");
        }
        assert!(!crate::task_credentials::looks_like_task_key(
            "AGNTABCDEFGHIJKLMNOP"
        ));
        assert_ne!(seal_context("AGNTA"), seal_context("AGNTB"));
    }

    #[test]
    fn an_agent_key_registers_and_polls_only_for_its_own_instance() {
        let b = bound();
        let allow = |op: &str, input: Value| decide_ecs(&b, op, &input) == AgentDecision::Allow;
        assert!(allow(
            "RegisterContainerInstance",
            json!({"cluster": "prod", "containerInstanceArn": ARN})
        ));
        assert!(!allow(
            "RegisterContainerInstance",
            json!({"cluster": "prod"})
        ));
        assert!(!allow(
            "RegisterContainerInstance",
            json!({"cluster": "other", "containerInstanceArn": ARN})
        ));
        assert!(!allow(
            "RegisterContainerInstance",
            json!({"cluster": "prod", "containerInstanceArn": ARN.replace("0123abcd", "ffff")})
        ));
        // `default` is the cluster of a request that names none.
        assert!(!allow(
            "RegisterContainerInstance",
            json!({"containerInstanceArn": ARN})
        ));
        assert!(allow(
            "DiscoverPollEndpoint",
            json!({"cluster": "prod", "containerInstance": ARN})
        ));
        assert!(allow(
            "DiscoverPollEndpoint",
            json!({"containerInstance": "0123abcd"})
        ));
        assert!(!allow(
            "DiscoverPollEndpoint",
            json!({"containerInstance": "other"})
        ));
        assert!(!allow(
            "DiscoverPollEndpoint",
            json!({"cluster": "arn:aws:ecs:eu-west-1:000000000000:cluster/prod"})
        ));
    }

    #[test]
    fn every_other_operation_is_denied_with_iams_words() {
        let b = bound();
        for op in [
            "RunTask",
            "ListClusters",
            "DescribeTasks",
            "DeregisterContainerInstance",
            "CreateCluster",
        ] {
            match decide_ecs(&b, op, &json!({"cluster": "prod"})) {
                AgentDecision::Deny { action, resource } => {
                    assert_eq!(action, format!("ecs:{op}"));
                    assert_eq!(resource, "arn:aws:ecs:us-east-1:000000000000:cluster/prod");
                }
                other => panic!("{op}: {other:?}"),
            }
        }
        assert_eq!(
            decide_ecs(&b, "ListClusters", &json!({})),
            AgentDecision::Deny {
                action: "ecs:ListClusters".into(),
                resource: "*".into()
            }
        );
        assert_eq!(
            denied_message(ARN, "ecs:RunTask", "*"),
            format!("User: {ARN} is not authorized to perform: ecs:RunTask on resource: * because no identity-based policy allows the ecs:RunTask action")
        );
        for op in [
            "Status",
            "CreateJoinToken",
            "ListJoinTokens",
            "LogQuery",
            "ReclaimSpot",
        ] {
            assert!(
                matches!(decide_admin(&b, op, &json!({})), AgentDecision::Deny { .. }),
                "{op}"
            );
        }
        assert_eq!(
            decide_admin(&b, "ResolveName", &json!({})),
            AgentDecision::Allow
        );
        assert_eq!(
            decide_admin(&b, "OpenLogStream", &json!({"containerInstanceArn": ARN})),
            AgentDecision::Allow
        );
        assert!(matches!(
            decide_admin(&b, "OpenLogStream", &json!({"containerInstanceArn": "x"})),
            AgentDecision::Deny { .. }
        ));
    }

    #[test]
    fn task_protection_names_the_tasks_to_check() {
        let b = bound();
        let t = "arn:aws:ecs:us-east-1:000000000000:task/web/abc";
        match decide_ecs(
            &b,
            "UpdateTaskProtection",
            &json!({"cluster": "web", "tasks": [t, "def"]}),
        ) {
            AgentDecision::IfTasksRunHere { tasks, .. } => {
                assert_eq!(
                    tasks,
                    vec![("web".into(), "abc".into()), ("web".into(), "def".into())]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide_ecs(
                &b,
                "GetTaskProtection",
                &json!({"cluster": "web", "tasks": [1]})
            ),
            AgentDecision::Deny { .. }
        ));
    }

    #[test]
    fn a_session_opens_only_for_the_bound_instance() {
        let b = bound();
        assert!(may_open_session(&b, ARN));
        assert!(!may_open_session(&b, &ARN.replace("prod", "dev")));
        assert!(BoundInstance::from_arn("arn:aws:ecs:us-east-1:0:task/prod/x").is_none());
        assert!(BoundInstance::from_arn("nope").is_none());
    }

    proptest! {
        #[test]
        fn every_drawn_token_reads_back_and_checks(r in proptest::collection::vec(any::<u8>(), TOKEN_RANDOM_BYTES)) {
            let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
            bytes.copy_from_slice(&r);
            let t = JoinToken::from_random(&bytes);
            prop_assert_eq!(JoinToken::parse(&t.text()), Some(t.clone()));
            let rec = JoinTokenRecord::new(&t, "c", 0.0, Some(10), "p");
            prop_assert_eq!(check_join(Some(&t), Some(&rec), None, 5.0), Ok("c".to_string()));
        }

        #[test]
        fn every_drawn_agent_key_looks_like_one(r in proptest::collection::vec(any::<u8>(), AGENT_KEY_RANDOM_BYTES)) {
            let mut bytes = [0u8; AGENT_KEY_RANDOM_BYTES];
            bytes.copy_from_slice(&r);
            let k = AgentKey::from_random(&bytes);
            prop_assert!(looks_like_agent_key(&k.access_key_id));
            prop_assert!(!crate::task_credentials::looks_like_task_key(&k.access_key_id));
            prop_assert_eq!(k.secret_access_key.len(), 40);
        }

        #[test]
        fn an_agent_key_is_denied_any_operation_outside_its_own(op in "[A-Z][a-zA-Z]{2,30}", cluster in "[a-z]{1,8}") {
            prop_assume!(!["RegisterContainerInstance", "DiscoverPollEndpoint", "GetTaskProtection", "UpdateTaskProtection"].contains(&op.as_str()));
            let is_deny = matches!(decide_ecs(&bound(), &op, &json!({"cluster": cluster})), AgentDecision::Deny { .. });
            prop_assert!(is_deny);
        }
    }
}
