//! [`SmError`]: a Secrets Manager error (one of the model's error shapes and a message, the type
//! from [`flotilla_edge::modeled_error!`]), with
//! the service's known wording for the common ones.

use crate::ErrorShape;
use flotilla_store::StoreError;

flotilla_edge::modeled_error! {
    /// An error answered to a Secrets Manager client. Its message never holds a secret value.
    SmError, shapes: ErrorShape, constraint: InvalidParameterException
}

impl SmError {
    /// `ResourceNotFoundException` with AWS's wording.
    pub fn not_found() -> Self {
        Self::new(
            ErrorShape::ResourceNotFoundException,
            "Secrets Manager can't find the specified secret.",
        )
    }
    /// `InvalidParameterException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidParameterException, message)
    }
    /// `InvalidRequestException`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InvalidRequestException, message)
    }
    /// `InvalidRequestException` for a secret scheduled for deletion, AWS's wording.
    pub fn marked_for_deletion() -> Self {
        Self::invalid_request(
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    }
    /// `InternalServiceError` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorShape::InternalServiceError, message)
    }
}

impl From<StoreError> for SmError {
    fn from(e: StoreError) -> Self {
        SmError::internal(format!("the store failed: {e}"))
    }
}
