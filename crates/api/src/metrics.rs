//! Prometheus metrics of the API: requests by operation and outcome, and a latency histogram,
//! served as text at `GET /metrics`; whether this replica leads and its term
//! (`flotilla_leader`, `flotilla_leader_term`); how many agent sessions it holds
//! (`flotilla_agent_sessions`); the latency of store requests by kind
//! (`flotilla_store_request_duration_seconds`, measured by [`TimedStore`]); and each custom
//! capacity provider's `CapacityProviderReservation` per cluster
//! (`flotilla_capacity_provider_reservation`, computed as `/metrics` is scraped by
//! `crate::capacity_metrics`).

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

/// The API's metrics.
pub struct Metrics {
    reservation: Family<ReservationLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabels, Histogram>,
    leader: Gauge,
    term: Gauge,
    agent_sessions: Gauge,
    store_latency: Family<StoreLabels, Histogram>,
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
        Metrics {
            reservation,
            registry,
            requests,
            latency,
            leader,
            term,
            agent_sessions,
            store_latency,
        }
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
