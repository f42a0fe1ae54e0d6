//! DescribeServiceRevisions: up to 20 service revisions by ARN
//! (`arn:aws:ecs:REGION:ACCOUNT:service-revision/CLUSTER/SERVICE/ID`). A revision is what a
//! deployment deploys (one per deployment, the same id): its task definition, with the
//! service's launch type, load balancers, service registries and network configuration, and the
//! container images of the task definition. An ARN naming no revision is a failure with reason
//! `MISSING`.

use crate::context::Ctx;
use crate::shared::deployments::find;
use crate::shared::missing;
use flotilla_control::task_definitions::parse_ref;
use flotilla_controllers::records::load_task_definition as load;
use flotilla_model::shapes::{
    ContainerImage, DescribeServiceRevisionsRequest, DescribeServiceRevisionsResponse,
    ServiceRevision,
};
use flotilla_model::EcsError;

/// DescribeServiceRevisions.
pub async fn describe_service_revisions(
    ctx: &Ctx<'_>,
    req: DescribeServiceRevisionsRequest,
) -> Result<DescribeServiceRevisionsResponse, EcsError> {
    if req.service_revision_arns.is_empty() || req.service_revision_arns.len() > 20 {
        return Err(EcsError::invalid_parameter(
            "serviceRevisionArns can have at most 20 items and at least 1.",
        ));
    }
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for arn in &req.service_revision_arns {
        let Some((rec, _, d)) = find(ctx, arn, "service-revision").await? else {
            failures.push(missing(arn.clone()));
            continue;
        };
        let td = match parse_ref(&d.task_definition) {
            Ok(r) => load(ctx.store(), &r)
                .await?
                .and_then(|(t, _)| t.task_definition),
            Err(_) => None,
        };
        let images: Vec<ContainerImage> = td
            .and_then(|t| t.container_definitions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| ContainerImage {
                container_name: c.name,
                image_digest: None,
                image: c.image,
            })
            .collect();
        let s = &rec.service;
        found.push(ServiceRevision {
            service_revision_arn: Some(rec.revision_arn(ctx.arns(), &d.id)),
            service_arn: Some(rec.arn().to_string()),
            cluster_arn: Some(ctx.arns().cluster(&rec.cluster)),
            task_definition: Some(d.task_definition.clone()),
            launch_type: s.launch_type,
            load_balancers: s.load_balancers.clone(),
            service_registries: s.service_registries.clone(),
            network_configuration: s.network_configuration.clone(),
            container_images: Some(images),
            created_at: Some(d.created_at),
            ..ServiceRevision::default()
        });
    }
    Ok(DescribeServiceRevisionsResponse {
        service_revisions: Some(found),
        failures: Some(failures),
    })
}
