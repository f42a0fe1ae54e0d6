//! The `awslogs` log driver's options in a container definition, checked as ECS and Docker
//! check them (Docker's wording, so a message looks like the one users search for).
//!
//! Served: `awslogs-group` (required), `awslogs-stream-prefix` (required on Fargate),
//! `awslogs-create-group`, `awslogs-region` (must be the server's region: the events stay in
//! this installation), `awslogs-datetime-format` or `awslogs-multiline-pattern` (not both),
//! `mode` (`blocking`, the default, or `non-blocking`) and `max-buffer-size` (with
//! `non-blocking` only). Every other option is refused: Flotilla would otherwise ignore it.

use crate::multiline::{self, StartPattern};
use std::collections::BTreeMap;

/// Docker's delivery mode of a log driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The container's writes wait for the driver (no line is lost).
    Blocking,
    /// Lines go through a ring buffer of `max-buffer-size`; when it is full, lines are dropped.
    NonBlocking,
}

/// The checked options.
#[derive(Debug, Clone, PartialEq)]
pub struct AwslogsOptions {
    /// `awslogs-group`.
    pub group: String,
    /// `awslogs-stream-prefix`.
    pub stream_prefix: Option<String>,
    /// `awslogs-create-group`.
    pub create_group: bool,
    /// `awslogs-region`.
    pub region: Option<String>,
    /// `awslogs-datetime-format` or `awslogs-multiline-pattern`, as the pattern of a line that
    /// starts an event.
    pub start: Option<StartPattern>,
    /// `mode`.
    pub mode: Mode,
    /// `max-buffer-size`, in bytes (non-blocking only).
    pub max_buffer_size: Option<u64>,
}

const KNOWN: &[&str] = &[
    "awslogs-group",
    "awslogs-stream-prefix",
    "awslogs-create-group",
    "awslogs-region",
    "awslogs-datetime-format",
    "awslogs-multiline-pattern",
    "mode",
    "max-buffer-size",
];

/// Docker's options that Flotilla does not serve, with why.
fn refused(key: &str) -> Option<&'static str> {
    Some(match key {
        "awslogs-stream" => "name the stream with awslogs-stream-prefix (PREFIX/CONTAINER/TASK-ID)",
        "awslogs-endpoint" => "the events stay in this Flotilla installation",
        "awslogs-credentials-endpoint" => {
            "the agent stores the events itself; no credentials are needed"
        }
        "awslogs-force-flush-interval-seconds" | "awslogs-max-buffered-events" => {
            "events are stored as they are written"
        }
        "awslogs-format" => "only plain text events are stored",
        "awslogs-create-stream" => "the stream is always created",
        "tag" => "the stream is named by awslogs-stream-prefix",
        _ => return None,
    })
}

