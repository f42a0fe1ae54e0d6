//! What several handlers share: reads that join records into the shapes ECS answers, and the
//! cluster writer. Handlers import from here, never from each other.

pub mod cluster_counts;
pub mod cluster_writes;
pub mod deployments;
pub mod instance_views;
