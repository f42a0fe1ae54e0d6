//! A task's secrets, read for its agent: the server end of `AgentMessage::GetSecrets`.
//!
//! Where secrets are resolved, and why here: when the agent that runs a task is about to create
//! its containers, it asks on its session; this module checks the task is assigned to that
//! session's container instance and not stopped, reads every `secrets` entry and
//! `logConfiguration.secretOptions` of its containers from Secrets Manager or Parameter Store
//! (as GetSecretValue and GetParameters WithDecryption would), and the Secrets Manager secret
//! each container's `repositoryCredentials` names (its `username` and `password`, for that
//! container's image pull), and the session answers on that one WebSocket. Nothing resolved is ever written: not in the task record (DescribeTasks and
//! DescribeTaskDefinition keep showing only the `valueFrom` references), not in the agent's
//! data directory. Only the server holds the key that opens sealed values, so agents never need
//! it, and a value reaches exactly the host that runs the task.
//!
//! A secret that cannot be read answers `SecretsOutcome::Failed` with the reason, in the ECS
//! agent's words ([`flotilla_control::secrets::ResolveFailure`]): the agent stops the task with
//! `ResourceInitializationError`.

use crate::context::{Api, SecretStores};
use flotilla_control::secrets::{json_key, registry_credentials, ResolveFailure, SecretSource};
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, task_key};
use flotilla_controllers::reports::runs_on;
use flotilla_protocol::{
    ContainerSecrets, RegistryCredentials, SecretPair, SecretText, SecretsOutcome,
};
use flotilla_secretsmanager::error::Kind as SmKind;
use flotilla_ssm::error::Kind as SsmKind;

/// The secrets of `task_arn` for the agent of instance `cluster`/`id`.
pub async fn for_agent(api: &Api, cluster: &str, id: &str, task_arn: &str) -> SecretsOutcome {
    let failed = |reason: String| SecretsOutcome::Failed { reason };
    let (Some(task_cluster), Some(task_id)) = (
        flotilla_model::arn::embedded_cluster(task_arn),
        flotilla_model::arn::resource_name(task_arn, "task"),
    ) else {
        return failed(format!("{task_arn} is not a task ARN of this server"));
    };
    let record = match get::<TaskRecord>(api.store.as_ref(), &task_key(task_cluster, task_id)).await
    {
        Ok(Some((t, _))) => t,
        Ok(None) => return failed(format!("the task {task_arn} does not exist")),
        Err(e) => return failed(format!("the task could not be read: {e}")),
    };
    if !runs_on(&record, cluster, id) || record.is_stopped() {
        return failed(format!(
            "the task {task_arn} is not assigned to this container instance"
        ));
    }
    let Some(assignment) = record.assignment else {
        return failed(format!("the task {task_arn} has no assignment"));
    };
    let Some(stores) = api.secret_stores() else {
        return failed(ResolveFailure::NotServed.reason());
    };
    let now = api.clock.now();
    let region = &api.config.arns.region;
    let mut containers = Vec::new();
    for c in &assignment.containers {
        let def = &c.definition;
        let name = def.name.clone().unwrap_or_default();
        let mut out = ContainerSecrets {
            name,
            environment: Vec::new(),
            log_options: Vec::new(),
            registry_auth: None,
        };
        let options = def
            .log_configuration
            .as_ref()
            .and_then(|l| l.secret_options.clone())
            .unwrap_or_default();
        for (list, secrets) in [
            (
                &mut out.environment,
                def.secrets.clone().unwrap_or_default(),
            ),
            (&mut out.log_options, options),
        ] {
            for s in secrets {
                match read(stores, &s.value_from, now, region).await {
                    Ok(value) => list.push(SecretPair {
                        name: s.name.clone(),
                        value: SecretText(value),
                    }),
                    Err(f) => return failed(f.reason()),
                }
            }
        }
        if let Some(rc) = &def.repository_credentials {
            match read_registry(stores, &rc.credentials_parameter, now).await {
                Ok(credentials) => out.registry_auth = Some(credentials),
                Err(f) => return failed(f.reason()),
            }
        }
        if !out.environment.is_empty() || !out.log_options.is_empty() || out.registry_auth.is_some()
        {
            containers.push(out);
        }
    }
    tracing::info!(task = %task_arn, containers = containers.len(), "secrets delivered to the task's agent");
    SecretsOutcome::Resolved { containers }
}

/// The registry credentials of a `repositoryCredentials.credentialsParameter` (a secret's name
/// or ARN), as the ECS agent reads them: the secret's current string value, a JSON object with
/// `username` and `password`.
async fn read_registry(
    stores: &SecretStores,
    parameter: &str,
    now: f64,
) -> Result<RegistryCredentials, ResolveFailure> {
    let value = stores
        .secrets_manager
        .resolve(parameter, None, None, now)
        .await
        .map_err(|e| match e.kind {
            SmKind::Modeled(flotilla_secretsmanager::ErrorShape::ResourceNotFoundException) => {
                ResolveFailure::RegistryAuthNotFound {
                    secret_id: parameter.to_string(),
                }
            }
            _ => ResolveFailure::RegistryAuthRefused {
                secret_id: parameter.to_string(),
                error: format!("{}: {}", e.wire_type(), e.message),
            },
        })?;
    let text = match &value {
        flotilla_secretsmanager::values::SecretValue::String(s) => s.as_str(),
        // The ECS agent reads only `SecretString`.
        flotilla_secretsmanager::values::SecretValue::Binary(_) => "",
    };
    registry_credentials(parameter, text)
}

/// One `valueFrom`'s value.
async fn read(
    stores: &SecretStores,
    value_from: &str,
    now: f64,
    region: &str,
) -> Result<String, ResolveFailure> {
    match SecretSource::parse(value_from)? {
        SecretSource::SecretsManager {
            secret_id,
            json_key: key,
            version_stage,
            version_id,
        } => {
            let value = stores
                .secrets_manager
                .resolve(
                    &secret_id,
                    version_stage.as_deref(),
                    version_id.as_deref(),
                    now,
                )
                .await
                .map_err(|e| match e.kind {
                    SmKind::Modeled(
                        flotilla_secretsmanager::ErrorShape::ResourceNotFoundException,
                    ) => ResolveFailure::SecretNotFound {
                        secret_id: value_from.to_string(),
                    },
                    _ => ResolveFailure::SecretRefused {
                        secret_id: secret_id.clone(),
                        error: format!("{}: {}", e.wire_type(), e.message),
                    },
                })?;
            let text = match &value {
                flotilla_secretsmanager::values::SecretValue::String(s) => s.clone(),
                flotilla_secretsmanager::values::SecretValue::Binary(b) => {
                    String::from_utf8_lossy(b).into_owned()
                }
            };
            match key {
                Some(k) => json_key(&text, &k),
                None => Ok(text),
            }
        }
        SecretSource::Parameter { name } => {
            stores
                .parameters
                .resolve(&name)
                .await
                .map_err(|e| match e.kind {
                    SsmKind::Modeled(
                        flotilla_ssm::ErrorShape::ParameterNotFound
                        | flotilla_ssm::ErrorShape::ParameterVersionNotFound,
                    ) => ResolveFailure::ParametersNotFound {
                        region: region.to_string(),
                        names: vec![name.clone()],
                    },
                    _ => ResolveFailure::ParameterRefused {
                        region: region.to_string(),
                        error: format!("{}: {}", e.wire_type(), e.message),
                    },
                })
        }
    }
}
