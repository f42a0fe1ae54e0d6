//! Flotilla's controllers: the writers and loops that act on the store.
//!
//! What this is: the one placement writer ([`placement::place`], every task is created there),
//! the service loop ([`service_loop`]: reads a service and its tasks, asks
//! `flotilla_control::service_scheduler` what to do, applies it), agent liveness and the
//! stopped-task sweeper ([`agents`]), the writer of agent reports ([`reports`]), Fargate's task
//! networks and Spot interruptions ([`fargate`]), and the typed store access they share
//! ([`records`]). The background loops start and stop together through [`Controllers`], and a
//! [`Supervisor`] ([`leadership`]) runs them only on the replica that holds the store's leader
//! election, stopping them the moment its term is lost.
//!
//! What this is not: HTTP (that is `flotilla-api`, which calls in here) or the rules themselves
//! (pure, in `flotilla-control`).
//!
//! Invariant: every write is a compare-and-swap on the records read ([`records::cas`] retries a
//! bounded number of times); desired state written here is only what ECS's own scheduler writes.
//!
//! Invariant: every write of a background controller carries the fence of the term it was
//! started for ([`Controllers::start`]), so a deposed leader's write is refused by the store
//! ([`records::deposed`]) and the loop that made it stops; the writes API handlers make on any
//! replica (RunTask's placement, StopTask, agent reports and sessions, ReclaimSpot) are unfenced.

#![warn(missing_docs)]

pub mod agents;
pub mod deletions;
pub mod deployment_alarms;
pub mod fargate;
pub mod held;
pub mod instance_cache;
pub mod leadership;
pub mod placement;
pub mod plane;
pub mod prefix_changes;
pub mod records;
pub mod registrations;
pub mod reports;
pub mod service_loop;
pub mod task_feed;
mod task_set_loop;
pub mod templates;
pub mod traffic;
pub mod usage_metrics;

pub use agents::AgentTimings;
pub use fargate::FargateConfig;
pub use leadership::{Role, Supervisor};
pub use plane::{Clock, LeaderLoop, Plane, SystemClock};

use flotilla_store::Fence;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The running background controllers: agent liveness, the stopped-task sweeper and the service
/// loop. Dropping the handle (or [`Controllers::stop`]) stops them all.
pub struct Controllers {
    tasks: Vec<JoinHandle<()>>,
}

impl Controllers {
    /// Starts every background controller on `plane`, each of its writes fenced with `fence`
    /// (the term's, from the [`Supervisor`]; [`Fence::unfenced`] on a store only one server
    /// uses). Needs a Tokio runtime. The loops hold the plane weakly: they also end when it is
    /// dropped, and a loop whose write is refused by the fence ends by itself.
    pub fn start(plane: &Arc<Plane>, fence: &Fence) -> Controllers {
        let mut tasks = agents::spawn_background(Arc::downgrade(plane), fence);
        tasks.extend(service_loop::spawn(Arc::downgrade(plane), fence));
        if let Some(t) = &plane.traffic {
            tasks.extend(t.leader_loops());
        }
        for l in &plane.leader_loops {
            tasks.extend(l.start(fence));
        }
        Controllers { tasks }
    }

    /// Stops every controller now.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
