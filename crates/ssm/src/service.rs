//! [`Ssm`]: the Parameter Store operations, on the store. Each handler is thin: read the
//! parameter, apply a rule of [`crate::record`], write it back with a compare-and-swap on its
//! `mod_revision` (retried by [`flotilla_store::cas::retry`]), answer the generated type.

use crate::error::SsmError;
use crate::record::{self, ParameterRecord, ParameterVersion, Selector, StoredValue};
use crate::shapes::*;
use crate::ErrorShape;
use base64::Engine as _;
use flotilla_edge::json::validate::Model;
use flotilla_edge::json::{JsonApi, JsonCall, JsonError};
use flotilla_seal::{Key, Sealed};
use flotilla_store::cas::{retry, Attempt};
use flotilla_store::{Compare, Store, Txn};
use serde_json::Value;
use std::sync::Arc;

/// Prefix of the parameter records: `ssm/parameters/NAME` -> [`ParameterRecord`].
pub const PARAMETERS: &str = "ssm/parameters/";
/// The KMS key SecureString uses when none is named (the only one Flotilla accepts: it seals
/// with its own key).
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

/// The store key of a parameter.
pub fn parameter_key(name: &str) -> String {
    format!("{PARAMETERS}{name}")
}

const SERVED: &[&str] = &[
    "PutParameter",
    "GetParameter",
    "GetParameters",
    "GetParametersByPath",
    "DescribeParameters",
    "GetParameterHistory",
    "DeleteParameter",
    "DeleteParameters",
];

/// Parameter Store on one installation's store, region and account.
pub struct Ssm {
    store: Arc<dyn Store>,
    key: Key,
    region: String,
    account: String,
    model: Model,
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, SsmError> {
    serde_json::to_value(v)
        .map_err(|e| SsmError::internal(format!("could not encode the response: {e}")))
}

fn decode(kv: &flotilla_store::KeyValue) -> Result<ParameterRecord, SsmError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| SsmError::internal(format!("a stored parameter is unreadable: {e}")))
}

fn encode(r: &ParameterRecord) -> Result<Vec<u8>, SsmError> {
    serde_json::to_vec(r)
        .map_err(|e| SsmError::internal(format!("could not encode the parameter: {e}")))
}

fn context(name: &str, version: i64) -> Vec<u8> {
    format!("ssm\0{name}\0{version}").into_bytes()
}

fn page<T: Clone>(
    items: &[T],
    token: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), SsmError> {
    let start = match token {
        None => 0,
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| {
                SsmError::new(ErrorShape::InvalidNextToken, "The NextToken is not valid.")
            })?,
    };
    let out: Vec<T> = items.iter().skip(start).take(max).cloned().collect();
    let end = start + out.len();
    let next = (end < items.len())
        .then(|| base64::engine::general_purpose::STANDARD.encode(end.to_string()));
    Ok((out, next))
}

impl Ssm {
    /// Parameter Store on `store`, sealing SecureString values with `key`.
    pub fn new(
        store: Arc<dyn Store>,
        key: Key,
        region: impl Into<String>,
        account: impl Into<String>,
    ) -> Self {
        Ssm {
            store,
            key,
            region: region.into(),
            account: account.into(),
            model: Model::parse(crate::MODEL_JSON).unwrap_or_else(|_| Model::empty()),
        }
    }

    fn arn(&self, name: &str) -> String {
        record::parameter_arn(&self.region, &self.account, name)
    }

    /// The parameter named `name` (a name or an ARN) and its `mod_revision`.
    async fn find(&self, name: &str) -> Result<Option<(ParameterRecord, u64)>, SsmError> {
        let Some(name) = record::name_of(name, &self.region, &self.account) else {
            return Ok(None);
        };
        match self.store.get(&parameter_key(&name)).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// The value of `v` of parameter `name`: in clear, or for a SecureString read without
    /// decryption its encrypted form (base64), never the clear value.
    fn value(&self, name: &str, v: &ParameterVersion, decrypt: bool) -> Result<String, SsmError> {
        match &v.value {
            StoredValue::Plain(s) => Ok(s.clone()),
            StoredValue::Sealed(s) if !decrypt => {
                Ok(s.rsplit('.').next().unwrap_or_default().to_string())
            }
            StoredValue::Sealed(s) => {
                let bytes = flotilla_seal::open(
                    &self.key,
                    &context(name, v.version),
                    &Sealed::from_stored(s.clone()),
                )
                .map_err(|e| {
                    SsmError::new(
                        ErrorShape::InvalidKeyId,
                        format!("The SecureString value of {name} cannot be decrypted: {e}."),
                    )
                })?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| SsmError::internal("a stored SecureString is not UTF-8"))
            }
        }
    }

