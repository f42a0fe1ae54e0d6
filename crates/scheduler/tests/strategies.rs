//! Strategy chains, constraints, reservations and failures as ECS documents
//! them, each on a small fleet where the right answer is known.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flotilla_scheduler::*;

fn inst(id: &str, az: &str, cpu: u32, mem: u32) -> ContainerInstance {
    ContainerInstance::new(id, cpu, mem).with_attribute("ecs.availability-zone", az)
}

fn ids(out: &PlacementOutcome) -> Vec<&str> {
    out.placements
        .iter()
        .map(|p| p.container_instance_id.as_str())
        .collect()
}

fn binpack_mem() -> PlacementStrategy {
    PlacementStrategy::Binpack(BinpackField::Memory)
}

fn spread_instance() -> PlacementStrategy {
    PlacementStrategy::Spread(SpreadField::InstanceId)
}

fn both_modes(snapshot: &Snapshot, req: &PlacementRequest) -> PlacementOutcome {
    let a = Cluster::new(snapshot.clone())
        .place_with(req, SelectMode::Scan)
        .unwrap();
    let b = Cluster::new(snapshot.clone())
        .place_with(req, SelectMode::Index)
        .unwrap();
    assert_eq!(a, b, "scan and index disagree");
    a
}

#[test]
fn spread_by_zone_then_binpack_on_memory() {
    // ECS: "spread across AZs, then binpack on memory within each AZ".
    let fleet = Snapshot::new(vec![
        inst("a1", "us-east-1a", 4096, 4096),
        inst("a2", "us-east-1a", 4096, 2048),
        inst("b1", "us-east-1b", 4096, 8192),
        inst("b2", "us-east-1b", 4096, 1024),
    ]);
    let req = PlacementRequest::new("web", TaskSpec::simple(10, 512), 6)
        .with_strategies(vec![PlacementStrategy::spread_az(), binpack_mem()]);
    let out = both_modes(&fleet, &req);
    // Zones alternate; within a zone the fullest instance that fits wins:
    // b2 (1024) < a2 (2048); b2 then holds 512 < a2's 1536; b2 is then full.
    // Then b2 is full; zones tie at 2-2 and a2 (1024 left) is the fullest.
    assert_eq!(ids(&out), vec!["b2", "a2", "b2", "a2", "a2", "b1"]);
}

#[test]
fn binpack_fills_the_fullest_instance_first() {
    let fleet = Snapshot::new(vec![
        inst("big", "z", 4096, 8192),
        inst("small", "z", 4096, 1536),
        inst("mid", "z", 4096, 3072),
    ]);
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 512), 6)
        .with_strategies(vec![binpack_mem()]);
    let out = both_modes(&fleet, &req);
    assert_eq!(
        ids(&out),
        vec!["small", "small", "small", "mid", "mid", "mid"]
    );
    let req = PlacementRequest::new("t", TaskSpec::simple(1024, 1), 3)
        .with_strategies(vec![PlacementStrategy::Binpack(BinpackField::Cpu)]);
    let fleet = Snapshot::new(vec![inst("x", "z", 4096, 100), inst("y", "z", 2048, 100)]);
    assert_eq!(ids(&both_modes(&fleet, &req)), vec!["y", "y", "x"]);
}

#[test]
fn spread_instance_then_binpack_puts_one_per_instance_before_doubling_up() {
    let fleet = Snapshot::new(vec![
        inst("a", "z", 4096, 4096),
        inst("b", "z", 4096, 1024),
        inst("c", "z", 4096, 2048),
    ]);
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 256), 5)
        .with_strategies(vec![spread_instance(), binpack_mem()]);
    let out = both_modes(&fleet, &req);
    assert_eq!(ids(&out), vec!["b", "c", "a", "b", "c"]);
}

#[test]
fn binpack_then_spread_breaks_memory_ties_by_zone() {
    let fleet = Snapshot::new(vec![
        inst("a1", "us-east-1a", 4096, 2048),
        inst("a2", "us-east-1a", 4096, 3072),
        inst("b1", "us-east-1b", 4096, 3072),
        inst("b2", "us-east-1b", 4096, 4096),
    ]);
    let mut c = Cluster::new(fleet);
    // One task of the group lands on a1 (the fullest).
    let seed = PlacementRequest::new("t", TaskSpec::simple(1, 1024), 1)
        .with_strategies(vec![binpack_mem()]);
    assert_eq!(ids(&c.place(&seed).unwrap()), vec!["a1"]);
    // binpack takes a1 again (1024 left, least); then a2 and b1 tie on 3072
    // and the zone spread prefers zone b, which has none of the group.
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 1024), 2)
        .with_strategies(vec![binpack_mem(), PlacementStrategy::spread_az()]);
    let out = c.place(&req).unwrap();
    assert_eq!(ids(&out), vec!["a1", "b1"]);
}

