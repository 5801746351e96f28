//! What the Docker tests share: a `kuryr serve` per test under its own plugin name, the
//! real Docker engine (`scripts/docker up`) and Neutron (`scripts/stack up`), and the
//! clean-up of whatever a test made, failed or not.

// Test helpers fail by panicking; not every test file uses every helper.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kuryr::config::{Config, LoadOptions};
use kuryr::openstack::neutron_client;
use kuryr_openstack::neutron::{
    Filters, FixedIp, Network, NetworkSpec, Neutron, Port, PortSpec, RouterInterface, Subnet,
    SubnetPool, SubnetPoolSpec, SubnetSpec,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Environment

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn docker_bin() -> String {
    std::env::var("KURYR_DOCKER").unwrap_or_else(|_| "/usr/bin/docker".into())
}

pub fn image() -> String {
    std::env::var("KURYR_TEST_IMAGE").unwrap_or_else(|_| "kuryr/busybox:latest".into())
}

/// kuryr.conf of the local stack.
pub fn config_file() -> PathBuf {
    let dir = std::env::var("KURYR_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/stack"));
    let file = dir.join("kuryr.conf");
    assert!(
        file.is_file(),
        "{} is missing: these tests need the local OpenStack. Run `scripts/test` (which \
         starts it), or `scripts/stack up && eval \"$(scripts/stack env)\"` first",
        file.display()
    );
    file
}

/// kuryr.conf of the local stack with port pools off: the daemon most tests start, since
/// they follow each container's own Neutron port on the usual path (what a pool miss takes
/// too). The default configuration, pools on, is tested in `pools.rs`.
pub fn usual_path_config_file() -> PathBuf {
    // Written once per test binary: its tests start daemons in parallel.
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        stack_config_with(
            &format!("kuryr-usual-path-{}", std::process::id()),
            "[vif_pool]\nenabled = false",
        )
    })
    .clone()
}

/// The stack's kuryr.conf with `extra` appended (a later section's options override the
/// same options above), written to `<temp dir>/<name>.conf`.
///
/// Its networks go on no router: Neutron refuses two overlapping subnets on one router, and
/// the suites running side by side reuse blocks; `external.rs` tests the stack's router.
pub fn stack_config_with(name: &str, extra: &str) -> PathBuf {
    let base = std::fs::read_to_string(config_file()).expect("read the stack's kuryr.conf");
    let file = std::env::temp_dir().join(format!("{name}.conf"));
    write_private(
        &file,
        &format!("{base}\n[neutron]\ndefault_router =\n\n{extra}\n"),
    );
    file
}

/// Writes a file only its owner may read (kuryr.conf holds credentials).
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

pub fn config() -> Config {
    Config::load(&LoadOptions {
        config_files: vec![config_file()],
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("loading {}: {e}", config_file().display()))
}

/// Docker answers and has the test image; otherwise every test fails saying what to run.
pub fn check_docker() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let bin = docker_bin();
        let info = Command::new(&bin)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        if !info.status.success() {
            return Err(format!(
                "`{bin} info` failed ({}): {}",
                info.status,
                String::from_utf8_lossy(&info.stderr).trim()
            ));
        }
        let img = Command::new(&bin)
            .args(["image", "inspect", "--format", "{{.Id}}", &image()])
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}"))?;
        if !img.status.success() {
            return Err(format!("the test image {} is missing", image()));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!(
            "Docker is not usable: {e}. These tests need a Docker engine: run `scripts/docker \
             up && eval \"$(scripts/docker env)\"` (scripts/test does it)"
        );
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// Whether a network interface of that name exists in the host's namespace.
pub fn host_link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// A libnetwork call POSTed over a plugin socket as Docker sends it, for the steps of a
/// container's life a test must stop between; the status and the JSON answer.
pub fn plugin_call(socket: &std::path::Path, path: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to the plugin socket {}: {e}", socket.display()));
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
    let answer = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(answer).unwrap_or(Value::Null))
}

