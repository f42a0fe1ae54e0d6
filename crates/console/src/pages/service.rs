//! One service: its counts, the rollout of each deployment (running and pending against desired,
//! the rollout state and why), its utilization, tasks and events, and the form that changes
//! its desired count.

use super::cluster::tasks_table;
use super::{
    bar, live_section, or_dash, stat, table, task_definition_href, utilization, Utilization,
};
use crate::format::{task_definition_name, time};
use crate::html::{badge, esc, link, segment};
use crate::layout::{csrf_field, page, Notice, Page, Viewer};
use flotilla_model::shapes::{Deployment, Service, Task};

/// How many events the page shows (the newest).
pub const EVENTS_SHOWN: usize = 25;

/// What the service page shows.
#[derive(Debug, Clone, Copy)]
pub struct ServiceView<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// DescribeServices.
    pub service: &'a Service,
    /// DescribeTasks of its tasks.
    pub tasks: &'a [Task],
    /// Its CPU and memory utilization.
    pub utilization: &'a Utilization,
}

fn summary(s: &Service) -> String {
    let td = s.task_definition.as_deref().unwrap_or_default();
    format!(
        "<div class=\"cards\"><div class=\"card\"><h3>{status}</h3>{d}{r}{p}{bar}</div><div class=\"card\">{td}{lt}{created}</div></div>",
        status = badge(s.status.as_deref().unwrap_or("UNKNOWN")),
        d = stat("Desired", &s.desired_count.to_string()),
        r = stat("Running", &format!("<span id=\"running-count\">{}</span>", s.running_count)),
        p = stat("Pending", &s.pending_count.to_string()),
        bar = bar(i64::from(s.running_count), i64::from(s.desired_count)),
        td = stat(
            "Task definition",
            &link(&task_definition_href(td), task_definition_name(td))
        ),
        lt = stat(
            "Launch type",
            &or_dash(s.launch_type.as_ref().map(|l| l.as_str()))
        ),
        created = stat("Created", &esc(&time(s.created_at))),
    )
}

/// The rollout of one deployment: a bar of running (solid) and pending (light) tasks against
/// the desired count.
fn rollout_bar(d: &Deployment) -> String {
    let desired = f64::from(
        d.desired_count
            .max(d.running_count + d.pending_count)
            .max(1),
    );
    let run = f64::from(d.running_count) * 100.0 / desired;
    let pend = f64::from(d.pending_count) * 100.0 / desired;
    format!(
        "<div class=\"bar\" style=\"display:flex\" title=\"{} running, {} pending of {} desired\"><span style=\"width:{run:.1}%\"></span><span style=\"width:{pend:.1}%;background:#fbbf24\"></span></div>",
        d.running_count, d.pending_count, d.desired_count
    )
}

fn deployments(s: &Service) -> String {
    let rows: Vec<String> = s
        .deployments
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let td = d.task_definition.as_deref().unwrap_or_default();
            format!(
                "<tr><td>{id}</td><td>{status}</td><td>{td}</td><td class=\"num\">{desired}</td><td class=\"num\">{pending}</td><td class=\"num\">{running}</td><td class=\"num\">{failed}</td><td>{rollout}{bar}<div class=\"muted\">{reason}</div></td><td>{updated}</td></tr>",
                id = esc(d.id.as_deref().unwrap_or_default()),
                status = badge(d.status.as_deref().unwrap_or("UNKNOWN")),
                td = link(&task_definition_href(td), task_definition_name(td)),
                desired = d.desired_count,
                pending = d.pending_count,
                running = d.running_count,
                failed = d.failed_tasks,
                rollout = d.rollout_state.as_ref().map(|r| badge(r.as_str())).unwrap_or_else(|| "-".into()),
                bar = rollout_bar(d),
                reason = esc(d.rollout_state_reason.as_deref().unwrap_or_default()),
                updated = esc(&time(d.updated_at)),
            )
        })
        .collect();
    table(
        "deployments-table",
        &[
            "Deployment",
            "Status",
            "Task definition",
            "Desired",
            "Pending",
            "Running",
            "Failed",
            "Rollout",
            "Updated",
        ],
        &rows,
        "No deployments.",
    )
}

fn events(s: &Service) -> String {
    let rows: Vec<String> = s
        .events
        .as_deref()
        .unwrap_or_default()
        .iter()
        .take(EVENTS_SHOWN)
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&time(e.created_at)),
                esc(e.message.as_deref().unwrap_or_default())
            )
        })
        .collect();
    table("events-table", &["Time", "Event"], &rows, "No events yet.")
}

fn desired_count_form(viewer: &Viewer, cluster: &str, s: &Service) -> String {
    let name = s.service_name.as_deref().unwrap_or_default();
    format!(
        "<section><h2>Desired count</h2><form class=\"inline\" method=\"post\" action=\"/console/clusters/{c}/services/{n}/desired-count\" id=\"desired-count\">{csrf}<label>Tasks<input name=\"desiredCount\" id=\"desiredCount\" type=\"number\" min=\"0\" value=\"{d}\" required></label><button type=\"submit\" id=\"desired-count-submit\">Update</button></form></section>",
        c = esc(&segment(cluster)),
        n = esc(&segment(name)),
        csrf = csrf_field(viewer),
        d = s.desired_count,
    )
}