#[test]
fn service_default_spreads_across_zones_then_instances() {
    let fleet = Snapshot::new(vec![
        inst("a1", "us-east-1a", 4096, 4096),
        inst("a2", "us-east-1a", 4096, 4096),
        inst("b1", "us-east-1b", 4096, 4096),
        inst("b2", "us-east-1b", 4096, 4096),
        inst("c1", "us-east-1c", 4096, 4096),
        inst("c2", "us-east-1c", 4096, 4096),
    ]);
    let req = PlacementRequest::new("web", TaskSpec::simple(1, 1), 3).for_service("web");
    assert_eq!(
        req.effective_strategies(),
        default_strategy(PlacementKind::Service)
    );
    let out = both_modes(&fleet, &req);
    let mut zones: Vec<char> = ids(&out)
        .iter()
        .map(|i| i.chars().next().unwrap())
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, vec!['a', 'b', 'c']);
    let req6 = PlacementRequest::new("web", TaskSpec::simple(1, 1), 6).for_service("web");
    let mut all = ids(&both_modes(&fleet, &req6))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    all.sort();
    assert_eq!(all, vec!["a1", "a2", "b1", "b2", "c1", "c2"]);
}

#[test]
fn spread_counts_existing_tasks_of_the_group_only() {
    let mut a1 = inst("a1", "us-east-1a", 4096, 4096);
    for g in [
        "service:web",
        "service:web",
        "service:other",
        "service:other",
    ] {
        a1.tasks.push(RunningTask {
            arn: Some("t".into()),
            group: g.into(),
            family: "web".into(),
            revision: 1,
            started_by: None,
        });
    }
    let mut b1 = inst("b1", "us-east-1b", 4096, 4096);
    b1.tasks.push(RunningTask {
        arn: None,
        group: "service:other".into(),
        family: "other".into(),
        revision: 1,
        started_by: None,
    });
    let fleet = Snapshot::new(vec![a1, b1, inst("c1", "us-east-1c", 4096, 4096)]);
    let req = PlacementRequest::new("web", TaskSpec::simple(1, 1), 4).for_service("web");
    let out = both_modes(&fleet, &req);
    let zones: Vec<&str> = ids(&out);
    // Zone a already has 2 web tasks: b and c get two each first.
    let mut first4 = zones.clone();
    first4.sort_unstable();
    assert_eq!(first4, vec!["b1", "b1", "c1", "c1"]);
}

#[test]
fn random_is_seeded_and_uses_every_candidate() {
    let fleet = Snapshot::new(
        (0..5)
            .map(|i| inst(&format!("i{i}"), "z", 4096, 100_000))
            .collect(),
    );
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 200).with_seed(7);
    assert_eq!(req.effective_strategies(), vec![PlacementStrategy::Random]);
    let a = both_modes(&fleet, &req);
    let b = both_modes(&fleet, &req);
    assert_eq!(a, b);
    for i in 0..5 {
        let n = a
            .placements
            .iter()
            .filter(|p| p.container_instance_id == format!("i{i}"))
            .count();
        assert!((20..=60).contains(&n), "instance i{i} got {n} of 200");
    }
    let c = both_modes(&fleet, &req.clone().with_seed(8));
    assert_ne!(a, c);
}

#[test]
fn strategies_after_random_are_ignored() {
    let fleet = Snapshot::new(vec![inst("a", "z", 4096, 1024), inst("b", "z", 4096, 4096)]);
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 50)
        .with_strategies(vec![PlacementStrategy::Random, binpack_mem()])
        .with_seed(3);
    let out = both_modes(&fleet, &req);
    assert!(ids(&out).contains(&"a") && ids(&out).contains(&"b"));
}

