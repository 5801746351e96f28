//! The report of a small run folder (`tests/fixtures/run`: userbridge, kuryr's default
//! configuration and no pool, the scale phase), table by table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kuryr_bench_report::driver::Driver;
use kuryr_bench_report::measure::Run;
use kuryr_bench_report::raw::RunDir;
use kuryr_bench_report::{report, summary};

fn fixture() -> Run {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run");
    Run::read(RunDir::new(dir)).unwrap()
}

/// The line of `report` that starts with `prefix`.
fn line<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{report}"))
}

#[test]
fn requests_counted_per_phase() {
    let run = fixture();
    let nopool = run.driver(Driver::KuryrNoPool).unwrap();
    let split = nopool.split.as_ref().unwrap();
    assert_eq!(
        (split.containers, split.before, split.during, split.removal),
        (2, 6, 0, 2)
    );
    assert_eq!(split.on_path_start_per(), Some(3.0));
    assert_eq!(split.on_path_removal_per(), Some(1.0));
    let net = nopool.net.as_ref().unwrap();
    assert_eq!(
        (net.create_requests, net.rm_requests),
        (Some(5.0), Some(3.0))
    );
    assert_eq!((net.create_on_path, net.rm_on_path), (Some(5.0), Some(2.0)));
    let seq = run.driver(Driver::Kuryr).unwrap().seq.as_ref().unwrap();
    assert_eq!(seq.neutron_per(), Some(2.0));
    assert_eq!(
        (seq.on_path_per(), seq.background_per()),
        (Some(1.0), Some(1.0))
    );
    let scale = run.scale.as_ref().unwrap();
    assert_eq!(scale.base_cpu.as_ref().map(Vec::len), Some(5));
    // Files a run did not write: not measured.
    assert!(scale.ports_cpu.is_none() && scale.ports_none.is_none());
    // Drivers without a sequential phase are not in the run.
    assert!(run.driver(Driver::KuryrPool).is_none());
    assert!(run.driver(Driver::Upstream).is_none());
}

#[test]
fn lifecycle_table() {
    let r = report::render(&fixture());
    assert_eq!(
        line(&r, "| kuryr, default configuration | 405"),
        "| kuryr, default configuration | 405.0 | 417.0 | 175.0 | 1.23 | n/a | n/a | n/a | n/a | n/a / n/a | 1 |"
    );
    assert_eq!(
        line(&r, "| user-defined bridge | 330"),
        "| user-defined bridge | 330.0 | 382.0 | 100.0 | 1.00 | n/a | 2.00 | 1.00 | n/a | 1050.0 / 1170.0 | 0 |"
    );
}

#[test]
fn targets() {
    let r = report::render(&fixture());
    assert!(line(&r, "| default configuration, sequential")
        .ends_with("| 405.0 ms vs 330.0 ms: 1.23 × | pass |"));
    assert!(line(&r, "| miss path (no pool)").contains("| 3.0 at start, 1.0 at removal"));
    assert!(line(&r, "| miss path (no pool)").ends_with("| pass |"));
    assert!(line(&r, "| `docker network create` and").contains(
        "no pool 5.0 / 2.0 (all requests in the window 5.0 / 3.0) (per create / per rm) | pass |"
    ));
    let own = line(&r, "| kuryr's own time per call");
    assert!(
        own.contains("worst call p99 36513 µs: NetworkDriver.DeleteEndpoint (kuryr, no pool, seq)")
    );
    assert!(own.ends_with("| **FAIL** |"));
    assert!(r.contains(
        "- Without pools: CreateEndpoint (own p99 10350 µs) and DeleteEndpoint (36513 µs)"
    ));
    // Requests on Docker's path grew from none: no longer flat. No `--net none` with the
    // extra ports, and no calls in that phase's stats: kuryr's own time unknown.
    assert!(
        line(&r, "| flat as the cloud grows, with 20 more ports").ends_with(
            "| median 405.0 → 490.0 ms (1.21 ×), on Docker's path 0.0 → 0.5 (inf ×); kuryr's own time per lifecycle 0.40 → n/a ms | **FAIL** |"
        )
    );
    // kuryr's median doubled, but so did the host's own (`--net none`'s in the same
    // sequences): kuryr is judged on its growth beyond the host's.
    let running = line(&r, "| flat as the cloud grows, with 3 containers");
    assert!(running.contains("grows <= 1.2 × as much as `--net none`'s in the same sequences"));
    assert!(running.ends_with(
        "| kuryr median 405.0 → 825.0 ms (2.04 ×), `--net none` 205.0 → 415.0 ms (2.02 ×): 1.01 × the host's growth; on Docker's path 0.0 → 0.0 (1.00 ×); kuryr's own time per lifecycle 0.40 → 0.60 ms | pass |"
    ));
    // Not measured: n/a, never pass.
    assert!(line(&r, "| warm pool, sequential").ends_with("| n/a |"));
}

