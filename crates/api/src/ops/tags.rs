//! TagResource, UntagResource, ListTagsForResource, and the tag rules every operation that takes
//! `tags` shares: at most 50 per resource, unique keys, and no keys in the reserved `aws:`
//! namespace. Tags are stored inside the resource's own record, so they go when it goes.
//!
//! Taggable resources, addressed by long-format ARN: clusters, task definitions, tasks,
//! container instances, services and custom capacity providers (not INACTIVE ones), and task
//! sets (kept in their service's record, so tagging one is a compare-and-swap on the service).

use crate::context::Ctx;
use flotilla_control::capacity_providers::{self, CapacityProviderRecord};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::services::{service_key, ServiceRecord, ServiceStatus};
use flotilla_control::tags::{validate_tags, MAX_TAGS};
use flotilla_control::task_definitions::parse_ref;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{
    cluster_key, get, instance_key, replace, task_definition_key, task_key, Attempt,
};
use flotilla_model::shapes::{
    Cluster, ListTagsForResourceRequest, ListTagsForResourceResponse,
    RegisterTaskDefinitionResponse, Tag, TagResourceRequest, TagResourceResponse,
    UntagResourceRequest, UntagResourceResponse,
};
use flotilla_model::{EcsError, ErrorCode};

/// A taggable resource, located by its ARN.
enum Target {
    Cluster(String),
    TaskDefinition(String, i32),
    Task(String, String),
    ContainerInstance(String, String),
    Service(String, String),
    /// Cluster, service and the set's id (`ecs-svc/DIGITS`).
    TaskSet(String, String, String),
    CapacityProvider(String),
}

fn target(arn: &str) -> Result<Target, EcsError> {
    let Some(p) = flotilla_model::arn::parse(arn) else {
        return Err(EcsError::invalid_parameter(format!(
            "'{arn}' is not a valid ECS resource ARN."
        )));
    };
    match p.resource_type.as_str() {
        "cluster" => Ok(Target::Cluster(p.resource)),
        "task-definition" => {
            let r = parse_ref(arn)?;
            match r.revision {
                Some(rev) => Ok(Target::TaskDefinition(r.family, rev)),
                None => Err(EcsError::invalid_parameter(format!(
                    "'{arn}' must name a task definition revision."
                ))),
            }
        }
        "task" | "container-instance" if p.resource.contains('/') => {
            let Some((cluster, id)) = p.resource.split_once('/') else {
                return Err(not_found(arn));
            };
            if id.is_empty() || id.contains('/') {
                return Err(not_found(arn));
            }
            Ok(if p.resource_type == "task" {
                Target::Task(cluster.to_string(), id.to_string())
            } else {
                Target::ContainerInstance(cluster.to_string(), id.to_string())
            })
        }
        "service" if p.resource.contains('/') => match p.resource.split_once('/') {
            Some((cluster, name)) if !name.is_empty() && !name.contains('/') => {
                Ok(Target::Service(cluster.to_string(), name.to_string()))
            }
            _ => Err(not_found(arn)),
        },
        "task-set" => {
            let mut parts = p.resource.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(c), Some(s), Some(id))
                    if !c.is_empty() && !s.is_empty() && id.starts_with("ecs-svc/") =>
                {
                    Ok(Target::TaskSet(
                        c.to_string(),
                        s.to_string(),
                        id.to_string(),
                    ))
                }
                _ => Err(not_found(arn)),
            }
        }
        "capacity-provider" if !p.resource.is_empty() && !p.resource.contains('/') => {
            Ok(Target::CapacityProvider(p.resource))
        }
        "service" | "task" | "container-instance" if !p.resource.contains('/') => Err(
            EcsError::invalid_parameter("Long arn format must be used for tagging operations."),
        ),
        _ => Err(not_found(arn)),
    }
}

fn not_found(arn: &str) -> EcsError {
    EcsError::new(
        ErrorCode::ResourceNotFoundException,
        format!("The specified resource wasn't found: {arn}."),
    )
}

fn merge(current: &mut Vec<Tag>, new: &[Tag]) {
    for t in new {
        match current.iter_mut().find(|c| c.key == t.key) {
            Some(c) => c.value = t.value.clone(),
            None => current.push(t.clone()),
        }
    }
}

