//! etcd client errors as [`StoreError`]s.
//!
//! etcd reports most conditions as a gRPC status whose code is shared by several of them
//! (`OutOfRange` is both "compacted" and "future revision"); its own Go client tells them apart
//! by the status message (`rpctypes.ErrorDesc`), and so does this module, in this one place.
//! Everything that means "no answer from a healthy cluster" (connection refused or reset, no
//! leader, leader changed, timeouts) becomes [`StoreError::Unavailable`], so that callers (and
//! a readiness probe) can tell an unreachable store from a failing one.

use etcd_client::Error;
use tonic::Code;

use crate::StoreError;

/// What an etcd error means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No healthy answer: retrying later (maybe on another member) can succeed.
    Unavailable,
    /// A read at a revision older than the last compaction.
    Compacted,
    /// A read at a revision newer than the current one.
    FutureRevision,
    /// The request is over the server's size limit.
    TooLarge,
    /// Anything else.
    Other,
}

/// Classifies an etcd client error.
pub(crate) fn kind(e: &Error) -> Kind {
    match e {
        Error::TransportError(_) | Error::IoError(_) => Kind::Unavailable,
        Error::GRpcStatus(s) => status_kind(s.code(), s.message()),
        _ => Kind::Other,
    }
}

fn status_kind(code: Code, message: &str) -> Kind {
    if message.contains("required revision has been compacted") {
        return Kind::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return Kind::FutureRevision;
    }
    if message.contains("request is too large") || code == Code::ResourceExhausted {
        return Kind::TooLarge;
    }
    match code {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            Kind::Unavailable
        }
        // tonic reports a broken connection mid-call as Unknown with a transport message.
        Code::Unknown
            if ["transport", "connection", "broken pipe", "h2 protocol"]
                .iter()
                .any(|m| message.to_ascii_lowercase().contains(m)) =>
        {
            Kind::Unavailable
        }
        _ if message.contains("no leader")
            || message.contains("leader changed")
            || message.contains("request timed out")
            || message.contains("timed out") =>
        {
            Kind::Unavailable
        }
        _ => Kind::Other,
    }
}

/// Converts an etcd client error, keeping its whole message (with its sources).
pub(crate) fn from_etcd(e: Error) -> StoreError {
    let message = describe(&e);
    match kind(&e) {
        Kind::Unavailable => StoreError::Unavailable(message),
        _ => StoreError::Backend(format!("etcd: {message}")),
    }
}

/// The error and its chain of sources, one line.
pub(crate) fn describe(e: &Error) -> String {
    let mut out = match e {
        Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_classified_as_etcd_sends_them() {
        let check = |code, msg, want| assert_eq!(status_kind(code, msg), want, "{msg}");
        check(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
            Kind::Compacted,
        );
        check(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
            Kind::FutureRevision,
        );
        check(
            Code::InvalidArgument,
            "etcdserver: request is too large",
            Kind::TooLarge,
        );
        check(
            Code::Unavailable,
            "etcdserver: no leader",
            Kind::Unavailable,
        );
        check(
            Code::Unavailable,
            "etcdserver: leader changed",
            Kind::Unavailable,
        );
        check(
            Code::Unavailable,
            "etcdserver: request timed out",
            Kind::Unavailable,
        );
        check(Code::Cancelled, "Timeout expired", Kind::Unavailable);
        check(Code::Unknown, "transport error", Kind::Unavailable);
        check(
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
            Kind::Other,
        );
    }
}
