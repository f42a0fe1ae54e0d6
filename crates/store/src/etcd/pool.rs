//! [`Pool`]: one etcd connection per member, requests sent to a healthy one, and retried on
//! another when a member does not answer.
//!
//! Why not etcd-client's own multi-endpoint `Client`: it puts every endpoint in one tonic
//! balanced channel (tower's power-of-two-choices balancer). A member whose TCP connection
//! fails stays "ready" in that balancer (tonic's reconnecting service reports the connect
//! error on the *next call*), and a frozen member (SIGSTOP, a silent network) accepts calls
//! that then hang until the request timeout. So every request has a fair chance of landing on
//! the bad member again and again, and nothing is retried: one bad member out of three made a
//! third of requests fail, lease renewals fail and leaders lose their terms.
//!
//! Here each member has its own channel, and the pool:
//! - **sends a request to the preferred member** (sticky, like etcd's Go client), skipping
//!   members marked bad;
//! - **bounds each attempt** by [`EtcdOptions::attempt_timeout`](super::EtcdOptions) and, when
//!   an attempt fails with "no answer" (connect error, timeout, no leader...), marks that
//!   member bad, moves the preference on and retries on the next member, within the request's
//!   whole [`EtcdOptions::request_timeout`](super::EtcdOptions), in rounds over the members
//!   until that deadline (see [`Pool::run`]: during an election every member holds requests);
//! - **probes every member** every [`PROBE_INTERVAL`] (a serializable count-only read with
//!   etcd's require-leader flag: answered locally by a member that has a leader), marking each
//!   good or bad, so that a frozen member is left out within about a second even by writes, and
//!   a member that answers again is used again.
//!
//! What is retried ([`Retry`]): idempotent requests (reads, lease renewals and revocations,
//! compaction, a put of the same value) after any "no answer" failure; other writes only after
//! a failure that proves they were not applied ([`not_sent`]: the connection could not be made,
//! or the member refused for lack of a leader before proposing anything). A transaction whose
//! compares fail once it has been applied is retried like a read by the store (`mod.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, ClusterClient, ConnectOptions, Error, GetOptions, KvClient, LeaseClient, WatchClient,
};
use tokio::sync::watch as signal;

use super::error::{describe, kind, Kind};

/// How often every member is probed.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The pause after a round in which no member answered (an election takes about a second).
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// One member's connection and health.
pub(crate) struct Member {
    pub(crate) url: String,
    pub(crate) kv: KvClient,
    pub(crate) lease: LeaseClient,
    pub(crate) watch: WatchClient,
    pub(crate) cluster: ClusterClient,
    bad: AtomicBool,
}

/// Which failures a request may be retried after, on another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Idempotent: after any "no answer" failure, each attempt bounded by the attempt timeout.
    Idempotent,
    /// Not idempotent: only after a failure that proves it was not applied; the attempt may
    /// take the whole request timeout (a timeout would leave it ambiguous).
    IfNotSent,
}

/// The result of [`Pool::run`]: the last attempt's, and whether an earlier attempt failed in a
/// way that leaves its effect unknown (a write may then have been applied by it).
pub(crate) struct Outcome<T> {
    pub(crate) result: Result<T, Error>,
    pub(crate) ambiguous: bool,
}

/// The members of one cluster. Cheap to share (`Arc`).
pub(crate) struct Pool {
    members: Vec<Member>,
    preferred: AtomicUsize,
    attempt_timeout: Duration,
    request_timeout: Duration,
}

