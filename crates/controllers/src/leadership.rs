//! The leadership supervisor: runs the controllers only while this replica leads.
//!
//! A [`Supervisor`] campaigns in the store's [`Election`]; once elected it starts the
//! controllers ([`Controllers::start`], or whatever its start function makes) for that term,
//! stops them (aborts their tasks) the moment the term is lost, and campaigns again. Its
//! [`Role`] is observable (for `/metrics` and status).
//!
//! What it is not: the fence itself. Aborting the controllers does not stop a write already
//! sent; the store refuses it because the controllers put the term's [`Fence`] on every
//! transaction: the start function receives the fence and [`Controllers::start`] takes it.
//!
//! Dropping the supervisor aborts everything without resigning (as when the process dies: the
//! lease lapses within its TTL); [`Supervisor::shutdown`] resigns, so another replica takes
//! over at once.

use std::sync::Arc;
use std::time::Duration;

use flotilla_store::{Election, Fence, Term};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Controllers, Plane};

/// First pause after a failed campaign; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between campaigns that fail (the store is unreachable).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for the resignation on shutdown.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(3);

/// True (and logged, once per controller) when `e` says the store refused `controller`'s
/// fenced write ([`crate::records::deposed`]): its term is over, and it stops acting instead of
/// retrying (the supervisor is stopping it anyway).
pub(crate) fn deposed(controller: &str, e: &flotilla_model::EcsError) -> bool {
    let deposed = crate::records::is_deposed(e);
    if deposed {
        tracing::warn!(
            controller,
            "a write was refused: this replica no longer leads; the controller stops"
        );
    }
    deposed
}

/// What this replica is doing in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waiting to lead (another replica leads, or the store is unreachable).
    Campaigning,
    /// Leading: the controllers run, for this term.
    Leader {
        /// The fencing token of the term.
        term: u64,
    },
    /// Shut down.
    Stopped,
}

/// Runs the controllers on the replica that leads. See the module docs.
pub struct Supervisor {
    task: Option<JoinHandle<()>>,
    role: watch::Receiver<Role>,
    shutdown: watch::Sender<bool>,
}

impl Supervisor {
    /// Supervises the controllers of `plane` ([`Controllers::start`]) under `election`.
    pub fn spawn(plane: Arc<Plane>, election: Arc<dyn Election>) -> Supervisor {
        Self::spawn_with(election, move |fence: &Fence| {
            Controllers::start(&plane, fence)
        })
    }

    /// Supervises what `start` starts for each term won: it gets the term's fence, and what
    /// it returns is dropped (which must stop it) when the term is lost.
    pub fn spawn_with<T, F>(election: Arc<dyn Election>, start: F) -> Supervisor
    where
        T: Send + 'static,
        F: FnMut(&Fence) -> T + Send + 'static,
    {
        let (role_tx, role) = watch::channel(Role::Campaigning);
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(supervise(election, start, role_tx, stop));
        Supervisor {
            task: Some(task),
            role,
            shutdown,
        }
    }

    /// This replica's role now, and its changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Stops the controllers and resigns if leading, so another replica takes over at once.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(RESIGN_TIMEOUT, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

async fn supervise<T, F>(
    election: Arc<dyn Election>,
    mut start: F,
    role: watch::Sender<Role>,
    mut stop: watch::Receiver<bool>,
) where
    F: FnMut(&Fence) -> T,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        role.send_replace(Role::Campaigning);
        let won: Option<Result<Term, _>> = tokio::select! {
            r = election.campaign() => Some(r),
            _ = stop.wait_for(|s| *s) => None,
        };
        let mut term = match won {
            None => break,
            Some(Ok(term)) => term,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "campaigning for leadership failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        let number = term.term();
        tracing::info!(term = number, "elected leader: starting the controllers");
        let running = start(term.fence());
        role.send_replace(Role::Leader { term: number });
        let resign = tokio::select! {
            reason = term.lost() => {
                drop(running);
                tracing::warn!(term = number, reason = %reason, "leadership lost: controllers stopped");
                false
            }
            _ = stop.wait_for(|s| *s) => {
                drop(running);
                true
            }
        };
        if resign {
            role.send_replace(Role::Campaigning);
            if let Err(e) = election.resign(term).await {
                tracing::warn!(term = number, error = %e, "resigning failed; the lease will lapse");
            } else {
                tracing::info!(term = number, "resigned leadership");
            }
            break;
        }
    }
    role.send_replace(Role::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_store::SoleLeader;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Running(Arc<AtomicUsize>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_sole_leader_runs_the_controllers_once_and_stops_them_on_shutdown() {
        let running = Arc::new(AtomicUsize::new(0));
        let r = running.clone();
        let sup = Supervisor::spawn_with(Arc::new(SoleLeader::new("me")), move |fence| {
            assert_eq!(fence, &Fence::unfenced());
            r.fetch_add(1, Ordering::SeqCst);
            Running(r.clone())
        });
        let mut role = sup.role();
        role.wait_for(|r| *r == Role::Leader { term: 1 })
            .await
            .unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 1);
        sup.shutdown().await;
        assert_eq!(*role.borrow(), Role::Stopped);
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }
}
