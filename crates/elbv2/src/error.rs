//! [`Elbv2Error`]: an Elastic Load Balancing error: one of the model's error shapes (its
//! awsQuery `<Code>` is the model's `error.code`: `LoadBalancerNotFound`), AWS's common
//! `ValidationError`, or the service's own failure (`InternalFailure`), with ELB's wording for
//! the common ones.

use crate::ErrorShape;
use flotilla_edge::query::QueryError;
use flotilla_store::StoreError;

/// Which error an [`Elbv2Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the model's error shapes.
    Modeled(ErrorShape),
    /// AWS's common `ValidationError` (400): a parameter breaks a rule of the model or of ELB.
    Validation,
    /// AWS's common `InternalFailure` (500): the store failed.
    Internal,
}

/// An error answered to an Elastic Load Balancing client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elbv2Error {
    /// Which error.
    pub kind: Kind,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl std::fmt::Display for Elbv2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for Elbv2Error {}

impl Elbv2Error {
    /// An error of `shape`.
    pub fn new(shape: ErrorShape, message: impl Into<String>) -> Self {
        Elbv2Error {
            kind: Kind::Modeled(shape),
            message: message.into(),
        }
    }
    /// `ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Elbv2Error {
            kind: Kind::Validation,
            message: message.into(),
        }
    }
    /// `InternalFailure`.
    pub fn internal(message: impl Into<String>) -> Self {
        Elbv2Error {
            kind: Kind::Internal,
            message: message.into(),
        }
    }
    /// The `<Code>` on the wire.
    pub fn code(&self) -> &'static str {
        match self.kind {
            Kind::Modeled(s) => s.error_code(),
            Kind::Validation => "ValidationError",
            Kind::Internal => "InternalFailure",
        }
    }
    /// `LoadBalancerNotFound`, ELB's wording.
    pub fn load_balancer_not_found() -> Self {
        Self::new(
            ErrorShape::LoadBalancerNotFoundException,
            "One or more load balancers not found",
        )
    }
    /// `TargetGroupNotFound`, ELB's wording.
    pub fn target_group_not_found() -> Self {
        Self::new(
            ErrorShape::TargetGroupNotFoundException,
            "One or more target groups not found",
        )
    }
    /// `ListenerNotFound`, ELB's wording.
    pub fn listener_not_found() -> Self {
        Self::new(
            ErrorShape::ListenerNotFoundException,
            "One or more listeners not found",
        )
    }
    /// `RuleNotFound`, ELB's wording.
    pub fn rule_not_found() -> Self {
        Self::new(
            ErrorShape::RuleNotFoundException,
            "One or more rules not found",
        )
    }
    /// `InvalidConfigurationRequest`.
    pub fn invalid_configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidConfigurationRequestException, message)
    }
    /// `OperationNotPermitted`.
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::OperationNotPermittedException, message)
    }
    /// A record changed by other requests for every attempt.
    pub fn contended() -> Self {
        Self::internal("The resource is being changed by other requests; retry.")
    }
}

impl From<StoreError> for Elbv2Error {
    fn from(e: StoreError) -> Self {
        Elbv2Error::internal(format!("the store failed: {e}"))
    }
}

impl From<flotilla_edge::json::validate::Violation> for Elbv2Error {
    fn from(v: flotilla_edge::json::validate::Violation) -> Self {
        Elbv2Error::validation(v.message())
    }
}

impl From<Elbv2Error> for QueryError {
    fn from(e: Elbv2Error) -> Self {
        match e.kind {
            Kind::Modeled(s) => {
                QueryError::new(s.error_code(), s.http_status(), s.sender_fault(), e.message)
            }
            Kind::Validation => QueryError::validation(e.message),
            Kind::Internal => QueryError::internal_failure(e.message),
        }
    }
}
