//! The awsQuery protocol (Elastic Load Balancing v2, STS, ...) for the services behind the
//! edge, driven by the service's model and generic over it.
//!
//! A request is `POST /` with `Content-Type: application/x-www-form-urlencoded` and a form body
//! `Action=<Operation>&Version=<apiVersion>&<parameters>`, no `X-Amz-Target`; the SigV4 scope
//! names the service. Parameters are the operation's input shape flattened into dotted names
//! ([`decode`]):
//! - a structure member is `Prefix.Member` (its `locationName` when the model gives one);
//! - a list is `Prefix.member.N` (N from 1; `Prefix.N` when `flattened`; the member's
//!   `locationName` instead of `member`); an empty list is `Prefix=` with no items;
//! - a map is `Prefix.entry.N.key` / `Prefix.entry.N.value` (`Prefix.N.key` when flattened);
//! - integers, longs and doubles are decimal, booleans `true`/`false`, timestamps ISO 8601
//!   (read as seconds since the epoch, the JSON form the generated types take), blobs base64.
//!
//! The answer is XML ([`encode`]): `<OpResponse xmlns=NS><OpResult>...</OpResult>
//! <ResponseMetadata><RequestId>..</RequestId></ResponseMetadata></OpResponse>`, the output
//! shape walked the same way (lists as `<member>` elements, maps as `<entry><key/><value/>`,
//! timestamps ISO 8601 with milliseconds); an error is [`QueryError`]'s document.
//!
//! A service implements [`QueryApi`] (its names, its model, and `dispatch`: the input as JSON
//! in, the output as JSON or a [`QueryError`] out) and is served as [`AwsQuery`]`(api)`, a
//! [`Service`] with [`Marker::Action`]: the edge routes a request without a target to the
//! service its credential scope names, and reads the operation from the form's `Action`
//! ([`action`]).

pub mod error;
pub mod xml;

pub use error::QueryError;

use crate::service::{Call, EdgeError, Marker, Outcome, Reply, Service};
use flotilla_sigv4::{AuthCode, Caller};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use xml::escape;

/// The content type of an awsQuery answer.
pub const XML: &str = "text/xml";

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
pub fn form_decode(s: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        QueryError::validation(format!(
                            "The request body has a malformed percent-encoding near '{}'.",
                            String::from_utf8_lossy(&bytes[i..bytes.len().min(i + 3)])
                        ))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| QueryError::validation("The request body is not UTF-8 once decoded."))
}

/// Encodes text for a form body (the unreserved characters as they are, the rest `%XX`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form body as its parameters (a name given twice keeps its last value).
pub fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, QueryError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| QueryError::validation("The request body is not UTF-8 form data."))?;
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(form_decode(k)?, form_decode(v)?);
    }
    Ok(out)
}

/// The `Action` a form body names, if it is a form with one (the edge labels and routes with
/// it before the service reads the rest).
pub fn action(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "Action")
        .and_then(|(_, v)| form_decode(v).ok())
        .filter(|v| !v.is_empty())
}

/// A service model, for the protocol: its operations, shapes and namespace.
pub struct QueryModel {
    model: Value,
}

impl QueryModel {
    /// Parses a model (`model.json` or `service-2.json`).
    pub fn parse(json: &str) -> Result<QueryModel, serde_json::Error> {
        Ok(QueryModel {
            model: serde_json::from_str(json)?,
        })
    }

    /// A model with no operations (every request is an unknown action).
    pub fn empty() -> QueryModel {
        QueryModel {
            model: serde_json::json!({"metadata": {}, "operations": {}, "shapes": {}}),
        }
    }

    /// Whether the model has this operation.
    pub fn has_operation(&self, operation: &str) -> bool {
        self.model["operations"].get(operation).is_some()
    }

