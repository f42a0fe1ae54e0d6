//! `flotilla lb ls|describe`: the load balancers as people read them, from Flotilla's own
//! `FlotillaAdmin.LoadBalancing` operation (signed like any ECS call): `ls` lists each load
//! balancer with its listeners; `describe NAME` shows a load balancer's listeners and rules and
//! the health of every target of the target groups they forward to. `--output json` prints the
//! document as the server answered it.

use crate::client::EcsClient;
use crate::verbs::{s, table, Output};
use clap::Subcommand;
use serde_json::{json, Value};

/// The `flotilla lb` verbs.
#[derive(Subcommand, Debug)]
pub enum LbCommand {
    /// List load balancers with their listeners (PROTOCOL:PORT).
    Ls(LbArgs),
    /// Show a load balancer's listeners, rules and the health of its targets.
    Describe(DescribeArgs),
}

/// Flags of `flotilla lb ls`.
#[derive(clap::Args, Debug)]
pub struct LbArgs {
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// Flags of `flotilla lb describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// The load balancer's name or ARN.
    name: String,
    #[command(flatten)]
    args: LbArgs,
}

/// Runs a `flotilla lb` verb.
pub async fn run(cmd: LbCommand) -> anyhow::Result<()> {
    let (args, name) = match &cmd {
        LbCommand::Ls(a) => (a, None),
        LbCommand::Describe(d) => (&d.args, Some(d.name.as_str())),
    };
    let client: EcsClient = args.endpoint.client()?;
    let doc = client.call_admin("LoadBalancing", json!({})).await?;
    let text = match name {
        None => match args.output {
            Output::Json => serde_json::to_string_pretty(&doc)? + "\n",
            Output::Table => render_ls(&doc),
        },
        Some(n) => {
            let Some(lb) = find(&doc, n) else {
                anyhow::bail!("no load balancer named {n} (flotilla lb ls lists them)");
            };
            match args.output {
                Output::Json => serde_json::to_string_pretty(&lb)? + "\n",
                Output::Table => render_describe(&doc, &lb),
            }
        }
    };
    print!("{text}");
    Ok(())
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn find(doc: &Value, name: &str) -> Option<Value> {
    list(&doc["loadBalancers"])
        .iter()
        .find(|l| l["name"] == json!(name) || l["loadBalancerArn"] == json!(name))
        .cloned()
}

fn group_name(doc: &Value, arn: &Value) -> String {
    list(&doc["targetGroups"])
        .iter()
        .find(|g| &g["targetGroupArn"] == arn)
        .map_or_else(|| s(arn), |g| s(&g["name"]))
}

/// `flotilla lb ls` as a table.
pub fn render_ls(doc: &Value) -> String {
    let rows: Vec<Vec<String>> = list(&doc["loadBalancers"])
        .iter()
        .map(|lb| {
            let listeners: Vec<String> = list(&lb["listeners"])
                .iter()
                .map(|l| format!("{}:{}", s(&l["protocol"]), s(&l["port"])))
                .collect();
            vec![
                s(&lb["name"]),
                s(&lb["type"]),
                s(&lb["dnsName"]),
                listeners.join(","),
            ]
        })
        .collect();
    table(&["NAME", "TYPE", "DNS NAME", "LISTENERS"], &rows)
}

/// `flotilla lb describe` as tables: rules, then targets.
pub fn render_describe(doc: &Value, lb: &Value) -> String {
    let mut out = format!(
        "{} ({}) {}\n\nRULES\n",
        s(&lb["name"]),
        s(&lb["type"]),
        s(&lb["dnsName"])
    );
    let mut rows = Vec::new();
    let mut groups: Vec<Value> = Vec::new();
    for l in list(&lb["listeners"]) {
        for r in list(&l["rules"]) {
            let when: Vec<String> = list(&r["conditions"])
                .iter()
                .map(|c| {
                    let vals: Vec<String> = list(&c["values"]).iter().map(s).collect();
                    format!("{}={}", s(&c["field"]), vals.join("|"))
                })
                .collect();
            let to: Vec<String> = list(&r["forward"])
                .iter()
                .map(|w| {
                    if !groups.contains(&w["targetGroupArn"]) {
                        groups.push(w["targetGroupArn"].clone());
                    }
                    format!(
                        "{} ({})",
                        group_name(doc, &w["targetGroupArn"]),
                        s(&w["weight"])
                    )
                })
                .collect();
            let priority = if r["priority"].is_null() {
                "default".to_string()
            } else {
                s(&r["priority"])
            };
            rows.push(vec![
                format!("{}:{}", s(&l["protocol"]), s(&l["port"])),
                priority,
                if when.is_empty() {
                    "-".into()
                } else {
                    when.join(" ")
                },
                to.join(", "),
            ]);
        }
    }
    out.push_str(&table(
        &["LISTENER", "PRIORITY", "CONDITIONS", "FORWARD TO"],
        &rows,
    ));
    out.push_str("\nTARGETS\n");
    let mut rows = Vec::new();
    for g in list(&doc["targetGroups"])
        .iter()
        .filter(|g| groups.contains(&g["targetGroupArn"]))
    {
        for t in list(&g["targets"]) {
            let reason = if t["reason"].is_null() {
                "-".to_string()
            } else {
                s(&t["reason"])
            };
            rows.push(vec![
                s(&g["name"]),
                format!("{}:{}", s(&t["id"]), s(&t["port"])),
                s(&t["state"]),
                reason,
            ]);
        }
    }
    out.push_str(&table(
        &["TARGET GROUP", "TARGET", "STATE", "REASON"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "loadBalancers": [{"name": "web", "type": "application", "dnsName": "web-1.elb",
                "loadBalancerArn": "arn:lb", "listeners": [{"protocol": "HTTP", "port": 8081, "rules": [
                    {"priority": 10, "conditions": [{"field": "path-pattern", "values": ["/api/*"]}],
                     "forward": [{"targetGroupArn": "arn:tg", "weight": 1}]},
                    {"priority": null, "conditions": [], "forward": [{"targetGroupArn": "arn:tg", "weight": 1}]}]}]}],
            "targetGroups": [{"targetGroupArn": "arn:tg", "name": "app", "targets": [
                {"id": "10.0.0.7", "port": 8080, "state": "healthy", "reason": null},
                {"id": "10.0.0.8", "port": 8080, "state": "draining", "reason": "Target.DeregistrationInProgress"}]}]
        })
    }

    #[test]
    fn ls_lists_each_load_balancer_with_its_listeners() {
        let text = render_ls(&doc());
        assert!(text.contains("NAME"), "{text}");
        assert!(
            text.contains("web") && text.contains("application") && text.contains("HTTP:8081"),
            "{text}"
        );
    }

    #[test]
    fn describe_shows_rules_and_target_health() {
        let d = doc();
        let lb = find(&d, "web").unwrap();
        let text = render_describe(&d, &lb);
        assert!(text.contains("path-pattern=/api/*"), "{text}");
        assert!(text.contains("default"), "{text}");
        assert!(text.contains("app (1)"), "{text}");
        assert!(
            text.contains("10.0.0.7:8080") && text.contains("healthy"),
            "{text}"
        );
        assert!(text.contains("Target.DeregistrationInProgress"), "{text}");
        assert!(find(&d, "nope").is_none());
    }
}
