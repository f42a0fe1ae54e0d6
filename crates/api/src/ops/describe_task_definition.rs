//! DescribeTaskDefinition, and the resolution of a task definition reference (`family`,
//! `family:revision` or full ARN) shared by every operation that takes one.

use crate::context::Ctx;
use crate::records::{get, list, task_definition_key, task_definition_prefix};
use flotilla_model::shapes::{
    DescribeTaskDefinitionRequest, DescribeTaskDefinitionResponse, RegisterTaskDefinitionResponse,
    TaskDefinitionField, TaskDefinitionStatus,
};
use flotilla_model::EcsError;
use flotilla_store::Store;

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

/// Loads a task definition record by reference: a given revision in any status, or the
/// latest ACTIVE revision of a family. `None` when there is none.
pub async fn load(
    store: &dyn Store,
    r: &TaskDefinitionRef,
) -> Result<Option<(RegisterTaskDefinitionResponse, u64)>, EcsError> {
    match r.revision {
        Some(rev) => get(store, &task_definition_key(&r.family, rev)).await,
        None => {
            let all =
                list::<RegisterTaskDefinitionResponse>(store, &task_definition_prefix(&r.family))
                    .await?;
            Ok(all
                .into_iter()
                .rev()
                .find(|(_, rec, _)| {
                    rec.task_definition.as_ref().and_then(|t| t.status)
                        == Some(TaskDefinitionStatus::Active)
                })
                .map(|(_, rec, rev)| (rec, rev)))
        }
    }
}

/// DescribeTaskDefinition.
pub async fn describe_task_definition(
    ctx: &Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> Result<DescribeTaskDefinitionResponse, EcsError> {
    let r = parse_ref(&req.task_definition)?;
    if super::foreign_arn(ctx, &req.task_definition) {
        return Err(EcsError::client("Unable to describe task definition."));
    }
    let Some((rec, _)) = load(ctx.store(), &r).await? else {
        return Err(EcsError::client("Unable to describe task definition."));
    };
    let include_tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&TaskDefinitionField::Tags));
    Ok(DescribeTaskDefinitionResponse {
        task_definition: rec.task_definition,
        tags: if include_tags {
            Some(rec.tags.unwrap_or_default())
        } else {
            None
        },
    })
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
