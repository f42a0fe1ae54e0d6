//! Turns flags, the TOML config file and the environment into a server configuration.
//!
//! Credential sources, in order: `--config FILE` `[[credentials]]` (server), the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and for `dev` only a key
//! pair generated once and kept in `DATA_DIR/credentials` (AWS shared-credentials format).
//!
//! A `[[credentials]]` entry may carry an identity-based policy (`policy`, JSON text, or
//! `policy_file`) and a `user` name: every request signed with that key is then authorized
//! against the policy (`flotilla_api::authorize`); a key without one has full access. A
//! `[[roles]]` entry (`arn`, or `name` in the configured account, with `policy` or
//! `policy_file`) does the same for the task role credentials the server issues for tasks with
//! that `taskRoleArn`; a role without an entry keeps full access.
//!
//! The secrets key (what seals Secrets Manager and SecureString values at rest,
//! [`flotilla_seal::Key`]): `--secrets-key-file`, else `[secrets] key_file` in `--config`, else,
//! on the embedded store only, `DATA_DIR/secrets.key`, generated once with mode 0600. On etcd
//! every replica must have the same key, so a server on etcd without one refuses to start.
//!
//! Throttling (`[throttle]`, `--throttle`, `--no-throttle`, `--throttle-limit`): on by default
//! for `server`, off for `dev`; limits by class or operation, the flags' over the file's. The
//! audit log (`[audit] log`, `--audit-log`): `DATA_DIR/audit.log` unless `-`.

use crate::CommonArgs;
use anyhow::{bail, Context};
use flotilla_api::ApiConfig;
use flotilla_model::arn::ArnContext;
use flotilla_sigv4::Credential;
use rand::Rng;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `serve::run` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Store directory.
    pub data_dir: PathBuf,
    /// The store (default: SQLite in `data_dir`).
    pub store: flotilla_store::StoreUrl,
    /// API configuration.
    pub api: ApiConfig,
    /// Lines to show the user once the server is up (how to point clients at it).
    pub banner: Vec<String>,
    /// Agent heartbeat interval and stopped-task retention.
    pub timings: flotilla_api::AgentTimings,
    /// The managed task network and the Spot warning.
    pub fargate: flotilla_api::FargateConfig,
    /// `--deployment-minute-seconds`.
    pub deployment_minute: f64,
    /// The key that seals secret values at rest.
    pub secrets_key: flotilla_seal::Key,
    /// How long the task role credentials the server issues are valid, seconds.
    pub task_credentials_seconds: u64,
    /// The leader election's lease (etcd only).
    pub election: flotilla_store::etcd::ElectionOptions,
    /// Where this replica serves load balancer listeners (none: it serves none).
    pub lb_address: Option<std::net::IpAddr>,
    /// The regions served beside the primary one (`api.arns.region`).
    pub regions: RegionsServed,
    /// The resolution of CloudWatch metrics, seconds (`--metrics-period-seconds`).
    pub metrics_period_seconds: u32,
    /// The request limits (none: nothing is throttled).
    pub throttle: Option<flotilla_throttle::Policy>,
    /// The audit log's file (none: no audit log).
    pub audit_log: Option<PathBuf>,
    /// TLS or plain HTTP, and whom calls to other replicas trust.
    pub tls: crate::tls::ServeTls,
    /// The policies of the configured keys that have one (`policy`, `policy_file`).
    pub policies: flotilla_api::authorize::Policies,
}

/// The name of the audit log in the data directory.
pub const AUDIT_LOG_FILE: &str = "audit.log";

/// `[throttle]` in --config.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileThrottle {
    /// Whether requests are throttled (`flotilla server`: yes unless `false`).
    enabled: Option<bool>,
    /// The most buckets kept in memory (callers x classes).
    max_buckets: Option<usize>,
    /// Limits by class or operation name: `"ecs:cluster-read" = { burst = 50, rate = 20 }`.
    #[serde(default)]
    limits: std::collections::BTreeMap<String, FileLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimit {
    burst: u32,
    rate: f64,
}