    /// The model's `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.model["metadata"]["apiVersion"].as_str().unwrap_or("")
    }

    /// The model's `xmlNamespace`.
    pub fn xmlns(&self) -> &str {
        self.model["metadata"]["xmlNamespace"]
            .as_str()
            .unwrap_or("")
    }

    fn shape(&self, name: &str) -> &Value {
        &self.model["shapes"][name]
    }

    /// The operation's input, read from the form's parameters by walking its input shape
    /// (`Action` and `Version` are the protocol's; parameters the shape does not have are
    /// ignored, as AWS does).
    pub fn decode(
        &self,
        operation: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Value, QueryError> {
        match self.model["operations"][operation]["input"]["shape"].as_str() {
            Some(shape) => decode(self, shape, "", params),
            None => Ok(Value::Object(Map::new())),
        }
    }

    /// The whole answer document for `operation`'s output `output`.
    pub fn encode(&self, operation: &str, output: &Value, request_id: &str) -> String {
        let op = &self.model["operations"][operation];
        let mut out = format!("<{operation}Response xmlns=\"{}\">", escape(self.xmlns()));
        if let Some(shape) = op["output"]["shape"].as_str() {
            let wrapper = op["output"]["resultWrapper"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{operation}Result"));
            out.push_str(&format!("<{wrapper}>"));
            encode_members(self, shape, output, &mut out);
            out.push_str(&format!("</{wrapper}>"));
        }
        out.push_str(&format!(
            "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
            escape(request_id)
        ));
        out
    }
}

/// Whether any parameter is `key` or nested under it.
fn present(params: &BTreeMap<String, String>, key: &str) -> bool {
    if params.contains_key(key) {
        return true;
    }
    let nested = format!("{key}.");
    params
        .range(nested.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&nested))
}

/// The item indexes N present under `prefix.` (`prefix.N` or `prefix.N.*`), in order.
fn indexes(params: &BTreeMap<String, String>, prefix: &str) -> Result<Vec<u32>, QueryError> {
    let nested = format!("{prefix}.");
    let mut out = Vec::new();
    for (k, _) in params.range(nested.clone()..) {
        let Some(rest) = k.strip_prefix(&nested) else {
            break;
        };
        let n = rest.split('.').next().unwrap_or("");
        let n: u32 = n.parse().map_err(|_| {
            QueryError::validation(format!(
                "Parameter '{k}' is not valid: expected an item number after '{nested}'."
            ))
        })?;
        if n == 0 {
            return Err(QueryError::validation(format!(
                "Parameter '{k}' is not valid: items are numbered from 1."
            )));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn scalar<'p>(params: &'p BTreeMap<String, String>, key: &str) -> Result<&'p str, QueryError> {
    params.get(key).map(String::as_str).ok_or_else(|| {
        QueryError::validation(format!(
            "Parameter '{key}' must be a single value, not a structure or list."
        ))
    })
}

/// Reads the value of shape `shape_name` at `key` from the form's parameters.
pub fn decode(
    model: &QueryModel,
    shape_name: &str,
    key: &str,
    params: &BTreeMap<String, String>,
) -> Result<Value, QueryError> {
    let shape = model.shape(shape_name);
    let bad = |v: &str, what: &str| {
        QueryError::validation(format!(
            "Value '{v}' at '{key}' failed to satisfy constraint: Member must be {what}"
        ))
    };
    match shape["type"].as_str().unwrap_or("") {
        "structure" => {
            let mut m = Map::new();
            if let Some(members) = shape["members"].as_object() {
                for (name, member) in members {
                    let wire = member["locationName"].as_str().unwrap_or(name);
                    let k = join(key, wire);
                    if !present(params, &k) {
                        continue;
                    }
                    let target = member["shape"].as_str().unwrap_or("");
                    m.insert(name.clone(), decode(model, target, &k, params)?);
                }
            }
            Ok(Value::Object(m))
        }
        "list" => {
            let member_shape = shape["member"]["shape"].as_str().unwrap_or("");
            let items_prefix = if shape["flattened"].as_bool() == Some(true) {
                key.to_string()
            } else {
                join(
                    key,
                    shape["member"]["locationName"].as_str().unwrap_or("member"),
                )
            };
            let mut items = Vec::new();
            for n in indexes(params, &items_prefix)? {
                items.push(decode(
                    model,
                    member_shape,
                    &format!("{items_prefix}.{n}"),
                    params,
                )?);
            }
            Ok(Value::Array(items))
        }
        "map" => {
            let entries = if shape["flattened"].as_bool() == Some(true) {
                key.to_string()
            } else {
                join(key, "entry")
            };
            let key_name = shape["key"]["locationName"].as_str().unwrap_or("key");
            let value_name = shape["value"]["locationName"].as_str().unwrap_or("value");
            let value_shape = shape["value"]["shape"].as_str().unwrap_or("");
            let mut m = Map::new();
            for n in indexes(params, &entries)? {
                let at = format!("{entries}.{n}");
                let k = scalar(params, &join(&at, key_name))?;
                let vk = join(&at, value_name);
                let v = if present(params, &vk) {
                    decode(model, value_shape, &vk, params)?
                } else {
                    Value::Null
                };
                m.insert(k.to_string(), v);
            }
            Ok(Value::Object(m))
        }
        "integer" | "long" => {
            let v = scalar(params, key)?;
            v.trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad(v, "an integer"))
        }
        "double" | "float" => {
            let v = scalar(params, key)?;
            v.trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad(v, "a number"))
        }
        "boolean" => {
            let v = scalar(params, key)?;
            match v.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(bad(v, "true or false")),
            }
        }
        "timestamp" => {
            let v = scalar(params, key)?;
            xml::parse_timestamp(v)
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad(v, "an ISO 8601 timestamp"))
        }
        // string, enum and blob (base64 text, as the JSON form carries it).
        _ => Ok(Value::String(scalar(params, key)?.to_string())),
    }
}

