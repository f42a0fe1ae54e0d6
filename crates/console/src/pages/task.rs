//! One task: its status and times, why it stopped, its containers (status, exit code, reason,
//! health, port bindings), and the last lines of each container's CloudWatch Logs stream when it
//! logs with the `awslogs` driver; and the form that stops it.

use super::{cluster_href, live_section, or_dash, service_href, stat, table, task_definition_href};
use crate::format::{clock, short_arn, task_definition_name, time};
use crate::html::{badge, esc, link, segment};
use crate::layout::{csrf_field, page, Notice, Page, Viewer};
use flotilla_model::shapes::{Container, Task};

/// One log event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// When it was written, epoch seconds.
    pub timestamp: f64,
    /// The line.
    pub message: String,
}

/// Where a container's output is, and what of it could be read.
#[derive(Debug, Clone, PartialEq)]
pub enum LogSource {
    /// The container does not log with `awslogs`: its output is not kept.
    NotKept,
    /// Its stream's last events, oldest first.
    Lines {
        /// The log group.
        group: String,
        /// The log stream.
        stream: String,
        /// The events.
        lines: Vec<LogLine>,
    },
    /// The stream could not be read (not created yet, or its owner is unreachable).
    Unavailable {
        /// The log group.
        group: String,
        /// The log stream.
        stream: String,
        /// The error GetLogEvents answered.
        message: String,
    },
}

/// A container's logs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerLogs {
    /// The container's name.
    pub container: String,
    /// Its output.
    pub source: LogSource,
}

/// What the task page shows.
#[derive(Debug, Clone, Copy)]
pub struct TaskView<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// DescribeTasks.
    pub task: &'a Task,
    /// Each container's logs, in the task definition's order.
    pub logs: &'a [ContainerLogs],
}

fn summary(cluster: &str, t: &Task) -> String {
    let td = t.task_definition_arn.as_deref().unwrap_or_default();
    let group = match t.group.as_deref() {
        Some(g) => match g.strip_prefix("service:") {
            Some(svc) => link(&service_href(cluster, svc), g),
            None => esc(g),
        },
        None => "-".to_string(),
    };
    format!(
        "<div class=\"cards\"><div class=\"card\"><h3 id=\"task-status\">{last}</h3>{desired}{stop_code}<div class=\"stat\"><span>Stopped reason</span></div><div id=\"stopped-reason\">{reason}</div></div><div class=\"card\">{td}{group}{lt}{inst}{res}</div><div class=\"card\">{created}{started}{stopping}{stopped}</div></div>",
        last = badge(t.last_status.as_deref().unwrap_or("UNKNOWN")),
        desired = stat("Desired status", &or_dash(t.desired_status.as_deref())),
        stop_code = stat("Stop code", &or_dash(t.stop_code.as_ref().map(|c| c.as_str()))),
        reason = or_dash(t.stopped_reason.as_deref()),
        td = stat(
            "Task definition",
            &link(&task_definition_href(td), task_definition_name(td))
        ),
        group = stat("Group", &group),
        lt = stat(
            "Launch type",
            &or_dash(t.launch_type.as_ref().map(|l| l.as_str()))
        ),
        inst = stat(
            "Container instance",
            &or_dash(t.container_instance_arn.as_deref().map(short_arn))
        ),
        res = stat(
            "CPU / memory",
            &format!(
                "{} / {}",
                or_dash(t.cpu.as_deref()),
                or_dash(t.memory.as_deref())
            )
        ),
        created = stat("Created", &esc(&time(t.created_at))),
        started = stat("Started", &esc(&time(t.started_at))),
        stopping = stat("Stopping", &esc(&time(t.stopping_at))),
        stopped = stat("Stopped", &esc(&time(t.stopped_at))),
    )
}

fn bindings(c: &Container) -> String {
    let b: Vec<String> = c
        .network_bindings
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|b| {
            format!(
                "{}:{}→{}",
                esc(b.bind_ip.as_deref().unwrap_or("0.0.0.0")),
                b.host_port.map(|p| p.to_string()).unwrap_or_default(),
                b.container_port.map(|p| p.to_string()).unwrap_or_default()
            )
        })
        .collect();
    if b.is_empty() {
        "-".to_string()
    } else {
        b.join("<br>")
    }
}

fn containers(t: &Task) -> String {
    let rows: Vec<String> = t
        .containers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(c.name.as_deref().unwrap_or_default()),
                esc(c.image.as_deref().unwrap_or_default()),
                badge(c.last_status.as_deref().unwrap_or("UNKNOWN")),
                c.exit_code.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                or_dash(c.reason.as_deref()),
                or_dash(c.health_status.as_ref().map(|h| h.as_str())),
                bindings(c),
                or_dash(c.runtime_id.as_deref().map(|r| r.get(..12).unwrap_or(r))),
            )
        })
        .collect();
    table(
        "containers-table",
        &[
            "Container",
            "Image",
            "Status",
            "Exit code",
            "Reason",
            "Health",
            "Ports",
            "Docker id",
        ],
        &rows,
        "No containers.",
    )
}

