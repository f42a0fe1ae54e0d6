//! What `flotilla bench scale` measured and how it is printed (pure: no I/O, no clock).
//!
//! [`Report`] is the whole result (serialized as is for `--output json`); [`Latencies`] turns
//! the samples of one operation into its count, p50 and p99; [`calls`] splits the tasks to
//! launch into RunTask calls of at most ten; [`table`] is the human rendering.

use serde::Serialize;

/// The most tasks one RunTask call launches (ECS's limit for `count`).
pub const RUN_TASK_MAX_COUNT: u64 = 10;

/// The `count` of each RunTask call that launches `tasks` tasks: tens, then the rest.
pub fn calls(tasks: u64) -> Vec<u64> {
    let mut out =
        vec![RUN_TASK_MAX_COUNT; usize::try_from(tasks / RUN_TASK_MAX_COUNT).unwrap_or(0)];
    if !tasks.is_multiple_of(RUN_TASK_MAX_COUNT) {
        out.push(tasks % RUN_TASK_MAX_COUNT);
    }
    out
}

/// The latencies of one operation: how many calls, their median and 99th percentile (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latencies {
    /// Calls measured.
    pub calls: usize,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

impl Latencies {
    /// The figures of `samples` (milliseconds, any order).
    pub fn of(samples: &[f64]) -> Latencies {
        let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        Latencies {
            calls: s.len(),
            p50_ms: percentile(&s, 0.50),
            p99_ms: percentile(&s, 0.99),
        }
    }
}

/// The nearest-rank percentile of sorted samples (0 when there is none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Events per second (0 over no time).
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The services phase: a service of `tasks` tasks reaching steady state, then rolling to a
/// new revision of its task definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServicesFigures {
    /// Services created.
    pub services: u64,
    /// Desired tasks of each.
    pub tasks_per_service: u64,
    /// From CreateService to every service steady (all desired tasks RUNNING, one deployment
    /// COMPLETED), seconds.
    pub steady_seconds: f64,
    /// From UpdateService (a new revision) to every service steady on it, seconds.
    pub rollout_seconds: f64,
}

/// The lost hosts phase: hollow agents stopped at once, their service tasks replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LostHostsFigures {
    /// Hosts stopped.
    pub hosts: u64,
    /// Service tasks that ran on them.
    pub tasks_lost: u64,
    /// Until every one of them shows `agentConnected: false`, seconds.
    pub notice_seconds: f64,
    /// Until every service again has all its desired tasks RUNNING on live hosts, seconds.
    pub replace_seconds: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `embedded` or `etcd`.
    pub store: String,
    /// Hollow agents (simulated container instances).
    pub instances: u64,
    /// Tasks launched with RunTask.
    pub tasks: u64,
    /// Simulated container start latency, milliseconds.
    pub start_latency_ms: u64,
    /// Simulated start failure rate.
    pub failure_rate: f64,
    /// From the first agent started to every instance registered and connected, seconds.
    pub register_seconds: f64,
    /// Tasks placed (in RunTask answers).
    pub placed: u64,
    /// Tasks RunTask could not place (its `failures`).
    pub placement_failures: u64,
    /// Tasks seen RUNNING at the end of the launch phase.
    pub running: u64,
    /// From the first RunTask to the last answer, seconds.
    pub place_seconds: f64,
    /// Placed tasks per second.
    pub placements_per_second: f64,
    /// From the first RunTask to every placed task RUNNING (or the launch timeout), seconds.
    pub running_seconds: f64,
    /// RUNNING tasks per second, end to end.
    pub running_per_second: f64,
    /// RunTask under the launch load.
    pub run_task: Latencies,
    /// DescribeTasks (100 tasks) under the launch load.
    pub describe_tasks: Latencies,
    /// ListTasks (a page of 100) under the launch load.
    pub list_tasks: Latencies,
    /// The services phase, when run.
    pub services: Option<ServicesFigures>,
    /// The lost hosts phase, when run.
    pub lost_hosts: Option<LostHostsFigures>,
    /// The server's resident memory at the end, bytes.
    pub server_rss_bytes: u64,
    /// The server's peak resident memory, bytes.
    pub server_peak_rss_bytes: u64,
    /// This process's (the hollow agents') resident memory at the end, bytes.
    pub agents_rss_bytes: u64,
    /// The store's size on disk at the end, bytes (etcd: its database size).
    pub store_bytes: u64,
    /// CPU time the server used during the launch phase, seconds.
    pub server_cpu_seconds: f64,
    /// CPU time this process (the hollow agents and the API clients) used during the launch
    /// phase, seconds.
    pub agents_cpu_seconds: f64,
}

