//! The CloudWatch Logs error type: what every failed Logs request turns into on the wire,
//! `{"__type": "<code>", "message": "..."}` with [`LogsErrorCode::http_status`].
//!
//! The codes are the error shapes the Logs model declares for the operations Flotilla serves,
//! plus the protocol and authentication errors every AWS JSON service answers with. Where AWS
//! has known wording ("The specified log group does not exist."), it is copied exactly,
//! because scripts match on it.

use std::fmt;

/// Every error code the Logs service answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogsErrorCode {
    /// Modeled: a parameter is not valid.
    InvalidParameterException,
    /// Modeled: the resource does not exist.
    ResourceNotFoundException,
    /// Modeled: the resource exists already.
    ResourceAlreadyExistsException,
    /// Modeled: the events are where the server cannot reach them now (a fault: 503).
    ServiceUnavailableException,
    /// Modeled: another operation on the resource is under way (a lost race; retry).
    OperationAbortedException,
    /// Modeled: a limit was reached.
    LimitExceededException,
    /// Protocol: a member of the wrong JSON type, or a body that is not JSON.
    SerializationException,
    /// Protocol: no such operation.
    UnknownOperationException,
    /// Authentication: unknown access key.
    UnrecognizedClientException,
    /// Authentication: the signature does not match.
    InvalidSignatureException,
    /// Authentication: the request is not signed.
    MissingAuthenticationTokenException,
}

impl LogsErrorCode {
    /// The `__type` sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidParameterException => "InvalidParameterException",
            Self::ResourceNotFoundException => "ResourceNotFoundException",
            Self::ResourceAlreadyExistsException => "ResourceAlreadyExistsException",
            Self::ServiceUnavailableException => "ServiceUnavailableException",
            Self::OperationAbortedException => "OperationAbortedException",
            Self::LimitExceededException => "LimitExceededException",
            Self::SerializationException => "SerializationException",
            Self::UnknownOperationException => "UnknownOperationException",
            Self::UnrecognizedClientException => "UnrecognizedClientException",
            Self::InvalidSignatureException => "InvalidSignatureException",
            Self::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
        }
    }

    /// The HTTP status: 503 for the fault, 403 for authentication, 400 for the rest.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::ServiceUnavailableException => 503,
            Self::UnrecognizedClientException
            | Self::InvalidSignatureException
            | Self::MissingAuthenticationTokenException => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for LogsErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed Logs request: the code and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LogsError {
    /// The code.
    pub code: LogsErrorCode,
    /// The message.
    pub message: String,
}

impl LogsError {
    /// An error with a code and a message.
    pub fn new(code: LogsErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `InvalidParameterException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(LogsErrorCode::InvalidParameterException, message)
    }

    /// `ServiceUnavailableException`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(LogsErrorCode::ServiceUnavailableException, message)
    }

    /// `SerializationException`.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(LogsErrorCode::SerializationException, message)
    }

    /// AWS's answer for a log group that does not exist.
    pub fn group_not_found() -> Self {
        Self::new(
            LogsErrorCode::ResourceNotFoundException,
            "The specified log group does not exist.",
        )
    }

    /// AWS's answer for a log stream that does not exist.
    pub fn stream_not_found() -> Self {
        Self::new(
            LogsErrorCode::ResourceNotFoundException,
            "The specified log stream does not exist.",
        )
    }

    /// AWS's answer for a log group that exists already.
    pub fn group_exists() -> Self {
        Self::new(
            LogsErrorCode::ResourceAlreadyExistsException,
            "The specified log group already exists",
        )
    }

    /// AWS's answer for a log stream that exists already.
    pub fn stream_exists() -> Self {
        Self::new(
            LogsErrorCode::ResourceAlreadyExistsException,
            "The specified log stream already exists",
        )
    }

    /// The wire body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"__type": self.code.as_str(), "message": self.message}),
        )
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modeled_code_is_a_model_error_shape() {
        for code in [
            LogsErrorCode::InvalidParameterException,
            LogsErrorCode::ResourceNotFoundException,
            LogsErrorCode::ResourceAlreadyExistsException,
            LogsErrorCode::ServiceUnavailableException,
            LogsErrorCode::OperationAbortedException,
            LogsErrorCode::LimitExceededException,
        ] {
            assert!(
                crate::shapes::MODELED_ERRORS.contains(&code.as_str()),
                "{code}"
            );
        }
        assert_eq!(
            LogsError::group_not_found().body(),
            br#"{"__type":"ResourceNotFoundException","message":"The specified log group does not exist."}"#
        );
    }
}
