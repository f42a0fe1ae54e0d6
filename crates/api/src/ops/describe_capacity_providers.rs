//! DescribeCapacityProviders: the capacity providers every account has, FARGATE and
//! FARGATE_SPOT (Flotilla's managed capacity). Unknown names are failures with reason MISSING.

use crate::context::Ctx;
use crate::paginate::page;
use crate::shared::missing;
use flotilla_control::clusters::BUILTIN_CAPACITY_PROVIDERS;
use flotilla_model::shapes::{
    CapacityProvider, CapacityProviderStatus, DescribeCapacityProvidersRequest,
    DescribeCapacityProvidersResponse,
};
use flotilla_model::EcsError;

/// DescribeCapacityProviders.
pub async fn describe_capacity_providers(
    ctx: &Ctx<'_>,
    req: DescribeCapacityProvidersRequest,
) -> Result<DescribeCapacityProvidersResponse, EcsError> {
    let wanted: Vec<String> = req.capacity_providers.clone().unwrap_or_else(|| {
        BUILTIN_CAPACITY_PROVIDERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for w in wanted {
        let name = flotilla_model::arn::resource_name(&w, "capacity-provider")
            .unwrap_or(&w)
            .to_string();
        if BUILTIN_CAPACITY_PROVIDERS.contains(&name.as_str()) {
            let cp = CapacityProvider {
                capacity_provider_arn: Some(ctx.arns().capacity_provider(&name)),
                name: Some(name.clone()),
                status: Some(CapacityProviderStatus::Active),
                tags: Some(Vec::new()),
                ..Default::default()
            };
            found.push((name, cp));
        } else {
            failures.push(missing(w.clone()));
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
