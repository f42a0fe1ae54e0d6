//! [`SecretsManager`]: the operations, on the store. Each handler is thin: read the secret
//! (a `SecretId` is a name, a full ARN or a partial ARN: [`crate::arn::lookup`]), apply a rule
//! of [`crate::record`], write it back with a compare-and-swap on its `mod_revision` (retried by
//! [`flotilla_store::cas::retry`]), answer the generated response type.

use crate::arn;
use crate::error::SmError;
use crate::record::{Added, SecretRecord, Version};
use crate::shapes::*;
use crate::values::{self, SecretValue};
use crate::ErrorShape;
use base64::Engine as _;
use flotilla_edge::json::validate::Model;
use flotilla_edge::json::{JsonApi, JsonCall, JsonError};
use flotilla_seal::Key;
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};
use serde_json::Value;
use std::sync::Arc;

/// Prefix of the secret records: `secretsmanager/secrets/NAME` -> [`SecretRecord`].
pub const SECRETS: &str = "secretsmanager/secrets/";
/// The KMS key Secrets Manager uses when none is named (the only one Flotilla accepts: it
/// seals every value with its own key).
pub const DEFAULT_KMS_KEY: &str = "alias/aws/secretsmanager";

/// The store key of a secret.
pub fn secret_key(name: &str) -> String {
    format!("{SECRETS}{name}")
}

/// Secrets Manager on one installation's store, region and account.
pub struct SecretsManager {
    store: Arc<dyn Store>,
    key: Key,
    region: String,
    account: String,
    model: Model,
}

/// The operations served (the model's others are refused by name).
const SERVED: &[&str] = &[
    "CreateSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecret",
    "DescribeSecret",
    "ListSecrets",
    "ListSecretVersionIds",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
    "GetRandomPassword",
];

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, SmError> {
    serde_json::to_value(v)
        .map_err(|e| SmError::internal(format!("could not encode the response: {e}")))
}

fn contended() -> SmError {
    SmError::internal("The secret is being changed by other requests; retry.")
}

fn decode(kv: &flotilla_store::KeyValue) -> Result<SecretRecord, SmError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| SmError::internal(format!("a stored secret is unreadable: {e}")))
}

fn encode(r: &SecretRecord) -> Result<Vec<u8>, SmError> {
    serde_json::to_vec(r)
        .map_err(|e| SmError::internal(format!("could not encode the secret: {e}")))
}

fn check_kms(kms: Option<&str>) -> Result<(), SmError> {
    match kms {
        None | Some("") | Some(DEFAULT_KMS_KEY) => Ok(()),
        Some(other) => Err(SmError::invalid_parameter(format!(
            "Flotilla seals every secret value with its server's own key and has no KMS: omit KmsKeyId (or use {DEFAULT_KMS_KEY}), not '{other}'."
        ))),
    }
}

