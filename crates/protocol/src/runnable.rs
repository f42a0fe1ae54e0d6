//! What a Flotilla container agent can run, decided from the task definition alone.
//!
//! The agent needs it to refuse a task it cannot honour, and the control plane needs the same
//! answer earlier, at RunTask, so a user sees a clear error instead of a task that fails to
//! start. Both call [`check`]; the message says what is unsupported and what to use instead.

use flotilla_model::shapes::{ContainerDefinition, LogDriver, Volume};

/// Checks that a task (its definition, with any overrides applied to `containers`) can run on
/// a Flotilla agent.
pub fn check(
    pid_mode: Option<&str>,
    ipc_mode: Option<&str>,
    volumes: &[Volume],
    containers: &[ContainerDefinition],
) -> Result<(), String> {
    if pid_mode == Some("task") {
        return Err("pidMode task is not supported by this agent (use host or leave unset)".into());
    }
    if let Some(m) = ipc_mode {
        if !matches!(m, "host" | "none") {
            return Err(format!(
                "ipcMode {m} is not supported by this agent (use host, none or leave unset)"
            ));
        }
    }
    for v in volumes {
        let name = v.name.as_deref().unwrap_or("");
        if v.efs_volume_configuration.is_some()
            || v.fsx_windows_file_server_volume_configuration.is_some()
            || v.s3files_volume_configuration.is_some()
        {
            return Err(format!(
                "volume {name}: only host and dockerVolumeConfiguration volumes are supported"
            ));
        }
    }
    if containers.is_empty() {
        return Err("the task has no containers".into());
    }
    for d in containers {
        let name = d.name.as_deref().unwrap_or("");
        if name.is_empty() || d.image.as_deref().unwrap_or("").is_empty() {
            return Err(format!("container {name:?}: name and image are required"));
        }
        let unsupported = [
            (d.environment_files.is_some(), "environmentFiles"),
            (d.firelens_configuration.is_some(), "firelensConfiguration"),
            (d.credential_specs.is_some(), "credentialSpecs"),
            (
                d.resource_requirements
                    .as_ref()
                    .is_some_and(|r| !r.is_empty()),
                "resourceRequirements (GPU)",
            ),
        ];
        if let Some(l) = &d.log_configuration {
            if l.log_driver == LogDriver::Awsfirelens {
                return Err(format!(
                    "container {name}: log driver {} is not supported by this agent; use awslogs, json-file, syslog, journald, gelf, fluentd or splunk",
                    l.log_driver
                ));
            }
            if l.log_driver == LogDriver::Awslogs {
                let options = l.options.clone().unwrap_or_default();
                // The launch type's and the region's rules are the agent's to check: it knows
                // both (`flotilla_agent::spec`).
                flotilla_logs::awslogs::parse(&options, false, None)
                    .map_err(|why| format!("container {name}: awslogs: {why}"))?;
            }
        }
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(format!(
                "container {name}: {what} is not supported by this agent"
            ));
        }
        for m in d.mount_points.iter().flatten() {
            let src = m.source_volume.as_deref().unwrap_or("");
            if !volumes.iter().any(|v| v.name.as_deref() == Some(src)) {
                return Err(format!(
                    "container {name}: mount point source volume {src:?} is not a volume of the task definition"
                ));
            }
        }
        for p in d.port_mappings.iter().flatten() {
            if p.container_port_range.is_some() {
                return Err(format!(
                    "container {name}: containerPortRange is not supported by this agent"
                ));
            }
        }
    }
    Ok(())
}