/// Whether `ip` is inside `cidr` (both IPv4 or both IPv6).
pub fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let len: u32 = len.parse().unwrap();
    match (
        ip.parse::<IpAddr>().unwrap(),
        net.parse::<IpAddr>().unwrap(),
    ) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The Neutron tags that carry a Docker id (network or endpoint).
pub fn id_tags(docker_id: &str) -> [String; 2] {
    assert_eq!(docker_id.len(), 64, "a Docker id: {docker_id:?}");
    [
        format!("kuryr.net.uuid.lh:{}", &docker_id[..32]),
        format!("kuryr.net.uuid.uh:{}", &docker_id[32..]),
    ]
}

pub fn has_kuryr_tag(tags: &[String]) -> bool {
    tags.iter().any(|t| t.starts_with("kuryr."))
}

/// Poll `f` every 200 ms until it gives `Some`, for at most 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out after 15 s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Docker

pub async fn docker(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(docker_bin())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", docker_bin()))
    })
    .await
    .unwrap()
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// The daemon and what a test made

/// A `kuryr serve` child, stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let started = Instant::now();
            while matches!(self.child.try_wait(), Ok(None))
                && started.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // kuryr removes its socket on SIGTERM; after a SIGKILL it is left behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `kuryr serve --plugin-name <plugin>`, logging (appending) to `log`.
pub fn spawn_daemon(plugin: &str, log: &std::path::Path) -> Daemon {
    let socket = PathBuf::from(format!("/run/docker/plugins/{plugin}.sock"));
    let _ = std::fs::remove_file(&socket);
    let stderr = File::options().create(true).append(true).open(log).unwrap();
    let child = with_daemon_capabilities()
        .arg("--config-file")
        .arg(usual_path_config_file())
        .args(["serve", "--plugin-name", plugin])
        .env("KURYR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start kuryr serve");
    Daemon { child, socket }
}

/// `kuryr --config-file <config> serve --plugin-name <plugin> --socket <socket>`, with `--tcp`
/// also on the config's `[DEFAULT] kuryr_uri`, logging (appending) to `log`.
/// The capabilities `kuryr serve` needs, and all it gets here: CAP_NET_ADMIN for netlink
/// (veth pairs, addresses, routes, MTUs, macvlan and VLAN links, offloads). It still runs as
/// uid 0, the owner of the sockets and folders it uses (Docker's plugin folder, Open vSwitch's
/// `db.sock`, Docker's API socket, its state under /var/lib/kuryr), so it needs neither
/// CAP_DAC_OVERRIDE nor anything else; `[DEFAULT] socket_group` adds CAP_CHOWN when the group
/// is not one of the daemon's own.
pub const DAEMON_CAPABILITIES: &str = "-all,+net_admin";

/// `kuryr` started through `setpriv` with [`DAEMON_CAPABILITIES`] as its bounding set,
/// nothing inheritable and no way to gain more, as a packaged unit runs it.
pub fn with_daemon_capabilities() -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--bounding-set", DAEMON_CAPABILITIES])
        .args(["--inh-caps", "-all", "--no-new-privs", "--"])
        .arg(env!("CARGO_BIN_EXE_kuryr"));
    command
}

pub fn spawn_daemon_with(
    plugin: &str,
    log: &std::path::Path,
    config: &std::path::Path,
    socket: &std::path::Path,
    tcp: bool,
) -> Daemon {
    spawn_daemon_with_env(plugin, log, config, socket, tcp, &[])
}

/// [`spawn_daemon_with`], with these variables in the daemon's environment.
pub fn spawn_daemon_with_env(
    plugin: &str,
    log: &std::path::Path,
    config: &std::path::Path,
    socket: &std::path::Path,
    tcp: bool,
    env: &[(&str, &str)],
) -> Daemon {
    let _ = std::fs::remove_file(socket);
    let stderr = File::options().create(true).append(true).open(log).unwrap();
    let mut command = with_daemon_capabilities();
    command
        .arg("--config-file")
        .arg(config)
        .args(["serve", "--plugin-name", plugin, "--socket"])
        .arg(socket);
    if tcp {
        command.arg("--tcp");
    }
    let child = command
        .env("KURYR_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start kuryr serve");
    Daemon {
        child,
        socket: socket.to_owned(),
    }
}

