//! The one writer of placements: RunTask and StartTask plan against a snapshot of the cluster and
//! commit the new tasks together with the reservations they take, in one transaction.
//!
//! How a request is placed ([`place`]), serialized with the other placements on the same
//! cluster in this process:
//! 1. plan with `flotilla_scheduler` (pure: strategies, constraints, resources) on the replica's
//!    [`crate::instance_cache::InstanceCache`] once it has caught up with the store (its kept
//!    scheduler cluster, no store read), else on the cluster's instances (each with its
//!    `mod_revision`) and custom attributes read from the store;
//! 2. write, in ONE transaction, every new task (`Absent`; what it holds on its instance is
//!    in its record), every touched instance's placement guard (compare-and-swap on the
//!    `mod_revision` the plan saw, with the instance record's own compared unchanged) and, with a
//!    `clientToken`, the token record (`Absent`);
//! 3. on a conflict, start over from step 1 (after a short backoff; the cache has by then
//!    caught up with the write that won).
//!
//! A split over custom capacity providers (RunTask's or a service's strategy) is planned per
//! provider on that provider's hosts only ([`plan_on_providers`]), and committed in the same one
//! transaction.
//!
//! The service loop's placements carry its term's fence (a deposed leader places nothing);
//! RunTask's and StartTask's, made by any replica, carry none.
//!
//! Invariant: a task is only written against the instance record and the placement guard
//! revisions the plan saw, and the plan saw every task that holds anything there up to that
//! guard revision (the cache has caught up with the store; the store path lists the guards
//! before the tasks), so concurrent placements never over-commit an instance
//! (`tests/placement.rs` checks it).
//!
//! What it is not: request validation (the handlers do it before calling in) or the agent push
//! (the session sees the new task records through its watch).

use crate::instance_cache::{Cached, TaskHold};
use crate::plane::Plane;
use crate::records::{
    self, get, instance_prefix, task_key, to_bytes, ClientTokenRecord, ATTRIBUTES,
};
use flotilla_control::instances::{
    custom_attribute, Held, InstanceRecord, Reservation, NOTHING_HELD,
};
use flotilla_control::keys::{placement_guard_key, placement_guard_prefix, PLACEMENT_GUARD_VALUE};
use flotilla_control::launch::placement_error;
use flotilla_control::service_scheduler::Unplaced;
use flotilla_control::tasks::{Status, TaskRecord};
use flotilla_control::template::TaskTemplate;
use flotilla_model::shapes::{Attribute, Container, EphemeralStorage, Failure, NetworkMode, Task};
use flotilla_model::status::{ContainerStatus, TaskStatus};
use flotilla_model::{EcsError, ErrorCode};
use flotilla_protocol::{ContainerAssignment, DesiredStatus, TaskAssignment, TaskNetwork};
use flotilla_scheduler::{self as sched, PlacementError};
use flotilla_store::{Compare, Fence, Txn};
use std::collections::{BTreeSet, HashMap};

/// Where to place.
#[derive(Debug, Clone)]
pub enum Target {
    /// RunTask: `count` tasks with strategies and constraints.
    Run(Box<sched::PlacementRequest>),
    /// StartTask: one task on each named instance (id or ARN).
    Start(Box<sched::PlacementRequest>, Vec<String>),
}

/// A RunTask `clientToken` to record with the tasks.
#[derive(Debug, Clone)]
pub struct Token {
    /// Its store key.
    pub key: String,
    /// Digest of the request.
    pub digest: String,
}

/// What became of a request: `F` is how its failures are told, ECS's [`Failure`] (RunTask's
/// and StartTask's `failures`) or the typed [`PlacementFailure`].
#[derive(Debug)]
pub enum Committed<F = Failure> {
    /// Tasks created (possibly none) and the failures.
    Placed(Vec<TaskRecord>, Vec<F>),
    /// The client token was already used; its record.
    TokenUsed(ClientTokenRecord),
}

impl Committed<PlacementFailure> {
    /// The outcome with ECS's `failures` (RunTask's and StartTask's answer).
    pub fn into_ecs(self) -> Committed {
        match self {
            Committed::Placed(tasks, failures) => Committed::Placed(
                tasks,
                failures.iter().map(PlacementFailure::to_ecs).collect(),
            ),
            Committed::TokenUsed(rec) => Committed::TokenUsed(rec),
        }
    }
}

