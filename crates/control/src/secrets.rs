//! The `secrets` of a container definition (and its log configuration's `secretOptions`) as
//! ECS reads them: where each `valueFrom` points ([`SecretSource::parse`]), how a JSON key of a
//! Secrets Manager secret is picked ([`json_key`]), and the `ResourceInitializationError`
//! reasons a task stops with when one cannot be read ([`ResolveFailure`]), in the ECS agent's
//! words.
//!
//! - A Secrets Manager ARN, whole (`arn:aws:secretsmanager:R:A:secret:NAME-XXXXXX`, or a
//!   partial ARN without the suffix), or with ECS's suffixes
//!   `...:secret:NAME-XXXXXX:json-key:version-stage:version-id` (each may be empty).
//! - Anything else is a Parameter Store parameter: its name, or its ARN
//!   (`arn:aws:ssm:R:A:parameter/NAME`), with an optional `:version`.
//!
//! - `repositoryCredentials.credentialsParameter`: a Secrets Manager secret (name or ARN) whose
//!   value is `{"username": ..., "password": ...}` ([`registry_credentials`]); the reasons a
//!   task stops with when it cannot be read or has no user name or password are
//!   [`ResolveFailure::RegistryAuthNotFound`], [`ResolveFailure::RegistryAuthRefused`] and
//!   [`ResolveFailure::RegistryAuthMalformed`].
//!
//! What this is not: the reading itself, which the agent session does (`flotilla-api`) with
//! Secrets Manager and Parameter Store, delivering the values only to the task's agent.

use flotilla_protocol::{RegistryCredentials, SecretText};

/// Where one secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secrets Manager secret.
    SecretsManager {
        /// The secret's ARN without ECS's suffixes (what GetSecretValue's `SecretId` takes).
        secret_id: String,
        /// The key of the JSON object the secret holds, when only it is wanted.
        json_key: Option<String>,
        /// The version stage (AWSCURRENT when neither it nor the id is given).
        version_stage: Option<String>,
        /// The version id.
        version_id: Option<String>,
    },
    /// A Parameter Store parameter: its name or ARN, with an optional `:version`.
    Parameter {
        /// The name or ARN as given.
        name: String,
    },
}

impl SecretSource {
    /// Reads a `valueFrom`.
    pub fn parse(value_from: &str) -> Result<SecretSource, ResolveFailure> {
        let invalid = || ResolveFailure::InvalidValueFrom {
            value_from: value_from.to_string(),
        };
        let Some(rest) = value_from.strip_prefix("arn:") else {
            return Ok(SecretSource::Parameter {
                name: value_from.to_string(),
            });
        };
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(invalid());
        };
        match service {
            "ssm" => Ok(SecretSource::Parameter {
                name: value_from.to_string(),
            }),
            "secretsmanager" => {
                let fields: Vec<&str> = resource.split(':').collect();
                let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
                match fields[..] {
                    ["secret", _] => Ok(SecretSource::SecretsManager {
                        secret_id: value_from.to_string(),
                        json_key: None,
                        version_stage: None,
                        version_id: None,
                    }),
                    ["secret", id, key, stage, version] if !id.is_empty() => {
                        Ok(SecretSource::SecretsManager {
                            secret_id: format!(
                                "arn:{partition}:secretsmanager:{region}:{account}:secret:{id}"
                            ),
                            json_key: opt(key),
                            version_stage: opt(stage),
                            version_id: opt(version),
                        })
                    }
                    _ => Err(invalid()),
                }
            }
            _ => Err(invalid()),
        }
    }
}

/// The value of `key` in the JSON object `secret` (a string as is, anything else as JSON).
pub fn json_key(secret: &str, key: &str) -> Result<String, ResolveFailure> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(secret).map_err(|_| ResolveFailure::NotJson {
            key: key.to_string(),
        })?;
    match object.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(ResolveFailure::NoJsonKey {
            key: key.to_string(),
        }),
    }
}

