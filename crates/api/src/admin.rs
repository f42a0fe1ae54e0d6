//! Flotilla's own operations, beside the ECS API, on the same endpoint and signature
//! (`X-Amz-Target: FlotillaAdmin.<op>`).

use crate::context::Api;
use flotilla_control::instances::InstanceRecord;
use flotilla_controllers::fargate::reclaim_spot;
use flotilla_controllers::records::{self, CONTAINER_INSTANCES, REPLICAS};
use flotilla_controllers::Role;
use flotilla_model::EcsError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A server replica as it records itself under `replicas/ID` (and as Status shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaInfo {
    /// Its name in the leader election.
    pub id: String,
    /// The URL it serves on.
    pub url: String,
    /// When it started (epoch seconds).
    pub started_at: f64,
}

impl ReplicaInfo {
    /// Its key in the store.
    pub fn key(&self) -> String {
        format!("{REPLICAS}{}", self.id)
    }
}

/// [`admin`] for a signed caller: also the operator's join token operations (see
/// [`crate::agent_identity`]), which record who created or revoked a token:
/// - `CreateJoinToken` `{"cluster"?, "managed"?, "ttl"?}` -> the token (`ID.SECRET`,
///   shown only here) and its view;
/// - `ListJoinTokens` `{}` -> `{"tokens": [...]}` (never a secret);
/// - `RevokeJoinToken` `{"id"}` -> `{"token": ...}`.
///
/// The join itself, `RegisterAgent`, is served before any signature check
/// ([`crate::agent_identity::serve_join`]).
pub async fn admin_as(
    api: &Api,
    caller: &flotilla_sigv4::Caller,
    op: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, EcsError> {
    match op {
        "CreateJoinToken" => crate::agent_identity::create_token(api, caller, input).await,
        "ListJoinTokens" => crate::agent_identity::list_tokens(api).await,
        "RevokeJoinToken" => crate::agent_identity::revoke_token(api, caller, input).await,
        _ => admin(api, op, input).await,
    }
}

/// Flotilla's own operations, beside the ECS API (`X-Amz-Target: FlotillaAdmin.<op>`, JSON in
/// and out, SigV4-signed like every call):
/// - `ReclaimSpot` `{"cluster"?: NAME, "count"?: N}` -> `{"tasks": [ARN, ...]}`: interrupts
///   FARGATE_SPOT tasks (`flotilla_controllers::fargate::reclaim_spot`).
/// - `Status` `{}` -> the answering replica and whether it leads, the leader and its term, the
///   replicas, the store (kind, reachable, members) and the container instances per
///   availability zone (see [`status`]). What is not known is `null`.
/// - `OpenLogStream` `{"containerInstanceArn", "logGroupName", "logStreamName", "createGroup"}`
///   -> `{"generation": N}`: an agent opens the `awslogs` stream of a container on its host
///   (the stream's events stay on that host; see [`crate::logs`]).
/// - `ResolveName` `{"name", "type"}` -> a `flotilla_protocol::dns::ResolveNameAnswer`: what
///   a task's DNS query for a Cloud Map name answers (`flotilla_servicediscovery::dns`), asked by
///   the agent's task resolver.
/// - `LogQuery` `{"owner", "request"}` -> the owner's answer
///   (`flotilla_logs::query::LogResponse`): another replica asks this one for streams it holds
///   itself (its own, or an agent whose session is here); nothing is forwarded further.
/// - `MetricQuery` a `flotilla_cloudwatch::reader::PeerQuery` -> a `PeerAnswer`: another
///   replica asks for this replica's own metric series (see [`crate::metrics_peers`]).
pub async fn admin(
    api: &Api,
    op: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, EcsError> {
    match op {
        "ReclaimSpot" => {
            let cluster = match input.get("cluster") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(c)) => Some(c.as_str()),
                Some(_) => {
                    return Err(EcsError::invalid_parameter(
                        "cluster must be a cluster name or ARN.",
                    ))
                }
            };
            let count = match input.get("count") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        return Err(EcsError::invalid_parameter(
                            "count must be a whole number of at least 1.",
                        ))
                    }
                },
            };
            let tasks = reclaim_spot(&api.plane, cluster, count).await?;
            Ok(serde_json::json!({ "tasks": tasks }))
        }
        "Status" => Ok(status(api).await),
        "OpenLogStream" => open_log_stream(api, input).await,
        "LogQuery" => log_query(api, input).await,
        "MetricQuery" => metric_query(api, input),
        flotilla_protocol::dns::RESOLVE_NAME => resolve_name(api, input).await,
        "LoadBalancing" => load_balancing(api).await,
        other => Err(EcsError::new(
            flotilla_model::ErrorCode::UnknownOperationException,
            format!(
                "'{ADMIN}{other}' is not a Flotilla operation (known: {ADMIN}ReclaimSpot, {ADMIN}Status, {ADMIN}OpenLogStream, {ADMIN}LogQuery, {ADMIN}MetricQuery, {ADMIN}ResolveName, {ADMIN}CreateJoinToken, {ADMIN}ListJoinTokens, {ADMIN}RevokeJoinToken, {ADMIN}RegisterAgent).",
                ADMIN = crate::server::ADMIN_TARGET_PREFIX
            ),
        )),
    }
}