    fn parameter(
        &self,
        r: &ParameterRecord,
        v: &ParameterVersion,
        decrypt: bool,
        selector: Option<&str>,
    ) -> Result<Parameter, SsmError> {
        Ok(Parameter {
            name: Some(r.name.clone()),
            r#type: Some(v.r#type),
            value: Some(self.value(&r.name, v, decrypt)?),
            version: v.version,
            selector: selector.map(str::to_string),
            last_modified_date: Some(v.modified),
            arn: Some(self.arn(&r.name)),
            data_type: Some("text".into()),
            ..Default::default()
        })
    }

    /// The value of parameter `name_or_arn` (with a `:version` selector or not), decrypted: for
    /// ECS `secrets` (the agent session delivers it only to the task's agent).
    pub async fn resolve(&self, name_or_arn: &str) -> Result<String, SsmError> {
        let (base, selector, _) = Selector::parse(name_or_arn);
        let (r, _) = self
            .find(base)
            .await?
            .ok_or_else(|| SsmError::not_found(base))?;
        let v = r.select(&selector)?;
        self.value(&r.name, v, true)
    }

    async fn put_parameter(
        &self,
        req: PutParameterRequest,
        now: f64,
        who: &str,
    ) -> Result<PutParameterResult, SsmError> {
        let name = record::name_of(&req.name, &self.region, &self.account).ok_or_else(|| {
            SsmError::validation("The parameter ARN is not of this region and account.")
        })?;
        record::check_name(&name)?;
        if req.policies.is_some() {
            return Err(SsmError::new(
                ErrorShape::UnsupportedOperationException,
                "Parameter policies are not supported by this Flotilla server: omit Policies.",
            ));
        }
        if req.data_type.as_deref().is_some_and(|d| d != "text") {
            return Err(SsmError::validation(
                "Flotilla supports the DataType text only.",
            ));
        }
        if req.overwrite == Some(true) && req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(SsmError::validation("Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource."));
        }
        let tier = match req.tier {
            None | Some(ParameterTier::IntelligentTiering) => ParameterTier::Standard,
            Some(t) => t,
        };
        if req.value.chars().count() > record::max_value(tier) {
            return Err(SsmError::validation(format!(
                "{} tier parameters support a maximum parameter value of {} characters.",
                tier.as_str(),
                record::max_value(tier)
            )));
        }
        if let Some(p) = &req.allowed_pattern {
            let re = regex_lite(p)?;
            if !re.is_match(&req.value) {
                return Err(SsmError::new(
                    ErrorShape::ParameterPatternMismatchException,
                    format!("Parameter value, cannot be validated against allowedPattern: {p}"),
                ));
            }
        }
        let key = parameter_key(&name);
        let outcome = retry(self.store.as_ref(), || async {
            let existing = self.store.get(&key).await?;
            let (mut r, compare) = match &existing {
                Some(kv) => {
                    if req.overwrite != Some(true) {
                        return Err(SsmError::new(
                            ErrorShape::ParameterAlreadyExists,
                            "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                        ));
                    }
                    (decode(kv)?, Compare::ModRevision(key.clone(), kv.mod_revision))
                }
                None => (
                    ParameterRecord {
                        name: name.clone(),
                        versions: vec![],
                        tags: req.tags.clone().unwrap_or_default(),
                    },
                    Compare::Absent(key.clone()),
                ),
            };
            let Some(ty) = req.r#type.or_else(|| r.current().map(|c| c.r#type)) else {
                return Err(SsmError::validation("A parameter type is required when you create a parameter: String, StringList or SecureString."));
            };
            match req.key_id.as_deref() {
                None | Some(DEFAULT_KEY_ID) => {}
                Some(_) if ty != ParameterType::SecureString => {
                    return Err(SsmError::validation("KeyId is only valid for SecureString parameters."));
                }
                Some(other) => {
                    return Err(SsmError::new(ErrorShape::InvalidKeyId, format!(
                        "Flotilla seals SecureString values with its server's own key and has no KMS: omit KeyId (or use {DEFAULT_KEY_ID}), not '{other}'."
                    )));
                }
            }
            let version = r.current().map_or(1, |c| c.version + 1);
            let value = if ty == ParameterType::SecureString {
                let nonce: [u8; flotilla_seal::NONCE_BYTES] = rand::random();
                StoredValue::Sealed(flotilla_seal::seal(&self.key, nonce, &context(&name, version), req.value.as_bytes()).as_str().to_string())
            } else {
                StoredValue::Plain(req.value.clone())
            };
            let description = req.description.clone().or_else(|| r.current().and_then(|c| c.description.clone()));
            let n = r.push(ParameterVersion {
                version,
                r#type: ty,
                value,
                description,
                allowed_pattern: req.allowed_pattern.clone(),
                tier,
                modified: now,
                modified_by: who.to_string(),
            });
            let txn = Txn::new().when(compare).put(key.clone(), encode(&r)?);
            Ok(Attempt::Commit(txn, n))
        })
        .await?
        .map_err(|_| SsmError::new(ErrorShape::TooManyUpdates, "There are concurrent updates for a resource that supports one update at a time."))?;
        Ok(PutParameterResult {
            version: outcome,
            tier: Some(tier),
        })
    }