/// A task that could not be placed: the instance that ruled it out (its ARN, or the id a
/// StartTask named), when one is named, and why, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementFailure {
    /// The container instance's ARN (or id).
    pub arn: Option<String>,
    /// Why.
    pub reason: Unplaced,
}

impl PlacementFailure {
    /// An instance's rejection.
    fn rejected(r: &sched::InstanceRejection) -> Self {
        PlacementFailure {
            arn: Some(r.arn.clone()),
            reason: Unplaced::Rejected(r.primary()),
        }
    }

    /// A failure no instance is named in.
    fn unnamed(reason: String) -> Self {
        PlacementFailure {
            arn: None,
            reason: Unplaced::Other(reason),
        }
    }

    /// The managed pool has no room: its hosts are Flotilla's, never named in a failure.
    fn no_capacity() -> Self {
        Self::unnamed(flotilla_control::launch::NO_CAPACITY_REASON.into())
    }

    /// As RunTask's and StartTask's `failures` list it.
    pub fn to_ecs(&self) -> Failure {
        Failure {
            arn: self.arn.clone(),
            reason: Some(self.reason.as_ecs_str().to_string()),
            detail: None,
        }
    }
}

/// A new 32-character lowercase hex id, as ECS's long-format task and instance ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The custom attributes of every instance of a cluster, by instance id.
pub async fn custom_attributes(
    store: &dyn flotilla_store::Store,
    cluster: &str,
) -> Result<HashMap<String, Vec<Attribute>>, EcsError> {
    let mut out: HashMap<String, Vec<Attribute>> = HashMap::new();
    let prefix = format!("{ATTRIBUTES}{cluster}/");
    for (key, a, _) in records::list::<Attribute>(store, &prefix).await? {
        let id = key
            .strip_prefix(&prefix)
            .and_then(|r| r.split('/').next())
            .unwrap_or("")
            .to_string();
        out.entry(id).or_default().push(custom_attribute(&a));
    }
    Ok(out)
}

/// Where one new task goes: its instance, the scheduler's placement there, what it reserves,
/// its capacity provider and its task network address.
struct Slot<'a> {
    inst: &'a InstanceRecord,
    placement: &'a sched::Placement,
    demand: &'a sched::Demand,
    provider: Option<&'a String>,
    network: Option<TaskNetwork>,
}

