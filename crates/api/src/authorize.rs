//! Authorization of API credentials by IAM-style policies (`flotilla_iam`), after
//! authentication and before anything else looks at the request.
//!
//! A configured key may carry an identity-based policy (`[[credentials]] policy` or
//! `policy_file` in `--config`; [`Policies`], given with [`Api::with_policies`]). Every request
//! signed with such a key is checked here: the ECS operations ([`ecs`], from
//! `server::serve`), Flotilla's own (`flotilla:Operation` on `*`, [`admin`]), every service
//! behind the edge ([`edge`], from `server::handle_service`) and the agent session's upgrade
//! ([`action`] with `ecs:Poll` on the container instance, from `session::upgrade`). What each
//! request's action and resources are is [`resources`] (pure, tested there); the few that need
//! the store (a task definition's latest revision and roles, a secret's full ARN) are resolved
//! here, and only for a key that has a policy. A key without one, and a task role's temporary
//! key, keeps full access, so `flotilla dev` stays zero-configuration.
//!
//! A refusal is `AccessDeniedException` with IAM's message ([`flotilla_iam::denial_message`]),
//! naming the principal (`arn:aws:iam::ACCOUNT:user/NAME` for a key with a policy), the action
//! and the resource, in the service's own error shape.

pub mod resources;

use crate::context::Api;
use flotilla_edge::{EdgeError, Service};
use flotilla_iam::{evaluate, Context, Decision, Policy, Request};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_sigv4::Caller;
use resources::{Check, Plan, Resource};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The policies of the configured keys that have one, by access key id.
#[derive(Debug, Clone, Default)]
pub struct Policies(HashMap<String, Arc<Policy>>);

impl Policies {
    /// With `policy` for the key `access_key_id`.
    pub fn with(mut self, access_key_id: &str, policy: Policy) -> Self {
        self.0.insert(access_key_id.to_string(), Arc::new(policy));
        self
    }

    /// The policy of a key, if it has one.
    pub fn of(&self, access_key_id: &str) -> Option<&Policy> {
        self.0.get(access_key_id).map(Arc::as_ref)
    }

    /// How many keys have a policy.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key has a policy.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A refused request: IAM's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The evaluation's outcome (an explicit or the default deny).
    pub decision: Decision,
    /// IAM's message.
    pub message: String,
}

impl Denial {
    /// As ECS answers it: `AccessDeniedException`, HTTP 400.
    pub fn to_ecs(&self) -> EcsError {
        EcsError::new(ErrorCode::AccessDeniedExceptionPolicy, self.message.clone())
    }

    /// As a service behind the edge answers it (its own shape).
    pub fn to_edge(&self) -> EdgeError {
        EdgeError::AccessDenied {
            message: self.message.clone(),
        }
    }
}

/// Why a request could not be authorized.
#[derive(Debug)]
pub enum Refusal {
    /// The policy does not allow it.
    Denied(Denial),
    /// The store failed while resolving a resource: the service's own 5xx.
    Internal(String),
}

impl Refusal {
    /// As ECS answers it.
    pub fn to_ecs(&self) -> EcsError {
        match self {
            Refusal::Denied(d) => d.to_ecs(),
            Refusal::Internal(m) => EcsError::server(m.clone()),
        }
    }

    /// As a service behind the edge answers it.
    pub fn to_edge(&self) -> EdgeError {
        match self {
            Refusal::Denied(d) => d.to_edge(),
            Refusal::Internal(m) => EdgeError::Internal { message: m.clone() },
        }
    }
}

fn decide(
    policy: &Policy,
    caller: &Caller,
    action: &str,
    resource: &str,
    context: &Context,
) -> Result<(), Refusal> {
    let request = Request {
        action,
        resource,
        context,
    };
    let decision = evaluate([policy], &request);
    match flotilla_iam::denial_message(&caller.principal_arn, &request, decision) {
        None => Ok(()),
        Some(message) => {
            tracing::info!(
                access_key_id = %caller.access_key_id,
                principal = %caller.principal_arn,
                action,
                resource,
                ?decision,
                "refused by the key's policy"
            );
            Err(Refusal::Denied(Denial { decision, message }))
        }
    }
}

/// One action on one resource (the agent session: `ecs:Poll` on its container instance).
pub fn action(api: &Api, caller: &Caller, action: &str, resource: &str) -> Result<(), Refusal> {
    match api.policies().of(&caller.access_key_id) {
        None => Ok(()),
        Some(policy) => decide(policy, caller, action, resource, &Context::new()),
    }
}

