//! The console's views, one module per page: each renders a page's content from the model
//! types the API answered (and nothing else), every value escaped.
//!
//! What a page shows that changes while it is open (counts, statuses, deployments, events,
//! logs) is in elements marked `data-live` (see [`crate::layout`]); forms are not.

pub mod cluster;
pub mod clusters;
pub mod service;
pub mod task;
pub mod task_definitions;

use crate::chart::{line_chart, Series};
use crate::html::{esc, segment};

/// The path of a cluster's page.
pub fn cluster_href(cluster: &str) -> String {
    format!("/console/clusters/{}", segment(cluster))
}

/// The path of a service's page.
pub fn service_href(cluster: &str, service: &str) -> String {
    format!(
        "/console/clusters/{}/services/{}",
        segment(cluster),
        segment(service)
    )
}

/// The path of a task's page (`task` is its id or ARN).
pub fn task_href(cluster: &str, task: &str) -> String {
    format!(
        "/console/clusters/{}/tasks/{}",
        segment(cluster),
        segment(crate::format::short_arn(task))
    )
}

/// The path of a task definition's page (`name` is `family:revision` or its ARN).
pub fn task_definition_href(name: &str) -> String {
    format!(
        "/console/task-definitions/{}",
        segment(crate::format::task_definition_name(name))
    )
}

/// CPU and memory utilization over a recent window, as the metrics answered it.
#[derive(Debug, Clone, PartialEq)]
pub enum Utilization {
    /// The series (each may be empty) over `[start, end)`, epoch seconds.
    Series {
        /// Window start.
        start: f64,
        /// Window end.
        end: f64,
        /// CPU, memory.
        series: Vec<Series>,
    },
    /// The metrics could not be read: why.
    Unavailable(String),
}

/// A utilization section's content: the chart, or why there is none.
pub(crate) fn utilization(title: &str, u: &Utilization) -> String {
    match u {
        Utilization::Series { start, end, series } => match line_chart(title, series, *start, *end)
        {
            Some(svg) => svg,
            None => format!(
                "<p class=\"empty\">No CPU or memory utilization recorded in the last {} minutes.</p>",
                ((end - start) / 60.0).round()
            ),
        },
        Utilization::Unavailable(why) => format!(
            "<p class=\"empty\">Utilization is unavailable: {}</p>",
            esc(why)
        ),
    }
}

/// A table with a header row; `empty` is shown when there are no rows.
pub(crate) fn table(id: &str, headers: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!(
            "<div class=\"scroll\" id=\"{id}\"><p class=\"empty\">{}</p></div>",
            esc(empty)
        );
    }
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", esc(h)))
        .collect();
    format!(
        "<div class=\"scroll\"><table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{}</tbody></table></div>",
        rows.concat()
    )
}

/// A live section: a heading and content refreshed in place (`id` must be unique on the page).
pub(crate) fn live_section(id: &str, heading: &str, content: &str) -> String {
    format!(
        "<section><h2>{}</h2><div data-live id=\"{id}\">{content}</div></section>",
        esc(heading)
    )
}

/// One `label: value` line of a card (`value` is markup).
pub(crate) fn stat(label: &str, value: &str) -> String {
    format!(
        "<div class=\"stat\"><span>{}</span><b>{value}</b></div>",
        esc(label)
    )
}

/// A bar filled to `part / whole`.
pub(crate) fn bar(part: i64, whole: i64) -> String {
    let pct = if whole > 0 {
        (part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
    } else {
        0.0
    };
    format!("<div class=\"bar\"><span style=\"width:{pct:.1}%\"></span></div>")
}

/// `value` escaped, or `-`.
pub(crate) fn or_dash(value: Option<&str>) -> String {
    value
        .filter(|v| !v.is_empty())
        .map(esc)
        .unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(cluster_href("a b"), "/console/clusters/a%20b");
        assert_eq!(
            service_href("c", "s/x"),
            "/console/clusters/c/services/s%2Fx"
        );
        assert_eq!(
            task_href("c", "arn:aws:ecs:us-east-1:1:task/c/abc"),
            "/console/clusters/c/tasks/abc"
        );
        assert_eq!(
            task_definition_href("arn:aws:ecs:us-east-1:1:task-definition/web:4"),
            "/console/task-definitions/web:4"
        );
    }

    #[test]
    fn no_data_is_said_not_drawn() {
        let u = Utilization::Series {
            start: 0.0,
            end: 3600.0,
            series: vec![Series {
                label: "CPU".into(),
                points: vec![],
            }],
        };
        assert_eq!(
            utilization("t", &u),
            "<p class=\"empty\">No CPU or memory utilization recorded in the last 60 minutes.</p>"
        );
        assert!(utilization("t", &Utilization::Unavailable("<x>".into())).contains("&lt;x&gt;"));
    }

    #[test]
    fn bars_stay_within_their_box() {
        assert!(bar(5, 0).contains("width:0.0%"));
        assert!(bar(150, 100).contains("width:100.0%"));
        assert!(bar(1, 4).contains("width:25.0%"));
    }
}
