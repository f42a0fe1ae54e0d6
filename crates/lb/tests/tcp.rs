//! TCP listeners end to end on 127.0.0.1: echo backends through the network load balancer path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use flotilla_lb::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echoes what it reads, prefixed by its name, and half-closes when the client does.
async fn echo(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                s.write_all(name.as_bytes()).await.unwrap();
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    (addr, task)
}

async fn exchange(lb: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(lb).await.unwrap();
    s.write_all(payload).await.unwrap();
    s.shutdown().await.unwrap(); // half-close: the echo must still come back
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

/// Whether the load balancer closed the connection without a byte (a close with our bytes
/// unread arrives as a reset).
async fn closed_at_once(lb: SocketAddr) -> bool {
    let mut s = TcpStream::connect(lb).await.unwrap();
    let _ = s.write_all(b"x").await;
    let mut out = Vec::new();
    match s.read_to_end(&mut out).await {
        Ok(_) => out.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_through_a_tcp_listener_with_half_close() {
    let (a, _ta) = echo("a:").await;
    let (b, _tb) = echo("b:").await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Tcp,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a, b]))],
        "tg",
    ))
    .await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = exchange(lb, &big).await;
    assert_eq!(&out[2..], &big[..]);
    let mut firsts = vec![String::from_utf8_lossy(&out[..2]).into_owned()];
    for _ in 0..3 {
        firsts.push(String::from_utf8_lossy(&exchange(lb, b"hi").await).into_owned());
    }
    assert_eq!(firsts[1..], ["b:hi", "a:hi", "b:hi"]);
    assert!(firsts[0] == "a:");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_target_is_retried_else_the_connection_closes() {
    let (a, _ta) = echo("a:").await;
    let dead = refused_addr().await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Tcp,
        vec![group(
            "tg",
            Algorithm::LeastOutstandingRequests,
            serve(&[dead, a]),
        )],
        "tg",
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(exchange(lb, b"x").await, b"a:x");
    }
    assert!(plane
        .apply(one_listener(
            ListenerProtocol::Tcp,
            vec![group("tg", Algorithm::RoundRobin, serve(&[dead]))],
            "tg"
        ))
        .await
        .is_empty());
    assert!(closed_at_once(lb).await);
    assert!(plane
        .apply(one_listener(
            ListenerProtocol::Tcp,
            vec![group("tg", Algorithm::RoundRobin, vec![])],
            "tg"
        ))
        .await
        .is_empty());
    assert!(closed_at_once(lb).await);
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_backends_behind_a_tcp_listener() {
    let a = backend("a").await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Tcp,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    for _ in 0..5 {
        assert_eq!(c.get("/").await.body, "a");
    }
    // Spliced, not proxied: no X-Forwarded headers, one backend connection.
    assert_eq!(
        c.get("/headers").await.body,
        "a host=app.test xff= proto= port="
    );
    assert_eq!(a.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(c); // shutdown waits for open TCP connections (up to its grace)
    plane.shutdown().await;
}