fn build_task(plane: &Plane, now: f64, t: &TaskTemplate, slot: Slot<'_>) -> TaskRecord {
    let Slot {
        inst,
        placement,
        demand,
        provider,
        network,
    } = slot;
    let arns = &plane.arns;
    let id = new_id();
    let now = flotilla_control::timestamp(now);
    let task_arn = arns.task(&t.cluster, &id);
    let cluster_arn = arns.cluster(&t.cluster);
    let td = &t.task_definition;
    let td_arn = td.task_definition_arn.clone().unwrap_or_default();
    let mut containers = Vec::new();
    let mut assigned = Vec::new();
    for def in &t.resolved.containers {
        let container_arn = arns.container(&t.cluster, &id, &uuid::Uuid::new_v4().to_string());
        containers.push(Container {
            container_arn: Some(container_arn.clone()),
            task_arn: Some(task_arn.clone()),
            name: def.name.clone(),
            image: def.image.clone(),
            network_bindings: Some(Vec::new()),
            network_interfaces: Some(Vec::new()),
            cpu: Some(def.cpu.to_string()),
            memory: def.memory.map(|m| m.to_string()),
            memory_reservation: def.memory_reservation.map(|m| m.to_string()),
            // ECS Exec: the agent reports it RUNNING once the container runs.
            managed_agents: t
                .enable_execute_command
                .then(|| vec![flotilla_control::exec::pending_agent()]),
            ..Container::default()
        });
        assigned.push(ContainerAssignment {
            container_arn,
            definition: def.clone(),
        });
    }
    let mut overrides = t.overrides.clone();
    overrides.container_overrides = Some(overrides.container_overrides.unwrap_or_default());
    overrides.inference_accelerator_overrides = Some(
        overrides
            .inference_accelerator_overrides
            .unwrap_or_default(),
    );
    let fargate = t.fargate.as_ref();
    let task = Task {
        attachments: Some(Vec::new()),
        availability_zone: inst.availability_zone.clone(),
        capacity_provider_name: provider.cloned(),
        cluster_arn: Some(cluster_arn.clone()),
        // A Fargate task runs on no container instance the user could see.
        container_instance_arn: fargate.is_none().then(|| inst.arn().to_string()),
        platform_version: fargate.map(|f| f.platform_version.clone()),
        platform_family: fargate
            .map(|_| flotilla_model::fargate::PLATFORM_FAMILY_LINUX.to_string()),
        ephemeral_storage: fargate.map(|f| EphemeralStorage {
            size_in_gi_b: f.ephemeral_storage_gib,
        }),
        containers: Some(containers),
        cpu: t.resolved.cpu.map(|c| c.to_string()),
        created_at: Some(now),
        enable_execute_command: t.enable_execute_command,
        group: Some(t.group.clone()),
        launch_type: Some(t.launch_type),
        memory: t.resolved.memory.map(|m| m.to_string()),
        overrides: Some(overrides),
        started_by: t.started_by.clone(),
        tags: Some(t.tags.clone()),
        task_arn: Some(task_arn.clone()),
        task_definition_arn: Some(td_arn.clone()),
        version: 1,
        ..Task::default()
    };
    let assignment = TaskAssignment {
        task_arn: task_arn.clone(),
        cluster_arn,
        task_definition_arn: td_arn,
        version: 1,
        desired_status: DesiredStatus::Running,
        stop_reason: None,
        stop_code: None,
        network_mode: td.network_mode.unwrap_or(NetworkMode::Bridge),
        cpu: t.resolved.cpu,
        memory: t.resolved.memory,
        volumes: td.volumes.clone().unwrap_or_default(),
        pid_mode: td.pid_mode.map(|p| p.as_str().to_string()),
        ipc_mode: td.ipc_mode.map(|p| p.as_str().to_string()),
        containers: assigned,
        network,
        stop_grace_seconds: None,
        // RunTask's override wins over the task definition's, as in ECS.
        task_role_arn: t
            .overrides
            .task_role_arn
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| td.task_role_arn.clone()),
        service_name: t.group.strip_prefix("service:").map(str::to_string),
        enable_execute_command: t.enable_execute_command,
    };
    // An awsvpc task starts with its network being provisioned.
    let first = if assignment.network.is_some() {
        TaskStatus::Provisioning
    } else {
        TaskStatus::Pending
    };
    let reservation = Reservation {
        task_arn: task_arn.into(),
        cpu: demand.cpu,
        memory: demand.memory,
        ports: placement.host_ports.clone(),
        ports_udp: placement.host_ports_udp.clone(),
        group: t.group.as_str().into(),
        family: td.family.as_deref().unwrap_or_default().into(),
        revision: u32::try_from(td.revision).unwrap_or(0),
        started_by: t.started_by.as_deref().map(Into::into),
    };
    TaskRecord {
        container_status: vec![ContainerStatus::Pending; t.resolved.containers.len()],
        task,
        last_status: Status(first),
        cluster: t.cluster.clone(),
        id,
        instance_id: inst.id.clone(),
        assignment: Some(assignment),
        reservation,
        credentials: Vec::new(),
        stop_after: None,
        failed_target_health: false,
        protection: None,
    }
}

/// Plans and commits one request (see the module docs); each failure's reason is typed (the
/// service loop tells it in its events; API requests answer [`Committed::into_ecs`]). `fence`: the
/// term of the controller placing (`None` for an API request).
pub async fn place(
    plane: &Plane,
    now: f64,
    template: &TaskTemplate,
    target: &Target,
    token: Option<&Token>,
    fence: Option<&Fence>,
) -> Result<Committed<PlacementFailure>, EcsError> {
    let demand = template
        .spec
        .demand()
        .map_err(|e| placement_error(e.into()))?;
    let pool = flotilla_control::launch::host_cluster(template.launch_type, &template.cluster);
    // Serialized with the other placements on the pool in this process (a lost compare is
    // then a race with another replica or another writer of an instance).
    let _serial = plane.writers.lock(&instance_prefix(pool)).await;
    let mut placed = None;
    for n in 0..records::CAS_MAX_ATTEMPTS {
        if let Some(tok) = token {
            if let Some((rec, _)) = get::<ClientTokenRecord>(plane.store(), &tok.key).await? {
                placed = Some(Committed::TokenUsed(rec));
                break;
            }
        }
        match plan_and_write(plane, now, template, target, token, &demand).await? {
            Planned::Done(v) => {
                placed = Some(v);
                break;
            }
            Planned::Commit {
                txn,
                outcome,
                used,
                tentative,
            } => {
                let at = records::commit_fenced_at(plane.store(), txn, fence).await?;
                if let (Some(rev), Committed::Placed(tasks, _)) = (at, &outcome) {
                    let holds: Vec<TaskHold> = tasks.iter().filter_map(TaskHold::of).collect();
                    plane.tasks.instances.placed(pool, &used, &holds, rev);
                }
                drop(tentative);
                if at.is_some() {
                    placed = Some(outcome);
                    break;
                }
            }
        }
        tokio::time::sleep(records::backoff(n)).await;
    }
    let placed = placed.ok_or_else(records::contention)?;
    if let Committed::Placed(tasks, _) = &placed {
        for t in tasks {
            tracing::info!(task = %t.arn(), container_instance = %t.instance_id, cluster = %t.cluster, "task placed");
        }
    }
    Ok(placed)
}

