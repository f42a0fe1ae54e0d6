//! [`CwError`]: a CloudWatch error (one of the model's error shapes and a message, the type
//! from [`flotilla_edge::modeled_error!`]), with the service's wording for the common ones.

use crate::ErrorShape;
use flotilla_metrics::MetricsError;
use flotilla_store::StoreError;

flotilla_edge::modeled_error! {
    /// An error answered to a CloudWatch client.
    CwError, shapes: ErrorShape, constraint: ValidationException
}

impl CwError {
    /// `InvalidParameterValue`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidParameterValueException, message)
    }
    /// `InvalidParameterCombination`.
    pub fn combination(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidParameterCombinationException, message)
    }
    /// `MissingParameter`.
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::MissingRequiredParameterException, message)
    }
    /// `InternalServiceError` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InternalServiceFault, message)
    }
}

impl From<StoreError> for CwError {
    fn from(e: StoreError) -> Self {
        CwError::internal(format!("the store failed: {e}"))
    }
}

impl From<MetricsError> for CwError {
    fn from(e: MetricsError) -> Self {
        match e {
            MetricsError::InvalidPeriod { .. } => CwError::invalid(e.to_string()),
            other => CwError::internal(other.to_string()),
        }
    }
}
