//! PutAttributes, DeleteAttributes, ListAttributes: custom attributes on container instances
//! (the only `targetType` ECS has), at most 10 per instance. An attribute's target must be a
//! container instance registered in the cluster, else `TargetNotFoundException`.

use crate::context::Ctx;
use crate::paginate::page;
use flotilla_controllers::records::{
    active_cluster, commit, get, list, store_error, to_bytes, ATTRIBUTES, CONTAINER_INSTANCES,
};
use flotilla_model::shapes::{
    Attribute, DeleteAttributesRequest, DeleteAttributesResponse, ListAttributesRequest,
    ListAttributesResponse, PutAttributesRequest, PutAttributesResponse, TargetType,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_store::{Compare, Txn};

/// The most custom attributes one resource may carry.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 10;

fn attribute_key(cluster: &str, target_id: &str, name: &str) -> String {
    format!("{ATTRIBUTES}{cluster}/{target_id}/{name}")
}

/// Reduces a container instance ARN or id to the id.
fn instance_id(target: &str) -> &str {
    target.rsplit('/').next().unwrap_or(target)
}

fn check_attribute(a: &Attribute) -> Result<(), EcsError> {
    let name_ok = !a.name.is_empty()
        && a.name.len() <= 128
        && a.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c));
    if !name_ok {
        return Err(EcsError::invalid_parameter(format!(
            "Invalid attribute name '{}': 1 to 128 letters, numbers, hyphens, underscores, slashes and periods are allowed.",
            a.name
        )));
    }
    if let Some(v) = &a.value {
        let ok = !v.is_empty()
            && v.len() <= 128
            && !v.starts_with(' ')
            && !v.ends_with(' ')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_/.@: ".contains(c));
        if !ok {
            return Err(EcsError::invalid_parameter(format!(
                "Invalid value '{v}' for attribute '{}': 1 to 128 letters, numbers, hyphens, underscores, slashes, periods, at signs, colons and spaces, not starting or ending with a space.",
                a.name
            )));
        }
    }
    Ok(())
}

fn target_of(a: &Attribute) -> Result<&str, EcsError> {
    if a.target_type
        .is_some_and(|t| t != TargetType::ContainerInstance)
    {
        return Err(EcsError::invalid_parameter(
            "The only supported targetType is container-instance.",
        ));
    }
    a.target_id.as_deref().map(instance_id).ok_or_else(|| {
        EcsError::invalid_parameter(format!(
            "Attribute '{}' needs a targetId (a container instance ID or ARN).",
            a.name
        ))
    })
}

/// The cluster an attribute request names, refusing ARNs of another region or account.
async fn cluster_of(ctx: &Ctx<'_>, cluster: Option<&str>) -> Result<String, EcsError> {
    if cluster.is_some_and(|c| super::foreign_arn(ctx, c)) {
        return Err(EcsError::cluster_not_found());
    }
    let (c, _) = active_cluster(ctx.store(), cluster).await?;
    Ok(c.cluster_name.unwrap_or_default())
}

/// PutAttributes.
pub async fn put_attributes(
    ctx: &Ctx<'_>,
    req: PutAttributesRequest,
) -> Result<PutAttributesResponse, EcsError> {
    let cname = cluster_of(ctx, req.cluster.as_deref()).await?;
    if req.attributes.len() > MAX_CUSTOM_ATTRIBUTES {
        return Err(EcsError::new(
            ErrorCode::AttributeLimitExceededException,
            format!("At most {MAX_CUSTOM_ATTRIBUTES} attributes can be put in one call."),
        ));
    }
    let mut txn = Txn::new();
    let mut per_target: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for a in &req.attributes {
        check_attribute(a)?;
        let id = target_of(a)?.to_string();
        let ikey = format!("{CONTAINER_INSTANCES}{cname}/{id}");
        if ctx.store().get(&ikey).await.map_err(store_error)?.is_none() {
            return Err(EcsError::new(
                ErrorCode::TargetNotFoundException,
                format!("Could not find the container instance '{id}' in cluster '{cname}'."),
            ));
        }
        per_target
            .entry(id.clone())
            .or_default()
            .push(a.name.clone());
        let mut stored = a.clone();
        stored.target_type = Some(TargetType::ContainerInstance);
        stored.target_id = Some(ctx.arns().container_instance(&cname, &id));
        txn = txn
            .when(Compare::Present(ikey))
            .put(attribute_key(&cname, &id, &a.name), to_bytes(&stored)?);
    }
    for (id, names) in &per_target {
        let existing =
            list::<Attribute>(ctx.store(), &format!("{ATTRIBUTES}{cname}/{id}/")).await?;
        let mut all: std::collections::BTreeSet<String> =
            existing.into_iter().map(|(_, a, _)| a.name).collect();
        all.extend(names.iter().cloned());
        if all.len() > MAX_CUSTOM_ATTRIBUTES {
            return Err(EcsError::new(
                ErrorCode::AttributeLimitExceededException,
                format!("Container instance '{id}' would have {} custom attributes; the limit is {MAX_CUSTOM_ATTRIBUTES}.", all.len()),
            ));
        }
    }
    if !commit(ctx.store(), txn).await? {
        return Err(EcsError::new(
            ErrorCode::TargetNotFoundException,
            "The container instance was deregistered while its attributes were being written.",
        ));
    }
    Ok(PutAttributesResponse {
        attributes: Some(req.attributes),
    })
}

/// DeleteAttributes.
pub async fn delete_attributes(
    ctx: &Ctx<'_>,
    req: DeleteAttributesRequest,
) -> Result<DeleteAttributesResponse, EcsError> {
    let cname = cluster_of(ctx, req.cluster.as_deref()).await?;
    let mut txn = Txn::new();
    for a in &req.attributes {
        let id = target_of(a)?;
        let key = attribute_key(&cname, id, &a.name);
        if get::<Attribute>(ctx.store(), &key).await?.is_none() {
            return Err(EcsError::new(
                ErrorCode::TargetNotFoundException,
                format!(
                    "Attribute '{}' is not set on container instance '{id}' in cluster '{cname}'.",
                    a.name
                ),
            ));
        }
        txn = txn.delete(key);
    }
    commit(ctx.store(), txn).await?;
    Ok(DeleteAttributesResponse {
        attributes: Some(req.attributes),
    })
}

/// ListAttributes.
pub async fn list_attributes(
    ctx: &Ctx<'_>,
    req: ListAttributesRequest,
) -> Result<ListAttributesResponse, EcsError> {
    let cname = cluster_of(ctx, req.cluster.as_deref()).await?;
    if req.attribute_value.is_some() && req.attribute_name.is_none() {
        return Err(EcsError::invalid_parameter(
            "attributeValue can only be specified together with attributeName.",
        ));
    }
    let items: Vec<(String, Attribute)> =
        list::<Attribute>(ctx.store(), &format!("{ATTRIBUTES}{cname}/"))
            .await?
            .into_iter()
            .filter(|(_, a, _)| req.attribute_name.as_ref().is_none_or(|n| &a.name == n))
            .filter(|(_, a, _)| req.attribute_value.is_none() || a.value == req.attribute_value)
            .map(|(k, a, _)| (k, a))
            .collect();
    let (attributes, next_token) =
        page(items, req.next_token.as_deref(), req.max_results, 100, 100)?;
    Ok(ListAttributesResponse {
        attributes: Some(attributes),
        next_token,
    })
}