/// The scheduler's plan on the cluster's snapshot: what it placed and the failures; `None` when
/// a Fargate request finds no host in the managed pool at all (no capacity, nothing to write).
#[allow(clippy::type_complexity)] // One use; a named type would say no more.
fn plan(
    cluster: &mut sched::Cluster,
    template: &TaskTemplate,
    target: &Target,
) -> Result<Option<(sched::PlacementOutcome, Vec<PlacementFailure>)>, EcsError> {
    Ok(Some(match target {
        Target::Run(req) if template.fargate.is_some() => {
            let o = match cluster.place(req) {
                Ok(o) => o,
                Err(PlacementError::NoContainerInstances) => return Ok(None),
                Err(e) => return Err(placement_error(e)),
            };
            let short = o.placements.len() < usize::try_from(req.count).unwrap_or(0);
            let f = if short {
                vec![PlacementFailure::no_capacity()]
            } else {
                Vec::new()
            };
            (o, f)
        }
        Target::Run(req) => {
            let o = cluster.place(req).map_err(placement_error)?;
            let f = o
                .rejections
                .iter()
                .filter(|r| r.primary().reported_by_ecs())
                .map(PlacementFailure::rejected)
                .collect();
            (o, f)
        }
        Target::Start(req, names) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let o = cluster.start_on(req, &refs).map_err(placement_error)?;
            let f = o
                .rejections
                .iter()
                .map(PlacementFailure::rejected)
                .collect();
            (o, f)
        }
    }))
}

/// The scheduler's snapshot of these instances, with what their tasks hold.
fn snapshot_of<'a>(
    instances: impl Iterator<Item = &'a InstanceRecord>,
    custom: &HashMap<String, Vec<Attribute>>,
    held: &HashMap<String, Held>,
) -> sched::Snapshot {
    sched::Snapshot::new(
        instances
            .map(|r| {
                r.to_scheduler(
                    custom.get(&r.id).map_or(&[], |v| v),
                    held.get(&r.id).unwrap_or(&NOTHING_HELD),
                )
            })
            .collect(),
    )
}

/// A RunTask split over custom capacity providers: each provider's batch
/// (`flotilla_control::launch::provider_batches`) is planned on that provider's hosts only,
/// so a task runs only on a host of its provider; placements come back with instance indexes
/// into `instances` and their provider. A provider with no host in the cluster fails the request
/// as ECS does ("No Container Instances were found in your capacity provider.").
#[allow(clippy::type_complexity)] // One use; a named type would say no more.
fn plan_on_providers(
    instances: &[Cached],
    custom: &HashMap<String, Vec<Attribute>>,
    held: &HashMap<String, Held>,
    template: &TaskTemplate,
    req: &sched::PlacementRequest,
) -> Result<
    (
        Vec<(sched::Placement, Option<String>)>,
        Vec<PlacementFailure>,
    ),
    EcsError,
> {
    let mut placed = Vec::new();
    let mut failures = Vec::new();
    for (provider, count) in flotilla_control::launch::provider_batches(&template.providers) {
        let members: Vec<usize> = instances
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                flotilla_control::launch::runs_on(
                    &provider,
                    c.record.instance.capacity_provider_name.as_deref(),
                )
            })
            .map(|(i, _)| i)
            .collect();
        if members.is_empty() {
            return Err(EcsError::invalid_parameter(
                flotilla_control::launch::NO_PROVIDER_INSTANCES,
            ));
        }
        let snapshot = snapshot_of(members.iter().map(|&i| &*instances[i].record), custom, held);
        let mut cluster = sched::Cluster::new(snapshot);
        let mut batch = req.clone();
        batch.count = count;
        let o = cluster.place(&batch).map_err(placement_error)?;
        failures.extend(
            o.rejections
                .iter()
                .filter(|r| r.primary().reported_by_ecs())
                .map(PlacementFailure::rejected),
        );
        for mut p in o.placements {
            p.instance_index = members[p.instance_index];
            placed.push((p, Some(provider.clone())));
        }
    }
    Ok((placed, failures))
}

