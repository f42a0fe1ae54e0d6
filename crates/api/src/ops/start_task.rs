//! StartTask: one task of an ACTIVE task definition on each named container instance (1 to 10,
//! ids or ARNs), without strategies or constraints, through the one placement writer. Instances
//! that cannot take it are reported in `failures` (`MISSING`, `INACTIVE`, `AGENT`,
//! `RESOURCE:*`).

use crate::context::Ctx;
use flotilla_control::template::{placement_request, Common};
use flotilla_controllers::placement::{self, Committed, Target};
use flotilla_controllers::templates::prepare;
use flotilla_model::shapes::{LaunchType, StartTaskRequest, StartTaskResponse};
use flotilla_model::EcsError;

/// StartTask.
pub async fn start_task(
    ctx: &Ctx<'_>,
    req: StartTaskRequest,
) -> Result<StartTaskResponse, EcsError> {
    let n = req.container_instances.len();
    if !(1..=10).contains(&n) {
        return Err(EcsError::invalid_parameter(format!(
            "StartTask takes 1 to 10 container instances; {n} were given."
        )));
    }
    let template = prepare(
        ctx.plane(),
        &Common {
            cluster: req.cluster.as_deref(),
            overrides: req.overrides.as_ref(),
            group: req.group.as_deref(),
            started_by: req.started_by.as_deref(),
            tags: req.tags.as_deref(),
            propagate_tags: req.propagate_tags,
            enable_ecs_managed_tags: req.enable_ecs_managed_tags,
            enable_execute_command: req.enable_execute_command,
            network_configuration: req.network_configuration.as_ref(),
            ..Common::new(&req.task_definition, LaunchType::Ec2)
        },
    )
    .await?;
    let names: Vec<String> = req
        .container_instances
        .iter()
        .map(|v| {
            flotilla_controllers::records::instance_id_in(v, &template.cluster)
                .unwrap_or(v.as_str())
                .to_string()
        })
        .collect();
    let preq = placement_request(&template, 1, rand::random::<u64>())?;
    match placement::place(
        ctx.plane(),
        ctx.now,
        &template,
        &Target::Start(Box::new(preq), names),
        None,
        None,
    )
    .await?
    .into_ecs()
    {
        Committed::Placed(tasks, mut failures) => {
            // Instances named by id are reported by ARN, as ECS does.
            for f in &mut failures {
                if let Some(a) = f.arn.as_mut().filter(|a| !a.starts_with("arn:")) {
                    *a = ctx.arns().container_instance(&template.cluster, a);
                }
            }
            Ok(StartTaskResponse {
                tasks: Some(tasks.iter().map(|t| t.view(true)).collect()),
                failures: Some(failures),
            })
        }
        Committed::TokenUsed(_) => Err(EcsError::server("StartTask has no client token")),
    }
}
