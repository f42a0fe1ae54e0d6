//! Tasks on an instance whose agent is lost: they count as gone (see `steps::visible`) and are
//! replaced; the scheduler remembers which ones it replaced ([`ServiceSpec::replaced`]), and when
//! the agent returns those are stopped first, at once: surplus by construction, so the
//! replacements stay. A lost task that was not replaced is counted again on its return.

use super::{Phase, ServiceSpec, TaskObs};
use std::collections::BTreeSet;

/// The remembered replaced tasks that are still worth remembering: seen, and not stopped.
pub(super) fn remembered(spec: &ServiceSpec, tasks: &[TaskObs]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| t.phase != Phase::Stopped && spec.replaced.contains(&t.id))
        .map(|t| t.id.clone())
        .collect()
}

/// The replaced tasks seen again (their agent is back) that have not been told to stop.
pub(super) fn returned<'a>(spec: &ServiceSpec, tasks: &'a [TaskObs]) -> Vec<&'a TaskObs> {
    tasks
        .iter()
        .filter(|t| !t.lost && t.live() && spec.replaced.contains(&t.id))
        .collect()
}

/// The primary's lost tasks not replaced yet that would count towards the desired count, in
/// ARN order.
pub(super) fn unreplaced<'a>(
    spec: &ServiceSpec,
    primary: &str,
    tasks: &'a [TaskObs],
) -> Vec<&'a TaskObs> {
    let mut out: Vec<&TaskObs> = tasks
        .iter()
        .filter(|t| t.lost && t.live() && !spec.replaced.contains(&t.id))
        .filter(|t| t.deployment == primary && !t.draining && !t.unhealthy)
        .collect();
    out.sort_by(|a, b| a.arn.cmp(&b.arn));
    out
}