#[test]
fn requests_pools_networks_and_scale() {
    let r = report::render(&fixture());
    assert_eq!(
        line(&r, "| kuryr, no pool | n/a | 4.0"),
        "| kuryr, no pool | n/a | 4.0 | 0.0 | n/a | 3.0 | 3.0 | 0.0 | 1.0 | 1.0 |"
    );
    // Only the daemon whose pools are on has counters.
    assert_eq!(
        line(&r, "| kuryr, default configuration | sequential | 4"),
        "| kuryr, default configuration | sequential | 4 | 3 | 1 | 4 | 4 |"
    );
    assert!(!r.contains("| kuryr, no pool | sequential | 4 |"));
    assert_eq!(
        line(&r, "| kuryr, no pool | 410.0"),
        "| kuryr, no pool | 410.0 | 470.0 | n/a | 5.0 | 3.0 | 5.0 / 2.0 | 0 |"
    );
    assert_eq!(
        line(&r, "| 20 more ports on 2 more networks |"),
        "| 20 more ports on 2 more networks | 2 | 490.0 | 498.0 | 1.21 | n/a | 0.5 | inf | n/a | 0 |"
    );
    // (100 + 300) µs own p50 × 2 calls each over 2 containers; then (150 + 450) × 2 / 2.
    assert_eq!(
        line(&r, "| as it is | 2 |"),
        "| as it is | 2 | 405.0 | 409.0 | 1.00 | n/a | 0.0 | 1.00 | 0.40 | 0 |"
    );
    assert_eq!(
        line(&r, "| 3 containers running |"),
        "| 3 containers running | 2 | 825.0 | 829.0 | 2.04 | n/a | 0.0 | 1.00 | 0.60 | 0 |"
    );
    assert_eq!(
        line(&r, "| `--net none`, 3 containers running |"),
        "| `--net none`, 3 containers running | 2 | 415.0 | 419.0 | 2.02 | n/a | n/a | n/a | n/a | 0 |"
    );
    assert!(!r.contains("| `--net none`, 20 more ports"));
    assert!(r.contains("kuryr grew 1.01 × as much as the host did; its own time per lifecycle went 0.40 → 0.60 ms."));
    // CPU use per state; the extra ports' sequence has no CPU file: no column.
    assert_eq!(
        line(&r, "| process |"),
        "| process | as it is | 3 containers running |"
    );
    assert_eq!(
        line(&r, "| ovs-vswitchd |"),
        "| ovs-vswitchd | 20.0 | 28.0 |"
    );
    assert_eq!(line(&r, "| kuryr |"), "| kuryr | 0.7 | 1.0 |");
    assert!(r.contains(
        "Waited: as it is 4 s; 20 more ports on 2 more networks 6 s; 3 containers running 36 s."
    ));
    assert!(r.contains("with 3 running: 14.9 MiB; 100.0 KiB per running container."));
    assert!(r.contains("kuryr, default configuration:\n\n```\n  1.0  GET /v2.0/ports?tags=\n  1.0  PUT /v2.0/ports/{id}/tags/{tag}\n```\n"));
}

#[test]
fn sections_in_order() {
    let r = report::render(&fixture());
    let at = |h: &str| r.find(h).unwrap_or_else(|| panic!("no {h}"));
    let order = [
        "# Benchmarks",
        "## Machine",
        "## Targets",
        "## Container lifecycle",
        "## Neutron API requests per container lifecycle",
        "## `docker network create` + `docker network rm`",
        "## Daemon memory",
        "## Flat as the cloud grows",
        "## kuryr's time per plugin call",
        "## What a lifecycle asks Neutron",
        "## Method",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])));
    assert!(r.contains("| memory | 23.5 GiB |"));
    assert!(r.contains("took 2 min (**--quick**: fewer repetitions)"));
    assert!(r.contains("`.cache/bench/run/`"));
    assert!(!r.contains("\n\n\n"), "no double blank lines");
}

#[test]
fn progress_lines() {
    let run = fixture();
    assert_eq!(
        summary::line(&run, "kuryr-nopool", "split").unwrap(),
        "kuryr-nopool: Neutron requests before the container runs 3.0, while it runs 0.0, at its removal 1.0; on Docker's path at start 3.0, at removal 1.0"
    );
    assert_eq!(
        summary::line(&run, "scale", "rss").unwrap(),
        "scale: kuryr's RSS 15000 KiB with no container running, 15300 KiB with 3: 100.0 KiB per container"
    );
    assert_eq!(
        summary::line(&run, "scale", "running").unwrap(),
        "scale: 3 containers running: sequential median 825.0 ms, p90 829.0 ms, n/a Neutron requests per container (0.0 on Docker's path), 0 failures; --net none in between: median 415.0 ms, 0 failures"
    );
    assert_eq!(summary::line(&run, "kuryr-pool", "seq"), None);
}