    async fn get_one(&self, name: &str, decrypt: bool) -> Result<Parameter, SsmError> {
        let (base, selector, shown) = Selector::parse(name);
        let (r, _) = self
            .find(base)
            .await?
            .ok_or_else(|| SsmError::not_found(base))?;
        let v = r.select(&selector)?;
        self.parameter(&r, v, decrypt, shown)
    }

    async fn get_parameter(
        &self,
        req: GetParameterRequest,
    ) -> Result<GetParameterResult, SsmError> {
        Ok(GetParameterResult {
            parameter: Some(
                self.get_one(&req.name, req.with_decryption == Some(true))
                    .await?,
            ),
        })
    }

    async fn get_parameters(
        &self,
        req: GetParametersRequest,
    ) -> Result<GetParametersResult, SsmError> {
        let mut found = Vec::new();
        let mut invalid = Vec::new();
        for n in &req.names {
            match self.get_one(n, req.with_decryption == Some(true)).await {
                Ok(p) => found.push(p),
                Err(e)
                    if matches!(
                        e.kind,
                        crate::error::Kind::Modeled(
                            ErrorShape::ParameterNotFound | ErrorShape::ParameterVersionNotFound
                        )
                    ) =>
                {
                    invalid.push(n.clone())
                }
                Err(e) => return Err(e),
            }
        }
        Ok(GetParametersResult {
            parameters: Some(found),
            invalid_parameters: Some(invalid),
        })
    }

    async fn all(&self) -> Result<Vec<ParameterRecord>, SsmError> {
        let page = self.store.list(PARAMETERS, None, 0).await?;
        page.items.iter().map(decode).collect()
    }

    async fn get_parameters_by_path(
        &self,
        req: GetParametersByPathRequest,
    ) -> Result<GetParametersByPathResult, SsmError> {
        if !req.path.starts_with('/') {
            return Err(SsmError::validation(
                "The parameter path must begin with a forward slash (/).",
            ));
        }
        let filters = req.parameter_filters.clone().unwrap_or_default();
        for f in &filters {
            if !matches!(f.key.as_str(), "Type") {
                return Err(SsmError::new(ErrorShape::InvalidFilterKey, format!(
                    "The filter key {} is not supported by GetParametersByPath on this Flotilla server (Type is).", f.key
                )));
            }
        }
        let recursive = req.recursive == Some(true);
        let matching: Vec<ParameterRecord> = self
            .all()
            .await?
            .into_iter()
            .filter(|r| record::in_path(&r.name, &req.path, recursive))
            .filter(|r| filters.iter().all(|f| filter_matches(f, r)))
            .collect();
        let max = usize::try_from(req.max_results.unwrap_or(10)).unwrap_or(10);
        let (items, next) = page(&matching, req.next_token.as_deref(), max)?;
        let mut out = Vec::new();
        for r in &items {
            if let Some(v) = r.current() {
                out.push(self.parameter(r, v, req.with_decryption == Some(true), None)?);
            }
        }
        Ok(GetParametersByPathResult {
            parameters: Some(out),
            next_token: next,
        })
    }