#[test]
fn distinct_instance_places_one_task_of_the_group_per_instance() {
    let fleet = Snapshot::new(vec![
        inst("a", "z", 4096, 4096),
        inst("b", "z", 4096, 4096),
        inst("c", "z", 4096, 4096),
    ]);
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 5)
        .with_constraint(PlacementConstraint::DistinctInstance);
    let out = both_modes(&fleet, &req);
    let mut placed = ids(&out);
    placed.sort_unstable();
    assert_eq!(placed, vec!["a", "b", "c"]);
    assert_eq!(out.unplaced, 2);
    assert_eq!(out.rejections.len(), 3);
    assert!(out
        .rejections
        .iter()
        .all(|r| r.reasons == vec![Rejection::DistinctInstance]));
    assert!(out.ecs_failures().iter().all(|f| f.reason == "ATTRIBUTE"));
}

#[test]
fn member_of_anti_affinity_sees_tasks_placed_in_the_same_request() {
    let fleet = Snapshot::new(vec![inst("a", "z", 4096, 4096), inst("b", "z", 4096, 4096)]);
    let req = PlacementRequest::new("db", TaskSpec::simple(1, 1), 3)
        .with_group("database")
        .with_constraint(PlacementConstraint::member_of("not(task:group == database)").unwrap());
    let out = both_modes(&fleet, &req);
    assert_eq!(out.placements.len(), 2);
    assert_ne!(ids(&out)[0], ids(&out)[1]);
    assert_eq!(out.rejections[0].reasons, vec![Rejection::MemberOf(0)]);
}

#[test]
fn member_of_restricts_to_matching_instances() {
    let fleet = Snapshot::new(vec![
        inst("a", "us-east-1a", 4096, 4096).with_attribute("ecs.instance-type", "t2.small"),
        inst("b", "us-east-1b", 4096, 4096).with_attribute("ecs.instance-type", "m5.large"),
        inst("c", "us-east-1d", 4096, 4096).with_attribute("ecs.instance-type", "t2.micro"),
    ]);
    let mut req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 10).with_seed(1);
    req.task_definition_constraints =
        vec![PlacementConstraint::member_of("attribute:ecs.instance-type =~ t2.*").unwrap()];
    req.constraints =
        vec![
            PlacementConstraint::member_of("attribute:ecs.availability-zone != us-east-1d")
                .unwrap(),
        ];
    let out = both_modes(&fleet, &req);
    assert!(ids(&out).iter().all(|i| *i == "a"));
    assert_eq!(out.placements.len(), 10);
    let explain = Cluster::new(fleet).explain(&req).unwrap();
    let reasons: Vec<(&str, Vec<Rejection>)> = explain
        .iter()
        .map(|r| (r.instance_id.as_str(), r.reasons.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("b", vec![Rejection::MemberOf(0)]),
            ("c", vec![Rejection::MemberOf(1)])
        ]
    );
}

#[test]
fn failures_name_each_instance_and_skip_draining() {
    let mut draining = inst("drain", "z", 8192, 8192);
    draining.status = InstanceStatus::Draining;
    let mut gone = inst("gone", "z", 8192, 8192);
    gone.agent_connected = false;
    let fleet = Snapshot::new(vec![
        inst("lowmem", "z", 8192, 256),
        inst("lowcpu", "z", 128, 8192),
        draining,
        gone,
    ]);
    let req = PlacementRequest::new("t", TaskSpec::simple(1024, 1024), 1);
    let out = Cluster::new(fleet).place(&req).unwrap();
    assert_eq!(out.unplaced, 1);
    let primaries: Vec<(&str, &str)> = out
        .rejections
        .iter()
        .map(|r| (r.instance_id.as_str(), r.primary().as_ecs_str()))
        .collect();
    assert_eq!(
        primaries,
        vec![
            ("lowmem", "RESOURCE:MEMORY"),
            ("lowcpu", "RESOURCE:CPU"),
            ("drain", "INACTIVE"),
            ("gone", "AGENT"),
        ]
    );
    let failures = out.ecs_failures();
    assert_eq!(failures.len(), 3);
    assert_eq!(
        failures[0].arn,
        "arn:aws:ecs:us-east-1:000000000000:container-instance/default/lowmem"
    );
    assert!(failures.iter().all(|f| !f.arn.ends_with("drain")));
}

