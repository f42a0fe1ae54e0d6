//! Prometheus metrics of the API: requests by operation and outcome, and a latency histogram,
//! served as text at `GET /metrics`; whether this replica leads and its term
//! (`flotilla_leader`, `flotilla_leader_term`); how many agent sessions it holds
//! (`flotilla_agent_sessions`); the latency of store requests by kind
//! (`flotilla_store_request_duration_seconds`, measured by [`TimedStore`]); and each custom
//! capacity provider's `CapacityProviderReservation` per cluster
//! (`flotilla_capacity_provider_reservation`, computed as `/metrics` is scraped by
//! `crate::capacity_metrics`); utilization (`flotilla_ecs_utilization_percent`, and per task and
//! container instance, computed as `/metrics` is scraped by `crate::usage_gauges`); requests
//! refused as over their rate (`flotilla_throttled_requests_total`, by operation) and audit
//! lines dropped (`flotilla_audit_dropped_lines_total`).

use prometheus_client::encoding::EncodeLabelSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use flotilla_store::{Page, Store, StoreError, Txn, TxnOutcome, WatchStream};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The ECS operation name, or `unknown`.
    pub operation: String,
    /// `ok` or the error type.
    pub outcome: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The ECS operation name, or `unknown`.
    pub operation: String,
}

/// Labels of the store latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `get`, `list`, `txn`, `revision`, `watch` (opening it) or `compact`.
    pub request: &'static str,
}

/// Labels of the capacity provider reservation gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReservationLabels {
    /// The cluster's name.
    pub cluster: String,
    /// The custom capacity provider's name.
    pub capacity_provider: String,
}

/// Labels of the `AWS/ECS` utilization gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EcsLabels {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name, empty for the cluster's figure.
    pub service: String,
    /// `CPUUtilization`, `MemoryUtilization`, `CPUReservation` or `MemoryReservation`.
    pub metric: String,
}

/// Labels of a task's utilization gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name, empty for a task of no service.
    pub service: String,
    /// The task's id.
    pub task: String,
}

/// Labels of a container instance's utilization gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// The cluster's name.
    pub cluster: String,
    /// The container instance's id.
    pub container_instance: String,
}

type FloatGauges<L> = Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// The utilization gauges, replaced as `/metrics` is scraped ([`crate::usage_gauges`]).
#[derive(Default)]
struct UsageGauges {
    ecs: FloatGauges<EcsLabels>,
    task_cpu: FloatGauges<TaskLabels>,
    task_memory: FloatGauges<TaskLabels>,
    instance_cpu: FloatGauges<InstanceLabels>,
    instance_memory: FloatGauges<InstanceLabels>,
}

