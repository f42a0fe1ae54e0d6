//! The code generator: one Rust type per structure and enum shape of a botocore model, with the
//! model's exact wire names, the `Operation` enum, and the model without its documentation (for
//! [`crate::Validator`]). A service crate calls [`generate`] from its `build.rs`.
//!
//! Rules (mirroring Smithy's): a member whose target is a non-boxed primitive (`integer`, `long`,
//! `boolean`, `double` without `box`) is a plain value that is always serialized (missing means
//! 0/false); so is a member the model marks `required` (validation guarantees it is present in
//! requests, and Flotilla always fills it in responses). Every other member is an `Option` left
//! out when unset. Enums default to their first value only so that structs can derive `Default`.
//! A `timestamp` member is `crate::Timestamp` of the generated code's crate.

// A build script reports failure by panicking: there is no caller to return an error to, and a
// malformed vendored model must stop the build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

fn strip_docs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("documentation");
            m.remove("deprecatedMessage");
            for (_, x) in m.iter_mut() {
                strip_docs(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

/// The first sentence of a model documentation string, as plain text doc-comment lines.
fn doc(shape: &Value, indent: &str) -> String {
    let Some(d) = shape.get("documentation").and_then(Value::as_str) else {
        return String::new();
    };
    let mut text = String::new();
    let mut in_tag = false;
    for c in d.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let first = match text.find(". ") {
        Some(i) => &text[..=i],
        None => &text,
    };
    let first: String = first.chars().take(400).collect();
    let first = first
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace('<', "\\<")
        .replace('`', "'");
    if first.trim().is_empty() {
        return String::new();
    }
    format!("{indent}/// {}\n", first.trim())
}

fn snake(name: &str) -> String {
    let mut s = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = i + 1 < chars.len() && chars[i + 1].is_ascii_lowercase();
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else if c == '-' || c == '.' {
            s.push('_');
        } else {
            s.push(c);
        }
    }
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

fn is_unboxed_primitive(target: &Value, member: &Value) -> bool {
    let ty = target["type"].as_str().unwrap_or("");
    matches!(ty, "integer" | "long" | "boolean" | "double")
        && target.get("box").is_none()
        && member.get("box").is_none()
}

fn rust_type(shape_name: &str, shapes: &Map<String, Value>) -> String {
    let s = &shapes[shape_name];
    match s["type"].as_str().unwrap() {
        "string" if s.get("enum").is_some() => shape_name.to_string(),
        "string" => "String".into(),
        "integer" => "i32".into(),
        "long" => "i64".into(),
        "boolean" => "bool".into(),
        "double" | "float" => "f64".into(),
        "timestamp" => "crate::Timestamp".into(),
        "blob" => "String".into(),
        "list" => format!(
            "Vec<{}>",
            rust_type(s["member"]["shape"].as_str().unwrap(), shapes)
        ),
        "map" => format!(
            "std::collections::BTreeMap<String, {}>",
            rust_type(s["value"]["shape"].as_str().unwrap(), shapes)
        ),
        // An error shape used as a member (event streams carry them): kept as raw JSON.
        "structure" if s.get("exception").is_some() => "serde_json::Value".into(),
        "structure" => shape_name.to_string(),
        other => panic!("unknown shape type {other}"),
    }
}

fn gen_struct(
    code: &mut String,
    name: &str,
    shape: &Value,
    shapes: &Map<String, Value>,
    optional_primitives: bool,
) {
    code.push_str(&doc(shape, ""));
    code.push_str(
        "#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]\n",
    );
    writeln!(code, "pub struct {name} {{").unwrap();
    let required: Vec<&str> = shape
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (mname, member) in shape["members"].as_object().unwrap() {
        let target = member["shape"].as_str().unwrap();
        let mut ty = rust_type(target, shapes);
        if ty == name {
            // A structure that contains itself needs an indirection.
            ty = format!("Box<{ty}>");
        }
        let field = snake(mname);
        code.push_str(&doc(member, "    "));
        if required.contains(&mname.as_str()) {
            writeln!(code, "    /// Required by the model.").unwrap();
        }
        if (!optional_primitives && is_unboxed_primitive(&shapes[target], member))
            || required.contains(&mname.as_str())
        {
            writeln!(code, "    #[serde(rename = {mname:?}, default)]").unwrap();
            writeln!(code, "    pub {field}: {ty},").unwrap();
        } else {
            writeln!(
                code,
                "    #[serde(rename = {mname:?}, default, skip_serializing_if = \"Option::is_none\")]"
            )
            .unwrap();
            writeln!(code, "    pub {field}: Option<{ty}>,").unwrap();
        }
    }
    code.push_str("}\n\n");
}

fn variant_name(value: &str) -> String {
    let mut out = String::new();
    for part in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let all_upper = part.chars().all(|c| !c.is_ascii_lowercase());
        let mut chars = part.chars();
        if let Some(f) = chars.next() {
            out.push(f.to_ascii_uppercase());
            if all_upper {
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
            } else {
                out.extend(chars);
            }
        }
    }
    if out.is_empty() || out.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        out = format!("V{out}");
    }
    out
}