#[test]
fn static_ports_are_reserved_and_conflicts_reported() {
    let mut spec = TaskSpec::simple(1, 1);
    spec.containers[0].port_mappings = vec![PortMapping::tcp(80, 8080), PortMapping::udp(53, 53)];
    let mut taken = inst("taken", "z", 4096, 4096);
    taken.remaining.ports_udp.insert(53);
    let fleet = Snapshot::new(vec![
        inst("a", "z", 4096, 4096),
        inst("b", "z", 4096, 4096),
        taken,
    ]);
    let req = PlacementRequest::new("t", spec, 3).with_strategies(vec![binpack_mem()]);
    let (out, after) = place(fleet, &req).unwrap();
    assert_eq!(out.placements.len(), 2);
    assert_eq!(out.placements[0].host_ports, vec![8080]);
    assert_eq!(out.placements[0].host_ports_udp, vec![53]);
    let reasons: Vec<Vec<Rejection>> = out.rejections.iter().map(|r| r.reasons.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            vec![Rejection::Ports, Rejection::PortsUdp],
            vec![Rejection::Ports, Rejection::PortsUdp],
            vec![Rejection::PortsUdp]
        ]
    );
    assert!(after.instances[0].remaining.ports.contains(8080));
    // A reserved port (22 by default) cannot be taken.
    let mut ssh = TaskSpec::simple(1, 1);
    ssh.containers[0].port_mappings = vec![PortMapping::tcp(22, 22)];
    let out = Cluster::new(after)
        .place(&PlacementRequest::new("ssh", ssh, 1))
        .unwrap();
    assert_eq!(out.ecs_failures()[0].reason, "RESOURCE:PORTS");
    // Dynamic ports need nothing.
    let mut dynamic = TaskSpec::simple(1, 1);
    dynamic.containers[0].port_mappings = vec![PortMapping::dynamic(80); 1];
    let fleet = Snapshot::new(vec![inst("a", "z", 4096, 4096)]);
    let out = Cluster::new(fleet)
        .place(&PlacementRequest::new("d", dynamic, 5))
        .unwrap();
    assert_eq!(out.placements.len(), 5);
}

#[test]
fn a_batch_never_overfills_and_the_next_batch_sees_it() {
    let fleet = Snapshot::new(vec![inst("a", "z", 1024, 1000), inst("b", "z", 1024, 600)]);
    let mut c = Cluster::new(fleet);
    let req = PlacementRequest::new("t", TaskSpec::simple(100, 300), 10)
        .with_strategies(vec![binpack_mem()]);
    let first = c.place(&req).unwrap();
    assert_eq!(first.placements.len(), 5); // 3 on a (900), 2 on b (600)
    assert_eq!(first.unplaced, 5);
    assert_eq!(c.instances()[0].remaining.memory, 100);
    assert_eq!(c.instances()[1].remaining.memory, 0);
    assert_eq!(c.instances()[0].running_tasks_count(), 3);
    let second = c
        .place(&PlacementRequest::new("u", TaskSpec::simple(1, 100), 2))
        .unwrap();
    assert_eq!(ids(&second), vec!["a"]);
    assert_eq!(second.unplaced, 1);
    // The snapshot round-trips into a new cluster with the same state.
    let again = Cluster::new(c.snapshot())
        .place(&PlacementRequest::new("u", TaskSpec::simple(1, 1), 1))
        .unwrap();
    assert_eq!(again.unplaced, 1);
}

#[test]
fn limits_and_invalid_requests_are_errors() {
    let fleet = Snapshot::new(vec![inst("a", "z", 1024, 1024)]);
    let mut c = Cluster::new(fleet);
    let six = vec![PlacementStrategy::Random; 6];
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 1).with_strategies(six);
    assert_eq!(c.place(&req), Err(PlacementError::TooManyStrategies(6)));
    let mut req = PlacementRequest::new("t", TaskSpec::simple(1, 1), 1);
    req.task_definition_constraints = vec![PlacementConstraint::DistinctInstance; 5];
    req.constraints = vec![PlacementConstraint::DistinctInstance; 6];
    assert_eq!(c.place(&req), Err(PlacementError::TooManyConstraints(11)));
    let bad = TaskSpec {
        containers: vec![ContainerSpec::default()],
        ..TaskSpec::default()
    };
    assert!(matches!(
        c.place(&PlacementRequest::new("t", bad, 1)),
        Err(PlacementError::Demand(_))
    ));
    assert_eq!(c.instances()[0].running_tasks_count(), 0);
    let empty = Cluster::new(Snapshot::default()).place(&PlacementRequest::new(
        "t",
        TaskSpec::simple(1, 1),
        1,
    ));
    assert_eq!(empty, Err(PlacementError::NoContainerInstances));
    assert_eq!(
        PlacementError::NoContainerInstances.to_string(),
        "No Container Instances were found in your cluster."
    );
}