impl SecretsManager {
    /// Secrets Manager on `store`, sealing values with `key`, for ARNs of `region`/`account`.
    pub fn new(
        store: Arc<dyn Store>,
        key: Key,
        region: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        SecretsManager {
            store,
            key,
            region: region.into(),
            account: account.into(),
            // The model is written by the build script from the vendored one: it parses.
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    /// The installation's key (for [`crate::resolve`]).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The secret `secret_id` names and its `mod_revision` (a purged one does not exist).
    pub async fn find(&self, secret_id: &str, now: f64) -> Result<(SecretRecord, u64), SmError> {
        for c in arn::lookup(secret_id, &self.region, &self.account) {
            let Some(kv) = self.store.get(&secret_key(&c.name)).await? else {
                continue;
            };
            let r = decode(&kv)?;
            if c.arn.as_ref().is_some_and(|a| *a != r.arn) || r.is_purged(now) {
                continue;
            }
            return Ok((r, kv.mod_revision));
        }
        Err(SmError::not_found())
    }

    /// Reads, changes (with `change`) and writes back the secret `secret_id`, retried on a
    /// lost compare-and-swap.
    async fn update<T>(
        &self,
        secret_id: &str,
        now: f64,
        change: impl Fn(&mut SecretRecord) -> Result<T, SmError>,
    ) -> Result<(T, SecretRecord), SmError> {
        let change = &change;
        retry(self.store.as_ref(), || async move {
            let (mut r, rev) = self.find(secret_id, now).await?;
            let out = change(&mut r)?;
            let key = secret_key(&r.name);
            let txn = Txn::new()
                .when(Compare::ModRevision(key.clone(), rev))
                .put(key, encode(&r)?);
            Ok::<_, SmError>(Attempt::Commit(txn, (out, r)))
        })
        .await?
        .map_err(|_| contended())
    }

    /// Whether `v` of `r` holds `value` (a retried request with the same token).
    fn holds(&self, r: &SecretRecord, v: &Version, value: &SecretValue) -> bool {
        values::open(&self.key, &r.arn, v).is_ok_and(|x| x == *value)
    }

    fn new_version(
        &self,
        arn: &str,
        token: Option<String>,
        value: &SecretValue,
        now: f64,
    ) -> Version {
        let id = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Version {
            sealed: values::seal(&self.key, arn, &id, value),
            id,
            stages: Vec::new(),
            created: now,
            kind: value.kind(),
        }
    }

    async fn create_secret(
        &self,
        req: CreateSecretRequest,
        now: f64,
    ) -> Result<CreateSecretResponse, SmError> {
        if !arn::valid_name(&req.name) {
            return Err(SmError::invalid_parameter(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
            ));
        }
        check_kms(req.kms_key_id.as_deref())?;
        if req
            .add_replica_regions
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            return Err(SmError::invalid_request(
                "Flotilla does not replicate secrets to other regions: omit AddReplicaRegions.",
            ));
        }
        if req.r#type.is_some() || req.cross_account_primary_arn.is_some() {
            return Err(SmError::invalid_request("Flotilla does not serve managed external secrets or cross-account replicas: omit Type and CrossAccountPrimaryARN."));
        }
        let value =
            SecretValue::from_request(req.secret_string.clone(), req.secret_binary.clone())?;
        let key = secret_key(&req.name);
        let tags = req.tags.clone().unwrap_or_default();
        let outcome = retry(self.store.as_ref(), || async {
            let existing = self.store.get(&key).await?;
            let compare = match &existing {
                Some(kv) => {
                    let r = decode(kv)?;
                    if r.is_purged(now) {
                        Compare::ModRevision(key.clone(), kv.mod_revision)
                    } else if r.is_deleted() {
                        return Err(SmError::invalid_request(
                            "You can't create this secret because a secret with this name is already scheduled for deletion.",
                        ));
                    } else {
                        // A retried CreateSecret (same token, same value) succeeds again.
                        let retried = match (&req.client_request_token, &value) {
                            (Some(t), Some(v)) => r.version(t).is_some_and(|ver| self.holds(&r, ver, v)),
                            _ => false,
                        };
                        if retried {
                            return Ok(Attempt::Done(r));
                        }
                        return Err(SmError::new(
                            ErrorShape::ResourceExistsException,
                            format!("The operation failed because the secret {} already exists.", req.name),
                        ));
                    }
                }
                None => Compare::Absent(key.clone()),
            };
            let suffix: String = (0..6)
                .map(|_| arn::SUFFIX_ALPHABET[rand::random::<usize>() % arn::SUFFIX_ALPHABET.len()] as char)
                .collect();
            let secret_arn = arn::secret_arn(&self.region, &self.account, &req.name, &suffix);
            let mut r = SecretRecord::new(req.name.clone(), secret_arn.clone(), req.description.clone(), vec![], now);
            r.tag(tags.clone(), now)?;
            if let Some(v) = &value {
                let version = self.new_version(&secret_arn, req.client_request_token.clone(), v, now);
                r.add_version(version, None, |_| false, now)?;
            }
            let txn = Txn::new().when(compare).put(key.clone(), encode(&r)?);
            Ok(Attempt::Commit(txn, r))
        })
        .await?
        .map_err(|_| contended())?;
        Ok(CreateSecretResponse {
            arn: Some(outcome.arn.clone()),
            name: Some(outcome.name.clone()),
            version_id: value
                .as_ref()
                .and_then(|_| outcome.versions.last().map(|v| v.id.clone())),
            ..Default::default()
        })
    }

