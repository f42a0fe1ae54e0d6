//! What several handlers share: reads that join records into the shapes ECS answers, and the
//! cluster writer. Handlers import from here, never from each other.

pub mod capacity_providers;
pub mod cluster_counts;
pub mod cluster_writes;
pub mod deployments;
pub mod instance_views;
pub mod service_connect;
pub mod task_sets;
pub mod traffic;
pub mod unserved;

use flotilla_model::shapes::Failure;

/// The `MISSING` failure Describe operations report for what they did not find.
pub fn missing(arn: String) -> Failure {
    Failure {
        arn: Some(arn),
        reason: Some("MISSING".into()),
        detail: None,
    }
}

/// The ARN a Describe request named: as given when it is an ARN, else built from the name.
pub fn named_arn(given: &str, arn_of: impl FnOnce(&str) -> String) -> String {
    if given.starts_with("arn:") {
        given.to_string()
    } else {
        arn_of(given)
    }
}
