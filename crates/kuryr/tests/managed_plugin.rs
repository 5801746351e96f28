//! kuryr as Docker runs it for operators: the managed (v2) plugin and the container image,
//! both built by `scripts/package` from the same static root (scripts/test builds it before
//! this suite: `cargo test -p kuryr --test managed_plugin -- --ignored`), against the real
//! Docker engine, Open vSwitch and Neutron.
//!
//! The plugin is created, set, enabled, disabled and enabled again, upgraded to another
//! build through a registry of its own on loopback (`docker plugin push` / `upgrade`; the
//! machine reaches no other registry) and removed; a network made with `-d <plugin>` keeps
//! its containers talking and serves new ones across each step. The image runs with host
//! networking and CAP_NET_ADMIN as its only capability.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_harness::*;
use serde_json::Value;

const FIRST_PING: Duration = Duration::from_secs(60);
/// Bit 12 of the capability sets in /proc/PID/status.
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_SYS_ADMIN: u64 = 1 << 21;

/// `scripts/package ARGS`; the last line it printed (what it made).
fn package(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("scripts/package"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/package");
    assert!(
        out.status.success(),
        "scripts/package {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A folder holding the kuryr.conf a plugin or the image reads (the stack's, pools off),
/// and a state folder beside it.
fn config_folders(name: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("{name}-host"));
    let _ = std::fs::remove_dir_all(&base);
    let (etc, state) = (base.join("etc"), base.join("state"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let conf = stack_config_with(name, "[vif_pool]\nenabled = false");
    write_private(
        &etc.join("kuryr.conf"),
        &std::fs::read_to_string(&conf).unwrap(),
    );
    (etc, state)
}

/// `docker plugin inspect` of a plugin, as JSON.
async fn inspect(k: &Kuryr, plugin: &str) -> Value {
    let text = k
        .docker_ok(&["plugin", "inspect", "--format", "{{json .}}", plugin])
        .await;
    serde_json::from_str(&text).unwrap()
}

/// The folder Docker gives the enabled plugin for its sockets (`/run/docker/plugins` inside).
fn runtime_dir(plugin: &Value) -> PathBuf {
    Path::new("/run/docker/plugins").join(plugin["Id"].as_str().unwrap())
}

/// The pid of the kuryr daemon listening on `socket` (from /proc: the plugin runs in its
/// own mount namespace, so its socket's path is matched on its command line).
fn daemon_pid(marker: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.first().is_some_and(|a| a.ends_with("/kuryr"))
            && args.iter().any(|a| a == "serve")
            && args.iter().any(|a| a == marker))
        .then_some(pid)
    })
}

/// A capability set of a process (`CapEff`, `CapBnd`, ...).
fn capabilities(pid: u32, set: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{set}:")))
        .unwrap_or_else(|| panic!("{set} in /proc/{pid}/status"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// Waits until a plugin socket answers Plugin.Activate with both interfaces.
async fn activates(socket: &Path) {
    let socket = socket.to_owned();
    eventually("the plugin socket answers Plugin.Activate", || {
        let socket = socket.clone();
        async move {
            if !socket.exists() {
                return None;
            }
            let (status, answer) = tokio::task::spawn_blocking(move || {
                plugin_call(&socket, "/Plugin.Activate", &Value::Null)
            })
            .await
            .ok()?;
            (status == 200).then_some(answer)
        }
    })
    .await;
}

/// A Docker registry (Debian's docker-registry) on a free loopback port, with its storage in
/// a temporary folder; stopped when dropped. Docker trusts 127.0.0.0/8 without TLS.
struct Registry {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Registry {
    async fn start(name: &str) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("{name}-registry"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry; scripts/install-deps does)");
        let address = format!("127.0.0.1:{port}");
        let probe = address.clone();
        eventually("the registry answers /v2/", || {
            let probe = probe.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    std::net::TcpStream::connect(&probe).ok().map(|_| ())
                })
                .await
                .ok()
                .flatten()
            }
        })
        .await;
        Registry {
            child,
            address,
            dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Docker commands that remove what a test made (plugins, the daemon's container, the
/// image), run whatever happened. The harness's cleanup then removes the test's containers
/// and networks (through a daemon of its own when the test's is gone).
struct Undo(Vec<Vec<String>>);

impl Drop for Undo {
    fn drop(&mut self) {
        for args in self.0.iter().rev() {
            let _ = Command::new(docker_bin()).args(args).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the static build of scripts/package; scripts/test runs it"]
async fn the_managed_plugin_serves_networks_across_disable_enable_and_an_upgrade() {
    const CIDR: &str = "10.213.1.0/24";
    with_kuryr_unstarted("managed", &[CIDR], |k| async move {
        let body = {
            let k = k.clone();
            tokio::spawn(async move { managed_plugin(&k, CIDR).await })
        };
        let outcome = body.await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

async fn managed_plugin(k: &Arc<Kuryr>, cidr: &str) {
    // The harness's name for this test's plugin; networks name a managed plugin with its
    // tag (`-d NAME:latest`: Docker resolves no bare name to it).
    let name = k.plugin.clone();
    let driver = format!("{name}:latest");
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", t0.elapsed().as_secs_f64());
    let mut undo = Undo(vec![strings(&["plugin", "rm", "-f", &name])]);
    let _ = k.docker(&["plugin", "rm", "-f", &name]).await;
    assert_eq!(package(&["plugin", &name]), name);

    step("created");
    // Created disabled, with the interfaces, host networking and the one capability.
    let created = inspect(k, &name).await;
    assert_eq!(created["Enabled"], false, "{created:#}");
    let config = &created["Config"];
    let types: Vec<String> = config["Interface"]["Types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"],
        "{config:#}"
    );
    assert_eq!(config["Network"]["Type"], "host");
    assert_eq!(
        config["Linux"]["Capabilities"],
        serde_json::json!(["CAP_NET_ADMIN"])
    );

    step("inspected");
    // Settings: the config and state folders, the plugin name, debug logs.
    let (etc, state) = config_folders(&name);
    let refused = k
        .docker(&["plugin", "set", &name, "NO_SUCH_SETTING=1"])
        .await;
    assert!(!refused.status.success(), "an unknown setting is refused");
    let settings = [
        "plugin".to_owned(),
        "set".to_owned(),
        name.clone(),
        format!("config.source={}", etc.display()),
        format!("state.source={}", state.display()),
        format!("args=--plugin-name {name}"),
        "KURYR_LOG=debug".to_owned(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    k.docker_ok(&settings).await;
    k.docker_ok(&["plugin", "enable", &name]).await;
    let enabled = inspect(k, &name).await;
    assert_eq!(enabled["Enabled"], true);
    let dir = runtime_dir(&enabled);
    activates(&dir.join("kuryr.sock")).await;

    step("enabled");
    // The daemon runs with CAP_NET_ADMIN and without CAP_SYS_ADMIN, and its admin socket
    // is reachable from the host.
    let pid = daemon_pid(&name).expect("the plugin's kuryr serve process");
    assert_ne!(capabilities(pid, "CapEff") & CAP_NET_ADMIN, 0);
    assert_eq!(capabilities(pid, "CapBnd") & CAP_SYS_ADMIN, 0);
    let stats = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["stats", "--json", "--admin-socket"])
        .arg(dir.join("kuryr_manage.sock"))
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "kuryr stats over the plugin's admin socket: {}",
        String::from_utf8_lossy(&stats.stderr)
    );

    step("admin socket");
    // A network on Neutron with two containers that talk.
    let net = k.name("net");
    let docker_id = k
        .create_network_on(&driver, &net, &["--subnet", cidr])
        .await;
    let neutron_net = k.network_of(&docker_id).await;
    let (c1, c2) = (k.name("c1"), k.name("c2"));
    k.run(&c1, &["--network", &net]).await;
    k.run(&c2, &["--network", &net]).await;
    let ip2 = k.attachment(&c2, &net).await.ip;
    assert!(k.pings(&c1, &ip2, FIRST_PING).await, "c1 reaches c2");
    let port1 = k.port_of(&k.attachment(&c1, &net).await.endpoint_id).await;

    step("network and two containers");
    // Disable: refused while a network uses the plugin, forced otherwise; containers keep
    // their ports and their traffic; enabled again, it serves a new container.
    let busy = k.docker(&["plugin", "disable", &name]).await;
    assert!(
        !busy.status.success(),
        "docker plugin disable refuses while a network uses the plugin"
    );
    k.docker_ok(&["plugin", "disable", "-f", &name]).await;
    eventually("the plugin's daemon stopped", || async {
        daemon_pid(&name).is_none().then_some(())
    })
    .await;
    assert!(
        k.pings(&c1, &ip2, FIRST_PING).await,
        "c1 reaches c2 while disabled"
    );
    assert_eq!(k.port_of(&port1.device_id).await.id, port1.id);
    k.docker_ok(&["plugin", "enable", &name]).await;
    let c3 = k.name("c3");
    k.run(&c3, &["--network", &net]).await;
    let ip3 = k.attachment(&c3, &net).await.ip;
    assert!(
        k.pings(&c1, &ip3, FIRST_PING).await,
        "c1 reaches c3, started after the enable"
    );

    step("disabled and enabled");
    // Upgrade to another build pushed to the registry: the settings stay, the daemon is a
    // new one, the network serves on.
    let registry = Registry::start(&name).await;
    let next = format!("{}/{name}:next", registry.address);
    undo.0.push(strings(&["plugin", "rm", "-f", &next]));
    assert_eq!(package(&["plugin", &next]), next);
    k.docker_ok(&["plugin", "push", &next]).await;
    k.docker_ok(&["plugin", "rm", &next]).await;
    let before = daemon_pid(&name).expect("the daemon before the upgrade");
    let refused = k
        .docker(&[
            "plugin",
            "upgrade",
            "--grant-all-permissions",
            "--skip-remote-check",
            &name,
            &next,
        ])
        .await;
    assert!(
        !refused.status.success(),
        "an enabled plugin is not upgraded"
    );
    k.docker_ok(&["plugin", "disable", "-f", &name]).await;
    // --skip-remote-check: the CLI would ask whether another repository is meant.
    k.docker_ok(&[
        "plugin",
        "upgrade",
        "--grant-all-permissions",
        "--skip-remote-check",
        &name,
        &next,
    ])
    .await;
    // Docker 20.10's upgrade keeps env and args but resets the mounts' sources to the new
    // config's: they are set again, as the README tells operators to.
    k.docker_ok(&settings).await;
    k.docker_ok(&["plugin", "enable", &name]).await;
    let upgraded = inspect(k, &name).await;
    assert_eq!(
        upgraded["PluginReference"],
        format!("{next}"),
        "{upgraded:#}"
    );
    let args = upgraded["Settings"]["Args"].clone();
    assert_eq!(
        args,
        serde_json::json!(["--plugin-name", name]),
        "settings kept"
    );
    let after = daemon_pid(&name).expect("the daemon after the upgrade");
    assert_ne!(before, after);
    assert!(
        k.pings(&c1, &ip2, FIRST_PING).await,
        "c1 reaches c2 after the upgrade"
    );
    let c4 = k.name("c4");
    k.run(&c4, &["--network", &net]).await;
    let ip4 = k.attachment(&c4, &net).await.ip;
    assert!(
        k.pings(&c3, &ip4, FIRST_PING).await,
        "c3 reaches c4, started after the upgrade"
    );

    step("upgraded");
    // The upgraded daemon takes down what the first one set up.
    k.remove_container(&c1).await;
    eventually("c1's port deleted", || async {
        k.neutron
            .ports()
            .get_opt(&port1.id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    for c in [&c2, &c3, &c4] {
        k.remove_container(c).await;
    }
    k.remove_network(&net).await;
    assert!(
        k.neutron
            .networks()
            .get_opt(&neutron_net.id)
            .await
            .unwrap()
            .is_none(),
        "the Neutron network went with the Docker network"
    );

    step("containers and network removed");
    // Removed: gone from Docker, its sockets with it.
    k.docker_ok(&["plugin", "disable", &name]).await;
    k.docker_ok(&["plugin", "rm", &name]).await;
    let listed = k
        .docker_ok(&["plugin", "ls", "--format", "{{.Name}}"])
        .await;
    assert!(
        !listed.lines().any(|l| l.starts_with(&format!("{name}:"))),
        "the plugin is gone: {listed}"
    );
    assert!(!dir.join("kuryr.sock").exists());
    drop(registry);
    let _ = std::fs::remove_dir_all(etc.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the static build of scripts/package; scripts/test runs it"]
async fn the_container_image_serves_with_host_networking_and_net_admin_only() {
    const CIDR: &str = "10.213.2.0/24";
    with_kuryr_unstarted("image", &[CIDR], |k| async move {
        let name = k.plugin.clone();
        let image = format!("{name}:test");
        let container = k.name("daemon");
        let (etc, state) = config_folders(&name);
        let _undo = Undo(vec![
            strings(&["rmi", &image]),
            strings(&["rm", "-f", &container]),
        ]);
        assert_eq!(package(&["image", &image]), image);
        k.docker_ok(&[
            "run",
            "-d",
            "--name",
            &container,
            "--net",
            "host",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN",
            "-v",
            &format!("{}:/etc/kuryr:ro", etc.display()),
            "-v",
            &format!("{}:/var/lib/kuryr", state.display()),
            "-v",
            "/run/docker/plugins:/run/docker/plugins",
            "-v",
            "/var/run/openvswitch:/var/run/openvswitch",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &image,
            "serve",
            "--plugin-name",
            &name,
        ])
        .await;
        let socket = PathBuf::from(format!("/run/docker/plugins/{name}.sock"));
        let started = Instant::now();
        activates(&socket).await;
        eprintln!("the image's daemon answered in {:?}", started.elapsed());
        let pid = daemon_pid(&name).expect("the image's kuryr serve process");
        assert_eq!(
            capabilities(pid, "CapEff"),
            CAP_NET_ADMIN,
            "CAP_NET_ADMIN is the daemon's only capability"
        );

        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", CIDR]).await;
        let neutron_net = k.network_of(&docker_id).await;
        let (c1, c2) = (k.name("c1"), k.name("c2"));
        k.run(&c1, &["--network", &net]).await;
        k.run(&c2, &["--network", &net]).await;
        let ip2 = k.attachment(&c2, &net).await.ip;
        assert!(k.pings(&c1, &ip2, FIRST_PING).await, "c1 reaches c2");
        let port2 = k.port_of(&k.attachment(&c2, &net).await.endpoint_id).await;
        assert_eq!(port2.binding_host_id, hostname());
        k.remove_container(&c1).await;
        k.remove_container(&c2).await;
        k.remove_network(&net).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&neutron_net.id)
            .await
            .unwrap()
            .is_none());

        // docker stop: SIGTERM, and the daemon takes its socket away.
        k.docker_ok(&["stop", &container]).await;
        assert!(!socket.exists(), "the socket is removed on stop");
        k.docker_ok(&["rm", &container]).await;
        let _ = std::fs::remove_dir_all(etc.parent().unwrap());
    })
    .await;
}
