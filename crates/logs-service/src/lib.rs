//! CloudWatch Logs served by Flotilla: CreateLogGroup, DeleteLogGroup, DescribeLogGroups,
//! PutRetentionPolicy ([`groups`]), CreateLogStream, DescribeLogStreams ([`streams`]),
//! PutLogEvents, GetLogEvents, FilterLogEvents ([`events`]); every other operation of the
//! model answers `UnknownOperationException` naming it as not served.
//!
//! Where things live:
//! - metadata (groups with their retention and tags, streams with their owner) in the
//!   control-plane store, through [`records`]: small, rarely written;
//! - events where they were produced, never in the control-plane store: a container's on its
//!   host, kept by that host's agent ([`Owner::Agent`]); an API caller's (PutLogEvents) on the
//!   server replica that received CreateLogStream ([`Owner::Server`]), in that replica's data
//!   directory ([`flotilla_logstore::LogStore`]).
//!
//! Every read or write of events is a [`LogRequest`] to the stream's owner: this replica's
//! store answers its own streams; every other owner is asked through [`Owners`], which the
//! edge implements (an agent through its session, wherever it is held; another replica
//! through Flotilla's `FlotillaAdmin.LogQuery`). An owner that cannot be reached is an error
//! (`ServiceUnavailableException` naming where the events are), never an empty answer.
//!
//! [`janitor`] keeps this replica's store in step with the groups (retention, deletions), and
//! lists the groups for the agents.

#![warn(missing_docs)]

pub mod events;
pub mod groups;
pub mod janitor;
pub mod records;
pub mod streams;

use flotilla_logs::names::Account;
use flotilla_logs::query::{LogRequest, LogResponse};
use flotilla_logs::{LogsError, LogsErrorCode};
use flotilla_logstore::LogStore;
use flotilla_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Where a stream's events live.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Owner {
    /// A container's output, kept by the agent of its host.
    Agent {
        /// The container instance's cluster (`.managed` for a Fargate pool host).
        cluster: String,
        /// The container instance id.
        instance: String,
    },
    /// A PutLogEvents stream, kept by a server replica.
    Server {
        /// The replica's id (`replicas/ID`).
        replica: String,
    },
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Agent { cluster, instance } => {
                write!(
                    f,
                    "the agent of container instance {instance} (cluster {cluster})"
                )
            }
            Owner::Server { replica } => write!(f, "server replica {replica}"),
        }
    }
}

/// The owners of streams other than this replica's own.
#[async_trait::async_trait]
pub trait Owners: Send + Sync + 'static {
    /// Runs `request` on `owner`'s streams. An owner that cannot be reached is
    /// `ServiceUnavailableException` saying where the events are.
    async fn ask(&self, owner: &Owner, request: LogRequest) -> Result<LogResponse, LogsError>;
}

/// The Logs service of one server replica.
pub struct Logs {
    store: Arc<dyn Store>,
    account: Account,
    local: Arc<LogStore>,
    owners: Arc<dyn Owners>,
    /// This replica's id (`None`: the only server of its store).
    replica: Option<String>,
    /// Several replicas share the store (else every server-owned stream is this one's).
    shared: bool,
}

/// The operations served.
pub const SERVED: &[&str] = &[
    "CreateLogGroup",
    "DeleteLogGroup",
    "DescribeLogGroups",
    "PutRetentionPolicy",
    "CreateLogStream",
    "DescribeLogStreams",
    "PutLogEvents",
    "GetLogEvents",
    "FilterLogEvents",
];

impl Logs {
    /// The service: metadata in `store`, this replica's events in `local`, other owners
    /// through `owners`. `replica`: this server's id; `shared`: other replicas share the store.
    pub fn new(
        store: Arc<dyn Store>,
        account: Account,
        local: Arc<LogStore>,
        owners: Arc<dyn Owners>,
        replica: Option<String>,
        shared: bool,
    ) -> Self {
        Self {
            store,
            account,
            local,
            owners,
            replica,
            shared,
        }
    }

    /// The control-plane store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Region and account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// This replica's store of events.
    pub fn local(&self) -> &Arc<LogStore> {
        &self.local
    }

    /// The owner of the streams this replica creates.
    pub fn me(&self) -> Owner {
        Owner::Server {
            replica: self.replica.clone().unwrap_or_default(),
        }
    }

