//! One handler per ECS operation, and the dispatch table that routes to them.
//!
//! Each handler lives in a file named after its operation (`create_cluster.rs` defines
//! `create_cluster`), takes the request context and the generated request type, and returns the
//! generated response type or an [`EcsError`]. The request was validated against the model before
//! the handler runs; handlers check ECS's semantic rules and act on the store.
//!
//! Operations of the model that Flotilla does not serve yet answer `UnsupportedFeatureException`
//! with a message naming the operation, never a fake success.

use crate::context::Ctx;
use flotilla_model::validate::parse_input;
use flotilla_model::{EcsError, ErrorCode, Operation};
use serde_json::Value;

pub mod account_settings;
pub mod attributes;
pub mod create_capacity_provider;
pub mod create_cluster;
pub mod create_service;
pub mod create_task_set;
pub mod delete_capacity_provider;
pub mod delete_cluster;
pub mod delete_service;
pub mod delete_task_definitions;
pub mod delete_task_set;
pub mod deregister_container_instance;
pub mod deregister_task_definition;
pub mod describe_capacity_providers;
pub mod describe_clusters;
pub mod describe_container_instances;
pub mod describe_service_deployments;
pub mod describe_service_revisions;
pub mod describe_services;
pub mod describe_task_definition;
pub mod describe_task_sets;
pub mod describe_tasks;
pub mod discover_poll_endpoint;
pub mod execute_command;
pub mod get_task_protection;
pub mod list_clusters;
pub mod list_container_instances;
pub mod list_service_deployments;
pub mod list_services;
pub mod list_task_definition_families;
pub mod list_task_definitions;
pub mod list_tasks;
pub mod put_cluster_capacity_providers;
pub mod register_container_instance;
pub mod register_task_definition;
pub mod run_task;
pub mod start_task;
pub mod stop_service_deployment;
pub mod stop_task;
pub mod tags;
pub mod update_capacity_provider;
pub mod update_cluster;
pub mod update_cluster_settings;
pub mod update_container_agent;
pub mod update_container_instances_state;
pub mod update_service;
pub mod update_service_primary_task_set;
pub mod update_task_protection;
pub mod update_task_set;

/// True when `value` is an ARN of another region or account than this server's. Such an ARN
/// names a resource this server does not hold, even when a local resource has the same name.
pub fn foreign_arn(ctx: &Ctx<'_>, value: &str) -> bool {
    value.starts_with("arn:")
        && flotilla_model::arn::parse(value)
            .is_some_and(|p| p.region != ctx.arns().region || p.account != ctx.arns().account)
}

/// The ACTIVE cluster a request addresses (its `cluster` member, else the cluster embedded in
/// the first long-format ARN it names, else `default`), by name; `ClusterNotFoundException`
/// otherwise, also for ARNs of another region or account.
pub async fn request_cluster(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    arns: &[&str],
) -> Result<String, EcsError> {
    if cluster.is_some_and(|c| foreign_arn(ctx, c)) {
        return Err(EcsError::cluster_not_found());
    }
    let named = flotilla_controllers::records::cluster_for(cluster, arns);
    let (c, _) =
        flotilla_controllers::records::active_cluster(ctx.store(), named.as_deref()).await?;
    Ok(c.cluster_name.unwrap_or_default())
}

/// The cluster an agent-facing request names: a user's ACTIVE cluster, or the managed pool
/// (`flotilla_protocol::MANAGED_POOL`), which is no cluster record.
pub async fn agent_cluster(ctx: &Ctx<'_>, cluster: Option<&str>) -> Result<String, EcsError> {
    if cluster == Some(flotilla_protocol::MANAGED_POOL) {
        return Ok(flotilla_protocol::MANAGED_POOL.to_string());
    }
    request_cluster(ctx, cluster, &[]).await
}

/// The response's wire form, encoded straight from the response type (no JSON tree between).
fn to_wire<T: serde::Serialize>(v: T) -> Result<Vec<u8>, EcsError> {
    serde_json::to_vec(&v)
        .map_err(|e| EcsError::server(format!("could not encode the response: {e}")))
}