/// One test's kuryr plugin, Neutron client and the things to remove at the end.
pub struct Kuryr {
    /// The plugin name: `-d` and `--ipam-driver` of the Docker networks.
    pub plugin: String,
    /// Prefix of every Docker and Neutron name this test makes (`kt-<pid>-<test>`).
    pub prefix: String,
    pub log: PathBuf,
    pub neutron: Neutron,
    pub daemon: Mutex<Option<Daemon>>,
    pub containers: Mutex<Vec<String>>,
    pub networks: Mutex<Vec<String>>,
    pub neutron_ports: Mutex<Vec<String>>,
    pub neutron_networks: Mutex<Vec<String>>,
}

/// Run a test body with its own kuryr daemon; whatever the body made is removed afterwards,
/// also when it panicked (the panic is then re-raised).
pub async fn with_kuryr<F, Fut>(test: &str, cidrs: &[&str], body: F)
where
    F: FnOnce(Arc<Kuryr>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    check_docker();
    let k = Arc::new(Kuryr::start(test).await);
    k.purge_leftovers(cidrs).await;
    let outcome = tokio::spawn(body(k.clone())).await;
    k.cleanup().await;
    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_file(&k.log);
        }
        Err(e) if e.is_panic() => {
            eprintln!("--- kuryr serve log ---\n{}", k.log_text());
            std::panic::resume_unwind(e.into_panic())
        }
        Err(e) => panic!("test task: {e}"),
    }
}

/// Each CIDR belongs to one test of a suite: the tests of a suite run at once, and a test
/// purges what earlier runs left in its CIDRs, which would remove another test's network.
/// A CIDR claimed twice fails at once, naming both tests, instead of failing by chance.
fn claim_cidrs(test: &str, cidrs: &[&str]) {
    static CLAIMED: OnceLock<Mutex<std::collections::HashMap<String, String>>> = OnceLock::new();
    let mut claimed = CLAIMED.get_or_init(Default::default).lock().unwrap();
    for cidr in cidrs {
        if let Some(owner) = claimed.insert((*cidr).to_owned(), test.to_owned()) {
            assert_eq!(
                owner, test,
                "tests {owner} and {test} of this suite both use {cidr}; give one of them a CIDR of its own"
            );
        }
    }
}

/// `with_kuryr` without a daemon: the body starts its own (`serve_with`).
pub async fn with_kuryr_unstarted<F, Fut>(test: &str, cidrs: &[&str], body: F)
where
    F: FnOnce(Arc<Kuryr>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    check_docker();
    let k = Arc::new(Kuryr::without_daemon(test).await);
    k.purge_leftovers(cidrs).await;
    let outcome = tokio::spawn(body(k.clone())).await;
    k.cleanup().await;
    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_file(&k.log);
        }
        Err(e) if e.is_panic() => {
            eprintln!("--- kuryr serve log ---\n{}", k.log_text());
            std::panic::resume_unwind(e.into_panic())
        }
        Err(e) => panic!("test task: {e}"),
    }
}

