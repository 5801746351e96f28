//! Security properties of the real `kuryr serve` binary, against the local Keystone and
//! Neutron:
//! - the plugin socket is 0660 and the admin socket 0600, and `[DEFAULT] socket_group` gives
//!   the plugin socket a group (by name or gid), refusing a group that does not exist;
//! - no secret (the password of kuryr.conf, the Keystone tokens kuryr used) reaches a log
//!   line at debug level, an error, `kuryr doctor` or `kuryr stats`; a wrong password is
//!   reported with the user's name and without the password;
//! - `[neutron] insecure = true` is warned about when the daemon starts;
//! - the daemon needs CAP_NET_ADMIN, and CAP_CHOWN only for a socket group it is not in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a daemon may take to listen, or to stop, on this busy 2-core machine.
const START_WITHIN: Duration = Duration::from_secs(30);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local OpenStack. Run `scripts/test` \
             (which starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first"
        )
    })
}

/// A fresh folder of this test process (paths never collide between tests or runs),
/// removed when the test passes and kept, with the daemon's log, when it fails.
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn tmpdir(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("kuryr-security-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A plugin name unique to this process and test.
fn plugin_name(test: &str) -> String {
    format!("ksec-{}-{test}", std::process::id())
}

/// A kuryr.conf for the local stack holding `password`, with `default` lines in [DEFAULT]
/// and `neutron` lines in [neutron].
fn write_conf(dir: &Path, password: &str, default: &str, neutron: &str) -> PathBuf {
    let path = dir.join("kuryr.conf");
    let text = format!(
        "[DEFAULT]\n\
         state_path = {state}\n\
         # The reconciler would judge the ports of the other tests running on this host.\n\
         reconcile_interval = 0\n\
         {default}\n\n\
         [neutron]\n\
         auth_url = {}\n\
         auth_type = password\n\
         username = {}\n\
         user_domain_name = {}\n\
         password = {password}\n\
         project_name = {}\n\
         project_domain_name = {}\n\
         region_name = {}\n\
         {neutron}\n",
        env("OS_AUTH_URL"),
        env("OS_USERNAME"),
        env("OS_USER_DOMAIN_NAME"),
        env("OS_PROJECT_NAME"),
        env("OS_PROJECT_DOMAIN_NAME"),
        env("OS_REGION_NAME"),
        state = dir.join("state").display(),
    );
    // It holds a password: readable by its owner only.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap();
    path
}

/// `kuryr --config-file conf ...`, with no `OS_*` variable and no `KURYR_LOG`: the
/// credentials come from the file only, and the log level from the command line only.
fn kuryr(conf: &Path) -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_kuryr")), conf)
}

/// [`kuryr`] with only the capabilities of `bounding` (a setpriv list such as
/// `-all,+net_admin`), nothing inheritable and no way to gain more, as a unit runs it.
fn kuryr_with_capabilities(conf: &Path, bounding: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--bounding-set",
        bounding,
        "--inh-caps",
        "-all",
        "--no-new-privs",
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_kuryr"));
    configured(cmd, conf)
}

fn configured(mut cmd: Command, conf: &Path) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("OS_") || k == "KURYR_CONFIG_FILE" || k == "KURYR_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config-file").arg(conf);
    cmd
}

