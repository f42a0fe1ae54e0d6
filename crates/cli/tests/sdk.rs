//! The AWS SDK for Rust (`aws-sdk-ecs`) against a real `flotilla dev`: clusters, task
//! definitions, pagination and modeled errors, as a Rust program would use them.

mod support;

use aws_sdk_ecs::types::{ContainerDefinition, PortMapping, SortOrder, TaskDefinitionStatus};

#[tokio::test]
async fn rust_sdk_manages_clusters_and_task_definitions() {
    let server = support::start();
    let ecs = support::client(&server);

    let created = ecs
        .create_cluster()
        .cluster_name("sdk")
        .send()
        .await
        .unwrap();
    let cluster = created.cluster.unwrap();
    assert_eq!(cluster.status.as_deref(), Some("ACTIVE"));
    assert_eq!(
        cluster.cluster_arn.as_deref(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/sdk")
    );

    let described = ecs
        .describe_clusters()
        .clusters("sdk")
        .clusters("missing")
        .send()
        .await
        .unwrap();
    assert_eq!(described.clusters().len(), 1);
    assert_eq!(described.failures()[0].reason.as_deref(), Some("MISSING"));

    for i in 0..3 {
        let out = ecs
            .register_task_definition()
            .family("sdk-web")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("busybox")
                    .memory(64 + i)
                    .port_mappings(PortMapping::builder().container_port(80).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let td = out.task_definition.unwrap();
        assert_eq!(td.revision, i + 1);
        assert_eq!(td.status, Some(TaskDefinitionStatus::Active));
        assert!(td.registered_at.is_some());
    }

    let latest = ecs
        .describe_task_definition()
        .task_definition("sdk-web")
        .send()
        .await
        .unwrap();
    let td = latest.task_definition.unwrap();
    assert_eq!(td.revision, 3);
    assert_eq!(td.container_definitions()[0].memory, Some(66));

    let pages: Vec<String> = ecs
        .list_task_definitions()
        .family_prefix("sdk-web")
        .sort(SortOrder::Desc)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    assert!(
        pages[0].ends_with("sdk-web:3") && pages[2].ends_with("sdk-web:1"),
        "{pages:?}"
    );

    let err = ecs
        .delete_cluster()
        .cluster("nope")
        .send()
        .await
        .unwrap_err();
    let service_err = err.into_service_error();
    assert!(
        service_err.is_cluster_not_found_exception(),
        "{service_err:?}"
    );

    let err = ecs
        .describe_task_definition()
        .task_definition("nope:1")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_client_exception());

    let deleted = ecs.delete_cluster().cluster("sdk").send().await.unwrap();
    assert_eq!(deleted.cluster.unwrap().status.as_deref(), Some("INACTIVE"));
}
