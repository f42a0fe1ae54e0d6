//! The reads every capacity provider handler shares: the stored custom providers
//! (`capacity-providers/NAME`), a provider named by short name or ARN, and what a request that
//! names providers needs to know of each ([`ProviderState`]).

use crate::context::Ctx;
use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
use flotilla_control::clusters::ProviderState;
use flotilla_controllers::records::list;
use flotilla_model::EcsError;
use std::collections::BTreeMap;

/// Every stored custom provider (ACTIVE or INACTIVE) by name, with its `mod_revision`.
pub async fn all(
    ctx: &Ctx<'_>,
) -> Result<BTreeMap<String, (CapacityProviderRecord, u64)>, EcsError> {
    Ok(list::<CapacityProviderRecord>(ctx.store(), cp::PREFIX)
        .await?
        .into_iter()
        .map(|(_, rec, rev)| (rec.name().to_string(), (rec, rev)))
        .collect())
}

/// The state of a custom provider in `all`.
pub fn state(all: &BTreeMap<String, (CapacityProviderRecord, u64)>, name: &str) -> ProviderState {
    match all.get(name) {
        Some((r, _)) if r.is_active() => ProviderState::Active,
        Some(_) => ProviderState::Inactive,
        None => ProviderState::Missing,
    }
}

/// The short name a request gives by name or ARN (`arn:...:capacity-provider/NAME`); `None` for
/// an ARN of another region or account, which names no provider here.
pub fn name_of(ctx: &Ctx<'_>, given: &str) -> Option<String> {
    if crate::ops::foreign_arn(ctx, given) {
        return None;
    }
    Some(
        flotilla_model::arn::resource_name(given, "capacity-provider")
            .unwrap_or(given)
            .to_string(),
    )
}

/// The custom capacity provider an Update or DeleteCapacityProvider request addresses (by name
/// or ARN): refused for the `cluster` member (Managed Instances only), unknown names and the
/// built-in FARGATE and FARGATE_SPOT.
pub fn addressed(ctx: &Ctx<'_>, given: &str, cluster: Option<&str>) -> Result<String, EcsError> {
    if cluster.is_some() {
        return Err(EcsError::invalid_parameter(
            "The cluster parameter is only supported for Amazon ECS Managed Instances capacity providers.",
        ));
    }
    let name = name_of(ctx, given).ok_or_else(|| cp::not_found(given))?;
    if cp::is_builtin(&name) {
        return Err(cp::reserved(&name));
    }
    Ok(name)
}