impl Kuryr {
    /// Whether `container` gets an answer to ping from `ip` within `within` (one ping a
    /// second: the agent installs the flows a moment after a port turns ACTIVE).
    pub async fn pings(&self, container: &str, ip: &str, within: Duration) -> bool {
        let started = Instant::now();
        loop {
            let out = self
                .docker(&["exec", container, "ping", "-c", "1", "-W", "1", ip])
                .await;
            if out.status.success() {
                return true;
            }
            if started.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn start(test: &str) -> Kuryr {
        let config = config();
        let neutron = neutron_client(&config.openstack).unwrap();
        let pid = std::process::id();
        let plugin = format!("kuryr-t{pid}-{test}");
        let log = std::env::temp_dir().join(format!("{plugin}.log"));
        let _ = std::fs::remove_file(&log);
        let k = Kuryr {
            daemon: Mutex::new(Some(spawn_daemon(&plugin, &log))),
            plugin,
            prefix: format!("kt-{pid}-{test}"),
            log,
            neutron,
            containers: Mutex::default(),
            networks: Mutex::default(),
            neutron_ports: Mutex::default(),
            neutron_networks: Mutex::default(),
        };
        k.wait_ready(0).await;
        k
    }

    /// Like `start`, but no daemon runs yet: the test starts its own (`serve_with`), e.g. with
    /// another kuryr.conf or socket.
    pub async fn without_daemon(test: &str) -> Kuryr {
        let config = config();
        let neutron = neutron_client(&config.openstack).unwrap();
        let pid = std::process::id();
        let plugin = format!("kuryr-t{pid}-{test}");
        let log = std::env::temp_dir().join(format!("{plugin}.log"));
        let _ = std::fs::remove_file(&log);
        Kuryr {
            daemon: Mutex::new(None),
            plugin,
            prefix: format!("kt-{pid}-{test}"),
            log,
            neutron,
            containers: Mutex::default(),
            networks: Mutex::default(),
            neutron_ports: Mutex::default(),
            neutron_networks: Mutex::default(),
        }
    }

    /// Start `kuryr serve` under this test's plugin name with `spawn_daemon_with`, stopping
    /// the daemon that ran before, and wait until it finds Neutron usable.
    pub async fn serve_with(&self, config: &std::path::Path, socket: &std::path::Path, tcp: bool) {
        self.serve_with_env(config, socket, tcp, &[]).await;
    }

    /// [`Kuryr::serve_with`], with these variables in the daemon's environment.
    pub async fn serve_with_env(
        &self,
        config: &std::path::Path,
        socket: &std::path::Path,
        tcp: bool,
        env: &[(&str, &str)],
    ) {
        self.stop_daemon().await;
        let from = self.log_text().len();
        *self.daemon.lock().unwrap() = Some(spawn_daemon_with_env(
            &self.plugin,
            &self.log,
            config,
            socket,
            tcp,
            env,
        ));
        self.wait_ready(from).await;
    }

    /// `kuryr gc --json ARGS` against this test's daemon; its report.
    pub async fn gc(&self, args: &[&str]) -> Value {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kuryr"));
        command
            .arg("--config-file")
            .arg(config_file())
            .args(["gc", "--json", "--plugin-name", &self.plugin])
            .args(args)
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("run kuryr gc");
        assert!(
            out.status.success(),
            "kuryr gc {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kuryr gc --json prints JSON")
    }

    /// Stop the daemon (SIGTERM, then SIGKILL after 5 s), if one runs.
    pub async fn stop_daemon(&self) {
        let old = self.daemon.lock().unwrap().take();
        tokio::task::spawn_blocking(move || drop(old))
            .await
            .unwrap();
    }

    /// The pid of this test's daemon, if one was started.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.lock().unwrap().as_ref().map(|d| d.child.id())
    }

    /// Whether this test's daemon is running.
    pub fn daemon_running(&self) -> bool {
        self.daemon
            .lock()
            .unwrap()
            .as_mut()
            .is_some_and(|d| matches!(d.child.try_wait(), Ok(None)))
    }

    /// Calls that need Neutron are refused until the daemon has found it usable: wait for
    /// it to say so in its log (after `from` bytes of it).
    pub async fn wait_ready(&self, from: usize) {
        let started = Instant::now();
        loop {
            let log = self.log_text();
            if log.get(from..).unwrap_or("").contains("Neutron is usable") {
                return;
            }
            let exited = self
                .daemon
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|d| d.child.try_wait().ok().flatten());
            assert!(exited.is_none(), "kuryr serve exited ({exited:?}):\n{log}");
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "kuryr serve did not find Neutron usable within 30 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the daemon (SIGTERM) and start a new one under the same plugin name.
    pub async fn restart(&self) {
        let old = self.daemon.lock().unwrap().take();
        tokio::task::spawn_blocking(move || drop(old))
            .await
            .unwrap();
        let from = self.log_text().len();
        *self.daemon.lock().unwrap() = Some(spawn_daemon(&self.plugin, &self.log));
        self.wait_ready(from).await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Run docker; the output, whether it succeeded or not.
    pub async fn docker(&self, args: &[&str]) -> Output {
        docker(strings(args)).await
    }

    /// Run docker, which must succeed; its trimmed standard output.
    pub async fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).await;
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n--- kuryr serve log ---\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker network create -d <plugin> --ipam-driver <plugin> <extra> <name>`; its id.
    pub async fn create_network(&self, name: &str, extra: &[&str]) -> String {
        self.create_network_on(&self.plugin, name, extra).await
    }

    /// [`Kuryr::create_network`] with another driver name (a managed plugin's `NAME:TAG`).
    pub async fn create_network_on(&self, driver: &str, name: &str, extra: &[&str]) -> String {
        self.networks.lock().unwrap().push(name.to_owned());
        let mut args = vec!["network", "create", "-d", driver, "--ipam-driver", driver];
        args.extend_from_slice(extra);
        args.push(name);
        let id = self.docker_ok(&args).await;
        assert_eq!(id.len(), 64, "a network id: {id:?}");
        id
    }

    pub async fn remove_network(&self, name: &str) {
        self.docker_ok(&["network", "rm", name]).await;
        self.networks.lock().unwrap().retain(|n| n != name);
    }

    /// `docker run -d --name <name> <extra> <image> sleep 600`.
    pub async fn run(&self, name: &str, extra: &[&str]) {
        self.containers.lock().unwrap().push(name.to_owned());
        let image = image();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&image, "sleep", "600"]);
        self.docker_ok(&args).await;
    }

    pub async fn remove_container(&self, name: &str) {
        self.docker_ok(&["rm", "-f", name]).await;
        self.containers.lock().unwrap().retain(|n| n != name);
    }

    /// What Docker says about a container's attachment to a network.
    pub async fn attachment(&self, container: &str, network: &str) -> Attachment {
        let text = self
            .docker_ok(&[
                "inspect",
                "--format",
                "{{json .NetworkSettings.Networks}}",
                container,
            ])
            .await;
        let all: Value = serde_json::from_str(&text).unwrap();
        let n = all
            .get(network)
            .unwrap_or_else(|| panic!("{container} is not on {network}: {text}"));
        let s = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
        Attachment {
            endpoint_id: s("EndpointID"),
            ip: s("IPAddress"),
            prefix_len: n["IPPrefixLen"].as_u64().unwrap_or_default(),
            ipv6: s("GlobalIPv6Address"),
            mac: s("MacAddress"),
            gateway: s("Gateway"),
        }
    }

    /// `ip -o addr show` and `ip -o link show` of an interface inside the container.
    pub async fn interface(&self, container: &str, ifname: &str) -> (String, String) {
        let addr = self
            .docker_ok(&["exec", container, "ip", "-o", "addr", "show", ifname])
            .await;
        let link = self
            .docker_ok(&["exec", container, "ip", "-o", "link", "show", ifname])
            .await;
        (addr, link)
    }

    /// The subnet (with its IPAM settings) of a Docker network.
    pub async fn docker_ipam(&self, network: &str) -> Vec<Value> {
        let text = self
            .docker_ok(&[
                "network",
                "inspect",
                "--format",
                "{{json .IPAM.Config}}",
                network,
            ])
            .await;
        serde_json::from_str(&text).unwrap()
    }

    // --- Neutron --------------------------------------------------------------------

    /// The one Neutron network that carries a Docker network's id tags.
    pub async fn network_of(&self, docker_id: &str) -> Network {
        let mut found = self.networks_of(docker_id).await;
        assert_eq!(
            found.len(),
            1,
            "one Neutron network tagged for Docker network {docker_id}: {found:#?}"
        );
        found.remove(0)
    }

    pub async fn networks_of(&self, docker_id: &str) -> Vec<Network> {
        self.neutron
            .networks()
            .list(&Filters::new().tags(id_tags(docker_id)))
            .await
            .unwrap()
    }

    /// The one Neutron port that carries an endpoint's id tags.
    pub async fn port_of(&self, endpoint_id: &str) -> Port {
        let mut found = self.ports_of(endpoint_id).await;
        assert_eq!(
            found.len(),
            1,
            "one Neutron port tagged for endpoint {endpoint_id}: {found:#?}"
        );
        found.remove(0)
    }

    pub async fn ports_of(&self, endpoint_id: &str) -> Vec<Port> {
        self.neutron
            .ports()
            .list(&Filters::new().tags(id_tags(endpoint_id)))
            .await
            .unwrap()
    }

    pub async fn ports_on(&self, network_id: &str) -> Vec<Port> {
        self.neutron
            .ports()
            .list(&Filters::new().eq("network_id", network_id))
            .await
            .unwrap()
    }

    pub async fn subnets_on(&self, network_id: &str) -> Vec<Subnet> {
        self.neutron
            .subnets()
            .list(&Filters::new().eq("network_id", network_id))
            .await
            .unwrap()
    }

    pub async fn pools_named(&self, name: &str) -> Vec<SubnetPool> {
        self.neutron
            .subnetpools()
            .list(&Filters::new().eq("name", name))
            .await
            .unwrap()
    }

    /// A Neutron network made by the test (deleted at the end), with one subnet per CIDR.
    pub async fn neutron_network(&self, name: &str, cidrs: &[&str]) -> (Network, Vec<Subnet>) {
        let net = self
            .neutron
            .networks()
            .create(&NetworkSpec {
                name: Some(name.to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
        self.neutron_networks.lock().unwrap().push(net.id.clone());
        let mut subnets = Vec::new();
        for cidr in cidrs {
            let subnet = self
                .neutron
                .subnets()
                .create(&SubnetSpec {
                    name: Some(format!("{name}-subnet")),
                    network_id: Some(net.id.clone()),
                    ip_version: Some(if cidr.contains(':') { 6 } else { 4 }),
                    cidr: Some((*cidr).to_owned()),
                    enable_dhcp: Some(false),
                    ..Default::default()
                })
                .await
                .unwrap();
            subnets.push(subnet);
        }
        (net, subnets)
    }

    /// A Neutron port made by the test (deleted at the end unless deleted before).
    pub async fn neutron_port(&self, name: &str, subnet: &Subnet, ip: &str) -> Port {
        self.neutron_port_with(name, &[(subnet, ip)]).await
    }

    /// A port the user made with one address on each of `addresses`' subnets (all of one
    /// network); deleted at the end.
    pub async fn neutron_port_with(&self, name: &str, addresses: &[(&Subnet, &str)]) -> Port {
        let port = self
            .neutron
            .ports()
            .create(&PortSpec {
                name: Some(name.to_owned()),
                network_id: Some(addresses[0].0.network_id.clone()),
                fixed_ips: Some(
                    addresses
                        .iter()
                        .map(|(subnet, ip)| FixedIp {
                            subnet_id: subnet.id.clone(),
                            ip_address: (*ip).to_owned(),
                        })
                        .collect(),
                ),
                ..Default::default()
            })
            .await
            .unwrap();
        self.neutron_ports.lock().unwrap().push(port.id.clone());
        port
    }

    /// Resources left by an earlier run of this test that was killed before its clean-up:
    /// networks this file's tests (or kuryr for them) made with these CIDRs, and their pools.
    pub async fn purge_leftovers(&self, cidrs: &[&str]) {
        claim_cidrs(&self.prefix, cidrs);
        for cidr in cidrs {
            let subnets = self
                .neutron
                .subnets()
                .list(&Filters::new().eq("cidr", *cidr))
                .await
                .unwrap();
            for subnet in subnets {
                let Some(net) = self
                    .neutron
                    .networks()
                    .get_opt(&subnet.network_id)
                    .await
                    .unwrap()
                else {
                    continue;
                };
                if !(net.name.starts_with("kuryr-net-") || net.name.starts_with("kt-")) {
                    continue;
                }
                eprintln!(
                    "removing network {} ({}) left by an earlier run",
                    net.id, net.name
                );
                remove_network_and_ports(&self.neutron, &net).await;
            }
            for pool in self.pools_named(&format!("kuryrPool-{cidr}")).await {
                eprintln!("removing subnetpool {} left by an earlier run", pool.id);
                let _ = self.neutron.subnetpools().delete(&pool.id).await;
            }
        }
    }

    /// Remove what the test made, in dependency order, then stop the daemon.
    pub async fn cleanup(&self) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        for c in containers.iter().rev() {
            let _ = self.docker(&["rm", "-f", c]).await;
        }
        // Ports the test made hold addresses of the networks' subnets: they go first.
        let ports = std::mem::take(&mut *self.neutron_ports.lock().unwrap());
        for p in ports {
            let _ = self.neutron.ports().delete(&p).await;
        }
        let networks = std::mem::take(&mut *self.networks.lock().unwrap());
        // Docker forgets a network whose DeleteNetwork finds no plugin: a daemon must be
        // there to remove its Neutron side.
        if !networks.is_empty() && !self.daemon_running() {
            let from = self.log_text().len();
            *self.daemon.lock().unwrap() = Some(spawn_daemon(&self.plugin, &self.log));
            self.wait_ready(from).await;
        }
        for n in networks.iter().rev() {
            let out = self.docker(&["network", "rm", n]).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() && !stderr.contains("No such network") {
                eprintln!("cleanup: docker network rm {n}: {}", stderr.trim());
            }
        }
        let nets = std::mem::take(&mut *self.neutron_networks.lock().unwrap());
        for n in nets {
            let Ok(Some(net)) = self.neutron.networks().get_opt(&n).await else {
                continue;
            };
            remove_network_and_ports(&self.neutron, &net).await;
            if let Ok(Some(_)) = self.neutron.networks().get_opt(&n).await {
                eprintln!("cleanup: network {n} is left");
            }
        }
        let daemon = self.daemon.lock().unwrap().take();
        tokio::task::spawn_blocking(move || drop(daemon))
            .await
            .unwrap();
    }
}

/// Delete a network with its ports: router interfaces are detached (Neutron refuses to
/// delete them as ports), and the floating IPs kuryr gave its Docker network go.
pub async fn remove_network_and_ports(neutron: &Neutron, net: &Network) {
    for port in neutron
        .ports()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap_or_default()
    {
        if port.device_owner.starts_with("network:router_interface") {
            let _ = neutron
                .remove_router_interface(&port.device_id, &RouterInterface::Port(port.id.clone()))
                .await;
        } else {
            let _ = neutron.ports().delete(&port.id).await;
        }
    }
    let lh = net
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("kuryr.net.uuid.lh:"));
    if let Some(lh) = lh {
        for fip in neutron
            .floating_ips()
            .list(&Filters::new())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.description.contains(lh))
        {
            let _ = neutron.floating_ips().delete(&fip.id).await;
        }
    }
    let _ = neutron.networks().delete(&net.id).await;
}

#[derive(Debug)]
pub struct Attachment {
    pub endpoint_id: String,
    pub ip: String,
    pub prefix_len: u64,
    pub ipv6: String,
    pub mac: String,
    pub gateway: String,
}

/// The default IPv4 subnetpool of kuryr.conf (`[neutron] default_subnetpool_v4`), created
/// when missing; never deleted (other tests may use it). Two creators racing keep the one
/// with the smallest id.
pub async fn default_pool(neutron: &Neutron) -> SubnetPool {
    let name = config().neutron.default_subnetpool_v4;
    let api = neutron.subnetpools();
    let list = || async {
        let mut found = api
            .list(&Filters::new().eq("name", name.as_str()))
            .await
            .unwrap();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    };
    let mut found = list().await;
    if found.is_empty() {
        let created = api
            .create(&SubnetPoolSpec {
                name: Some(name.clone()),
                prefixes: Some(vec!["10.240.0.0/16".into()]),
                default_prefixlen: Some(24),
                ..Default::default()
            })
            .await
            .unwrap();
        found = list().await;
        if found.first().is_some_and(|first| first.id != created.id) {
            let _ = api.delete(&created.id).await;
            found.retain(|p| p.id != created.id);
        }
    }
    let pool = found.into_iter().next().unwrap();
    assert_eq!(pool.ip_version, 4, "default pool {name}: {pool:?}");
    assert!(
        pool.default_prefixlen.is_some(),
        "default pool {name} needs a default_prefixlen: {pool:?}"
    );
    pool
}

/// `ovs-vsctl`, which must succeed; its standard output.
pub fn vsctl(args: &[&str]) -> String {
    let out = Command::new("ovs-vsctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("running ovs-vsctl: {e}; these tests need Open vSwitch: run `scripts/stack up`")
        });
    assert!(
        out.status.success(),
        "ovs-vsctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The external_ids of the OVS Interface named `name`.
pub fn external_ids(name: &str) -> serde_json::Map<String, Value> {
    let text = vsctl(&[
        "--format=json",
        "--columns=external_ids",
        "list",
        "Interface",
        name,
    ]);
    let table: Value = serde_json::from_str(&text).unwrap();
    // OVSDB's JSON for a map: ["map", [[k, v], ...]].
    table["data"][0][0][1]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].clone()))
        .collect()
}

pub fn br_int_ports() -> Vec<String> {
    vsctl(&["list-ports", "br-int"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `--ip` and `--ip6` of one container on a user's dual-stack port: the port serves both,
/// twice in a row (so a release gives it back whole), and no other port is made.
pub async fn one_dual_stack_port_serves_ip_and_ip6(k: &Kuryr, cidrs: [&str; 2], ips: [&str; 2]) {
    let [v4, v6] = cidrs;
    let [ip, ip6] = ips;
    let net_name = k.name("net");
    let id = k
        .create_network(&net_name, &["--ipv6", "--subnet", v4, "--subnet", v6])
        .await;
    let net = k.network_of(&id).await;
    let mut subnets = k.subnets_on(&net.id).await;
    subnets.sort_by_key(|s| s.ip_version);
    let user = k
        .neutron_port_with(
            &k.name("user-port"),
            &[(&subnets[0], ip), (&subnets[1], ip6)],
        )
        .await;
    for round in 1..=2 {
        let c = k.name(&format!("c{round}"));
        k.run(&c, &["--net", &net_name, "--ip", ip, "--ip6", ip6])
            .await;
        let a = k.attachment(&c, &net_name).await;
        assert_eq!((a.ip.as_str(), a.ipv6.as_str()), (ip, ip6), "round {round}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(
            port.id, user.id,
            "round {round}: the user's port serves both"
        );
        // Neutron's own ports (the router's interfaces, with the stack's kuryr.conf) aside.
        let others = k
            .ports_on(&net.id)
            .await
            .into_iter()
            .filter(|p| !p.device_owner.starts_with("network:"))
            .count();
        assert_eq!(others, 1, "no other port");
        let (addr, _) = k.interface(&c, "eth0").await;
        assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
        assert!(addr.contains(&format!("inet6 {ip6}/64")), "{addr}");
        k.remove_container(&c).await;
        eventually("the port is given back", || async {
            let p = k.neutron.ports().get(&user.id).await.unwrap();
            p.tags.is_empty().then_some(())
        })
        .await;
    }
    k.neutron.ports().delete(&user.id).await.unwrap();
    k.neutron_ports.lock().unwrap().clear();
    k.remove_network(&net_name).await;
}

/// 64 random bits (the standard library's randomly keyed hasher; no crate for this).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// A number in `0..n`.
pub fn random_below(n: u64) -> u64 {
    random_u64() % n.max(1)
}

/// A random 64-hex Docker id, for calls sent to the plugin socket without Docker.
pub fn random_docker_id() -> String {
    (0..4).map(|_| format!("{:016x}", random_u64())).collect()
}