#[test]
fn start_task_on_named_instances() {
    let mut drain = inst("d", "z", 4096, 4096);
    drain.status = InstanceStatus::Draining;
    let fleet = Snapshot::new(vec![
        inst("a", "z", 4096, 4096),
        inst("small", "z", 4096, 10),
        drain,
    ]);
    let mut c = Cluster::new(fleet);
    let req = PlacementRequest::new("t", TaskSpec::simple(1, 100), 1)
        .with_constraint(PlacementConstraint::member_of("attribute:nope exists").unwrap());
    let arn_a = c.instances()[0].arn.clone();
    let out = c.start_on(&req, &[&arn_a, "small", "d", "zzz"]).unwrap();
    assert_eq!(ids(&out), vec!["a"]);
    assert_eq!(out.unplaced, 3);
    let reasons: Vec<&str> = out
        .rejections
        .iter()
        .map(|r| r.primary().as_ecs_str())
        .collect();
    assert_eq!(reasons, vec!["RESOURCE:MEMORY", "INACTIVE", "MISSING"]);
    assert!(matches!(
        c.start_on(&req, &[]),
        Err(PlacementError::InvalidInstanceCount(0))
    ));
}

#[test]
fn a_cluster_kept_current_by_replace_places_as_a_new_one_does() {
    // A caller keeps one cluster across requests and replaces each instance as it changes:
    // its placements must be those of a cluster built afresh from the same instances.
    let fleet: Vec<ContainerInstance> = (0..6)
        .map(|n| {
            inst(
                &format!("i{n}"),
                ["us-east-1a", "us-east-1b"][n % 2],
                4096,
                8192,
            )
        })
        .collect();
    let mut kept = Cluster::new(Snapshot::new(fleet.clone()));
    let req = PlacementRequest::new("web", TaskSpec::simple(512, 1024), 5)
        .with_group("service:web")
        .with_strategies(vec![PlacementStrategy::spread_az(), spread_instance()])
        .with_seed(7);
    // Warm the caches, then throw the tentative reservations away.
    kept.place(&req).unwrap();
    let mut now = fleet.clone();
    // The store's truth: i0 took two tasks of the group, i3 moved zones, i5 is draining.
    for _ in 0..2 {
        now[0].tasks.push(RunningTask {
            arn: None,
            group: "service:web".into(),
            family: "web".into(),
            revision: 1,
            started_by: None,
        });
        now[0].remaining.cpu -= 512;
        now[0].remaining.memory -= 1024;
    }
    now[3] = inst("i3", "us-east-1c", 4096, 8192);
    now[5].status = InstanceStatus::Draining;
    for x in &now {
        assert!(kept.replace(x.clone()));
    }
    assert!(!kept.replace(inst("unknown", "us-east-1a", 1, 1)));
    let mut fresh = Cluster::new(Snapshot::new(now));
    assert_eq!(kept.place(&req).unwrap(), fresh.place(&req).unwrap());
    assert_eq!(kept.snapshot(), fresh.snapshot());
}