/// Milliseconds of CPU per 1,000 tasks placed.
pub fn cpu_ms_per_1000(cpu_seconds: f64, tasks: u64) -> f64 {
    if tasks == 0 {
        0.0
    } else {
        cpu_seconds * 1_000_000.0 / tasks as f64
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn lat(l: &Latencies) -> String {
    format!(
        "p50 {:.1} ms  p99 {:.1} ms  ({} calls)",
        l.p50_ms, l.p99_ms, l.calls
    )
}

/// The human table.
pub fn table(r: &Report) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("store".into(), r.store.clone()),
        (
            "instances / tasks".into(),
            format!("{} / {}", r.instances, r.tasks),
        ),
        (
            "simulated start".into(),
            format!("{} ms, failure rate {}", r.start_latency_ms, r.failure_rate),
        ),
        (
            "instances registered+connected".into(),
            format!("{:.1} s", r.register_seconds),
        ),
        (
            "placed".into(),
            format!(
                "{} in {:.1} s: {:.0}/s ({} not placed)",
                r.placed, r.place_seconds, r.placements_per_second, r.placement_failures
            ),
        ),
        (
            "RUNNING end to end".into(),
            format!(
                "{} in {:.1} s: {:.0}/s",
                r.running, r.running_seconds, r.running_per_second
            ),
        ),
        (
            "launch CPU, server / agents".into(),
            format!(
                "{:.1} s / {:.1} s: {:.0} / {:.0} ms per 1,000 tasks",
                r.server_cpu_seconds,
                r.agents_cpu_seconds,
                cpu_ms_per_1000(r.server_cpu_seconds, r.placed),
                cpu_ms_per_1000(r.agents_cpu_seconds, r.placed)
            ),
        ),
        ("RunTask".into(), lat(&r.run_task)),
        ("DescribeTasks (100)".into(), lat(&r.describe_tasks)),
        ("ListTasks (100)".into(), lat(&r.list_tasks)),
    ];
    if let Some(s) = &r.services {
        rows.push((
            format!(
                "{} service(s) x {} tasks: steady",
                s.services, s.tasks_per_service
            ),
            format!("{:.1} s", s.steady_seconds),
        ));
        rows.push((
            "  rolled to a new revision".into(),
            format!("{:.1} s", s.rollout_seconds),
        ));
    }
    if let Some(l) = &r.lost_hosts {
        rows.push((
            format!("{} lost hosts ({} service tasks)", l.hosts, l.tasks_lost),
            format!(
                "noticed {:.1} s, replaced {:.1} s",
                l.notice_seconds, l.replace_seconds
            ),
        ));
    }
    rows.push((
        "server RSS (peak)".into(),
        format!(
            "{} ({})",
            mib(r.server_rss_bytes),
            mib(r.server_peak_rss_bytes)
        ),
    ));
    rows.push(("hollow agents RSS".into(), mib(r.agents_rss_bytes)));
    rows.push(("store size".into(), mib(r.store_bytes)));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn calls_are_tens_then_the_rest() {
        assert_eq!(calls(0), Vec::<u64>::new());
        assert_eq!(calls(7), vec![7]);
        assert_eq!(calls(30), vec![10, 10, 10]);
        assert_eq!(calls(23), vec![10, 10, 3]);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let l = Latencies::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((l.calls, l.p50_ms, l.p99_ms), (5, 3.0, 5.0));
        assert_eq!(Latencies::of(&[]), Latencies::default());
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latencies::of(&hundred);
        assert_eq!((l.p50_ms, l.p99_ms), (50.0, 99.0));
    }

    #[test]
    fn the_table_names_every_figure() {
        let r = Report {
            store: "embedded".into(),
            services: Some(ServicesFigures::default()),
            lost_hosts: Some(LostHostsFigures::default()),
            ..Report::default()
        };
        let t = table(&r);
        for needed in [
            "placed",
            "RUNNING end to end",
            "RunTask",
            "DescribeTasks",
            "ListTasks",
            "steady",
            "new revision",
            "lost hosts",
            "server RSS",
            "store size",
        ] {
            assert!(t.contains(needed), "{needed} missing:\n{t}");
        }
    }

    proptest! {
        #[test]
        fn calls_launch_exactly_the_tasks(tasks in 0u64..100_000) {
            let c = calls(tasks);
            prop_assert_eq!(c.iter().sum::<u64>(), tasks);
            prop_assert!(c.iter().all(|n| (1..=RUN_TASK_MAX_COUNT).contains(n)));
        }

        #[test]
        fn p50_is_at_most_p99(samples in proptest::collection::vec(0.0f64..1e6, 1..200)) {
            let l = Latencies::of(&samples);
            prop_assert!(l.p50_ms <= l.p99_ms);
            prop_assert!(samples.contains(&l.p50_ms) && samples.contains(&l.p99_ms));
        }
    }
}
