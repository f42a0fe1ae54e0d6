//! Property tests: thousands of random fleets and requests, each placement
//! replayed against an independent oracle.
//!
//! Checked: no instance is over-committed on CPU, memory, TCP or UDP ports;
//! every constraint (memberOf, static and dynamic, and distinctInstance)
//! holds at the moment each task is placed; placement only gives up when no
//! instance can take a task, and then reports exactly the instances that
//! cannot; binpack always takes the instance with the least remaining of its
//! resource; spread always takes a least-loaded value and balances to within
//! one where the fleet allows; the same seed gives the same placements; the
//! scan and index selectors agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use flotilla_scheduler::*;
use proptest::prelude::*;

const AZS: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];
const TYPES: &[&str] = &["t2.small", "t2.medium", "m5.large", "c5.xlarge"];
const GROUPS: &[&str] = &["g1", "g2", "other"];
const EXPRESSIONS: &[&str] = &[
    "attribute:ecs.instance-type =~ t2.*",
    "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
    "not(task:group == g1)",
    "runningTasksCount < 3",
    "attribute:ecs.instance-type != m5.large and attribute:ecs.availability-zone exists",
    "task:group == other or attribute:ecs.instance-type == c5.*",
];

fn arb_instance(n: usize) -> impl Strategy<Value = ContainerInstance> {
    (
        (0u32..=8, 0u32..=16),
        (0usize..=AZS.len(), 0usize..TYPES.len()),
        (0u8..10, 0u8..10),
        prop::collection::vec(0usize..GROUPS.len(), 0..3),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            move |((cpu, mem), (az, ty), (status, agent), tasks, (p80, p8080, p53))| {
                let mut i = ContainerInstance::new(format!("i{n}"), cpu * 256, mem * 256)
                    .with_attribute("ecs.instance-type", TYPES[ty]);
                if az < AZS.len() {
                    i = i.with_attribute("ecs.availability-zone", AZS[az]);
                }
                if status == 0 {
                    i.status = InstanceStatus::Draining;
                }
                i.agent_connected = agent != 0;
                for g in tasks {
                    i.tasks.push(RunningTask {
                        arn: None,
                        group: GROUPS[g].into(),
                        family: "f".into(),
                        revision: 1,
                        started_by: None,
                    });
                }
                if p80 {
                    i.remaining.ports.insert(80);
                }
                if p8080 {
                    i.remaining.ports.insert(8080);
                }
                if p53 {
                    i.remaining.ports_udp.insert(53);
                }
                i
            },
        )
}

fn arb_fleet(max: usize) -> impl Strategy<Value = Snapshot> {
    (1..=max)
        .prop_flat_map(|n| (0..n).map(arb_instance).collect::<Vec<_>>())
        .prop_map(Snapshot::new)
}

fn arb_strategy() -> impl Strategy<Value = PlacementStrategy> {
    prop_oneof![
        Just(PlacementStrategy::Random),
        Just(PlacementStrategy::Binpack(BinpackField::Cpu)),
        Just(PlacementStrategy::Binpack(BinpackField::Memory)),
        Just(PlacementStrategy::Spread(SpreadField::InstanceId)),
        Just(PlacementStrategy::spread_az()),
        Just(PlacementStrategy::Spread(SpreadField::Attribute(
            "ecs.instance-type".into()
        ))),
    ]
}

fn arb_request() -> impl Strategy<Value = PlacementRequest> {
    (
        (1u32..25, 0u32..=4, 0u32..=8),
        (0u8..4, any::<bool>()),
        (0usize..2, any::<bool>(), any::<bool>()),
        prop::collection::vec(arb_strategy(), 0..4),
        (
            any::<bool>(),
            prop::collection::vec(0usize..EXPRESSIONS.len(), 0..3),
        ),
        any::<u64>(),
    )
        .prop_map(
            |(
                (count, cpu, mem),
                (ports, udp),
                (group, service, dynamic_port),
                strategies,
                (distinct, exprs),
                seed,
            )| {
                let mut task = TaskSpec::simple(cpu * 256, mem * 128);
                let pm = &mut task.containers[0].port_mappings;
                match ports {
                    1 => pm.push(PortMapping::tcp(80, 80)),
                    2 => pm.push(PortMapping::tcp(80, 8080)),
                    _ => {}
                }
                if udp {
                    pm.push(PortMapping::udp(53, 53));
                }
                if dynamic_port {
                    pm.push(PortMapping::dynamic(9000));
                }
                let mut r = PlacementRequest::new("f", task, count)
                    .with_group(GROUPS[group])
                    .with_strategies(strategies)
                    .with_seed(seed);
                if service {
                    r.kind = PlacementKind::Service;
                }
                if distinct {
                    r.constraints.push(PlacementConstraint::DistinctInstance);
                }
                for e in exprs {
                    r.task_definition_constraints
                        .push(PlacementConstraint::member_of(EXPRESSIONS[e]).unwrap());
                }
                r
            },
        )
}

