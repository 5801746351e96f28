//! `kuryr doctor` and `kuryr serve` while the real Neutron is stopped, then started again.
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

/// POST over a unix socket as Docker does; the status and the body.
fn plugin_call(socket: &std::path::Path, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
#[ignore = "stops the shared Neutron; scripts/test runs it alone, after the other tests"]
fn serve_starts_without_neutron_and_serves_once_it_is_back() {
    std::env::var("OS_AUTH_URL").expect("OS_* variables of the local stack (scripts/stack env)");
    let socket = std::env::temp_dir().join(format!("kuryr-stopped-{}.sock", std::process::id()));
    stack(&["stop", "neutron"]);
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["serve", "--socket"])
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start kuryr serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "kuryr serve listens at once, Neutron or not"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pool = r#"{"AddressSpace": "", "Pool": "10.251.7.0/24", "SubPool": "", "Options": {}, "V6": false}"#;
    let (status, body) = plugin_call(&socket, "/Plugin.Activate", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = plugin_call(&socket, "/IpamDriver.RequestPool", pool);
    stack(&["start", "neutron"]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Neutron not reachable"), "{body}");

    // The background probe finds Neutron back (backoff at most 30 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let answer = loop {
        let (status, body) = plugin_call(&socket, "/IpamDriver.RequestPool", pool);
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after Neutron came back: {body}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let release = format!(r#"{{"PoolID": "{}"}}"#, value["PoolID"].as_str().unwrap());
    let (status, body) = plugin_call(&socket, "/IpamDriver.ReleasePool", &release);
    assert_eq!(status, 200, "{body}");

    // SIGTERM stops it cleanly and removes the socket.
    let killed = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = daemon.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists(), "socket removed on exit");
}
