//! A small, fast HTTP/1.1 backend for the load balancer benchmark: every request on
//! `ADDR` gets `200` and the body `NAME\n`, with keep-alive.
//!
//!     cargo run --release -p flotilla-lb --example lb_backend -- [--threads N] NAME=ADDR...

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut threads = 1usize;
    let mut backends: Vec<(String, SocketAddr)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--threads" {
            threads = args.next().ok_or("--threads needs a number")?.parse()?;
        } else {
            let (name, addr) = a.split_once('=').ok_or("expected NAME=ADDR")?;
            backends.push((name.to_string(), addr.parse()?));
        }
    }
    if backends.is_empty() {
        return Err("usage: lb_backend [--threads N] NAME=ADDR...".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (name, addr) in backends {
            let listener = TcpListener::bind(addr).await?;
            let body = Bytes::from(format!("{name}\n"));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |_req| {
                            let body = body.clone();
                            async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }));
        }
        println!("ready");
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, std::io::Error>(())
    })?;
    Ok(())
}
