//! The `awslogs` driver on this host: the containers' output kept on the host, in a bounded
//! store ([`flotilla_logstore::LogStore`] in `DATA_DIR/logs`), and served to the server
//! through the session.
//!
//! What this is: [`LogsHub`]: it opens a container's stream with the server (the stream's
//! metadata, which is small, lives in the control plane; [`StreamOpener`]), follows the
//! container's output into the store ([`capture`]), answers the server's reads
//! ([`LogsHub::serve`]), and applies the log groups the server lists (retention, deleted
//! groups; [`LogsHub::set_groups`], [`LogsHub::spawn_sweeper`]).
//!
//! Why the events stay here: the control-plane store (etcd) is small and strongly consistent,
//! not a log store; a host's output is written once and read rarely, so it stays where it was
//! produced, bounded by size and retention, and readable after the container is gone.
//!
//! How a container is captured: Docker keeps its output with the `json-file` driver (bounded:
//! 3 files of 10 MiB, with the task's `mode` and `max-buffer-size`), and the hub follows it
//! through the Engine API with timestamps. Each stored event carries the position of the
//! output it ends at ([`flotilla_logstore::Cursor`]), so a restarted agent resumes exactly
//! after the last stored event: no line lost (while Docker still has it), none repeated.

pub mod capture;

use crate::runtime::Runtime;
use flotilla_logs::multiline::StartPattern;
use flotilla_logs::query::{GroupState, LogRequest, LogResponse, StreamRef};
use flotilla_logstore::{Limits, LogStore, StoreError};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The log group does not exist (and was not to be created).
    GroupNotFound(String),
    /// The server refused (the message says why).
    Refused(String),
    /// The server could not be reached.
    Unreachable(String),
}

/// Opens a container's stream in the control plane (its metadata: group, name, owner).
#[async_trait::async_trait]
pub trait StreamOpener: Send + Sync + 'static {
    /// Opens (creating when absent; creating the group too with `create_group`) the stream
    /// `stream` of `group`, owned by this host; returns the group's generation.
    async fn open(&self, group: &str, stream: &str, create_group: bool) -> Result<u64, OpenError>;
}

/// An opener for an engine with no server (tests of the engine alone): every open fails.
#[derive(Debug, Clone, Copy)]
pub struct NoServer;

#[async_trait::async_trait]
impl StreamOpener for NoServer {
    async fn open(&self, _: &str, _: &str, _: bool) -> Result<u64, OpenError> {
        Err(OpenError::Unreachable(
            "this agent has no server to open log streams with".into(),
        ))
    }
}

/// The opener an engine uses, in its configuration.
#[derive(Clone)]
pub struct LogStreams(pub Arc<dyn StreamOpener>);

impl std::fmt::Debug for LogStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStreams")
    }
}

impl Default for LogStreams {
    fn default() -> Self {
        Self(Arc::new(NoServer))
    }
}

/// The groups the server listed last: revision and retention by (name, generation).
#[derive(Debug, Default)]
struct Groups {
    revision: u64,
    retention: HashMap<(String, u64), Option<u32>>,
}

/// The host's logs.
pub struct LogsHub {
    store: Arc<LogStore>,
    runtime: Arc<dyn Runtime>,
    opener: Arc<dyn StreamOpener>,
    groups: Mutex<Groups>,
    /// Container ids being followed, with their follower.
    active: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Container ids whose output was followed to the end (they had stopped).
    finished: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Epoch milliseconds, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl LogsHub {
    /// Opens the store in `dir`.
    pub fn open(
        dir: &Path,
        limits: Limits,
        runtime: Arc<dyn Runtime>,
        opener: Arc<dyn StreamOpener>,
    ) -> Result<Arc<Self>, StoreError> {
        Ok(Arc::new(Self {
            store: Arc::new(LogStore::open(dir, limits)?),
            runtime,
            opener,
            groups: Mutex::new(Groups::default()),
            active: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashSet::new()),
        }))
    }

    /// The store.
    pub fn store(&self) -> &Arc<LogStore> {
        &self.store
    }

