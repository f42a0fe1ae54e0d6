//! [`AasError`]: an Application Auto Scaling error (one of the model's error shapes and a
//! message, the type from [`flotilla_edge::modeled_error!`]), with the service's wording for the
//! common ones.

use crate::ErrorShape;
use flotilla_store::StoreError;

flotilla_edge::modeled_error! {
    /// An error answered to an Application Auto Scaling client.
    AasError, shapes: ErrorShape, constraint: ValidationException
}

impl AasError {
    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::ValidationException, message)
    }
    /// `ObjectNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::ObjectNotFoundException, message)
    }
    /// `ObjectNotFoundException` for a scalable target that is not registered, as the service
    /// words it.
    pub fn no_target(resource_id: &str) -> Self {
        Self::not_found(format!(
            "No scalable target registered for service namespace: ecs, resource ID: {resource_id}, scalable dimension: ecs:service:DesiredCount"
        ))
    }
    /// `ConcurrentUpdateException`: the record stayed contended for every attempt.
    pub fn contended() -> Self {
        Self::new(
            ErrorShape::ConcurrentUpdateException,
            "You already have a pending update to an Application Auto Scaling resource.",
        )
    }
    /// `InvalidNextTokenException`.
    pub fn bad_token() -> Self {
        Self::new(ErrorShape::InvalidNextTokenException, "Invalid NextToken")
    }
    /// `InternalServiceException` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InternalServiceException, message)
    }
}

impl From<StoreError> for AasError {
    fn from(e: StoreError) -> Self {
        AasError::internal(format!("the store failed: {e}"))
    }
}

impl From<flotilla_metrics::MetricsError> for AasError {
    fn from(e: flotilla_metrics::MetricsError) -> Self {
        AasError::new(
            ErrorShape::FailedResourceAccessException,
            format!("CloudWatch could not be reached for the policy's alarms: {e}"),
        )
    }
}