    fn metadata(&self, r: &ParameterRecord) -> Option<ParameterMetadata> {
        let v = r.current()?;
        Some(ParameterMetadata {
            name: Some(r.name.clone()),
            arn: Some(self.arn(&r.name)),
            r#type: Some(v.r#type),
            key_id: (v.r#type == ParameterType::SecureString).then(|| DEFAULT_KEY_ID.to_string()),
            last_modified_date: Some(v.modified),
            last_modified_user: Some(v.modified_by.clone()),
            description: v.description.clone(),
            allowed_pattern: v.allowed_pattern.clone(),
            version: v.version,
            tier: Some(v.tier),
            policies: Some(vec![]),
            data_type: Some("text".into()),
        })
    }

    async fn describe_parameters(
        &self,
        req: DescribeParametersRequest,
    ) -> Result<DescribeParametersResult, SsmError> {
        if req.shared == Some(true) {
            return Err(SsmError::new(
                ErrorShape::UnsupportedOperationException,
                "Flotilla has no shared parameters: omit Shared.",
            ));
        }
        let old = req.filters.clone().unwrap_or_default();
        let new = req.parameter_filters.clone().unwrap_or_default();
        for f in &new {
            let known = matches!(
                f.key.as_str(),
                "Name" | "Type" | "KeyId" | "Path" | "Tier" | "DataType"
            ) || f.key.starts_with("tag:");
            if !known {
                return Err(SsmError::new(
                    ErrorShape::InvalidFilterKey,
                    format!(
                        "The filter key {} is not supported by this Flotilla server.",
                        f.key
                    ),
                ));
            }
            let option = f.option.as_deref().unwrap_or("Equals");
            let valid = match f.key.as_str() {
                "Path" => matches!(option, "OneLevel" | "Recursive"),
                "Name" => matches!(option, "Equals" | "BeginsWith" | "Contains"),
                _ => matches!(option, "Equals" | "BeginsWith"),
            };
            if !valid {
                return Err(SsmError::new(
                    ErrorShape::InvalidFilterOption,
                    format!(
                        "The option {option} is not valid for the filter key {}.",
                        f.key
                    ),
                ));
            }
        }
        let matching: Vec<ParameterMetadata> = self
            .all()
            .await?
            .iter()
            .filter(|r| old.iter().all(|f| old_filter_matches(f, r)))
            .filter(|r| new.iter().all(|f| filter_matches(f, r)))
            .filter_map(|r| self.metadata(r))
            .collect();
        let max = usize::try_from(req.max_results.unwrap_or(50)).unwrap_or(50);
        let (items, next) = page(&matching, req.next_token.as_deref(), max)?;
        Ok(DescribeParametersResult {
            parameters: Some(items),
            next_token: next,
        })
    }

    async fn get_parameter_history(
        &self,
        req: GetParameterHistoryRequest,
    ) -> Result<GetParameterHistoryResult, SsmError> {
        let (r, _) = self
            .find(&req.name)
            .await?
            .ok_or_else(|| SsmError::not_found(&req.name))?;
        let decrypt = req.with_decryption == Some(true);
        let mut all = Vec::new();
        for v in &r.versions {
            all.push(ParameterHistory {
                name: Some(r.name.clone()),
                r#type: Some(v.r#type),
                key_id: (v.r#type == ParameterType::SecureString)
                    .then(|| DEFAULT_KEY_ID.to_string()),
                last_modified_date: Some(v.modified),
                last_modified_user: Some(v.modified_by.clone()),
                description: v.description.clone(),
                value: Some(self.value(&r.name, v, decrypt)?),
                allowed_pattern: v.allowed_pattern.clone(),
                version: v.version,
                labels: Some(vec![]),
                tier: Some(v.tier),
                policies: Some(vec![]),
                data_type: Some("text".into()),
            });
        }
        let max = usize::try_from(req.max_results.unwrap_or(50)).unwrap_or(50);
        let (items, next) = page(&all, req.next_token.as_deref(), max)?;
        Ok(GetParameterHistoryResult {
            parameters: Some(items),
            next_token: next,
        })
    }

    /// Deletes one parameter; false when it does not exist.
    async fn delete_one(&self, name: &str) -> Result<bool, SsmError> {
        retry(self.store.as_ref(), || async {
            let Some((r, rev)) = self.find(name).await? else {
                return Ok::<_, SsmError>(Attempt::Done(false));
            };
            let key = parameter_key(&r.name);
            Ok(Attempt::Commit(
                Txn::new()
                    .when(Compare::ModRevision(key.clone(), rev))
                    .delete(key),
                true,
            ))
        })
        .await?
        .map_err(|_| {
            SsmError::new(
                ErrorShape::TooManyUpdates,
                "There are concurrent updates for a resource that supports one update at a time.",
            )
        })
    }

    async fn delete_parameter(&self, req: DeleteParameterRequest) -> Result<Value, SsmError> {
        if !self.delete_one(&req.name).await? {
            return Err(SsmError::not_found(&req.name));
        }
        Ok(serde_json::json!({}))
    }

    async fn delete_parameters(
        &self,
        req: DeleteParametersRequest,
    ) -> Result<DeleteParametersResult, SsmError> {
        let mut deleted = Vec::new();
        let mut invalid = Vec::new();
        for n in &req.names {
            if self.delete_one(n).await? {
                deleted.push(n.clone());
            } else {
                invalid.push(n.clone());
            }
        }
        Ok(DeleteParametersResult {
            deleted_parameters: Some(deleted),
            invalid_parameters: Some(invalid),
        })
    }
}

/// A compiled `AllowedPattern` (SSM's patterns are Java regular expressions; the common subset
/// compiles here).
fn regex_lite(p: &str) -> Result<regex::Regex, SsmError> {
    regex::Regex::new(&format!("^(?:{p})$")).map_err(|_| {
        SsmError::new(
            ErrorShape::InvalidAllowedPatternException,
            format!("The allowed pattern {p} is not a valid regular expression."),
        )
    })
}

/// DescribeParameters' `Filters` (Name, Type, KeyId; equality).
fn old_filter_matches(f: &ParametersFilter, r: &ParameterRecord) -> bool {
    let Some(v) = r.current() else { return false };
    let field = match f.key {
        ParametersFilterKey::Name => r.name.clone(),
        ParametersFilterKey::Type => v.r#type.as_str().to_string(),
        ParametersFilterKey::KeyId => {
            if v.r#type == ParameterType::SecureString {
                DEFAULT_KEY_ID.to_string()
            } else {
                String::new()
            }
        }
    };
    f.values.contains(&field)
}

/// A `ParameterFilters` entry (Name, Type, KeyId, Path, Tier, DataType, tag:KEY).
fn filter_matches(f: &ParameterStringFilter, r: &ParameterRecord) -> bool {
    let Some(v) = r.current() else { return false };
    let values = f.values.clone().unwrap_or_default();
    let option = f.option.as_deref().unwrap_or("Equals");
    let test = |field: &str| -> bool {
        values.iter().any(|x| match option {
            "BeginsWith" => field.starts_with(x.as_str()),
            "Contains" => field.contains(x.as_str()),
            _ => field == x,
        })
    };
    match f.key.as_str() {
        "Name" => {
            // Names may be given with or without the leading slash.
            let name = r.name.trim_start_matches('/');
            values.iter().any(|x| {
                let x = x.trim_start_matches('/');
                match option {
                    "BeginsWith" => name.starts_with(x),
                    "Contains" => name.contains(x),
                    _ => name == x,
                }
            })
        }
        "Type" => test(v.r#type.as_str()),
        "KeyId" => v.r#type == ParameterType::SecureString && test(DEFAULT_KEY_ID),
        "Tier" => test(v.tier.as_str()),
        "DataType" => test("text"),
        "Path" => values
            .iter()
            .any(|p| record::in_path(&r.name, p, option == "Recursive")),
        key => match key.strip_prefix("tag:") {
            Some(tag) => r
                .tags
                .iter()
                .any(|t| t.key == tag && (values.is_empty() || values.contains(&t.value))),
            None => false,
        },
    }
}

#[async_trait::async_trait]
impl JsonApi for Ssm {
    fn title(&self) -> &'static str {
        "Amazon SSM"
    }

    fn signing_name(&self) -> &'static str {
        "ssm"
    }

