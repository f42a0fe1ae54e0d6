//! Accepting TLS connections: a loop accepts TCP connections and hands each to a task of its
//! own for the handshake (at most [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at once);
//! finished handshakes queue for [`TlsIncoming::accept`]. A client that connects and says
//! nothing, or speaks plain HTTP to the TLS port, costs one task until its handshake fails and
//! never holds up anyone else. The loop ends when the [`TlsIncoming`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes run at once; the next connection waits for one to end.
pub const MAX_HANDSHAKES: usize = 1024;

/// Connections whose TLS handshake is done.
pub struct TlsIncoming {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Accepts on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        Self::with_timeout(listener, config, HANDSHAKE_TIMEOUT)
    }

    /// As [`TlsIncoming::new`], with another handshake timeout (tests).
    pub fn with_timeout(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            tx,
            timeout,
        ));
        Ok(TlsIncoming { rx, local, task })
    }

    /// The next connection with its handshake done, and the client's address.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The loop only ends when this is dropped.
            None => std::future::pending().await,
        }
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin (as axum does).
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    drop(slot);
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::tests::issue;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_client_does_not_hold_up_a_real_one_and_plain_http_gets_no_answer() {
        let (cert, key, ca) = issue(&["localhost", "127.0.0.1"]);
        let server = crate::ServerTls::from_pem(
            cert.as_bytes(),
            Path::new("c"),
            key.as_bytes(),
            Path::new("k"),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming =
            TlsIncoming::with_timeout(listener, server.config(), Duration::from_secs(2)).unwrap();
        let addr = incoming.local_addr();
        // Connects and says nothing.
        let _silent = TcpStream::connect(addr).await.unwrap();
        // Speaks plain HTTP: the handshake fails, the connection is closed with no HTTP answer.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let client = crate::ClientTls::from_ca_pem(ca.as_bytes(), Path::new("ca")).unwrap();
        let connector = tokio_rustls::TlsConnector::from(client.config());
        let dial = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            tls.flush().await.unwrap();
            tls
        });
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(5), incoming.accept())
            .await
            .expect("the real client is accepted while the silent one waits");
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        let _client = dial.await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
            "{answer:?}"
        );
    }
}