/// `[audit]` in --config.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    /// The audit log's path, or `-` for none (see `--audit-log`).
    log: Option<String>,
}

/// The throttling policy: off with `--no-throttle` (or `enabled = false`), on with
/// `--throttle`, `--throttle-limit` or `enabled = true`, else `default_on`; the file's limits
/// then the flags'.
fn throttle(
    common: &CommonArgs,
    file: Option<&FileThrottle>,
    default_on: bool,
) -> anyhow::Result<Option<flotilla_throttle::Policy>> {
    let on = if common.no_throttle {
        false
    } else if common.throttle || !common.throttle_limits.is_empty() {
        true
    } else {
        file.and_then(|f| f.enabled).unwrap_or(default_on)
    };
    if !on {
        return Ok(None);
    }
    let mut policy = flotilla_throttle::Policy::default();
    if let Some(f) = file {
        if let Some(max) = f.max_buckets {
            if max == 0 {
                bail!("[throttle] max_buckets must be at least 1");
            }
            policy.max_buckets = max;
        }
        for (name, l) in &f.limits {
            let limit = flotilla_throttle::Limit::new(l.burst, l.rate)
                .map_err(|e| anyhow::anyhow!("[throttle.limits] '{name}': {e}"))?;
            policy
                .set(name, limit)
                .map_err(|e| anyhow::anyhow!("[throttle.limits] {e}"))?;
        }
    }
    for text in &common.throttle_limits {
        let (name, limit) = flotilla_throttle::parse_setting(text)
            .map_err(|e| anyhow::anyhow!("--throttle-limit {e}"))?;
        policy
            .set(&name, limit)
            .map_err(|e| anyhow::anyhow!("--throttle-limit {e}"))?;
    }
    Ok(Some(policy))
}

/// The audit log's file: `--audit-log`, else `[audit] log`, else `DATA_DIR/audit.log`; `-`
/// for none.
fn audit_log(common: &CommonArgs, file: Option<&FileAudit>, data_dir: &Path) -> Option<PathBuf> {
    match common
        .audit_log
        .as_deref()
        .or(file.and_then(|f| f.log.as_deref()))
    {
        Some("-") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => Some(data_dir.join(AUDIT_LOG_FILE)),
    }
}

fn metrics_period_seconds(common: &CommonArgs) -> anyhow::Result<u32> {
    if !(1..=3600).contains(&common.metrics_period_seconds) {
        bail!(
            "--metrics-period-seconds must be between 1 and 3600, got {}",
            common.metrics_period_seconds
        );
    }
    Ok(common.metrics_period_seconds)
}

/// The regions an installation serves beside its primary region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionsServed {
    /// These (`flotilla server --regions`, `regions` in `--config`; none by default).
    Listed(Vec<String>),
    /// Any region, opened on its first request (`flotilla dev`).
    Any,
}

impl std::fmt::Display for RegionsServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegionsServed::Listed(names) if names.is_empty() => f.write_str("primary only"),
            RegionsServed::Listed(names) => f.write_str(&names.join(",")),
            RegionsServed::Any => f.write_str("any"),
        }
    }
}

/// The other regions of `flotilla server`: `given` (the flag), else the config file's, each a
/// region name, the primary left out and each once.
fn regions_served(
    given: &[String],
    file: Option<&[String]>,
    primary: &str,
) -> anyhow::Result<RegionsServed> {
    let names = if given.is_empty() {
        file.unwrap_or_default()
    } else {
        given
    };
    let mut served: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()) {
        if !flotilla_api::regions::is_region_name(name) {
            bail!("--regions: '{name}' is not a region name (expected names such as eu-west-1, separated by commas)");
        }
        if name != primary && !served.iter().any(|s| s == name) {
            served.push(name.to_string());
        }
    }
    Ok(RegionsServed::Listed(served))
}