#[test]
fn a_cluster_kept_current_by_hold_and_release_places_as_a_new_one_does() {
    // A caller keeps one cluster across requests and tells it each task that starts or stops
    // holding on an instance: its placements must be those of a cluster built afresh.
    let fleet: Vec<ContainerInstance> = (0..4)
        .map(|n| {
            inst(
                &format!("i{n}"),
                ["us-east-1a", "us-east-1b"][n % 2],
                4096,
                8192,
            )
        })
        .collect();
    let mut kept = Cluster::new(Snapshot::new(fleet.clone()));
    let task = web_task;
    let held = |ports: &[u16]| Resources {
        cpu: 512,
        memory: 1024,
        ports: ports.iter().copied().collect(),
        ports_udp: PortSet::new(),
    };
    assert!(kept.hold("i0", task("a"), &held(&[80]), false));
    assert!(kept.hold("i0", task("b"), &held(&[]), false));
    assert!(kept.hold("i1", task("c"), &held(&[80]), false));
    // Port 80 is taken on i0: that hold does not fit, and nothing changes.
    assert!(!kept.hold("i0", task("d"), &held(&[80]), false));
    assert!(!kept.hold("nope", task("e"), &held(&[]), false));
    assert!(kept.release("i0", "a", &held(&[80])));
    assert!(!kept.release("i0", "a", &held(&[80])), "a is gone already");
    // A tentative placement claimed by its committed task keeps its reservation once.
    let one = PlacementRequest::new("web", TaskSpec::simple(512, 1024), 1)
        .with_group("service:web")
        .with_strategies(vec![PlacementStrategy::Binpack(BinpackField::Memory)]);
    let out = kept.place(&one).unwrap();
    let at = out.placements[0].container_instance_id.clone();
    assert!(kept.has_unclaimed(&at));
    assert!(kept.hold(&at, task("f"), &held(&[]), true));
    assert!(!kept.has_unclaimed(&at));
    // One whose task came another way first is dropped, its resources given back once.
    let out = kept.place(&one).unwrap();
    let at2 = out.placements[0].container_instance_id.clone();
    assert!(kept.hold(&at2, task("g"), &held(&[]), false));
    assert!(kept.drop_tentative(&at2, "service:web", &held(&[])));
    assert!(!kept.has_unclaimed(&at2));
    assert!(!kept.drop_tentative(&at2, "service:web", &held(&[])));
    assert!(kept.release(&at2, "g", &held(&[])));
    // The truth: i0 runs b, i1 runs c (port 80), and f runs where it was placed.
    let mut now = fleet;
    let mut add = |i: usize, arn: &str, ports: &[u16]| {
        now[i].tasks.push(task(arn));
        now[i].remaining.cpu -= 512;
        now[i].remaining.memory -= 1024;
        for p in ports {
            now[i].remaining.ports.insert(*p);
        }
    };
    add(0, "b", &[]);
    add(1, "c", &[80]);
    let f_at: usize = at.trim_start_matches('i').parse().unwrap();
    add(f_at, "f", &[]);
    let mut fresh = Cluster::new(Snapshot::new(now));
    for (k, f) in kept.instances().iter().zip(fresh.instances()) {
        assert_eq!(k.remaining, f.remaining, "{}", k.id);
        let mut kt: Vec<_> = k.tasks.iter().map(|t| t.arn.clone()).collect();
        let mut ft: Vec<_> = f.tasks.iter().map(|t| t.arn.clone()).collect();
        kt.sort();
        ft.sort();
        assert_eq!(kt, ft, "{}", k.id);
    }
    let req = PlacementRequest::new("web", TaskSpec::simple(512, 1024), 5)
        .with_group("service:web")
        .with_strategies(vec![PlacementStrategy::spread_az(), spread_instance()])
        .with_seed(7);
    assert_eq!(kept.place(&req).unwrap(), fresh.place(&req).unwrap());
}

#[test]
fn a_task_told_again_with_the_caller_s_strings_is_kept_with_them() {
    let mut kept = Cluster::new(Snapshot::new(vec![inst("i0", "us-east-1a", 4096, 8192)]));
    let task = web_task;
    let held = Resources {
        cpu: 512,
        memory: 1024,
        ports: PortSet::new(),
        ports_udp: PortSet::new(),
    };
    assert!(kept.hold("i0", task("a"), &held, false));
    let again = task("a");
    let arn = again.arn.clone().unwrap();
    kept.share("i0", again);
    let t = &kept.instances()[0].tasks[0];
    assert!(std::sync::Arc::ptr_eq(t.arn.as_ref().unwrap(), &arn));
    // Another task (or an unknown instance) changes nothing.
    kept.share("i0", task("b"));
    kept.share("nope", task("a"));
    let x = &kept.instances()[0];
    assert_eq!(x.tasks.len(), 1);
    assert!(std::sync::Arc::ptr_eq(
        x.tasks[0].arn.as_ref().unwrap(),
        &arn
    ));
    assert_eq!(x.remaining.cpu, 4096 - 512);
}

/// A task of the service `web`, revision 1, with its ARN.
fn web_task(arn: &str) -> RunningTask {
    RunningTask {
        arn: Some(arn.into()),
        group: "service:web".into(),
        family: "web".into(),
        revision: 1,
        started_by: None,
    }
}
