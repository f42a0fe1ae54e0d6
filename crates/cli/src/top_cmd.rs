//! `flotilla top`: utilization, live. It reads the `/metrics` of every replica named by
//! `--endpoint` (the `AWS/ECS` figures, CPUUtilization and MemoryUtilization per cluster and
//! service, are the region's on every replica; task and container instance figures come from
//! the replica that holds the agent's session, so name every replica to see every task) and
//! redraws the tables every `--interval` seconds until interrupted; `--once` or `--output json`
//! prints one snapshot.

use crate::client::EndpointArgs;
use crate::verbs::{table, Output};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

/// `flotilla top` flags.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this service (its tasks are listed).
    #[arg(long)]
    service: Option<String>,
    /// Seconds between redraws.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// Print one snapshot and exit.
    #[arg(long)]
    once: bool,
    /// `table` for people, `json` for scripts (one snapshot).
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// One sample line of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of `text` whose name is in `names` (comments and other metrics skipped).
pub fn parse(text: &str, names: &[&str]) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        if !names.contains(&name) {
            continue;
        }
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        out.push(Sample {
            name: name.to_string(),
            labels: parse_labels(labels),
            value,
        });
    }
    out
}

/// `a="x",b="y"` (values with `\"` and `\\` escapes) as a map.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    out
}

/// CPU and memory percent (either unknown).
pub type Figures = (Option<f64>, Option<f64>);

/// What `top` shows: rows of services (and clusters), tasks and container instances.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    /// (cluster, service or "") -> metric name -> percent.
    pub services: BTreeMap<(String, String), BTreeMap<String, f64>>,
    /// (cluster, service, task) -> (cpu %, memory %).
    pub tasks: BTreeMap<(String, String, String), Figures>,
    /// (cluster, instance) -> (cpu %, memory %).
    pub instances: BTreeMap<(String, String), Figures>,
}

const ECS: &str = "flotilla_ecs_utilization_percent";
const TASK_CPU: &str = "flotilla_task_cpu_utilization_percent";
const TASK_MEM: &str = "flotilla_task_memory_utilization_percent";
const INST_CPU: &str = "flotilla_container_instance_cpu_utilization_percent";
const INST_MEM: &str = "flotilla_container_instance_memory_utilization_percent";

impl Snapshot {
    /// Adds one replica's `/metrics` text, keeping what `cluster` and `service` select.
    pub fn add(&mut self, text: &str, cluster: Option<&str>, service: Option<&str>) {
        let l = |s: &Sample, k: &str| s.labels.get(k).cloned().unwrap_or_default();
        for s in parse(text, &[ECS, TASK_CPU, TASK_MEM, INST_CPU, INST_MEM]) {
            let c = l(&s, "cluster");
            if cluster.is_some_and(|x| x != c) {
                continue;
            }
            let svc = l(&s, "service");
            let by_service = service.is_none_or(|x| x == svc);
            match s.name.as_str() {
                ECS if by_service || svc.is_empty() => {
                    self.services
                        .entry((c, svc))
                        .or_default()
                        .insert(l(&s, "metric"), s.value);
                }
                TASK_CPU | TASK_MEM if by_service => {
                    let e = self.tasks.entry((c, svc, l(&s, "task"))).or_default();
                    if s.name == TASK_CPU {
                        e.0 = Some(s.value);
                    } else {
                        e.1 = Some(s.value);
                    }
                }
                INST_CPU | INST_MEM if service.is_none() => {
                    let e = self
                        .instances
                        .entry((c, l(&s, "container_instance")))
                        .or_default();
                    if s.name == INST_CPU {
                        e.0 = Some(s.value);
                    } else {
                        e.1 = Some(s.value);
                    }
                }
                _ => {}
            }
        }
    }

