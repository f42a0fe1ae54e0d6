//! References to task definitions: `family`, `family:revision` or a full ARN, as every
//! operation that takes a `taskDefinition` member accepts them.

use flotilla_model::EcsError;

/// A parsed task definition reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinitionRef {
    /// The family.
    pub family: String,
    /// The revision, when given.
    pub revision: Option<i32>,
}

/// Parses `family`, `family:revision` or `arn:...:task-definition/family:revision`.
pub fn parse_ref(s: &str) -> Result<TaskDefinitionRef, EcsError> {
    let bad = || {
        EcsError::client(format!(
            "Invalid task definition '{s}': expected a family, family:revision, or a task definition ARN."
        ))
    };
    let body = if s.starts_with("arn:") {
        let p = flotilla_model::arn::parse(s).ok_or_else(bad)?;
        if p.resource_type != "task-definition" {
            return Err(bad());
        }
        p.resource
    } else {
        s.to_string()
    };
    let (family, revision) = match body.split_once(':') {
        Some((f, r)) => (f.to_string(), Some(r.parse::<i32>().map_err(|_| bad())?)),
        None => (body.clone(), None),
    };
    if !flotilla_model::arn::is_valid_name(&family) || revision.is_some_and(|r| r < 1) {
        return Err(bad());
    }
    Ok(TaskDefinitionRef { family, revision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reference_form() {
        assert_eq!(
            parse_ref("web").unwrap(),
            TaskDefinitionRef {
                family: "web".into(),
                revision: None
            }
        );
        assert_eq!(parse_ref("web:3").unwrap().revision, Some(3));
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7";
        assert_eq!(
            parse_ref(arn).unwrap(),
            TaskDefinitionRef {
                family: "web".into(),
                revision: Some(7)
            }
        );
        assert!(parse_ref("web:x").is_err());
        assert!(parse_ref("web:0").is_err());
        assert!(parse_ref("arn:aws:ecs:us-east-1:1:cluster/web").is_err());
        assert!(parse_ref("").is_err());
    }
}
