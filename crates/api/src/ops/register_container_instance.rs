//! RegisterContainerInstance (agent-facing): records a host's resources, agent version and
//! attributes as a container instance of the cluster. `instanceIdentityDocument` (a JSON
//! string) gives `ec2InstanceId`, the availability zone and the instance type. With
//! `containerInstanceArn` of a registered (not INACTIVE) instance, the same instance is updated
//! (resources, version info, agent attributes, tags merged) and keeps its tasks; an unknown or
//! INACTIVE ARN registers a new instance, whose ARN the response carries.
//!
//! A host registered with the cluster `flotilla_protocol::MANAGED_POOL` (`flotilla agent
//! --managed`) joins the managed pool that runs Fargate tasks; no user cluster can list it.
//!
//! A host that registers with the attribute `flotilla.capacity-provider` (`flotilla agent
//! --capacity-provider NAME`) joins that custom capacity provider, which must exist and be
//! ACTIVE: the instance shows `capacityProviderName` (as ECS shows it for instances of an Auto
//! Scaling group provider), and the attribute itself is not kept.
//!
//! A new registration counts as connected until the agent opens its session; if no replica
//! hears it within `MISSED_HEARTBEATS` heartbeat intervals, the leader's liveness loop (which
//! watches the instance records) marks it `agentConnected: false`.
//!
//! Who registers ([`Registrant`]): an API caller as above; an agent signing with its own key
//! (`crate::agent_identity`) only updates the instance its key is bound to, never creates one;
//! an agent joining with a token (`FlotillaAdmin.RegisterAgent`) always gets a new instance,
//! whose agent key record is written in the same transaction, compared with the token's record
//! (re-checked there, so a token revoked meanwhile admits no one).

use crate::context::Ctx;
use crate::shared::instance_views::{task_counts, view_of};
use flotilla_control::agent_identity::{
    self, AgentCredentialRecord, BoundInstance, JoinToken, JoinTokenRecord,
};
use flotilla_control::instances::{parse_identity_document, parse_total_resources, InstanceRecord};
use flotilla_control::tags::validate_tags;
use flotilla_controllers::placement::new_id;
use flotilla_controllers::records::{get, instance_id_in, instance_key, to_bytes, Attempt};
use flotilla_model::shapes::{
    ContainerInstance, RegisterContainerInstanceRequest, RegisterContainerInstanceResponse,
};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_scheduler::InstanceStatus;
use flotilla_store::{Compare, Txn};

/// Who registers an instance.
#[derive(Debug, Clone, Copy)]
pub enum Registrant<'a> {
    /// An API caller: a new instance, or the named one (an unknown or INACTIVE ARN registers a
    /// new one).
    Caller,
    /// An agent signing with its own key: only the (ACTIVE) instance it is bound to.
    Agent(&'a BoundInstance),
    /// An agent joining with a token: always a new instance, bound to this key.
    Join(&'a JoinGrant),
}

/// What a join adds to the registration: the presented token and the key issued for it.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    /// The token as presented (checked again in the registration's transaction).
    pub token: JoinToken,
    /// The new agent key's id.
    pub access_key_id: String,
    /// Its secret, sealed with the server's secrets key (`agent_identity::seal_context`).
    pub sealed_secret_access_key: String,
}

/// RegisterContainerInstance.
pub async fn register_container_instance(
    ctx: &Ctx<'_>,
    req: RegisterContainerInstanceRequest,
) -> Result<RegisterContainerInstanceResponse, EcsError> {
    let bound = crate::agent_identity::agent_of(&ctx.caller)?;
    let registrant = match &bound {
        Some(b) => Registrant::Agent(b),
        None => Registrant::Caller,
    };
    register(ctx, req, registrant).await
}