macro_rules! dispatch_table {
    ($ctx:ident, $op:ident, $input:ident;
     wire { $( $wname:ident => $whandler:path ),* $(,)? }
     $( $name:ident => $handler:path ),* $(,)?) => {
        match $op {
            $(
                Operation::$wname => {
                    let req = parse_input(stringify!($wname), $input)?;
                    $whandler($ctx, req).await
                }
            )*
            $(
                Operation::$name => {
                    let req = parse_input(stringify!($name), $input)?;
                    to_wire($handler($ctx, req).await?)
                }
            )*
            other => Err(EcsError::new(
                ErrorCode::UnsupportedFeatureException,
                format!("{} is not supported by this Flotilla server yet.", other.name()),
            )),
        }
    };
}

/// Runs one operation on a JSON input and returns its JSON output, encoded. The handlers under
/// `wire` answer their output's wire form themselves (DescribeTaskDefinition writes it from
/// the record's encoded form, kept per revision).
pub async fn dispatch(ctx: &Ctx<'_>, op: Operation, input: Value) -> Result<Vec<u8>, EcsError> {
    dispatch_table!(ctx, op, input;
        wire {
            DescribeTaskDefinition => describe_task_definition::describe_task_definition,
        }
        CreateCluster => create_cluster::create_cluster,
        DescribeClusters => describe_clusters::describe_clusters,
        ListClusters => list_clusters::list_clusters,
        UpdateCluster => update_cluster::update_cluster,
        UpdateClusterSettings => update_cluster_settings::update_cluster_settings,
        PutClusterCapacityProviders => put_cluster_capacity_providers::put_cluster_capacity_providers,
        DeleteCluster => delete_cluster::delete_cluster,
        DescribeCapacityProviders => describe_capacity_providers::describe_capacity_providers,
        CreateCapacityProvider => create_capacity_provider::create_capacity_provider,
        UpdateCapacityProvider => update_capacity_provider::update_capacity_provider,
        DeleteCapacityProvider => delete_capacity_provider::delete_capacity_provider,
        RegisterTaskDefinition => register_task_definition::register_task_definition,
        ListTaskDefinitions => list_task_definitions::list_task_definitions,
        ListTaskDefinitionFamilies => list_task_definition_families::list_task_definition_families,
        DeregisterTaskDefinition => deregister_task_definition::deregister_task_definition,
        DeleteTaskDefinitions => delete_task_definitions::delete_task_definitions,
        TagResource => tags::tag_resource,
        UntagResource => tags::untag_resource,
        ListTagsForResource => tags::list_tags_for_resource,
        PutAttributes => attributes::put_attributes,
        DeleteAttributes => attributes::delete_attributes,
        ListAttributes => attributes::list_attributes,
        PutAccountSetting => account_settings::put_account_setting,
        PutAccountSettingDefault => account_settings::put_account_setting_default,
        DeleteAccountSetting => account_settings::delete_account_setting,
        ListAccountSettings => account_settings::list_account_settings,
        RegisterContainerInstance => register_container_instance::register_container_instance,
        DeregisterContainerInstance => deregister_container_instance::deregister_container_instance,
        DescribeContainerInstances => describe_container_instances::describe_container_instances,
        ListContainerInstances => list_container_instances::list_container_instances,
        UpdateContainerInstancesState => update_container_instances_state::update_container_instances_state,
        DiscoverPollEndpoint => discover_poll_endpoint::discover_poll_endpoint,
        ExecuteCommand => execute_command::execute_command,
        RunTask => run_task::run_task,
        StartTask => start_task::start_task,
        StopTask => stop_task::stop_task,
        DescribeTasks => describe_tasks::describe_tasks,
        ListTasks => list_tasks::list_tasks,
        CreateService => create_service::create_service,
        UpdateService => update_service::update_service,
        DeleteService => delete_service::delete_service,
        DescribeServices => describe_services::describe_services,
        ListServices => list_services::list_services,
        ListServiceDeployments => list_service_deployments::list_service_deployments,
        DescribeServiceDeployments => describe_service_deployments::describe_service_deployments,
        DescribeServiceRevisions => describe_service_revisions::describe_service_revisions,
        StopServiceDeployment => stop_service_deployment::stop_service_deployment,
        GetTaskProtection => get_task_protection::get_task_protection,
        UpdateTaskProtection => update_task_protection::update_task_protection,
        UpdateContainerAgent => update_container_agent::update_container_agent,
        CreateTaskSet => create_task_set::create_task_set,
        DescribeTaskSets => describe_task_sets::describe_task_sets,
        UpdateTaskSet => update_task_set::update_task_set,
        DeleteTaskSet => delete_task_set::delete_task_set,
        UpdateServicePrimaryTaskSet => update_service_primary_task_set::update_service_primary_task_set,
    )
}
