//! Placement throughput: 100,000 tasks on 1,000 and 10,000 instances with
//! spread(attribute:ecs.availability-zone) + binpack(memory) + a memberOf
//! constraint.
//!
//! Two request shapes are measured:
//! - services: 100 requests of 1,000 tasks (a service scaling out);
//! - run-task: 10,000 requests of 10 tasks (RunTask's maximum count).
//!
//! Run with `cargo run --release -p flotilla-scheduler --example placement_bench`.
//! Pass `--scan` to also time each shape with the selector forced to the
//! reference scan and to the incremental index (Auto picks by request size).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use flotilla_scheduler::*;

const TYPES: &[(&str, u32, u32)] = &[
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15576),
    ("c5.2xlarge", 8192, 15360),
    ("t3.medium", 2048, 3800),
];
const AZS: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];

fn fleet(n: usize) -> Snapshot {
    Snapshot::new(
        (0..n)
            .map(|i| {
                let (ty, cpu, mem) = TYPES[(i * 7 + i / 3) % TYPES.len()];
                ContainerInstance::new(format!("ci-{i:05}"), cpu, mem)
                    .with_attribute("ecs.availability-zone", AZS[i % AZS.len()])
                    .with_attribute("ecs.instance-type", ty)
                    .with_attribute("ecs.os-type", "linux")
            })
            .collect(),
    )
}

fn requests(total: u32, per_request: u32) -> Vec<PlacementRequest> {
    let member_of = PlacementConstraint::member_of(
        "attribute:ecs.instance-type =~ m5.* or attribute:ecs.instance-type == c5.2xlarge",
    )
    .unwrap();
    (0..total / per_request)
        .map(|n| {
            let svc = n % 100;
            PlacementRequest::new(
                format!("app-{svc}"),
                TaskSpec::simple(16, 32 + (svc % 4) * 16),
                per_request,
            )
            .for_service(&format!("svc-{svc}"))
            .with_strategies(vec![
                PlacementStrategy::spread_az(),
                PlacementStrategy::Binpack(BinpackField::Memory),
            ])
            .with_constraint(member_of.clone())
            .with_seed(u64::from(n))
        })
        .collect()
}

fn run(instances: usize, per_request: u32, mode: SelectMode) -> f64 {
    let reqs = requests(100_000, per_request);
    let mut cluster = Cluster::new(fleet(instances));
    let start = Instant::now();
    let mut placed = 0usize;
    let mut unplaced = 0u64;
    for r in &reqs {
        let out = cluster.place_with(r, mode).unwrap();
        placed += out.placements.len();
        unplaced += u64::from(out.unplaced);
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = placed as f64 / secs;
    println!(
        "{instances:>6} instances  {:>6} requests x {per_request:>5}  {mode:?}: placed {placed} (unplaced {unplaced}) in {secs:.3}s = {rate:>10.0} placements/s",
        reqs.len()
    );
    rate
}

fn main() {
    let scan = std::env::args().any(|a| a == "--scan");
    println!("spread(attribute:ecs.availability-zone) + binpack(memory) + memberOf, 100,000 tasks");
    for n in [1_000, 10_000] {
        run(n, 1_000, SelectMode::Auto);
        run(n, 10, SelectMode::Auto);
        if scan {
            run(n, 1_000, SelectMode::Scan);
            run(n, 10, SelectMode::Scan);
            run(n, 10, SelectMode::Index);
        }
    }
}