/// Writes the members of structure `shape_name` present in `v`.
fn encode_members(model: &QueryModel, shape_name: &str, v: &Value, out: &mut String) {
    let shape = model.shape(shape_name);
    let Some(members) = shape["members"].as_object() else {
        return;
    };
    for (name, member) in members {
        let Some(value) = v.get(name).filter(|x| !x.is_null()) else {
            continue;
        };
        let wire = member["locationName"].as_str().unwrap_or(name);
        let target = member["shape"].as_str().unwrap_or("");
        let t = model.shape(target);
        if t["type"] == "list" && t["flattened"].as_bool() == Some(true) {
            let item = t["member"]["shape"].as_str().unwrap_or("");
            for x in value.as_array().into_iter().flatten() {
                encode_element(model, item, wire, x, out);
            }
        } else {
            encode_element(model, target, wire, value, out);
        }
    }
}

/// Writes `<tag>value</tag>` for a value of shape `shape_name`.
fn encode_element(model: &QueryModel, shape_name: &str, tag: &str, v: &Value, out: &mut String) {
    out.push_str(&format!("<{tag}>"));
    encode_value(model, shape_name, v, out);
    out.push_str(&format!("</{tag}>"));
}

/// Writes the content of a value of shape `shape_name`.
pub fn encode_value(model: &QueryModel, shape_name: &str, v: &Value, out: &mut String) {
    let shape = model.shape(shape_name);
    match shape["type"].as_str().unwrap_or("") {
        "structure" => encode_members(model, shape_name, v, out),
        "list" => {
            let item = shape["member"]["shape"].as_str().unwrap_or("");
            let tag = shape["member"]["locationName"].as_str().unwrap_or("member");
            for x in v.as_array().into_iter().flatten() {
                encode_element(model, item, tag, x, out);
            }
        }
        "map" => {
            let key_tag = shape["key"]["locationName"].as_str().unwrap_or("key");
            let value_tag = shape["value"]["locationName"].as_str().unwrap_or("value");
            let value_shape = shape["value"]["shape"].as_str().unwrap_or("");
            for (k, x) in v.as_object().into_iter().flatten() {
                out.push_str("<entry>");
                out.push_str(&format!("<{key_tag}>{}</{key_tag}>", escape(k)));
                encode_element(model, value_shape, value_tag, x, out);
                out.push_str("</entry>");
            }
        }
        "timestamp" => match v {
            Value::Number(n) => out.push_str(&xml::iso8601(n.as_f64().unwrap_or(0.0))),
            Value::String(s) => out.push_str(&escape(s)),
            _ => {}
        },
        _ => match v {
            Value::String(s) => out.push_str(&escape(s)),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            _ => {}
        },
    }
}

/// One request to a query service, its form read into the operation's input.
#[derive(Debug, Clone)]
pub struct QueryCall<'a> {
    /// Who signed it.
    pub caller: &'a Caller,
    /// The operation, one of the model's.
    pub operation: &'a str,
    /// The input as JSON (the generated types' form), not yet checked against the model's
    /// constraints.
    pub input: Value,
    /// The request time, seconds since the epoch.
    pub now: f64,
}