/// The oracle's idea of whether `i` can take one task of `req` now.
fn oracle_feasible(i: &ContainerInstance, req: &PlacementRequest, d: &Demand) -> bool {
    let rem = &i.remaining;
    i.status == InstanceStatus::Active
        && i.agent_connected
        && rem.cpu >= d.cpu
        && rem.memory >= d.memory
        && d.ports.iter().all(|p| !rem.ports.contains(*p))
        && d.ports_udp.iter().all(|p| !rem.ports_udp.contains(*p))
        && req
            .task_definition_constraints
            .iter()
            .chain(&req.constraints)
            .all(|c| match c {
                PlacementConstraint::DistinctInstance => {
                    !i.tasks.iter().any(|t| *t.group == *req.group)
                }
                PlacementConstraint::MemberOf(q) => q.matches(i),
            })
}

fn apply(i: &mut ContainerInstance, req: &PlacementRequest, d: &Demand) {
    i.remaining.cpu -= d.cpu;
    i.remaining.memory -= d.memory;
    for p in &d.ports {
        assert!(i.remaining.ports.insert(*p), "port {p} handed out twice");
    }
    for p in &d.ports_udp {
        assert!(
            i.remaining.ports_udp.insert(*p),
            "udp port {p} handed out twice"
        );
    }
    i.tasks.push(RunningTask {
        arn: None,
        group: req.group.as_str().into(),
        family: req.family.as_str().into(),
        revision: req.revision,
        started_by: None,
    });
}

/// Replays `out` on `before` with the oracle, checking each step with
/// `step(state, chosen)`; returns the final state.
fn replay(
    before: &Snapshot,
    req: &PlacementRequest,
    out: &PlacementOutcome,
    mut step: impl FnMut(&[ContainerInstance], usize),
) -> Vec<ContainerInstance> {
    let d = req.task.demand().unwrap();
    let mut state = before.instances.clone();
    for p in &out.placements {
        let i = p.instance_index;
        assert!(
            oracle_feasible(&state[i], req, &d),
            "placed on infeasible {}",
            state[i].id
        );
        step(&state, i);
        apply(&mut state[i], req, &d);
    }
    state
}

fn value_of(i: &ContainerInstance, field: &SpreadField) -> Option<String> {
    match field {
        SpreadField::InstanceId => Some(i.id.clone()),
        SpreadField::Attribute(n) => i.attribute(n).flatten().map(String::from),
    }
}

