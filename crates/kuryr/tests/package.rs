//! The Debian package as an operator installs it: `scripts/package deb` builds it (then
//! scripts/test runs this suite alone: `cargo test -p kuryr --test package -- --ignored`).
//! It installs with dpkg; its systemd unit passes `systemd-analyze verify`; the unit's own
//! command line, with the unit's capability bounding set and no new privileges (through
//! setpriv, as systemd would run it: systemd does not run here), serves the plugin against
//! the real Neutron with CAP_NET_ADMIN as its only capability; removal takes it all away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use docker_harness::{plugin_call, repo_root, stack_config_with};

const UNIT: &str = "/lib/systemd/system/kuryr.service";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest package `scripts/package deb` built.
fn built_package() -> PathBuf {
    let dir = repo_root().join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    debs.retain(|p| p.extension().is_some_and(|e| e == "deb"));
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no kuryr_*.deb in {}: run `scripts/package deb` first",
            dir.display()
        )
    })
}

/// Removes the package at the end, whatever happened.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "kuryr"]);
    }
}

/// The value of `key=` in the unit's [Service] section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key}= in the unit:\n{unit}"))
        .trim()
        .to_owned()
}

/// `CAP_NET_ADMIN CAP_CHOWN` as setpriv's bounding set: `-all,+net_admin,+chown`.
fn setpriv_caps(unit_caps: &str) -> String {
    let mut caps = vec!["-all".to_owned()];
    for cap in unit_caps.split_whitespace() {
        let name = cap.strip_prefix("CAP_").unwrap_or(cap).to_lowercase();
        caps.push(format!("+{name}"));
    }
    caps.join(",")
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "installs a package on this host; scripts/test runs it after `scripts/package deb`"]
fn the_package_installs_a_unit_that_serves_with_net_admin_only() {
    let deb = built_package();
    let deb = deb.to_str().unwrap();
    let contents = run_ok("dpkg-deb", &["--contents", deb]);
    for path in [
        "./usr/bin/kuryr",
        "./lib/systemd/system/kuryr.service",
        "./usr/share/doc/kuryr/kuryr.conf.example",
    ] {
        assert!(
            contents.contains(path),
            "{path} in the package:\n{contents}"
        );
    }
    assert!(
        !contents.contains("./etc/kuryr/kuryr.conf"),
        "the package must not bring a kuryr.conf (an operator's is kept):\n{contents}"
    );

    let _installed = Installed;
    run_ok("dpkg", &["-i", deb]);
    let version = run_ok("/usr/bin/kuryr", &["--version"]);
    assert!(version.starts_with("kuryr "), "{version}");
    let etc = std::fs::metadata("/etc/kuryr").expect("postinst makes /etc/kuryr");
    assert!(etc.is_dir());
    let verify = run("systemd-analyze", &["verify", UNIT]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify {UNIT}: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The unit's command and capabilities, with this test's config and socket.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    let caps = unit_value(&unit, "CapabilityBoundingSet");
    assert_eq!(
        caps, "CAP_NET_ADMIN",
        "the unit asks for CAP_NET_ADMIN only"
    );
    let exec = unit_value(&unit, "ExecStart");
    let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    let at = argv
        .iter()
        .position(|a| a == "--config-file")
        .expect("the unit names its config file");
    let plugin = format!("kuryr-package-{}", std::process::id());
    let config = stack_config_with(&plugin, "[vif_pool]\nenabled = false");
    argv[at + 1] = config.to_str().unwrap().to_owned();
    let dir = tempdir(&plugin);
    let socket = dir.join("kuryr.sock");
    argv.extend([
        "--plugin-name".to_owned(),
        plugin.clone(),
        "--socket".to_owned(),
    ]);
    argv.push(socket.to_str().unwrap().to_owned());
    assert_eq!(argv[0], "/usr/bin/kuryr");
    let log_path = dir.join("kuryr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = Command::new("setpriv")
        .args(["--bounding-set", &setpriv_caps(&caps)])
        .args(["--inh-caps", "-all", "--no-new-privs", "--"])
        .args(&argv)
        .env("KURYR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the unit's command");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(
        "the packaged kuryr to find Neutron usable",
        Duration::from_secs(30),
        || {
            assert!(
                daemon.try_wait().unwrap().is_none(),
                "the packaged kuryr exited:\n{}",
                read_log()
            );
            read_log().contains("Neutron is usable")
        },
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    // CAP_NET_ADMIN is capability 12.
    assert_eq!(bounding, "0000000000001000", "{status}");
    let (code, answer) = plugin_call(&socket, "/Plugin.Activate", &serde_json::json!({}));
    assert_eq!(code, 200, "{answer}");
    let implements = answer["Implements"].to_string();
    assert!(
        implements.contains("NetworkDriver") && implements.contains("IpamDriver"),
        "{answer}"
    );
    let (code, answer) = plugin_call(
        &socket,
        "/IpamDriver.GetDefaultAddressSpaces",
        &serde_json::json!({}),
    );
    assert_eq!(code, 200, "{answer}");
    run_ok("kill", &["-TERM", &daemon.id().to_string()]);
    let stopped = daemon.wait().unwrap();
    assert!(
        stopped.success(),
        "stopped cleanly: {stopped}\n{}",
        read_log()
    );
    assert!(!socket.exists(), "the socket goes with the daemon");

    run_ok("dpkg", &["--purge", "kuryr"]);
    for gone in ["/usr/bin/kuryr", UNIT] {
        assert!(!Path::new(gone).exists(), "{gone} removed with the package");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