/// What an awsQuery service implements to be served by [`AwsQuery`].
#[async_trait::async_trait]
pub trait QueryApi: Send + Sync {
    /// The service's name in messages: `Elastic Load Balancing`.
    fn title(&self) -> &'static str;
    /// The service name in the SigV4 credential scope: `elasticloadbalancing`.
    fn signing_name(&self) -> &'static str;
    /// The service's model.
    fn model(&self) -> &QueryModel;
    /// The service's own error for a failure of the edge or the service itself.
    fn internal_error(&self, message: String) -> QueryError {
        QueryError::internal_failure(message)
    }
    /// Runs one operation: its output as JSON (the generated output type).
    async fn dispatch(&self, call: QueryCall<'_>) -> Result<Value, QueryError>;
}

/// A [`QueryApi`] served as a [`Service`].
pub struct AwsQuery<A>(pub A);

/// The awsQuery error an authentication failure is answered with (403), in the codes query
/// services use.
fn auth_code(code: AuthCode) -> &'static str {
    match code {
        AuthCode::MissingAuthenticationToken => "MissingAuthenticationToken",
        AuthCode::UnrecognizedClient => "InvalidClientTokenId",
        AuthCode::InvalidSignature | AuthCode::SignatureExpired => "SignatureDoesNotMatch",
        AuthCode::ExpiredToken => "ExpiredToken",
    }
}

impl<A: QueryApi> AwsQuery<A> {
    fn reply(&self, request_id: &str, result: Result<String, QueryError>) -> Reply {
        match result {
            Ok(body) => Reply {
                status: 200,
                content_type: XML,
                body: body.into_bytes(),
                outcome: Outcome::Ok,
                error_message: None,
            },
            Err(e) => Reply {
                status: e.status,
                content_type: XML,
                body: e.body(self.0.model().xmlns(), request_id),
                outcome: Outcome::Error(e.code.to_string()),
                error_message: Some(e.message),
            },
        }
    }

