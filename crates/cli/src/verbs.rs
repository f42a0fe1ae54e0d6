//! Human verbs: `flotilla clusters`, `flotilla task-definitions`. Tables for people,
//! `--output json` for scripts. They use the same ECS API as every other client.

use crate::client::EcsClient;
use serde_json::{json, Value};

/// How to print results.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The ECS objects as JSON, for scripts.
    Json,
}

/// Prints rows as aligned columns.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(headers, rows));
}

/// Rows as aligned columns, one line each (headers first).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.len());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A cell: a string as is, `-` for null, other values as JSON.
pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A cell for a time in epoch seconds (as the ECS API answers them): UTC, to the second, as
/// RFC 3339; `-` when absent.
pub fn when(v: &Value) -> String {
    let Some(secs) = v.as_f64() else {
        return s(v);
    };
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(secs.floor() as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| secs.to_string())
}

fn stat(c: &Value, name: &str) -> String {
    c["statistics"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["name"] == name))
        .map(|kv| s(&kv["value"]))
        .unwrap_or_else(|| "0".into())
}

/// `flotilla clusters`.
pub async fn clusters(client: &EcsClient, output: Output) -> anyhow::Result<()> {
    let arns = client
        .list_all("ListClusters", json!({}), "clusterArns")
        .await?;
    let clusters = client
        .describe_all(
            "DescribeClusters",
            json!({"include": ["SETTINGS", "STATISTICS", "TAGS"]}),
            "clusters",
            &arns,
            100,
            "clusters",
        )
        .await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&clusters)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                s(&c["clusterName"]),
                s(&c["status"]),
                s(&c["registeredContainerInstancesCount"]),
                s(&c["runningTasksCount"]),
                s(&c["pendingTasksCount"]),
                s(&c["activeServicesCount"]),
                stat(c, "runningFargateTasksCount"),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "STATUS",
            "INSTANCES",
            "RUNNING",
            "PENDING",
            "SERVICES",
            "FARGATE",
        ],
        &rows,
    );
    Ok(())
}

/// `flotilla task-definitions`.
pub async fn task_definitions(
    client: &EcsClient,
    family: Option<&str>,
    status: &str,
    output: Output,
) -> anyhow::Result<()> {
    let mut input = json!({"status": status});
    if let Some(f) = family {
        input["familyPrefix"] = json!(f);
    }
    let arns = client
        .list_all("ListTaskDefinitions", input, "taskDefinitionArns")
        .await?;
    let mut defs = Vec::new();
    for arn in &arns {
        let out = client
            .call("DescribeTaskDefinition", json!({"taskDefinition": arn}))
            .await?;
        defs.push(out["taskDefinition"].clone());
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&defs)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = defs
        .iter()
        .map(|d| {
            let containers: Vec<String> = d["containerDefinitions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| format!("{}={}", s(&c["name"]), s(&c["image"])))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                format!("{}:{}", s(&d["family"]), s(&d["revision"])),
                s(&d["status"]),
                s(&d["networkMode"]),
                s(&d["cpu"]),
                s(&d["memory"]),
                containers.join(", "),
            ]
        })
        .collect();
    print_table(
        &[
            "TASK DEFINITION",
            "STATUS",
            "NETWORK",
            "CPU",
            "MEMORY",
            "CONTAINERS",
        ],
        &rows,
    );
    Ok(())
}
