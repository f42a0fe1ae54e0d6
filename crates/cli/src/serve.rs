//! Runs the control plane: opens the embedded store, builds the API and serves it until
//! Ctrl-C or SIGTERM.

use crate::config::ServerConfig;
use anyhow::Context;
use flotilla_api::{router, Api, SystemClock};
use flotilla_store::SqliteStore;
use std::sync::Arc;

/// Serves until a shutdown signal.
pub async fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let store = SqliteStore::open(&cfg.data_dir)
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    let api = Arc::new(Api::new(
        Arc::new(store),
        cfg.api.clone(),
        Arc::new(SystemClock),
    ));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, region = %cfg.api.arns.region, account = %cfg.api.arns.account, "serving the ECS API");
    for line in &cfg.banner {
        println!("{line}");
    }
    // Tests and scripts wait for this line to know the server is ready.
    println!("listening on http://{addr}");
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving HTTP")?;
    tracing::info!("shut down");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