/// The API's metrics.
pub struct Metrics {
    usage: UsageGauges,
    reservation: Family<ReservationLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabels, Histogram>,
    leader: Gauge,
    term: Gauge,
    agent_sessions: Gauge,
    store_latency: Family<StoreLabels, Histogram>,
    throttled: Family<OperationLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flotilla");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "api_requests",
            "ECS API requests by operation and outcome",
            requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "ECS API request latency",
            latency.clone(),
        );
        let leader = Gauge::default();
        let term = Gauge::default();
        let agent_sessions = Gauge::default();
        let store_latency = Family::<StoreLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 18))
        });
        registry.register(
            "leader",
            "1 while this replica leads (runs the controllers), else 0",
            leader.clone(),
        );
        registry.register(
            "leader_term",
            "The term (fencing token) of this replica's leadership, 0 while it does not lead",
            term.clone(),
        );
        registry.register(
            "agent_sessions",
            "Agent sessions this replica holds (each agent holds one, on one replica)",
            agent_sessions.clone(),
        );
        registry.register(
            "store_request_duration_seconds",
            "Store request latency by kind",
            store_latency.clone(),
        );
        let reservation =
            Family::<ReservationLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "capacity_provider_reservation",
            "CapacityProviderReservation as ECS computes it for managed scaling (M / N x 100: \
             N instances of the provider running in the cluster, M needed for its tasks), per \
             cluster and custom capacity provider",
            reservation.clone(),
        );
        let usage = UsageGauges::default();
        registry.register(
            "ecs_utilization_percent",
            "The AWS/ECS figures of the last complete metrics period (CPUUtilization and \
             MemoryUtilization per cluster and service, CPUReservation and MemoryReservation per \
             cluster), every replica's samples merged, as CloudWatch answers them",
            usage.ecs.clone(),
        );
        registry.register(
            "task_cpu_utilization_percent",
            "CPU used by a task over its reservation, latest sample (tasks whose agent's session \
             this replica holds)",
            usage.task_cpu.clone(),
        );
        registry.register(
            "task_memory_utilization_percent",
            "Memory used by a task over its reservation, latest sample (tasks whose agent's \
             session this replica holds)",
            usage.task_memory.clone(),
        );
        registry.register(
            "container_instance_cpu_utilization_percent",
            "CPU used by an instance's tasks over what it registered, latest samples (instances \
             whose session this replica holds)",
            usage.instance_cpu.clone(),
        );
        registry.register(
            "container_instance_memory_utilization_percent",
            "Memory used by an instance's tasks over what it registered, latest samples \
             (instances whose session this replica holds)",
            usage.instance_memory.clone(),
        );
        let throttled = Family::<OperationLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "API requests refused with ThrottlingException (the caller over its rate), by \
             operation",
            throttled.clone(),
        );
        Metrics {
            usage,
            reservation,
            registry,
            requests,
            latency,
            leader,
            term,
            agent_sessions,
            store_latency,
            throttled,
        }
    }

    /// Counts one request refused as over its rate.
    pub fn throttled(&self, operation: &str) {
        self.throttled
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .inc();
    }

    /// Serves the audit log's count of dropped lines (`flotilla_audit_dropped_lines_total`).
    pub fn register_audit_dropped(&mut self, dropped: Counter) {
        self.registry.register(
            "audit_dropped_lines",
            "Audit log lines dropped: the writer's queue was full or the file refused them",
            dropped,
        );
    }

    /// Records how many agent sessions this replica holds (set as `/metrics` is scraped).
    pub fn set_agent_sessions(&self, n: usize) {
        self.agent_sessions
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Replaces every capacity provider reservation with `values` ((cluster, provider) -> %).
    pub fn set_reservations(&self, values: &[(String, String, f64)]) {
        self.reservation.clear();
        for (cluster, provider, v) in values {
            self.reservation
                .get_or_create(&ReservationLabels {
                    cluster: cluster.clone(),
                    capacity_provider: provider.clone(),
                })
                .set(*v);
        }
    }

    /// Replaces the task and container instance utilization gauges.
    pub fn set_local_usage(
        &self,
        tasks: &[crate::usage_gauges::TaskGauge],
        instances: &[crate::usage_gauges::InstanceGauge],
    ) {
        let u = &self.usage;
        u.task_cpu.clear();
        u.task_memory.clear();
        u.instance_cpu.clear();
        u.instance_memory.clear();
        for t in tasks {
            let labels = TaskLabels {
                cluster: t.cluster.clone(),
                service: t.service.clone(),
                task: t.task.clone(),
            };
            if let Some(v) = t.cpu {
                u.task_cpu.get_or_create(&labels).set(v);
            }
            if let Some(v) = t.memory {
                u.task_memory.get_or_create(&labels).set(v);
            }
        }
        for i in instances {
            let labels = InstanceLabels {
                cluster: i.cluster.clone(),
                container_instance: i.instance.clone(),
            };
            u.instance_cpu.get_or_create(&labels).set(i.cpu);
            u.instance_memory.get_or_create(&labels).set(i.memory);
        }
    }

    /// Replaces the `AWS/ECS` gauges (left empty when the region's figures cannot be read:
    /// a partial figure would be wrong).
    pub fn set_ecs_usage(&self, figures: &[crate::usage_gauges::EcsGauge]) {
        self.usage.ecs.clear();
        for f in figures {
            self.usage
                .ecs
                .get_or_create(&EcsLabels {
                    cluster: f.cluster.clone(),
                    service: f.service.clone(),
                    metric: f.metric.clone(),
                })
                .set(f.value);
        }
    }

    /// Records this replica's leadership: `Some(term)` while it leads.
    pub fn set_leadership(&self, term: Option<u64>) {
        self.leadership_recorder().set(term);
    }

    /// A handle that records this replica's leadership from another task.
    pub fn leadership_recorder(&self) -> LeadershipGauges {
        LeadershipGauges {
            leader: self.leader.clone(),
            term: self.term.clone(),
        }
    }

    /// Wraps `store` so that every request's latency is recorded.
    pub fn timed(&self, store: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(TimedStore {
            inner: store,
            latency: self.store_latency.clone(),
        })
    }

    /// Records one request.
    pub fn observe(&self, operation: &str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.latency
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The leadership gauges, to be set from the task that follows the election.
#[derive(Clone)]
pub struct LeadershipGauges {
    leader: Gauge,
    term: Gauge,
}

impl LeadershipGauges {
    /// `Some(term)` while this replica leads, `None` otherwise.
    pub fn set(&self, term: Option<u64>) {
        self.leader.set(i64::from(term.is_some()));
        self.term
            .set(term.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
    }
}

/// A [`Store`] that records the latency of each request of the store it wraps.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    latency: Family<StoreLabels, Histogram>,
}

impl TimedStore {
    fn observe(&self, request: &'static str, started: Instant) {
        self.latency
            .get_or_create(&StoreLabels { request })
            .observe(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn get(&self, key: &str) -> Result<Option<flotilla_store::KeyValue>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.observe("get", t);
        r
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let t = Instant::now();
        let r = self.inner.list(prefix, start_after, limit).await;
        self.observe("list", t);
        r
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let t = Instant::now();
        let r = self.inner.txn(txn).await;
        self.observe("txn", t);
        r
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.revision().await;
        self.observe("revision", t);
        r
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchStream, StoreError> {
        let t = Instant::now();
        let r = self.inner.watch(prefix, after_revision).await;
        self.observe("watch", t);
        r
    }

    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.compact(revision).await;
        self.observe("compact", t);
        r
    }
}
