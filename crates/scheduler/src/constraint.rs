//! Placement constraints: which instances may take a task at all.
//!
//! What it is: [`PlacementConstraint`] — `distinctInstance` and
//! `memberOf(expression)` — with ECS's wire parsing. What it is not: the
//! evaluation loop (that is `place`, which checks every constraint on every
//! candidate, after each placement again for the instance that changed).
//!
//! Semantics: `memberOf` holds when the instance satisfies the cluster query
//! expression, evaluated on the instance *as it is at that moment*, so tasks
//! placed earlier in the same request count for `task:group` and
//! `runningTasksCount`. `distinctInstance` holds when the instance runs no
//! task of the request's group — neither one already there nor one placed by
//! this request. (ECS: "place each task on a different container instance";
//! with a service's group `service:NAME` this keeps one task of the service
//! per instance, with RunTask's default group `family:NAME` one task of the
//! family per instance.)
//!
//! Invariant: at most [`MAX_CONSTRAINTS`] (10) constraints per task, the task
//! definition's and the request's together.

use crate::error::PlacementError;
use crate::query::Query;

/// ECS's limit on constraints per task.
pub const MAX_CONSTRAINTS: usize = 10;

/// One placement constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementConstraint {
    /// `distinctInstance`.
    DistinctInstance,
    /// `memberOf` with its parsed expression.
    MemberOf(Query),
}

impl PlacementConstraint {
    /// `memberOf(expression)`.
    pub fn member_of(expression: &str) -> Result<Self, PlacementError> {
        Ok(Self::MemberOf(Query::parse(expression)?))
    }

    /// Parses ECS's `{type, expression}`: `distinctInstance` takes no
    /// expression, `memberOf` requires one.
    pub fn from_ecs(kind: &str, expression: Option<&str>) -> Result<Self, PlacementError> {
        match (kind, expression) {
            ("distinctInstance", None) => Ok(Self::DistinctInstance),
            ("distinctInstance", Some(e)) if e.trim().is_empty() => Ok(Self::DistinctInstance),
            ("distinctInstance", Some(_)) => Err(PlacementError::InvalidConstraint(
                "distinctInstance takes no expression".into(),
            )),
            ("memberOf", Some(e)) => Self::member_of(e),
            ("memberOf", None) => Err(PlacementError::InvalidConstraint(
                "memberOf needs an expression".into(),
            )),
            (other, _) => Err(PlacementError::InvalidConstraint(format!(
                "type must be distinctInstance or memberOf, not {other}"
            ))),
        }
    }

    /// ECS's `type`.
    pub fn ecs_type(&self) -> &'static str {
        match self {
            Self::DistinctInstance => "distinctInstance",
            Self::MemberOf(_) => "memberOf",
        }
    }

    /// ECS's `expression`.
    pub fn ecs_expression(&self) -> Option<&str> {
        match self {
            Self::DistinctInstance => None,
            Self::MemberOf(q) => Some(q.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ecs_forms() {
        assert_eq!(
            PlacementConstraint::from_ecs("distinctInstance", None).unwrap(),
            PlacementConstraint::DistinctInstance
        );
        let m = PlacementConstraint::from_ecs("memberOf", Some("attribute:a exists")).unwrap();
        assert_eq!(m.ecs_type(), "memberOf");
        assert_eq!(m.ecs_expression(), Some("attribute:a exists"));
        assert!(PlacementConstraint::from_ecs("memberOf", None).is_err());
        assert!(PlacementConstraint::from_ecs("distinctInstance", Some("x")).is_err());
        assert!(matches!(
            PlacementConstraint::from_ecs("memberOf", Some("attribute:a ==")),
            Err(PlacementError::Query(_))
        ));
        assert!(PlacementConstraint::from_ecs("near", None).is_err());
    }
}
