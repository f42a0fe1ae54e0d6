//! The audit log's records (pure): which calls are recorded, what a record says, and its one
//! JSON line. [`crate::audit_log::AuditLog`] writes the lines.
//!
//! Recorded: every call that may change something (any operation not named `Describe*`,
//! `List*`, `Get*`, `BatchGet*`, `Filter*` or `Discover*`: [`flotilla_throttle::Access`]),
//! whatever its outcome, and every call refused as not allowed, whatever its operation:
//! authentication refusals (`UnrecognizedClientException`, `InvalidSignatureException`,
//! `MissingAuthenticationTokenException`, `ExpiredTokenException` and their awsQuery codes),
//! `AccessDeniedException` and throttling (`ThrottlingException`, `Throttling`).
//!
//! A record names the caller (access key id, and principal once the signature is verified;
//! a refused caller's key is the one its `Authorization` header claims), the source address,
//! the service and operation, the resources the input names, and the outcome (`ok` or the
//! error code). Never anything else of the request: the resources are read from an allow-list
//! of identifier members ([`IDENTIFIERS`]: cluster, service, task, secret and parameter
//! names, ARNs...), strings only, so no value, environment, secret string or tag ever reaches
//! the file.

use flotilla_throttle::Access;
use serde_json::{Map, Value};
use std::net::SocketAddr;

/// The input members whose values name a resource, in the order a record lists them: ECS's,
/// then the other services' (Secrets Manager, SSM, Logs, Cloud Map, CloudWatch, Application
/// Auto Scaling, ELBv2). A member not listed here never reaches the audit log.
pub const IDENTIFIERS: &[&str] = &[
    // ECS
    "cluster",
    "clusterName",
    "service",
    "serviceName",
    "taskSet",
    "primaryTaskSet",
    "task",
    "taskDefinition",
    "taskDefinitions",
    "family",
    "containerInstance",
    "containerInstances",
    "capacityProvider",
    "resourceArn",
    "name",
    // Secrets Manager, SSM, Cloud Map, ELBv2
    "SecretId",
    "Name",
    "Names",
    "ResourceId",
    "ResourceARN",
    "ResourceArn",
    "ResourceArns",
    "Id",
    "NamespaceId",
    "ServiceId",
    "InstanceId",
    "ServiceNamespace",
    "ScalableDimension",
    "PolicyName",
    "ScheduledActionName",
    // CloudWatch Logs
    "logGroupName",
    "logGroupIdentifier",
    "logStreamName",
    // CloudWatch
    "AlarmName",
    "AlarmNames",
    "Namespace",
    // ELBv2
    "LoadBalancerArn",
    "LoadBalancerArns",
    "TargetGroupArn",
    "TargetGroupArns",
    "ListenerArn",
    "ListenerArns",
    "RuleArn",
    "RuleArns",
];

/// The longest identifier kept (longer ones are cut, with `...`).
pub const MAX_IDENTIFIER_CHARS: usize = 512;
/// The most items of a list of identifiers kept.
pub const MAX_LIST_ITEMS: usize = 20;

/// How a call ended, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with the operation's output.
    Ok,
    /// Answered with this error code (the wire `__type`, or the awsQuery `Code`).
    Error(String),
}

/// The error codes of a call refused as not allowed: authentication, authorization and
/// throttling, in the JSON protocols' and awsQuery's spellings.
pub const DENIED: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationTokenException",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "ExpiredToken",
    "ThrottlingException",
    "Throttling",
];

impl Outcome {
    /// Whether the call was refused as not allowed ([`DENIED`]).
    pub fn is_denied(&self) -> bool {
        matches!(self, Outcome::Error(code) if DENIED.contains(&code.as_str()))
    }

    fn text(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(code) => code,
        }
    }
}

/// Flotilla's own operations that only read (`FlotillaAdmin.NAME`): the replicas' status,
/// log and metric queries to each other, the agents' name lookups. The others
/// (`ReclaimSpot`, `OpenLogStream`) change something.
pub const ADMIN_READS: &[&str] = &[
    "Status",
    "LogQuery",
    "MetricQuery",
    flotilla_protocol::dns::RESOLVE_NAME,
    "LoadBalancing",
];

/// Whether a call is recorded: it may change something, or it was denied.
pub fn is_recorded(operation: &str, outcome: &Outcome) -> bool {
    let modifies = match operation.strip_prefix(flotilla_sigv4::target::ADMIN_TARGET_PREFIX) {
        Some(admin) => !ADMIN_READS.contains(&admin),
        None => Access::of(operation) == Access::Modify,
    };
    modifies || outcome.is_denied()
}

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// When the call was received, seconds since the epoch.
    pub time: f64,
    /// The `x-amzn-RequestId` it was answered with.
    pub request_id: &'a str,
    /// The region of the `Api` that answered.
    pub region: &'a str,
    /// The access key id: the verified one, or the one a refused request claims.
    pub access_key_id: Option<&'a str>,
    /// The key's principal, once the signature is verified.
    pub principal: Option<&'a str>,
    /// Where the request came from (none for a call the server makes itself, e.g. the web
    /// console's, which the console's own session already names).
    pub source: Option<SocketAddr>,
    /// The service's signing name (`ecs`, `secretsmanager`, ...).
    pub service: &'a str,
    /// The operation (`RunTask`, `FlotillaAdmin.ReclaimSpot`), or `unknown`.
    pub operation: &'a str,
    /// The resources the input names ([`identifiers_json`], [`identifiers_form`]).
    pub resource: Map<String, Value>,
    /// How it ended.
    pub outcome: Outcome,
}

