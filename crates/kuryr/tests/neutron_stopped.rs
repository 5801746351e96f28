//! `kuryr doctor` while the real Neutron is stopped, then started again.
//!
//! This stops the shared local Neutron, so no other test may run meanwhile: it is marked
//! `#[ignore]` and `scripts/test` runs it on its own after the other tests
//! (`cargo test -p kuryr --test neutron_stopped -- --ignored`).

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stack(action: &[&str]) {
    let status = Command::new(repo_root().join("scripts/stack"))
        .args(action)
        .status()
        .expect("run scripts/stack");
    assert!(status.success(), "scripts/stack {action:?} failed");
}

fn doctor() -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .arg("doctor")
        .output()
        .expect("run kuryr");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
#[ignore = "stops the shared Neutron; scripts/test runs it alone, after the other tests"]
fn doctor_reports_a_stopped_neutron_and_recovers() {
    std::env::var("OS_AUTH_URL").expect("OS_* variables of the local stack (scripts/stack env)");
    let (code, text) = doctor();
    assert_eq!(code, 0, "doctor passes before: {text}");

    stack(&["stop", "neutron"]);
    let started = Instant::now();
    let (code, text) = doctor();
    let took = started.elapsed();
    stack(&["start", "neutron"]);

    assert_eq!(code, 1, "{text}");
    assert!(text.contains("PASS Keystone auth"), "{text}");
    assert!(
        text.contains(
            "FAIL Neutron API: cannot connect to Neutron at http://127.0.0.1:9696/v2.0/extensions"
        ),
        "{text}"
    );
    assert!(
        text.contains("fix: check that Neutron is running"),
        "{text}"
    );
    assert!(
        took < Duration::from_secs(60),
        "failed within the request timeout: {took:?}"
    );

    let (code, text) = doctor();
    assert_eq!(code, 0, "doctor passes again once Neutron is back: {text}");
}
