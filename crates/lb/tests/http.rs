//! HTTP listeners end to end on 127.0.0.1: real backends, a real client, the real data plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use flotilla_lb::*;
use http_body_util::Full;
use hyper::Request;

fn counts(names: &[String]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.as_str()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_across_three_over_one_keep_alive_connection() {
    let bs = [backend("a").await, backend("b").await, backend("c").await];
    let addrs: Vec<_> = bs.iter().map(|b| b.addr).collect();
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&addrs))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    let mut names = Vec::new();
    for _ in 0..30 {
        let a = c.get("/").await;
        assert_eq!(a.status, 200);
        names.push(a.body);
    }
    assert_eq!(
        counts(&names),
        BTreeMap::from([("a", 10), ("b", 10), ("c", 10)])
    );
    // Strict rotation: every window of three sees each backend once.
    for w in names.chunks(3) {
        assert_eq!(counts(w).len(), 3, "{names:?}");
    }
    // Keep-alive both sides: one client connection, and each backend's connection reused.
    let m = plane.metrics();
    assert_eq!(m.client_connections_total, 1);
    assert_eq!(m.requests, 30);
    assert_eq!(m.responses_2xx, 30);
    for b in &bs {
        assert_eq!(
            b.accepted.load(Ordering::SeqCst),
            1,
            "backend {} connections",
            b.name
        );
    }
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_and_host() {
    let b = backend("a").await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[b.addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    let a = c.get("/headers").await;
    assert_eq!(
        a.body,
        format!(
            "a host=app.test xff=127.0.0.1 proto=http port={}",
            lb.port()
        )
    );
    let req = Request::get("/headers")
        .header("host", "Other.Test:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive")
        .body(Full::default())
        .unwrap();
    let a = c.request(req).await;
    assert_eq!(
        a.body,
        format!(
            "a host=Other.Test:8080 xff=203.0.113.7, 127.0.0.1 proto=http port={}",
            lb.port()
        )
    );
    // Request bodies are streamed through.
    let req = Request::post("/echo")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    assert_eq!(c.request(req).await.body, "a payload");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_route_by_host_then_path_else_default() {
    let (api, web, def) = (
        backend("api").await,
        backend("web").await,
        backend("default").await,
    );
    let table = Table {
        listeners: vec![Listener {
            id: "l".into(),
            bind: "127.0.0.1:0".parse().unwrap(),
            protocol: ListenerProtocol::Http,
            rules: vec![
                Rule {
                    hosts: vec![],
                    paths: vec!["/api/*".into()],
                    forward: forward("api"),
                },
                Rule {
                    hosts: vec!["*.web.test".into()],
                    paths: vec![],
                    forward: forward("web"),
                },
                Rule {
                    hosts: vec![],
                    paths: vec![],
                    forward: forward("default"),
                },
            ],
            idle_timeout_seconds: None,
        }],
        target_groups: [
            group("api", Algorithm::RoundRobin, serve(&[api.addr])),
            group("web", Algorithm::RoundRobin, serve(&[web.addr])),
            group("default", Algorithm::RoundRobin, serve(&[def.addr])),
        ]
        .into_iter()
        .collect(),
    };
    let (plane, lb) = start(table).await;
    let mut c = Client::connect(lb).await;
    let get = |host: &'static str, path: &'static str| {
        Request::get(path)
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(c.request(get("www.web.test", "/api/v1")).await.body, "api");
    assert_eq!(
        c.request(get("WWW.Web.Test:80", "/index")).await.body,
        "web"
    );
    assert_eq!(c.request(get("other.test", "/index")).await.body, "default");
    assert_eq!(c.request(get("other.test", "/api")).await.body, "default");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_forward_between_groups() {
    let (blue, green) = (backend("blue").await, backend("green").await);
    let mut table = one_listener(
        ListenerProtocol::Http,
        vec![
            group("blue", Algorithm::RoundRobin, serve(&[blue.addr])),
            group("green", Algorithm::RoundRobin, serve(&[green.addr])),
        ],
        "blue",
    );
    table.listeners[0].rules[0].forward = vec![
        WeightedGroup {
            target_group: "blue".into(),
            weight: 3,
        },
        WeightedGroup {
            target_group: "green".into(),
            weight: 1,
        },
    ];
    let (plane, lb) = start(table.clone()).await;
    let mut c = Client::connect(lb).await;
    let mut names = Vec::new();
    for _ in 0..400 {
        names.push(c.get("/").await.body);
    }
    let n = counts(&names);
    let blue_share = n["blue"] as f64 / 400.0;
    assert!((0.65..0.85).contains(&blue_share), "{n:?}");
    // Weight 0 gets nothing.
    table.listeners[0].rules[0].forward[1].weight = 0;
    assert!(plane.apply(table).await.is_empty());
    for _ in 0..50 {
        assert_eq!(c.get("/").await.body, "blue");
    }
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_avoids_the_busy_backend() {
    let (a, b) = (backend("a").await, backend("b").await);
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group(
            "tg",
            Algorithm::LeastOutstandingRequests,
            serve(&[a.addr, b.addr]),
        )],
        "tg",
    ))
    .await;
    // Two slow requests hold one backend each... then one more on whichever; hold `a` busy by
    // finding which got the first slow one.
    let slow = tokio::spawn(get_once(lb, "/slow?ms=1500"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = plane
        .metrics()
        .backends
        .iter()
        .find(|m| m.active == 1)
        .map(|m| m.addr)
        .unwrap();
    let idle_name = if busy == a.addr { "b" } else { "a" };
    let mut c = Client::connect(lb).await;
    for _ in 0..10 {
        assert_eq!(c.get("/").await.body, idle_name);
    }
    assert_eq!(slow.await.unwrap().status, 200);
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_backend_finishes_in_flight_and_gets_nothing_new() {
    let (a, b) = (backend("a").await, backend("b").await);
    let mut table = one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr, b.addr]))],
        "tg",
    );
    let (plane, lb) = start(table.clone()).await;
    // Start a slow request that lands on `a`.
    let mut c = Client::connect(lb).await;
    let mut slow = None;
    for _ in 0..4 {
        let mut other = Client::connect(lb).await;
        let fut = tokio::spawn(async move { other.get("/slow?ms=1200").await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let on_a = plane
            .metrics()
            .backends
            .iter()
            .any(|m| m.addr == a.addr && m.active == 1);
        if on_a {
            slow = Some(fut);
            break;
        }
        fut.await.unwrap();
    }
    let slow = slow.expect("a slow request landed on a");
    table.target_groups.get_mut("tg").unwrap().targets[0].routing = Routing::Drain;
    assert!(plane.apply(table).await.is_empty());
    for _ in 0..20 {
        assert_eq!(c.get("/").await.body, "b");
    }
    let done = slow.await.unwrap();
    assert_eq!((done.status, done.body.as_str()), (200, "a"));
    let ma = plane
        .metrics()
        .backends
        .into_iter()
        .find(|m| m.addr == a.addr)
        .unwrap();
    assert_eq!((ma.active, ma.idle_connections), (0, 0), "{ma:?}");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_keeps_the_keep_alive_client() {
    let (a, b) = (backend("a").await, backend("b").await);
    let mut table = one_listener(
        ListenerProtocol::Http,
        vec![
            group("one", Algorithm::RoundRobin, serve(&[a.addr])),
            group("two", Algorithm::RoundRobin, serve(&[b.addr])),
        ],
        "one",
    );
    let (plane, lb) = start(table.clone()).await;
    let mut c = Client::connect(lb).await;
    assert_eq!(c.get("/").await.body, "a");
    // A request in flight across the reload finishes on the old route.
    let mut other = Client::connect(lb).await;
    let inflight = tokio::spawn(async move { other.get("/slow?ms=600").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    table.listeners[0].rules[0].forward = forward("two");
    assert!(plane.apply(table.clone()).await.is_empty());
    assert_eq!(c.get("/").await.body, "b");
    assert_eq!(inflight.await.unwrap().body, "a");
    // A rule added in front.
    table.listeners[0].rules.insert(
        0,
        Rule {
            hosts: vec![],
            paths: vec!["/one".into()],
            forward: forward("one"),
        },
    );
    assert!(plane.apply(table).await.is_empty());
    assert_eq!(c.get("/one").await.body, "a");
    assert_eq!(c.get("/x").await.body, "b");
    assert!(!c.is_closed());
    assert_eq!(plane.metrics().client_connections_total, 2);
    assert_eq!(plane.local_addr("l").await, Some(lb));
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_serving_target_is_503_and_all_unhealthy_fails_open() {
    let a = backend("a").await;
    let skip = vec![Backend {
        addr: a.addr,
        routing: Routing::Skip,
        serving_since: None,
    }];
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, skip)],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 503);
    // A rule naming a group that does not exist, and a group with no targets: 503 too.
    assert!(plane
        .apply(one_listener(ListenerProtocol::Http, vec![], "missing"))
        .await
        .is_empty());
    assert_eq!(c.get("/").await.status, 503);
    assert!(plane
        .apply(one_listener(
            ListenerProtocol::Http,
            vec![group("tg", Algorithm::RoundRobin, vec![])],
            "tg"
        ))
        .await
        .is_empty());
    assert_eq!(c.get("/").await.status, 503);
    // Every target unhealthy: the group fails open.
    let unhealthy = vec![Backend {
        addr: a.addr,
        routing: Routing::Unhealthy,
        serving_since: None,
    }];
    assert!(plane
        .apply(one_listener(
            ListenerProtocol::Http,
            vec![group("tg", Algorithm::RoundRobin, unhealthy)],
            "tg"
        ))
        .await
        .is_empty());
    assert_eq!(c.get("/").await.body, "a");
    let m = plane.metrics();
    assert_eq!((m.lb_503, m.responses_5xx, m.responses_2xx), (3, 3, 1));
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_backend_is_retried_on_another_else_502() {
    let a = backend("a").await;
    let dead = refused_addr().await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[dead, a.addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    for _ in 0..6 {
        let r = c.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "a"));
    }
    let m = plane.metrics();
    assert!(
        m.backends
            .iter()
            .find(|b| b.addr == dead)
            .unwrap()
            .connect_failures
            >= 3
    );
    // Only dead backends: 502 after the one retry.
    let dead2 = refused_addr().await;
    assert!(plane
        .apply(one_listener(
            ListenerProtocol::Http,
            vec![group("tg", Algorithm::RoundRobin, serve(&[dead, dead2]))],
            "tg"
        ))
        .await
        .is_empty());
    assert_eq!(c.get("/").await.status, 502);
    assert_eq!(plane.metrics().lb_502, 1);
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_silent_past_the_idle_timeout_is_504() {
    let a = backend("a").await;
    let mut table = one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr]))],
        "tg",
    );
    table.listeners[0].idle_timeout_seconds = Some(1);
    let (plane, lb) = start(table).await;
    let mut c = Client::connect(lb).await;
    let t0 = std::time::Instant::now();
    assert_eq!(c.get("/slow?ms=3000").await.status, 504);
    assert!(t0.elapsed() < Duration::from_millis(2500));
    // The client connection is still good.
    assert_eq!(c.get("/").await.body, "a");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_status_codes_pass_through_and_are_counted() {
    let a = backend("a").await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    assert_eq!(c.get("/status?code=404").await.status, 404);
    assert_eq!(c.get("/status?code=500").await.status, 500);
    assert_eq!(c.get("/status?code=204").await.status, 204);
    let m = plane.metrics();
    assert_eq!(
        (m.responses_2xx, m.responses_4xx, m.responses_5xx, m.lb_502),
        (1, 1, 1, 0)
    );
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_listener_stops_accepting_and_in_flight_finishes() {
    let a = backend("a").await;
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    let inflight = tokio::spawn(async move { c.get("/slow?ms=500").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(plane.apply(Table::default()).await.is_empty());
    assert!(tokio::net::TcpStream::connect(lb).await.is_err());
    assert_eq!(inflight.await.unwrap().body, "a");
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failures_are_returned() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut table = one_listener(ListenerProtocol::Http, vec![], "tg");
    table.listeners[0].bind = taken.local_addr().unwrap();
    let plane = DataPlane::default();
    let errors = plane.apply(table).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].listener.as_str(), errors[0].kind),
        ("l", std::io::ErrorKind::AddrInUse)
    );
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let bs = [backend("a").await, backend("b").await, backend("c").await];
    let addrs: Vec<_> = bs.iter().map(|b| b.addr).collect();
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group(
            "tg",
            Algorithm::LeastOutstandingRequests,
            serve(&addrs),
        )],
        "tg",
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(lb).await;
            for _ in 0..50 {
                assert_eq!(c.get("/").await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = plane.metrics();
    assert_eq!(m.responses_2xx, 1000);
    assert!(
        m.backends.iter().all(|b| b.active == 0 && b.requests > 100),
        "{m:?}"
    );
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_round_trips_as_json() {
    let table = one_listener(
        ListenerProtocol::Tcp,
        vec![group(
            "tg",
            Algorithm::RoundRobin,
            serve(&["127.0.0.1:9".parse().unwrap()]),
        )],
        "tg",
    );
    let json = serde_json::to_string(&table).unwrap();
    assert_eq!(serde_json::from_str::<Table>(&json).unwrap(), table);
}

/// A backend that answers one request per connection without saying so, then closes it
/// after a moment: the pooled connection is dead when the next request takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_backend_closed_is_replaced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acc = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            acc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nonce")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            });
        }
    });
    let (plane, lb) = start(one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[addr]))],
        "tg",
    ))
    .await;
    let mut c = Client::connect(lb).await;
    for _ in 0..5 {
        let r = c.get("/").await;
        assert_eq!((r.status, r.body.as_str()), (200, "once"));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    assert_eq!(plane.metrics().lb_502, 0);
    task.abort();
    plane.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_connection_is_closed_after_the_idle_timeout() {
    let a = backend("a").await;
    let mut table = one_listener(
        ListenerProtocol::Http,
        vec![group("tg", Algorithm::RoundRobin, serve(&[a.addr]))],
        "tg",
    );
    table.listeners[0].idle_timeout_seconds = Some(1);
    let (plane, lb) = start(table).await;
    let mut busy = Client::connect(lb).await;
    let mut idle = Client::connect(lb).await;
    assert_eq!(idle.get("/").await.body, "a");
    // The busy one keeps its connection by using it; the idle one is closed within 2 s.
    for _ in 0..12 {
        assert_eq!(busy.get("/").await.body, "a");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(idle.is_closed());
    assert!(!busy.is_closed());
    assert_eq!(plane.metrics().client_connections, 1);
    drop(busy);
    plane.shutdown().await;
}