fn group_tasks(i: &ContainerInstance, group: &str) -> usize {
    i.tasks.iter().filter(|t| &*t.group == group).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Over-commit, constraints, completeness, failure reporting, scan/index
    /// agreement and determinism, all in one replay.
    #[test]
    fn placements_respect_resources_constraints_and_are_complete(
        fleet in arb_fleet(24),
        req in arb_request(),
    ) {
        let out = Cluster::new(fleet.clone()).place_with(&req, SelectMode::Index).unwrap();
        let scan = Cluster::new(fleet.clone()).place_with(&req, SelectMode::Scan).unwrap();
        prop_assert_eq!(&out, &scan);
        let again = Cluster::new(fleet.clone()).place(&req).unwrap();
        prop_assert_eq!(&out, &again);

        prop_assert_eq!(out.placements.len() as u32 + out.unplaced, req.count);
        let d = req.task.demand().unwrap();
        let state = replay(&fleet, &req, &out, |_, _| {});

        // The cluster's own snapshot equals the oracle's.
        let mut c = Cluster::new(fleet.clone());
        c.place(&req).unwrap();
        prop_assert_eq!(c.instances(), &state[..]);

        // No over-commit against the original remaining resources.
        for (b, a) in fleet.instances.iter().zip(&state) {
            let n = (a.tasks.len() - b.tasks.len()) as u32;
            prop_assert!(n * d.cpu <= b.remaining.cpu);
            prop_assert!(n * d.memory <= b.remaining.memory);
            if !d.ports.is_empty() || !d.ports_udp.is_empty() {
                prop_assert!(n <= 1);
            }
        }

        if out.unplaced > 0 {
            let infeasible: Vec<usize> = (0..state.len())
                .filter(|&i| !oracle_feasible(&state[i], &req, &d))
                .collect();
            prop_assert_eq!(infeasible.len(), state.len(), "gave up while an instance fits");
            let reported: Vec<usize> = out.rejections.iter().map(|r| r.instance_index).collect();
            prop_assert_eq!(reported, infeasible);
            prop_assert!(out.rejections.iter().all(|r| !r.reasons.is_empty()));
        } else {
            prop_assert!(out.rejections.is_empty());
        }
    }

    /// binpack alone: each task goes to a feasible instance with the least
    /// remaining amount of the field.
    #[test]
    fn binpack_takes_the_least_remaining(
        fleet in arb_fleet(24),
        mut req in arb_request(),
        cpu in any::<bool>(),
    ) {
        let field = if cpu { BinpackField::Cpu } else { BinpackField::Memory };
        req.strategies = vec![PlacementStrategy::Binpack(field)];
        let out = Cluster::new(fleet.clone()).place(&req).unwrap();
        let d = req.task.demand().unwrap();
        let amount = |i: &ContainerInstance| if cpu { i.remaining.cpu } else { i.remaining.memory };
        replay(&fleet, &req, &out, |state, chosen| {
            let least = state
                .iter()
                .filter(|i| oracle_feasible(i, &req, &d))
                .map(amount)
                .min()
                .unwrap();
            assert_eq!(amount(&state[chosen]), least);
        });
    }

    /// spread first in the chain: each task goes to a value with the fewest
    /// tasks of the group among the values that have a feasible instance.
    #[test]
    fn spread_takes_a_least_loaded_value(
        fleet in arb_fleet(24),
        mut req in arb_request(),
        by_zone in any::<bool>(),
        then_binpack in any::<bool>(),
    ) {
        let field = if by_zone {
            SpreadField::Attribute("ecs.availability-zone".into())
        } else {
            SpreadField::InstanceId
        };
        req.strategies = vec![PlacementStrategy::Spread(field.clone())];
        if then_binpack {
            req.strategies.push(PlacementStrategy::Binpack(BinpackField::Memory));
        }
        let out = Cluster::new(fleet.clone()).place(&req).unwrap();
        let d = req.task.demand().unwrap();
        replay(&fleet, &req, &out, |state, chosen| {
            let mut load: BTreeMap<Option<String>, usize> = BTreeMap::new();
            for i in state.iter().filter(|i| i.status == InstanceStatus::Active) {
                *load.entry(value_of(i, &field)).or_default() += group_tasks(i, &req.group);
            }
            let least = state
                .iter()
                .filter(|i| oracle_feasible(i, &req, &d))
                .map(|i| load[&value_of(i, &field)])
                .min()
                .unwrap();
            assert_eq!(load[&value_of(&state[chosen], &field)], least);
        });
    }

    /// With room everywhere and no prior tasks of the group, spread balances
    /// every value to within one task.
    #[test]
    fn spread_balances_within_one_when_the_fleet_allows(
        n in 1usize..30,
        azs in 1usize..=AZS.len(),
        count in 1u32..200,
        by_zone in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let fleet = Snapshot::new(
            (0..n)
                .map(|i| {
                    ContainerInstance::new(format!("i{i}"), 1 << 20, 1 << 20)
                        .with_attribute("ecs.availability-zone", AZS[i % azs])
                })
                .collect(),
        );
        let field = if by_zone {
            SpreadField::Attribute("ecs.availability-zone".into())
        } else {
            SpreadField::InstanceId
        };
        let req = PlacementRequest::new("f", TaskSpec::simple(1, 1), count)
            .with_strategies(vec![PlacementStrategy::Spread(field.clone()), PlacementStrategy::Random])
            .with_seed(seed);
        let mut c = Cluster::new(fleet);
        let out = c.place(&req).unwrap();
        prop_assert!(out.is_complete());
        let mut load: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for i in c.instances() {
            *load.entry(value_of(i, &field)).or_default() += i.tasks.len();
        }
        let max = load.values().max().copied().unwrap_or(0);
        let min = load.values().min().copied().unwrap_or(0);
        prop_assert!(max - min <= 1, "loads {:?}", load);
    }

    /// Two batches: the second sees the first's reservations.
    #[test]
    fn consecutive_batches_never_overcommit(
        fleet in arb_fleet(16),
        a in arb_request(),
        b in arb_request(),
    ) {
        let mut c = Cluster::new(fleet.clone());
        let out_a = c.place(&a).unwrap();
        let mid = c.snapshot();
        let out_b = c.place(&b).unwrap();
        let state = replay(&fleet, &a, &out_a, |_, _| {});
        prop_assert_eq!(&state[..], &mid.instances[..]);
        let state = replay(&mid, &b, &out_b, |_, _| {});
        prop_assert_eq!(&state[..], c.instances());
    }
}
