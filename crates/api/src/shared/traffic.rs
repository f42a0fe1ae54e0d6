//! A service's `loadBalancers` and `serviceRegistries` checked as ECS checks them at
//! CreateService and UpdateService: the request's own rules against the task definition
//! (`flotilla_control::traffic`), then the target groups and Cloud Map services themselves,
//! read through the plane's [`flotilla_controllers::traffic::Traffic`].

use crate::context::Ctx;
use flotilla_control::traffic::{
    check_load_balancers, check_service_registries, check_target_type,
};
use flotilla_model::shapes::{LoadBalancer, ServiceRegistry, TaskDefinition};
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

/// The `roleArn` a service shows for the `role` it was given (a name or an ARN).
pub fn role_arn(ctx: &Ctx<'_>, role: Option<&str>) -> Option<String> {
    let role = role.filter(|r| !r.is_empty())?;
    Some(if role.starts_with("arn:") {
        role.to_string()
    } else {
        format!("arn:aws:iam::{}:role/{role}", ctx.arns().account)
    })
}