/// What one attempt decided.
enum Planned<'a> {
    /// Nothing to write.
    Done(Committed<PlacementFailure>),
    /// Commit `txn`; the outcome if it commits.
    Commit {
        txn: Txn,
        outcome: Committed<PlacementFailure>,
        /// The ids of the instances whose placement guards it writes.
        used: Vec<String>,
        /// The plan's tentative reservations on the instance cache's kept cluster, when it
        /// planned there.
        tentative: Option<crate::instance_cache::Tentative<'a>>,
    },
}

/// Placements, each with its capacity provider, and the failures.
type Plan = (
    Vec<(sched::Placement, Option<String>)>,
    Vec<PlacementFailure>,
);

/// A plan's placements, each with the capacity provider of its place in the template's
/// split; `None` when a Fargate request found no host in the managed pool.
fn with_providers(
    planned: Option<(sched::PlacementOutcome, Vec<PlacementFailure>)>,
    template: &TaskTemplate,
) -> Option<Plan> {
    let (outcome, failures) = planned?;
    let placed = outcome
        .placements
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, template.providers.get(i).cloned()))
        .collect();
    Some((placed, failures))
}

/// Nothing placed: no capacity at all (a Fargate request and no host in the managed pool).
fn no_capacity<'a>() -> Planned<'a> {
    Planned::Done(Committed::Placed(
        Vec::new(),
        vec![PlacementFailure::no_capacity()],
    ))
}

