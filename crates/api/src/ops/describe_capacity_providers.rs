//! DescribeCapacityProviders: FARGATE and FARGATE_SPOT (Flotilla's managed capacity, every
//! account has them) and the custom providers (`capacity-providers/NAME`). Without names: the
//! two builtins, then every ACTIVE custom provider by name; with `cluster`: only the providers
//! that cluster lists. A provider named is shown ACTIVE, or INACTIVE for the stopped-task
//! retention time after its deletion; after that, or never created, it is a MISSING failure.
//! Tags only with `include: [TAGS]`.

use crate::context::Ctx;
use crate::paginate::page;
use crate::shared::capacity_providers::{all, name_of};
use crate::shared::missing;
use flotilla_control::capacity_providers::{self as cp};
use flotilla_control::clusters::BUILTIN_CAPACITY_PROVIDERS;
use flotilla_model::shapes::{
    CapacityProviderField, DescribeCapacityProvidersRequest, DescribeCapacityProvidersResponse,
};
use flotilla_model::EcsError;

/// DescribeCapacityProviders.
pub async fn describe_capacity_providers(
    ctx: &Ctx<'_>,
    req: DescribeCapacityProvidersRequest,
) -> Result<DescribeCapacityProvidersResponse, EcsError> {
    let with_tags = req
        .include
        .iter()
        .flatten()
        .any(|f| *f == CapacityProviderField::Tags);
    let stored = all(ctx).await?;
    let retention = ctx.plane().timings.stopped_task_retention.as_secs_f64();
    let in_cluster = match req.cluster.as_deref() {
        Some(c) => {
            let name = super::request_cluster(ctx, Some(c), &[]).await?;
            let (c, _) =
                flotilla_controllers::records::active_cluster(ctx.store(), Some(&name)).await?;
            Some(c.capacity_providers.unwrap_or_default())
        }
        None => None,
    };
    let wanted: Vec<String> = match &req.capacity_providers {
        Some(names) => names.clone(),
        None => BUILTIN_CAPACITY_PROVIDERS
            .iter()
            .map(|s| s.to_string())
            .chain(
                stored
                    .values()
                    .filter(|(r, _)| r.is_active())
                    .map(|(r, _)| r.name().to_string()),
            )
            .filter(|n| in_cluster.as_ref().is_none_or(|c| c.contains(n)))
            .collect(),
    };
    if wanted.len() > 100 {
        return Err(EcsError::invalid_parameter(
            "Up to 100 capacity providers can be described in an action.",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for w in wanted {
        let Some(name) = name_of(ctx, &w) else {
            failures.push(missing(w.clone()));
            continue;
        };
        if in_cluster.as_ref().is_some_and(|c| !c.contains(&name)) {
            failures.push(missing(w.clone()));
            continue;
        }
        if cp::is_builtin(&name) {
            let mut p = cp::builtin(&name, ctx.arns().capacity_provider(&name));
            if !with_tags {
                p.tags = None;
            }
            found.push((name, p));
            continue;
        }
        match stored.get(&name) {
            Some((rec, _)) if rec.visible(ctx.now, retention) => {
                found.push((name, rec.view(with_tags)));
            }
            _ => failures.push(missing(w.clone())),
        }
    }
    let (capacity_providers, next_token) =
        page(found, req.next_token.as_deref(), req.max_results, 10, 10)?;
    Ok(DescribeCapacityProvidersResponse {
        capacity_providers: Some(capacity_providers),
        failures: Some(failures),
        next_token,
    })
}
