//! One modelled container: Docker's states (created, running, exited), its exit, `OOMKilled`,
//! health as Docker's health checks would decide it, and port bindings while it runs.
//!
//! What this is not: a process. Time is tokio's: what happened by now is applied lazily
//! ([`Container::settle`]) whenever the runtime is asked.

use super::script::{shell_line, Script};
use crate::runtime::{Binding, ContainerSpec, Health};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Created,
    Running { since: Instant },
    Exited,
}

pub(super) struct Container {
    pub(super) id: String,
    pub(super) spec: ContainerSpec,
    pub(super) image_id: String,
    pub(super) script: Script,
    pub(super) state: State,
    pub(super) exit_code: i64,
    pub(super) oom_killed: bool,
    pub(super) error: Option<String>,
    pub(super) started_at: Option<Instant>,
    pub(super) finished_at: Option<Instant>,
    /// The health when it last stopped.
    pub(super) last_health: Health,
    pub(super) bindings: Vec<Binding>,
    pub(super) cpu_ns: u64,
    /// What it wrote, in order ([`super::MemoryRuntime::write_output`]).
    pub(super) output: Vec<crate::runtime::OutputLine>,
}

impl Container {
    /// When it ends on its own in this run, how, and whether the kernel killed it for memory.
    pub(super) fn next_exit(&self) -> Option<(Instant, i64, bool)> {
        let State::Running { since } = self.state else {
            return None;
        };
        let exit = self.script.exit.map(|(d, code)| (since + d, code, false));
        let oom = self.script.oom_after.map(|d| (since + d, 137, true));
        match (exit, oom) {
            (Some(e), Some(o)) => Some(if o.0 <= e.0 { o } else { e }),
            (e, o) => e.or(o),
        }
    }

    /// Applies what happened on its own up to `now`.
    pub(super) fn settle(&mut self, now: Instant) {
        if let Some((at, code, oom)) = self.next_exit() {
            if at <= now {
                self.exit(at, code, oom);
            }
        }
    }

    pub(super) fn exit(&mut self, at: Instant, code: i64, oom: bool) {
        let State::Running { since } = self.state else {
            return;
        };
        self.last_health = self.health_at(since, at);
        self.cpu_ns += cpu_ns(at - since);
        self.state = State::Exited;
        self.exit_code = code;
        self.oom_killed = oom;
        self.finished_at = Some(at);
        self.bindings.clear();
    }

    pub(super) fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Docker's health: the first check runs one interval after the start; passing checks
    /// make it healthy, `retries` failures after the start period unhealthy.
    pub(super) fn health_at(&self, since: Instant, now: Instant) -> Health {
        let Some(hc) = &self.spec.health_check else {
            return Health::None;
        };
        let passes = self.script.health_passes.unwrap_or_else(|| {
            let line = hc
                .test
                .iter()
                .skip(1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            !matches!(shell_line(&line).0, Some((_, code)) if code != 0)
        });
        let interval = Duration::from_secs(u64::from(hc.interval_s.max(1)));
        let checks =
            u32::try_from((now - since).as_nanos() / interval.as_nanos()).unwrap_or(u32::MAX);
        if passes {
            return if checks >= 1 {
                Health::Healthy
            } else {
                Health::Starting
            };
        }
        let start_period = Duration::from_secs(u64::from(hc.start_period_s));
        let counted = (1..=checks)
            .filter(|k| interval * *k > start_period)
            .count();
        if counted >= usize::try_from(hc.retries.max(1)).unwrap_or(usize::MAX) {
            Health::Unhealthy
        } else {
            Health::Starting
        }
    }

    /// A fingerprint of everything inspect tells of it at `now` (its labels, image and spec
    /// never change once it is created).
    pub(super) fn token(&self, now: Instant) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.id.hash(&mut h);
        self.spec.name.hash(&mut h);
        match self.state {
            State::Created => 0u8.hash(&mut h),
            State::Running { since } => {
                1u8.hash(&mut h);
                since.hash(&mut h);
            }
            State::Exited => 2u8.hash(&mut h),
        }
        self.exit_code.hash(&mut h);
        self.oom_killed.hash(&mut h);
        self.error.hash(&mut h);
        self.started_at.hash(&mut h);
        self.finished_at.hash(&mut h);
        self.health(now).hash(&mut h);
        self.bindings.hash(&mut h);
        self.spec.ipv4_address.hash(&mut h);
        h.finish()
    }

    pub(super) fn health(&self, now: Instant) -> Health {
        match self.state {
            State::Running { since } => self.health_at(since, now),
            State::Created => Health::None,
            State::Exited => self.last_health,
        }
    }
}

/// 1% of a CPU.
pub(super) fn cpu_ns(ran: Duration) -> u64 {
    u64::try_from(ran.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// Seconds since the epoch as RFC 3339 in UTC with nanoseconds, as Docker writes times.
pub(super) fn rfc3339(secs: f64) -> String {
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9) as u64 % 1_000_000_000;
    // Whole seconds of a time after 1970 fit an i64.
    #[allow(clippy::cast_possible_truncation)]
    let whole = whole as i64;
    let (days, rem) = (whole.div_euclid(86_400), whole.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn times_are_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000.5), "2023-11-14T22:13:20.500000000Z");
    }
}