    /// Opens a stream with the server: up to three attempts while it cannot be reached.
    pub async fn open_stream(
        &self,
        group: &str,
        stream: &str,
        create_group: bool,
    ) -> Result<StreamRef, OpenError> {
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            match self.opener.open(group, stream, create_group).await {
                Ok(generation) => {
                    let s = StreamRef {
                        group: group.to_string(),
                        generation,
                        stream: stream.to_string(),
                    };
                    let store = self.store.clone();
                    let created = s.clone();
                    let _ = tokio::task::spawn_blocking(move || store.create(&created)).await;
                    return Ok(s);
                }
                Err(OpenError::Unreachable(e)) => last = Some(OpenError::Unreachable(e)),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| OpenError::Unreachable("no attempt".into())))
    }

    /// Follows container `id`'s output into `stream`, unless it is followed already; a
    /// container that is not `running` is followed only once (to the end of its output).
    pub fn ensure_capture(
        self: &Arc<Self>,
        id: &str,
        stream: &StreamRef,
        start: Option<StartPattern>,
        running: bool,
    ) {
        let mut active = lock(&self.active);
        if active.contains_key(id) {
            return;
        }
        if !running && lock(&self.finished).contains(id) {
            return;
        }
        lock(&self.finished).remove(id);
        let hub = self.clone();
        let (owned_id, stream) = (id.to_string(), stream.clone());
        // The lock is held while spawning, so the follower's own removal (at its end) comes
        // after this insertion.
        let handle = tokio::spawn(async move {
            capture::follow(&hub, &owned_id, &stream, start).await;
            lock(&hub.active).remove(&owned_id);
            lock(&hub.finished).insert(owned_id);
        });
        active.insert(id.to_string(), handle.abort_handle());
    }

    /// Stops following every container (the engine stops; a new one resumes from the
    /// cursors).
    pub fn stop_captures(&self) {
        for (_, h) in lock(&self.active).drain() {
            h.abort();
        }
    }

    /// Whether container `id`'s output is being followed.
    pub fn capturing(&self, id: &str) -> bool {
        lock(&self.active).contains_key(id)
    }

    /// Answers one of the server's requests on this host's streams.
    pub async fn serve(&self, request: LogRequest) -> Result<LogResponse, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || serve_on(&store, request))
            .await
            .map_err(|e| format!("the log store read failed: {e}"))?
    }

    /// Applies the server's list of log groups: the streams of deleted groups go, and the
    /// sweeper uses the listed retentions.
    pub async fn set_groups(&self, revision: u64, groups: Vec<GroupState>) {
        {
            let mut g = lock(&self.groups);
            if revision < g.revision {
                return;
            }
            g.revision = revision;
            g.retention = groups
                .iter()
                .map(|s| ((s.name.clone(), s.generation), s.retention_days))
                .collect();
        }
        let store = self.store.clone();
        let listed: Vec<(String, u64)> =
            groups.into_iter().map(|g| (g.name, g.generation)).collect();
        match tokio::task::spawn_blocking(move || store.retain_groups(&listed, revision)).await {
            Ok(Ok(gone)) => {
                for s in gone {
                    info!(group = %s.group, stream = %s.stream, "log group deleted; its stream's events are removed");
                }
            }
            Ok(Err(e)) => warn!(error = %e, "could not remove the streams of deleted log groups"),
            Err(e) => warn!(error = %e, "could not remove the streams of deleted log groups"),
        }
    }

    /// Drops what retention expired, every `every`.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                let retention: HashMap<(String, u64), Option<u32>> =
                    lock(&hub.groups).retention.clone();
                let store = hub.store.clone();
                let swept = tokio::task::spawn_blocking(move || {
                    store.sweep(now_ms(), &|s| {
                        retention
                            .get(&(s.group.clone(), s.generation))
                            .copied()
                            .flatten()
                    })
                })
                .await;
                match swept {
                    Ok(Ok(n)) if n > 0 => info!(segments = n, "log retention applied"),
                    Ok(Err(e)) => warn!(error = %e, "log retention sweep failed"),
                    _ => {}
                }
            }
        })
    }

    pub(crate) fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }
}

/// Runs a request on this host's store. Only the server's own streams take PutLogEvents.
fn serve_on(store: &LogStore, request: LogRequest) -> Result<LogResponse, String> {
    if matches!(request, LogRequest::Append { .. }) {
        return Err(
            "an agent stores only the output of its own containers; PutLogEvents goes to a server's stream"
                .into(),
        );
    }
    store.serve(request, now_ms())
}

/// The opener of a running agent: Flotilla's own `FlotillaAdmin.OpenLogStream` operation, on
/// the server replicas the agent knows (signed like every call).
#[derive(Clone)]
pub struct ServerStreams {
    /// The API client.
    pub client: crate::client::EcsClient,
    /// This host's container instance ARN (the stream's owner).
    pub instance_arn: String,
}

#[async_trait::async_trait]
impl StreamOpener for ServerStreams {
    async fn open(&self, group: &str, stream: &str, create_group: bool) -> Result<u64, OpenError> {
        let body = serde_json::json!({
            "containerInstanceArn": self.instance_arn,
            "logGroupName": group,
            "logStreamName": stream,
            "createGroup": create_group,
        });
        match self.client.call_admin("OpenLogStream", &body).await {
            Ok(v) => v["generation"].as_u64().ok_or_else(|| {
                OpenError::Refused("the server's answer has no log group generation".into())
            }),
            Err(crate::client::ApiError::Service { code, message, .. })
                if code == "ResourceNotFoundException" =>
            {
                Err(OpenError::GroupNotFound(message))
            }
            Err(e) if e.is_retryable() => Err(OpenError::Unreachable(e.to_string())),
            Err(crate::client::ApiError::Service { code, message, .. }) => {
                Err(OpenError::Refused(format!("{code}: {message}")))
            }
            Err(e) => Err(OpenError::Refused(e.to_string())),
        }
    }
}