/// The record's line: one JSON object and a newline.
pub fn line(r: &Record<'_>) -> String {
    let mut m = Map::new();
    m.insert("time".into(), Value::String(rfc3339(r.time)));
    m.insert("requestId".into(), Value::String(r.request_id.into()));
    m.insert("region".into(), Value::String(r.region.into()));
    m.insert("service".into(), Value::String(r.service.into()));
    m.insert("operation".into(), Value::String(r.operation.into()));
    m.insert(
        "accessKeyId".into(),
        r.access_key_id
            .map(|k| Value::String(cut(k, 128)))
            .unwrap_or(Value::Null),
    );
    m.insert(
        "principal".into(),
        r.principal
            .map(|p| Value::String(p.into()))
            .unwrap_or(Value::Null),
    );
    m.insert(
        "sourceAddress".into(),
        r.source
            .map(|a| Value::String(a.to_string()))
            .unwrap_or(Value::Null),
    );
    m.insert("resource".into(), Value::Object(r.resource.clone()));
    m.insert("outcome".into(), Value::String(r.outcome.text().into()));
    m.insert("denied".into(), Value::Bool(r.outcome.is_denied()));
    let mut text = Value::Object(m).to_string();
    text.push('\n');
    text
}

/// The identifiers a JSON input names: its top-level [`IDENTIFIERS`] members whose value is a
/// string or a list of strings. Anything else (a body that is not JSON, other members, nested
/// values) gives nothing.
pub fn identifiers_json(body: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(body) else {
        return out;
    };
    for name in IDENTIFIERS {
        match input.get(*name) {
            Some(Value::String(s)) => {
                out.insert((*name).into(), Value::String(cut(s, MAX_IDENTIFIER_CHARS)));
            }
            Some(Value::Array(items)) => {
                let strings: Vec<Value> = items
                    .iter()
                    .filter_map(Value::as_str)
                    .take(MAX_LIST_ITEMS)
                    .map(|s| Value::String(cut(s, MAX_IDENTIFIER_CHARS)))
                    .collect();
                if !strings.is_empty() {
                    out.insert((*name).into(), Value::Array(strings));
                }
            }
            _ => {}
        }
    }
    out
}

/// The identifiers an awsQuery form names: its [`IDENTIFIERS`] parameters (`Name`), and
/// their lists (`Names.member.1`, `Names.member.2`).
pub fn identifiers_form(body: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(form) = flotilla_edge::query::parse_form(body) else {
        return out;
    };
    for name in IDENTIFIERS {
        if let Some(s) = form.get(*name) {
            out.insert((*name).into(), Value::String(cut(s, MAX_IDENTIFIER_CHARS)));
            continue;
        }
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, &String)> = form
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .and_then(|n| n.parse::<u32>().ok())
                    .map(|n| (n, v))
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        let strings: Vec<Value> = items
            .into_iter()
            .take(MAX_LIST_ITEMS)
            .map(|(_, v)| Value::String(cut(v, MAX_IDENTIFIER_CHARS)))
            .collect();
        if !strings.is_empty() {
            out.insert((*name).into(), Value::Array(strings));
        }
    }
    out
}

