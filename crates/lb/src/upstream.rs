//! One keep-alive HTTP/1.1 connection to a backend, driven by the task of the request using it.
//!
//! hyper's client connection is a future that must be polled for its I/O. Rather than spawn it
//! (a task per backend connection, and two cross-task wake-ups per request), the request's own
//! future polls it while waiting for the response headers, and the response body polls it while
//! streaming: a request then lives in one task from client to backend and back, as in an
//! event-loop proxy. Between requests the connection sits in its backend's pool, unpolled.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Conn = Connection<TokioIo<TcpStream>, Incoming>;

pub(crate) struct BackendConn {
    sender: SendRequest<Incoming>,
    conn: Pin<Box<Conn>>,
    /// The connection's future has completed (closed or failed): it must not be polled again.
    ended: bool,
}

impl std::fmt::Debug for BackendConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConn")
            .field("ended", &self.ended)
            .finish()
    }
}

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectError {
    Refused,
    TimedOut,
    Other,
}

impl BackendConn {
    /// Connects within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ConnectError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(backend = %addr, error = %e, "connect failed");
                return Err(if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ConnectError::Refused
                } else {
                    ConnectError::Other
                });
            }
            Err(_) => {
                tracing::debug!(backend = %addr, "connect timed out");
                return Err(ConnectError::TimedOut);
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ConnectError::Other)?;
        Ok(BackendConn {
            sender,
            conn: Box::pin(conn),
            ended: false,
        })
    }

    /// Drives the connection's I/O; false once it has ended.
    pub fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        if self.ended {
            return false;
        }
        match self.conn.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(r) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "backend connection failed");
                }
                self.ended = true;
                false
            }
        }
    }

    /// Whether the connection can take a request (a pooled one first finishes its last
    /// exchange, or turns out closed by the backend).
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            if !self.poll_io(cx) {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Sends `req` and waits for the response headers, driving the connection meanwhile. An
    /// error that carries the request back means it was not sent.
    pub async fn send(
        &mut self,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Incoming>>> {
        let mut response = std::pin::pin!(self.sender.try_send_request(req));
        poll_fn(|cx| {
            self.poll_io(cx);
            response.as_mut().poll(cx)
        })
        .await
    }

    pub fn ended(&self) -> bool {
        self.ended
    }
}
