//! A simulated host's costs and failures: [`Simulation`] (the configuration) and the seeded
//! draw of which starts fail.
//!
//! What this is not: a model of what containers do (that is [`super::Script`]); it only says
//! how long the engine takes to start one and whether it manages to.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::time::Duration;

/// The message of a simulated start failure (Docker's start error, as the task shows it).
pub const START_FAILURE: &str = "simulated start failure (flotilla bench: --failure-rate)";

/// How a simulated host behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Simulation {
    /// How long each container start takes.
    pub start_latency: Duration,
    /// The probability (0 to 1) that a start fails.
    pub failure_rate: f64,
    /// The seed of the draws: the same seed gives the same failures in the same order.
    pub seed: u64,
}

/// A [`Simulation`] with its generator.
pub(super) struct Simulated {
    pub(super) config: Simulation,
    rng: Mutex<StdRng>,
}

impl Simulated {
    pub(super) fn new(config: Simulation) -> Self {
        Simulated {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
        }
    }

    /// Draws whether the next start fails.
    pub(super) fn fails(&self) -> bool {
        let rate = self.config.failure_rate.clamp(0.0, 1.0);
        if rate <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.gen::<f64>() < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: u64, rate: f64, n: usize) -> Vec<bool> {
        let s = Simulated::new(Simulation {
            failure_rate: rate,
            seed,
            ..Simulation::default()
        });
        (0..n).map(|_| s.fails()).collect()
    }

    #[test]
    fn the_same_seed_fails_the_same_starts() {
        assert_eq!(draws(7, 0.3, 200), draws(7, 0.3, 200));
        assert_ne!(draws(7, 0.3, 200), draws(8, 0.3, 200));
    }

    #[test]
    fn the_rate_bounds_hold() {
        assert!(draws(1, 0.0, 1000).iter().all(|f| !f));
        assert!(draws(1, 1.0, 1000).iter().all(|f| *f));
        let failed = draws(3, 0.25, 10_000).iter().filter(|f| **f).count();
        assert!((2_000..3_000).contains(&failed), "{failed}");
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;
    use crate::runtime::memory::MemoryRuntime;
    use crate::runtime::{ContainerSpec, Runtime};

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: "busybox".into(),
            command: Some(vec!["sleep".into(), "3600".into()]),
            ..ContainerSpec::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_simulated_start_takes_its_latency_and_keeps_no_call_log() {
        let sim = Simulation {
            start_latency: Duration::from_millis(300),
            ..Simulation::default()
        };
        let rt = MemoryRuntime::simulated(sim, "busybox");
        let id = rt.create(&spec("a")).await.unwrap();
        let before = tokio::time::Instant::now();
        rt.start(&id).await.unwrap();
        assert_eq!(before.elapsed(), Duration::from_millis(300));
        assert!(rt.inspect(&id).await.unwrap().running);
        assert!(rt.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_simulated_start_leaves_the_container_created() {
        let sim = Simulation {
            failure_rate: 1.0,
            ..Simulation::default()
        };
        let rt = MemoryRuntime::simulated(sim, "busybox");
        let id = rt.create(&spec("a")).await.unwrap();
        let err = rt.start(&id).await.unwrap_err();
        assert_eq!(err.ecs_name(), "CannotStartContainerError");
        let info = rt.inspect(&id).await.unwrap();
        assert!(!info.running && info.created_only);
        assert_eq!(info.error.as_deref(), Some(START_FAILURE));
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_token_changes_exactly_when_inspect_would_tell_otherwise() {
        let rt = MemoryRuntime::new();
        rt.add_image("busybox");
        rt.script("exits", |s| s.exit = Some((Duration::from_secs(10), 3)));
        let mut checked = spec("checked");
        checked.health_check = Some(crate::runtime::HealthCheckSpec {
            test: vec!["CMD-SHELL".into(), "exit 0".into()],
            interval_s: 5,
            timeout_s: 1,
            retries: 3,
            start_period_s: 0,
        });
        let a = rt.create(&spec("steady")).await.unwrap();
        let b = rt.create(&spec("exits")).await.unwrap();
        let c = rt.create(&checked).await.unwrap();
        assert!(rt.state_token("nope").is_none());
        let created = rt.state_token(&a).unwrap();
        for id in [&a, &b, &c] {
            rt.start(id).await.unwrap();
        }
        let a1 = rt.state_token(&a).unwrap();
        let b1 = rt.state_token(&b).unwrap();
        let c1 = rt.state_token(&c).unwrap();
        assert_ne!(created, a1, "started");
        let inspect_a = rt.inspect(&a).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        // Nothing changed for a; the health check's first pass changed c.
        assert_eq!(rt.state_token(&a), Some(a1));
        assert_eq!(rt.inspect(&a).await.unwrap(), inspect_a);
        assert_eq!(rt.state_token(&b), Some(b1));
        assert_ne!(rt.state_token(&c), Some(c1));
        // b exits on its own: the token tells it before any inspect.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_ne!(rt.state_token(&b), Some(b1));
        assert_eq!(rt.inspect(&b).await.unwrap().exit_code, 3);
        // A kill is a change too.
        rt.kill(&a, crate::runtime::Signal::Kill).await.unwrap();
        assert_ne!(rt.state_token(&a), Some(a1));
    }
}
