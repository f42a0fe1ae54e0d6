//! The agent's own identity: joining a cluster with a join token, and the credentials the server
//! issues for it, kept in the data directory so a restart signs with them again.
//!
//! What this is: [`JoinTokenText`] (the token as the operator passed it, never printed), the
//! join itself ([`join`]: `FlotillaAdmin.RegisterAgent`, which registers a new container
//! instance in the token's cluster and answers the instance and a key bound to it), and
//! [`AgentCredentials`], saved by [`crate::state::DataDir::save_agent_credentials`] in
//! `DATA_DIR/credentials.json` (mode 0600).
//!
//! Why the join goes through the ordinary client: the server authenticates it by the token in
//! its body and ignores its signature; it is signed anyway (with a placeholder key,
//! [`JOIN_SIGNER`]) only so that its SigV4 credential scope names the agent's region, which is
//! how an installation serving several regions routes a request to its region.
//!
//! What this is not: API keys (`AWS_ACCESS_KEY_ID`), which keep working as before: an agent
//! started with them registers and signs with them.
//!
//! Invariant: the token and the secret access key never appear in logs, errors or `Debug`.

use crate::client::{ApiError, EcsClient};
use crate::config::Credentials;
use flotilla_model::shapes::{ContainerInstance, RegisterContainerInstanceRequest};
use serde::{Deserialize, Serialize};

/// The join's operation (`FlotillaAdmin.RegisterAgent`).
pub const REGISTER_AGENT: &str = "RegisterAgent";

/// The placeholder key the join is signed with (the server ignores its signature).
pub const JOIN_SIGNER: &str = "FLOTILLAJOINUNSIGNED";

/// A join token as the operator passed it (`ID.SECRET`). `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinTokenText(pub String);

impl JoinTokenText {
    /// The public part (`fjt-...`), for logs.
    pub fn id(&self) -> &str {
        self.0.trim().split('.').next().unwrap_or("")
    }
}

impl std::fmt::Debug for JoinTokenText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinTokenText({}.…)", self.id())
    }
}

/// The agent's own credentials, as saved in its data directory. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCredentials {
    /// The access key id (`AGNT...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The container instance they are bound to.
    pub container_instance_arn: String,
    /// Its cluster (or `flotilla_protocol::MANAGED_POOL`).
    pub cluster: String,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("container_instance_arn", &self.container_instance_arn)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl AgentCredentials {
    /// As credentials that sign requests.
    pub fn signing(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: None,
        }
    }
}

/// The placeholder credentials a joining agent's client signs with.
pub fn join_signer() -> Credentials {
    Credentials {
        access_key_id: JOIN_SIGNER.to_string(),
        secret_access_key: "unused".to_string(),
        session_token: None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinAnswer {
    container_instance: Option<ContainerInstance>,
    cluster: String,
    credentials: KeyAnswer,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyAnswer {
    access_key_id: String,
    secret_access_key: String,
}

/// Joins with `token`: registers a new container instance as `registration` describes it (in
/// the token's cluster; `registration.cluster`, when set, must be that cluster) and returns its
/// credentials, bound to it.
pub async fn join(
    client: &EcsClient,
    token: &JoinTokenText,
    registration: &RegisterContainerInstanceRequest,
) -> Result<AgentCredentials, ApiError> {
    let registration =
        serde_json::to_value(registration).map_err(|e| ApiError::BadResponse(e.to_string()))?;
    let body = serde_json::json!({
        "joinToken": token.0.trim(),
        "registration": registration,
    });
    let v = client.call_admin(REGISTER_AGENT, &body).await?;
    let answer: JoinAnswer = serde_json::from_value(v)
        .map_err(|e| ApiError::BadResponse(format!("RegisterAgent: {e}")))?;
    let arn = answer
        .container_instance
        .and_then(|c| c.container_instance_arn)
        .ok_or_else(|| ApiError::BadResponse("RegisterAgent: no containerInstance".into()))?;
    Ok(AgentCredentials {
        access_key_id: answer.credentials.access_key_id,
        secret_access_key: answer.credentials.secret_access_key,
        container_instance_arn: arn,
        cluster: answer.cluster,
    })
}

/// Whether the server refused the key itself (`UnrecognizedClientException`: it does not know
/// it), as it refuses an agent key revoked with its instance.
pub fn refused_key(e: &ApiError) -> bool {
    matches!(e, ApiError::Service { code, .. } if code == "UnrecognizedClientException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let t = JoinTokenText("fjt-abcdefgh.supersecretsupersecretsupersecret12".into());
        assert_eq!(t.id(), "fjt-abcdefgh");
        assert!(!format!("{t:?}").contains("supersecret"));
        let c = AgentCredentials {
            access_key_id: "AGNTAAAAAAAAAAAAAAAA".into(),
            secret_access_key: "s3cr3t-value".into(),
            container_instance_arn: "arn".into(),
            cluster: "c".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!format!("{:?}", c.signing()).contains("s3cr3t"));
    }
}
