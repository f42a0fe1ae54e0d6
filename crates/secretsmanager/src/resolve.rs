//! A secret's value for an ECS task's `secrets` (and `secretOptions`): what `GetSecretValue`
//! answers for the secret, version stage and version id the `valueFrom` names. The caller
//! (the agent session, in `flotilla-api`) delivers it only to the agent that runs the task.

use crate::error::SmError;
use crate::service::SecretsManager;
use crate::values::{self, SecretValue};

impl SecretsManager {
    /// The value of `secret_id` (a name, full or partial ARN) at `version_id` and/or
    /// `version_stage` (`AWSCURRENT` when neither), as GetSecretValue finds it: a missing
    /// secret is `ResourceNotFoundException`, a deleted one `InvalidRequestException`.
    pub async fn resolve(
        &self,
        secret_id: &str,
        version_stage: Option<&str>,
        version_id: Option<&str>,
        now: f64,
    ) -> Result<SecretValue, SmError> {
        let (r, _) = self.find(secret_id, now).await?;
        r.check_not_deleted()?;
        let v = r.select(version_id, version_stage)?;
        values::open(self.key(), &r.arn, v)
    }
}
