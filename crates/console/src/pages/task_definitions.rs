//! Task definitions: the list of active revisions by family, and one revision with its
//! containers and its whole JSON as DescribeTaskDefinition answers it (a secret appears only as
//! its reference, `valueFrom`: the API never answers a secret's value).

use super::{live_section, or_dash, table, task_definition_href};
use crate::format::{task_definition_name, time};
use crate::html::{badge, esc, link};
use crate::layout::{page, Page, Viewer};
use flotilla_model::shapes::TaskDefinition;
use std::collections::BTreeMap;

/// The list page: `arns` are the active task definitions (any order).
pub fn render_list(viewer: &Viewer, arns: &[String]) -> String {
    let mut families: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for arn in arns {
        let name = task_definition_name(arn);
        let (family, rev) = name.rsplit_once(':').unwrap_or((name, "0"));
        families
            .entry(family)
            .or_default()
            .push((rev.parse().unwrap_or(0), name));
    }
    let rows: Vec<String> = families
        .iter_mut()
        .map(|(family, revs)| {
            revs.sort_by_key(|r| std::cmp::Reverse(r.0));
            let links: Vec<String> = revs
                .iter()
                .map(|(rev, name)| link(&task_definition_href(name), &rev.to_string()))
                .collect();
            format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(family),
                links.join(" · ")
            )
        })
        .collect();
    let body = live_section(
        "task-definitions",
        "Active task definitions",
        &table(
            "task-definitions-table",
            &["Family", "Revisions (newest first)"],
            &rows,
            "No task definitions registered.",
        ),
    );
    page(
        viewer,
        Page {
            title: "Task definitions",
            crumbs: vec![(
                "/console/task-definitions".into(),
                "Task definitions".into(),
            )],
            body,
            notice: None,
        },
    )
}

fn containers(td: &TaskDefinition) -> String {
    let rows: Vec<String> = td
        .container_definitions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let secrets: Vec<String> = c
                .secrets
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|s| format!("{} ← {}", esc(&s.name), esc(&s.value_from)))
                .collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(c.name.as_deref().unwrap_or_default()),
                esc(c.image.as_deref().unwrap_or_default()),
                c.cpu,
                c.memory
                    .or(c.memory_reservation)
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                or_dash(c.log_configuration.as_ref().map(|l| l.log_driver.as_str())),
                if secrets.is_empty() { "-".to_string() } else { secrets.join("<br>") },
            )
        })
        .collect();
    table(
        "containers-table",
        &[
            "Container",
            "Image",
            "CPU",
            "Memory MiB",
            "Log driver",
            "Secrets (references)",
        ],
        &rows,
        "No containers.",
    )
}

/// One task definition: `json` is DescribeTaskDefinition's `taskDefinition` as answered.
pub fn render_one(viewer: &Viewer, td: &TaskDefinition, json: &serde_json::Value) -> String {
    let name = format!(
        "{}:{}",
        td.family.as_deref().unwrap_or_default(),
        td.revision
    );
    let pretty = serde_json::to_string_pretty(json).unwrap_or_default();
    let body = format!(
        "<div class=\"cards\"><div class=\"card\"><h3>{status}</h3><div class=\"stat\"><span>Registered</span><b>{registered}</b></div><div class=\"stat\"><span>Network mode</span><b>{mode}</b></div><div class=\"stat\"><span>CPU / memory</span><b>{cpu} / {mem}</b></div></div></div><section><h2>Containers</h2>{containers}</section><section><h2>JSON</h2><pre id=\"task-definition-json\">{json}</pre></section>",
        status = badge(td.status.as_ref().map(|s| s.as_str()).unwrap_or("UNKNOWN")),
        registered = esc(&time(td.registered_at)),
        mode = or_dash(td.network_mode.as_ref().map(|m| m.as_str())),
        cpu = or_dash(td.cpu.as_deref()),
        mem = or_dash(td.memory.as_deref()),
        containers = containers(td),
        json = esc(&pretty),
    );
    page(
        viewer,
        Page {
            title: &name,
            crumbs: vec![
                (
                    "/console/task-definitions".into(),
                    "Task definitions".into(),
                ),
                (task_definition_href(&name), name.clone()),
            ],
            body,
            notice: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn viewer() -> Viewer {
        Viewer {
            access_key_id: "AKID".into(),
            csrf: "tok".into(),
        }
    }

    #[test]
    fn revisions_are_grouped_by_family_newest_first() {
        let arns: Vec<String> = ["web:1", "web:10", "web:2", "db:1"]
            .iter()
            .map(|n| format!("arn:aws:ecs:us-east-1:0:task-definition/{n}"))
            .collect();
        let h = render_list(&viewer(), &arns);
        let db = h.find("<td>db</td>").unwrap();
        let web = h.find("<td>web</td>").unwrap();
        assert!(db < web);
        let ten = h.find(">10</a>").unwrap();
        let two = h.find(">2</a>").unwrap();
        let one = h.rfind(">1</a>").unwrap();
        assert!(ten < two && two < one);
    }

    #[test]
    fn a_task_definition_shows_its_json_and_only_secret_references() {
        let json = json!({
            "family": "web", "revision": 3, "status": "ACTIVE",
            "containerDefinitions": [{
                "name": "main", "image": "busybox", "cpu": 0, "memory": 64,
                "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:0:secret:db"}],
                "environment": [{"name": "GREETING", "value": "<hello>"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}}
            }]
        });
        let td: TaskDefinition = serde_json::from_value(json.clone()).unwrap();
        let h = render_one(&viewer(), &td, &json);
        assert!(h.contains("<h1>web:3</h1>"));
        assert!(h.contains("DB_PASSWORD ← arn:aws:secretsmanager:us-east-1:0:secret:db"));
        assert!(h.contains("&quot;valueFrom&quot;: &quot;arn:aws:secretsmanager"));
        assert!(h.contains("&lt;hello&gt;"));
        assert!(h.contains("<td>awslogs</td>"));
        assert!(h.contains("<td class=\"num\">64</td>"));
    }
}