    async fn get_secret_value(
        &self,
        req: GetSecretValueRequest,
        now: f64,
    ) -> Result<GetSecretValueResponse, SmError> {
        let (r, _) = self.find(&req.secret_id, now).await?;
        r.check_not_deleted()?;
        let v = r.select(req.version_id.as_deref(), req.version_stage.as_deref())?;
        let value = values::open(&self.key, &r.arn, v)?;
        let (string, binary) = match &value {
            SecretValue::String(s) => (Some(s.clone()), None),
            SecretValue::Binary(b) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        };
        let out = GetSecretValueResponse {
            arn: Some(r.arn.clone()),
            name: Some(r.name.clone()),
            version_id: Some(v.id.clone()),
            secret_string: string,
            secret_binary: binary,
            version_stages: Some(v.stages.clone()),
            created_date: Some(v.created),
        };
        if r.clone().touch(now) {
            // Best effort: LastAccessedDate is a day; a lost race means another read set it.
            let _ = self
                .update(&r.arn, now, |r| {
                    r.touch(now);
                    Ok(())
                })
                .await;
        }
        Ok(out)
    }

    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
        now: f64,
    ) -> Result<PutSecretValueResponse, SmError> {
        if req.rotation_token.is_some() {
            return Err(SmError::invalid_request(
                "Flotilla does not rotate secrets: omit RotationToken.",
            ));
        }
        let Some(value) =
            SecretValue::from_request(req.secret_string.clone(), req.secret_binary.clone())?
        else {
            return Err(SmError::invalid_parameter(
                "You must provide either SecretString or SecretBinary.",
            ));
        };
        let ((id, stages), r) = self
            .update(&req.secret_id, now, |r| {
                r.check_not_deleted()?;
                let version =
                    self.new_version(&r.arn, req.client_request_token.clone(), &value, now);
                let id = version.id.clone();
                let arn = r.arn.clone();
                let holds =
                    |v: &Version| values::open(&self.key, &arn, v).is_ok_and(|x| x == value);
                match r.add_version(version, req.version_stages.clone(), holds, now)? {
                    Added::New(s) | Added::Unchanged(s) => Ok((id, s)),
                }
            })
            .await?;
        Ok(PutSecretValueResponse {
            arn: Some(r.arn),
            name: Some(r.name),
            version_id: Some(id),
            version_stages: Some(stages),
        })
    }

    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
        now: f64,
    ) -> Result<UpdateSecretResponse, SmError> {
        check_kms(req.kms_key_id.as_deref())?;
        if req.r#type.is_some() {
            return Err(SmError::invalid_request(
                "Flotilla does not serve managed external secrets: omit Type.",
            ));
        }
        let value =
            SecretValue::from_request(req.secret_string.clone(), req.secret_binary.clone())?;
        let (id, r) = self
            .update(&req.secret_id, now, |r| {
                r.check_not_deleted()?;
                if let Some(d) = &req.description {
                    r.description = Some(d.clone());
                    r.last_changed = now;
                }
                let Some(value) = &value else {
                    return Ok(None);
                };
                let version =
                    self.new_version(&r.arn, req.client_request_token.clone(), value, now);
                let id = version.id.clone();
                let arn = r.arn.clone();
                let holds =
                    |v: &Version| values::open(&self.key, &arn, v).is_ok_and(|x| x == *value);
                r.add_version(version, None, holds, now)?;
                Ok(Some(id))
            })
            .await?;
        Ok(UpdateSecretResponse {
            arn: Some(r.arn),
            name: Some(r.name),
            version_id: id,
        })
    }

    async fn describe_secret(
        &self,
        req: DescribeSecretRequest,
        now: f64,
    ) -> Result<DescribeSecretResponse, SmError> {
        let (r, _) = self.find(&req.secret_id, now).await?;
        Ok(DescribeSecretResponse {
            arn: Some(r.arn.clone()),
            name: Some(r.name.clone()),
            description: r.description.clone(),
            last_changed_date: Some(r.last_changed),
            last_accessed_date: r.last_accessed,
            deleted_date: r.deletion.map(|d| d.deleted),
            tags: (!r.tags.is_empty()).then(|| r.tags.clone()),
            version_ids_to_stages: Some(r.version_stages()),
            created_date: Some(r.created),
            ..Default::default()
        })
    }

    async fn all(&self, now: f64) -> Result<Vec<SecretRecord>, SmError> {
        let page = self.store.list(SECRETS, None, 0).await?;
        let mut out = Vec::new();
        for kv in &page.items {
            let r = decode(kv)?;
            if !r.is_purged(now) {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn list_secrets(
        &self,
        req: ListSecretsRequest,
        now: f64,
    ) -> Result<ListSecretsResponse, SmError> {
        let filters = req.filters.clone().unwrap_or_default();
        let mut items: Vec<SecretRecord> = self
            .all(now)
            .await?
            .into_iter()
            .filter(|r| req.include_planned_deletion == Some(true) || !r.is_deleted())
            .filter(|r| {
                filters
                    .iter()
                    .all(|f| crate::service::filter::matches(f, r))
            })
            .collect();
        let sort_by = req.sort_by.unwrap_or(SortByType::CreatedDate);
        let sort_key = |r: &SecretRecord| -> (String, String) {
            let time = |t: f64| format!("{:020.3}", t);
            let primary = match sort_by {
                SortByType::CreatedDate => time(r.created),
                SortByType::LastAccessedDate => time(r.last_accessed.unwrap_or(0.0)),
                SortByType::LastChangedDate => time(r.last_changed),
                SortByType::Name => r.name.clone(),
            };
            (primary, r.name.clone())
        };
        let desc = req.sort_order == Some(SortOrderType::Desc);
        items.sort_by_key(sort_key);
        if desc {
            items.reverse();
        }
        let start = match &req.next_token {
            None => 0,
            Some(t) => {
                let after = page_token::decode(t)?;
                items
                    .iter()
                    .position(|r| {
                        if desc {
                            sort_key(r) < after
                        } else {
                            sort_key(r) > after
                        }
                    })
                    .unwrap_or(items.len())
            }
        };
        let max = usize::try_from(req.max_results.unwrap_or(100)).unwrap_or(100);
        let page: Vec<&SecretRecord> = items.iter().skip(start).take(max).collect();
        let next_token = (start + page.len() < items.len())
            .then(|| page.last().map(|r| page_token::encode(&sort_key(r))))
            .flatten();
        Ok(ListSecretsResponse {
            secret_list: Some(
                page.into_iter()
                    .map(|r| SecretListEntry {
                        arn: Some(r.arn.clone()),
                        name: Some(r.name.clone()),
                        description: r.description.clone(),
                        last_changed_date: Some(r.last_changed),
                        last_accessed_date: r.last_accessed,
                        deleted_date: r.deletion.map(|d| d.deleted),
                        tags: (!r.tags.is_empty()).then(|| r.tags.clone()),
                        secret_versions_to_stages: Some(r.version_stages()),
                        created_date: Some(r.created),
                        ..Default::default()
                    })
                    .collect(),
            ),
            next_token,
        })
    }

    async fn list_secret_version_ids(
        &self,
        req: ListSecretVersionIdsRequest,
        now: f64,
    ) -> Result<ListSecretVersionIdsResponse, SmError> {
        let (r, _) = self.find(&req.secret_id, now).await?;
        let versions: Vec<&Version> = r
            .versions
            .iter()
            .rev()
            .filter(|v| req.include_deprecated == Some(true) || !v.stages.is_empty())
            .collect();
        let start = match &req.next_token {
            None => 0,
            Some(t) => {
                let (_, after) = page_token::decode(t)?;
                versions
                    .iter()
                    .position(|v| v.id == after)
                    .map(|i| i + 1)
                    .unwrap_or(versions.len())
            }
        };
        let max = usize::try_from(req.max_results.unwrap_or(100)).unwrap_or(100);
        let page: Vec<&&Version> = versions.iter().skip(start).take(max).collect();
        let next_token = (start + page.len() < versions.len())
            .then(|| {
                page.last()
                    .map(|v| page_token::encode(&(String::new(), v.id.clone())))
            })
            .flatten();
        Ok(ListSecretVersionIdsResponse {
            versions: Some(
                page.into_iter()
                    .map(|v| SecretVersionsListEntry {
                        version_id: Some(v.id.clone()),
                        version_stages: Some(v.stages.clone()),
                        created_date: Some(v.created),
                        ..Default::default()
                    })
                    .collect(),
            ),
            next_token,
            arn: Some(r.arn),
            name: Some(r.name),
        })
    }

    async fn delete_secret(
        &self,
        req: DeleteSecretRequest,
        now: f64,
    ) -> Result<DeleteSecretResponse, SmError> {
        let force = req.force_delete_without_recovery == Some(true);
        if force && req.recovery_window_in_days.is_some() {
            return Err(SmError::invalid_parameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        if force {
            let r = retry(self.store.as_ref(), || async {
                let (r, rev) = self.find(&req.secret_id, now).await?;
                let key = secret_key(&r.name);
                let txn = Txn::new()
                    .when(Compare::ModRevision(key.clone(), rev))
                    .delete(key);
                Ok::<_, SmError>(Attempt::Commit(txn, r))
            })
            .await?
            .map_err(|_| contended())?;
            return Ok(DeleteSecretResponse {
                arn: Some(r.arn),
                name: Some(r.name),
                deletion_date: Some(now),
            });
        }
        let (at, r) = self
            .update(&req.secret_id, now, |r| {
                r.schedule_deletion(req.recovery_window_in_days, now)
            })
            .await?;
        Ok(DeleteSecretResponse {
            arn: Some(r.arn),
            name: Some(r.name),
            deletion_date: Some(at),
        })
    }

    async fn restore_secret(
        &self,
        req: RestoreSecretRequest,
        now: f64,
    ) -> Result<RestoreSecretResponse, SmError> {
        let (_, r) = self
            .update(&req.secret_id, now, |r| {
                r.restore(now);
                Ok(())
            })
            .await?;
        Ok(RestoreSecretResponse {
            arn: Some(r.arn),
            name: Some(r.name),
        })
    }

    async fn tag_resource(&self, req: TagResourceRequest, now: f64) -> Result<Value, SmError> {
        self.update(&req.secret_id, now, |r| {
            r.check_not_deleted()?;
            r.tag(req.tags.clone(), now)
        })
        .await?;
        Ok(serde_json::json!({}))
    }

    async fn untag_resource(&self, req: UntagResourceRequest, now: f64) -> Result<Value, SmError> {
        self.update(&req.secret_id, now, |r| {
            r.check_not_deleted()?;
            r.untag(&req.tag_keys, now);
            Ok(())
        })
        .await?;
        Ok(serde_json::json!({}))
    }

    fn get_random_password(
        &self,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, SmError> {
        let password = crate::service::password::generate(&req, |n| rand::random::<usize>() % n)?;
        Ok(GetRandomPasswordResponse {
            random_password: Some(password),
        })
    }
}

/// ListSecrets filters.
mod filter {
    use crate::record::SecretRecord;
    use crate::shapes::{Filter, FilterNameStringType};

    /// Whether `r` passes `f`: any of its values matches (a value starting with `!` must not),
    /// by prefix, case-sensitive except `description` and `all`.
    pub(super) fn matches(f: &Filter, r: &SecretRecord) -> bool {
        let values = f.values.clone().unwrap_or_default();
        let Some(key) = f.key else { return true };
        let (negated, plain): (Vec<&String>, Vec<&String>) =
            values.iter().partition(|v| v.starts_with('!'));
        let hit = |v: &str| -> bool {
            let prefix = |s: &str, insensitive: bool| {
                if insensitive {
                    s.to_lowercase().starts_with(&v.to_lowercase())
                } else {
                    s.starts_with(v)
                }
            };
            match key {
                FilterNameStringType::Name => prefix(&r.name, false),
                FilterNameStringType::Description => {
                    r.description.as_deref().is_some_and(|d| prefix(d, true))
                }
                FilterNameStringType::TagKey => r
                    .tags
                    .iter()
                    .any(|t| t.key.as_deref().is_some_and(|k| prefix(k, false))),
                FilterNameStringType::TagValue => r
                    .tags
                    .iter()
                    .any(|t| t.value.as_deref().is_some_and(|x| prefix(x, false))),
                FilterNameStringType::PrimaryRegion | FilterNameStringType::OwningService => false,
                FilterNameStringType::All => v.split_whitespace().all(|w| {
                    let w = w.to_lowercase();
                    std::iter::once(r.name.as_str())
                        .chain(r.description.as_deref())
                        .chain(r.tags.iter().filter_map(|t| t.key.as_deref()))
                        .chain(r.tags.iter().filter_map(|t| t.value.as_deref()))
                        .any(|s| s.to_lowercase().contains(&w))
                }),
            }
        };
        let positive = plain.is_empty() || plain.iter().any(|v| hit(v));
        let excluded = negated.iter().any(|v| hit(&v[1..]));
        positive && !excluded
    }
}

/// GetRandomPassword.
mod password {
    use crate::error::SmError;
    use crate::shapes::GetRandomPasswordRequest;

    const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    /// A password as the request asks (default 32 characters of every class), drawing with
    /// `pick(n)` (a random index below `n`).
    pub(super) fn generate(
        req: &GetRandomPasswordRequest,
        mut pick: impl FnMut(usize) -> usize,
    ) -> Result<String, SmError> {
        let len = usize::try_from(req.password_length.unwrap_or(32)).unwrap_or(32);
        let exclude = req.exclude_characters.clone().unwrap_or_default();
        let mut classes: Vec<Vec<char>> = Vec::new();
        let mut add = |on: bool, chars: &str| {
            if on {
                let c: Vec<char> = chars.chars().filter(|c| !exclude.contains(*c)).collect();
                if !c.is_empty() {
                    classes.push(c);
                }
            }
        };
        add(
            req.exclude_lowercase != Some(true),
            "abcdefghijklmnopqrstuvwxyz",
        );
        add(
            req.exclude_uppercase != Some(true),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        );
        add(req.exclude_numbers != Some(true), "0123456789");
        add(req.exclude_punctuation != Some(true), PUNCTUATION);
        add(req.include_space == Some(true), " ");
        let all: Vec<char> = classes.iter().flatten().copied().collect();
        if all.is_empty() {
            return Err(SmError::invalid_parameter(
                "The request excludes every character: nothing is left to build a password from.",
            ));
        }
        let each = req.require_each_included_type != Some(false);
        if each && classes.len() > len {
            return Err(SmError::invalid_parameter(format!(
                "PasswordLength {len} is too short to include a character of each of the {} included types.",
                classes.len()
            )));
        }
        let mut out: Vec<char> = (0..len).map(|_| all[pick(all.len())]).collect();
        if each {
            // Put one character of each class at distinct random places.
            let mut places: Vec<usize> = (0..len).collect();
            for class in &classes {
                let i = places.remove(pick(places.len()));
                out[i] = class[pick(class.len())];
            }
        }
        Ok(out.into_iter().collect())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn passwords_honour_length_exclusions_and_classes() {
            let mut n = 0usize;
            let mut pick = |m: usize| {
                n = n.wrapping_mul(31).wrapping_add(7);
                n % m
            };
            let req = GetRandomPasswordRequest {
                password_length: Some(20),
                exclude_characters: Some("abc".into()),
                ..Default::default()
            };
            let p = generate(&req, &mut pick).unwrap();
            assert_eq!(p.chars().count(), 20);
            assert!(!p.contains(['a', 'b', 'c']));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            let none = GetRandomPasswordRequest {
                exclude_lowercase: Some(true),
                exclude_uppercase: Some(true),
                exclude_numbers: Some(true),
                exclude_punctuation: Some(true),
                ..Default::default()
            };
            assert!(generate(&none, &mut pick).is_err());
        }
    }
}

/// Page tokens: base64 of the last item's sort key, so pages stay stable while secrets come
/// and go.
mod page_token {
    use crate::error::SmError;
    use crate::ErrorShape;
    use base64::Engine as _;

    pub(super) fn encode(key: &(String, String)) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(key).unwrap_or_default())
    }

    pub(super) fn decode(token: &str) -> Result<(String, String), SmError> {
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                SmError::new(
                    ErrorShape::InvalidNextTokenException,
                    "The NextToken value is not valid.",
                )
            })
    }
}

macro_rules! ops {
    ($self:ident, $call:ident; $( $name:literal => $handler:ident ),* $(,)?) => {
        match $call.operation {
            $(
                $name => {
                    let req = $self.model.parse_input($name, $call.input).map_err(SmError::from)?;
                    to_value($self.$handler(req, $call.now).await?)
                }
            )*
            "GetRandomPassword" => {
                let req = $self.model.parse_input("GetRandomPassword", $call.input).map_err(SmError::from)?;
                to_value($self.get_random_password(req)?)
            }
            other => Err(SmError::invalid_request(format!(
                "{other} is not supported by this Flotilla server: it serves {}.",
                SERVED.join(", ")
            ))),
        }
    };
}

#[async_trait::async_trait]
impl JsonApi for SecretsManager {
    fn title(&self) -> &'static str {
        "Secrets Manager"
    }

    fn signing_name(&self) -> &'static str {
        "secretsmanager"
    }

    fn target_prefix(&self) -> &'static str {
        "secretsmanager"
    }

    fn has_operation(&self, name: &str) -> bool {
        self.model.has_operation(name)
    }

    fn invalid_request(&self, message: String) -> JsonError {
        SmError::invalid_request(message).into()
    }

    fn internal_error(&self, message: String) -> JsonError {
        SmError::internal(message).into()
    }

    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        let result: Result<Value, SmError> = ops!(self, call;
            "CreateSecret" => create_secret,
            "GetSecretValue" => get_secret_value,
            "PutSecretValue" => put_secret_value,
            "UpdateSecret" => update_secret,
            "DescribeSecret" => describe_secret,
            "ListSecrets" => list_secrets,
            "ListSecretVersionIds" => list_secret_version_ids,
            "DeleteSecret" => delete_secret,
            "RestoreSecret" => restore_secret,
            "TagResource" => tag_resource,
            "UntagResource" => untag_resource,
        );
        result.map_err(JsonError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_store::MemoryStore;

    fn service() -> (SecretsManager, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let sm = SecretsManager::new(
            store.clone(),
            Key::from_bytes([7; 32]),
            "us-east-1",
            "123456789012",
        );
        (sm, store)
    }

    fn create(name: &str, value: &str) -> CreateSecretRequest {
        CreateSecretRequest {
            name: name.into(),
            secret_string: Some(value.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn values_are_stored_only_sealed_and_tampering_is_detected() {
        let (sm, store) = service();
        sm.create_secret(create("db", "hunter2-plain"), 1.0)
            .await
            .unwrap();
        let kv = store.get(&secret_key("db")).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&kv.value).contains("hunter2"));
        let got = sm
            .get_secret_value(
                GetSecretValueRequest {
                    secret_id: "db".into(),
                    ..Default::default()
                },
                2.0,
            )
            .await
            .unwrap();
        assert_eq!(got.secret_string.as_deref(), Some("hunter2-plain"));

        // Flip one character of the sealed value in the store: the read fails, without the value.
        let mut r: SecretRecord = serde_json::from_slice(&kv.value).unwrap();
        let sealed = &mut r.versions[0].sealed;
        let last = sealed.pop().unwrap();
        sealed.push(if last == 'A' { 'B' } else { 'A' });
        let kv = store.get(&secret_key("db")).await.unwrap().unwrap();
        store
            .txn(
                Txn::new()
                    .when(Compare::ModRevision(kv.key.clone(), kv.mod_revision))
                    .put(kv.key, serde_json::to_vec(&r).unwrap()),
            )
            .await
            .unwrap();
        let e = sm
            .get_secret_value(
                GetSecretValueRequest {
                    secret_id: "db".into(),
                    ..Default::default()
                },
                3.0,
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.kind,
            crate::error::Kind::Modeled(ErrorShape::DecryptionFailure)
        );
        assert!(!e.message.contains("hunter2"));
    }

    #[tokio::test]
    async fn a_value_moved_to_another_secret_does_not_open() {
        let (sm, store) = service();
        sm.create_secret(create("a", "value-of-a"), 1.0)
            .await
            .unwrap();
        sm.create_secret(create("b", "value-of-b"), 1.0)
            .await
            .unwrap();
        let a: SecretRecord =
            serde_json::from_slice(&store.get(&secret_key("a")).await.unwrap().unwrap().value)
                .unwrap();
        let kv = store.get(&secret_key("b")).await.unwrap().unwrap();
        let mut b: SecretRecord = serde_json::from_slice(&kv.value).unwrap();
        b.versions[0].sealed = a.versions[0].sealed.clone();
        store
            .txn(Txn::new().put(kv.key, serde_json::to_vec(&b).unwrap()))
            .await
            .unwrap();
        assert!(sm.resolve("b", None, None, 2.0).await.is_err());
        assert_eq!(
            sm.resolve("a", None, None, 2.0).await.unwrap(),
            SecretValue::String("value-of-a".into())
        );
    }
}