/// Reads, changes and writes a resource's tags with compare-and-swap; returns the tags after.
async fn modify_tags(
    ctx: &Ctx<'_>,
    arn: &str,
    change: impl Fn(&mut Vec<Tag>) -> Result<(), EcsError>,
) -> Result<Vec<Tag>, EcsError> {
    let t = target(arn)?;
    if super::foreign_arn(ctx, arn) {
        return Err(match t {
            Target::Cluster(_) => EcsError::cluster_not_found(),
            _ => not_found(arn),
        });
    }
    let key = match &t {
        Target::Cluster(name) => cluster_key(name),
        Target::TaskDefinition(family, revision) => task_definition_key(family, *revision),
        Target::Task(cluster, id) => task_key(cluster, id),
        Target::ContainerInstance(cluster, id) => instance_key(cluster, id),
        Target::Service(cluster, name) | Target::TaskSet(cluster, name, _) => {
            service_key(cluster, name)
        }
        Target::CapacityProvider(name) => capacity_providers::key(name),
    };
    let change = &change;
    ctx.plane()
        .cas(&key, || async {
            let missing = || not_found(arn);
            match &t {
                Target::Cluster(_) => {
                    let inactive = get::<Cluster>(ctx.store(), &key)
                        .await?
                        .is_some_and(|(c, _)| c.status.as_deref() == Some("INACTIVE"));
                    if inactive {
                        return Err(EcsError::invalid_parameter(
                            "The specified cluster is inactive. Specify an active cluster and try again.",
                        ));
                    }
                    retag::<Cluster>(ctx, &key, EcsError::cluster_not_found, change, |c| {
                        (c.status.as_deref() == Some("ACTIVE")).then_some(&mut c.tags)
                    })
                    .await
                }
                Target::TaskDefinition(..) => {
                    retag::<RegisterTaskDefinitionResponse>(ctx, &key, missing, change, |r| {
                        Some(&mut r.tags)
                    })
                    .await
                }
                Target::Task(..) => {
                    retag::<TaskRecord>(ctx, &key, missing, change, |r| Some(&mut r.task.tags))
                        .await
                }
                Target::ContainerInstance(..) => {
                    retag::<InstanceRecord>(ctx, &key, missing, change, |r| {
                        Some(&mut r.instance.tags)
                    })
                    .await
                }
                Target::Service(..) => {
                    retag::<ServiceRecord>(ctx, &key, missing, change, |r| {
                        (r.status != ServiceStatus::Inactive).then_some(&mut r.service.tags)
                    })
                    .await
                }
                Target::TaskSet(_, _, id) => {
                    retag::<ServiceRecord>(ctx, &key, missing, change, |r| {
                        let live = r.status != ServiceStatus::Inactive;
                        let set = r.task_sets.iter_mut().find(|t| &t.id == id)?;
                        live.then_some(&mut set.tags)
                    })
                    .await
                }
                Target::CapacityProvider(..) => {
                    retag::<CapacityProviderRecord>(ctx, &key, missing, change, |r| {
                        r.is_active().then_some(&mut r.provider.tags)
                    })
                    .await
                }
            }
        })
        .await
}

/// One attempt of [`modify_tags`] on a record of type `T`: reads it, applies `change` to the
/// tags `tags_of` finds in it (`None` when the record cannot be tagged: `missing`), and
/// returns the transaction that writes it back with the tags after.
async fn retag<T: serde::Serialize + serde::de::DeserializeOwned>(
    ctx: &Ctx<'_>,
    key: &str,
    missing: impl Fn() -> EcsError,
    change: &impl Fn(&mut Vec<Tag>) -> Result<(), EcsError>,
    tags_of: impl FnOnce(&mut T) -> Option<&mut Option<Vec<Tag>>>,
) -> Result<Attempt<Vec<Tag>>, EcsError> {
    let Some((mut rec, rev)) = get::<T>(ctx.store(), key).await? else {
        return Err(missing());
    };
    let Some(tags) = tags_of(&mut rec) else {
        return Err(missing());
    };
    let tags = tags.get_or_insert_with(Vec::new);
    change(tags)?;
    let tags = tags.clone();
    Ok(Attempt::Commit(replace(key, rev, &rec)?, tags))
}

/// TagResource.
pub async fn tag_resource(
    ctx: &Ctx<'_>,
    req: TagResourceRequest,
) -> Result<TagResourceResponse, EcsError> {
    validate_tags(&req.tags, 0)?;
    modify_tags(ctx, &req.resource_arn, |tags| {
        let mut merged = tags.clone();
        merge(&mut merged, &req.tags);
        if merged.len() > MAX_TAGS {
            return Err(EcsError::new(
                ErrorCode::LimitExceededException,
                format!("A resource can have at most {MAX_TAGS} tags; this request would leave it with {}.", merged.len()),
            ));
        }
        *tags = merged;
        Ok(())
    })
    .await?;
    Ok(TagResourceResponse {})
}