/// The service page.
pub fn render(viewer: &Viewer, v: &ServiceView<'_>, notice: Option<Notice>) -> String {
    let name = v.service.service_name.as_deref().unwrap_or_default();
    let body = [
        live_section("summary", "Summary", &summary(v.service)),
        desired_count_form(viewer, v.cluster, v.service),
        live_section("deployments", "Deployments", &deployments(v.service)),
        live_section(
            "utilization",
            "Utilization (average of the service's tasks)",
            &utilization(
                &format!("CPU and memory utilization of service {name}"),
                v.utilization,
            ),
        ),
        live_section("tasks", "Tasks", &tasks_table(v.cluster, v.tasks)),
        live_section("events", "Events", &events(v.service)),
    ]
    .concat();
    page(
        viewer,
        Page {
            title: name,
            crumbs: vec![
                ("/console/clusters".into(), "Clusters".into()),
                (super::cluster_href(v.cluster), v.cluster.to_string()),
                (super::service_href(v.cluster, name), name.to_string()),
            ],
            body,
            notice,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::Series;
    use flotilla_model::shapes::{DeploymentRolloutState, ServiceEvent};

    fn viewer() -> Viewer {
        Viewer {
            access_key_id: "AKID".into(),
            csrf: "tok".into(),
        }
    }

    fn service() -> Service {
        Service {
            service_name: Some("web".into()),
            status: Some("ACTIVE".into()),
            desired_count: 4,
            running_count: 2,
            pending_count: 1,
            deployments: Some(vec![
                Deployment {
                    id: Some("ecs-svc/1".into()),
                    status: Some("PRIMARY".into()),
                    task_definition: Some("arn:aws:ecs:us-east-1:0:task-definition/web:2".into()),
                    desired_count: 4,
                    running_count: 1,
                    pending_count: 1,
                    rollout_state: Some(DeploymentRolloutState::InProgress),
                    rollout_state_reason: Some("ECS deployment ecs-svc/1 in progress.".into()),
                    ..Default::default()
                },
                Deployment {
                    id: Some("ecs-svc/0".into()),
                    status: Some("ACTIVE".into()),
                    desired_count: 1,
                    running_count: 1,
                    rollout_state: Some(DeploymentRolloutState::Completed),
                    ..Default::default()
                },
            ]),
            events: Some(
                (0..40)
                    .map(|i| ServiceEvent {
                        id: Some(i.to_string()),
                        created_at: Some(f64::from(i)),
                        message: Some(format!("(service web) event <{i}>")),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn html(u: &Utilization) -> String {
        render(
            &viewer(),
            &ServiceView {
                cluster: "prod",
                service: &service(),
                tasks: &[],
                utilization: u,
            },
            None,
        )
    }

    #[test]
    fn each_deployment_shows_its_rollout() {
        let h = html(&Utilization::Unavailable("x".into()));
        assert!(h.contains("ecs-svc/1"));
        assert!(h.contains("<span class=\"badge busy\">IN_PROGRESS</span>"));
        assert!(h.contains("<span class=\"badge ok\">COMPLETED</span>"));
        assert!(h.contains("ECS deployment ecs-svc/1 in progress."));
        // 1 running and 1 pending of 4: a quarter solid, a quarter light.
        assert!(h.contains("title=\"1 running, 1 pending of 4 desired\"><span style=\"width:25.0%\"></span><span style=\"width:25.0%;background:#fbbf24\">"));
        assert!(h.contains("<span id=\"running-count\">2</span>"));
    }

    #[test]
    fn events_are_capped_and_escaped() {
        let h = html(&Utilization::Unavailable("x".into()));
        assert!(h.contains("event &lt;0&gt;"));
        assert!(h.contains("event &lt;24&gt;"));
        assert!(!h.contains("event &lt;25&gt;"));
    }

    #[test]
    fn the_desired_count_form_posts_to_the_service() {
        let h = html(&Utilization::Unavailable("x".into()));
        assert!(h.contains("action=\"/console/clusters/prod/services/web/desired-count\""));
        assert!(h.contains(
            "name=\"desiredCount\" id=\"desiredCount\" type=\"number\" min=\"0\" value=\"4\""
        ));
        assert!(h.contains("name=\"csrf\" value=\"tok\""));
    }

    #[test]
    fn utilization_is_drawn_when_there_is_data() {
        let u = Utilization::Series {
            start: 0.0,
            end: 600.0,
            series: vec![
                Series {
                    label: "CPU".into(),
                    points: vec![(60.0, 40.0), (120.0, 60.0)],
                },
                Series {
                    label: "Memory".into(),
                    points: vec![],
                },
            ],
        };
        let h = html(&u);
        assert!(h.contains("<svg class=\"chart\""));
        assert!(h.contains(">CPU 60.0%</text>"));
    }
}