fn lb_address(common: &CommonArgs) -> Option<std::net::IpAddr> {
    (!common.no_lb).then(|| common.lb_address.unwrap_or(common.listen.ip()))
}

fn task_credentials_seconds(common: &CommonArgs) -> anyhow::Result<u64> {
    let min = flotilla_api::task_credentials::MIN_LIFETIME_SECONDS;
    if !(min..=12 * 3600).contains(&common.task_credentials_seconds) {
        bail!(
            "--task-credentials-seconds must be between {min} and 43200, got {}",
            common.task_credentials_seconds
        );
    }
    Ok(common.task_credentials_seconds)
}

fn election(common: &CommonArgs) -> anyhow::Result<flotilla_store::etcd::ElectionOptions> {
    if !(1..=60).contains(&common.leader_lease_seconds) {
        bail!(
            "--leader-lease-seconds must be between 1 and 60, got {}",
            common.leader_lease_seconds
        );
    }
    Ok(flotilla_store::etcd::ElectionOptions {
        ttl: std::time::Duration::from_secs(common.leader_lease_seconds),
    })
}

/// The name of the generated key file in the data directory.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// The secrets key: from `given` (the flag or the config file), else generated once into the
/// data directory on an embedded store; an etcd store needs one given.
fn secrets_key(
    given: Option<&Path>,
    store: &flotilla_store::StoreUrl,
    data_dir: &Path,
) -> anyhow::Result<flotilla_seal::Key> {
    let read = |path: &Path| -> anyhow::Result<flotilla_seal::Key> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the secrets key {}", path.display()))?,
        );
        flotilla_seal::Key::parse(&text)
            .with_context(|| format!("reading the secrets key {}", path.display()))
    };
    if let Some(path) = given {
        return read(path);
    }
    if matches!(store, flotilla_store::StoreUrl::Etcd(_)) {
        bail!(
            "on an etcd store every replica must seal secrets with the same key: generate one \
             (head -c 32 /dev/urandom | base64 > secrets.key; chmod 600 secrets.key) and give it \
             to every replica with --secrets-key-file (or [secrets] key_file in --config)"
        );
    }
    let path = data_dir.join(SECRETS_KEY_FILE);
    if path.exists() {
        return read(&path);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = flotilla_seal::Key::from_bytes(rand::random());
    write_private(&path, &key.to_file_text())?;
    tracing::info!(path = %path.display(), key_id = %key.id(), "generated the secrets key");
    Ok(key)
}

fn fargate(common: &CommonArgs) -> anyhow::Result<flotilla_api::FargateConfig> {
    let task_network = common
        .task_network
        .parse()
        .map_err(|e| anyhow::anyhow!("--task-network {}: {e}", common.task_network))?;
    Ok(flotilla_api::FargateConfig {
        task_network,
        spot_warning: std::time::Duration::from_secs(common.spot_warning_seconds),
    })
}

fn deployment_minute(common: &CommonArgs) -> anyhow::Result<f64> {
    let m = common.deployment_minute_seconds;
    if !(m > 0.0 && m <= 60.0) {
        bail!("--deployment-minute-seconds must be above 0 and at most 60, got {m}");
    }
    Ok(m)
}

fn timings(common: &CommonArgs) -> anyhow::Result<flotilla_api::AgentTimings> {
    if !(common.heartbeat_seconds > 0.0 && common.heartbeat_seconds <= 3600.0) {
        bail!(
            "--heartbeat-seconds must be between 0 and 3600, got {}",
            common.heartbeat_seconds
        );
    }
    Ok(flotilla_api::AgentTimings {
        heartbeat_interval: std::time::Duration::from_secs_f64(common.heartbeat_seconds),
        stopped_task_retention: std::time::Duration::from_secs(
            common.stopped_task_retention_seconds,
        ),
    })
}