/// Checks the options. `fargate`: the task runs on Fargate (the prefix is required);
/// `server_region`: the region of this installation.
pub fn parse(
    options: &BTreeMap<String, String>,
    fargate: bool,
    server_region: Option<&str>,
) -> Result<AwslogsOptions, String> {
    for key in options.keys() {
        if let Some(why) = refused(key) {
            return Err(format!(
                "log opt '{key}' of the awslogs log driver is not supported by Flotilla ({why})"
            ));
        }
        if !KNOWN.contains(&key.as_str()) {
            return Err(format!("unknown log opt '{key}' for awslogs log driver"));
        }
    }
    let get = |k: &str| options.get(k).map(String::as_str);
    let group = match get("awslogs-group") {
        Some(g) if !g.is_empty() => g.to_string(),
        _ => return Err("must specify a value for log opt 'awslogs-group'".into()),
    };
    let name_ok = group.len() <= 512
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c));
    if !name_ok {
        return Err(format!(
            "awslogs-group '{group}' is not a valid log group name (1 to 512 of a-z, A-Z, 0-9, '.', '-', '_', '/', '#')"
        ));
    }
    let stream_prefix = get("awslogs-stream-prefix").map(str::to_string);
    if let Some(p) = &stream_prefix {
        if p.is_empty() || p.contains(':') || p.contains('*') {
            return Err(format!(
                "awslogs-stream-prefix '{p}' is not valid (it may not be empty or hold ':' or '*')"
            ));
        }
    }
    if fargate && stream_prefix.is_none() {
        return Err(
            "the awslogs log driver on Fargate requires the option awslogs-stream-prefix".into(),
        );
    }
    let create_group = match get("awslogs-create-group") {
        None => false,
        Some(v) => parse_bool(v).ok_or_else(|| {
            format!("invalid value '{v}' for log opt 'awslogs-create-group' (use true or false)")
        })?,
    };
    let region = get("awslogs-region").map(str::to_string);
    if let (Some(r), Some(server)) = (&region, server_region) {
        if r != server {
            return Err(format!(
                "awslogs-region {r} is not this installation's region ({server}); the events are kept by Flotilla, so leave it out or use {server}"
            ));
        }
    }
    let start = match (get("awslogs-datetime-format"), get("awslogs-multiline-pattern")) {
        (Some(_), Some(_)) => {
            return Err("you cannot configure log opt 'awslogs-datetime-format' and 'awslogs-multiline-pattern' at the same time".into())
        }
        (Some(f), None) => Some(multiline::from_datetime_format(f)?),
        (None, Some(p)) => Some(multiline::from_multiline_pattern(p)?),
        (None, None) => None,
    };
    let mode = match get("mode") {
        None | Some("blocking") => Mode::Blocking,
        Some("non-blocking") => Mode::NonBlocking,
        Some(m) => return Err(format!("logger: logger mode not supported: {m}")),
    };
    let max_buffer_size = match get("max-buffer-size") {
        None => None,
        Some(_) if mode != Mode::NonBlocking => {
            return Err(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'".into(),
            )
        }
        Some(s) => Some(
            parse_size(s)
                .ok_or_else(|| format!("invalid max-buffer-size '{s}' (e.g. 4m, 512k)"))?,
        ),
    };
    Ok(AwslogsOptions {
        group,
        stream_prefix,
        create_group,
        region,
        start,
        mode,
        max_buffer_size,
    })
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A size as Docker reads it (`512`, `64k`, `4m`, `1g`, binary multiples, `b` optional).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !(n.is_finite() && n > 0.0) {
        return None;
    }
    Some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_served_options_are_read() {
        let o = parse(
            &opts(&[
                ("awslogs-group", "/ecs/web"),
                ("awslogs-stream-prefix", "ecs"),
                ("awslogs-create-group", "true"),
                ("awslogs-region", "us-east-1"),
                ("awslogs-multiline-pattern", "^INFO"),
                ("mode", "non-blocking"),
                ("max-buffer-size", "4m"),
            ]),
            true,
            Some("us-east-1"),
        )
        .unwrap();
        assert_eq!(o.group, "/ecs/web");
        assert_eq!(o.stream_prefix.as_deref(), Some("ecs"));
        assert!(o.create_group);
        assert_eq!(o.mode, Mode::NonBlocking);
        assert_eq!(o.max_buffer_size, Some(4 << 20));
        assert!(o.start.is_some());
    }

    #[test]
    fn everything_else_is_refused_clearly() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "must specify a value for log opt 'awslogs-group'"),
            (
                &[("awslogs-group", "g"), ("foo", "1")],
                "unknown log opt 'foo'",
            ),
            (
                &[("awslogs-group", "g"), ("awslogs-endpoint", "x")],
                "not supported by Flotilla",
            ),
            (
                &[("awslogs-group", "g"), ("awslogs-create-group", "yes")],
                "use true or false",
            ),
            (
                &[("awslogs-group", "g"), ("mode", "fast")],
                "logger mode not supported: fast",
            ),
            (
                &[("awslogs-group", "g"), ("max-buffer-size", "4m")],
                "only supported with 'mode=non-blocking'",
            ),
            (
                &[("awslogs-group", "g"), ("awslogs-region", "eu-west-1")],
                "not this installation's region",
            ),
            (
                &[
                    ("awslogs-group", "g"),
                    ("awslogs-datetime-format", "%Y"),
                    ("awslogs-multiline-pattern", "x"),
                ],
                "at the same time",
            ),
            (
                &[("awslogs-group", "bad group")],
                "not a valid log group name",
            ),
        ];
        for (pairs, want) in cases {
            let e = parse(&opts(pairs), false, Some("us-east-1")).unwrap_err();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
        let e = parse(&opts(&[("awslogs-group", "g")]), true, None).unwrap_err();
        assert!(
            e.contains("requires the option awslogs-stream-prefix"),
            "{e}"
        );
        assert!(parse(&opts(&[("awslogs-group", "g")]), false, None).is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("1MB"), Some(1 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1m"), None);
    }
}
