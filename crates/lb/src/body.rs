//! The body of a response the data plane sends a client: a backend's body streamed through, or a
//! short one of its own (502, 503, 504). While a backend's body streams, polling it also drives
//! the backend connection's I/O (see `upstream`); read to its end, the connection goes back to
//! the backend's pool; a body dropped before its end closes it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::state::Outstanding;
use crate::upstream::BackendConn;

/// What a backend's response holds until its body is done: the request's place in its
/// backend's outstanding count, and the connection to give back.
#[derive(Debug)]
pub(crate) struct Lease {
    pub outstanding: Outstanding,
    pub conn: Option<BackendConn>,
}

impl Lease {
    fn finish(&mut self) {
        if let Some(c) = self.conn.take() {
            if !c.ended() {
                self.outstanding.0.put_idle(c);
            }
        }
    }
}

#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Upstream { body: Incoming, lease: Lease },
    Local(Option<Bytes>),
}

impl ProxyBody {
    pub(crate) fn upstream(body: Incoming, lease: Lease) -> Self {
        let mut b = ProxyBody {
            kind: Kind::Upstream { body, lease },
        };
        b.finish_if_done();
        b
    }

    pub(crate) fn local(text: &'static str) -> Self {
        ProxyBody {
            kind: Kind::Local(Some(Bytes::from_static(text.as_bytes()))),
        }
    }

    fn finish_if_done(&mut self) {
        if let Kind::Upstream { body, lease } = &mut self.kind {
            if body.is_end_stream() {
                lease.finish();
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Local(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Upstream { body, lease } => {
                if let Some(c) = lease.conn.as_mut() {
                    c.poll_io(cx);
                }
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => lease.finish(),
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => lease.finish(),
                    // An error mid-body leaves the connection unusable: drop it with the lease.
                    Poll::Ready(Some(Err(_))) => lease.conn = None,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local(data) => data.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}