/// Standard output and standard error together.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running `kuryr serve` whose standard error (its log) goes to a file; stopped with
/// SIGTERM, then killed if it lingers, when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    admin: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Spawn `kuryr [global] serve` on sockets in `dir`; does not wait.
    fn spawn(dir: &Path, conf: &Path, test: &str, global: &[&str]) -> Daemon {
        Self::spawn_command(kuryr(conf), dir, test, global)
    }

    /// [`Daemon::spawn`] of `command`, a [`kuryr`] command line.
    fn spawn_command(mut command: Command, dir: &Path, test: &str, global: &[&str]) -> Daemon {
        let name = plugin_name(test);
        let socket = dir.join(format!("{name}.sock"));
        let admin = dir.join(format!("{name}_manage.sock"));
        let log = dir.join("kuryr.log");
        let child = command
            .args(global)
            .arg("serve")
            .arg("--plugin-name")
            .arg(&name)
            .arg("--socket")
            .arg(&socket)
            .arg("--admin-socket")
            .arg(&admin)
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .expect("start kuryr serve");
        Daemon {
            child,
            socket,
            admin,
            log,
        }
    }

    /// Spawn and wait until both sockets answer.
    fn start(dir: &Path, conf: &Path, test: &str, global: &[&str]) -> Daemon {
        Self::started(Self::spawn(dir, conf, test, global))
    }

    /// Wait until both sockets of `daemon` answer.
    fn started(mut daemon: Daemon) -> Daemon {
        let deadline = Instant::now() + START_WITHIN;
        while UnixStream::connect(&daemon.socket).is_err()
            || UnixStream::connect(&daemon.admin).is_err()
        {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "kuryr serve exited ({status}) before listening:\n{}",
                    daemon.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "kuryr serve did not listen on {:?} and {:?} within {START_WITHIN:?}:\n{}",
                daemon.socket,
                daemon.admin,
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status of a daemon expected to stop by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kuryr serve still runs after {START_WITHIN:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as a service manager stops it; the whole log once it has exited.
    fn stop(mut self) -> String {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + START_WITHIN;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.admin);
    }
}

/// POST a JSON body over a plugin socket as Docker does; the status and the body.
fn plugin_call(socket: &Path, path: &str, body: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the plugin socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    (
        status,
        raw.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

/// A plugin call that must succeed; the first call may wait for the daemon's Neutron probe.
fn plugin_ok(socket: &Path, path: &str, body: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = plugin_call(socket, path, body);
        if status == 200 {
            return serde_json::from_str(&answer).unwrap();
        }
        // 503: Neutron not usable yet for this daemon; anything else is a failure.
        assert!(
            status == 503 && Instant::now() < deadline,
            "{path} {body} answered {status}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A 64-hex Docker network id unique to this process and moment.
fn docker_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut id = format!("{nanos:016x}{:08x}", std::process::id()).repeat(3);
    id.truncate(64);
    id
}

/// This process's effective gid: the group a socket gets without `socket_group`.
fn own_gid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Gid:"))
        .expect("a Gid: line in /proc/self/status");
    // Gid: real effective saved filesystem
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Groups of /etc/group other than this process's own, as (name, gid), well-known first.
fn other_groups() -> Vec<(String, u32)> {
    let own = own_gid();
    let mut groups: Vec<(String, u32)> = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_owned();
            let gid = f.nth(1)?.parse().ok()?;
            Some((name, gid))
        })
        .filter(|(_, gid)| *gid != own)
        .collect();
    let rank = |name: &str| {
        ["daemon", "nogroup", "adm", "staff"]
            .iter()
            .position(|n| *n == name)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by_key(|(name, _)| rank(name));
    assert!(
        groups.len() >= 2,
        "this test needs two groups in /etc/group besides gid {own} (e.g. daemon, nogroup); \
         create them with groupadd"
    );
    groups
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn gid(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().gid()
}

#[test]
fn plugin_socket_is_0660_and_admin_socket_0600() {
    let dir = tmpdir("modes");
    let conf = write_conf(dir.path(), &env("OS_PASSWORD"), "", "");
    let daemon = Daemon::start(dir.path(), &conf, "modes", &[]);
    assert_eq!(
        mode(&daemon.socket),
        0o660,
        "the plugin socket: owner and group only, never world-writable"
    );
    assert_eq!(mode(&daemon.admin), 0o600, "the admin socket: owner only");
    // Without socket_group both keep the daemon's own group.
    assert_eq!(gid(&daemon.socket), own_gid());
    assert_eq!(gid(&daemon.admin), own_gid());
    let (status, body) = plugin_call(&daemon.socket, "/Plugin.Activate", "");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"Implements":["NetworkDriver","IpamDriver"]}"#)
    );
    let log = daemon.stop();
    assert!(log.contains("kuryr serving"), "{log}");
}

#[test]
fn socket_group_by_name_and_by_gid() {
    let groups = other_groups();
    let (by_name, name_gid) = groups[0].clone();
    let (_, numeric) = groups[1].clone();
    let dir = tmpdir("group-name");
    let conf = write_conf(
        dir.path(),
        &env("OS_PASSWORD"),
        &format!("socket_group = {by_name}"),
        "",
    );
    let named = Daemon::start(dir.path(), &conf, "group-name", &[]);
    let dir = tmpdir("group-gid");
    let conf = write_conf(
        dir.path(),
        &env("OS_PASSWORD"),
        &format!("socket_group = {numeric}"),
        "",
    );
    let numbered = Daemon::start(dir.path(), &conf, "group-gid", &[]);

    assert_eq!(gid(&named.socket), name_gid, "socket_group = {by_name}");
    assert_eq!(gid(&numbered.socket), numeric, "socket_group = {numeric}");
    for daemon in [&named, &numbered] {
        assert_eq!(
            mode(&daemon.socket),
            0o660,
            "the group does not widen the mode"
        );
        // The admin socket creates and deletes ports: it stays the daemon's alone.
        assert_eq!(mode(&daemon.admin), 0o600);
        assert_eq!(gid(&daemon.admin), own_gid());
        assert!(
            !daemon
                .log()
                .contains("unknown option [DEFAULT] socket_group"),
            "socket_group is a known option:\n{}",
            daemon.log()
        );
    }
}

/// The daemon runs with CAP_NET_ADMIN alone (the Docker tests run it so); a socket group it
/// is not in takes CAP_CHOWN as well, and without it the daemon stops saying so.
#[test]
fn socket_group_takes_cap_chown_and_nothing_else() {
    let (group, group_gid) = other_groups()[0].clone();
    let dir = tmpdir("caps-chown");
    let conf = write_conf(
        dir.path(),
        &env("OS_PASSWORD"),
        &format!("socket_group = {group}"),
        "",
    );
    let mut refused = Daemon::spawn_command(
        kuryr_with_capabilities(&conf, "-all,+net_admin"),
        dir.path(),
        "caps-chown",
        &[],
    );
    let status = refused.wait_exit();
    let log = refused.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("takes CAP_CHOWN"), "{log}");
    assert!(
        log.contains(&format!("socket_group (gid {group_gid})")),
        "{log}"
    );
    assert!(!refused.socket.exists(), "no socket is left behind");
    drop(refused);

    let dir = tmpdir("caps-chown-ok");
    let conf = write_conf(
        dir.path(),
        &env("OS_PASSWORD"),
        &format!("socket_group = {group}"),
        "",
    );
    let daemon = Daemon::started(Daemon::spawn_command(
        kuryr_with_capabilities(&conf, "-all,+net_admin,+chown"),
        dir.path(),
        "caps-chown-ok",
        &[],
    ));
    assert_eq!(gid(&daemon.socket), group_gid, "socket_group = {group}");
    let (status, body) = plugin_call(&daemon.socket, "/Plugin.Activate", "");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn unknown_socket_group_stops_the_daemon_naming_the_option() {
    let dir = tmpdir("group-none");
    let group = format!("kuryr-no-such-group-{}", std::process::id());
    let conf = write_conf(
        dir.path(),
        &env("OS_PASSWORD"),
        &format!("socket_group = {group}"),
        "",
    );
    let mut daemon = Daemon::spawn(dir.path(), &conf, "group-none", &[]);
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(
        !status.success(),
        "a group that does not exist is fatal: {log}"
    );
    assert!(
        log.contains(&format!("[DEFAULT] socket_group = {group}")),
        "the error names the option and the group: {log}"
    );
    assert!(log.contains("no such group"), "{log}");
    assert!(!daemon.socket.exists(), "no socket is left behind");
}

/// A TCP relay in front of Neutron that keeps every byte kuryr sends it: the only way to
/// see the tokens kuryr really used (Neutron does not tell, and each token request gives
/// another token).
struct Recorder {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let neutron = url::Url::parse(&env("KURYR_STACK_NEUTRON_URL")).unwrap();
        let upstream = format!(
            "{}:{}",
            neutron.host_str().unwrap(),
            neutron.port_or_known_default().unwrap()
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        // Lives as long as the test process; nothing else listens on its port.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let record = record.clone();
                std::thread::spawn(move || relay(c, s, Some(record)));
                std::thread::spawn(move || relay(server, client, None));
            }
        });
        Recorder { port, sent }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every `X-Auth-Token` value sent so far.
    fn tokens(&self) -> Vec<String> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned();
        let mut tokens: Vec<String> = sent
            .split("\r\n")
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-auth-token")
                    .then(|| value.trim().to_owned())
            })
            .collect();
        tokens.sort();
        tokens.dedup();
        tokens
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(record) = &record {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A token Keystone issues now for the same credentials. Its value is of no use (every
/// request gets another one), but its first characters are: a Fernet token starts with
/// its version and issue time, so every token of these weeks starts the same way.
fn token_prefix() -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = runtime.block_on(async {
        let auth = kuryr_openstack::auth::KeystoneAuth::new(
            &env("OS_AUTH_URL"),
            kuryr_openstack::auth::Credentials::Password {
                user: kuryr_openstack::auth::NamedRef::Name {
                    name: env("OS_USERNAME"),
                    domain: kuryr_openstack::auth::DomainRef::Name(env("OS_USER_DOMAIN_NAME")),
                },
                password: env("OS_PASSWORD").into(),
            },
            kuryr_openstack::auth::Scope::Project(kuryr_openstack::auth::NamedRef::Name {
                name: env("OS_PROJECT_NAME"),
                domain: kuryr_openstack::auth::DomainRef::Name(env("OS_PROJECT_DOMAIN_NAME")),
            }),
        )
        .unwrap();
        let session = kuryr_openstack::Session::new(
            kuryr_openstack::AuthMethod::Keystone(auth),
            kuryr_openstack::HttpOptions::default(),
        )
        .unwrap();
        session.token().await.expect("a token from Keystone")
    });
    let value = token.secret();
    assert!(value.len() > 32, "a token of {} characters", value.len());
    value[..8].to_owned()
}

/// `haystack` holds none of the secrets; `what` says where it came from.
fn assert_no_secret(what: &str, haystack: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        assert!(
            !haystack.contains(secret),
            "{what} holds the {name}:\n{haystack}"
        );
    }
    for line in haystack.lines() {
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.contains("x-auth-token:") && !lower.contains("x-subject-token:"),
            "{what} shows a token header: {line}"
        );
    }
}