    /// The error an edge refusal is answered with.
    pub fn edge_error(&self, e: &EdgeError) -> QueryError {
        match e {
            EdgeError::Auth(a) => QueryError::new(auth_code(a.code()), 403, true, a.to_string()),
            EdgeError::WrongScope { .. } => {
                QueryError::new("SignatureDoesNotMatch", 403, true, e.to_string())
            }
            EdgeError::UnknownOperation { target } if target.is_empty() => {
                QueryError::missing_action(format!(
                    "The request names no Action of {}.",
                    self.0.title()
                ))
            }
            EdgeError::UnknownOperation { target } => QueryError::invalid_action(format!(
                "The action {target} is not valid for this web service ({}).",
                self.0.title()
            )),
            EdgeError::NotPost { .. } | EdgeError::NotInRegion { .. } => {
                QueryError::invalid_action(e.to_string())
            }
            EdgeError::BodyTooLarge { .. } => QueryError::validation(e.to_string()),
            EdgeError::AccessDenied { .. } => {
                QueryError::new("AccessDenied", 403, true, e.to_string())
            }
            EdgeError::Internal { .. } => self.0.internal_error(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl<A: QueryApi> Service for AwsQuery<A> {
    fn title(&self) -> &'static str {
        self.0.title()
    }

    fn signing_name(&self) -> &'static str {
        self.0.signing_name()
    }

    fn marker(&self) -> Marker {
        Marker::Action
    }

    fn has_operation(&self, name: &str) -> bool {
        self.0.model().has_operation(name)
    }

    async fn call(&self, call: Call<'_>) -> Reply {
        let model = self.0.model();
        if !model.has_operation(call.operation) {
            let e = self.edge_error(&EdgeError::UnknownOperation {
                target: call.operation.to_string(),
            });
            return self.reply(call.request_id, Err(e));
        }
        let input = match parse_form(call.body).and_then(|p| model.decode(call.operation, &p)) {
            Ok(v) => v,
            Err(e) => return self.reply(call.request_id, Err(e)),
        };
        let result = self
            .0
            .dispatch(QueryCall {
                caller: call.caller,
                operation: call.operation,
                input,
                now: call.now,
            })
            .await
            .map(|out| model.encode(call.operation, &out, call.request_id));
        self.reply(call.request_id, result)
    }

    fn reject(&self, error: &EdgeError) -> Reply {
        // The edge's refusals come before a request id is known to the service: the id is
        // still in the response header.
        self.reply("", Err(self.edge_error(error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MODEL: &str = r#"{
      "metadata": {"apiVersion": "2015-12-01", "xmlNamespace": "http://example.com/doc/"},
      "operations": {
        "Create": {"input": {"shape": "In"}, "output": {"shape": "Out", "resultWrapper": "CreateResult"}},
        "Nothing": {"input": {"shape": "Empty"}}
      },
      "shapes": {
        "Empty": {"type": "structure", "members": {}},
        "In": {"type": "structure", "members": {
          "Name": {"shape": "S"}, "Port": {"shape": "I"}, "On": {"shape": "B"},
          "When": {"shape": "T"}, "Tags": {"shape": "Tags"}, "Names": {"shape": "Names"},
          "Attrs": {"shape": "M"}, "Inner": {"shape": "Inner"}, "Flat": {"shape": "Flat"},
          "Renamed": {"shape": "S", "locationName": "Other"}, "Ratio": {"shape": "D"}
        }},
        "Inner": {"type": "structure", "members": {"Names": {"shape": "Names"}, "Port": {"shape": "I"}}},
        "Out": {"type": "structure", "members": {
          "Name": {"shape": "S"}, "Port": {"shape": "I"}, "On": {"shape": "B"},
          "When": {"shape": "T"}, "Tags": {"shape": "Tags"}, "Names": {"shape": "Names"},
          "Attrs": {"shape": "M"}, "Inner": {"shape": "Inner"}, "Flat": {"shape": "Flat"},
          "Renamed": {"shape": "S", "locationName": "Other"}, "Ratio": {"shape": "D"}
        }},
        "Tag": {"type": "structure", "members": {"Key": {"shape": "S"}, "Value": {"shape": "S"}}},
        "Tags": {"type": "list", "member": {"shape": "Tag"}},
        "Names": {"type": "list", "member": {"shape": "S"}},
        "Flat": {"type": "list", "member": {"shape": "S"}, "flattened": true},
        "M": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "S"}},
        "S": {"type": "string"}, "I": {"type": "integer"}, "B": {"type": "boolean"},
        "T": {"type": "timestamp"}, "D": {"type": "double"}
      }
    }"#;

    fn model() -> QueryModel {
        QueryModel::parse(MODEL).unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_decode_as_browsers_and_botocore_encode_them() {
        let p = parse_form(b"Action=Create&Name=a+b%2Fc&Empty=&Tags.member.1.Key=k%3D1").unwrap();
        assert_eq!(p["Name"], "a b/c");
        assert_eq!(p["Empty"], "");
        assert_eq!(p["Tags.member.1.Key"], "k=1");
        assert_eq!(
            action(b"Version=1&Action=CreateLoadBalancer").as_deref(),
            Some("CreateLoadBalancer")
        );
        assert_eq!(action(b"Version=1"), None);
        assert_eq!(action(b"{\"a\":1}"), None);
        assert!(parse_form(b"Name=%zz").is_err());
        assert_eq!(form_decode(&form_encode("a b/é&=")).unwrap(), "a b/é&=");
    }

    #[test]
    fn every_encoding_rule_decodes() {
        let p = form(&[
            ("Name", "web"),
            ("Port", "80"),
            ("On", "true"),
            ("When", "2024-05-01T12:00:00Z"),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "1"),
            ("Tags.member.2.Key", "b"),
            ("Names.member.2", "second"),
            ("Names.member.1", "first"),
            ("Names.member.10", "tenth"),
            ("Attrs.entry.1.key", "x"),
            ("Attrs.entry.1.value", "y"),
            ("Inner.Names", ""),
            ("Inner.Port", "8"),
            ("Flat.1", "f"),
            ("Other", "renamed"),
            ("Ratio", "0.5"),
            ("Unknown", "ignored"),
        ]);
        let v = model().decode("Create", &p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "Name": "web", "Port": 80, "On": true, "When": 1714564800.0,
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b"}],
                "Names": ["first", "second", "tenth"],
                "Attrs": {"x": "y"},
                "Inner": {"Names": [], "Port": 8},
                "Flat": ["f"], "Renamed": "renamed", "Ratio": 0.5
            })
        );
        assert_eq!(
            model().decode("Nothing", &form(&[("X", "1")])).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn malformed_values_are_validation_errors() {
        for (k, v) in [
            ("Port", "eighty"),
            ("On", "yes"),
            ("When", "noon"),
            ("Names.member.x", "a"),
            ("Names.member.0", "a"),
        ] {
            let e = model().decode("Create", &form(&[(k, v)])).unwrap_err();
            assert_eq!(e.code, "ValidationError", "{k}={v}");
            assert_eq!(e.status, 400);
        }
        let e = model()
            .decode("Create", &form(&[("Name.x", "a")]))
            .unwrap_err();
        assert_eq!(e.code, "ValidationError");
    }

    #[test]
    fn outputs_encode_as_xml() {
        let out = serde_json::json!({
            "Name": "a<b", "Port": 80, "On": false, "When": 1714564800.5,
            "Tags": [{"Key": "k", "Value": "v"}], "Names": [], "Attrs": {"x": "y"},
            "Flat": ["1", "2"], "Renamed": "r", "Missing": null
        });
        let xml = model().encode("Create", &out, "req-1");
        assert_eq!(
            xml,
            "<CreateResponse xmlns=\"http://example.com/doc/\"><CreateResult>\
             <Name>a&lt;b</Name><Port>80</Port><On>false</On><When>2024-05-01T12:00:00.500Z</When>\
             <Tags><member><Key>k</Key><Value>v</Value></member></Tags><Names></Names>\
             <Attrs><entry><key>x</key><value>y</value></entry></Attrs><Flat>1</Flat><Flat>2</Flat>\
             <Other>r</Other></CreateResult>\
             <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></CreateResponse>"
        );
        assert_eq!(
            model().encode("Nothing", &serde_json::json!({}), "r"),
            "<NothingResponse xmlns=\"http://example.com/doc/\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></NothingResponse>"
        );
    }

    #[test]
    fn errors_are_the_query_error_document() {
        let e = QueryError::new(
            "LoadBalancerNotFound",
            400,
            true,
            "One or more load balancers not found",
        );
        assert_eq!(
            String::from_utf8(e.body("http://ns/", "id-1")).unwrap(),
            "<ErrorResponse xmlns=\"http://ns/\"><Error><Type>Sender</Type><Code>LoadBalancerNotFound</Code>\
             <Message>One or more load balancers not found</Message></Error><RequestId>id-1</RequestId></ErrorResponse>"
        );
        let e = QueryError::internal_failure("x");
        assert!(String::from_utf8(e.body("n", "i"))
            .unwrap()
            .contains("<Type>Receiver</Type>"));
    }

    /// Encodes a value of the test model's `In` shape as botocore's query serializer does.
    fn serialize(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    serialize(&join(prefix, k), x, out);
                }
            }
            Value::Array(items) if items.is_empty() => {
                out.push((prefix.to_string(), String::new()))
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    serialize(&format!("{prefix}.member.{}", i + 1), x, out);
                }
            }
            Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
            Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Null => {}
        }
    }

    proptest! {
        /// Whatever a client serializes into a form body (names, ports, flags, tags, lists of
        /// any length, text with any characters) decodes back to the same input.
        #[test]
        fn a_serialized_input_decodes_back(
            name in "\\PC{0,20}",
            port in proptest::option::of(-1000i64..100000),
            on in proptest::option::of(any::<bool>()),
            names in proptest::collection::vec("\\PC{0,8}", 0..12),
            tags in proptest::collection::vec(("[a-z]{1,5}", "\\PC{0,5}"), 0..4),
        ) {
            let mut input = Map::new();
            input.insert("Name".into(), Value::String(name));
            if let Some(p) = port { input.insert("Port".into(), Value::from(p)); }
            if let Some(b) = on { input.insert("On".into(), Value::Bool(b)); }
            input.insert("Names".into(), Value::from(names));
            input.insert("Tags".into(), Value::Array(tags.into_iter().map(|(k, v)| serde_json::json!({"Key": k, "Value": v})).collect()));
            let input = Value::Object(input);
            let mut pairs = vec![("Action".to_string(), "Create".to_string())];
            serialize("", &input, &mut pairs);
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
            let params = parse_form(body.join("&").as_bytes()).unwrap();
            let decoded = model().decode("Create", &params).unwrap();
            prop_assert_eq!(decoded, input);
        }
    }
}
