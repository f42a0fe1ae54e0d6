//! The control plane's shared state: the store, the ARN context, the clock, the agent timings,
//! the in-memory registry of agent sessions and the Fargate settings. Every controller and every
//! API handler works on one [`Plane`].

use crate::agents::{AgentTimings, Agents};
use crate::fargate::FargateConfig;
use flotilla_model::arn::ArnContext;
use flotilla_store::{Fence, Store};
use std::sync::Arc;

/// A source of wall-clock time, passed in so tests can control it.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> f64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// The state every controller and handler shares.
pub struct Plane {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Region and account for ARNs.
    pub arns: ArnContext,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Heartbeat interval and stopped-task retention.
    pub timings: AgentTimings,
    /// Live agent sessions, connection deadlines and the latest usage per task (in memory).
    pub agents: Agents,
    /// The managed task network and the Spot warning.
    pub fargate: FargateConfig,
    /// Serializes the writers of one record within this process.
    pub writers: Stripes,
    /// RegisterTaskDefinition's registrations waiting for their family's group commit.
    pub registrations: crate::registrations::Registrations,
    /// This replica's name (in the leader election), when it has one; agent beats carry it.
    pub replica: Option<String>,
    /// The load balancers and Cloud Map, when this server serves them
    /// ([`crate::traffic::Traffic`]).
    pub traffic: Option<Arc<dyn crate::traffic::Traffic>>,
    /// The region's metrics and alarms, read (CloudWatch's reader when the server serves it:
    /// `Api::with_metrics`; [`flotilla_metrics::NoMetrics`] otherwise).
    pub metrics: Arc<dyn flotilla_metrics::MetricReader>,
    /// Defines and deletes alarms (same source as [`Plane::metrics`]).
    pub alarms: Arc<dyn flotilla_metrics::AlarmWriter>,
    /// Loops of other parts that run with the controllers, on the leader only, their writes
    /// fenced with the term's fence (CloudWatch's alarm evaluation; `Api::with_leader_loop`).
    pub leader_loops: Vec<Arc<dyn LeaderLoop>>,
    /// How many seconds a minute of a deployment's bake times lasts (60; tests shorten it).
    pub deployment_minute: f64,
    /// This replica's index of the task records, fed by one watch
    /// ([`crate::task_feed::TaskFeed`]): counts, ListTasks and the agent sessions' changes.
    pub tasks: Arc<crate::task_feed::TaskFeed>,
    /// Waiters on the deletion of agent keys' records (every agent session of this replica
    /// ends when its key is revoked), served by one watch ([`crate::deletions::Deletions`]).
    pub agent_keys: Arc<crate::deletions::Deletions>,
}

/// A background loop that runs on the leader only, started and stopped with the controllers
/// ([`crate::Controllers::start`]).
pub trait LeaderLoop: Send + Sync {
    /// Starts the loop for a term; every write it makes carries `fence`. The handles are
    /// aborted when the term ends.
    fn start(&self, fence: &Fence) -> Vec<tokio::task::JoinHandle<()>>;
}

impl Plane {
    /// A plane with default timings and Fargate settings.
    pub fn new(store: Arc<dyn Store>, arns: ArnContext, clock: Arc<dyn Clock>) -> Self {
        Plane {
            store,
            arns,
            clock,
            timings: AgentTimings::default(),
            agents: Agents::default(),
            fargate: FargateConfig::default(),
            writers: Stripes::default(),
            registrations: Default::default(),
            replica: None,
            traffic: None,
            metrics: Arc::new(flotilla_metrics::NoMetrics),
            alarms: Arc::new(flotilla_metrics::NoMetrics),
            leader_loops: Vec::new(),
            deployment_minute: 60.0,
            tasks: Arc::default(),
            agent_keys: crate::deletions::Deletions::new(
                flotilla_control::agent_identity::AGENT_CREDENTIALS,
            ),
        }
    }

    /// The task index, once it has applied the store's current revision (so a caller sees its
    /// own writes); `None` when it cannot say in time (read the store instead).
    pub async fn task_index(&self) -> Option<&crate::task_feed::TaskFeed> {
        self.tasks
            .caught_up(&self.store)
            .await
            .then_some(self.tasks.as_ref())
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// [`crate::records::cas`] on the record at `key`, serialized with every other writer of
    /// `key` in this process (`key` names the record the change is about; the transaction may
    /// touch others).
    pub async fn cas<T, F, Fut>(&self, key: &str, attempt: F) -> Result<T, flotilla_model::EcsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
            Output = Result<crate::records::Attempt<T>, flotilla_model::EcsError>,
        >,
    {
        self.cas_fenced(key, None, attempt).await
    }

    /// [`Plane::cas`] of a controller's write, fenced with its term's `fence`
    /// ([`crate::records::cas_fenced`]; `None`: unfenced, as an API handler's write).
    pub async fn cas_fenced<T, F, Fut>(
        &self,
        key: &str,
        fence: Option<&Fence>,
        attempt: F,
    ) -> Result<T, flotilla_model::EcsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
            Output = Result<crate::records::Attempt<T>, flotilla_model::EcsError>,
        >,
    {
        let _serial = self.writers.lock(key).await;
        crate::records::cas_fenced(self.store(), fence, attempt).await
    }
}

/// Striped in-process locks that serialize the writers of one record, so concurrent requests to
/// one replica never make each other retry (a lost compare-and-swap is then a race with another
/// replica, which [`crate::records::cas`] retries).
pub struct Stripes {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// How many stripes: keys that share one only wait for each other a little.
const STRIPES: usize = 256;

impl Default for Stripes {
    fn default() -> Self {
        Stripes {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl Stripes {
    /// Waits for the lock of `key`'s stripe. Hold at most one at a time (never nest them).
    pub async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let i = usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0);
        match self.stripes.get(i) {
            Some(m) => m.lock().await,
            None => unreachable!("the stripe index is taken modulo the number of stripes"),
        }
    }
}