/// The plugin calls that remove what a test made in Neutron, sent when it fails half-way
/// (before the daemon stops: declare it after the daemon).
struct Undo {
    socket: PathBuf,
    calls: Vec<(&'static str, String)>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        for (path, body) in &self.calls {
            let _ = plugin_call(&self.socket, path, body);
        }
    }
}

#[test]
fn no_secret_in_debug_logs_doctor_or_stats() {
    let password = env("OS_PASSWORD");
    let recorder = Recorder::start();
    let dir = tmpdir("secrets");
    // Neutron through the recorder, to learn the tokens kuryr sends.
    let conf = write_conf(
        dir.path(),
        &password,
        "",
        &format!("endpoint_override = {}", recorder.url()),
    );
    let daemon = Daemon::start(dir.path(), &conf, "secrets", &["--debug"]);

    // Keystone auth and Neutron requests, as Docker's `network create` and `rm` make them.
    let cidr_block = std::process::id() % 250;
    let cidr = format!("10.252.{cidr_block}.0/24");
    let pool = plugin_ok(
        &daemon.socket,
        "/IpamDriver.RequestPool",
        &format!(
            r#"{{"AddressSpace": "", "Pool": "{cidr}", "SubPool": "", "Options": {{}}, "V6": false}}"#
        ),
    );
    let pool_id = pool["PoolID"].as_str().unwrap().to_owned();
    let net = docker_id();
    // Ready before the create: one that Neutron made but answered badly is undone too.
    let mut undo = Undo {
        socket: daemon.socket.clone(),
        calls: vec![
            (
                "/NetworkDriver.DeleteNetwork",
                format!(r#"{{"NetworkID": "{net}"}}"#),
            ),
            (
                "/IpamDriver.ReleasePool",
                format!(r#"{{"PoolID": "{pool_id}"}}"#),
            ),
        ],
    };
    plugin_ok(
        &daemon.socket,
        "/NetworkDriver.CreateNetwork",
        &format!(
            r#"{{"NetworkID": "{net}", "Options": {{}}, "IPv4Data": [{{"AddressSpace": "", "Pool": "{cidr}", "Gateway": "10.252.{cidr_block}.1/24"}}], "IPv6Data": []}}"#
        ),
    );
    while let Some((path, body)) = undo.calls.first().cloned() {
        plugin_ok(&daemon.socket, path, &body);
        undo.calls.remove(0);
    }

    let stats_json = kuryr(&conf)
        .args(["stats", "--json", "--admin-socket"])
        .arg(&daemon.admin)
        .output()
        .unwrap();
    assert!(stats_json.status.success(), "{}", text(&stats_json));
    let report: serde_json::Value = serde_json::from_slice(&stats_json.stdout).unwrap();
    assert!(
        report.to_string().contains("CreateNetwork"),
        "the stats cover the calls just made: {report}"
    );
    let stats_table = kuryr(&conf)
        .args(["stats", "--admin-socket"])
        .arg(&daemon.admin)
        .output()
        .unwrap();
    assert!(stats_table.status.success(), "{}", text(&stats_table));
    let doctor = kuryr(&conf).args(["--debug", "doctor"]).output().unwrap();
    assert!(
        text(&doctor).contains("kuryr doctor: all checks passed"),
        "{}",
        text(&doctor)
    );
    let log = daemon.stop();

    // Not vacuous: the daemon logged at debug level, authenticated, and its Neutron
    // requests (and doctor's) went through the recorder with their tokens.
    assert!(log.contains("DEBUG"), "debug logging is on:\n{log}");
    assert!(log.contains("authenticated with Keystone"), "{log}");
    let tokens = recorder.tokens();
    assert!(
        !tokens.is_empty(),
        "no X-Auth-Token reached Neutron through the recorder; kuryr's log:\n{log}"
    );
    let prefix = token_prefix();
    assert!(
        tokens.iter().all(|t| t.starts_with(&prefix)),
        "every token starts as Keystone's tokens now do ({prefix})"
    );
    let mut secrets = vec![("password", password.as_str()), ("token prefix", &prefix)];
    secrets.extend(tokens.iter().map(|t| ("token", t.as_str())));
    assert_no_secret("the daemon's debug log", &log, &secrets);
    assert_no_secret("kuryr doctor --debug", &text(&doctor), &secrets);
    assert_no_secret("kuryr stats --json", &text(&stats_json), &secrets);
    assert_no_secret("kuryr stats", &text(&stats_table), &secrets);
}

#[test]
fn wrong_password_error_names_the_user_not_the_password() {
    let wrong = format!("wrong-{}-Pa55w0rd", std::process::id());
    let user = env("OS_USERNAME");
    let dir = tmpdir("badpw");
    let conf = write_conf(dir.path(), &wrong, "", "");
    let daemon = Daemon::start(dir.path(), &conf, "badpw", &["--debug"]);
    // A call that needs Neutron is answered with why it cannot be used, once the daemon's
    // first Keystone request has been refused (on a busy host that may outlast one call).
    let refused = format!("refused the credentials of user {user}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = plugin_call(
            &daemon.socket,
            "/IpamDriver.RequestPool",
            r#"{"AddressSpace": "", "Pool": "10.252.255.0/24", "SubPool": "", "Options": {}, "V6": false}"#,
        );
        assert_eq!(status, 503, "{answer}");
        assert!(
            !answer.contains(&wrong),
            "the error holds the password: {answer}"
        );
        if answer.contains(&refused) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the error never named the user ({refused:?}): {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let doctor = kuryr(&conf).args(["--debug", "doctor"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1), "{}", text(&doctor));
    assert!(text(&doctor).contains(&refused), "{}", text(&doctor));
    assert!(!text(&doctor).contains(&wrong), "{}", text(&doctor));

    let log = daemon.stop();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&refused)),
        "the log warns, naming the user:\n{log}"
    );
    assert!(!log.contains(&wrong), "the log holds the password:\n{log}");
}

/// The log lines before the daemon says it serves: what it said at start.
fn start_lines(log: &str) -> Vec<&str> {
    log.lines()
        .take_while(|l| !l.contains("kuryr serving"))
        .collect()
}

#[test]
fn insecure_tls_is_warned_about_at_start() {
    let warning = |l: &&str| {
        l.contains("WARN") && l.contains("insecure = true") && l.contains("verification is off")
    };
    let dir = tmpdir("insecure");
    let conf = write_conf(dir.path(), &env("OS_PASSWORD"), "", "insecure = true");
    let daemon = Daemon::start(dir.path(), &conf, "insecure", &[]);
    let log = daemon.stop();
    assert!(log.contains("kuryr serving"), "{log}");
    assert!(
        start_lines(&log).iter().any(warning),
        "a warning naming insecure = true, before the daemon serves:\n{log}"
    );

    // Verification on (the default): no such warning.
    let dir = tmpdir("secure");
    let conf = write_conf(dir.path(), &env("OS_PASSWORD"), "", "");
    let daemon = Daemon::start(dir.path(), &conf, "secure", &[]);
    let log = daemon.stop();
    assert!(log.contains("kuryr serving"), "{log}");
    assert!(!log.lines().any(|l| warning(&l)), "{log}");
}