    fn target_prefix(&self) -> &'static str {
        "AmazonSSM"
    }

    fn has_operation(&self, name: &str) -> bool {
        self.model.has_operation(name)
    }

    fn invalid_request(&self, message: String) -> JsonError {
        SsmError::validation(message).into()
    }

    fn internal_error(&self, message: String) -> JsonError {
        SsmError::internal(message).into()
    }

    async fn dispatch(&self, call: JsonCall<'_>) -> Result<Value, JsonError> {
        let op = call.operation;
        let input = call.input;
        macro_rules! parse {
            () => {
                self.model.parse_input(op, input).map_err(SsmError::from)?
            };
        }
        let result: Result<Value, SsmError> = async {
            match op {
                "PutParameter" => to_value(self.put_parameter(parse!(), call.now, &call.caller.principal_arn).await?),
                "GetParameter" => to_value(self.get_parameter(parse!()).await?),
                "GetParameters" => to_value(self.get_parameters(parse!()).await?),
                "GetParametersByPath" => to_value(self.get_parameters_by_path(parse!()).await?),
                "DescribeParameters" => to_value(self.describe_parameters(parse!()).await?),
                "GetParameterHistory" => to_value(self.get_parameter_history(parse!()).await?),
                "DeleteParameter" => self.delete_parameter(parse!()).await,
                "DeleteParameters" => to_value(self.delete_parameters(parse!()).await?),
                other => Err(SsmError::new(
                    ErrorShape::UnsupportedOperationException,
                    format!("{other} is not supported by this Flotilla server: of Systems Manager it serves Parameter Store ({}).", SERVED.join(", ")),
                )),
            }
        }
        .await;
        result.map_err(JsonError::from)
    }
}
