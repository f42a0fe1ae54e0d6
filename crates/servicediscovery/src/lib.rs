//! AWS Cloud Map (service discovery), served by Flotilla on the ECS endpoint
//! (`X-Amz-Target: Route53AutoNaming_v20170314.*`, SigV4 scope `servicediscovery`), and the DNS
//! answers a task's resolver gives for the services of private DNS namespaces.
//!
//! - [`shapes`]: the request and response types, generated from the vendored botocore model
//!   (`spec/service-2.json`) by `flotilla-codegen`; [`ErrorShape`]: its error shapes.
//! - [`record`] (pure): namespaces, services, instances and operations as stored, and their
//!   rules (names, DNS configuration, instance attributes, custom health).
//! - [`discover`] (pure): which instances `DiscoverInstances` answers (query and optional
//!   parameters, health filters, the revision).
//! - [`dns`] (pure [`dns::answer`], async [`dns::resolve`]): A, AAAA and SRV answers for
//!   `SERVICE.NAMESPACE` (and `INSTANCE.SERVICE.NAMESPACE`) of DNS namespaces, healthy instances
//!   only, NXDOMAIN inside a namespace, [`dns::Answer::NotOurs`] outside every one.
//! - [`keys`]: the store layout (`servicediscovery/...`) and the reads every part shares.
//! - [`instances`]: the Rust API the ECS service scheduler registers its tasks with.
//! - [`service`]: [`ServiceDiscovery`], the operations; every write a compare-and-swap.
//!
//! **Architecture Invariant:** a namespace's `ServiceCount` and a service's `InstanceCount`
//! are kept in the namespace and service records and change in the same transaction as the
//! service or instance they count, so DeleteNamespace and DeleteService refuse (ResourceInUse)
//! exactly when something is left, even against a concurrent create.
//!
//! Operations served: CreateHttpNamespace, CreatePrivateDnsNamespace, CreatePublicDnsNamespace,
//! GetNamespace, ListNamespaces, DeleteNamespace, CreateService, GetService, ListServices,
//! UpdateService, DeleteService, RegisterInstance, DeregisterInstance, GetInstance,
//! ListInstances, DiscoverInstances, DiscoverInstancesRevision, GetInstancesHealthStatus,
//! UpdateInstanceCustomHealthStatus, GetOperation, ListOperations, TagResource, UntagResource,
//! ListTagsForResource. The others answer `InvalidInput` naming the ones served.

#![warn(missing_docs)]

/// Seconds since the Unix epoch, as Cloud Map puts timestamps on the wire.
pub type Timestamp = f64;

/// Every shape of the Cloud Map model, generated from `spec/service-2.json`.
#[allow(missing_docs, clippy::all, clippy::doc_lazy_continuation)]
pub mod shapes {
    include!(concat!(env!("OUT_DIR"), "/shapes.rs"));
}

#[allow(missing_docs, clippy::all)]
mod errors {
    include!(concat!(env!("OUT_DIR"), "/errors.rs"));
}

pub use errors::ErrorShape;

pub mod discover;
pub mod dns;
pub mod error;
pub mod instances;
pub mod keys;
pub mod record;
pub mod service;

pub use error::SdError;
pub use service::ServiceDiscovery;

/// The model without documentation, for input validation.
pub(crate) static MODEL_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/model.json"));
