//! A service's `loadBalancers` and `serviceRegistries` checked as ECS checks them at
//! CreateService and UpdateService: the request's own rules against the task definition
//! (`flotilla_control::traffic`), then the target groups and Cloud Map services themselves,
//! read through the plane's [`flotilla_controllers::traffic::Traffic`]; and a BLUE_GREEN,
//! LINEAR or CANARY strategy's `advancedConfiguration` against the listener rules.

use crate::context::Ctx;
use flotilla_control::services::check_strategy_traffic;
use flotilla_control::traffic::{
    check_load_balancers, check_service_registries, check_target_type,
};
use flotilla_model::shapes::{
    DeploymentConfiguration, LoadBalancer, ServiceRegistry, TaskDefinition,
};
use flotilla_model::{EcsError, ErrorCode};

/// Checks the load balancers and registries a service will have with task definition `td`.
pub async fn check(
    ctx: &Ctx<'_>,
    lbs: &[LoadBalancer],
    regs: &[ServiceRegistry],
    role: Option<&str>,
    td: &TaskDefinition,
) -> Result<(), EcsError> {
    check_load_balancers(lbs, td, role)?;
    check_service_registries(regs, td)?;
    if lbs.is_empty() && regs.is_empty() {
        return Ok(());
    }
    let Some(traffic) = ctx.plane().traffic.as_ref() else {
        return Err(EcsError::new(
            ErrorCode::UnsupportedFeatureException,
            "This Flotilla server does not serve Elastic Load Balancing or Cloud Map, so a service cannot name loadBalancers or serviceRegistries.",
        ));
    };
    for lb in lbs {
        let Some(arn) = lb.target_group_arn.as_deref() else {
            continue;
        };
        let Some(tg) = traffic.target_group(arn).await? else {
            return Err(EcsError::invalid_parameter(format!(
                "The target group with targetGroupArn {arn} does not exist."
            )));
        };
        if !tg.has_load_balancer {
            return Err(EcsError::invalid_parameter(format!(
                "The target group with targetGroupArn {arn} does not have an associated load balancer."
            )));
        }
        check_target_type(arn, tg.target_type, td)?;
    }
    for reg in regs {
        let Some(arn) = reg.registry_arn.as_deref() else {
            continue;
        };
        if !traffic.registry_exists(arn).await? {
            return Err(EcsError::invalid_parameter(format!(
                "The service registry {arn} does not exist."
            )));
        }
    }
    Ok(())
}

/// A service's deployment strategy against its load balancers: BLUE_GREEN, LINEAR and CANARY
/// need each load balancer's `advancedConfiguration`
/// ([`flotilla_control::services::check_strategy_traffic`]); every `advancedConfiguration`
/// given is checked against the load balancer records: the alternate target group exists and
/// fits the network mode, and the production (and test) listener rule, or listener, exists and
/// forwards to both target groups.
pub async fn check_blue_green(
    ctx: &Ctx<'_>,
    config: &DeploymentConfiguration,
    lbs: &[LoadBalancer],
    td: &TaskDefinition,
) -> Result<(), EcsError> {
    check_strategy_traffic(config, lbs)?;
    let with_advanced = lbs
        .iter()
        .filter_map(|lb| Some((lb, lb.advanced_configuration.as_ref()?)));
    for (lb, a) in with_advanced {
        let Some(traffic) = ctx.plane().traffic.as_ref() else {
            return Ok(());
        };
        let tg = lb.target_group_arn.as_deref().unwrap_or("");
        let alt = a.alternate_target_group_arn.as_deref().unwrap_or("");
        if alt.is_empty() {
            return Err(EcsError::invalid_parameter(
                "advancedConfiguration.alternateTargetGroupArn is required.",
            ));
        }
        let Some(group) = traffic.target_group(alt).await? else {
            return Err(EcsError::invalid_parameter(format!(
                "The target group with targetGroupArn {alt} does not exist."
            )));
        };
        check_target_type(alt, group.target_type, td)?;
        let rules = [
            (
                "productionListenerRule",
                a.production_listener_rule.as_deref(),
            ),
            ("testListenerRule", a.test_listener_rule.as_deref()),
        ];
        for (member, rule) in rules {
            let Some(rule) = rule else { continue };
            let Some(forward) = traffic.listener_rule(rule).await? else {
                return Err(EcsError::invalid_parameter(format!(
                    "The {member} {rule} does not exist: it must be the ARN of a listener rule or a listener."
                )));
            };
            let names = |arn: &str| forward.iter().any(|(g, _)| g == arn);
            if !names(tg) || !names(alt) {
                return Err(EcsError::invalid_parameter(format!(
                    "The {member} {rule} must forward to both the target group {tg} and the alternate target group {alt}."
                )));
            }
        }
    }
    Ok(())
}

/// The `roleArn` a service shows for the `role` it was given (a name or an ARN).
pub fn role_arn(ctx: &Ctx<'_>, role: Option<&str>) -> Option<String> {
    let role = role.filter(|r| !r.is_empty())?;
    Some(if role.starts_with("arn:") {
        role.to_string()
    } else {
        format!("arn:aws:iam::{}:role/{role}", ctx.arns().account)
    })
}