/// UntagResource.
pub async fn untag_resource(
    ctx: &Ctx<'_>,
    req: UntagResourceRequest,
) -> Result<UntagResourceResponse, EcsError> {
    modify_tags(ctx, &req.resource_arn, |tags| {
        tags.retain(|t| !req.tag_keys.iter().any(|k| Some(k) == t.key.as_ref()));
        Ok(())
    })
    .await?;
    Ok(UntagResourceResponse {})
}

/// ListTagsForResource.
pub async fn list_tags_for_resource(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResponse, EcsError> {
    let t = target(&req.resource_arn)?;
    if super::foreign_arn(ctx, &req.resource_arn) {
        return Err(match t {
            Target::Cluster(_) => EcsError::cluster_not_found(),
            Target::TaskDefinition(..) => EcsError::invalid_parameter(format!(
                "The specified task definition does not exist: {}.",
                req.resource_arn
            )),
            _ => not_found(&req.resource_arn),
        });
    }
    let tags = match t {
        Target::Cluster(name) => match get::<Cluster>(ctx.store(), &cluster_key(&name)).await? {
            Some((c, _)) if c.status.as_deref() == Some("ACTIVE") => c.tags.unwrap_or_default(),
            _ => return Err(EcsError::cluster_not_found()),
        },
        Target::TaskDefinition(family, revision) => {
            match get::<RegisterTaskDefinitionResponse>(
                ctx.store(),
                &task_definition_key(&family, revision),
            )
            .await?
            {
                Some((rec, _)) => rec.tags.unwrap_or_default(),
                None => {
                    return Err(EcsError::invalid_parameter(format!(
                        "The specified task definition does not exist: {}.",
                        req.resource_arn
                    )))
                }
            }
        }
        Target::Task(cluster, id) => {
            match get::<TaskRecord>(ctx.store(), &task_key(&cluster, &id)).await? {
                Some((rec, _)) => rec.task.tags.unwrap_or_default(),
                None => return Err(not_found(&req.resource_arn)),
            }
        }
        Target::ContainerInstance(cluster, id) => {
            match get::<InstanceRecord>(ctx.store(), &instance_key(&cluster, &id)).await? {
                Some((rec, _)) => rec.instance.tags.unwrap_or_default(),
                None => return Err(not_found(&req.resource_arn)),
            }
        }
        Target::Service(cluster, name) => {
            match get::<ServiceRecord>(ctx.store(), &service_key(&cluster, &name)).await? {
                Some((rec, _)) if rec.status != ServiceStatus::Inactive => {
                    rec.service.tags.unwrap_or_default()
                }
                _ => return Err(not_found(&req.resource_arn)),
            }
        }
        Target::TaskSet(cluster, name, id) => {
            let rec = get::<ServiceRecord>(ctx.store(), &service_key(&cluster, &name)).await?;
            let set = rec
                .filter(|(r, _)| r.status != ServiceStatus::Inactive)
                .and_then(|(r, _)| r.task_sets.into_iter().find(|t| t.id == id));
            match set {
                Some(t) => t.tags.unwrap_or_default(),
                None => return Err(not_found(&req.resource_arn)),
            }
        }
        Target::CapacityProvider(name) => {
            match get::<CapacityProviderRecord>(ctx.store(), &capacity_providers::key(&name))
                .await?
            {
                Some((rec, _)) if rec.is_active() => rec.provider.tags.unwrap_or_default(),
                _ => return Err(not_found(&req.resource_arn)),
            }
        }
    };
    Ok(ListTagsForResourceResponse { tags: Some(tags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str) -> Tag {
        Tag {
            key: Some(k.into()),
            value: Some("v".into()),
        }
    }

    #[test]
    fn tag_rules() {
        assert!(validate_tags(&[tag("a"), tag("b")], 0).is_ok());
        assert!(validate_tags(&[tag("aws:x")], 0).is_err());
        assert!(validate_tags(&[tag("AWS:x")], 0).is_err());
        assert!(validate_tags(&[tag("a"), tag("a")], 0).is_err());
        assert!(validate_tags(&[tag("a")], 50).is_err());
        assert!(validate_tags(&[tag("")], 0).is_err());
    }
}