    /// Whether `owner` is this replica.
    pub fn is_me(&self, owner: &Owner) -> bool {
        match owner {
            Owner::Server { replica } => !self.shared || Some(replica) == self.replica.as_ref(),
            Owner::Agent { .. } => false,
        }
    }

    /// Runs a request on this replica's own store.
    pub async fn ask_local(
        &self,
        request: LogRequest,
        now_ms: i64,
    ) -> Result<LogResponse, LogsError> {
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || local.serve(request, now_ms))
            .await
            .map_err(|e| LogsError::unavailable(format!("this server's log store failed: {e}")))?
            .map_err(|e| LogsError::unavailable(format!("this server's log store failed: {e}")))
    }

    /// Runs a request on `owner`'s streams, here or through [`Owners`].
    pub async fn ask(
        &self,
        owner: &Owner,
        request: LogRequest,
        now_ms: i64,
    ) -> Result<LogResponse, LogsError> {
        if self.is_me(owner) {
            self.ask_local(request, now_ms).await
        } else {
            self.owners.ask(owner, request).await
        }
    }

    /// Serves one operation: `input` is the request's JSON object, `now_ms` the request time.
    pub async fn dispatch(
        &self,
        operation: &str,
        input: Value,
        now_ms: i64,
    ) -> Result<Value, LogsError> {
        match operation {
            "CreateLogGroup" => groups::create_log_group(self, input, now_ms).await,
            "DeleteLogGroup" => groups::delete_log_group(self, input).await,
            "DescribeLogGroups" => groups::describe_log_groups(self, input).await,
            "PutRetentionPolicy" => groups::put_retention_policy(self, input).await,
            "CreateLogStream" => streams::create_log_stream(self, input, now_ms).await,
            "DescribeLogStreams" => streams::describe_log_streams(self, input, now_ms).await,
            "PutLogEvents" => events::put_log_events(self, input, now_ms).await,
            "GetLogEvents" => events::get_log_events(self, input, now_ms).await,
            "FilterLogEvents" => events::filter_log_events(self, input, now_ms).await,
            other => Err(LogsError::new(
                LogsErrorCode::UnknownOperationException,
                format!(
                    "{other} is an operation of CloudWatch Logs that Flotilla does not serve (served: {}).",
                    SERVED.join(", ")
                ),
            )),
        }
    }
}

/// Refuses a member the request set that Flotilla does not serve.
pub(crate) fn refuse_if(present: bool, member: &str, why: &str) -> Result<(), LogsError> {
    if present {
        return Err(LogsError::invalid(format!(
            "{member} is not supported by Flotilla: {why}."
        )));
    }
    Ok(())
}

/// A response shape as JSON.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Value, LogsError> {
    serde_json::to_value(v)
        .map_err(|e| LogsError::unavailable(format!("could not encode the response: {e}")))
}

/// The Logs service as the edge serves it: the AWS JSON protocol with `Logs_20140328` targets,
/// signed for `logs` (`flotilla_edge::json::AwsJson(LogsApi(..))`).
pub struct LogsApi(pub Arc<Logs>);

#[async_trait::async_trait]
impl flotilla_edge::json::JsonApi for LogsApi {
    fn title(&self) -> &'static str {
        "CloudWatch Logs"
    }

    fn signing_name(&self) -> &'static str {
        flotilla_logs::SIGNING_NAME
    }

    fn target_prefix(&self) -> &'static str {
        flotilla_logs::TARGET_PREFIX.trim_end_matches('.')
    }

    fn has_operation(&self, name: &str) -> bool {
        flotilla_logs::Operation::from_name(name).is_some()
    }

    fn invalid_request(&self, message: String) -> flotilla_edge::json::JsonError {
        json_error(LogsError::invalid(message))
    }

    fn internal_error(&self, message: String) -> flotilla_edge::json::JsonError {
        json_error(LogsError::unavailable(message))
    }

    async fn dispatch(
        &self,
        call: flotilla_edge::json::JsonCall<'_>,
    ) -> Result<Value, flotilla_edge::json::JsonError> {
        let now_ms = (call.now * 1000.0) as i64;
        self.0
            .dispatch(call.operation, call.input, now_ms)
            .await
            .map_err(json_error)
    }
}

/// A Logs error on the wire.
pub fn json_error(e: LogsError) -> flotilla_edge::json::JsonError {
    flotilla_edge::json::JsonError::new(e.code.as_str(), e.code.http_status(), "message", e.message)
}