/// One attempt: plans on the replica's instance cache (once it has caught up with the store;
/// a split over custom capacity providers, and a replica whose cache cannot say, read the
/// store), and builds the transaction that writes the new tasks with their reservations.
async fn plan_and_write<'a>(
    plane: &'a Plane,
    now: f64,
    template: &TaskTemplate,
    target: &Target,
    token: Option<&Token>,
    demand: &sched::Demand,
) -> Result<Planned<'a>, EcsError> {
    let pool = flotilla_control::launch::host_cluster(template.launch_type, &template.cluster);
    let on_providers = matches!(target, Target::Run(_))
        && flotilla_control::launch::on_custom_providers(template.launch_type, &template.providers);
    let cached = !on_providers && plane.tasks.caught_up(&plane.store).await;
    // The instances placed on (at least), by id.
    let instances: HashMap<String, Cached>;
    let mut tentative = None;
    let (placements, mut failures): Plan = if cached {
        let (planned, used, t) = plane.tasks.instances.plan(
            pool,
            |cluster| plan(cluster, template, target),
            |r| match r {
                Ok(Some((o, _))) => o
                    .placements
                    .iter()
                    .map(|p| p.container_instance_id.clone())
                    .collect(),
                _ => Vec::new(),
            },
        );
        tentative = Some(t);
        instances = used;
        match with_providers(planned?, template) {
            Some(plan) => plan,
            None => return Ok(no_capacity()),
        }
    } else {
        // The guards first: a placement committed after this read changes a guard (and the
        // commit's compare fails); one committed before it is in the tasks read after.
        let guards: HashMap<String, u64> = plane
            .store()
            .list(&placement_guard_prefix(pool), None, 0)
            .await
            .map_err(records::store_error)?
            .items
            .into_iter()
            .filter_map(|kv| {
                let id = kv
                    .key
                    .strip_prefix(&placement_guard_prefix(pool))?
                    .to_string();
                Some((id, kv.mod_revision))
            })
            .collect();
        let all = records::list::<InstanceRecord>(plane.store(), &instance_prefix(pool)).await?;
        let listed: Vec<Cached> = all
            .into_iter()
            .filter(|(_, r, _)| r.status() != sched::InstanceStatus::Inactive)
            .map(|(key, r, rev)| Cached {
                guard_rev: guards.get(&r.id).copied().unwrap_or(0),
                key,
                record: std::sync::Arc::new(r),
                rev,
            })
            .collect();
        let custom = custom_attributes(plane.store(), pool).await?;
        let held = crate::held::by_instance(plane, pool).await?;
        let planned = match target {
            Target::Run(req) if on_providers => {
                plan_on_providers(&listed, &custom, &held, template, req)?
            }
            _ => {
                let snapshot = snapshot_of(listed.iter().map(|c| &*c.record), &custom, &held);
                let mut cluster = sched::Cluster::new(snapshot);
                match with_providers(plan(&mut cluster, template, target)?, template) {
                    Some(plan) => plan,
                    None => return Ok(no_capacity()),
                }
            }
        };
        instances = listed
            .into_iter()
            .map(|c| (c.record.id.clone(), c))
            .collect();
        planned
    };
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut tasks = Vec::new();
    let mut book = match template.awsvpc {
        Some(_) => Some(crate::fargate::AddressBook::read(plane.store()).await?),
        None => None,
    };
    // Hosts with warm task networks give their tasks one (a running pause container waits for
    // it there); the others' tasks get a fresh address.
    let mut warm = match template.awsvpc {
        Some(_) => Some(crate::fargate::WarmPool::read(plane.store(), pool).await?),
        None => None,
    };
    let mut warm_taken: BTreeSet<String> = BTreeSet::new();
    for (p, provider) in &placements {
        let Some(Cached { record: inst, .. }) = instances.get(&p.container_instance_id) else {
            return Err(EcsError::server("placement chose an unknown instance"));
        };
        let network = match (&template.awsvpc, book.as_mut()) {
            (Some(vpc), Some(book)) => {
                let cidr = &plane.fargate.task_network;
                if let Some(ip) = warm.as_mut().and_then(|w| w.take(&inst.id, cidr)) {
                    warm_taken.insert(ip.to_string());
                    Some(crate::fargate::task_network(cidr, ip, vpc))
                } else {
                    let Some(ip) = book.take(cidr) else {
                        failures.push(PlacementFailure::unnamed(format!(
                            "No free address is left on the task network {cidr}."
                        )));
                        break;
                    };
                    Some(crate::fargate::task_network(cidr, ip, vpc))
                }
            }
            _ => None,
        };
        let slot = Slot {
            inst,
            placement: p,
            demand,
            provider: provider.as_ref(),
            network,
        };
        let rec = build_task(plane, now, template, slot);
        touched.insert(p.container_instance_id.clone());
        tasks.push(rec);
    }
    let mut txn = Txn::new();
    for id in &touched {
        if let Some(c) = instances.get(id) {
            let guard = placement_guard_key(pool, id);
            let unplaced = match c.guard_rev {
                0 => Compare::Absent(guard.clone()),
                rev => Compare::ModRevision(guard.clone(), rev),
            };
            txn = txn
                .when(Compare::ModRevision(c.key.clone(), c.rev))
                .when(unplaced)
                .put(guard, PLACEMENT_GUARD_VALUE.to_vec());
        }
    }
    for t in &tasks {
        let key = task_key(&t.cluster, &t.id);
        txn = txn
            .when(Compare::Absent(key.clone()))
            .put(key, to_bytes(t)?);
        if let Some(net) = t.network() {
            let akey = records::address_key(&net.private_ipv4_address);
            // A warm address's record exists (the instance's): it changes hands, guarded by
            // the warm record's compare.
            if !warm_taken.contains(&net.private_ipv4_address) {
                txn = txn.when(Compare::Absent(akey.clone()));
            }
            txn = txn.put(akey, t.arn().as_bytes().to_vec());
        }
    }
    if let Some(w) = warm.as_ref().filter(|w| w.changed()) {
        txn = w.commit(txn)?;
    }
    if let Some(book) = book.as_ref().filter(|_| !tasks.is_empty()) {
        txn = book.commit_cursor(txn)?;
    }
    if let Some(tok) = token {
        let rec = ClientTokenRecord {
            request_digest: tok.digest.clone(),
            task_arns: tasks.iter().map(|t| t.arn().to_string()).collect(),
            failures: failures.iter().map(PlacementFailure::to_ecs).collect(),
            created_at: now,
        };
        txn = txn
            .when(Compare::Absent(tok.key.clone()))
            .put(tok.key.clone(), to_bytes(&rec)?);
    }
    Ok(Planned::Commit {
        txn,
        outcome: Committed::Placed(tasks, failures),
        used: touched.into_iter().collect(),
        tentative,
    })
}

/// The ECS error for a RunTask `clientToken` reused with another request.
pub fn token_conflict(rec: &ClientTokenRecord) -> EcsError {
    EcsError::new(
        ErrorCode::ConflictException,
        format!(
            "The clientToken was already used by a different request, which started: [{}].",
            rec.task_arns.join(", ")
        ),
    )
}