/// RegisterContainerInstance for `registrant`.
pub async fn register(
    ctx: &Ctx<'_>,
    req: RegisterContainerInstanceRequest,
    registrant: Registrant<'_>,
) -> Result<RegisterContainerInstanceResponse, EcsError> {
    let cluster = super::agent_cluster(ctx, req.cluster.as_deref()).await?;
    let capacity = parse_total_resources(req.total_resources.as_deref().unwrap_or(&[]))?;
    let doc = match req.instance_identity_document.as_deref() {
        Some(d) if !d.trim().is_empty() => Some(parse_identity_document(d)?),
        _ => None,
    };
    let tags = req.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    let mut attributes = req.attributes.clone().unwrap_or_default();
    let provider = capacity_provider(ctx, &cluster, &mut attributes).await?;
    let existing_id = match registrant {
        Registrant::Caller => req
            .container_instance_arn
            .as_deref()
            .and_then(|a| instance_id_in(a, &cluster))
            .map(str::to_string),
        Registrant::Agent(b) => Some(b.id.clone()),
        Registrant::Join(_) => None,
    };
    let now = flotilla_control::timestamp(ctx.now);
    // The record the change is about: the named instance (a new registration takes a fresh id
    // that no other writer knows, so it serializes with nothing that matters).
    let lock_key = instance_key(&cluster, existing_id.as_deref().unwrap_or_default());
    let rec = ctx
        .plane()
        .cas(&lock_key, || async {
            let existing = match &existing_id {
                Some(id) => get::<InstanceRecord>(ctx.store(), &instance_key(&cluster, id))
                    .await?
                    .filter(|(r, _)| r.status() != InstanceStatus::Inactive),
                None => None,
            };
            let (mut rec, compare) = match existing {
                Some((rec, rev)) => {
                    let key = instance_key(&cluster, &rec.id);
                    (rec, Compare::ModRevision(key, rev))
                }
                None if matches!(registrant, Registrant::Agent(_)) => {
                    return Err(EcsError::new(
                        ErrorCode::AccessDeniedException,
                        "The container instance of this agent's credentials was deregistered: they are revoked. Join again with a join token.",
                    ));
                }
                None => {
                    let id = new_id();
                    let mut rec = InstanceRecord {
                        instance: ContainerInstance {
                            container_instance_arn: Some(
                                ctx.arns().container_instance(&cluster, &id),
                            ),
                            version: 0,
                            agent_connected: true,
                            registered_at: Some(now),
                            ..ContainerInstance::default()
                        },
                        cluster: cluster.clone(),
                        id: id.clone(),
                        ..InstanceRecord::default()
                    };
                    rec.set_status(InstanceStatus::Active);
                    (rec, Compare::Absent(instance_key(&cluster, &id)))
                }
            };
            rec.registered = capacity.clone();
            if req.version_info.is_some() {
                rec.instance.version_info = req.version_info.clone();
            }
            rec.instance.attributes = Some(attributes.clone());
            rec.instance.capacity_provider_name = provider.clone();
            if let Some(d) = &doc {
                rec.instance.ec2_instance_id =
                    d.instance_id.clone().or(rec.instance.ec2_instance_id);
                rec.availability_zone = d.availability_zone.clone().or(rec.availability_zone);
                rec.instance_type = d.instance_type.clone().or(rec.instance_type);
            }
            let mut all_tags = rec.instance.tags.clone().unwrap_or_default();
            for t in &tags {
                match all_tags.iter_mut().find(|x| x.key == t.key) {
                    Some(x) => x.value = t.value.clone(),
                    None => all_tags.push(t.clone()),
                }
            }
            validate_tags(&all_tags, 0)?;
            rec.instance.tags = Some(all_tags);
            rec.touch();
            let key = instance_key(&cluster, &rec.id);
            let mut txn = Txn::new().when(compare);
            if let Registrant::Join(grant) = registrant {
                txn = join_writes(ctx, txn, grant, &mut rec).await?;
            }
            let txn = txn.put(key, to_bytes(&rec)?);
            Ok(Attempt::Commit(txn, rec))
        })
        .await?;
    tracing::info!(container_instance = %rec.arn(), cluster = %cluster, "container instance registered");
    let counts = task_counts(ctx, &cluster).await?;
    let view = view_of(ctx, &rec, &counts, true).await?;
    Ok(RegisterContainerInstanceResponse {
        container_instance: Some(view),
    })
}

/// A join's part of the registration's transaction: the token, read and checked again (its
/// record compared, and counted), and the agent key's record bound to the new instance.
async fn join_writes(
    ctx: &Ctx<'_>,
    txn: Txn,
    grant: &JoinGrant,
    rec: &mut InstanceRecord,
) -> Result<Txn, EcsError> {
    let tkey = agent_identity::token_key(&grant.token.id);
    let stored = get::<JoinTokenRecord>(ctx.store(), &tkey).await?;
    let cluster = agent_identity::check_join(
        Some(&grant.token),
        stored.as_ref().map(|(r, _)| r),
        Some(&rec.cluster),
        ctx.now,
    )
    .map_err(|r| r.error())?;
    let Some((token, token_rev)) = stored else {
        return Err(agent_identity::JoinRefusal::Invalid.error());
    };
    let credential = AgentCredentialRecord {
        access_key_id: grant.access_key_id.clone(),
        container_instance_arn: rec.arn().to_string(),
        cluster,
        instance_id: rec.id.clone(),
        issued_at: ctx.now,
        join_token_id: token.id.clone(),
        sealed_secret_access_key: grant.sealed_secret_access_key.clone(),
    };
    rec.agent_keys = vec![grant.access_key_id.clone()];
    let ckey = agent_identity::agent_credential_key(&grant.access_key_id);
    Ok(txn
        .when(Compare::ModRevision(tkey.clone(), token_rev))
        .put(tkey, to_bytes(&token.joined(ctx.now))?)
        .when(Compare::Absent(ckey.clone()))
        .put(ckey, to_bytes(&credential)?))
}

/// The custom capacity provider the host joins (its `flotilla.capacity-provider` attribute,
/// taken out of `attributes`): it must be an ACTIVE provider, and not for the managed pool.
async fn capacity_provider(
    ctx: &Ctx<'_>,
    cluster: &str,
    attributes: &mut Vec<flotilla_model::shapes::Attribute>,
) -> Result<Option<String>, EcsError> {
    use flotilla_control::capacity_providers::{self as cp, CapacityProviderRecord};
    let mut named = None;
    attributes.retain(|a| {
        if a.name == cp::AGENT_ATTRIBUTE {
            named = a.value.clone();
            false
        } else {
            true
        }
    });
    let Some(name) = named else {
        return Ok(None);
    };
    if cluster == flotilla_protocol::MANAGED_POOL || cp::is_builtin(&name) {
        return Err(EcsError::client(format!(
            "A host of the managed pool (Fargate capacity) cannot join the capacity provider '{name}'; FARGATE and FARGATE_SPOT are the managed pool's."
        )));
    }
    match get::<CapacityProviderRecord>(ctx.store(), &cp::key(&name)).await? {
        Some((rec, _)) if rec.is_active() => Ok(Some(name)),
        _ => Err(cp::not_found(&name)),
    }
}