fn logs(all: &[ContainerLogs]) -> String {
    if all.is_empty() {
        return "<p class=\"empty\">No containers.</p>".to_string();
    }
    all.iter()
        .map(|l| {
            let name = esc(&l.container);
            match &l.source {
                LogSource::NotKept => format!(
                    "<h3>{name}</h3><p class=\"empty\">This container does not log with the awslogs driver: its output is not kept.</p>"
                ),
                LogSource::Lines { group, stream, lines } => {
                    let text: String = lines
                        .iter()
                        .map(|e| format!("<span class=\"muted\">{}</span> {}\n", clock(e.timestamp), esc(&e.message)))
                        .collect();
                    let text = if text.is_empty() { "<span class=\"muted\">(no events yet)</span>".to_string() } else { text };
                    format!(
                        "<h3>{name}</h3><p class=\"muted\">{} / {}</p><pre class=\"logs\" id=\"logs-{}\">{text}</pre>",
                        esc(group),
                        esc(stream),
                        esc(&segment(&l.container)),
                    )
                }
                LogSource::Unavailable { group, stream, message } => format!(
                    "<h3>{name}</h3><p class=\"muted\">{} / {}</p><p class=\"empty\">{}</p>",
                    esc(group),
                    esc(stream),
                    esc(message)
                ),
            }
        })
        .collect()
}

fn stop_form(viewer: &Viewer, cluster: &str, t: &Task) -> String {
    if t.desired_status.as_deref() == Some("STOPPED") {
        return String::new();
    }
    let id = short_arn(t.task_arn.as_deref().unwrap_or_default());
    format!(
        "<section><form class=\"inline\" method=\"post\" action=\"/console/clusters/{}/tasks/{}/stop\" id=\"stop-task\">{}<button class=\"danger\" type=\"submit\" id=\"stop-task-submit\">Stop task</button></form></section>",
        esc(&segment(cluster)),
        esc(&segment(id)),
        csrf_field(viewer)
    )
}

/// The task page.
pub fn render(viewer: &Viewer, v: &TaskView<'_>, notice: Option<Notice>) -> String {
    let id = short_arn(v.task.task_arn.as_deref().unwrap_or_default());
    let body = [
        live_section("summary", "Summary", &summary(v.cluster, v.task)),
        stop_form(viewer, v.cluster, v.task),
        live_section("containers", "Containers", &containers(v.task)),
        live_section("logs", "Logs", &logs(v.logs)),
    ]
    .concat();
    page(
        viewer,
        Page {
            title: &format!("Task {id}"),
            crumbs: vec![
                ("/console/clusters".into(), "Clusters".into()),
                (cluster_href(v.cluster), v.cluster.to_string()),
                (super::task_href(v.cluster, id), id.to_string()),
            ],
            body,
            notice,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_model::shapes::{NetworkBinding, TaskStopCode};

    fn viewer() -> Viewer {
        Viewer {
            access_key_id: "AKID".into(),
            csrf: "tok".into(),
        }
    }

    fn task(desired: &str) -> Task {
        Task {
            task_arn: Some("arn:aws:ecs:us-east-1:0:task/prod/abc".into()),
            last_status: Some("STOPPED".into()),
            desired_status: Some(desired.into()),
            group: Some("service:web".into()),
            stop_code: Some(TaskStopCode::EssentialContainerExited),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: Some(vec![Container {
                name: Some("main".into()),
                image: Some("busybox".into()),
                last_status: Some("STOPPED".into()),
                exit_code: Some(137),
                runtime_id: Some("0123456789abcdef".into()),
                network_bindings: Some(vec![NetworkBinding {
                    bind_ip: Some("0.0.0.0".into()),
                    host_port: Some(32768),
                    container_port: Some(80),
                    ..Default::default()
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn html(t: &Task, logs: &[ContainerLogs]) -> String {
        render(
            &viewer(),
            &TaskView {
                cluster: "prod",
                task: t,
                logs,
            },
            None,
        )
    }

    #[test]
    fn a_stopped_task_shows_why_and_offers_no_stop() {
        let h = html(&task("STOPPED"), &[]);
        assert!(h.contains("<h1>Task abc</h1>"));
        assert!(h.contains("EssentialContainerExited"));
        assert!(h.contains("<div id=\"stopped-reason\">Essential container in task exited</div>"));
        assert!(h.contains("href=\"/console/clusters/prod/services/web\""));
        assert!(h.contains("<td class=\"num\">137</td>"));
        assert!(h.contains("0.0.0.0:32768→80"));
        assert!(h.contains("<td>0123456789ab</td>"));
        assert!(!h.contains("id=\"stop-task\""));
    }

    #[test]
    fn a_running_task_can_be_stopped() {
        let h = html(&task("RUNNING"), &[]);
        assert!(h.contains("action=\"/console/clusters/prod/tasks/abc/stop\""));
        assert!(h.contains("name=\"csrf\" value=\"tok\""));
    }

    #[test]
    fn log_lines_are_escaped_and_each_source_explained() {
        let logs = [
            ContainerLogs {
                container: "main".into(),
                source: LogSource::Lines {
                    group: "/ecs/web".into(),
                    stream: "app/main/abc".into(),
                    lines: vec![LogLine {
                        timestamp: 3600.0,
                        message: "<script>alert(1)</script>".into(),
                    }],
                },
            },
            ContainerLogs {
                container: "side".into(),
                source: LogSource::NotKept,
            },
            ContainerLogs {
                container: "third".into(),
                source: LogSource::Unavailable {
                    group: "g".into(),
                    stream: "s".into(),
                    message: "The specified log stream does not exist.".into(),
                },
            },
        ];
        let h = html(&task("RUNNING"), &logs);
        assert!(h.contains("/ecs/web / app/main/abc"));
        assert!(h.contains("01:00:00</span> &lt;script&gt;alert(1)&lt;/script&gt;\n"));
        assert!(!h.contains("<script>alert"));
        assert!(h.contains("does not log with the awslogs driver"));
        assert!(h.contains("The specified log stream does not exist."));
    }
}
