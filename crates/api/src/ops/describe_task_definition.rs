//! DescribeTaskDefinition, and the resolution of a task definition reference (`family`,
//! `family:revision` or full ARN) shared by every operation that takes one.
//!
//! Its answer is written from the record's wire form, encoded once per `mod_revision` of the
//! record ([`Described`], kept in [`crate::context::Api`]'s
//! [`flotilla_control::revision_cache::RevisionCache`]): the store is read as always (so a
//! revision deregistered here or on another replica is answered as it is now), but a record
//! read at a revision already described is neither decoded nor encoded again. Why: decoding a
//! task definition record and encoding it back was most of the operation's cost.

use crate::context::Ctx;
use flotilla_control::task_definitions::parse_ref;
use flotilla_controllers::records::load_task_definition_as;
use flotilla_model::shapes::{
    DescribeTaskDefinitionRequest, RegisterTaskDefinitionResponse, TaskDefinitionField,
    TaskDefinitionStatus,
};
use flotilla_model::EcsError;
use flotilla_store::KeyValue;
use std::sync::Arc;

/// How many task definition records [`Described`] is kept for.
pub const DESCRIBED_KEYS: usize = 4096;

/// A task definition record as DescribeTaskDefinition answers it, encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// Whether the revision is ACTIVE (a family's reference resolves to its latest ACTIVE one).
    active: bool,
    /// The `taskDefinition` member's JSON (none when the record has none).
    task_definition: Option<Vec<u8>>,
    /// The `tags` member's JSON when asked for: the record's tags, `[]` when it has none.
    tags: Vec<u8>,
}

impl Described {
    /// Encodes a stored record.
    pub fn of(rec: &RegisterTaskDefinitionResponse) -> Result<Self, EcsError> {
        let encode =
            |e: serde_json::Error| EcsError::server(format!("could not encode the response: {e}"));
        Ok(Described {
            active: rec.task_definition.as_ref().and_then(|t| t.status)
                == Some(TaskDefinitionStatus::Active),
            task_definition: rec
                .task_definition
                .as_ref()
                .map(serde_json::to_vec)
                .transpose()
                .map_err(encode)?,
            tags: serde_json::to_vec(rec.tags.as_deref().unwrap_or_default()).map_err(encode)?,
        })
    }

    /// The answer's wire form, the tags with it or not: what encoding
    /// `DescribeTaskDefinitionResponse` gives.
    pub fn wire(&self, include_tags: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            32 + self.task_definition.as_ref().map_or(0, Vec::len) + self.tags.len(),
        );
        out.push(b'{');
        if let Some(td) = &self.task_definition {
            out.extend_from_slice(b"\"taskDefinition\":");
            out.extend_from_slice(td);
        }
        if include_tags {
            if self.task_definition.is_some() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"tags\":");
            out.extend_from_slice(&self.tags);
        }
        out.push(b'}');
        out
    }
}

/// DescribeTaskDefinition, answered in its wire form.
pub async fn describe_task_definition(
    ctx: &Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> Result<Vec<u8>, EcsError> {
    let r = parse_ref(&req.task_definition)?;
    if super::foreign_arn(ctx, &req.task_definition) {
        return Err(EcsError::client("Unable to describe task definition."));
    }
    let cache = &ctx.api.described;
    let read = |kv: &KeyValue| -> Result<Arc<Described>, EcsError> {
        let kept = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kv.key, kv.mod_revision);
        if let Some(d) = kept {
            return Ok(d);
        }
        let rec: RegisterTaskDefinitionResponse = serde_json::from_slice(&kv.value)
            .map_err(|e| EcsError::server(format!("record {} is unreadable: {e}", kv.key)))?;
        let d = Arc::new(Described::of(&rec)?);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(&kv.key, kv.mod_revision, d.clone());
        Ok(d)
    };
    let Some((d, _)) = load_task_definition_as(ctx.store(), &r, read, |d| d.active).await? else {
        return Err(EcsError::client("Unable to describe task definition."));
    };
    let include_tags = req
        .include
        .as_ref()
        .is_some_and(|i| i.contains(&TaskDefinitionField::Tags));
    Ok(d.wire(include_tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::{DescribeTaskDefinitionResponse, Tag};

    fn record(tags: Option<Vec<Tag>>, with_td: bool) -> RegisterTaskDefinitionResponse {
        let td = serde_json::json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:000000000000:task-definition/web:3",
            "family": "web",
            "revision": 3,
            "status": "ACTIVE",
            "cpu": "256",
            "containerDefinitions": [{
                "name": "c\"1",
                "image": "busybox",
                "memory": 64,
                "environment": [{"name": "K", "value": "v\u{e9}\n"}],
                "portMappings": [{"containerPort": 80}]
            }],
            "registeredAt": 1795000000.123
        });
        RegisterTaskDefinitionResponse {
            task_definition: with_td.then(|| serde_json::from_value(td).unwrap()),
            tags,
        }
    }

    #[test]
    fn the_wire_form_is_the_encoded_response() {
        let tags = vec![Tag {
            key: Some("team".into()),
            value: Some("a\"b".into()),
        }];
        for rec in [
            record(None, true),
            record(Some(vec![]), true),
            record(Some(tags.clone()), true),
            record(Some(tags), false),
            record(None, false),
        ] {
            let d = Described::of(&rec).unwrap();
            for include_tags in [false, true] {
                let typed = DescribeTaskDefinitionResponse {
                    task_definition: rec.task_definition.clone(),
                    tags: include_tags.then(|| rec.tags.clone().unwrap_or_default()),
                };
                assert_eq!(
                    String::from_utf8_lossy(&d.wire(include_tags)),
                    String::from_utf8_lossy(&serde_json::to_vec(&typed).unwrap()),
                );
            }
        }
    }

    #[test]
    fn only_an_active_revision_is_active() {
        let mut rec = record(None, true);
        assert!(Described::of(&rec).is_ok_and(|d| d.active));
        if let Some(td) = rec.task_definition.as_mut() {
            td.status = Some(TaskDefinitionStatus::Inactive);
        }
        assert!(Described::of(&rec).is_ok_and(|d| !d.active));
        assert!(Described::of(&record(None, false)).is_ok_and(|d| !d.active));
    }
}
