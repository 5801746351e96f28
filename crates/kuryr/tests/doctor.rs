//! `kuryr doctor` run as a user runs it, against the real local Keystone and Neutron.

// Tests fail by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local OpenStack. Run `scripts/test` \
             (which starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first"
        )
    })
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kuryr-doctor-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A kuryr.conf in upstream's format for the local stack, plus `extra` lines in [neutron].
fn write_conf(dir: &Path, password: &str, extra: &str) -> PathBuf {
    let path = dir.join("kuryr.conf");
    let text = format!(
        "# as an operator would write it\n\
         [DEFAULT]\n\
         bindir = /usr/libexec/kuryr\n\
         capability_scope = local\n\
         process_external_connectivity = True\n\n\
         [neutron]\n\
         auth_url = {}\n\
         auth_type = password\n\
         username = {}\n\
         user_domain_name = {}\n\
         password = {password}\n\
         project_name = {}\n\
         project_domain_name = {}\n\
         region_name = {}\n\
         {extra}\n\n\
         [binding]\n\
         veth_dst_prefix = eth\n",
        env("OS_AUTH_URL"),
        env("OS_USERNAME"),
        env("OS_USER_DOMAIN_NAME"),
        env("OS_PROJECT_NAME"),
        env("OS_PROJECT_DOMAIN_NAME"),
        env("OS_REGION_NAME"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `kuryr <args>` with no `OS_*` variables but those given.
fn kuryr(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuryr"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k == "KURYR_CONFIG_FILE" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run kuryr")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn passes_against_the_local_stack() {
    let dir = tmpdir("ok");
    let conf = write_conf(&dir, &env("OS_PASSWORD"), "");
    let out = kuryr(&["--config-file", conf.to_str().unwrap(), "doctor"], &[]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "PASS configuration: read",
        "PASS port driver: veth",
        "PASS Keystone auth: token for",
        "PASS Neutron endpoint: http://127.0.0.1:9696",
        "PASS Neutron API: answered with",
        "PASS extension subnet_allocation",
        "PASS extension standard-attr-tag",
        "kuryr doctor: all checks passed",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        !text.contains(&env("OS_PASSWORD")),
        "the password is never printed"
    );
}

#[test]
fn wrong_password_fails_with_a_clear_line() {
    let dir = tmpdir("badpw");
    let conf = write_conf(&dir, "not-the-password", "");
    let out = kuryr(&["--config-file", conf.to_str().unwrap(), "doctor"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL Keystone auth: Keystone at"), "{text}");
    assert!(text.contains("refused the credentials of user"), "{text}");
    assert!(
        text.contains("fix: check [neutron] auth_type, username"),
        "{text}"
    );
    assert!(text.contains("SKIP Neutron API"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[test]
fn environment_overrides_the_file() {
    let dir = tmpdir("envpw");
    let conf = write_conf(&dir, "not-the-password", "");
    let pw = env("OS_PASSWORD");
    let out = kuryr(
        &["--config-file", conf.to_str().unwrap(), "doctor"],
        &[("OS_PASSWORD", &pw)],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("password <- environment OS_PASSWORD"),
        "{text}"
    );
}

#[test]
fn environment_alone_is_enough() {
    let vars: Vec<(&str, String)> = [
        "OS_AUTH_URL",
        "OS_USERNAME",
        "OS_PASSWORD",
        "OS_PROJECT_NAME",
        "OS_USER_DOMAIN_NAME",
        "OS_PROJECT_DOMAIN_NAME",
        "OS_REGION_NAME",
    ]
    .iter()
    .map(|k| (*k, env(k)))
    .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let missing = tmpdir("none").join("absent.conf");
    // An explicit missing file is an error that names it...
    let out = kuryr(
        &["--config-file", missing.to_str().unwrap(), "doctor"],
        &vars,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("cannot read"), "{}", stdout(&out));
    // ...while no file at all works from the environment.
    let out = kuryr(&["doctor"], &vars);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("auth_url <- environment OS_AUTH_URL"),
        "{text}"
    );
}

#[test]
fn clouds_yaml_by_os_cloud() {
    let dir = tmpdir("clouds");
    let clouds = dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  lab:\n    auth:\n      auth_url: {}\n      username: {}\n      password: '{}'\n      \
             project_name: {}\n      user_domain_name: {}\n      project_domain_name: {}\n    region_name: {}\n    \
             interface: internal\n",
            env("OS_AUTH_URL"),
            env("OS_USERNAME"),
            env("OS_PASSWORD"),
            env("OS_PROJECT_NAME"),
            env("OS_USER_DOMAIN_NAME"),
            env("OS_PROJECT_DOMAIN_NAME"),
            env("OS_REGION_NAME"),
        ),
    )
    .unwrap();
    let out = kuryr(
        &["doctor"],
        &[
            ("OS_CLOUD", "lab"),
            ("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap()),
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cloud lab from"), "{text}");
    assert!(text.contains("(internal interface, region"), "{text}");
    let out = kuryr(
        &["--os-cloud", "nope", "doctor"],
        &[("OS_CLIENT_CONFIG_FILE", clouds.to_str().unwrap())],
    );
    assert!(
        stdout(&out).contains("no cloud named \"nope\" (clouds there: lab)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn invalid_and_unknown_options() {
    let dir = tmpdir("opts");
    let conf = write_conf(&dir, &env("OS_PASSWORD"), "vif_plugging_timeout = soon");
    let out = kuryr(&["--config-file", conf.to_str().unwrap(), "doctor"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "FAIL configuration: invalid value \"soon\" for [neutron] vif_plugging_timeout"
        ),
        "{text}"
    );
    assert!(text.contains("kuryr.conf:16"), "the line is named: {text}");

    let conf = write_conf(&dir, &env("OS_PASSWORD"), "vif_pluging_timeout = 5");
    let out = kuryr(&["--config-file", conf.to_str().unwrap(), "doctor"], &[]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "a typo is a warning, not fatal: {text}"
    );
    assert!(
        text.contains("WARN configuration: unknown option [neutron] vif_pluging_timeout"),
        "{text}"
    );
}

#[test]
fn unreachable_neutron_endpoint_fails_with_a_clear_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tmpdir("noneutron");
    let extra = format!("endpoint_override = http://127.0.0.1:{port}\ntimeout = 5");
    let conf = write_conf(&dir, &env("OS_PASSWORD"), &extra);
    let started = std::time::Instant::now();
    let out = kuryr(&["--config-file", conf.to_str().unwrap(), "doctor"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("PASS Keystone auth"), "{text}");
    assert!(
        text.contains(&format!("FAIL Neutron API: cannot connect to Neutron at http://127.0.0.1:{port}/v2.0/extensions")),
        "{text}"
    );
    assert!(
        text.contains("fix: check that Neutron is running"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn version_and_help() {
    let out = kuryr(&["--version"], &[]);
    assert!(stdout(&out).starts_with("kuryr "), "{}", stdout(&out));
    let out = kuryr(&["--help"], &[]);
    assert!(stdout(&out).contains("doctor"), "{}", stdout(&out));
}

/// `kuryr serve` on its own socket, killed when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn checks_this_host_open_vswitch_the_agent_and_the_plugin_socket() {
    let dir = tmpdir("host");
    let conf = write_conf(&dir, &env("OS_PASSWORD"), "");
    let socket = dir.join("kuryr.sock");
    let _ = std::fs::remove_file(&socket);
    let plugin = format!("kuryr-doctor-{}", std::process::id());
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let _serving = Serving(
        Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .args(["--config-file", conf.to_str().unwrap(), "serve"])
            .args([
                "--plugin-name",
                &plugin,
                "--socket",
                socket.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kuryr serve"),
    );
    let started = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "kuryr serve listens on {}",
            socket.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let args = [
        "--config-file",
        conf.to_str().unwrap(),
        "doctor",
        "--socket",
        socket.to_str().unwrap(),
    ];
    let out = kuryr(&args, &[]);
    let text = stdout(&out);
    for line in [
        "PASS Open vSwitch: ovsdb-server answers at /var/run/openvswitch/db.sock; bridges:",
        "PASS plugin socket: kuryr serve answers at",
        "PASS Neutron agent: Open vSwitch agent of host",
        "PASS integration bridge: br-int is in Open vSwitch",
        "INFO Swarm: capability_scope = local",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS Docker") || l.starts_with("WARN Docker")),
        "a Docker line in:\n{text}"
    );

    // Nothing on the socket, and Open vSwitch elsewhere: each says what to do.
    let conf = write_conf(&dir, &env("OS_PASSWORD"), "");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("ovsdb_connection = unix:/nonexistent/db.sock\n");
    std::fs::write(&conf, text).unwrap();
    let missing = dir.join("nobody.sock");
    let args = [
        "--config-file",
        conf.to_str().unwrap(),
        "doctor",
        "--socket",
        missing.to_str().unwrap(),
    ];
    let out = kuryr(&args, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL Open vSwitch: ovsdb-server at /nonexistent/db.sock"),
        "{text}"
    );
    assert!(
        text.contains("fix: start Open vSwitch (ovsdb-server and ovs-vswitchd)"),
        "{text}"
    );
    assert!(
        text.contains("WARN plugin socket: nothing answers at"),
        "{text}"
    );
    assert!(
        text.contains("SKIP integration bridge: not checked: Open vSwitch did not answer"),
        "{text}"
    );
}