/// `--store`, else the embedded SQLite store in the data directory.
fn store_url(common: &CommonArgs) -> flotilla_store::StoreUrl {
    common.store.clone().unwrap_or_else(|| {
        flotilla_store::StoreUrl::Sqlite(common.data_dir.clone().unwrap_or_else(default_data_dir))
    })
}

/// The account id used when none is configured.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    region: Option<String>,
    /// The other regions served (see `--regions`).
    regions: Option<Vec<String>>,
    account: Option<String>,
    #[serde(default)]
    credentials: Vec<FileCredential>,
    #[serde(default)]
    roles: Vec<FileRole>,
    secrets: Option<FileSecrets>,
    throttle: Option<FileThrottle>,
    audit: Option<FileAudit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecrets {
    /// The secrets key file (see `--secrets-key-file`).
    key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCredential {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    /// The principal ARN (default: `arn:aws:iam::ACCOUNT:user/USER` when the key has a `user`
    /// or a policy, USER being the key id when no `user` is given; else the account's root).
    principal: Option<String>,
    /// The IAM user name the key belongs to (its principal `arn:aws:iam::ACCOUNT:user/NAME`).
    user: Option<String>,
    /// An identity-based policy document (JSON text) limiting what the key may do.
    policy: Option<String>,
    /// The same, read from a file.
    policy_file: Option<PathBuf>,
}

/// A policy given inline (`policy`) or in a file (`policy_file`, relative to the config file's
/// directory), not both, parsed; `what` names the entry in errors.
fn read_policy(
    what: &str,
    inline: Option<&String>,
    file: Option<&PathBuf>,
    base: Option<&Path>,
) -> anyhow::Result<Option<flotilla_iam::Policy>> {
    let text = match (inline, file) {
        (Some(_), Some(_)) => bail!("{what}: give policy or policy_file, not both"),
        (Some(text), None) => text.clone(),
        (None, Some(path)) => {
            let path = match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.clone(),
            };
            std::fs::read_to_string(&path)
                .with_context(|| format!("{what}: reading policy_file {}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    flotilla_iam::Policy::parse(&text)
        .map(Some)
        .with_context(|| format!("{what}: the policy is refused"))
}

/// `[[roles]]` in --config: the policy a task role's credentials are held to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRole {
    /// The role's ARN, `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`.
    arn: Option<String>,
    /// Or its name, in the configured account.
    name: Option<String>,
    /// Its identity-based policy (JSON text).
    policy: Option<String>,
    /// The same, read from a file.
    policy_file: Option<PathBuf>,
}

impl FileRole {
    /// The role's account and name (the last segment of its path), and its policy.
    fn resolve(
        &self,
        account: &str,
        base: Option<&Path>,
    ) -> anyhow::Result<(String, String, flotilla_iam::Policy)> {
        let (role_account, name) = match (&self.arn, &self.name) {
            (Some(arn), None) => role_of_arn(arn).with_context(|| {
                format!("roles: {arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
            })?,
            (None, Some(name)) if valid_role_name(name) => (account.to_string(), name.clone()),
            (None, Some(name)) => {
                bail!("roles: {name:?} is not a role name (1 to 64 of A-Z a-z 0-9 +=,.@_-)")
            }
            _ => bail!("roles: give each role an arn or a name, not both"),
        };
        let what = format!("roles {name}");
        let policy = read_policy(&what, self.policy.as_ref(), self.policy_file.as_ref(), base)?
            .with_context(|| format!("{what}: give it a policy or a policy_file"))?;
        Ok((role_account, name, policy))
    }
}

/// The account and name of `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`.
fn role_of_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && valid_role_name(name))
        .then(|| (account.to_string(), name.to_string()))
}

/// IAM's role names: 1 to 64 of letters, digits and `+=,.@_-`.
fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl FileCredential {
    /// The key's policy, if it has one: `policy` or `policy_file` (not both), parsed.
    fn policy(&self, base: Option<&Path>) -> anyhow::Result<Option<flotilla_iam::Policy>> {
        read_policy(
            &format!("credentials {}", self.access_key_id),
            self.policy.as_ref(),
            self.policy_file.as_ref(),
            base,
        )
    }

    /// The key's principal ARN.
    fn principal_arn(&self, account: &str, has_policy: bool) -> String {
        if let Some(p) = &self.principal {
            return p.clone();
        }
        match (&self.user, has_policy) {
            (Some(user), _) => format!("arn:aws:iam::{account}:user/{user}"),
            (None, true) => format!("arn:aws:iam::{account}:user/{}", self.access_key_id),
            (None, false) => root(account),
        }
    }
}

/// Where the store lives when `--data-dir` is not given.
pub fn default_data_dir() -> PathBuf {
    if let Ok(x) = std::env::var("XDG_DATA_HOME") {
        return PathBuf::from(x).join("flotilla");
    }
    match std::env::var("HOME") {
        Ok(h) => PathBuf::from(h).join(".local/share/flotilla"),
        Err(_) => PathBuf::from(".flotilla"),
    }
}

fn region(common: &CommonArgs, file: Option<&str>) -> String {
    common
        .region
        .clone()
        .or_else(|| file.map(str::to_string))
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_string())
}

fn check_account(account: &str) -> anyhow::Result<()> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        bail!("the account id must be 12 digits, got '{account}'");
    }
    Ok(())
}

