//! DiscoverPollEndpoint (agent-facing): where the agent's session lives. Flotilla serves the
//! session itself, so `endpoint` (and `telemetryEndpoint`) is this server's base URL as the
//! agent reached it (`http://` or, served over TLS, `https://`, + the request's `Host`); the
//! agent opens `ws://HOST` (`wss://`) + `flotilla_protocol::SESSION_PATH` on it.

use crate::context::Ctx;
use flotilla_model::shapes::{DiscoverPollEndpointRequest, DiscoverPollEndpointResponse};
use flotilla_model::EcsError;

/// DiscoverPollEndpoint.
pub async fn discover_poll_endpoint(
    ctx: &Ctx<'_>,
    req: DiscoverPollEndpointRequest,
) -> Result<DiscoverPollEndpointResponse, EcsError> {
    if req.cluster.is_some() {
        super::agent_cluster(ctx, req.cluster.as_deref()).await?;
    }
    let host = ctx.host.as_deref().unwrap_or("localhost");
    let endpoint = format!("{}://{host}", ctx.api.transport().scheme());
    Ok(DiscoverPollEndpointResponse {
        endpoint: Some(endpoint.clone()),
        telemetry_endpoint: Some(endpoint),
        service_connect_endpoint: None,
    })
}
