//! `flotilla status`: the region at a glance, from Flotilla's own `FlotillaAdmin.Status`
//! operation (signed like any ECS call): the server replicas and which one leads (its term),
//! the store (kind, reachable, etcd members), the container instances per availability zone and
//! the warm task networks reserved for managed-pool hosts.
//! What the server does not know is shown as `unknown`.

use crate::client::EcsClient;
use crate::verbs::{s, table, when, Output};
use serde_json::{json, Value};

/// Runs `flotilla status`.
pub async fn run(client: EcsClient, output: Output) -> anyhow::Result<()> {
    let out = client.call_admin("Status", json!({})).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Output::Table => print!("{}", render(&out)),
    }
    Ok(())
}

/// `v` as a cell, `unknown` when null or missing.
fn known(v: &Value) -> String {
    if v.is_null() {
        "unknown".into()
    } else {
        s(v)
    }
}

/// The status as text for people.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let leader = &v["leader"];
    let lead = if !leader.is_null() {
        format!("{} (term {})", s(&leader["id"]), known(&leader["term"]))
    } else if v["leaderKnown"] == json!(true) {
        "none".into()
    } else {
        "unknown".into()
    };
    out.push_str(&format!("Leader: {lead}\n"));
    out.push_str(&format!(
        "Answered by: {} (leads: {})\n",
        known(&v["replica"]["id"]),
        known(&v["leads"])
    ));
    let store = &v["store"];
    out.push_str(&format!(
        "Store: {} ({})\n",
        known(&store["kind"]),
        if store["reachable"] == json!(true) {
            "reachable"
        } else {
            "unreachable"
        }
    ));
    out.push_str("\nREPLICAS\n");
    match v["replicas"].as_array() {
        Some(rs) => {
            let rows: Vec<Vec<String>> = rs
                .iter()
                .map(|r| {
                    let role = match r["leader"].as_bool() {
                        Some(true) => "leader",
                        Some(false) => "follower",
                        None => "unknown",
                    };
                    vec![
                        s(&r["id"]),
                        s(&r["url"]),
                        role.into(),
                        when(&r["startedAt"]),
                    ]
                })
                .collect();
            out.push_str(&table(&["ID", "URL", "ROLE", "STARTED"], &rows));
        }
        None => out.push_str("unknown\n"),
    }
    if let Some(ms) = store["members"].as_array() {
        out.push_str("\nSTORE MEMBERS\n");
        let rows: Vec<Vec<String>> = ms
            .iter()
            .map(|m| {
                let urls: Vec<String> = m["clientUrls"]
                    .as_array()
                    .map(|u| u.iter().map(s).collect())
                    .unwrap_or_default();
                vec![s(&m["name"]), urls.join(",")]
            })
            .collect();
        out.push_str(&table(&["NAME", "CLIENT URLS"], &rows));
    }
    out.push_str("\nCONTAINER INSTANCES\n");
    match v["zones"].as_array() {
        Some(zs) => {
            let rows: Vec<Vec<String>> = zs
                .iter()
                .map(|z| vec![known(&z["zone"]), s(&z["connected"]), s(&z["disconnected"])])
                .collect();
            out.push_str(&table(&["ZONE", "CONNECTED", "DISCONNECTED"], &rows));
        }
        None => out.push_str("unknown\n"),
    }
    if let Some(ws) = v["warmNetworks"].as_array().filter(|w| !w.is_empty()) {
        out.push_str("\nWARM TASK NETWORKS\n");
        let rows: Vec<Vec<String>> = ws
            .iter()
            .map(|w| {
                let addrs: Vec<String> = w["addresses"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                vec![s(&w["containerInstanceArn"]), addrs.join(",")]
            })
            .collect();
        out.push_str(&table(&["CONTAINER INSTANCE", "ADDRESSES"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_replicas_members_and_zones_and_unknowns() {
        let v = json!({
            "replica": {"id": "h1/10.0.0.1:8080", "url": "http://10.0.0.1:8080", "startedAt": 5.0},
            "leads": true,
            "leader": {"id": "h1/10.0.0.1:8080", "term": 42},
            "leaderKnown": true,
            "replicas": [
                {"id": "h1/10.0.0.1:8080", "url": "http://10.0.0.1:8080", "startedAt": 5.0, "leader": true},
                {"id": "h2/10.0.0.2:8080", "url": "http://10.0.0.2:8080", "startedAt": 6.0, "leader": false}
            ],
            "store": {"kind": "etcd", "reachable": true,
                      "members": [{"name": "e1", "clientUrls": ["http://10.0.0.1:2379"]}]},
            "zones": [{"zone": "az1", "connected": 2, "disconnected": 1},
                      {"zone": null, "connected": 1, "disconnected": 0}],
            "warmNetworks": [{"containerInstanceArn": "arn:i/.managed/a", "addresses": ["10.213.0.5", "10.213.0.6"]}]
        });
        let text = render(&v);
        let expected = "\
Leader: h1/10.0.0.1:8080 (term 42)
Answered by: h1/10.0.0.1:8080 (leads: true)
Store: etcd (reachable)

REPLICAS
ID                URL                   ROLE      STARTED
h1/10.0.0.1:8080  http://10.0.0.1:8080  leader    1970-01-01 00:00:05Z
h2/10.0.0.2:8080  http://10.0.0.2:8080  follower  1970-01-01 00:00:06Z

STORE MEMBERS
NAME  CLIENT URLS
e1    http://10.0.0.1:2379

CONTAINER INSTANCES
ZONE     CONNECTED  DISCONNECTED
az1      2          1
unknown  1          0

WARM TASK NETWORKS
CONTAINER INSTANCE  ADDRESSES
arn:i/.managed/a    10.213.0.5,10.213.0.6
";
        assert_eq!(text, expected);

        let unknown = render(&json!({"leaderKnown": false, "store": {"reachable": false}}));
        assert!(unknown.contains("Leader: unknown\n"), "{unknown}");
        assert!(unknown.contains("Answered by: unknown (leads: unknown)"));
        assert!(unknown.contains("Store: unknown (unreachable)"));
        assert!(unknown.contains("REPLICAS\nunknown\n"));
        assert!(!unknown.contains("STORE MEMBERS"));
    }
}
