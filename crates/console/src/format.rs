//! How values read: times (UTC, to the second), ARNs shortened to their resource id, and
//! resource amounts (CPU units, MiB).

/// An epoch time (seconds) as `2026-12-04 12:37:31Z`; `-` when there is none.
pub fn time(at: Option<f64>) -> String {
    let Some(at) = at else {
        return "-".to_string();
    };
    match time::OffsetDateTime::from_unix_timestamp(at.floor() as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "-".to_string(),
    }
}

/// An epoch time as `12:37:31` (the time of day, UTC), for chart axes and log lines.
pub fn clock(at: f64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at.floor() as i64) {
        Ok(t) => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
        Err(_) => "-".to_string(),
    }
}

/// The last path segment of an ARN (`arn:...:task/c/abc` is `abc`), or the value itself.
pub fn short_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A task definition ARN's `family:revision`.
pub fn task_definition_name(arn: &str) -> &str {
    arn.rsplit_once(":task-definition/")
        .map(|(_, name)| name)
        .unwrap_or(arn)
}

/// A percentage of `part` in `whole`, one decimal (`-` when `whole` is 0).
pub fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "-".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(time(Some(0.0)), "1970-01-01 00:00:00Z");
        assert_eq!(time(Some(1_796_384_251.9)), "2026-12-04 11:37:31Z");
        assert_eq!(time(None), "-");
        assert_eq!(clock(1_796_384_251.0), "11:37:31");
    }

    #[test]
    fn arns_read_as_their_resource() {
        assert_eq!(
            short_arn("arn:aws:ecs:us-east-1:000000000000:task/web/0123abcd"),
            "0123abcd"
        );
        assert_eq!(short_arn("plain"), "plain");
        assert_eq!(
            task_definition_name("arn:aws:ecs:us-east-1:000000000000:task-definition/web:3"),
            "web:3"
        );
        assert_eq!(task_definition_name("web:3"), "web:3");
    }

    #[test]
    fn percentages_of_nothing_are_a_dash() {
        assert_eq!(percent(512, 2048), "25.0%");
        assert_eq!(percent(1, 0), "-");
    }
}
