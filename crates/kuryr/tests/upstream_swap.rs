//! Swapping the real upstream Python kuryr-libnetwork 18.0.0 (installed by `scripts/upstream
//! up`) and `kuryr serve` on a running host, both ways, keeping the kuryr.conf, the plugin name
//! and its address: every Docker network and container made by one keeps working under the
//! other (real Docker 20.10, real Neutron, packets through the real neutron-openvswitch-agent's
//! br-int), and the other removes them without leaving anything in Neutron or on the host.
//!
//! How the swap is done, as an operator would: the plugin is registered with Docker by
//! `/etc/docker/plugins/<name>.spec` holding the conf's `[DEFAULT] kuryr_uri`; upstream's
//! `kuryr-server` listens there, and so does ours with `--tcp`. Docker resolves a plugin name
//! to an address once, at its first use, and keeps that address until dockerd restarts; it
//! looks for `/run/docker/plugins/<name>.sock` before the `.spec`. So ours must not listen on
//! that socket: had ours started first with it, Docker would keep dialling the socket after
//! the swap ("dial unix /run/docker/plugins/<name>.sock: connect: no such file or directory"),
//! and upstream only listens on TCP. Ours gets `--socket` outside Docker's plugin folder.
//!
//! Upstream's veth binding leaves TX checksum offload on, so on the stack's userspace datapath
//! only ICMP (not TCP) reaches its containers: the traffic checked here is ping. Each test has
//! its own plugin name, TCP port, Docker network and CIDR (10.204.N.0/24), removed at the end
//! failed or not (by ours, which then serves the plugin).

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docker_harness::*;
use kuryr_openstack::neutron::{Network, Port, Subnet};

// ---------------------------------------------------------------------------------------
// The upstream daemon

/// What `scripts/upstream up` installed: the venv's `kuryr-server` and its kuryr.conf.
struct UpstreamInstall {
    server: PathBuf,
    conf: PathBuf,
}

fn upstream_install() -> UpstreamInstall {
    let dir = std::env::var("KURYR_UPSTREAM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/upstream"));
    let server = dir.join("venv/bin/kuryr-server");
    let conf = dir.join("etc/kuryr.conf");
    let missing: Vec<String> = [&server, &conf]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "the upstream kuryr-libnetwork these tests swap with is not installed ({} missing): run \
         `scripts/upstream up` (scripts/test does it; it needs `scripts/stack up` first)",
        missing.join(", ")
    );
    let text = std::fs::read_to_string(&conf).unwrap();
    let bindir = ini_value(&text, "bindir").unwrap_or_else(|| {
        panic!(
            "{} has no bindir: run `scripts/upstream up` again",
            conf.display()
        )
    });
    assert!(
        Path::new(&bindir).join("ovs").is_file(),
        "upstream's ovs bind script is not in {bindir} (bindir of {}): run `scripts/upstream up` \
         again",
        conf.display()
    );
    UpstreamInstall { server, conf }
}

/// The value of `key = value` in an INI text (first occurrence).
fn ini_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// A free TCP port on the loopback address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kuryr-server` of the upstream venv, stopped with SIGTERM (then SIGKILL) when dropped.
struct UpstreamDaemon {
    child: Child,
}

impl Drop for UpstreamDaemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let started = Instant::now();
            while matches!(self.child.try_wait(), Ok(None))
                && started.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a kuryr plugin answers the handshake at `uri`.
async fn answers(uri: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    match client.post(format!("{uri}/Plugin.Activate")).send().await {
        Ok(r) if r.status().is_success() => r
            .text()
            .await
            .is_ok_and(|t| t.contains("NetworkDriver") && t.contains("IpamDriver")),
        _ => false,
    }
}

