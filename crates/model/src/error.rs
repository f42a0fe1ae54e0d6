//! The ECS error type: what every failed request turns into on the wire.
//!
//! `EcsError` carries an [`ErrorCode`] (one variant per error shape the ECS model declares, plus
//! the protocol and authentication errors every AWS JSON service answers with) and a message that
//! tells the user what to fix. The HTTP layer turns it into
//! `{"__type": "<code>", "message": "..."}` with the status from [`ErrorCode::http_status`].
//!
//! Where ECS has known wording ("Cluster not found."), the constructors copy it exactly, because
//! scripts match on it.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Every error code Flotilla can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }
        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];
            /// The `__type` sent on the wire.
            pub fn as_str(&self) -> &'static str {
                match self { $(ErrorCode::$name => stringify!($name),)* }
            }
        }
    };
}

error_codes! {
    /// Modeled: the caller lacks permission.
    AccessDeniedException,
    /// Modeled: too many custom attributes on a resource.
    AttributeLimitExceededException,
    /// Modeled: the account is blocked.
    BlockedException,
    /// Modeled: a client error (bad request semantics).
    ClientException,
    /// Modeled.
    ClusterContainsCapacityProviderException,
    /// Modeled.
    ClusterContainsContainerInstancesException,
    /// Modeled.
    ClusterContainsServicesException,
    /// Modeled.
    ClusterContainsTasksException,
    /// Modeled.
    ClusterNotFoundException,
    /// Modeled.
    ConflictException,
    /// Modeled.
    DaemonNotActiveException,
    /// Modeled.
    DaemonNotFoundException,
    /// Modeled.
    GatewayNotFoundException,
    /// Modeled: a parameter is not valid.
    InvalidParameterException,
    /// Modeled.
    LimitExceededException,
    /// Modeled.
    MissingVersionException,
    /// Modeled.
    NamespaceNotFoundException,
    /// Modeled.
    NoUpdateAvailableException,
    /// Modeled.
    PlatformTaskDefinitionIncompatibilityException,
    /// Modeled.
    PlatformUnknownException,
    /// Modeled.
    ResourceInUseException,
    /// Modeled.
    ResourceNotFoundException,
    /// Modeled: a server fault (HTTP 500), the only retryable modeled error.
    ServerException,
    /// Modeled.
    ServiceDeploymentNotFoundException,
    /// Modeled.
    ServiceNotActiveException,
    /// Modeled.
    ServiceNotFoundException,
    /// Modeled.
    TargetNotConnectedException,
    /// Modeled.
    TargetNotFoundException,
    /// Modeled.
    TaskSetNotFoundException,
    /// Modeled: the feature is not supported.
    UnsupportedFeatureException,
    /// Modeled.
    UpdateInProgressException,
    /// AWS protocol: the access key id is unknown (HTTP 403).
    UnrecognizedClientException,
    /// AWS protocol: the signature does not match (HTTP 403).
    InvalidSignatureException,
    /// AWS protocol: the request carries no credentials (HTTP 403).
    MissingAuthenticationTokenException,
    /// AWS protocol: temporary credentials past their expiration (HTTP 403).
    ExpiredTokenException,
    /// AWS protocol: the request's X-Amz-Date is too far from the server's clock (HTTP 403).
    InvalidSignatureExceptionSkew,
    /// An identity-based policy does not allow the request (`flotilla_iam`): AWS answers
    /// `AccessDeniedException` with HTTP 400 and IAM's message, so it shares the wire type.
    AccessDeniedExceptionPolicy,
    /// AWS protocol: the body is not valid JSON or a member has the wrong JSON type (HTTP 400).
    SerializationException,
    /// AWS protocol: `X-Amz-Target` names no operation of this service (HTTP 400).
    UnknownOperationException,
    /// AWS protocol: the caller is over its request rate ("Rate exceeded", HTTP 400); the SDKs
    /// back off and retry it.
    ThrottlingException,
}

impl ErrorCode {
    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::ServerException => 500,
            ErrorCode::UnrecognizedClientException
            | ErrorCode::InvalidSignatureException
            | ErrorCode::InvalidSignatureExceptionSkew
            | ErrorCode::MissingAuthenticationTokenException
            | ErrorCode::ExpiredTokenException
            | ErrorCode::AccessDeniedException => 403,
            _ => 400,
        }
    }

    /// The `__type` on the wire. AWS answers a clock-skewed request with
    /// `InvalidSignatureException` ("Signature expired: ..."), so the skew variant shares it.
    pub fn wire_type(&self) -> &'static str {
        match self {
            ErrorCode::InvalidSignatureExceptionSkew => "InvalidSignatureException",
            ErrorCode::AccessDeniedExceptionPolicy => "AccessDeniedException",
            other => other.as_str(),
        }
    }

    /// True for the error shapes the ECS model itself declares.
    pub fn is_modeled(&self) -> bool {
        crate::shapes::MODELED_ERRORS.contains(&self.wire_type())
    }
}

/// An error answered to an ECS client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsError {
    /// The error shape.
    pub code: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for EcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.wire_type(), self.message)
    }
}

impl std::error::Error for EcsError {}

impl EcsError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        EcsError {
            code,
            message: message.into(),
        }
    }
    /// `InvalidParameterException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterException, message)
    }
    /// `ClientException`.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ClientException, message)
    }
    /// `ServerException`.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerException, message)
    }
    /// `ClusterNotFoundException` with ECS's wording.
    pub fn cluster_not_found() -> Self {
        Self::new(ErrorCode::ClusterNotFoundException, "Cluster not found.")
    }
    /// `SerializationException`.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SerializationException, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modeled_error_shape_has_a_code() {
        for name in crate::shapes::MODELED_ERRORS {
            assert!(
                ErrorCode::ALL.iter().any(|c| c.wire_type() == *name),
                "no ErrorCode for {name}"
            );
        }
    }

    #[test]
    fn only_server_exception_is_a_5xx() {
        for c in ErrorCode::ALL {
            let s = c.http_status();
            assert!(
                (400..500).contains(&s) || *c == ErrorCode::ServerException,
                "{c:?}"
            );
        }
        assert_eq!(ErrorCode::ServerException.http_status(), 500);
    }
}
