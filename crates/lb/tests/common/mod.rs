//! Test harness: HTTP backends that answer their own name on 127.0.0.1, a keep-alive client, and
//! table builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_lb::*;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// A backend: `GET /` answers `NAME`; `/slow?ms=N` answers `NAME` after N ms; `/headers`
/// answers `NAME host=.. xff=.. proto=.. port=..`; `/status?code=N` answers code N.
pub struct TestBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// Connections it accepted.
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_num(q: Option<&str>, key: &str) -> Option<u64> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

pub async fn backend(name: &str) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (n, acc) = (name.to_string(), accepted.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            acc.fetch_add(1, Ordering::SeqCst);
            let n = n.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let n = n.clone();
                    async move {
                        let q = req.uri().query();
                        let mut code = StatusCode::OK;
                        let body = match req.uri().path() {
                            "/slow" => {
                                tokio::time::sleep(Duration::from_millis(
                                    query_num(q, "ms").unwrap_or(500),
                                ))
                                .await;
                                n
                            }
                            "/headers" => {
                                let h = |k: &str| {
                                    req.headers()
                                        .get(k)
                                        .map(|v| v.to_str().unwrap_or("?").to_string())
                                        .unwrap_or_default()
                                };
                                format!(
                                    "{n} host={} xff={} proto={} port={}",
                                    h("host"),
                                    h("x-forwarded-for"),
                                    h("x-forwarded-proto"),
                                    h("x-forwarded-port")
                                )
                            }
                            "/status" => {
                                code = StatusCode::from_u16(
                                    query_num(q, "code").unwrap_or(200) as u16
                                )
                                .unwrap();
                                n
                            }
                            "/echo" => {
                                let b = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                format!("{n} {}", String::from_utf8_lossy(&b))
                            }
                            _ => n,
                        };
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = code;
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestBackend {
        name: name.into(),
        addr,
        accepted,
        task,
    }
}

/// An address nothing listens on.
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// One keep-alive client connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    pub addr: SocketAddr,
}

pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { sender, addr }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.request(
            Request::get(path)
                .header("host", "app.test")
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    pub async fn request(&mut self, req: Request<Full<Bytes>>) -> Answer {
        self.try_request(req)
            .await
            .expect("the client connection broke")
    }

    pub async fn try_request(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// One GET on a connection of its own.
pub async fn get_once(addr: SocketAddr, path: &str) -> Answer {
    Client::connect(addr).await.get(path).await
}

pub fn serve(addrs: &[SocketAddr]) -> Vec<Backend> {
    addrs
        .iter()
        .map(|&addr| Backend {
            addr,
            routing: Routing::Serve,
            serving_since: None,
        })
        .collect()
}

pub fn group(id: &str, algorithm: Algorithm, targets: Vec<Backend>) -> (String, TargetGroup) {
    (
        id.to_string(),
        TargetGroup {
            id: id.into(),
            algorithm,
            slow_start_seconds: 0,
            targets,
        },
    )
}

pub fn forward(tg: &str) -> Vec<WeightedGroup> {
    vec![WeightedGroup {
        target_group: tg.into(),
        weight: 1,
    }]
}

/// A table with one listener `l` on a free port of 127.0.0.1 forwarding everything to `tg`.
pub fn one_listener(
    protocol: ListenerProtocol,
    groups: Vec<(String, TargetGroup)>,
    tg: &str,
) -> Table {
    Table {
        listeners: vec![Listener {
            id: "l".into(),
            bind: "127.0.0.1:0".parse().unwrap(),
            protocol,
            rules: vec![Rule {
                hosts: vec![],
                paths: vec![],
                forward: forward(tg),
            }],
            idle_timeout_seconds: None,
        }],
        target_groups: groups.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

/// A plane serving `table`, and the address of its listener `l`.
pub async fn start(table: Table) -> (DataPlane, SocketAddr) {
    let plane = DataPlane::new(Config {
        connect_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    let errors = plane.apply(table).await;
    assert!(errors.is_empty(), "{errors:?}");
    let addr = plane.local_addr("l").await.unwrap();
    (plane, addr)
}

pub fn name_of(a: &Answer) -> &str {
    a.body.split_whitespace().next().unwrap_or("")
}
