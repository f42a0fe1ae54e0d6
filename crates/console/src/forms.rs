//! The console's forms read into the ECS requests they stand for. This module only translates:
//! every rule (names, counts, launch types, whether the task definition exists) is the API's,
//! which answers a bad value with its own modeled error, shown on the page as is. What is
//! checked here is only what the request cannot be written without: a required field present,
//! a count that is a whole number.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The fields of a submitted form (`application/x-www-form-urlencoded`), by name.
pub type Fields = BTreeMap<String, String>;

/// Why a form could not be read into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A required field is missing or blank.
    #[error("{0} is required.")]
    Missing(&'static str),
    /// A count is not a whole number.
    #[error("{field} must be a whole number, not '{value}'.")]
    NotANumber {
        /// The field's label.
        field: &'static str,
        /// What was given.
        value: String,
    },
}

fn required<'f>(fields: &'f Fields, name: &str, label: &'static str) -> Result<&'f str, FormError> {
    fields
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or(FormError::Missing(label))
}

fn count(fields: &Fields, name: &str, label: &'static str) -> Result<i64, FormError> {
    let v = required(fields, name, label)?;
    v.parse().map_err(|_| FormError::NotANumber {
        field: label,
        value: v.to_string(),
    })
}

/// CreateService's input from the create-service form of cluster `cluster`: `serviceName`,
/// `taskDefinition`, `desiredCount` and `launchType` (EC2 when not given).
pub fn create_service(cluster: &str, fields: &Fields) -> Result<Value, FormError> {
    let name = required(fields, "serviceName", "Service name")?;
    let task_definition = required(fields, "taskDefinition", "Task definition")?;
    let desired = count(fields, "desiredCount", "Desired count")?;
    let launch_type = fields
        .get("launchType")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .unwrap_or("EC2");
    Ok(json!({
        "cluster": cluster,
        "serviceName": name,
        "taskDefinition": task_definition,
        "desiredCount": desired,
        "launchType": launch_type,
    }))
}

/// UpdateService's input that sets the desired count of `service` from the form's
/// `desiredCount`.
pub fn desired_count(cluster: &str, service: &str, fields: &Fields) -> Result<Value, FormError> {
    let desired = count(fields, "desiredCount", "Desired count")?;
    Ok(json!({"cluster": cluster, "service": service, "desiredCount": desired}))
}

/// The reason a task stopped from the console gives.
pub const STOP_REASON: &str = "Stopped from the Flotilla console";

/// StopTask's input for task `task` (an id or ARN) of `cluster`.
pub fn stop_task(cluster: &str, task: &str) -> Value {
    json!({"cluster": cluster, "task": task, "reason": STOP_REASON})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_create_service_form_is_a_create_service_request() {
        let f = fields(&[
            ("serviceName", " web "),
            ("taskDefinition", "web:2"),
            ("desiredCount", "3"),
            ("launchType", "FARGATE"),
            ("csrf", "ignored"),
        ]);
        assert_eq!(
            create_service("prod", &f).unwrap(),
            json!({"cluster": "prod", "serviceName": "web", "taskDefinition": "web:2",
                   "desiredCount": 3, "launchType": "FARGATE"})
        );
        let f = fields(&[
            ("serviceName", "w"),
            ("taskDefinition", "t"),
            ("desiredCount", "0"),
        ]);
        assert_eq!(create_service("c", &f).unwrap()["launchType"], "EC2");
    }

    #[test]
    fn missing_fields_and_non_numbers_are_named() {
        let f = fields(&[
            ("serviceName", ""),
            ("taskDefinition", "t"),
            ("desiredCount", "1"),
        ]);
        assert_eq!(
            create_service("c", &f),
            Err(FormError::Missing("Service name"))
        );
        let f = fields(&[
            ("serviceName", "s"),
            ("taskDefinition", "t"),
            ("desiredCount", "two"),
        ]);
        let e = create_service("c", &f).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Desired count must be a whole number, not 'two'."
        );
        // A negative count is the API's to refuse, with its own words.
        assert_eq!(
            desired_count("c", "s", &fields(&[("desiredCount", "-1")])).unwrap()["desiredCount"],
            -1
        );
    }

    #[test]
    fn a_console_stop_says_where_it_came_from() {
        assert_eq!(
            stop_task("c", "abc"),
            json!({"cluster": "c", "task": "abc", "reason": STOP_REASON})
        );
    }
}
