//! The data plane's threads: one single-threaded tokio runtime per core, each serving the client
//! connections handed to it from start to end (both sockets, the backend connections it pools,
//! its timers), as HAProxy's and nginx's threads do.
//!
//! Why not the work-stealing runtime: a proxied request is two short wake-ups (client readable,
//! backend readable), and with work stealing each can land on another worker, waking a parked
//! thread through a futex to steal it. Measured on 2 cores that cost about a quarter of the
//! throughput against HAProxy; one runtime per thread keeps a connection's work on one core.
//! Connections are spread when accepted: each goes to the worker with the fewest open.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker this thread is, for per-worker state (connection pools).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker running the caller (0 off the workers).
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Client connections open on each worker.
    open: Vec<AtomicUsize>,
    next: AtomicUsize,
    /// Dropping these ends the workers' runtimes (and every task on them).
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one). A worker whose thread or runtime cannot be made is
    /// left out; with none at all, work runs on the runtime of whoever calls `apply`.
    pub fn start(n: usize) -> Self {
        let mut handles = Vec::new();
        let mut stop = Vec::new();
        for i in 0..n.max(1) {
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let index = handles.len();
            let spawned = std::thread::Builder::new()
                .name(format!("lb-worker-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "load balancer worker runtime");
                            return;
                        }
                    };
                    WORKER.with(|w| w.set(index));
                    let _ = handle_tx.send(rt.handle().clone());
                    rt.block_on(async move {
                        let _ = stop_rx.await;
                    });
                });
            if spawned.is_err() {
                continue;
            }
            if let Ok(h) = handle_rx.recv() {
                handles.push(h);
                stop.push(stop_tx);
            }
        }
        let open = handles.iter().map(|_| AtomicUsize::new(0)).collect();
        Workers {
            handles,
            open,
            next: AtomicUsize::new(0),
            _stop: stop,
        }
    }

    pub fn len(&self) -> usize {
        self.handles.len().max(1)
    }

    /// Runs `fut` on worker `w`.
    pub fn spawn<F>(&self, w: usize, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.handles.get(w) {
            Some(h) => h.spawn(fut),
            None => tokio::spawn(fut),
        }
    }

    /// The worker for a new connection: the fewest open, ties taken in turn.
    pub fn pick(&self) -> usize {
        let n = self.open.len();
        if n <= 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Relaxed) % n;
        (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&w| self.open[w].load(Relaxed))
            .unwrap_or(0)
    }

    fn opened(&self, w: usize) {
        if let Some(o) = self.open.get(w) {
            o.fetch_add(1, Relaxed);
        }
    }

    fn closed(&self, w: usize) {
        if let Some(o) = self.open.get(w) {
            o.fetch_sub(1, Relaxed);
        }
    }
}

/// Counts a connection against its worker while it lives.
pub(crate) struct OnWorker {
    workers: Arc<Workers>,
    w: usize,
}

impl OnWorker {
    pub fn new(workers: &Arc<Workers>, w: usize) -> Self {
        workers.opened(w);
        OnWorker {
            workers: workers.clone(),
            w,
        }
    }
}

impl Drop for OnWorker {
    fn drop(&mut self) {
        self.workers.closed(self.w);
    }
}
