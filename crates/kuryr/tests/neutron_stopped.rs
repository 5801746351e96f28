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

#[test]
#[ignore = "stops the shared Open vSwitch agent; scripts/test runs it alone, after the other tests"]
fn a_port_that_never_turns_active_fails_create_endpoint_and_is_unplugged() {
    std::env::var("OS_AUTH_URL").expect("OS_* variables of the local stack (scripts/stack env)");
    let stack_conf = std::env::var("KURYR_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/stack"))
        .join("kuryr.conf");
    let dir = std::env::temp_dir().join(format!("kuryr-fatal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fatal = dir.join("fatal.conf");
    std::fs::write(
        &fatal,
        "[neutron]\nvif_plugging_is_fatal = true\nvif_plugging_timeout = 5\n",
    )
    .unwrap();
    let socket = dir.join("kuryr.sock");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .arg("--config-file")
        .arg(&stack_conf)
        .arg("--config-file")
        .arg(&fatal)
        .args(["serve", "--socket"])
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start kuryr serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "kuryr serve listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    let call = |path: &str, body: String| -> serde_json::Value {
        let (status, text) = plugin_call(&socket, path, &body);
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    };
    let net = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xfa7a1);
    let endpoint = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xe9d);
    let pool = call(
        "/IpamDriver.RequestPool",
        r#"{"AddressSpace": "", "Pool": "10.251.8.0/24", "SubPool": "", "Options": {}, "V6": false}"#.into(),
    );
    let pool_id = pool["PoolID"].as_str().unwrap().to_owned();
    call(
        "/NetworkDriver.CreateNetwork",
        format!(
            r#"{{"NetworkID": "{net}", "Options": {{}}, "IPv4Data": [{{"AddressSpace": "", "Pool": "10.251.8.0/24", "Gateway": "10.251.8.1/24"}}], "IPv6Data": []}}"#
        ),
    );
    let address = call(
        "/IpamDriver.RequestAddress",
        format!(
            r#"{{"PoolID": "{pool_id}", "Address": "", "Options": {{"com.docker.network.endpoint.macaddress": "02:42:0a:fb:08:09"}}}}"#
        ),
    );
    let address = address["Address"].as_str().unwrap().to_owned();

    // The agent is gone, though Neutron still counts it alive for a while: the port is bound
    // to `ovs`, plugged, and never turns ACTIVE.
    stack(&["stop", "neutron-ovs-agent"]);
    let started = Instant::now();
    let (status, text) = plugin_call(
        &socket,
        "/NetworkDriver.CreateEndpoint",
        &format!(
            r#"{{"NetworkID": "{net}", "EndpointID": "{endpoint}", "Interface": {{"Address": "{address}", "MacAddress": "02:42:0a:fb:08:09"}}, "Options": {{}}}}"#
        ),
    );
    let took = started.elapsed();
    stack(&["start", "neutron-ovs-agent"]);
    let ovs_ports = Command::new("ovs-vsctl")
        .args(["--bare", "--columns=name", "find", "Interface"])
        .arg(format!("external_ids:vm-uuid={endpoint}"))
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&ovs_ports.stdout).trim().to_owned();

    let bare = address.split('/').next().unwrap();
    call(
        "/IpamDriver.ReleaseAddress",
        format!(r#"{{"PoolID": "{pool_id}", "Address": "{bare}"}}"#),
    );
    call(
        "/IpamDriver.ReleasePool",
        format!(r#"{{"PoolID": "{pool_id}"}}"#),
    );
    call(
        "/NetworkDriver.DeleteNetwork",
        format!(r#"{{"NetworkID": "{net}"}}"#),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(status, 503, "{text}");
    assert!(text.contains("vif_plugging_timeout"), "{text}");
    assert!(text.contains("still DOWN"), "{text}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(30),
        "waited the 5 s timeout, not forever: {took:?}"
    );
    assert!(
        left.is_empty(),
        "the failed endpoint is unplugged from OVS: {left}"
    );
}