    /// The snapshot as tables for people.
    pub fn render(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let rows: Vec<Vec<String>> = self
            .services
            .iter()
            .map(|((c, s), m)| {
                vec![
                    c.clone(),
                    if s.is_empty() {
                        "(cluster)".into()
                    } else {
                        s.clone()
                    },
                    pct(m.get("CPUUtilization").copied()),
                    pct(m.get("MemoryUtilization").copied()),
                    pct(m.get("CPUReservation").copied()),
                    pct(m.get("MemoryReservation").copied()),
                ]
            })
            .collect();
        let mut out = table(
            &[
                "CLUSTER",
                "SERVICE",
                "CPU%",
                "MEMORY%",
                "CPU-RESERVED%",
                "MEMORY-RESERVED%",
            ],
            &rows,
        );
        if !self.tasks.is_empty() {
            let rows: Vec<Vec<String>> = self
                .tasks
                .iter()
                .map(|((c, s, t), (cpu, mem))| {
                    vec![
                        c.clone(),
                        if s.is_empty() { "-".into() } else { s.clone() },
                        t.clone(),
                        pct(*cpu),
                        pct(*mem),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(
                &["CLUSTER", "SERVICE", "TASK", "CPU%", "MEMORY%"],
                &rows,
            ));
        }
        if !self.instances.is_empty() {
            let rows: Vec<Vec<String>> = self
                .instances
                .iter()
                .map(|((c, i), (cpu, mem))| vec![c.clone(), i.clone(), pct(*cpu), pct(*mem)])
                .collect();
            out.push('\n');
            out.push_str(&table(
                &["CLUSTER", "CONTAINER-INSTANCE", "CPU%", "MEMORY%"],
                &rows,
            ));
        }
        out
    }

    /// The snapshot as JSON for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "services": self.services.iter().map(|((c, s), m)| json!({
                "cluster": c, "service": if s.is_empty() { None } else { Some(s) }, "percent": m,
            })).collect::<Vec<_>>(),
            "tasks": self.tasks.iter().map(|((c, s, t), (cpu, mem))| json!({
                "cluster": c, "service": if s.is_empty() { None } else { Some(s) }, "task": t,
                "cpuPercent": cpu, "memoryPercent": mem,
            })).collect::<Vec<_>>(),
            "containerInstances": self.instances.iter().map(|((c, i), (cpu, mem))| json!({
                "cluster": c, "containerInstance": i, "cpuPercent": cpu, "memoryPercent": mem,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Runs `flotilla top`.
pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    let live = !args.once && args.output == Output::Table;
    loop {
        let mut snap = Snapshot::default();
        let mut failures = Vec::new();
        let texts = client.metrics_texts().await;
        let answered = texts.iter().filter(|(_, t)| t.is_ok()).count();
        for (endpoint, text) in texts {
            match text {
                Ok(t) => snap.add(&t, args.cluster.as_deref(), args.service.as_deref()),
                Err(e) => failures.push(format!("{endpoint}: {e:#}")),
            }
        }
        if answered == 0 {
            anyhow::bail!("no replica answered: {}", failures.join("; "));
        }
        match args.output {
            Output::Json => {
                println!("{}", serde_json::to_string_pretty(&snap.to_json())?);
                return Ok(());
            }
            Output::Table => {
                if live && std::io::stdout().is_terminal() {
                    print!("\x1b[2J\x1b[H");
                }
                print!("{}", snap.render());
                for f in &failures {
                    println!("(not answered: {f})");
                }
                if !live {
                    return Ok(());
                }
                println!("(every {} s; Ctrl-C to stop)", args.interval);
            }
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP flotilla_ecs_utilization_percent x
# TYPE flotilla_ecs_utilization_percent gauge
flotilla_ecs_utilization_percent{cluster="c1",service="web",metric="CPUUtilization"} 42.5
flotilla_ecs_utilization_percent{cluster="c1",service="",metric="CPUReservation"} 50.0
flotilla_ecs_utilization_percent{cluster="c2",service="db",metric="CPUUtilization"} 7.0
flotilla_task_cpu_utilization_percent{cluster="c1",service="web",task="t1"} 40.0
flotilla_task_memory_utilization_percent{cluster="c1",service="web",task="t1"} 10.0
flotilla_container_instance_cpu_utilization_percent{cluster="c1",container_instance="i1"} 20.0
flotilla_api_requests_total{operation="RunTask",outcome="ok"} 3
"#;

    #[test]
    fn samples_are_read_with_their_labels() {
        let got = parse(TEXT, &[TASK_CPU]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels["task"], "t1");
        assert_eq!(got[0].value, 40.0);
        let escaped = parse_labels(r#"a="x\"y",b="z""#);
        assert_eq!(escaped["a"], "x\"y");
        assert_eq!(escaped["b"], "z");
    }

    #[test]
    fn a_snapshot_keeps_what_the_flags_select() {
        let mut all = Snapshot::default();
        all.add(TEXT, None, None);
        assert_eq!(all.services.len(), 3);
        assert_eq!(
            all.tasks[&("c1".into(), "web".into(), "t1".into())],
            (Some(40.0), Some(10.0))
        );
        assert_eq!(
            all.instances[&("c1".into(), "i1".into())],
            (Some(20.0), None)
        );
        let mut one = Snapshot::default();
        one.add(TEXT, Some("c1"), Some("web"));
        // The service's row and its cluster's, its tasks; no instances.
        assert_eq!(one.services.len(), 2);
        assert!(one.instances.is_empty());
        assert!(one.render().contains("42.5"));
        assert_eq!(one.to_json()["tasks"][0]["cpuPercent"], 40.0);
    }
}