fn gen_enum(code: &mut String, name: &str, shape: &Value) {
    let values: Vec<&str> = shape["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let variants: Vec<(String, &str)> = values
        .iter()
        .map(|v| {
            let mut n = variant_name(v);
            let count = seen.entry(n.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                n = format!("{n}{count}");
            }
            (n, *v)
        })
        .collect();
    code.push_str(&doc(shape, ""));
    code.push_str("#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]\n");
    writeln!(code, "pub enum {name} {{").unwrap();
    for (i, (v, raw)) in variants.iter().enumerate() {
        let default = if i == 0 { "    #[default]\n" } else { "" };
        writeln!(
            code,
            "    /// `{raw}`\n{default}    #[serde(rename = {raw:?})]\n    {v},"
        )
        .unwrap();
    }
    code.push_str("}\n\n");
    writeln!(code, "impl {name} {{").unwrap();
    writeln!(
        code,
        "    /// Every value the model allows, as sent on the wire."
    )
    .unwrap();
    writeln!(
        code,
        "    pub const VALUES: &'static [&'static str] = &[{}];",
        values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    writeln!(code, "    /// The wire spelling.").unwrap();
    writeln!(
        code,
        "    pub fn as_str(&self) -> &'static str {{\n        match self {{"
    )
    .unwrap();
    for (v, raw) in &variants {
        writeln!(code, "            Self::{v} => {raw:?},").unwrap();
    }
    code.push_str("        }\n    }\n");
    writeln!(code, "    /// Parses the wire spelling.").unwrap();
    writeln!(
        code,
        "    pub fn parse(s: &str) -> Option<Self> {{\n        match s {{"
    )
    .unwrap();
    for (v, raw) in &variants {
        writeln!(code, "            {raw:?} => Some(Self::{v}),").unwrap();
    }
    code.push_str("            _ => None,\n        }\n    }\n}\n\n");
    writeln!(code, "impl std::fmt::Display for {name} {{\n    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}\n").unwrap();
}

fn gen_operations(code: &mut String, model: &Value, service: &str) {
    let ops = model["operations"].as_object().unwrap();
    writeln!(code, "/// Every operation of the {service} API, by name.").unwrap();
    code.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum Operation {\n");
    for (name, op) in ops {
        code.push_str(&doc(op, "    "));
        writeln!(code, "    {name},").unwrap();
    }
    code.push_str("}\n\nimpl Operation {\n");
    writeln!(
        code,
        "    /// Every operation.\n    pub const ALL: &'static [Operation] = &[{}];",
        ops.keys()
            .map(|k| format!("Operation::{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    code.push_str("    /// The operation's name, as in `X-Amz-Target`.\n    pub fn name(&self) -> &'static str {\n        match self {\n");
    for name in ops.keys() {
        writeln!(code, "            Operation::{name} => {name:?},").unwrap();
    }
    code.push_str("        }\n    }\n    /// Looks an operation up by name.\n    pub fn from_name(s: &str) -> Option<Self> {\n        match s {\n");
    for name in ops.keys() {
        writeln!(code, "            {name:?} => Some(Operation::{name}),").unwrap();
    }
    code.push_str("            _ => None,\n        }\n    }\n    /// The name of the input shape.\n    pub fn input_shape(&self) -> Option<&'static str> {\n        match self {\n");
    for (name, op) in ops {
        match op.get("input").and_then(|i| i["shape"].as_str()) {
            Some(s) => writeln!(code, "            Operation::{name} => Some({s:?}),").unwrap(),
            None => writeln!(code, "            Operation::{name} => None,").unwrap(),
        }
    }
    code.push_str("        }\n    }\n    /// The error shapes the model lists for this operation.\n    pub fn errors(&self) -> &'static [&'static str] {\n        match self {\n");
    for (name, op) in ops {
        let errs: Vec<String> = op
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["shape"].as_str())
                    .map(|s| format!("{s:?}"))
                    .collect()
            })
            .unwrap_or_default();
        writeln!(
            code,
            "            Operation::{name} => &[{}],",
            errs.join(", ")
        )
        .unwrap();
    }
    code.push_str("        }\n    }\n}\n\n");
}

/// Generates `shapes.rs` (the types and `Operation`) and `model.json` (the model without
/// documentation) in `out_dir` from the botocore model at `spec`; `service` names the API in
/// the generated docs ("Amazon ECS"). `optional_primitives`: a primitive member that is not
/// required is an `Option` (models converted from Smithy, like Logs', do not mark them `box`).
/// For a `build.rs`: it panics on a malformed model.
pub fn generate(spec: &Path, out_dir: &Path, service: &str, optional_primitives: bool) {
    println!("cargo:rerun-if-changed={}", spec.display());
    let model: Value = serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let shapes = model["shapes"].as_object().unwrap();
    let out = out_dir;

    let mut code = String::new();
    writeln!(
        code,
        "// @generated by flotilla-botocore from {}. Do not edit.\n",
        spec.file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("service-2.json")
    )
    .unwrap();
    let mut exceptions = Vec::new();
    for (name, shape) in shapes {
        let ty = shape["type"].as_str().unwrap();
        if shape.get("exception").is_some() {
            exceptions.push(name.clone());
            continue;
        }
        match ty {
            "structure" if shape.get("document").is_some() => {
                writeln!(
                    code,
                    "{}pub type {} = serde_json::Value;\n",
                    doc(shape, ""),
                    name
                )
                .unwrap();
            }
            "structure" => gen_struct(&mut code, name, shape, shapes, optional_primitives),
            "string" if shape.get("enum").is_some() => gen_enum(&mut code, name, shape),
            _ => {}
        }
    }
    gen_operations(&mut code, &model, service);

    writeln!(
        code,
        "/// Names of the error shapes the model declares (`exception: true`)."
    )
    .unwrap();
    writeln!(code, "pub const MODELED_ERRORS: &[&str] = &[").unwrap();
    for e in &exceptions {
        writeln!(code, "    {e:?},").unwrap();
    }
    writeln!(code, "];").unwrap();
    std::fs::write(out.join("shapes.rs"), code).unwrap();

    // The model without documentation, for the runtime validator.
    let mut slim = model.clone();
    strip_docs(&mut slim);
    std::fs::write(
        out.join("model.json"),
        serde_json::to_string(&slim).unwrap(),
    )
    .unwrap();
}
