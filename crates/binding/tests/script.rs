#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Binding scripts and the bindings that need no OVS: real executables in a temporary bindir,
//! which record the arguments they get; `Binder` with the real netlink connection (needs
//! root).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kuryr_binding::{Binder, Error, Netlink, Ovsdb, PlugRequest, UnplugRequest};
use serde_json::json;

/// A script that writes its arguments, NUL-terminated, to `<its path>.<first argument>`.
const RECORDER: &str = "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$0.$1\"\n";

fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The arguments the recorder got for `action`.
fn recorded(dir: &Path, name: &str, action: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.{action}"))).unwrap();
    text.split_terminator('\0').map(str::to_owned).collect()
}

/// A binder that must not need OVS (its OVSDB socket does not exist).
async fn binder(bindir: &Path) -> Binder {
    let mut binder = Binder::new(
        Netlink::connect().await.unwrap(),
        Ovsdb::new("/nonexistent/kuryr/db.sock"),
    );
    binder.bindir = bindir.to_owned();
    binder
}

fn request(vif_type: &str) -> PlugRequest {
    PlugRequest {
        port_id: "1f0e9a7c-3b2d-4c5e-8f6a-1b2c3d4e5f60".into(),
        endpoint_id: "e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1".into(),
        mac: MAC,
        host_ifname: "tap1f0e9a7c-3b".into(),
        network_id: "5c1f0e9a-3b2d-4c5e-8f6a-1b2c3d4e5f60".into(),
        project_id: "b1c2d3e4f5a6478890a1b2c3d4e5f6a7".into(),
        mtu: MTU,
        host: "node-7".into(),
        vif_type: vif_type.into(),
        vif_details: json!({"port_filter": true, "vhostuser_mode": "server", "mtu": 1450}),
    }
}

fn unplug_request(req: &PlugRequest) -> UnplugRequest {
    UnplugRequest {
        port_id: req.port_id.clone(),
        endpoint_id: req.endpoint_id.clone(),
        mac: req.mac,
        host_ifname: req.host_ifname.clone(),
        network_id: req.network_id.clone(),
        vif_type: req.vif_type.clone(),
        vif_details: req.vif_details.clone(),
    }
}

#[tokio::test]
async fn bind_and_unbind_get_upstreams_arguments() {
    let dir = TempDir::new("argv");
    write_script(&dir.0, "myvif", RECORDER);
    let binder = binder(&dir.0).await;
    let req = request("myvif");
    let details = "{'mtu': 1450, 'port_filter': True, 'vhostuser_mode': 'server'}";

    binder.plug(&req).await.unwrap();
    assert_eq!(
        recorded(&dir.0, "myvif", "bind"),
        [
            "bind",
            &req.port_id,
            &req.host_ifname,
            &req.endpoint_id,
            MAC_TEXT,
            &req.network_id,
            &req.project_id,
            details,
        ]
    );

    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert_eq!(
        recorded(&dir.0, "myvif", "unbind"),
        [
            "unbind",
            &req.port_id,
            &req.host_ifname,
            &req.endpoint_id,
            MAC_TEXT,
            details,
            &req.network_id,
        ]
    );
}

