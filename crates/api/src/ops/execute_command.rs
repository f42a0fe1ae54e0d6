//! ExecuteCommand (ECS Exec): checks the request as ECS does (`interactive` must be true; the
//! task exists; the container, named or the task's only one; the task was run with
//! `enableExecuteCommand` and the container's `ExecuteCommandAgent` is RUNNING; the agent of its
//! instance is connected, else `TargetNotConnectedException`), then creates a session on this
//! replica ([`crate::exec`]). Its `streamUrl` is a WebSocket on this replica
//! (`ws://HOST/exec/v1/sessions/<sessionId>`) and its `tokenValue` the one-time token that opens
//! it (with a request signed by the same key); `flotilla exec` does both. AWS's Session Manager
//! plugin cannot use them: they are Flotilla's stream, not SSM's.

use crate::context::Ctx;
use crate::exec::ExecTarget;
use flotilla_control::exec::{parse_command, target, NOT_CONNECTED};
use flotilla_control::instances::InstanceRecord;
use flotilla_control::tasks::TaskRecord;
use flotilla_controllers::records::{get, instance_key, task_id_in, task_key};
use flotilla_model::shapes::{ExecuteCommandRequest, ExecuteCommandResponse, Session};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::exec::STREAM_PATH;

/// ExecuteCommand.
pub async fn execute_command(
    ctx: &Ctx<'_>,
    req: ExecuteCommandRequest,
) -> Result<ExecuteCommandResponse, EcsError> {
    let argv = parse_command(&req.command, req.interactive)?;
    let r = req.task.as_str();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[r]).await?;
    let not_found = || EcsError::invalid_parameter("The referenced task was not found.");
    let Some(id) = task_id_in(r, &cluster).filter(|_| !super::foreign_arn(ctx, r)) else {
        return Err(not_found());
    };
    let Some((rec, _)) = get::<TaskRecord>(ctx.store(), &task_key(&cluster, id)).await? else {
        return Err(not_found());
    };
    let chosen = target(&rec, req.container.as_deref())?;
    let instance = get::<InstanceRecord>(
        ctx.store(),
        &instance_key(rec.instance_cluster(), &rec.instance_id),
    )
    .await?;
    if !instance.is_some_and(|(i, _)| i.instance.agent_connected) {
        return Err(EcsError::new(
            ErrorCode::TargetNotConnectedException,
            format!(
                "{NOT_CONNECTED} The container agent of the task's container instance {} is not connected.",
                rec.instance_id
            ),
        ));
    }
    let host = ctx
        .host
        .clone()
        .or_else(|| {
            ctx.api
                .replica()
                .map(|r| crate::transport::split_url(&r.url).1.to_string())
        })
        .ok_or_else(|| EcsError::server("this server does not know its own address"))?;
    let (session_id, token) = ctx.api.exec.create_session(
        &ctx.caller.access_key_id,
        ExecTarget {
            cluster: rec.cluster.clone(),
            task_id: rec.id.clone(),
            container_name: chosen.container_name.clone(),
            argv,
        },
    )?;
    tracing::info!(task = %rec.arn(), container = %chosen.container_name, session = %session_id, "execute command session created");
    Ok(ExecuteCommandResponse {
        cluster_arn: rec.task.cluster_arn.clone(),
        container_arn: Some(chosen.container_arn),
        container_name: Some(chosen.container_name),
        interactive: true,
        session: Some(Session {
            stream_url: Some(format!(
                "{}://{host}{STREAM_PATH}/{session_id}",
                ctx.api.transport().ws_scheme()
            )),
            session_id: Some(session_id),
            token_value: Some(token),
        }),
        task_arn: Some(rec.arn().to_string()),
    })
}
