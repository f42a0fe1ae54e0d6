//! Usage sampling: CPU and memory of every task's running containers, for the session's
//! `Usage` messages.
//!
//! What this is: [`UsageSampler`], a cheap handle that samples from another tokio task, so a
//! slow stats call never holds up the session. CPU is averaged since the previous sample of the
//! same container, measured on tokio's clock.
//!
//! What this is not: part of any task's lifecycle: it only reads, never acts.

use super::{lock, Inner};
use flotilla_protocol::TaskUsage;
use std::sync::Arc;
use tokio::time::Instant;

/// Samples resource usage of the engine's tasks; see [`Engine::usage_sampler`]. It keeps the
/// engine's state alive but owns no task: dropping it changes nothing.
#[derive(Clone)]
pub struct UsageSampler {
    pub(super) inner: Arc<Inner>,
}

impl UsageSampler {
    /// One sample per task with running containers. Docker's one-shot stats take about a
    /// second each, so every container is sampled at the same time.
    pub async fn sample(&self) -> Vec<TaskUsage> {
        let tasks = self.inner.tasks.running_ids();
        let per_task = tasks
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(arn, ids)| {
                let inner = self.inner.clone();
                async move {
                    let stats =
                        futures::future::join_all(ids.iter().map(|id| inner.runtime.stats(id)))
                            .await;
                    let (mut cpu, mut mem) = (0.0, 0.0);
                    for (id, s) in ids.into_iter().zip(stats) {
                        let Ok(s) = s else { continue };
                        let now = Instant::now();
                        let prev = lock(&inner.cpu_prev).insert(id, (s.cpu_total_ns, now));
                        if let Some((prev_ns, at)) = prev {
                            let wall = now.duration_since(at).as_nanos() as f64;
                            if wall > 0.0 {
                                cpu +=
                                    s.cpu_total_ns.saturating_sub(prev_ns) as f64 / wall * 1024.0;
                            }
                        }
                        mem += s.memory_bytes as f64 / (1024.0 * 1024.0);
                    }
                    TaskUsage {
                        task_arn: arn,
                        cpu_units: cpu,
                        memory_mib: mem,
                        sampled_at: inner.now_epoch(),
                    }
                }
            });
        futures::future::join_all(per_task).await
    }
}