#[tokio::test]
async fn a_missing_script_means_the_vif_type_is_not_supported() {
    let dir = TempDir::new("missing");
    // Present but not executable counts as missing.
    std::fs::write(dir.0.join("plain"), "#!/bin/sh\n").unwrap();
    let binder = binder(&dir.0).await;
    for vif_type in ["nosuch", "plain"] {
        let err = binder.plug(&request(vif_type)).await.unwrap_err();
        assert!(matches!(err, Error::VifTypeNotSupported { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "vif_type {vif_type} is not supported: no executable {}",
                dir.0.join(vif_type).display()
            )
        );
        let err = binder
            .unplug(&unplug_request(&request(vif_type)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::VifTypeNotSupported { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn a_failing_script_reports_its_exit_status_and_stderr() {
    let dir = TempDir::new("failing");
    write_script(
        &dir.0,
        "broken",
        "#!/bin/sh\necho 'some progress' \necho \"cannot bind $2: no agent socket\" >&2\nexit 3\n",
    );
    let binder = binder(&dir.0).await;
    let req = request("broken");
    let err = binder.plug(&req).await.unwrap_err();
    assert!(matches!(err, Error::ScriptFailed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} bind {} failed (exit status 3): cannot bind {}: no agent socket",
            dir.0.join("broken").display(),
            req.port_id,
            req.port_id
        )
    );
}

#[tokio::test]
async fn a_hanging_script_is_killed_at_the_timeout() {
    let dir = TempDir::new("hanging");
    write_script(
        &dir.0,
        "slow",
        "#!/bin/sh\necho $$ > \"$0.pid\"\nexec sleep 30\n",
    );
    let mut binder = binder(&dir.0).await;
    binder.script_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = binder.plug(&request("slow")).await.unwrap_err();
    assert!(matches!(err, Error::ScriptTimeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("did not finish within 0.5 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = std::fs::read_to_string(dir.0.join("slow.pid")).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // Killed: gone, or a zombie until the runtime reaps it.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::read_to_string(&stat) {
            Err(_) => break,
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => break,
            Ok(_) => {
                assert!(Instant::now() < deadline, "the script still runs");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[tokio::test]
async fn bad_vif_type_names_are_refused_before_anything_runs() {
    let dir = TempDir::new("names");
    let inner = dir.0.join("bin");
    std::fs::create_dir_all(&inner).unwrap();
    // Executables a bad name could reach, if it were used as a path.
    write_script(&dir.0, "outside", RECORDER);
    write_script(&inner, ".hidden", RECORDER);
    let binder = binder(&inner).await;
    for vif_type in [
        "../outside",
        ".hidden",
        "a/b",
        "/bin/true",
        "..",
        "x y",
        "x\0",
    ] {
        let err = binder.plug(&request(vif_type)).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidVifType { .. }),
            "{vif_type:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("invalid vif_type"), "{err}");
        let err = binder
            .unplug(&unplug_request(&request(vif_type)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidVifType { .. }),
            "{vif_type:?}: {err:?}"
        );
    }
    assert!(!dir.0.join("outside.bind").exists());
    assert!(!inner.join(".hidden.bind").exists());
}

#[tokio::test]
async fn an_unbound_port_is_an_error_naming_the_host() {
    let dir = TempDir::new("unbound");
    let binder = binder(&dir.0).await;
    for vif_type in ["binding_failed", "unbound", ""] {
        let req = request(vif_type);
        let err = binder.plug(&req).await.unwrap_err();
        assert!(matches!(err, Error::Unbound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("host node-7"), "{text}");
        assert!(
            text.contains("no Neutron L2 agent for host node-7 is alive"),
            "{text}"
        );
        assert!(
            text.contains("`openstack network agent list --host node-7`"),
            "{text}"
        );
        // Nothing was plugged, so there is nothing to unplug.
        binder.unplug(&unplug_request(&req)).await.unwrap();
    }
}

#[tokio::test]
async fn tap_binding_leaves_the_tap_alone() {
    let dir = TempDir::new("tap");
    let binder = binder(&dir.0).await;
    let mut links = Links::default();
    let port = port_id(1);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let mut req = request("tap");
    req.port_id = port;
    req.host_ifname = tap.clone();
    binder.plug(&req).await.unwrap();
    assert_eq!(master_of(&tap), None);
    assert!(is_up(&tap));
    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert!(link_exists(&tap));
}

#[tokio::test]
async fn invalid_requests_are_refused_before_anything_changes() {
    let dir = TempDir::new("invalid");
    write_script(&dir.0, "myvif", RECORDER);
    let binder = binder(&dir.0).await;
    let mut req = request("myvif");
    req.host_ifname = "tap/../x".into();
    let err = binder.plug(&req).await.unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    let mut req = request("myvif");
    req.mac = [0x01, 0, 0x5e, 0, 0, 1];
    let err = binder.plug(&req).await.unwrap_err();
    assert!(err.to_string().contains("not a unicast address"), "{err}");
    assert!(!dir.0.join("myvif.bind").exists());
}