/// Whether anything listens on `uri`'s port.
fn port_taken(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

// ---------------------------------------------------------------------------------------
// One test: a plugin name served by either daemon at one address

struct Swap {
    k: Kuryr,
    upstream_server: PathBuf,
    /// The one kuryr.conf both daemons read: upstream's, with this test's `kuryr_uri`.
    conf: PathBuf,
    port: u16,
    uri: String,
    /// Ours listens here as well as on `uri`: not in /run/docker/plugins (see the top).
    socket: PathBuf,
    spec: PathBuf,
    upstream: Mutex<Option<UpstreamDaemon>>,
    upstream_log: PathBuf,
    started: Instant,
}

impl Swap {
    /// Say what the test is at and since when (shown with `--nocapture` or on failure).
    fn step(&self, what: &str) {
        eprintln!(
            "[{} {:6.1}s] {what}",
            self.k.prefix,
            self.started.elapsed().as_secs_f64()
        );
    }

    async fn start_upstream(&self) {
        assert!(
            self.upstream.lock().unwrap().is_none(),
            "upstream is already running"
        );
        assert!(!self.k.daemon_running(), "ours still serves the plugin");
        let log = || {
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(&self.upstream_log)
                .unwrap()
        };
        let child = Command::new(&self.upstream_server)
            .arg("--config-file")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log())
            .stderr(log())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.upstream_server.display()));
        *self.upstream.lock().unwrap() = Some(UpstreamDaemon { child });
        // It imports neutron-lib and checks Neutron's extensions before it listens: ~10 s,
        // more on a busy machine.
        let started = Instant::now();
        loop {
            if answers(&self.uri).await {
                return;
            }
            let exited = self
                .upstream
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|d| d.child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "upstream kuryr-server exited ({exited:?}):\n{}",
                self.upstream_log_text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "upstream kuryr-server did not answer on {} within 120 s:\n{}",
                self.uri,
                self.upstream_log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn stop_upstream(&self) {
        let old = self.upstream.lock().unwrap().take();
        tokio::task::spawn_blocking(move || drop(old))
            .await
            .unwrap();
    }

    /// Ours on the same kuryr.conf, so on the same `kuryr_uri`.
    async fn start_ours(&self) {
        assert!(
            self.upstream.lock().unwrap().is_none(),
            "upstream still serves the plugin"
        );
        self.k.serve_with(&self.conf, &self.socket, true).await;
    }

    /// Whether the port is free within 15 s (the daemon that listened on it has stopped).
    async fn port_freed(&self) -> bool {
        let started = Instant::now();
        while port_taken(self.port) {
            if started.elapsed() > Duration::from_secs(15) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    async fn swap_to_ours(&self) {
        self.stop_upstream().await;
        assert!(self.port_freed().await, "{} still taken", self.uri);
        self.start_ours().await;
    }

    async fn swap_to_upstream(&self) {
        self.k.stop_daemon().await;
        assert!(self.port_freed().await, "{} still taken", self.uri);
        self.start_upstream().await;
    }

    fn upstream_log_text(&self) -> String {
        std::fs::read_to_string(&self.upstream_log).unwrap_or_default()
    }
}

/// Run a swap test: the plugin `kuryr-t<pid>-<test>` registered by a .spec at a free
/// loopback port, no daemon running yet. Afterwards, failed or not, ours serves the plugin
/// while the test's containers and networks are removed, then whatever Neutron still holds
/// for `cidr` goes too.
async fn with_swap<F, Fut>(test: &str, cidr: &str, body: F)
where
    F: FnOnce(Arc<Swap>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    check_docker();
    let install = upstream_install();
    let k = Kuryr::without_daemon(test).await;
    k.purge_leftovers(&[cidr]).await;

    let port = free_port();
    let uri = format!("http://127.0.0.1:{port}");
    let tmp = std::env::temp_dir();
    let conf = tmp.join(format!("{}.conf", k.prefix));
    let template = std::fs::read_to_string(&install.conf).unwrap();
    let mut replaced = false;
    let text: String = template
        .lines()
        .map(|line| {
            if line.split_once('=').map(|(k, _)| k.trim()) == Some("kuryr_uri") {
                replaced = true;
                format!("kuryr_uri = {uri}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(replaced, "{} has no kuryr_uri", install.conf.display());
    let _ = std::fs::remove_file(&conf);
    std::fs::File::options()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&conf)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();

    for sock in [
        format!("/run/docker/plugins/{}.sock", k.plugin),
        format!("/run/docker/plugins/{0}/{0}.sock", k.plugin),
    ] {
        assert!(
            !Path::new(&sock).exists(),
            "{sock} exists: Docker would use it instead of the .spec"
        );
    }
    let spec = PathBuf::from(format!("/etc/docker/plugins/{}.spec", k.plugin));
    std::fs::create_dir_all("/etc/docker/plugins").unwrap();
    std::fs::write(&spec, format!("{uri}\n")).unwrap();

    let s = Arc::new(Swap {
        upstream_server: install.server,
        conf,
        port,
        uri,
        socket: tmp.join(format!("{}.sock", k.prefix)),
        spec,
        upstream: Mutex::new(None),
        upstream_log: tmp.join(format!("{}-upstream.log", k.prefix)),
        started: Instant::now(),
        k,
    });
    let _ = std::fs::remove_file(&s.upstream_log);

    let outcome = tokio::spawn(body(s.clone())).await;

    // Clean-up: Docker removes its endpoints and networks only through the plugin, so one
    // must serve it; ours can remove what either made.
    s.step("clean-up");
    s.stop_upstream().await;
    if !s.k.daemon_running() && s.port_freed().await {
        let from = s.k.log_text().len();
        *s.k.daemon.lock().unwrap() = Some(spawn_daemon_with(
            &s.k.plugin,
            &s.k.log,
            &s.conf,
            &s.socket,
            true,
        ));
        let started = Instant::now();
        while !s
            .k
            .log_text()
            .get(from..)
            .unwrap_or("")
            .contains("Neutron is usable")
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    s.k.cleanup().await;
    s.k.purge_leftovers(&[cidr]).await;
    let _ = std::fs::remove_file(&s.spec);
    let _ = std::fs::remove_file(&s.conf);

    match outcome {
        Ok(()) => {
            let _ = std::fs::remove_file(&s.k.log);
            let _ = std::fs::remove_file(&s.upstream_log);
        }
        Err(e) if e.is_panic() => {
            eprintln!("--- kuryr serve log ---\n{}", s.k.log_text());
            eprintln!(
                "--- upstream kuryr-server log ---\n{}",
                s.upstream_log_text()
            );
            std::panic::resume_unwind(e.into_panic())
        }
        Err(e) => panic!("test task: {e}"),
    }
}

// ---------------------------------------------------------------------------------------
// What both daemons must leave in Neutron, OVS and the container

/// The Docker network's Neutron network, subnet and subnetpool id, checked against the
/// scheme both daemons share (README, "Neutron mapping").
async fn check_network(k: &Kuryr, docker_id: &str, cidr: &str) -> (Network, Subnet, String) {
    let net = k.network_of(docker_id).await;
    assert_eq!(net.name, format!("kuryr-net-{}", &docker_id[..8]));
    for tag in id_tags(docker_id) {
        assert!(net.tags.contains(&tag), "{tag} on {net:#?}");
    }
    let mut subnets = k.subnets_on(&net.id).await;
    assert_eq!(subnets.len(), 1, "{subnets:#?}");
    let subnet = subnets.remove(0);
    assert_eq!(subnet.name, format!("kuryr-subnet-{cidr}"));
    assert_eq!(subnet.cidr, cidr);
    let pool_id = subnet
        .subnetpool_id
        .clone()
        .unwrap_or_else(|| panic!("the subnet comes from a pool: {subnet:#?}"));
    assert_eq!(
        subnet.tags,
        vec![pool_id.clone()],
        "subnet tagged with its pool"
    );
    let pool = k.neutron.subnetpools().get(&pool_id).await.unwrap();
    assert_eq!(pool.name, format!("kuryrPool-{cidr}"));
    assert_eq!(pool.prefixes, vec![cidr.to_owned()]);
    (net, subnet, pool_id)
}

/// A container on the network and its Neutron port.
struct Running {
    name: String,
    ip: String,
    port: Port,
}

/// `docker run` on `network` through whichever daemon serves the plugin now; its port is
/// checked against the shared scheme and waited for until ACTIVE, plugged in br-int.
async fn start(k: &Kuryr, name: &str, network: &str, net: &Network, subnet: &Subnet) -> Running {
    k.run(name, &["--net", network]).await;
    let a = k.attachment(name, network).await;
    assert!(in_cidr(&a.ip, &subnet.cidr), "{a:?}");
    let port = k.port_of(&a.endpoint_id).await;
    assert_eq!(port.network_id, net.id);
    assert_eq!(port.name, "kuryr-unbound-port", "{port:#?}");
    assert!(
        port.tags.contains(&"compute:kuryr".to_owned()),
        "{:?}",
        port.tags
    );
    assert_eq!(port.device_owner, "compute:kuryr");
    assert_eq!(port.device_id, a.endpoint_id);
    assert_eq!(port.binding_host_id, hostname());
    assert!(
        port.mac_address.eq_ignore_ascii_case(&a.mac),
        "Docker's MAC {} on the port: {port:#?}",
        a.mac
    );
    assert_eq!(port.fixed_ips.len(), 1, "{port:#?}");
    assert_eq!(port.fixed_ips[0].ip_address, a.ip);
    assert_eq!(port.fixed_ips[0].subnet_id, subnet.id);

    let port = eventually(&format!("port {} ACTIVE", port.id), || async {
        let p = k.neutron.ports().get(&port.id).await.unwrap();
        (p.status == "ACTIVE").then_some(p)
    })
    .await;
    assert_eq!(port.binding_vif_type, "ovs", "{port:#?}");
    let tap = format!("tap{}", &port.id[..11]);
    assert!(br_int_ports().contains(&tap), "{tap} in br-int");
    let ids = external_ids(&tap);
    assert_eq!(ids["iface-id"], port.id.as_str());
    assert_eq!(ids["attached-mac"], port.mac_address.as_str());
    assert_eq!(ids["iface-status"], "active");
    assert_eq!(ids["owner"], "kuryr");
    assert_eq!(ids["vm-uuid"], a.endpoint_id.as_str());

    let (addr, link) = k.interface(name, "eth0").await;
    let prefix_len = subnet.cidr.split_once('/').unwrap().1;
    assert!(addr.contains(&format!("{}/{prefix_len}", a.ip)), "{addr}");
    assert!(
        link.to_lowercase()
            .contains(&port.mac_address.to_lowercase()),
        "{link}"
    );
    if let Some(mtu) = net.mtu {
        assert!(link.contains(&format!("mtu {mtu} ")), "{link}");
    }
    Running {
        name: name.to_owned(),
        ip: a.ip,
        port,
    }
}

async fn ping_both_ways(k: &Kuryr, a: &Running, b: &Running) {
    assert!(
        k.pings(&a.name, &b.ip, Duration::from_secs(30)).await,
        "{} cannot ping {} ({})",
        a.name,
        b.name,
        b.ip
    );
    assert!(
        k.pings(&b.name, &a.ip, Duration::from_secs(10)).await,
        "{} cannot ping {} ({})",
        b.name,
        a.name,
        a.ip
    );
}

/// `docker rm -f`: the port is deleted (ReleaseAddress) and its interfaces are gone from
/// br-int and the host (DeleteEndpoint).
async fn remove(k: &Kuryr, c: &Running) {
    k.remove_container(&c.name).await;
    eventually(&format!("port {} deleted", c.port.id), || async {
        k.neutron
            .ports()
            .get_opt(&c.port.id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let tap = format!("tap{}", &c.port.id[..11]);
    assert!(!br_int_ports().contains(&tap), "{tap} left in br-int");
    assert!(!host_link_exists(&tap), "{tap} left on the host");
    assert!(
        !host_link_exists(&format!("t_c{}", &c.port.id[..11])),
        "the container end of {tap} left on the host"
    );
}

/// `docker network rm`: the network, its subnet and its subnetpool are gone from Neutron.
async fn remove_network(k: &Kuryr, name: &str, docker_id: &str, made: &(Network, Subnet, String)) {
    let (net, subnet, pool_id) = made;
    k.remove_network(name).await;
    assert!(
        k.networks_of(docker_id).await.is_empty(),
        "network tags gone"
    );
    assert!(
        k.neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none(),
        "network {} deleted",
        net.id
    );
    assert!(
        k.neutron
            .subnets()
            .get_opt(&subnet.id)
            .await
            .unwrap()
            .is_none(),
        "subnet {} deleted",
        subnet.id
    );
    assert!(
        k.neutron
            .subnetpools()
            .get_opt(pool_id)
            .await
            .unwrap()
            .is_none(),
        "subnetpool {pool_id} deleted"
    );
    assert!(k
        .pools_named(&format!("kuryrPool-{}", subnet.cidr))
        .await
        .is_empty());
    assert!(k.ports_on(&net.id).await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Tests

/// Upstream makes the network (with `--ip-range`) and a container; ours takes over the
/// plugin: the upstream container keeps talking to a container ours starts, and ours removes both and the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_network_keeps_working_after_swapping_to_ours() {
    const CIDR: &str = "10.204.1.0/24";
    with_swap("up2ours", CIDR, |s| async move {
        let k = &s.k;
        s.step("starting upstream kuryr-server");
        s.start_upstream().await;
        let net_name = k.name("net");
        s.step("upstream: docker network create");
        // Upstream needs --gateway (without it its RequestAddress answers no address). With
        // --ip-range, upstream's subnetpool and subnet take the range's CIDR, as ours do.
        let docker_id = k
            .create_network(
                &net_name,
                &[
                    "--subnet",
                    "10.204.0.0/23",
                    "--ip-range",
                    CIDR,
                    "--gateway",
                    "10.204.1.1",
                ],
            )
            .await;
        let made = check_network(k, &docker_id, CIDR).await;
        let (net, subnet, _) = &made;
        s.step("upstream: docker run");
        let by_upstream = start(k, &k.name("c-upstream"), &net_name, net, subnet).await;

        s.step("swapping to ours");
        s.swap_to_ours().await;
        // Ours finds upstream's network, subnet and pool as they are.
        let again = check_network(k, &docker_id, CIDR).await;
        assert_eq!(
            (&again.0.id, &again.1.id, &again.2),
            (&net.id, &subnet.id, &made.2)
        );
        s.step("ours: docker run");
        let by_ours = start(k, &k.name("c-ours"), &net_name, net, subnet).await;
        let upstream_port = k.neutron.ports().get(&by_upstream.port.id).await.unwrap();
        assert_eq!(upstream_port.status, "ACTIVE", "{upstream_port:#?}");
        s.step("ping between upstream's and ours' containers");
        ping_both_ways(k, &by_upstream, &by_ours).await;

        s.step("ours: docker rm of upstream's container");
        remove(k, &by_upstream).await;
        s.step("ours: docker rm of ours' container");
        remove(k, &by_ours).await;
        s.step("ours: docker network rm of upstream's network");
        remove_network(k, &net_name, &docker_id, &made).await;
        s.step("done");
    })
    .await;
}

/// Ours makes the network and a container; upstream takes over the plugin: a container
/// upstream starts talks to ours', and upstream removes both and the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_network_keeps_working_after_swapping_to_upstream() {
    const CIDR: &str = "10.204.2.0/24";
    with_swap("ours2up", CIDR, |s| async move {
        let k = &s.k;
        s.step("starting kuryr serve");
        s.start_ours().await;
        let net_name = k.name("net");
        s.step("ours: docker network create");
        let docker_id = k.create_network(&net_name, &["--subnet", CIDR]).await;
        let made = check_network(k, &docker_id, CIDR).await;
        let (net, subnet, _) = &made;
        s.step("ours: docker run");
        let by_ours = start(k, &k.name("c-ours"), &net_name, net, subnet).await;

        s.step("swapping to upstream");
        s.swap_to_upstream().await;
        s.step("upstream: docker run");
        let by_upstream = start(k, &k.name("c-upstream"), &net_name, net, subnet).await;
        let our_port = k.neutron.ports().get(&by_ours.port.id).await.unwrap();
        assert_eq!(our_port.status, "ACTIVE", "{our_port:#?}");
        s.step("ping between ours' and upstream's containers");
        ping_both_ways(k, &by_ours, &by_upstream).await;

        s.step("upstream: docker rm of ours' container");
        remove(k, &by_ours).await;
        s.step("upstream: docker rm of upstream's container");
        remove(k, &by_upstream).await;
        s.step("upstream: docker network rm of ours' network");
        remove_network(k, &net_name, &docker_id, &made).await;
        s.step("done");
    })
    .await;
}