/// `s` cut to `max` characters (`...` added when cut).
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// `2024-05-01T12:00:00.123Z` for seconds since the epoch (UTC, milliseconds).
pub fn rfc3339(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as i64;
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(operation: &'static str, outcome: Outcome, body: &[u8]) -> Record<'static> {
        Record {
            time: 1_714_564_800.5,
            request_id: "r-1",
            region: "us-east-1",
            access_key_id: Some("AKIDA"),
            principal: Some("arn:aws:iam::000000000000:root"),
            source: Some("127.0.0.1:5000".parse().unwrap()),
            service: "ecs",
            operation,
            resource: identifiers_json(body),
            outcome,
        }
    }

    #[test]
    fn mutating_and_denied_calls_are_recorded_reads_are_not() {
        assert!(is_recorded("RunTask", &Outcome::Ok));
        assert!(is_recorded(
            "CreateSecret",
            &Outcome::Error("InvalidParameterException".into())
        ));
        assert!(!is_recorded("DescribeClusters", &Outcome::Ok));
        assert!(!is_recorded("FlotillaAdmin.ResolveName", &Outcome::Ok));
        assert!(!is_recorded("FlotillaAdmin.LogQuery", &Outcome::Ok));
        assert!(is_recorded("FlotillaAdmin.ReclaimSpot", &Outcome::Ok));
        assert!(!is_recorded(
            "GetSecretValue",
            &Outcome::Error("ResourceNotFoundException".into())
        ));
        for denied in [
            "ThrottlingException",
            "Throttling",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
        ] {
            assert!(
                is_recorded("DescribeClusters", &Outcome::Error(denied.into())),
                "{denied}"
            );
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let r = record(
            "RunTask",
            Outcome::Ok,
            br#"{"cluster":"web","taskDefinition":"api:3","count":2}"#,
        );
        let text = line(&r);
        assert!(text.ends_with('\n'));
        assert_eq!(text.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2024-05-01T12:00:00.500Z",
                "requestId": "r-1",
                "region": "us-east-1",
                "service": "ecs",
                "operation": "RunTask",
                "accessKeyId": "AKIDA",
                "principal": "arn:aws:iam::000000000000:root",
                "sourceAddress": "127.0.0.1:5000",
                "resource": {"cluster": "web", "taskDefinition": "api:3"},
                "outcome": "ok",
                "denied": false,
            })
        );
        let denied = Record {
            principal: None,
            source: None,
            outcome: Outcome::Error("ThrottlingException".into()),
            ..r
        };
        let v: Value = serde_json::from_str(&line(&denied)).unwrap();
        assert_eq!(v["outcome"], "ThrottlingException");
        assert_eq!(v["denied"], true);
        assert_eq!(v["principal"], Value::Null);
        assert_eq!(v["sourceAddress"], Value::Null);
    }

    #[test]
    fn no_value_beyond_the_identifiers_reaches_a_line() {
        let body = serde_json::json!({
            "Name": "db-password",
            "SecretString": "hunter2-secret",
            "Value": "param-secret",
            "Tags": [{"Key": "k", "Value": "tag-secret"}],
            "containerDefinitions": [{"environment": [{"name": "X", "value": "env-secret"}]}],
            "family": "api",
            "overrides": {"containerOverrides": [{"environment": [{"value": "ovr-secret"}]}]},
        });
        let r = record("CreateSecret", Outcome::Ok, body.to_string().as_bytes());
        let text = line(&r);
        for secret in [
            "hunter2",
            "param-secret",
            "tag-secret",
            "env-secret",
            "ovr-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("db-password") && text.contains("\"family\":\"api\""));
    }

    #[test]
    fn forms_name_their_resources_too() {
        let body = b"Action=DeleteLoadBalancer&Version=2015-12-01&LoadBalancerArn=arn%3Aaws%3Aelb&Names.member.2=b&Names.member.1=a&Tags.member.1.Value=secret";
        let ids = identifiers_form(body);
        assert_eq!(
            Value::Object(ids),
            serde_json::json!({"Names": ["a", "b"], "LoadBalancerArn": "arn:aws:elb"})
        );
    }

    #[test]
    fn long_and_odd_inputs_are_bounded() {
        let long = "x".repeat(10_000);
        let body = serde_json::json!({"cluster": long, "tasks": ["a"], "taskDefinitions": (0..100).map(|i| i.to_string()).collect::<Vec<_>>()});
        let ids = identifiers_json(body.to_string().as_bytes());
        assert_eq!(
            ids["cluster"].as_str().unwrap().len(),
            MAX_IDENTIFIER_CHARS + 3
        );
        assert_eq!(
            ids["taskDefinitions"].as_array().unwrap().len(),
            MAX_LIST_ITEMS
        );
        assert!(identifiers_json(b"not json").is_empty());
        assert!(identifiers_json(b"[1,2]").is_empty());
        assert!(identifiers_json(br#"{"cluster": {"x": 1}}"#).is_empty());
        // A form that does not decode names nothing (and does not fail).
        let _ = identifiers_form(b"%zz=%&Name");
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199.999), "2024-02-29T23:59:59.999Z");
    }

    proptest! {
        /// Whatever the body, a line is one line of JSON, and a string member not in the
        /// allow-list never appears in it.
        #[test]
        fn any_body_gives_one_json_line_without_other_members(
            secret in "[a-z]{12,20}",
            name in "[a-zA-Z]{1,12}",
            ident in "[ -~]{0,40}",
        ) {
            prop_assume!(!IDENTIFIERS.contains(&name.as_str()));
            prop_assume!(!ident.contains(&secret));
            let body = serde_json::json!({ name.clone(): secret.clone(), "cluster": ident });
            let r = record("UpdateService", Outcome::Ok, body.to_string().as_bytes());
            let text = line(&r);
            prop_assert_eq!(text.matches('\n').count(), 1);
            prop_assert!(serde_json::from_str::<Value>(&text).is_ok());
            prop_assert!(!text.contains(&secret));
        }
    }
}
