//! Errors: requests that cannot be placed as asked, as opposed to placements
//! that fail for want of room.
//!
//! What it is: [`PlacementError`], returned before anything is reserved when
//! the request itself is wrong (too many strategies or constraints, a bad
//! field or expression, a task whose demand is undefined) or when the cluster
//! has no container instances at all. What it is not: the per-instance
//! rejections of a request that is valid but does not fit (those are
//! [`crate::Rejection`]s in a [`crate::PlacementOutcome`]).
//!
//! Invariant: when `place` returns an error, the cluster is unchanged.

use crate::query::QueryError;
use crate::resources::DemandError;

/// Why a placement request was refused outright.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// More than [`crate::MAX_STRATEGIES`] strategies.
    #[error("too many placement strategies: {0} given, at most 5 allowed")]
    TooManyStrategies(usize),
    /// More than [`crate::MAX_CONSTRAINTS`] constraints (task definition's
    /// and request's together).
    #[error("too many placement constraints: {0} given, at most 10 allowed")]
    TooManyConstraints(usize),
    /// A strategy of an unknown type or with a field its type does not take.
    #[error("invalid placement strategy: {0}")]
    InvalidStrategy(String),
    /// A constraint of an unknown type, or with/without an expression when
    /// its type says otherwise.
    #[error("invalid placement constraint: {0}")]
    InvalidConstraint(String),
    /// A memberOf expression that does not parse.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The task's resource demand is undefined.
    #[error("invalid task: {0}")]
    Demand(#[from] DemandError),
    /// The cluster has no container instances (ECS's RunTask answers this as
    /// an InvalidParameterException with [`Self::NO_INSTANCES_MESSAGE`]).
    #[error("No Container Instances were found in your cluster.")]
    NoContainerInstances,
    /// StartTask named more instances than ECS allows (10) or none.
    #[error("StartTask takes 1 to 10 container instances, {0} given")]
    InvalidInstanceCount(usize),
}

impl PlacementError {
    /// ECS's message when a cluster has no container instances.
    pub const NO_INSTANCES_MESSAGE: &'static str =
        "No Container Instances were found in your cluster.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            PlacementError::NoContainerInstances.to_string(),
            PlacementError::NO_INSTANCES_MESSAGE
        );
        assert!(PlacementError::TooManyStrategies(6)
            .to_string()
            .contains("at most 5"));
    }
}