/// The registry credentials a `repositoryCredentials` secret holds: a JSON object with
/// `username` and `password`, both non-empty strings. The keys are matched as the ECS agent's
/// JSON decoder matches them: exactly, else without regard to case; other keys are ignored.
/// `secret_id` is the `credentialsParameter`, for the failure's reason.
pub fn registry_credentials(
    secret_id: &str,
    secret: &str,
) -> Result<RegistryCredentials, ResolveFailure> {
    let malformed = |problem| ResolveFailure::RegistryAuthMalformed {
        secret_id: secret_id.to_string(),
        problem,
    };
    if secret.is_empty() {
        return Err(malformed(Malformed::Empty));
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(secret).map_err(|_| malformed(Malformed::InvalidSchema))?;
    let field = |name: &str| -> Result<String, Malformed> {
        let value = object
            .get(name)
            .or_else(|| {
                object
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&serde_json::Value::Null);
        match value {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Null => Ok(String::new()),
            _ => Err(Malformed::InvalidSchema),
        }
    };
    let username = field("username").map_err(malformed)?;
    let password = field("password").map_err(malformed)?;
    if username.is_empty() {
        return Err(malformed(Malformed::NoUsername));
    }
    if password.is_empty() {
        return Err(malformed(Malformed::NoPassword));
    }
    Ok(RegistryCredentials {
        username: SecretText(username),
        password: SecretText(password),
    })
}

/// What is wrong with a `repositoryCredentials` secret's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// No string value (empty, or only a binary value).
    Empty,
    /// Not a JSON object, or `username`/`password` not strings.
    InvalidSchema,
    /// No (or an empty) `username`.
    NoUsername,
    /// No (or an empty) `password`.
    NoPassword,
}

/// Why a task's secrets could not be read: the task stops with `ResourceInitializationError`
/// and [`ResolveFailure::reason`]. No variant ever holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    /// A `valueFrom` that is neither a Secrets Manager ARN (with or without ECS's suffixes)
    /// nor a parameter.
    InvalidValueFrom {
        /// As given.
        value_from: String,
    },
    /// Secrets Manager has no such secret (or version).
    SecretNotFound {
        /// The secret as named.
        secret_id: String,
    },
    /// Secrets Manager refused otherwise (a secret scheduled for deletion, a value that does
    /// not decrypt).
    SecretRefused {
        /// The secret as named.
        secret_id: String,
        /// Secrets Manager's error: `Code: message`.
        error: String,
    },
    /// The secret is not a JSON object, but a JSON key was asked for.
    NotJson {
        /// The key asked for.
        key: String,
    },
    /// The secret's JSON object has no such key.
    NoJsonKey {
        /// The key asked for.
        key: String,
    },
    /// Parameter Store has no such parameters (or versions).
    ParametersNotFound {
        /// The region.
        region: String,
        /// The parameters as named.
        names: Vec<String>,
    },
    /// Parameter Store refused otherwise.
    ParameterRefused {
        /// The region.
        region: String,
        /// Its error: `Code: message`.
        error: String,
    },
    /// The secret a container's `repositoryCredentials` names does not exist (or is deleted).
    RegistryAuthNotFound {
        /// The `credentialsParameter`.
        secret_id: String,
    },
    /// Secrets Manager refused the `repositoryCredentials` secret otherwise.
    RegistryAuthRefused {
        /// The `credentialsParameter`.
        secret_id: String,
        /// Secrets Manager's error: `Code: message`.
        error: String,
    },
    /// The `repositoryCredentials` secret does not hold a user name and a password.
    RegistryAuthMalformed {
        /// The `credentialsParameter`.
        secret_id: String,
        /// What is wrong.
        problem: Malformed,
    },
    /// This server does not serve Secrets Manager and Parameter Store.
    NotServed,
}

const PREFIX: &str = "unable to pull secrets or registry auth: execution resource retrieval failed";
/// What the ECS agent says when the registry credentials could not be read.
const REGISTRY: &str = "unable to get registry auth from asm";