/// An ECS operation with its input.
pub async fn ecs(
    api: &Api,
    caller: &Caller,
    operation: &str,
    input: &Value,
) -> Result<(), Refusal> {
    let Some(policy) = api.policies().of(&caller.access_key_id) else {
        return Ok(());
    };
    let plan = resources::ecs(operation, input, &api.config.arns);
    run(api, policy, caller, plan).await
}

/// One of Flotilla's own operations (`FlotillaAdmin.NAME`): `flotilla:NAME` on `*`.
pub fn admin(api: &Api, caller: &Caller, operation: &str) -> Result<(), Refusal> {
    action(api, caller, &format!("flotilla:{operation}"), "*")
}

/// An operation of a service behind the edge, with its body as received.
pub async fn edge(
    api: &Api,
    caller: &Caller,
    service: &dyn Service,
    operation: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let Some(policy) = api.policies().of(&caller.access_key_id) else {
        return Ok(());
    };
    // The input as JSON: a JSON body, or an awsQuery form's parameters. A body that is
    // neither is checked on `*`; the service then refuses it as it always does.
    let input = serde_json::from_slice::<Value>(body)
        .ok()
        .unwrap_or_else(|| {
            flotilla_edge::query::parse_form(body)
                .map(|form| {
                    Value::Object(
                        form.into_iter()
                            .map(|(k, v)| (k, Value::String(v)))
                            .collect(),
                    )
                })
                .unwrap_or(Value::Null)
        });
    let plan = resources::edge(service.signing_name(), operation, &input, &api.config.arns);
    run(api, policy, caller, plan).await
}

async fn run(api: &Api, policy: &Policy, caller: &Caller, plan: Plan) -> Result<(), Refusal> {
    for Check {
        action,
        resource,
        context,
    } in &plan.checks
    {
        let arn = resolve(api, resource).await?;
        decide(policy, caller, action, &arn, context)?;
    }
    if let Some(reference) = &plan.pass_roles_of {
        for role in task_definition_roles(api, reference).await? {
            let arn = resources::role_arn(&role, &api.config.arns.account);
            decide(policy, caller, "iam:PassRole", &arn, &Context::new())?;
        }
    }
    Ok(())
}

/// The ARN a check's resource is.
async fn resolve(api: &Api, resource: &Resource) -> Result<String, Refusal> {
    let arns = &api.config.arns;
    match resource {
        Resource::Arn(a) => Ok(a.clone()),
        Resource::TaskDefinition(reference) => {
            Ok(match load_task_definition(api, reference).await? {
                Some(td) => td.task_definition_arn.unwrap_or_default(),
                None if reference.starts_with("arn:") => reference.clone(),
                None => format!(
                    "arn:aws:ecs:{}:{}:task-definition/{reference}",
                    arns.region, arns.account
                ),
            })
        }
        Resource::Secret(id) => {
            let found = match api.secret_stores() {
                Some(stores) => match stores.secrets_manager.find(id, api.clock.now()).await {
                    Ok((record, _)) => Some(record.arn),
                    // No such secret (or another error of the request): checked on the name as
                    // given; the service answers the request as it always does.
                    Err(e) if e.wire_type() != "InternalServiceError" => None,
                    Err(e) => return Err(Refusal::Internal(e.message)),
                },
                None => None,
            };
            Ok(found.unwrap_or_else(|| {
                if id.starts_with("arn:") {
                    id.clone()
                } else {
                    format!(
                        "arn:aws:secretsmanager:{}:{}:secret:{id}",
                        arns.region, arns.account
                    )
                }
            }))
        }
    }
}

async fn load_task_definition(
    api: &Api,
    reference: &str,
) -> Result<Option<flotilla_model::shapes::TaskDefinition>, Refusal> {
    let Ok(r) = flotilla_control::task_definitions::parse_ref(reference) else {
        return Ok(None);
    };
    flotilla_controllers::records::load_task_definition(api.store(), &r)
        .await
        .map(|found| found.and_then(|(record, _)| record.task_definition))
        .map_err(|e| Refusal::Internal(e.message))
}

/// The roles a task definition hands to ECS (task role, execution role).
async fn task_definition_roles(api: &Api, reference: &str) -> Result<Vec<String>, Refusal> {
    Ok(load_task_definition(api, reference)
        .await?
        .map(|td| {
            [td.task_role_arn, td.execution_role_arn]
                .into_iter()
                .flatten()
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default())
}
