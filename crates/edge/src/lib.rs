//! The contract between Flotilla's HTTP edge (`flotilla-api`) and each AWS service served
//! behind it on the same endpoint (ECS is served by the edge itself; Secrets Manager, SSM
//! Parameter Store and the services added later implement [`Service`]).
//!
//! The edge does what every service shares: the request id, the body limit, SigV4
//! verification, metrics and one span per request, and routing: a request belongs to the
//! service whose [`Marker`] it carries (for the JSON protocols, the `X-Amz-Target` prefix; for awsQuery, the form's `Action`), and
//! its SigV4 credential scope must name that service's [`Service::signing_name`]. Then it
//! hands the service a [`Call`] and sends back the service's [`Reply`]. Errors the edge finds
//! before the service sees the request ([`EdgeError`]) are rendered by the service
//! ([`Service::reject`]), so every answer has the service's own error shape.
//!
//! - [`service`]: [`Service`], [`Call`], [`Reply`], [`Marker`], [`EdgeError`].
//! - [`json`]: the AWS JSON protocol (awsJson1_0/1_1): [`json::JsonApi`], the simpler trait a
//!   JSON service implements, and [`json::AwsJson`], the adapter that makes it a [`Service`];
//!   the wire error ([`json::JsonError`]); model-driven input validation ([`json::validate`]).
//! - [`query`]: the awsQuery protocol (form bodies with `Action=`, XML answers), model-driven:
//!   [`query::QueryApi`] and its adapter [`query::AwsQuery`], [`query::QueryError`].
//!
//! **Architecture Invariant:** pure: no HTTP crate, no async runtime (only `async-trait`), no
//! store, no clock (the edge passes the request time in [`Call::now`]).

#![warn(missing_docs)]

pub mod json;
pub mod query;
pub mod service;

pub use service::{Call, EdgeError, Marker, Outcome, Reply, Service};