impl Pool {
    /// Connects lazily to each endpoint; starts the prober, which ends when `closed`'s sender
    /// is dropped.
    pub(crate) async fn connect(
        endpoints: &[String],
        options: &ConnectOptions,
        max_message: usize,
        attempt_timeout: Duration,
        request_timeout: Duration,
        closed: signal::Receiver<()>,
    ) -> Result<Arc<Self>, Error> {
        let mut members = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            let client = Client::connect([url.as_str()], Some(options.clone())).await?;
            members.push(Member {
                url: url.clone(),
                kv: client
                    .kv_client()
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
                watch: client.watch_client().max_decoding_message_size(max_message),
                lease: client.lease_client(),
                cluster: client.cluster_client(),
                bad: AtomicBool::new(false),
            });
        }
        if members.is_empty() {
            return Err(Error::InvalidArgs("no etcd endpoints".into()));
        }
        let pool = Arc::new(Pool {
            // Spread replicas over the members.
            preferred: AtomicUsize::new(std::process::id() as usize % members.len()),
            members,
            attempt_timeout,
            request_timeout,
        });
        if pool.members.len() > 1 {
            tokio::spawn(probe(Arc::downgrade(&pool), closed));
        }
        Ok(pool)
    }

    /// The members to try, in order: from the preferred one on, good ones first.
    fn order(&self) -> Vec<usize> {
        let n = self.members.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let ring = (0..n).map(|i| (start + i) % n);
        let (good, bad): (Vec<usize>, Vec<usize>) =
            ring.partition(|&i| !self.members[i].bad.load(Ordering::Relaxed));
        good.into_iter().chain(bad).collect()
    }

    /// The member a new long-lived stream (a watch) should use.
    pub(crate) fn pick(&self) -> &Member {
        &self.members[self.order()[0]]
    }

    fn mark(&self, i: usize, bad: bool) {
        let was = self.members[i].bad.swap(bad, Ordering::Relaxed);
        if was != bad {
            if bad {
                tracing::warn!(member = %self.members[i].url, "etcd member not answering; using the others");
            } else {
                tracing::info!(member = %self.members[i].url, "etcd member answers again");
            }
        }
        if bad {
            let n = self.members.len();
            let _ = self.preferred.compare_exchange(
                i,
                (i + 1) % n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Runs `call` on one member after another (as [`Retry`] allows) until one answers, within
    /// the request timeout.
    ///
    /// The members are tried in rounds, each round in [`Pool::order`] (good ones first), until
    /// the deadline: while the cluster elects a leader (its leader was cut off), *every* member
    /// holds requests for a second or two, so all of them are marked bad in the first round,
    /// and a single pass would end on whichever came last, often the member that was cut off.
    /// An idempotent attempt is bounded by the attempt timeout, doubled every round (a request
    /// that is merely slow, a large list, still gets the time it needs), and by what is left
    /// of the deadline; a round in which no member answered is followed by a short pause.
    pub(crate) async fn run<T, F, Fut>(&self, retry: Retry, mut call: F) -> Outcome<T>
    where
        F: FnMut(&Member) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut ambiguous = false;
        let mut last = None;
        let mut bound = self.attempt_timeout;
        // One member: nothing to fail over to, so an attempt may take all that is left.
        let alone = self.members.len() == 1;
        'rounds: loop {
            for i in self.order() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break 'rounds;
                }
                let attempt = match retry {
                    Retry::Idempotent if !alone => bound.min(remaining),
                    _ => remaining,
                };
                let member = &self.members[i];
                let result = match tokio::time::timeout(attempt, call(member)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::GRpcStatus(tonic::Status::deadline_exceeded(
                        format!(
                            "etcd member {} did not answer within {attempt:?}",
                            member.url
                        ),
                    ))),
                };
                match result {
                    Err(e) if kind(&e) == Kind::Unavailable => {
                        self.mark(i, true);
                        let sent = !not_sent(&e);
                        tracing::debug!(member = %member.url, error = %describe(&e), "etcd request failed on one member");
                        if retry == Retry::IfNotSent && sent {
                            return Outcome {
                                result: Err(e),
                                ambiguous,
                            };
                        }
                        ambiguous |= sent;
                        last = Some(e);
                    }
                    other => {
                        if other.is_ok() {
                            self.mark(i, false);
                        }
                        return Outcome {
                            result: other,
                            ambiguous,
                        };
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            tokio::time::sleep(ROUND_PAUSE.min(remaining)).await;
            bound = bound.saturating_mul(2);
        }
        Outcome {
            result: Err(last.unwrap_or_else(|| {
                Error::GRpcStatus(tonic::Status::deadline_exceeded(format!(
                    "no etcd member answered within {:?}",
                    self.request_timeout
                )))
            })),
            ambiguous,
        }
    }

    /// [`Pool::run`] of an idempotent request: its result only.
    pub(crate) async fn read<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: FnMut(&Member) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        self.run(Retry::Idempotent, call).await.result
    }
}

/// Whether a failure proves the request was not applied: no connection could be made to the
/// member, or it refused the request for lack of a leader (the require-leader check runs before
/// anything is proposed).
pub(crate) fn not_sent(e: &Error) -> bool {
    let text = describe(e).to_ascii_lowercase();
    [
        "tcp connect error",
        "error trying to connect",
        "connection refused",
        "client error (connect)",
        "no leader",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Probes every member each [`PROBE_INTERVAL`] until the pool is gone or the store closed.
async fn probe(pool: std::sync::Weak<Pool>, mut closed: signal::Receiver<()>) {
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
        let Some(pool) = pool.upgrade() else { return };
        let bound = pool.attempt_timeout;
        let checks = pool.members.iter().map(|m| {
            let mut kv = m.kv.clone();
            async move {
                let opts = GetOptions::new().with_count_only().with_serializable();
                matches!(
                    tokio::time::timeout(bound, kv.get("/", Some(opts))).await,
                    Ok(Ok(_))
                )
            }
        });
        let healthy = futures::future::join_all(checks).await;
        for (i, ok) in healthy.into_iter().enumerate() {
            pool.mark(i, !ok);
        }
    }
}
