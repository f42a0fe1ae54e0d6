//! The awsQuery protocol (ELBv2, STS, ...) for the services behind the edge.

pub mod error;
pub mod xml;

pub use error::QueryError;