impl ResolveFailure {
    /// The stopped reason after `ResourceInitializationError: `, in the ECS agent's words.
    pub fn reason(&self) -> String {
        match self {
            ResolveFailure::InvalidValueFrom { value_from } => format!(
                "{PREFIX}: unable to retrieve secret from asm: trying to retrieve secret with value {value_from} resulted in error: an invalid ARN format for the AWS Secrets Manager secret was specified. Specify a valid ARN and try again."
            ),
            ResolveFailure::SecretNotFound { secret_id } => format!(
                "{PREFIX}: unable to retrieve secret from asm: ResourceNotFoundException: The task can't retrieve the secret with ARN '{secret_id}' from AWS Secrets Manager. Check whether the secret exists in the specified Region"
            ),
            ResolveFailure::SecretRefused { secret_id, error } => {
                format!("{PREFIX}: unable to retrieve secret from asm: secret {secret_id}: {error}")
            }
            ResolveFailure::NotJson { key } => format!(
                "{PREFIX}: unable to retrieve secret from asm: the retrieved secret is not a JSON object, so it has no json key {key}"
            ),
            ResolveFailure::NoJsonKey { key } => format!(
                "{PREFIX}: unable to retrieve secret from asm: retrieved secret from Secrets Manager did not contain json key {key}"
            ),
            ResolveFailure::ParametersNotFound { region, names } => format!(
                "{PREFIX}: unable to retrieve secrets from ssm: fetching secret data from SSM Parameter Store in {region}: invalid parameters: {}",
                names.join(",")
            ),
            ResolveFailure::ParameterRefused { region, error } => format!(
                "{PREFIX}: unable to retrieve secrets from ssm: fetching secret data from SSM Parameter Store in {region}: {error}"
            ),
            ResolveFailure::RegistryAuthNotFound { secret_id } => format!(
                "{PREFIX}: {REGISTRY}: asm fetching secret from the service for {secret_id}: ResourceNotFoundException: Secrets Manager can't find the specified secret."
            ),
            ResolveFailure::RegistryAuthRefused { secret_id, error } => format!(
                "{PREFIX}: {REGISTRY}: asm fetching secret from the service for {secret_id}: {error}"
            ),
            ResolveFailure::RegistryAuthMalformed { secret_id, problem } => {
                let (field, detail) = match problem {
                    Malformed::Empty => ("authorization data", "empty secrets value"),
                    Malformed::InvalidSchema => (
                        "authorization data",
                        "unable to unmarshal secret value, invalid schema",
                    ),
                    Malformed::NoUsername => ("username", "AuthorizationData is malformed, empty field"),
                    Malformed::NoPassword => ("password", "AuthorizationData is malformed, empty field"),
                };
                format!("{PREFIX}: {REGISTRY}: asm fetching {field} from secret {secret_id}: {detail} (the secret must hold a JSON object with \"username\" and \"password\")")
            }
            ResolveFailure::NotServed => format!(
                "{PREFIX}: this Flotilla server does not serve Secrets Manager and Parameter Store"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123";

    #[test]
    fn secrets_manager_arns_with_and_without_ecs_suffixes() {
        assert_eq!(
            SecretSource::parse(ARN).unwrap(),
            SecretSource::SecretsManager {
                secret_id: ARN.into(),
                json_key: None,
                version_stage: None,
                version_id: None
            }
        );
        assert_eq!(
            SecretSource::parse(&format!("{ARN}:password::")).unwrap(),
            SecretSource::SecretsManager {
                secret_id: ARN.into(),
                json_key: Some("password".into()),
                version_stage: None,
                version_id: None
            }
        );
        assert_eq!(
            SecretSource::parse(&format!("{ARN}::AWSPREVIOUS:")).unwrap(),
            SecretSource::SecretsManager {
                secret_id: ARN.into(),
                json_key: None,
                version_stage: Some("AWSPREVIOUS".into()),
                version_id: None
            }
        );
        assert_eq!(
            SecretSource::parse(&format!("{ARN}:k::0123-id")).unwrap(),
            SecretSource::SecretsManager {
                secret_id: ARN.into(),
                json_key: Some("k".into()),
                version_stage: None,
                version_id: Some("0123-id".into())
            }
        );
        for bad in [
            format!("{ARN}:k"),
            format!("{ARN}:k:s"),
            format!("{ARN}:k:s:v:extra"),
            "arn:aws:s3:::bucket/key".to_string(),
            "arn:aws:secretsmanager".to_string(),
        ] {
            assert!(
                matches!(
                    SecretSource::parse(&bad),
                    Err(ResolveFailure::InvalidValueFrom { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn everything_else_is_a_parameter() {
        for p in [
            "/app/db/password",
            "db-password",
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/token",
            "/app/x:3",
        ] {
            assert_eq!(
                SecretSource::parse(p).unwrap(),
                SecretSource::Parameter { name: p.into() }
            );
        }
    }

    #[test]
    fn json_keys_pick_a_member_as_text() {
        let s = r#"{"user":"app","port":5432,"tls":true,"nested":{"a":1}}"#;
        assert_eq!(json_key(s, "user").unwrap(), "app");
        assert_eq!(json_key(s, "port").unwrap(), "5432");
        assert_eq!(json_key(s, "tls").unwrap(), "true");
        assert_eq!(json_key(s, "nested").unwrap(), r#"{"a":1}"#);
        assert_eq!(
            json_key(s, "password").unwrap_err(),
            ResolveFailure::NoJsonKey {
                key: "password".into()
            }
        );
        assert!(matches!(
            json_key("plain text", "k"),
            Err(ResolveFailure::NotJson { .. })
        ));
    }

    #[test]
    fn registry_credentials_are_a_username_and_a_password() {
        let c = registry_credentials("hub", r#"{"username":"u","password":"p:w","x":1}"#).unwrap();
        assert_eq!((c.username.0.as_str(), c.password.0.as_str()), ("u", "p:w"));
        // As the ECS agent's JSON decoder: keys without regard to case, the exact one first.
        let c = registry_credentials("hub", r#"{"Username":"U","PASSWORD":"P"}"#).unwrap();
        assert_eq!((c.username.0.as_str(), c.password.0.as_str()), ("U", "P"));
        let c = registry_credentials(
            "hub",
            r#"{"USERNAME":"no","username":"yes","password":"p"}"#,
        )
        .unwrap();
        assert_eq!(c.username.0, "yes");
        let problem = |s: &str| match registry_credentials("hub", s) {
            Err(ResolveFailure::RegistryAuthMalformed { secret_id, problem }) => {
                assert_eq!(secret_id, "hub");
                problem
            }
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(problem(""), Malformed::Empty);
        assert_eq!(problem("user:pass"), Malformed::InvalidSchema);
        assert_eq!(problem(r#"["u","p"]"#), Malformed::InvalidSchema);
        assert_eq!(
            problem(r#"{"username":1,"password":"p"}"#),
            Malformed::InvalidSchema
        );
        assert_eq!(problem(r#"{"password":"p"}"#), Malformed::NoUsername);
        assert_eq!(
            problem(r#"{"username":"u","password":""}"#),
            Malformed::NoPassword
        );
        assert_eq!(
            problem(r#"{"username":"u","password":null}"#),
            Malformed::NoPassword
        );
    }

    #[test]
    fn registry_auth_reasons_name_the_secret_and_never_a_value() {
        let r = ResolveFailure::RegistryAuthNotFound {
            secret_id: "registry/hub".into(),
        }
        .reason();
        assert_eq!(
            r,
            "unable to pull secrets or registry auth: execution resource retrieval failed: \
             unable to get registry auth from asm: asm fetching secret from the service for \
             registry/hub: ResourceNotFoundException: Secrets Manager can't find the specified secret."
        );
        let e = registry_credentials("registry/hub", r#"{"username":"u","password":"s3cr3t-x"}"#)
            .map(|_| ())
            .and_then(|()| {
                registry_credentials("registry/hub", r#"{"username":"s3cr3t-y"}"#).map(|_| ())
            })
            .unwrap_err();
        let r = e.reason();
        assert!(r.contains("asm fetching password from secret registry/hub: AuthorizationData is malformed, empty field"), "{r}");
        assert!(
            !r.contains("s3cr3t") && !format!("{e:?}").contains("s3cr3t"),
            "{r}"
        );
    }

    #[test]
    fn reasons_name_the_secret_in_the_ecs_agents_words() {
        let r = ResolveFailure::SecretNotFound {
            secret_id: ARN.into(),
        }
        .reason();
        assert!(
            r.contains(&format!(
                "The task can't retrieve the secret with ARN '{ARN}' from AWS Secrets Manager"
            )),
            "{r}"
        );
        let r = ResolveFailure::ParametersNotFound {
            region: "us-east-1".into(),
            names: vec!["/app/missing".into()],
        }
        .reason();
        assert!(r.ends_with("invalid parameters: /app/missing"), "{r}");
    }
}
