//! The cluster list: each cluster with its capacity (CPU and memory registered, reserved and
//! remaining, summed over its container instances), its instance, task and service counts.

use super::{bar, cluster_href, stat};
use crate::capacity::Capacity;
use crate::html::{badge, esc};
use crate::layout::{page, Page, Viewer};
use flotilla_model::shapes::Cluster;

/// A cluster and its capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSummary {
    /// As DescribeClusters answered it.
    pub cluster: Cluster,
    /// From DescribeContainerInstances.
    pub capacity: Capacity,
}

/// One cluster's capacity card (also the cluster page's summary).
pub fn capacity_card(cluster: &Cluster, c: &Capacity, linked: bool) -> String {
    let name = cluster.cluster_name.as_deref().unwrap_or_default();
    let title = if linked {
        format!(
            "<a href=\"{}\" class=\"cluster-link\">{}</a>",
            esc(&cluster_href(name)),
            esc(name)
        )
    } else {
        esc(name)
    };
    format!(
        "<div class=\"card\"><h3>{title} {status}</h3>{cpu}{cpu_bar}{mem}{mem_bar}{inst}{tasks}{svcs}</div>",
        status = badge(cluster.status.as_deref().unwrap_or("UNKNOWN")),
        cpu = stat(
            "CPU units reserved",
            &format!("{} / {}", c.cpu_used(), c.cpu_registered)
        ),
        cpu_bar = free_bar(c.cpu_used(), c.cpu_registered, c.cpu_remaining, "units"),
        mem = stat(
            "Memory reserved",
            &format!("{} / {} MiB", c.memory_used(), c.memory_registered)
        ),
        mem_bar = free_bar(
            c.memory_used(),
            c.memory_registered,
            c.memory_remaining,
            "MiB"
        ),
        inst = stat(
            "Instances (connected)",
            &format!(
                "{} ({})",
                cluster.registered_container_instances_count, c.connected
            )
        ),
        tasks = stat(
            "Tasks running / pending",
            &format!(
                "{} / {}",
                cluster.running_tasks_count, cluster.pending_tasks_count
            )
        ),
        svcs = stat(
            "Active services",
            &cluster.active_services_count.to_string()
        ),
    )
}

/// A usage bar and what remains under it.
fn free_bar(used: i64, registered: i64, remaining: i64, unit: &str) -> String {
    format!(
        "{}<div class=\"free\">{remaining} {unit} free</div>",
        bar(used, registered)
    )
}

/// The cluster list page.
pub fn render(viewer: &Viewer, clusters: &[ClusterSummary]) -> String {
    let cards: String = clusters
        .iter()
        .map(|c| capacity_card(&c.cluster, &c.capacity, true))
        .collect();
    let body = if clusters.is_empty() {
        "<div data-live id=\"clusters\"><p class=\"empty\">No clusters yet: create one with <code>aws ecs create-cluster</code>.</p></div>".to_string()
    } else {
        format!("<div class=\"cards\" data-live id=\"clusters\">{cards}</div>")
    };
    page(
        viewer,
        Page {
            title: "Clusters",
            crumbs: vec![("/console/clusters".into(), "Clusters".into())],
            body,
            notice: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{of_cluster, tests::instance};

    fn viewer() -> Viewer {
        Viewer {
            access_key_id: "AKID".into(),
            csrf: "t".into(),
        }
    }

    #[test]
    fn each_cluster_shows_its_capacity_and_counts() {
        let cluster = Cluster {
            cluster_name: Some("prod<1>".into()),
            status: Some("ACTIVE".into()),
            registered_container_instances_count: 1,
            running_tasks_count: 3,
            pending_tasks_count: 1,
            active_services_count: 2,
            ..Default::default()
        };
        let html = render(
            &viewer(),
            &[ClusterSummary {
                cluster,
                capacity: of_cluster(&[instance((2048, 1536), (4096, 3072), true)]),
            }],
        );
        assert!(
            html.contains("href=\"/console/clusters/prod%3C1%3E\""),
            "{html}"
        );
        assert!(html.contains(">prod&lt;1&gt;</a>"));
        assert!(html.contains("<b>512 / 2048</b>"));
        assert!(html.contains(">1536 units free<"));
        assert!(html.contains("<b>1024 / 4096 MiB</b>"));
        assert!(html.contains(">3072 MiB free<"));
        assert!(html.contains("<b>1 (1)</b>"));
        assert!(html.contains("<b>3 / 1</b>"));
        assert!(html.contains("data-live id=\"clusters\""));
    }

    #[test]
    fn no_cluster_says_how_to_make_one() {
        assert!(render(&viewer(), &[]).contains("No clusters yet"));
    }
}
