//! Traffic into services: connects the Elastic Load Balancing v2 records (`flotilla-elbv2`) and
//! Cloud Map (`flotilla-servicediscovery`) to the data plane (`flotilla-lb`) and to the ECS
//! service scheduler (`flotilla-controllers`).
//!
//! - [`table`] (pure): the records as the data plane's table and the health checker's probes.
//! - [`feeder`]: every replica's data plane follows the records (watch, hot reload).
//! - [`checker`]: the health checker (on the controllers' replica): probes, thresholds, the end
//!   of draining.
//! - [`adapter`]: [`StoreTraffic`], the scheduler's `Traffic` (register, deregister, health,
//!   Cloud Map instances) over the store, which also starts the checker with the controllers.

#![warn(missing_docs)]

pub mod adapter;
pub mod checker;
pub mod feeder;
pub mod table;

pub use adapter::StoreTraffic;
