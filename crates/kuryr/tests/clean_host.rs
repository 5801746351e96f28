//! `kuryr gc --dry-run` on a clean host reports nothing: not before a network exists, not
//! while containers run on one (Docker's view holds them), not after everything was removed
//! through Docker.
//!
//! The reconciler judges every kuryr resource of this host, so a test running beside it
//! would be reported: it is marked `#[ignore]` and `scripts/test` runs it alone, after the
//! other tests have removed what they made (`cargo test -p kuryr --test clean_host --
//! --ignored`). A report here after the whole suite is a leak of some earlier test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use docker_harness::*;
use serde_json::Value;

/// The report of `kuryr gc --dry-run` judging at once (no minimum age, a second look after
/// half a second).
async fn dry_run(k: &Kuryr) -> Value {
    k.gc(&["--dry-run", "--min-age", "0", "--confirm-after", "0.5"])
        .await
}

fn assert_nothing(report: &Value, when: &str) {
    assert_eq!(
        report["orphans"].as_array().map(Vec::len),
        Some(0),
        "kuryr gc --dry-run {when} reports orphans: {report:#}"
    );
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "kuryr gc --dry-run {when}: {report:#}"
    );
    assert!(
        !report["notes"].to_string().contains("Docker"),
        "Docker's view was read {when}: {report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "judges every kuryr resource of this host; scripts/test runs it alone, after the other tests"]
async fn gc_dry_run_on_a_clean_host_reports_nothing() {
    const CIDR: &str = "10.201.40.0/24";
    with_kuryr("clean", &[CIDR], |k| async move {
        assert_nothing(&dry_run(&k).await, "before any network");

        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", CIDR]).await;
        let network_id = k.network_of(&docker_id).await.id;
        let (a, b) = (k.name("a"), k.name("b"));
        k.run(&a, &["--net", &net]).await;
        k.run(&b, &["--net", &net]).await;
        let report = dry_run(&k).await;
        assert_nothing(&report, "with two containers running");
        assert!(
            report["ports"].as_u64() >= Some(2),
            "the running containers' ports were looked at: {report:#}"
        );

        k.remove_container(&a).await;
        k.remove_container(&b).await;
        k.remove_network(&net).await;
        eventually("the Neutron network is gone", || async {
            k.networks_of(&docker_id).await.is_empty().then_some(())
        })
        .await;
        assert!(k.ports_on(&network_id).await.is_empty());
        assert_nothing(&dry_run(&k).await, "after everything was removed");
    })
    .await;
}
