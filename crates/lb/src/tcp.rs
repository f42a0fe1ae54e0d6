//! A TCP listener's connections (network load balancer): pick a backend of the default rule's
//! group (round robin, or the fewest open connections), connect (once more to another backend if
//! that fails), then splice both directions until both have ended; an end of stream in one
//! direction is passed on as a half-close, the other direction goes on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpStream;

use crate::state::{ListenerRt, Outstanding};

pub(crate) struct TcpCtx {
    pub routes: Arc<ArcSwap<ListenerRt>>,
    pub connect_timeout: Duration,
}

/// What became of a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpOutcome {
    /// Spliced until both sides ended.
    Spliced,
    /// No backend to serve: closed at once.
    NoTarget,
    /// No backend could be connected to: closed.
    Unreachable,
    /// A socket error mid-stream ended both directions.
    Broken,
}

pub(crate) async fn serve(ctx: &TcpCtx, mut client: TcpStream, peer: SocketAddr) -> TcpOutcome {
    let group = {
        let routes = ctx.routes.load();
        match routes.default_rule().and_then(|r| r.group()) {
            Some(g) => g.clone(),
            None => return TcpOutcome::NoTarget,
        }
    };
    let mut exclude = None;
    for _attempt in 0..2 {
        let Some(i) = group.pick(exclude) else { break };
        let backend = group.members[i].state.clone();
        let addr = backend.addr;
        let _outstanding = Outstanding::new(backend);
        match tokio::time::timeout(ctx.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                return match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    Ok(_) => TcpOutcome::Spliced,
                    Err(e) => {
                        tracing::debug!(%peer, backend = %addr, error = %e, "tcp splice ended by an error");
                        TcpOutcome::Broken
                    }
                };
            }
            Ok(Err(_)) | Err(_) => {
                group.members[i]
                    .state
                    .connect_failures
                    .fetch_add(1, Relaxed);
                exclude = Some(i);
                if group.members.len() < 2 {
                    break;
                }
            }
        }
    }
    if exclude.is_some() {
        TcpOutcome::Unreachable
    } else {
        TcpOutcome::NoTarget
    }
}
