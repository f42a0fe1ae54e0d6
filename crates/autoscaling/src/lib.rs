//! Application Auto Scaling, served by Flotilla on the ECS endpoint
//! (`X-Amz-Target: AnyScaleFrontendService.*`, SigV4 scope `application-autoscaling`), for ECS
//! services: scalable targets (`ecs:service:DesiredCount` of `service/CLUSTER/SERVICE`), target
//! tracking and step scaling policies, and the activities that changed a service's desired count.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`resource`] (pure): what a request's target names, and the store keys.
//! - [`policy`] (pure): PutScalingPolicy's checks, the stored records, and the CloudWatch alarms
//!   a target tracking policy creates (`TargetTracking-service/C/S-AlarmHigh-UUID`, `-AlarmLow-`).
//! - [`decide`] (pure): what a policy invoked by its alarm sets the desired count to (target
//!   tracking, steps, cooldowns counted in metric periods, bounds); unit and property tests.
//! - [`service`]: [`AutoScaling`], the operations, on the [`flotilla_store::Store`] under
//!   `autoscaling/` (targets and policies are desired state: they survive restarts and replicate
//!   with the store); every write a compare-and-swap.
//! - [`scaling_loop`]: [`ScalingLoop`], the leader's loop that invokes policies whose alarms are
//!   in ALARM and changes the service's desired count as UpdateService does, fenced, with its
//!   activity in the same transaction.
//!
//! Operations served: RegisterScalableTarget, DescribeScalableTargets, DeregisterScalableTarget,
//! PutScalingPolicy, DescribeScalingPolicies, DeleteScalingPolicy, DescribeScalingActivities. The
//! others (scheduled actions, predictive forecasts, tags) answer `ValidationException` naming
//! the operation.
//!
//! **Architecture Invariant:** only the scaling loop, on the leader and under its fence, changes
//! a service's desired count on behalf of a policy, and it writes the activity that says why in
//! the same transaction.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as Application Auto Scaling puts timestamps on the wire.
pub type Timestamp = f64;

/// Every shape of the Application Auto Scaling model, generated from `spec/service-2.json`.
#[allow(missing_docs, clippy::all, clippy::doc_lazy_continuation)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod decide;
pub mod error;
pub mod policy;
pub mod resource;
pub mod scaling_loop;
pub mod service;

pub use error::AasError;
pub use scaling_loop::ScalingLoop;
pub use service::AutoScaling;

/// The model without documentation, for input validation.
pub(crate) static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