fn root(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

fn env_credential(account: &str) -> Option<Credential> {
    let akid = std::env::var("AWS_ACCESS_KEY_ID")
        .ok()
        .filter(|s| !s.is_empty())?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
        .ok()
        .filter(|s| !s.is_empty())?;
    Some(Credential {
        access_key_id: akid,
        secret_access_key: secret,
        session_token: std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
        principal_arn: root(account),
    })
}

/// Configuration of `flotilla server`.
pub fn server_config(
    common: &CommonArgs,
    file: Option<&Path>,
    regions: &[String],
) -> anyhow::Result<ServerConfig> {
    let fc: FileConfig = match file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let account = common
        .account
        .clone()
        .or(fc.account.clone())
        .unwrap_or_else(|| DEFAULT_ACCOUNT.into());
    check_account(&account)?;
    let tls = crate::tls::serve_tls(&common.tls, common.listen)?;
    let mut credentials: Vec<Credential> = Vec::new();
    let mut policies = flotilla_api::authorize::Policies::default();
    for c in &fc.credentials {
        let policy = c.policy(file.and_then(Path::parent))?;
        credentials.push(Credential {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: c.session_token.clone(),
            principal_arn: c.principal_arn(&account, policy.is_some()),
        });
        if let Some(policy) = policy {
            policies = policies.with(&c.access_key_id, policy);
        }
    }
    for r in &fc.roles {
        let (role_account, name, policy) = r.resolve(&account, file.and_then(Path::parent))?;
        policies = policies.with_role(&role_account, &name, policy);
    }
    if credentials.is_empty() {
        credentials.extend(env_credential(&account));
    }
    if credentials.is_empty() {
        bail!(
            "no credentials configured: add [[credentials]] entries to --config, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or use `flotilla dev`, which generates them)"
        );
    }
    let region = region(common, fc.region.as_deref());
    let regions = regions_served(regions, fc.regions.as_deref(), &region)?;
    let data_dir = common.data_dir.clone().unwrap_or_else(default_data_dir);
    let store = store_url(common);
    let key_file = common
        .secrets_key_file
        .clone()
        .or(fc.secrets.map(|s| s.key_file));
    let secrets_key = secrets_key(key_file.as_deref(), &store, &data_dir)?;
    Ok(ServerConfig {
        listen: common.listen,
        throttle: throttle(common, fc.throttle.as_ref(), true)?,
        audit_log: audit_log(common, fc.audit.as_ref(), &data_dir),
        data_dir,
        store,
        secrets_key,
        task_credentials_seconds: task_credentials_seconds(common)?,
        metrics_period_seconds: metrics_period_seconds(common)?,
        api: ApiConfig {
            arns: ArnContext { region, account },
            credentials,
        },
        banner: Vec::new(),
        timings: timings(common)?,
        election: election(common)?,
        fargate: fargate(common)?,
        deployment_minute: deployment_minute(common)?,
        lb_address: lb_address(common),
        regions,
        tls,
        policies,
    })
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// Configuration of `flotilla dev`; with `generate_tls` (`--tls`), served over TLS with the
/// local CA of `DATA_DIR/tls` (made once), its certificate also naming `tls_names`.
pub fn dev_config(
    common: &CommonArgs,
    generate_tls: bool,
    tls_names: &[String],
) -> anyhow::Result<ServerConfig> {
    let account = common
        .account
        .clone()
        .unwrap_or_else(|| DEFAULT_ACCOUNT.into());
    check_account(&account)?;
    let data_dir = common.data_dir.clone().unwrap_or_else(default_data_dir);
    // The loopback rule first: nothing is written for a server that will not start.
    let plain_or_given = crate::tls::serve_tls(&common.tls, common.listen);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let tls = if generate_tls {
        crate::tls::dev_tls(&data_dir, common.listen, tls_names)?
    } else {
        plain_or_given?
    };
    let region = region(common, None);
    let endpoint = format!("{}://{}", tls.scheme(), common.listen);
    let mut banner = vec![
        format!(
            "Flotilla is serving the ECS API at {endpoint} (data in {}).",
            data_dir.display()
        ),
        "Point the aws CLI, boto3 or any AWS SDK at it:".to_string(),
        format!("  export AWS_ENDPOINT_URL_ECS={endpoint} AWS_DEFAULT_REGION={region}"),
    ];
    let cred = match env_credential(&account) {
        Some(c) => {
            banner.push(
                "  (using AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from this environment)"
                    .into(),
            );
            c
        }
        None => {
            let path = data_dir.join("credentials");
            let (akid, secret) = match crate::client::read_profile(&path) {
                Some(pair) => pair,
                None => {
                    let akid = format!(
                        "AKIAFLO{}",
                        random_string(13, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                    );
                    let secret = random_string(
                        40,
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    );
                    let text = format!(
                        "[default]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"
                    );
                    write_private(&path, &text)?;
                    (akid, secret)
                }
            };
            banner.push(format!(
                "  export AWS_ACCESS_KEY_ID={akid} AWS_SECRET_ACCESS_KEY={secret}"
            ));
            banner.push(format!("  (also saved as a shared-credentials file: export AWS_SHARED_CREDENTIALS_FILE={})", path.display()));
            Credential {
                access_key_id: akid,
                secret_access_key: secret,
                session_token: None,
                principal_arn: root(&account),
            }
        }
    };
    banner.push(format!(
        "The web console is at {endpoint}/console/ (sign in with the same key pair)."
    ));
    banner.extend(tls.banner.iter().cloned());
    let store = store_url(common);
    let secrets_key = secrets_key(common.secrets_key_file.as_deref(), &store, &data_dir)?;
    Ok(ServerConfig {
        listen: common.listen,
        store,
        secrets_key,
        task_credentials_seconds: task_credentials_seconds(common)?,
        metrics_period_seconds: metrics_period_seconds(common)?,
        throttle: throttle(common, None, false)?,
        audit_log: audit_log(common, None, &data_dir),
        data_dir,
        api: ApiConfig {
            arns: ArnContext { region, account },
            credentials: vec![cred],
        },
        banner,
        timings: timings(common)?,
        election: election(common)?,
        fargate: fargate(common)?,
        deployment_minute: deployment_minute(common)?,
        lb_address: lb_address(common),
        regions: RegionsServed::Any,
        tls,
        // `dev`'s one key has full access.
        policies: flotilla_api::authorize::Policies::default(),
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn common(flags: &[&str]) -> CommonArgs {
        use clap::Parser;
        Args::try_parse_from(std::iter::once("flotilla").chain(flags.iter().copied()))
            .unwrap()
            .common
    }

    #[test]
    fn throttling_is_on_for_servers_off_for_dev_and_flags_win() {
        let file: FileThrottle = toml::from_str(
            r#"
            max_buckets = 10
            [limits]
            "ecs:cluster-read" = { burst = 5, rate = 2 }
            "ecs:RunTask" = { burst = 3, rate = 0.5 }
            "#,
        )
        .unwrap();
        let p = throttle(&common(&[]), Some(&file), true).unwrap().unwrap();
        assert_eq!(p.max_buckets, 10);
        assert_eq!(p.bucket("ecs", "DescribeClusters").1.burst, 5);
        assert_eq!(p.bucket("ecs", "RunTask").0, "ecs:RunTask");
        assert!(throttle(&common(&[]), None, false).unwrap().is_none());
        assert!(throttle(&common(&["--throttle"]), None, false)
            .unwrap()
            .is_some());
        assert!(throttle(&common(&["--no-throttle"]), Some(&file), true)
            .unwrap()
            .is_none());
        let off: FileThrottle = toml::from_str("enabled = false").unwrap();
        assert!(throttle(&common(&[]), Some(&off), true).unwrap().is_none());
        // A flag's limit wins over the file's, and turns throttling on.
        let p = throttle(
            &common(&["--throttle-limit", "ecs:cluster-read=7/1"]),
            Some(&file),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.bucket("ecs", "ListClusters").1.burst, 7);
        // Typos and impossible limits are refused at start.
        let bad: FileThrottle =
            toml::from_str(r#"limits = { "ecs:cluster-reads" = { burst = 5, rate = 2 } }"#)
                .unwrap();
        assert!(throttle(&common(&[]), Some(&bad), true).is_err());
        let bad: FileThrottle =
            toml::from_str(r#"limits = { "ecs:cluster-read" = { burst = 0, rate = 2 } }"#).unwrap();
        assert!(throttle(&common(&[]), Some(&bad), true).is_err());
        assert!(throttle(&common(&["--throttle-limit", "ecs:RunTask"]), None, true).is_err());
        assert!(toml::from_str::<FileThrottle>("limit = {}").is_err());
    }

    #[test]
    fn the_audit_log_is_in_the_data_directory_unless_told() {
        let dir = Path::new("/data");
        assert_eq!(
            audit_log(&common(&[]), None, dir),
            Some(dir.join(AUDIT_LOG_FILE))
        );
        assert_eq!(audit_log(&common(&["--audit-log", "-"]), None, dir), None);
        let file = FileAudit {
            log: Some("/var/log/flotilla-audit.log".into()),
        };
        assert_eq!(
            audit_log(&common(&[]), Some(&file), dir),
            Some(PathBuf::from("/var/log/flotilla-audit.log"))
        );
        assert_eq!(
            audit_log(&common(&["--audit-log", "/x.log"]), Some(&file), dir),
            Some(PathBuf::from("/x.log"))
        );
    }

    #[test]
    fn a_key_policy_inline_or_from_a_file_and_its_principal() {
        let key =
            |user: Option<&str>, policy: Option<&str>, file: Option<PathBuf>| FileCredential {
                access_key_id: "AKIDX".into(),
                secret_access_key: "s".into(),
                session_token: None,
                principal: None,
                user: user.map(str::to_string),
                policy: policy.map(str::to_string),
                policy_file: file,
            };
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:List*","Resource":"*"}}"#;
        let plain = key(None, None, None);
        assert!(plain.policy(None).unwrap().is_none());
        assert_eq!(
            plain.principal_arn("123456789012", false),
            "arn:aws:iam::123456789012:root"
        );
        let inline = key(None, Some(doc), None);
        assert!(inline.policy(None).unwrap().is_some());
        assert_eq!(
            inline.principal_arn("123456789012", true),
            "arn:aws:iam::123456789012:user/AKIDX"
        );
        assert_eq!(
            key(Some("ops"), None, None).principal_arn("123456789012", false),
            "arn:aws:iam::123456789012:user/ops"
        );
        let dir = std::env::temp_dir().join(format!("flotilla-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.json"), doc).unwrap();
        let from_file = key(None, None, Some(PathBuf::from("p.json")));
        assert!(from_file.policy(Some(&dir)).unwrap().is_some());
        let both = key(None, Some(doc), Some(PathBuf::from("p.json")));
        assert!(both
            .policy(Some(&dir))
            .unwrap_err()
            .to_string()
            .contains("not both"));
        let bad = key(None, Some(r#"{"Statement":{"Effect":"Allow"}}"#), None);
        let err = format!("{:#}", bad.policy(None).unwrap_err());
        assert!(
            err.contains("credentials AKIDX: the policy is refused")
                && err.contains("needs Action"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_role_by_arn_or_name_with_its_policy() {
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
        let role: FileConfig = toml::from_str(&format!(
            "[[roles]]\narn = \"arn:aws:iam::111122223333:role/svc/app-task\"\npolicy = '{doc}'\n\n[[roles]]\nname = \"web\"\npolicy = '{doc}'\n"
        ))
        .unwrap();
        let resolved: Vec<(String, String)> = role
            .roles
            .iter()
            .map(|r| {
                let (a, n, _) = r.resolve("123456789012", None).unwrap();
                (a, n)
            })
            .collect();
        assert_eq!(
            resolved,
            [
                ("111122223333".to_string(), "app-task".to_string()),
                ("123456789012".to_string(), "web".to_string())
            ]
        );
        let refused = |toml_text: &str| {
            let c: FileConfig = toml::from_str(toml_text).unwrap();
            format!(
                "{:#}",
                c.roles[0].resolve("123456789012", None).unwrap_err()
            )
        };
        let both = format!(
            "[[roles]]\narn = \"arn:aws:iam::111122223333:role/a\"\nname = \"a\"\npolicy = '{doc}'"
        );
        assert!(refused(&both).contains("an arn or a name, not both"));
        assert!(refused("[[roles]]\nname = \"a\"").contains("give it a policy"));
        assert!(refused("[[roles]]\nname = \"a b\"\npolicy = '{}'").contains("not a role name"));
        let user =
            format!("[[roles]]\narn = \"arn:aws:iam::111122223333:user/a\"\npolicy = '{doc}'");
        assert!(refused(&user).contains("is not a role ARN"));
        assert!(toml::from_str::<FileConfig>("[[roles]]\nrole = \"a\"").is_err());
    }

    #[test]
    fn the_other_regions_are_region_names_each_once_without_the_primary() {
        let given = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            regions_served(
                &given(&["eu-west-1", "us-east-1", "eu-west-1"]),
                None,
                "us-east-1"
            )
            .unwrap(),
            RegionsServed::Listed(given(&["eu-west-1"]))
        );
        let file = given(&["ap-south-1"]);
        assert_eq!(
            regions_served(&[], Some(&file), "us-east-1").unwrap(),
            RegionsServed::Listed(file.clone())
        );
        // The flag wins over the file.
        assert_eq!(
            regions_served(&given(&["eu-west-3"]), Some(&file), "us-east-1").unwrap(),
            RegionsServed::Listed(given(&["eu-west-3"]))
        );
        let err = regions_served(&given(&["../etc"]), None, "us-east-1").unwrap_err();
        assert!(err.to_string().contains("not a region name"), "{err}");
        assert_eq!(
            regions_served(&[], None, "us-east-1").unwrap().to_string(),
            "primary only"
        );
    }
}
