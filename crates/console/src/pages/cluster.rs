//! One cluster: its capacity, utilization, services (with the primary deployment's rollout
//! state), tasks and container instances (with their remaining resources), and the form that
//! creates a service.

use super::clusters::capacity_card;
use super::{
    live_section, or_dash, service_href, table, task_definition_href, task_href, utilization,
    Utilization,
};
use crate::capacity::{of_cluster, of_instance};
use crate::format::{short_arn, task_definition_name, time};
use crate::forms::Fields;
use crate::html::{badge, esc, link};
use crate::layout::{csrf_field, page, Notice, Page, Viewer};
use flotilla_model::shapes::{Cluster, ContainerInstance, Service, Task};

/// What the cluster page shows.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    /// DescribeClusters.
    pub cluster: &'a Cluster,
    /// DescribeServices of its services.
    pub services: &'a [Service],
    /// DescribeTasks of its tasks.
    pub tasks: &'a [Task],
    /// DescribeContainerInstances of its instances.
    pub instances: &'a [ContainerInstance],
    /// The task definitions a new service may use (`family:revision`, newest first).
    pub task_definitions: &'a [String],
    /// The cluster's CPU and memory utilization.
    pub utilization: &'a Utilization,
    /// What the create-service form held when it was refused (empty otherwise).
    pub form: &'a Fields,
}

/// The primary deployment's rollout state of a service, if it has one.
pub fn rollout_state(s: &Service) -> Option<&'static str> {
    s.deployments
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|d| d.status.as_deref() == Some("PRIMARY"))
        .and_then(|d| d.rollout_state.as_ref())
        .map(|r| r.as_str())
}

fn services_table(cluster: &str, services: &[Service]) -> String {
    let rows: Vec<String> = services
        .iter()
        .map(|s| {
            let name = s.service_name.as_deref().unwrap_or_default();
            let td = s.task_definition.as_deref().unwrap_or_default();
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                link(&service_href(cluster, name), name),
                badge(s.status.as_deref().unwrap_or("UNKNOWN")),
                s.desired_count,
                s.running_count,
                s.pending_count,
                rollout_state(s).map(badge).unwrap_or_else(|| "-".into()),
                link(&task_definition_href(td), task_definition_name(td)),
                or_dash(s.launch_type.as_ref().map(|l| l.as_str())),
            )
        })
        .collect();
    table(
        "services-table",
        &[
            "Service",
            "Status",
            "Desired",
            "Running",
            "Pending",
            "Rollout",
            "Task definition",
            "Launch type",
        ],
        &rows,
        "No services in this cluster.",
    )
}

/// The tasks table (the cluster's and a service's pages).
pub fn tasks_table(cluster: &str, tasks: &[Task]) -> String {
    let rows: Vec<String> = tasks
        .iter()
        .map(|t| {
            let arn = t.task_arn.as_deref().unwrap_or_default();
            let td = t.task_definition_arn.as_deref().unwrap_or_default();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                link(&task_href(cluster, arn), short_arn(arn)),
                badge(t.last_status.as_deref().unwrap_or("UNKNOWN")),
                or_dash(t.desired_status.as_deref()),
                or_dash(t.group.as_deref()),
                link(&task_definition_href(td), task_definition_name(td)),
                esc(&time(t.started_at)),
                or_dash(t.stopped_reason.as_deref()),
            )
        })
        .collect();
    table(
        "tasks-table",
        &[
            "Task",
            "Last status",
            "Desired",
            "Group",
            "Task definition",
            "Started",
            "Stopped reason",
        ],
        &rows,
        "No tasks.",
    )
}

fn instances_table(instances: &[ContainerInstance]) -> String {
    let rows: Vec<String> = instances
        .iter()
        .map(|i| {
            let c = of_instance(i);
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(short_arn(i.container_instance_arn.as_deref().unwrap_or_default())),
                or_dash(i.ec2_instance_id.as_deref()),
                badge(i.status.as_deref().unwrap_or("UNKNOWN")),
                if i.agent_connected { badge("CONNECTED") } else { badge("DISCONNECTED") },
                c.cpu_remaining,
                c.cpu_registered,
                c.memory_remaining,
                c.memory_registered,
                i.running_tasks_count,
                i.pending_tasks_count,
            )
        })
        .collect();
    table(
        "instances-table",
        &[
            "Container instance",
            "Host",
            "Status",
            "Agent",
            "CPU remaining / registered",
            "Memory MiB remaining / registered",
            "Running",
            "Pending",
        ],
        &rows,
        "No container instances registered: start `flotilla agent --cluster NAME` on a host.",
    )
}

