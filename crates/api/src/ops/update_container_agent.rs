//! UpdateContainerAgent: a Flotilla agent is updated with the server's binary, never by the
//! control plane, so this answers ECS's documented refusal that is true for the instance
//! (`flotilla_control::agent_update`): `NoUpdateAvailableException` when its agent runs the
//! server's version (or another one only reinstalling changes), `MissingVersionException` when
//! it registered none. An unknown instance is `InvalidParameterException`.

use crate::context::Ctx;
use flotilla_control::agent_update;
use flotilla_control::instances::InstanceRecord;
use flotilla_controllers::records::{get, instance_id_in, instance_key};
use flotilla_model::shapes::{UpdateContainerAgentRequest, UpdateContainerAgentResponse};
use flotilla_model::EcsError;

/// UpdateContainerAgent.
pub async fn update_container_agent(
    ctx: &Ctx<'_>,
    req: UpdateContainerAgentRequest,
) -> Result<UpdateContainerAgentResponse, EcsError> {
    let r = req.container_instance.as_str();
    let cluster = super::request_cluster(ctx, req.cluster.as_deref(), &[r]).await?;
    let not_found = || {
        EcsError::invalid_parameter(format!(
            "The referenced container instance {r} was not found."
        ))
    };
    let Some(id) = instance_id_in(r, &cluster).filter(|_| !super::foreign_arn(ctx, r)) else {
        return Err(not_found());
    };
    let Some((rec, _)) = get::<InstanceRecord>(ctx.store(), &instance_key(&cluster, id)).await?
    else {
        return Err(not_found());
    };
    let agent = rec
        .instance
        .version_info
        .as_ref()
        .and_then(|v| v.agent_version.as_deref());
    Err(agent_update::decide(agent, env!("CARGO_PKG_VERSION")).error())
}