/// `FlotillaAdmin.Status`: `{"replica": ReplicaInfo|null, "leads": bool|null,
/// "leader": {"id", "term"}|null, "leaderKnown": bool, "replicas": [ReplicaInfo + "leader"]|null,
/// "store": {"kind": str|null, "reachable": bool, "members": [{"name", "clientUrls"}]|null},
/// "zones": [{"zone": str|null, "connected": n, "disconnected": n}]|null,
/// "warmNetworks": [{"containerInstanceArn", "addresses": [IP...]}]|null}`.
/// Without an election the controllers run on this server: it leads, with no term.
pub async fn status(api: &Api) -> Value {
    let me = api.replica();
    let leader = match api.election() {
        Some(e) => e.leader().await.map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let leader_id = leader
        .as_ref()
        .ok()
        .and_then(|l| l.as_ref())
        .map(|l| l.id.clone());
    let leads = match (api.election(), api.role()) {
        (None, _) => Some(true),
        (Some(_), Some(role)) => Some(matches!(role, Role::Leader { .. })),
        (Some(_), None) => me
            .zip(leader.as_ref().ok())
            .map(|(m, l)| l.as_ref().is_some_and(|l| l.id == m.id)),
    };
    let reachable = api.store.revision().await.is_ok();
    let topology = api.topology();
    let members = match topology {
        Some(t) => t.members().await.ok().flatten().map(|ms| {
            ms.iter()
                .map(|m| json!({"name": m.name, "clientUrls": m.client_urls}))
                .collect::<Vec<_>>()
        }),
        None => None,
    };
    json!({
        "replica": me,
        "leads": leads,
        "leader": leader.as_ref().ok().and_then(|l| l.as_ref()).map(|l| json!({"id": l.id, "term": l.term})),
        "leaderKnown": api.election().is_some() && leader.is_ok(),
        "replicas": replicas(api, leader_id.as_deref()).await,
        "store": {
            "kind": topology.map(|t| t.kind()),
            "reachable": reachable,
            "members": members,
        },
        "zones": zones(api).await,
        "warmNetworks": warm_networks(api).await,
    })
}

/// The warm task networks reserved per instance (managed-pool hosts keep pause containers
/// running for them): `[{"containerInstanceArn", "addresses": [IP...]}]`; `None` if the store
/// cannot be read.
async fn warm_networks(api: &Api) -> Option<Vec<Value>> {
    let all = flotilla_controllers::fargate::warm_addresses(api.store())
        .await
        .ok()?;
    Some(
        all.into_iter()
            .filter_map(|(key, addresses)| {
                let (cluster, id) = key.strip_prefix(CONTAINER_INSTANCES)?.split_once('/')?;
                Some(json!({
                    "containerInstanceArn": api.config.arns.container_instance(cluster, id),
                    "addresses": addresses,
                }))
            })
            .collect(),
    )
}

/// The replicas: those recorded in a shared store, or this server alone; `None` if unknown.
async fn replicas(api: &Api, leader: Option<&str>) -> Option<Vec<Value>> {
    let shared = api.topology().is_some_and(|t| t.shared());
    let all: Vec<ReplicaInfo> = if shared {
        records::list::<ReplicaInfo>(api.store(), REPLICAS)
            .await
            .ok()?
            .into_iter()
            .map(|(_, r, _)| r)
            .collect()
    } else {
        vec![api.replica()?.clone()]
    };
    Some(
        all.into_iter()
            .map(|r| {
                let lead = leader.map(|l| l == r.id);
                let mut v = json!(r);
                v["leader"] = json!(lead);
                v
            })
            .collect(),
    )
}

/// Container instances per availability zone (every cluster's and the managed pool's):
/// connected and disconnected agents; `None` if the store cannot be read.
async fn zones(api: &Api) -> Option<Vec<Value>> {
    let all = records::list::<InstanceRecord>(api.store(), CONTAINER_INSTANCES)
        .await
        .ok()?;
    let mut per: BTreeMap<Option<String>, (u32, u32)> = BTreeMap::new();
    for (_, i, _) in all {
        let e = per.entry(i.availability_zone.clone()).or_default();
        if i.instance.agent_connected {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    Some(
        per.into_iter()
            .map(|(zone, (c, d))| json!({"zone": zone, "connected": c, "disconnected": d}))
            .collect(),
    )
}

/// A Logs error as an admin operation answers it.
fn logs_error(e: flotilla_logs::LogsError) -> EcsError {
    use flotilla_logs::LogsErrorCode as L;
    use flotilla_model::ErrorCode as E;
    let code = match e.code {
        L::ResourceNotFoundException => E::ResourceNotFoundException,
        L::InvalidParameterException | L::ResourceAlreadyExistsException => {
            E::InvalidParameterException
        }
        _ => E::ServerException,
    };
    EcsError::new(code, e.message)
}

fn logs_of(api: &Api) -> Result<&std::sync::Arc<flotilla_logs_service::Logs>, EcsError> {
    api.logs().ok_or_else(|| {
        EcsError::server("this server does not serve CloudWatch Logs (it has no log store)")
    })
}

fn now_ms(api: &Api) -> i64 {
    (api.clock.now() * 1000.0) as i64
}

async fn open_log_stream(api: &Api, input: &Value) -> Result<Value, EcsError> {
    let logs = logs_of(api)?;
    let text = |k: &str| {
        input[k]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| EcsError::invalid_parameter(format!("{k} must be a string.")))
    };
    let arn = text("containerInstanceArn")?;
    let (Some(cluster), Some(instance)) = (
        flotilla_model::arn::embedded_cluster(&arn),
        flotilla_model::arn::resource_name(&arn, "container-instance"),
    ) else {
        return Err(EcsError::invalid_parameter(
            "containerInstanceArn must be a container instance ARN (long format).",
        ));
    };
    let owner = flotilla_logs_service::Owner::Agent {
        cluster: cluster.to_string(),
        instance: instance.to_string(),
    };
    let generation = flotilla_logs_service::streams::open_agent_stream(
        logs,
        owner,
        &text("logGroupName")?,
        &text("logStreamName")?,
        input["createGroup"].as_bool().unwrap_or(false),
        now_ms(api),
    )
    .await
    .map_err(logs_error)?;
    Ok(json!({ "generation": generation }))
}

async fn log_query(api: &Api, input: &Value) -> Result<Value, EcsError> {
    let logs = logs_of(api)?;
    let owner: flotilla_logs_service::Owner = serde_json::from_value(input["owner"].clone())
        .map_err(|e| EcsError::invalid_parameter(format!("owner: {e}")))?;
    let request: flotilla_logs::query::LogRequest =
        serde_json::from_value(input["request"].clone())
            .map_err(|e| EcsError::invalid_parameter(format!("request: {e}")))?;
    let agents = api.agent_logs().map(|a| a.as_ref());
    let answer = match agents {
        Some(agents) => crate::logs::local_query(logs, agents, &owner, request, now_ms(api)).await,
        None => None,
    };
    match answer {
        Some(Ok(r)) => serde_json::to_value(r)
            .map_err(|e| EcsError::server(format!("could not encode the answer: {e}"))),
        Some(Err(e)) => Err(logs_error(e)),
        None => Err(EcsError::server(format!(
            "{owner} is not reachable from this replica (no session of it here)"
        ))),
    }
}

fn metric_query(api: &Api, input: &Value) -> Result<Value, EcsError> {
    let series = api
        .metric_series()
        .ok_or_else(|| EcsError::server("this replica keeps no metric series"))?;
    let q: flotilla_cloudwatch::reader::PeerQuery = serde_json::from_value(input.clone())
        .map_err(|e| EcsError::invalid_parameter(format!("MetricQuery: {e}")))?;
    serde_json::to_value(flotilla_cloudwatch::reader::answer_locally(series, &q))
        .map_err(|e| EcsError::server(format!("could not encode the answer: {e}")))
}

async fn resolve_name(api: &Api, input: &Value) -> Result<Value, EcsError> {
    use flotilla_protocol::dns::{
        ResolveNameAnswer, ResolveNameRequest, ResolvedData, ResolvedRecord,
    };
    use flotilla_servicediscovery::dns::{self, Answer, QueryType, RecordData};
    let req: ResolveNameRequest = serde_json::from_value(input.clone()).map_err(|e| {
        EcsError::invalid_parameter(format!("ResolveName takes {{\"name\", \"type\"}}: {e}"))
    })?;
    let code = req.type_code().ok_or_else(|| {
        EcsError::invalid_parameter(format!(
            "type must be A, AAAA, SRV or a DNS type number, not {:?}.",
            req.record_type
        ))
    })?;
    let answer = dns::resolve(
        api.plane.store.as_ref(),
        &req.name,
        QueryType::from_code(code),
    )
    .await
    .map_err(|e| EcsError::server(e.message))?;
    let wire = |r: dns::Record| ResolvedRecord {
        name: r.name,
        ttl: r.ttl,
        data: match r.data {
            RecordData::A(address) => ResolvedData::A { address },
            RecordData::Aaaa(address) => ResolvedData::Aaaa { address },
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => ResolvedData::Srv {
                priority,
                weight,
                port,
                target,
            },
        },
    };
    let out = match answer {
        Answer::Records {
            answers,
            additionals,
        } => ResolveNameAnswer::Records {
            answers: answers.into_iter().map(wire).collect(),
            additionals: additionals.into_iter().map(wire).collect(),
        },
        Answer::NxDomain { zone } => ResolveNameAnswer::NxDomain { zone },
        Answer::NotOurs => ResolveNameAnswer::NotOurs,
    };
    serde_json::to_value(out)
        .map_err(|e| EcsError::server(format!("could not encode the answer: {e}")))
}

/// `FlotillaAdmin.LoadBalancing`: every load balancer with its listeners and rules, and every
/// target group with its targets' health, as one JSON document (for `flotilla lb`).
async fn load_balancing(api: &Api) -> Result<Value, EcsError> {
    let snap = flotilla_elbv2::targets::snapshot(api.store.as_ref())
        .await
        .map_err(|e| EcsError::server(e.to_string()))?;
    let lbs: Vec<Value> = snap
        .load_balancers
        .iter()
        .map(|lb| {
            let listeners: Vec<Value> = lb
                .listeners
                .iter()
                .map(|l| {
                    let rules: Vec<Value> = l
                        .rules
                        .iter()
                        .map(|r| {
                            let conditions: Vec<Value> = r
                                .conditions
                                .iter()
                                .map(|c| match c {
                                    flotilla_elbv2::record::Condition::PathPattern(v) => {
                                        json!({"field": "path-pattern", "values": v})
                                    }
                                    flotilla_elbv2::record::Condition::HostHeader(v) => {
                                        json!({"field": "host-header", "values": v})
                                    }
                                })
                                .collect();
                            let forward: Vec<Value> = r
                                .forward
                                .iter()
                                .map(|w| json!({"targetGroupArn": w.target_group_arn, "weight": w.weight}))
                                .collect();
                            json!({"ruleArn": r.arn, "priority": r.priority, "conditions": conditions, "forward": forward})
                        })
                        .collect();
                    json!({"listenerArn": l.arn, "protocol": l.protocol.shape().as_str(), "port": l.port, "rules": rules})
                })
                .collect();
            json!({"loadBalancerArn": lb.arn, "name": lb.name, "type": lb.kind.shape().as_str(),
                   "dnsName": lb.dns_name, "listeners": listeners})
        })
        .collect();
    let groups: Vec<Value> = snap
        .target_groups
        .iter()
        .map(|g| {
            let targets: Vec<Value> = g
                .targets
                .iter()
                .map(|t| {
                    json!({"id": t.health.id, "port": t.health.port, "address": t.address,
                           "state": t.health.state.as_str(),
                           "reason": t.health.reason.map(|r| r.as_str()),
                           "description": t.health.description})
                })
                .collect();
            json!({"targetGroupArn": g.arn, "name": g.name, "protocol": g.protocol.shape().as_str(),
                   "port": g.port, "inUse": g.in_use, "targets": targets})
        })
        .collect();
    Ok(json!({"loadBalancers": lbs, "targetGroups": groups}))
}
