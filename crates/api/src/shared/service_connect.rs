//! A cluster's `serviceConnectDefaults` (CreateCluster, UpdateCluster): the Cloud Map
//! namespace it names, as ECS resolves it. A namespace ARN must name an existing namespace
//! (`NamespaceNotFoundException`); a name is the namespace of that name, and ECS creates an HTTP
//! namespace of that name when there is none, so does this (in `flotilla_servicediscovery`, in
//! the same store). The cluster stores the namespace's ARN, as DescribeClusters shows it. An
//! empty name (UpdateCluster) removes the default.

use crate::context::Ctx;
use flotilla_model::shapes::{ClusterServiceConnectDefaults, ClusterServiceConnectDefaultsRequest};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_servicediscovery::keys::{self, Account};
use flotilla_servicediscovery::{ErrorShape, SdError};

/// The defaults a request's `serviceConnectDefaults` sets: `None` to remove them.
pub async fn resolve(
    ctx: &Ctx<'_>,
    req: &ClusterServiceConnectDefaultsRequest,
) -> Result<Option<ClusterServiceConnectDefaults>, EcsError> {
    let given = req.namespace.trim();
    if given.is_empty() {
        return Ok(None);
    }
    let account = Account {
        region: ctx.arns().region.clone(),
        account: ctx.arns().account.clone(),
    };
    let not_found = || {
        EcsError::new(
            ErrorCode::NamespaceNotFoundException,
            format!("The namespace {given} was not found."),
        )
    };
    let arn = if given.starts_with("arn:") {
        let Some(id) = account.id_of("namespace", given) else {
            return Err(not_found());
        };
        match keys::get_namespace(ctx.store(), id)
            .await
            .map_err(ecs_error)?
        {
            Some((ns, _)) => ns.arn,
            None => return Err(not_found()),
        }
    } else {
        flotilla_servicediscovery::service::ensure_http_namespace(
            ctx.store(),
            &account,
            given,
            ctx.now,
        )
        .await
        .map_err(ecs_error)?
        .arn
    };
    Ok(Some(ClusterServiceConnectDefaults {
        namespace: Some(arn),
    }))
}

/// A Cloud Map refusal as ECS answers it: a bad name is the caller's (`InvalidParameterException`
/// with Cloud Map's words), a failing store the server's.
fn ecs_error(e: SdError) -> EcsError {
    match e.shape() {
        Some(ErrorShape::InvalidInput) => EcsError::invalid_parameter(e.message),
        Some(ErrorShape::NamespaceNotFound) => {
            EcsError::new(ErrorCode::NamespaceNotFoundException, e.message)
        }
        _ => EcsError::server(e.message),
    }
}