/// Of `n` starts made while the desired count lacks `lacking` tasks, the lost tasks they
/// replace: the starts first make up what the lost tasks do not account for.
pub(super) fn replacing(lost: &[&TaskObs], lacking: u32, n: u32) -> Vec<String> {
    let other = (lacking as usize).saturating_sub(lost.len());
    let take = (n as usize).saturating_sub(other);
    lost.iter().take(take).map(|t| t.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{primary_a, spec, task};
    use super::super::{compute_service_actions, max_tasks, Actions};
    use super::*;
    use flotilla_model::shapes::DeploymentRolloutState;
    use proptest::prelude::*;

    /// One case: the service's desired count, its tasks (`t0`.. running, those named lost or
    /// stopped as told), the tasks remembered as replaced; what the scheduler should do.
    struct Case {
        name: &'static str,
        desired: u32,
        tasks: usize,
        lost: &'static [usize],
        stopped: &'static [usize],
        replaced: &'static [&'static str],
        stop: &'static [&'static str],
        start: u32,
        replacing: &'static [&'static str],
        remembered: &'static [&'static str],
    }

    fn run(c: &Case) -> Actions {
        let mut s = spec(c.desired, 100, 100);
        s.replaced = c.replaced.iter().map(|t| t.to_string()).collect();
        let tasks: Vec<TaskObs> = (0..c.tasks)
            .map(|i| {
                let phase = if c.stopped.contains(&i) {
                    Phase::Stopped
                } else {
                    Phase::Running
                };
                let mut t = task(i, "a", phase);
                t.lost = c.lost.contains(&i);
                t
            })
            .collect();
        let d = [primary_a(DeploymentRolloutState::Completed)];
        compute_service_actions(&s, &d, &tasks, 1.0)
    }

    #[test]
    fn replaced_tasks_are_stopped_on_return_and_forgotten_once_stopped() {
        let cases = [
            Case {
                name: "a lost task is replaced, and remembered as replaced once placed",
                desired: 4,
                tasks: 4,
                lost: &[0],
                stopped: &[],
                replaced: &[],
                stop: &[],
                start: 1,
                replacing: &["t0"],
                remembered: &[],
            },
            Case {
                name: "a scale-up's starts come first: the last placement replaces the lost task",
                desired: 5,
                tasks: 4,
                lost: &[0],
                stopped: &[],
                replaced: &[],
                stop: &[],
                start: 2,
                replacing: &["t0"],
                remembered: &[],
            },
            Case {
                name: "a replaced task still lost is remembered, nothing started again",
                desired: 4,
                tasks: 5,
                lost: &[0],
                stopped: &[],
                replaced: &["t0"],
                stop: &[],
                start: 0,
                replacing: &[],
                remembered: &["t0"],
            },
            Case {
                name: "a replaced task that returns is stopped, not a replacement (min 100%)",
                desired: 4,
                tasks: 5,
                lost: &[],
                stopped: &[],
                replaced: &["t0"],
                stop: &["arn:t0"],
                start: 0,
                replacing: &[],
                remembered: &["t0"],
            },
            Case {
                name: "returned replaced tasks go first, then the ordinary surplus",
                desired: 3,
                tasks: 6,
                lost: &[],
                stopped: &[],
                replaced: &["t0", "t3"],
                stop: &["arn:t0", "arn:t3", "arn:t1"],
                start: 0,
                replacing: &[],
                remembered: &["t0", "t3"],
            },
            Case {
                name: "a lost task never replaced is kept when it returns",
                desired: 4,
                tasks: 4,
                lost: &[],
                stopped: &[],
                replaced: &[],
                stop: &[],
                start: 0,
                replacing: &[],
                remembered: &[],
            },
            Case {
                name: "a replaced task that stopped, or is gone, is forgotten",
                desired: 4,
                tasks: 5,
                lost: &[],
                stopped: &[0],
                replaced: &["t0", "t9"],
                stop: &[],
                start: 0,
                replacing: &[],
                remembered: &[],
            },
        ];
        for c in &cases {
            let a = run(c);
            let stop: Vec<&str> = a.stop.iter().map(|(arn, _)| arn.as_str()).collect();
            assert_eq!(stop, c.stop, "{}", c.name);
            assert_eq!(a.start.map_or(0, |(_, n)| n), c.start, "{}", c.name);
            assert_eq!(a.replacing, c.replacing, "{}", c.name);
            let remembered: Vec<&str> = a.replaced.iter().map(String::as_str).collect();
            assert_eq!(remembered, c.remembered, "{}", c.name);
        }
    }

    #[test]
    fn only_placed_starts_replace_lost_tasks() {
        let c = Case {
            name: "scale-up",
            desired: 5,
            tasks: 4,
            lost: &[0, 3],
            stopped: &[],
            replaced: &[],
            stop: &[],
            start: 3,
            replacing: &["t0", "t3"],
            remembered: &[],
        };
        let a = run(&c);
        let after = |placed| {
            a.replaced_after(placed)
                .into_iter()
                .collect::<Vec<String>>()
        };
        assert_eq!(after(0), Vec::<String>::new());
        assert_eq!(after(1), Vec::<String>::new());
        assert_eq!(after(2), vec!["t0"]);
        assert_eq!(after(3), vec!["t0", "t3"]);
    }

    /// A world of three instances (`i0` is cut off for `cut` rounds): the scheduler's starts are
    /// placed on `i1`/`i2` (some fail, as `steps` says), pending tasks run, stopping ones stop.
    /// On the return, exactly the replaced tasks are stopped and no more than maximumPercent
    /// stay; then the service settles at its desired count.
    fn lose_and_return(
        desired: u32,
        max: u32,
        cut: usize,
        steps: Vec<u8>,
    ) -> Result<(), TestCaseError> {
        let mut s = spec(desired, 100, max);
        let max_total = max_tasks(desired, max).max(desired) as usize;
        let d = vec![primary_a(DeploymentRolloutState::Completed)];
        let mut tasks: Vec<TaskObs> = (0..desired as usize)
            .map(|i| {
                let mut t = task(i, "a", Phase::Running);
                t.lost = t.instance == "i0";
                t
            })
            .collect();
        let mut next = tasks.len();
        let mut round = |s: &mut ServiceSpec, tasks: &mut Vec<TaskObs>, r: u8| -> Actions {
            let a = compute_service_actions(s, &d, tasks, 1.0);
            for t in tasks.iter_mut() {
                if a.stop.iter().any(|(arn, _)| arn == &t.arn) {
                    t.phase = Phase::Stopping;
                    t.healthy = false;
                } else if !t.lost {
                    match t.phase {
                        Phase::Pending => {
                            t.phase = Phase::Running;
                            t.healthy = true;
                        }
                        Phase::Stopping => t.phase = Phase::Stopped,
                        _ => {}
                    }
                }
            }
            let asked = a.start.as_ref().map_or(0, |(_, n)| *n);
            let placed = asked.saturating_sub(u32::from(r.is_multiple_of(3)));
            for _ in 0..placed {
                let mut t = task(next, "a", Phase::Pending);
                t.instance = format!("i{}", 1 + next % 2);
                tasks.push(t);
                next += 1;
            }
            s.replaced = a.replaced_after(placed);
            a
        };
        for r in steps.iter().take(cut) {
            round(&mut s, &mut tasks, *r);
        }
        for t in tasks.iter_mut() {
            t.lost = false;
        }
        let replaced = s.replaced.clone();
        let before: Vec<TaskObs> = tasks.clone();
        let a = round(&mut s, &mut tasks, 1);
        let stopped: BTreeSet<String> = before
            .iter()
            .filter(|t| a.stop.iter().any(|(arn, _)| arn == &t.arn))
            .map(|t| t.id.clone())
            .collect();
        let returned: BTreeSet<String> = before
            .iter()
            .filter(|t| t.live() && replaced.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        prop_assert_eq!(stopped, returned);
        let live = tasks
            .iter()
            .filter(|t| matches!(t.phase, Phase::Pending | Phase::Running))
            .count();
        prop_assert!(live <= max_total, "{live} > {max_total}");
        for _ in 0..10 {
            if round(&mut s, &mut tasks, 1).steady {
                break;
            }
        }
        let a = round(&mut s, &mut tasks, 1);
        prop_assert!(a.steady, "{a:?}");
        prop_assert!(s.replaced.is_empty(), "{:?}", s.replaced);
        Ok(())
    }

    proptest! {
        #[test]
        fn a_returning_instance_loses_its_replaced_tasks_within_the_bounds(
            desired in 1u32..10,
            max in prop::sample::select(vec![100u32, 150, 200]),
            cut in 1usize..6,
            steps in prop::collection::vec(any::<u8>(), 6),
        ) {
            lose_and_return(desired, max, cut, steps)?;
        }
    }
}
