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
//! here, and only for a key that has a policy. A task role's temporary key is held to its
//! role's policy (`[[roles]]` in `--config`), found from the key's principal
//! (`arn:aws:sts::ACCOUNT:assumed-role/NAME/TASK`, [`assumed_role`]). A key without a policy,
//! and a role without one, keeps full access, so `flotilla dev` stays zero-configuration.
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

/// The policies of the configured keys that have one, by access key id, and of the roles that
/// have one, by account and role name.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    keys: HashMap<String, Arc<Policy>>,
    roles: HashMap<(String, String), Arc<Policy>>,
}

impl Policies {
    /// With `policy` for the key `access_key_id`.
    pub fn with(mut self, access_key_id: &str, policy: Policy) -> Self {
        self.keys
            .insert(access_key_id.to_string(), Arc::new(policy));
        self
    }

    /// With `policy` for the role `name` of `account` (its last path segment: STS names an
    /// assumed role's session by it).
    pub fn with_role(mut self, account: &str, name: &str, policy: Policy) -> Self {
        self.roles
            .insert((account.to_string(), name.to_string()), Arc::new(policy));
        self
    }

    /// The policy of a key, if it has one.
    pub fn of(&self, access_key_id: &str) -> Option<&Policy> {
        self.keys.get(access_key_id).map(Arc::as_ref)
    }

    /// The policy a caller is held to: its key's, else, for a role's session (a task role's
    /// key), its role's; `None`: full access.
    pub fn for_caller(&self, caller: &Caller) -> Option<&Policy> {
        self.of(&caller.access_key_id).or_else(|| {
            let (account, name) = assumed_role(&caller.principal_arn)?;
            self.roles
                .get(&(account.to_string(), name.to_string()))
                .map(Arc::as_ref)
        })
    }

    /// How many keys and roles have a policy.
    pub fn len(&self) -> usize {
        self.keys.len() + self.roles.len()
    }

    /// Whether no key and no role has a policy.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.roles.is_empty()
    }
}

/// The account and role name of an assumed role's session principal,
/// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`; `None` for any other principal.
pub fn assumed_role(principal_arn: &str) -> Option<(&str, &str)> {
    let rest = principal_arn.strip_prefix("arn:aws:sts::")?;
    let (account, resource) = rest.split_once(':')?;
    let (name, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
    (!account.is_empty() && !name.is_empty() && !session.is_empty()).then_some((account, name))
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
    match api.policies().for_caller(caller) {
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
    let Some(policy) = api.policies().for_caller(caller) else {
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
    let Some(policy) = api.policies().for_caller(caller) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(key: &str, principal: &str) -> Caller {
        Caller {
            access_key_id: key.into(),
            region: "us-east-1".into(),
            service: "ecs".into(),
            principal_arn: principal.into(),
        }
    }

    fn allow(action: &str) -> Policy {
        Policy::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
        ))
        .unwrap()
    }

    fn allows(policy: Option<&Policy>, action: &str) -> Option<bool> {
        let context = Context::new();
        policy.map(|p| {
            evaluate(
                [p],
                &Request {
                    action,
                    resource: "*",
                    context: &context,
                },
            ) == Decision::Allowed
        })
    }

    #[test]
    fn an_assumed_roles_session_names_its_account_and_role() {
        assert_eq!(
            assumed_role("arn:aws:sts::123456789012:assumed-role/app/0f1e2d"),
            Some(("123456789012", "app"))
        );
        for other in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:role/app",
            "arn:aws:sts::123456789012:assumed-role/app",
            "arn:aws:sts::123456789012:assumed-role//task",
            "arn:aws:sts:::assumed-role/app/task",
            "",
        ] {
            assert_eq!(assumed_role(other), None, "{other}");
        }
    }

    #[test]
    fn a_task_roles_key_is_held_to_its_roles_policy_and_a_keys_own_policy_comes_first() {
        let policies = Policies::default()
            .with("AKIDREADER", allow("ecs:Describe*"))
            .with_role(
                "123456789012",
                "app",
                allow("secretsmanager:GetSecretValue"),
            );
        let task = caller("ASIATASK", "arn:aws:sts::123456789012:assumed-role/app/t1");
        assert_eq!(
            allows(policies.for_caller(&task), "secretsmanager:GetSecretValue"),
            Some(true)
        );
        assert_eq!(
            allows(policies.for_caller(&task), "ecs:RunTask"),
            Some(false)
        );
        // The same role name in another account, and another role: no policy, full access.
        let elsewhere = caller("ASIAX", "arn:aws:sts::999999999999:assumed-role/app/t1");
        assert!(policies.for_caller(&elsewhere).is_none());
        let other_role = caller("ASIAY", "arn:aws:sts::123456789012:assumed-role/web/t2");
        assert!(policies.for_caller(&other_role).is_none());
        // A configured key's own policy, whatever its principal says.
        let reader = caller("AKIDREADER", "arn:aws:sts::123456789012:assumed-role/app/x");
        assert_eq!(
            allows(policies.for_caller(&reader), "ecs:DescribeClusters"),
            Some(true)
        );
        assert_eq!(
            allows(
                policies.for_caller(&reader),
                "secretsmanager:GetSecretValue"
            ),
            Some(false)
        );
        assert_eq!(policies.len(), 2);
    }
}