fn create_service_form(viewer: &Viewer, cluster: &str, v: &ClusterView<'_>) -> String {
    let value = |k: &str| esc(v.form.get(k).map(String::as_str).unwrap_or_default());
    let chosen = v.form.get("taskDefinition");
    let options: String = v
        .task_definitions
        .iter()
        .map(|td| {
            let selected = if chosen == Some(td) { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", esc(td))
        })
        .collect();
    let desired = v
        .form
        .get("desiredCount")
        .map(|d| esc(d))
        .unwrap_or_else(|| "1".into());
    let launch = |lt: &str| {
        let selected = if v.form.get("launchType").map(String::as_str) == Some(lt) {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{lt}\"{selected}>{lt}</option>")
    };
    let picker = if v.task_definitions.is_empty() {
        "<p class=\"empty\">Register a task definition first (<code>aws ecs register-task-definition</code>).</p>".to_string()
    } else {
        String::new()
    };
    format!(
        "<section><h2>Create a service</h2>{picker}<form class=\"inline\" method=\"post\" action=\"/console/clusters/{c}/services\" id=\"create-service\">{csrf}<label>Service name<input name=\"serviceName\" id=\"serviceName\" required value=\"{name}\" autocapitalize=\"none\" spellcheck=\"false\"></label><label>Task definition<select name=\"taskDefinition\" id=\"taskDefinition\" required>{options}</select></label><label>Desired count<input name=\"desiredCount\" id=\"desiredCount\" type=\"number\" min=\"0\" value=\"{desired}\" required></label><label>Launch type<select name=\"launchType\" id=\"launchType\">{ec2}{fargate}</select></label><button type=\"submit\" id=\"create-service-submit\">Create service</button></form></section>",
        c = esc(&crate::html::segment(cluster)),
        csrf = csrf_field(viewer),
        name = value("serviceName"),
        ec2 = launch("EC2"),
        fargate = launch("FARGATE"),
    )
}

/// The cluster page.
pub fn render(viewer: &Viewer, v: &ClusterView<'_>, notice: Option<Notice>) -> String {
    let name = v.cluster.cluster_name.as_deref().unwrap_or_default();
    let body = [
        live_section(
            "capacity",
            "Capacity",
            &format!(
                "<div class=\"cards\">{}</div>",
                capacity_card(v.cluster, &of_cluster(v.instances), false)
            ),
        ),
        live_section(
            "utilization",
            "Utilization (average of the cluster's instances)",
            &utilization(
                &format!("CPU and memory utilization of cluster {name}"),
                v.utilization,
            ),
        ),
        live_section("services", "Services", &services_table(name, v.services)),
        create_service_form(viewer, name, v),
        live_section("tasks", "Tasks", &tasks_table(name, v.tasks)),
        live_section(
            "instances",
            "Container instances",
            &instances_table(v.instances),
        ),
    ]
    .concat();
    page(
        viewer,
        Page {
            title: name,
            crumbs: vec![
                ("/console/clusters".into(), "Clusters".into()),
                (super::cluster_href(name), name.to_string()),
            ],
            body,
            notice,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::tests::instance;
    use flotilla_model::shapes::{Deployment, DeploymentRolloutState, LaunchType};

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
            desired_count: 2,
            running_count: 1,
            pending_count: 1,
            launch_type: Some(LaunchType::Ec2),
            task_definition: Some("arn:aws:ecs:us-east-1:0:task-definition/web:3".into()),
            deployments: Some(vec![Deployment {
                status: Some("PRIMARY".into()),
                rollout_state: Some(DeploymentRolloutState::InProgress),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn render_with(form: &Fields, tds: &[String]) -> String {
        let cluster = Cluster {
            cluster_name: Some("prod".into()),
            status: Some("ACTIVE".into()),
            ..Default::default()
        };
        let task = Task {
            task_arn: Some("arn:aws:ecs:us-east-1:0:task/prod/abc123".into()),
            last_status: Some("STOPPED".into()),
            desired_status: Some("STOPPED".into()),
            group: Some("service:web".into()),
            stopped_reason: Some("Essential container <main> exited".into()),
            task_definition_arn: Some("arn:aws:ecs:us-east-1:0:task-definition/web:3".into()),
            ..Default::default()
        };
        render(
            &viewer(),
            &ClusterView {
                cluster: &cluster,
                services: &[service()],
                tasks: &[task],
                instances: &[instance((1024, 512), (2048, 1024), true)],
                task_definitions: tds,
                utilization: &Utilization::Unavailable("not served".into()),
                form,
            },
            None,
        )
    }

    #[test]
    fn services_tasks_and_instances_are_listed() {
        let html = render_with(&Fields::new(), &["web:3".to_string()]);
        assert!(html.contains("href=\"/console/clusters/prod/services/web\""));
        assert!(html.contains("<span class=\"badge busy\">IN_PROGRESS</span>"));
        assert!(html.contains("href=\"/console/task-definitions/web:3\""));
        assert!(html.contains("href=\"/console/clusters/prod/tasks/abc123\""));
        assert!(html.contains("Essential container &lt;main&gt; exited"));
        assert!(html.contains("<td class=\"num\">512 / 1024</td>"));
        assert!(html.contains("<td class=\"num\">1024 / 2048</td>"));
        assert!(html.contains("Utilization is unavailable: not served"));
        for id in ["capacity", "utilization", "services", "tasks", "instances"] {
            assert!(html.contains(&format!("data-live id=\"{id}\"")), "{id}");
        }
    }

    #[test]
    fn the_form_carries_the_csrf_token_and_keeps_what_was_typed() {
        let form: Fields = [
            ("serviceName".to_string(), "w\"x".to_string()),
            ("taskDefinition".to_string(), "b:1".to_string()),
            ("desiredCount".to_string(), "4".to_string()),
            ("launchType".to_string(), "FARGATE".to_string()),
        ]
        .into_iter()
        .collect();
        let html = render_with(&form, &["a:2".to_string(), "b:1".to_string()]);
        assert!(html.contains("action=\"/console/clusters/prod/services\""));
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
        assert!(html.contains("value=\"w&quot;x\""));
        assert!(html.contains("<option value=\"b:1\" selected>b:1</option>"));
        assert!(html.contains("<option value=\"a:2\">a:2</option>"));
        assert!(html.contains("value=\"4\""));
        assert!(html.contains("<option value=\"FARGATE\" selected>"));
        // The form is not inside a live element (typing is never replaced).
        let form_at = html.find("id=\"create-service\"").unwrap();
        let tasks_at = html.find("data-live id=\"tasks\"").unwrap();
        let services_end = html.find("data-live id=\"services\"").unwrap();
        assert!(services_end < form_at && form_at < tasks_at);
    }

    #[test]
    fn without_task_definitions_the_form_says_what_to_do() {
        assert!(render_with(&Fields::new(), &[]).contains("Register a task definition first"));
    }
}
