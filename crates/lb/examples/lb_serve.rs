//! Serves a load balancer table from a JSON file (the shape of `flotilla_lb::Table`) until
//! interrupted or until standard input closes; reloads the file on SIGHUP. Prints `ready` once
//! every listener is bound. `--threads N`: the plane's worker threads (default: one per core).
//!
//!     cargo run --release -p flotilla-lb --example lb_serve -- TABLE.json [--threads N]

use flotilla_lb::{Config, DataPlane, Table};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

fn read(path: &str) -> Result<Table, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut path = None;
    let mut threads = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--threads" {
            threads = Some(
                args.next()
                    .ok_or("--threads needs a number")?
                    .parse::<usize>()?,
            );
        } else {
            path = Some(a);
        }
    }
    let path = path.ok_or("usage: lb_serve TABLE.json [--threads N]")?;
    // The plane runs its own worker threads; this runtime only drives `apply` and signals.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = Config::default();
    if let Some(n) = threads {
        config.workers = n;
    }
    let served = rt.block_on(async move {
        let plane = DataPlane::new(config);
        let errors = plane.apply(read(&path)?).await;
        for e in &errors {
            eprintln!("{e}");
        }
        if !errors.is_empty() {
            return Err("some listeners could not be bound".into());
        }
        println!("ready");
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                _ = hup.recv() => match read(&path) {
                    Ok(t) => for e in plane.apply(t).await { eprintln!("{e}") },
                    Err(e) => eprintln!("{path}: {e}"),
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                n = stdin.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { break },
            }
        }
        plane.shutdown().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    // The read of standard input may still block a thread: do not wait for it.
    rt.shutdown_background();
    served
}
