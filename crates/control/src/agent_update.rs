//! UpdateContainerAgent as Flotilla can answer it truthfully.
//!
//! ECS updates its container agent in place when asked. A Flotilla agent is the `flotilla`
//! binary itself, so it is updated with the server's binary by whoever installs them, never by
//! the control plane: there is no update the server can make. [`decide`] says which of ECS's
//! documented refusals is the truth for an instance: `MissingVersionException` when the agent
//! registered no version (ECS cannot tell what it runs), else `NoUpdateAvailableException`,
//! saying whether the agent already runs the server's version or another one the server
//! cannot move it from. No instance ever has an update in progress, so `agentUpdateStatus` is
//! never set (ECS shows it only once an update was asked for and started).

use flotilla_model::{EcsError, ErrorCode};

/// Why the agent of an instance cannot be updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The instance registered no agent version.
    MissingVersion,
    /// It runs the server's version already.
    Current {
        /// The version.
        version: String,
    },
    /// It runs another version, which only reinstalling the binary changes.
    NoUpdatePath {
        /// The agent's version.
        agent: String,
        /// The server's version.
        server: String,
    },
}

/// What UpdateContainerAgent answers for an instance whose agent registered `agent_version`,
/// on a server of `server_version`.
pub fn decide(agent_version: Option<&str>, server_version: &str) -> Refusal {
    match agent_version.filter(|v| !v.is_empty()) {
        None => Refusal::MissingVersion,
        Some(v) if v == server_version => Refusal::Current {
            version: v.to_string(),
        },
        Some(v) => Refusal::NoUpdatePath {
            agent: v.to_string(),
            server: server_version.to_string(),
        },
    }
}

impl Refusal {
    /// The error ECS answers, in words that say why.
    pub fn error(&self) -> EcsError {
        match self {
            Refusal::MissingVersion => EcsError::new(
                ErrorCode::MissingVersionException,
                "The container agent on this container instance did not register its version, so it cannot be updated.",
            ),
            Refusal::Current { version } => EcsError::new(
                ErrorCode::NoUpdateAvailableException,
                format!(
                    "There is no update available for this container agent: it already runs version {version}, the server's."
                ),
            ),
            Refusal::NoUpdatePath { agent, server } => EcsError::new(
                ErrorCode::NoUpdateAvailableException,
                format!(
                    "There is no update path for this container agent (version {agent}) to the server's version {server}: Flotilla agents are updated by installing the flotilla binary of the server's version on the host."
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_gets_the_truthful_refusal() {
        assert_eq!(decide(None, "0.1.0"), Refusal::MissingVersion);
        assert_eq!(decide(Some(""), "0.1.0"), Refusal::MissingVersion);
        assert_eq!(
            decide(Some("0.1.0"), "0.1.0"),
            Refusal::Current {
                version: "0.1.0".into()
            }
        );
        let old = decide(Some("0.0.9"), "0.1.0");
        assert!(matches!(old, Refusal::NoUpdatePath { .. }));
        assert_eq!(old.error().code, ErrorCode::NoUpdateAvailableException);
        assert_eq!(
            Refusal::MissingVersion.error().code,
            ErrorCode::MissingVersionException
        );
    }
}
