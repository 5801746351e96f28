//! Containers inside a VM, against the real Neutron and the real neutron-openvswitch-agent.
//!
//! The VM is a real QEMU guest (`scripts/vm`, Debian's kernel: 802.1Q, macvlan and ipvlan,
//! which this machine's kernel lacks), its eth0 a tap carrying the VM port's MAC, plugged into
//! Open vSwitch as Nova's os-vif plugs a VM: into `br-int`, or for a trunk parent into the
//! trunk bridge `tbr-<trunk>` that the agent's trunk handler wires to `br-int`. `kuryr serve`
//! (this build) runs in the guest with `default_port_driver` and `link_iface = eth0`, and
//! reaches Keystone and Neutron through QEMU's user network (10.0.2.2). The test speaks
//! Docker's calls to it over TCP (`kuryr_uri`, forwarded by QEMU), then does in the guest, over
//! the QEMU guest agent, what Docker does with the interface Join names: moves it into a
//! container namespace, gives it the address, and sends packets to a plain Neutron port outside
//! the VM (a namespace on this machine plugged into br-int, as a container of this host is),
//! and for the VLAN driver also through the stack's router (`router1`, kuryr's
//! `default_router`) to a port on another Neutron network.
//!
//! One test runs a Docker engine in the guest too (`scripts/vm up --docker`, this machine's
//! docker.io): Docker itself finds kuryr's socket there, and `docker network create`,
//! `docker run`, `docker rm` and `docker network rm` make and remove the trunk subports;
//! its containers talk to a container of this machine's Docker engine, whose own kuryr (the
//! docker_harness daemon, another control plane) attaches the same Neutron network.
//!
//! Those tests are `#[ignore]`d (each boots a guest, 6 to 15 s under emulation): scripts/test runs
//! them one at a time. The tests left on this machine's kernel need no link in a VM: a
//! network namespace stands for the VM (its eth0 carries the VM port's MAC), for what kuryr
//! refuses before making anything.
//!
//! Each test has its own guest or namespaces, OVS ports and Neutron resources (CIDRs
//! 10.203.N.0/24), removed at the end, failed or not.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;
mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuryr_openstack::neutron::{
    AddressPair, Filters, FixedIp, Network, NetworkSpec, Neutron, Port, PortSpec, RouterInterface,
    Subnet, SubnetSpec, TrunkSpec,
};
use serde_json::{json, Value};
use support::flow::ports_with_ip;
use support::guest::{Guest, Nic};
use support::{call_socket, call_tcp, docker_id, eventually, neutron};

// ---------------------------------------------------------------------------------------
// Host fixtures (the `ip` and `ovs-vsctl` commands are fine in tests)

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn ip(args: &[&str]) -> String {
    run("ip", args)
}

/// `ip -n NS ...`.
fn ip_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

fn vsctl(args: &[&str]) -> String {
    run("ovs-vsctl", args)
}

/// Whether `ping` from namespace `ns` gets an answer from `target` within `within`.
fn pings(ns: &str, target: &str, within: Duration) -> bool {
    let started = Instant::now();
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", target])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return true;
        }
        if started.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn hostname() -> String {
    kuryr::driver::host_id().unwrap()
}

// ---------------------------------------------------------------------------------------
// One test's world, removed at the end

struct World {
    n: Neutron,
    /// `kn<pid>-<case>`: prefix of this test's names.
    prefix: String,
    netns: Mutex<Vec<String>>,
    ovs_ports: Mutex<Vec<String>>,
    bridges: Mutex<Vec<String>>,
    trunks: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    pools: Mutex<Vec<String>>,
    daemon: Mutex<Option<Daemon>>,
    /// The guest `boot` started (its name is the prefix).
    guest: Mutex<Option<Arc<Guest>>>,
    /// A kuryr of this machine's Docker engine, for a container outside the VM.
    host_docker: Mutex<Option<Arc<docker_harness::Kuryr>>>,
}

/// Run a test body in its own world; what it made is removed afterwards, also when it
/// panicked (the panic is then re-raised, after kuryr's log).
async fn with_world<F, Fut>(case: u8, body: F)
where
    F: FnOnce(Arc<World>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    support::env("OS_AUTH_URL");
    let w = Arc::new(World {
        n: neutron(),
        prefix: format!("kn{:x}-{case}", std::process::id()),
        netns: Mutex::default(),
        ovs_ports: Mutex::default(),
        bridges: Mutex::default(),
        trunks: Mutex::default(),
        networks: Mutex::default(),
        pools: Mutex::default(),
        daemon: Mutex::default(),
        guest: Mutex::default(),
        host_docker: Mutex::default(),
    });
    let outcome = tokio::spawn(body(w.clone())).await;
    let mut log = w.daemon.lock().unwrap().take().map(Daemon::stop);
    let guest = w.guest.lock().unwrap().take();
    if let (Some(guest), Err(_)) = (&guest, &outcome) {
        // The guest may be what failed: its log is read by a task of its own, given up after
        // 30 s, so that the cleanup below runs whatever the guest does.
        let reader = guest.clone();
        let read = tokio::spawn(async move { guest_kuryr_log(&reader).await });
        log = match tokio::time::timeout(Duration::from_secs(30), read).await {
            Ok(Ok(text)) => Some(text),
            _ => Some("(the guest's kuryr log could not be read)".into()),
        };
        let console = guest.console();
        let tail: Vec<&str> = console.lines().rev().take(40).collect();
        eprintln!("--- the guest's console, last lines ---");
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
    }
    Guest::down(&w.prefix).await;
    let host_docker = w.host_docker.lock().unwrap().take();
    if let Some(host) = host_docker {
        if outcome.is_err() {
            eprintln!(
                "--- this machine's kuryr serve log ---\n{}",
                host.log_text()
            );
        }
        host.cleanup().await;
    }
    w.cleanup().await;
    if let Err(e) = outcome {
        if let Some(log) = log {
            eprintln!("--- kuryr serve log ---\n{log}");
        }
        std::panic::resume_unwind(e.into_panic());
    }
}

impl World {
    /// A short name unique to this test (namespaces, Neutron names).
    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    fn cidr(&self, n: u8) -> String {
        format!("10.203.{n}.0/24")
    }

    async fn network(&self, cidr: &str) -> (Network, Subnet) {
        let network = self
            .n
            .networks()
            .create(&NetworkSpec {
                name: Some(self.name("-net")),
                admin_state_up: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
        self.networks.lock().unwrap().push(network.id.clone());
        let subnet = self
            .n
            .subnets()
            .create(&SubnetSpec {
                name: Some(self.name("-subnet")),
                network_id: Some(network.id.clone()),
                ip_version: Some(4),
                cidr: Some(cidr.into()),
                enable_dhcp: Some(false),
                ..Default::default()
            })
            .await
            .unwrap();
        (network, subnet)
    }

    /// A port bound to this host, as Nova makes a VM's.
    async fn vm_port(&self, network_id: &str, subnet_id: &str, ip: &str, what: &str) -> Port {
        self.n
            .ports()
            .create(&PortSpec {
                name: Some(self.name(what)),
                network_id: Some(network_id.into()),
                fixed_ips: Some(vec![FixedIp {
                    subnet_id: subnet_id.into(),
                    ip_address: ip.into(),
                }]),
                device_owner: Some("compute:nova".into()),
                device_id: Some(self.name(what)),
                binding_host_id: Some(hostname()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    /// Set a port's `binding:host_id` (empty: unbind it).
    async fn bind(&self, port_id: &str, host: &str) {
        self.n
            .ports()
            .update(
                port_id,
                &PortSpec {
                    binding_host_id: Some(host.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    /// A namespace whose `eth0` is `port`'s vNIC (its MAC, the network's MTU 1450, its
    /// address), the other end in OVS bridge `bridge` with the external_ids the agent reads:
    /// a plain Neutron port outside the VM.
    fn plug_namespace(&self, what: &str, port: &Port, bridge: &str) -> String {
        let ns = self.name(what);
        let host_end = format!("vmh{}", &port.id[..11]);
        ip(&["netns", "add", &ns]);
        self.netns.lock().unwrap().push(ns.clone());
        ip(&[
            "link", "add", &host_end, "mtu", "1450", "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        ip(&["link", "set", &host_end, "up"]);
        ip_in(&ns, &["link", "set", "lo", "up"]);
        ip_in(&ns, &["link", "set", "eth0", "address", &port.mac_address]);
        ip_in(&ns, &["link", "set", "eth0", "mtu", "1450", "up"]);
        let address = format!("{}/24", port.fixed_ips[0].ip_address);
        ip_in(&ns, &["addr", "add", &address, "dev", "eth0"]);
        // The stack's userspace datapath passes a partial checksum on as it is: TCP
        // needs the sender to complete it.
        ip(&["netns", "exec", &ns, "ethtool", "-K", "eth0", "tx", "off"]);
        self.ovs_ports.lock().unwrap().push(host_end.clone());
        vsctl(&[
            "--may-exist",
            "add-port",
            bridge,
            &host_end,
            "--",
            "set",
            "Interface",
            &host_end,
            &format!("external_ids:iface-id={}", port.id),
            &format!("external_ids:attached-mac={}", port.mac_address),
            "external_ids:iface-status=active",
            &format!("external_ids:vm-uuid={}", port.device_id),
        ]);
        ns
    }

    /// The trunk bridge of a trunk, as os-vif makes it for a trunk parent (on the datapath
    /// of br-int, since patch ports only join bridges of one datapath).
    fn trunk_bridge(&self, trunk_id: &str) -> String {
        let name: String = format!("tbr-{trunk_id}").chars().take(14).collect();
        let datapath = vsctl(&["get", "Bridge", "br-int", "datapath_type"]);
        self.bridges.lock().unwrap().push(name.clone());
        vsctl(&[
            "--may-exist",
            "add-br",
            &name,
            "--",
            "set",
            "Bridge",
            &name,
            &format!("datapath_type={}", datapath.trim_matches('"')),
        ]);
        name
    }

    async fn active(&self, port_id: &str) -> Port {
        eventually(
            &format!("port {port_id} ACTIVE"),
            Duration::from_secs(60),
            || async {
                let p = self.n.ports().get(port_id).await.unwrap();
                (p.status == "ACTIVE").then_some(p)
            },
        )
        .await
    }

    /// `kuryr serve` inside namespace `ns` with these kuryr.conf lines, and the relays it
    /// needs to reach Keystone and Neutron from there.
    async fn start_kuryr(&self, ns: &str, conf: &str) -> PathBuf {
        let auth: url::Url = support::env("OS_AUTH_URL").parse().unwrap();
        let neutron_url = self
            .n
            .session()
            .endpoint(self.n.endpoint_filter())
            .await
            .unwrap();
        for url in [&auth, &neutron_url] {
            let addr = url.socket_addrs(|| None).unwrap()[0];
            relay_into(ns, addr).await;
        }
        let dir = std::env::temp_dir().join(self.name("-kuryr"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf_file = dir.join("kuryr.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let socket = dir.join("kuryr.sock");
        let log = dir.join("kuryr.log");
        let daemon = Daemon::start(ns, &conf_file, &socket, &log);
        *self.daemon.lock().unwrap() = Some(daemon);
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Neutron is usable") {
                break;
            }
            let exited = self
                .daemon
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|d| d.child.try_wait().ok().flatten());
            assert!(exited.is_none(), "kuryr serve exited ({exited:?}):\n{text}");
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "kuryr serve did not find Neutron usable within 30 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        socket
    }

    /// Boot this test's guest with `port` as its eth0 in `bridge` (and a Docker engine, with
    /// `docker`), and give eth0 the port's address (as cloud-init would).
    async fn boot(&self, port: &Port, bridge: &str, docker: bool) -> Arc<Guest> {
        let nic = Nic {
            port_id: &port.id,
            mac: &port.mac_address,
            bridge,
        };
        let guest = Arc::new(Guest::up(&self.prefix, &nic, docker).await);
        *self.guest.lock().unwrap() = Some(guest.clone());
        let address = format!("{}/24", port.fixed_ips[0].ip_address);
        guest_ip(&guest, &["addr", "add", &address, "dev", "eth0"]).await;
        guest_ip(&guest, &["link", "set", "eth0", "up"]).await;
        let eth0 = guest.link("eth0").await.unwrap();
        assert_eq!(
            eth0["mtu"], 1450,
            "QEMU gives the guest the network's MTU: {eth0}"
        );
        guest
    }

    /// `kuryr serve --tcp` in the guest with these kuryr.conf lines, plus what it needs to
    /// listen on its forwarded port and reach Keystone and Neutron from there; once it found
    /// Neutron usable.
    async fn start_guest_kuryr(&self, guest: &Guest, conf: &str) -> Plugin {
        // The log is appended to: this start is done at one more "usable" line.
        let usable = guest_kuryr_log(guest)
            .await
            .matches("Neutron is usable")
            .count();
        guest
            .write_file("/etc/kuryr/kuryr.conf", &guest_conf(conf))
            .await;
        guest
            .start(
                &[
                    "/bin/sh",
                    "-c",
                    "exec /usr/local/bin/kuryr --config-file /etc/kuryr/kuryr.conf serve --tcp \
                     >>/var/log/kuryr.log 2>&1",
                ],
                &[
                    "PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin",
                    "KURYR_LOG=info",
                ],
            )
            .await;
        let started = Instant::now();
        loop {
            let log = guest_kuryr_log(guest).await;
            if log.matches("Neutron is usable").count() > usable {
                break;
            }
            let running = guest.exec(&["/bin/pidof", "kuryr"]).await.code == 0;
            assert!(running, "kuryr serve exited in the guest:\n{log}");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kuryr serve in the guest did not find Neutron usable within 60 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Its listener is bound after the Neutron check: ready once it answers Activate
        // through QEMU's forwarding.
        let plugin = Plugin::Tcp(guest.kuryr);
        eventually(
            "kuryr in the guest answers Plugin.Activate",
            Duration::from_secs(30),
            || async { plugin.try_call("/Plugin.Activate", json!({})).await },
        )
        .await;
        plugin
    }

    async fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(self.name("-kuryr")));
        for ns in self.netns.lock().unwrap().drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        for port in self.ovs_ports.lock().unwrap().drain(..) {
            let _ = Command::new("ovs-vsctl")
                .args(["--if-exists", "del-port", &port])
                .status();
        }
        for bridge in self.bridges.lock().unwrap().drain(..) {
            let _ = Command::new("ovs-vsctl")
                .args(["--if-exists", "del-br", &bridge])
                .status();
        }
        let trunks: Vec<String> = self.trunks.lock().unwrap().drain(..).collect();
        for trunk in trunks {
            // Neutron keeps the trunk of a bound parent (TrunkInUse): unbind it first.
            if let Ok(t) = self.n.trunks().get(&trunk).await {
                let unbind = PortSpec {
                    binding_host_id: Some(String::new()),
                    ..Default::default()
                };
                let _ = self.n.ports().update(&t.port_id, &unbind).await;
            }
            let _ = self.n.trunks().delete(&trunk).await;
        }
        let networks: Vec<String> = self.networks.lock().unwrap().drain(..).collect();
        for network in networks {
            if let Ok(ports) = self
                .n
                .ports()
                .list(&Filters::new().eq("network_id", network.as_str()))
                .await
            {
                for port in ports {
                    // A router's interface goes only through the router.
                    if port.device_owner == "network:router_interface" {
                        let _ = self
                            .n
                            .remove_router_interface(
                                &port.device_id,
                                &RouterInterface::Port(port.id.clone()),
                            )
                            .await;
                        continue;
                    }
                    // The agent's patch ports of a trunk left behind, if any.
                    for prefix in ["tpi-", "spi-"] {
                        let patch: String =
                            format!("{prefix}{}", port.id).chars().take(15).collect();
                        let _ = Command::new("ovs-vsctl")
                            .args(["--if-exists", "del-port", &patch])
                            .status();
                    }
                    let _ = self.n.ports().delete(&port.id).await;
                }
            }
            let _ = self.n.networks().delete(&network).await;
        }
        let pools: Vec<String> = self.pools.lock().unwrap().drain(..).collect();
        for pool in pools {
            let _ = self.n.subnetpools().delete(&pool).await;
        }
    }
}

/// `kuryr serve` in a namespace; SIGTERM on stop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &str, conf: &Path, socket: &Path, log: &Path) -> Daemon {
        let stderr = std::fs::File::create(log).unwrap();
        // `ip netns exec` execs the command, so the child is kuryr itself.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_kuryr")])
            .arg("--config-file")
            .arg(conf)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .env("KURYR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start kuryr serve");
        Daemon {
            child,
            log: log.to_owned(),
        }
    }

    /// Stop it; its log.
    fn stop(mut self) -> String {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Listen on `addr` (a loopback address) inside namespace `ns` and forward every connection
/// to `addr` in this test's namespace: how kuryr in the "VM" reaches the local Keystone and
/// Neutron, which listen on loopback only. The listening socket is made by a thread that
/// enters the namespace; the forwarding runs on the test's runtime, outside it.
async fn relay_into(ns: &str, addr: SocketAddr) {
    let path = format!("/run/netns/{ns}");
    let listener = std::thread::spawn(move || {
        let netns = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    })
    .join()
    .unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        while let Ok((mut inside, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outside) = tokio::net::TcpStream::connect(addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------
// In the guest

const GUEST_KURYR_LOG: &str = "/var/log/kuryr.log";

async fn guest_kuryr_log(guest: &Guest) -> String {
    guest.exec(&["/bin/cat", GUEST_KURYR_LOG]).await.stdout
}

/// `ip ARGS` in the guest; it must succeed.
async fn guest_ip(guest: &Guest, args: &[&str]) -> String {
    let mut argv = vec!["/usr/sbin/ip"];
    argv.extend_from_slice(args);
    guest.run(&argv).await
}

/// The guest's kuryr.conf: the test's lines, the TCP address QEMU forwards to, a control
/// plane id (no Docker engine in the guest to take it from), and the stack's credentials
/// with the machine's loopback seen from the guest (10.0.2.2).
fn guest_conf(lines: &str) -> String {
    let from_guest = |url: &str| url.replace("127.0.0.1", "10.0.2.2");
    let env = support::env;
    format!(
        "{lines}\n[DEFAULT]\nkuryr_uri = http://10.0.2.15:23750\ncontrol_plane_id = nested-vm\n\
         [neutron]\nauth_url = {}\nauth_type = password\nusername = {}\npassword = {}\n\
         project_name = {}\nuser_domain_name = {}\nproject_domain_name = {}\n\
         region_name = {}\nendpoint_override = {}\n",
        from_guest(&env("OS_AUTH_URL")),
        env("OS_USERNAME"),
        env("OS_PASSWORD"),
        env("OS_PROJECT_NAME"),
        env("OS_USER_DOMAIN_NAME"),
        env("OS_PROJECT_DOMAIN_NAME"),
        env("OS_REGION_NAME"),
        from_guest(support::neutron_url().as_str()),
    )
}

/// What Docker does with the interface Join named, in the guest: into a container
/// namespace, renamed `eth0`, with the address, up. The namespace's name.
async fn into_guest_container(guest: &Guest, link: &str, address: &str) -> String {
    let ns = format!("c{}", &link[3..9]);
    guest_ip(guest, &["netns", "add", &ns]).await;
    guest_ip(guest, &["link", "set", link, "netns", &ns]).await;
    guest_ip(guest, &["-n", &ns, "link", "set", link, "name", "eth0"]).await;
    guest_ip(guest, &["-n", &ns, "addr", "add", address, "dev", "eth0"]).await;
    guest_ip(guest, &["-n", &ns, "link", "set", "eth0", "up"]).await;
    guest_ip(guest, &["-n", &ns, "link", "set", "lo", "up"]).await;
    ns
}

/// What Docker does when the container stops: the interface goes back to the guest's own
/// namespace (PID 1's), with its name, and the namespace goes.
async fn out_of_guest_container(guest: &Guest, ns: &str, link: &str) {
    guest_ip(guest, &["-n", ns, "link", "set", "eth0", "down"]).await;
    guest_ip(guest, &["-n", ns, "link", "set", "eth0", "name", link]).await;
    guest_ip(guest, &["-n", ns, "link", "set", link, "netns", "1"]).await;
    guest_ip(guest, &["netns", "del", ns]).await;
}

/// A TCP exchange from container namespace `ns` in the guest to `target` (a namespace on
/// this machine): the listener there reads a line and answers it; both ends' views.
async fn tcp_exchange(guest: &Guest, ns: &str, target_ns: &str, target: SocketAddr) {
    let listener = listen_in(target_ns, target);
    let received = tokio::task::spawn_blocking(move || answer_one(listener));
    let hello = format!("hello from {ns}\n");
    let out = guest
        .exec_with_input(
            &[
                "/usr/sbin/ip",
                "netns",
                "exec",
                ns,
                "/bin/nc",
                "-w",
                "10",
                &target.ip().to_string(),
                &target.port().to_string(),
            ],
            hello.as_bytes(),
        )
        .await;
    let received = received.await.unwrap();
    assert_eq!(
        received, hello,
        "what the port outside the VM received over TCP"
    );
    assert_eq!(
        out.stdout,
        format!("got {hello}"),
        "the container's TCP answer ({out:?})"
    );
}

/// A TCP listener on `address` inside namespace `ns` (made by a thread that enters it).
fn listen_in(ns: &str, address: SocketAddr) -> std::net::TcpListener {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let netns = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpListener::bind(address).unwrap()
    })
    .join()
    .unwrap()
}

/// Accept one connection within 30 s, read a line, answer "got LINE" and close; the line.
fn answer_one(listener: std::net::TcpListener) -> String {
    use std::io::{BufRead, Write};
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no TCP connection within 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut line)
        .unwrap();
    (&stream)
        .write_all(format!("got {line}").as_bytes())
        .unwrap();
    line
}

// ---------------------------------------------------------------------------------------
// Docker's calls

/// kuryr's plugin API: on a unix socket (kuryr in a namespace), or on TCP (in the guest).
enum Plugin {
    Socket(PathBuf),
    Tcp(SocketAddr),
}

impl Plugin {
    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let body = serde_json::to_vec(&body).unwrap();
        let call = async {
            match self {
                Plugin::Socket(socket) => call_socket(socket, path, &body).await,
                Plugin::Tcp(address) => call_tcp(*address, path, &body).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(120), call)
            .await
            .unwrap_or_else(|_| panic!("{path}: kuryr did not answer within 120 s"))
    }

    /// A 200 answer to `path`, or `None` if the plugin does not answer (yet).
    async fn try_call(&self, path: &str, body: Value) -> Option<Value> {
        let Plugin::Tcp(address) = self else {
            return Some(self.ok(path, body).await);
        };
        let body = serde_json::to_vec(&body).unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            support::try_call_tcp(*address, path, &body),
        )
        .await
        .ok()
        .flatten()?;
        (answer.0 == 200).then_some(answer.1)
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(path, body.clone()).await;
        assert_eq!(status, 200, "{path} {body} answered {status}: {answer}");
        answer
    }

    /// RequestPool and CreateNetwork (Docker 20.10's order); the network and pool ids.
    async fn create_network(&self, w: &World, cidr: &str) -> (String, String) {
        let pool = self
            .ok(
                "/IpamDriver.RequestPool",
                json!({"AddressSpace": "", "Pool": cidr, "SubPool": "", "Options": {}, "V6": false}),
            )
            .await;
        let pool_id = pool["PoolID"].as_str().unwrap().to_owned();
        w.pools.lock().unwrap().push(pool_id.clone());
        let net = docker_id();
        self.ok(
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": net, "Options": {"com.docker.network.generic": {},
                   "com.docker.network.enable_ipv6": false},
                   "IPv4Data": [{"AddressSpace": "", "Pool": pool["Pool"],
                                 "Gateway": pool["Data"]["com.docker.network.gateway"]}],
                   "IPv6Data": []}),
        )
        .await;
        (net, pool_id)
    }

    async fn request_address(&self, pool: &str, mac: &str) -> String {
        let answer = self
            .ok(
                "/IpamDriver.RequestAddress",
                json!({"PoolID": pool, "Address": "",
                       "Options": {"com.docker.network.endpoint.macaddress": mac}}),
            )
            .await;
        answer["Address"].as_str().unwrap().to_owned()
    }

    async fn create_endpoint(
        &self,
        net: &str,
        endpoint: &str,
        address: &str,
        mac: &str,
    ) -> (u16, Value) {
        self.call(
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": net, "EndpointID": endpoint,
                   "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": mac},
                   "Options": {}}),
        )
        .await
    }

    /// Join; the interface name Docker is to move into the container.
    async fn join(&self, net: &str, endpoint: &str) -> String {
        let answer = self
            .ok(
                "/NetworkDriver.Join",
                json!({"NetworkID": net, "EndpointID": endpoint,
                       "SandboxKey": "/var/run/docker/netns/0123456789ab", "Options": {}}),
            )
            .await;
        assert_eq!(answer["InterfaceName"]["DstPrefix"], "eth", "{answer}");
        answer["InterfaceName"]["SrcName"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Leave and DeleteEndpoint.
    async fn delete_endpoint(&self, net: &str, endpoint: &str) {
        let ids = json!({"NetworkID": net, "EndpointID": endpoint});
        self.ok("/NetworkDriver.Leave", ids.clone()).await;
        self.ok("/NetworkDriver.DeleteEndpoint", ids).await;
    }

    async fn release_address(&self, pool: &str, address: &str) {
        self.ok(
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": pool, "Address": bare(address)}),
        )
        .await;
    }

    /// ReleasePool and DeleteNetwork (Docker 20.10's order).
    async fn delete_network(&self, net: &str, pool: &str) {
        self.ok("/IpamDriver.ReleasePool", json!({"PoolID": pool}))
            .await;
        self.ok("/NetworkDriver.DeleteNetwork", json!({"NetworkID": net}))
            .await;
    }
}

fn bare(address: &str) -> &str {
    address.split('/').next().unwrap()
}

fn id_tags(id: &str) -> Vec<String> {
    vec![
        format!("kuryr.net.uuid.lh:{}", &id[..32]),
        format!("kuryr.net.uuid.uh:{}", &id[32..]),
    ]
}

async fn port_of(n: &Neutron, endpoint: &str) -> Option<Port> {
    let mut found = n
        .ports()
        .list(&Filters::new().tags(id_tags(endpoint)))
        .await
        .unwrap();
    assert!(found.len() <= 1, "several ports carry {endpoint}'s tags");
    found.pop()
}

/// The subports of a trunk, by VLAN id.
async fn subports_of(n: &Neutron, trunk_id: &str) -> Vec<kuryr_openstack::neutron::Subport> {
    let mut subports = n.subports(trunk_id).await.unwrap();
    subports.sort_by_key(|s| s.segmentation_id);
    subports
}

fn pair_ips(port: &Port) -> Vec<&str> {
    port.allowed_address_pairs
        .iter()
        .map(|p| p.ip_address.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The tests

const MACVLAN_CONF: &str =
    "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.nested\n\
                            [binding]\nlink_iface = eth0\n";
const IPVLAN_CONF: &str = "[DEFAULT]\ndefault_port_driver = nested\n\
                           [binding]\nlink_iface = eth0\ndefault_driver = ipvlan\n";
/// The vlan driver, its subnets on the stack's router.
const VLAN_CONF: &str = "[DEFAULT]\ndefault_port_driver = vlan\n[binding]\nlink_iface = eth0\n\
                         [neutron]\ndefault_router = router1\n";

/// The stack's router (`scripts/stack up` makes router1).
async fn router1(w: &World) -> kuryr_openstack::neutron::Router {
    let mut found =
        w.n.routers()
            .list(&Filters::new().eq("name", "router1"))
            .await
            .unwrap();
    assert_eq!(found.len(), 1, "one router1 (scripts/stack up makes it)");
    found.remove(0)
}

/// The ids of the subnets with an interface on `router_id`.
async fn routed_subnets(w: &World, router_id: &str) -> Vec<String> {
    w.n.ports()
        .list(
            &Filters::new()
                .eq("device_id", router_id)
                .eq("device_owner", "network:router_interface"),
        )
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.fixed_ips.into_iter().map(|ip| ip.subnet_id))
        .collect()
}

/// A port on another Neutron network behind the stack's router (10.203.8.0/24), in a
/// namespace on this machine whose default route is the router. Its namespace.
async fn behind_the_router(w: &World, router_id: &str) -> String {
    let (far_net, far_subnet) = w.network(&w.cidr(8)).await;
    w.n.add_router_interface(router_id, &RouterInterface::Subnet(far_subnet.id.clone()))
        .await
        .unwrap();
    let far = w
        .vm_port(&far_net.id, &far_subnet.id, "10.203.8.20", "-far")
        .await;
    let far_ns = w.plug_namespace("f", &far, "br-int");
    ip_in(&far_ns, &["route", "add", "default", "via", "10.203.8.1"]);
    w.active(&far.id).await;
    far_ns
}

/// Container namespace `container` in the guest pings `target` (a port outside the VM, in
/// namespace `target_ns` on this machine) and is pinged back at `address`, each within
/// 30 s; `kind` names the link in the failure.
async fn pings_both_ways(
    guest: &Guest,
    container: &str,
    target: &str,
    target_ns: &str,
    address: &str,
    kind: &str,
) {
    assert!(
        guest
            .pings(Some(container), target, Duration::from_secs(30))
            .await,
        "the {kind} container in the VM cannot ping the port outside it"
    );
    assert!(
        pings(target_ns, address, Duration::from_secs(30)),
        "the port outside the VM cannot ping the {kind} container"
    );
}

/// Wait until the VM's port is ACTIVE and the guest reaches `target` from its own address.
async fn vm_reaches(w: &World, guest: &Guest, vm_port: &Port, target: &str) {
    w.active(&vm_port.id).await;
    assert!(
        guest.pings(None, target, Duration::from_secs(60)).await,
        "the VM cannot ping the port outside it from its own address"
    );
}

/// Take an allowed address pair off the VM's port: the firewall then drops the container's
/// packets (polled: the agent applies it within seconds), and keeps dropping them.
async fn without_pair_the_container_is_cut_off(
    w: &World,
    guest: &Guest,
    vm_port: &Port,
    container: &str,
    address: &str,
    target: &str,
) {
    let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
    let without: Vec<AddressPair> = vm_now
        .allowed_address_pairs
        .iter()
        .filter(|p| p.ip_address != bare(address))
        .cloned()
        .collect();
    w.n.ports()
        .update(
            &vm_port.id,
            &PortSpec {
                allowed_address_pairs: Some(without),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    while guest.pings(Some(container), target, Duration::ZERO).await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the container still gets out 30 s after its allowed address pair went"
        );
    }
    assert!(
        !guest
            .pings(Some(container), target, Duration::from_secs(3))
            .await,
        "the container got out without its allowed address pair"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a QEMU guest (scripts/vm); scripts/test runs it"]
async fn macvlan_containers_in_a_vm_use_allowed_address_pairs() {
    with_world(1, |w| async move {
        let cidr = w.cidr(1);
        let (vm_net, vm_subnet) = w.network(&cidr).await;
        let vm_port = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.1.10", "-vm")
            .await;
        let target = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.1.20", "-target")
            .await;
        let target_ns = w.plug_namespace("t", &target, "br-int");
        w.active(&target.id).await;
        let guest = w.boot(&vm_port, "br-int", false).await;
        vm_reaches(&w, &guest, &vm_port, "10.203.1.20").await;
        let plugin = w.start_guest_kuryr(&guest, MACVLAN_CONF).await;

        // Without neutron.net.*, the Docker network is the VM's (macvlan shares its L2).
        let (net, pool) = plugin.create_network(&w, &cidr).await;
        let tagged =
            w.n.networks()
                .list(&Filters::new().tags(id_tags(&net)))
                .await
                .unwrap();
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].id, vm_net.id, "the VM's network is adopted");

        // A failed CreateEndpoint undoes its pair: here the link's name is held by a bridge.
        let mac = "02:42:0a:cb:01:09";
        let address = plugin.request_address(&pool, mac).await;
        let port = ports_with_ip(&w.n, &vm_net.id, bare(&address))
            .await
            .remove(0);
        let name = format!("t_c{}", &port.id[..11]);
        guest_ip(&guest, &["link", "add", "name", &name, "type", "bridge"]).await;
        let ep = docker_id();
        let (status, answer) = plugin.create_endpoint(&net, &ep, &address, mac).await;
        assert_eq!(status, 500, "{answer}");
        let err = answer["Err"].as_str().unwrap();
        assert!(
            err.contains(&format!(
                "{name} exists but is a bridge, not a macvlan link on eth0"
            )),
            "{err}"
        );
        let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
        assert!(!pair_ips(&vm_now).contains(&bare(&address)), "{vm_now:?}");
        assert!(
            port_of(&w.n, &ep).await.is_none(),
            "the port lost the endpoint's tags"
        );
        assert_eq!(
            guest.link(&name).await.unwrap()["linkinfo"]["info_kind"],
            "bridge"
        );
        guest_ip(&guest, &["link", "del", &name]).await;
        plugin.release_address(&pool, &address).await;

        // Three containers at once: concurrent updates of the VM's pairs lose none.
        let macs: Vec<String> = (1..=3).map(|i| format!("02:42:0a:cb:01:0{i}")).collect();
        let mut endpoints = Vec::new();
        for mac in &macs {
            let address = plugin.request_address(&pool, mac).await;
            endpoints.push((docker_id(), address, mac.clone()));
        }
        let create = |i: usize| {
            let (ep, address, mac) = &endpoints[i];
            plugin.create_endpoint(&net, ep, address, mac)
        };
        let (a, b, c) = tokio::join!(create(0), create(1), create(2));
        for (status, answer) in [a, b, c] {
            assert_eq!(status, 200, "{answer}");
        }
        let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
        for (ep, address, mac) in &endpoints {
            let port = port_of(&w.n, ep).await.expect("the endpoint's port");
            assert_eq!(port.device_owner, "compute:kuryr");
            assert_eq!(port.device_id, *ep);
            assert_eq!(
                port.binding_host_id, "",
                "never bound: the VM's port carries it"
            );
            assert_eq!(port.status, "DOWN");
            assert_eq!(port.mac_address, *mac);
            assert!(
                vm_now.allowed_address_pairs.contains(&AddressPair {
                    ip_address: bare(address).into(),
                    mac_address: Some(mac.clone()),
                }),
                "{address} {mac} in {:?}",
                vm_now.allowed_address_pairs
            );
            let name = format!("t_c{}", &port.id[..11]);
            let link = guest
                .link(&name)
                .await
                .expect("the container's link in the VM");
            assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge", "{link}");
            assert_eq!(link["link"], "eth0", "{link}");
            assert_eq!(link["address"], mac.as_str(), "{link}");
            assert_eq!(link["mtu"], 1450, "{link}");
        }

        // The first two containers talk to a port outside the VM, both ways, and to each
        // other.
        let mut containers = Vec::new();
        for (ep, address, _) in &endpoints[..2] {
            let src = plugin.join(&net, ep).await;
            let port = port_of(&w.n, ep).await.unwrap();
            assert_eq!(src, format!("t_c{}", &port.id[..11]));
            let container = into_guest_container(&guest, &src, address).await;
            pings_both_ways(
                &guest,
                &container,
                "10.203.1.20",
                &target_ns,
                bare(address),
                "macvlan",
            )
            .await;
            containers.push((container, src));
        }
        let (first, _) = &containers[0];
        let second_address = bare(&endpoints[1].1);
        assert!(
            guest
                .pings(Some(first), second_address, Duration::from_secs(30))
                .await
        );
        tcp_exchange(
            &guest,
            first,
            &target_ns,
            "10.203.1.20:7001".parse().unwrap(),
        )
        .await;
        assert!(
            guest
                .pings(None, "10.203.1.20", Duration::from_secs(30))
                .await,
            "the VM's own address stops working next to macvlan containers"
        );
        // The pair is what lets the container out: without it, Neutron's firewall drops it.
        without_pair_the_container_is_cut_off(
            &w,
            &guest,
            &vm_port,
            first,
            &endpoints[0].1,
            "10.203.1.20",
        )
        .await;
        for (container, src) in &containers {
            out_of_guest_container(&guest, container, src).await;
        }

        for (ep, address, _) in &endpoints {
            let port = port_of(&w.n, ep).await.unwrap();
            plugin.delete_endpoint(&net, ep).await;
            assert!(guest
                .link(&format!("t_c{}", &port.id[..11]))
                .await
                .is_none());
            let port = w.n.ports().get(&port.id).await.unwrap();
            assert!(
                !port.tags.iter().any(|t| t.starts_with("kuryr.net.uuid")),
                "{:?}",
                port.tags
            );
            // Again, as Docker may: nothing left to do.
            plugin.delete_endpoint(&net, ep).await;
            plugin.release_address(&pool, address).await;
            assert!(w.n.ports().get_opt(&port.id).await.unwrap().is_none());
        }
        let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
        for (_, address, _) in &endpoints {
            assert!(
                !pair_ips(&vm_now).contains(&bare(address)),
                "{:?}",
                vm_now.allowed_address_pairs
            );
        }
        plugin.delete_network(&net, &pool).await;
        // The VM's port was looked up once, however many calls needed it.
        let log = guest_kuryr_log(&guest).await;
        assert_eq!(
            log.matches("containers go through the VM's port").count(),
            1,
            "{log}"
        );
        let kept = w.n.networks().get(&vm_net.id).await.unwrap();
        assert!(
            !kept.tags.iter().any(|t| t.starts_with("kuryr.")),
            "{:?}",
            kept.tags
        );
        assert!(w
            .n
            .subnets()
            .get_opt(&vm_subnet.id)
            .await
            .unwrap()
            .is_some());
        assert!(
            guest
                .pings(None, "10.203.1.20", Duration::from_secs(30))
                .await,
            "the VM's own address works after its containers went"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a QEMU guest (scripts/vm); scripts/test runs it"]
async fn ipvlan_containers_in_a_vm_share_its_mac() {
    with_world(5, |w| async move {
        let cidr = w.cidr(7);
        let (vm_net, vm_subnet) = w.network(&cidr).await;
        let vm_port = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.7.10", "-vm")
            .await;
        let target = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.7.20", "-target")
            .await;
        let target_ns = w.plug_namespace("t", &target, "br-int");
        w.active(&target.id).await;
        let guest = w.boot(&vm_port, "br-int", false).await;
        vm_reaches(&w, &guest, &vm_port, "10.203.7.20").await;
        let plugin = w.start_guest_kuryr(&guest, IPVLAN_CONF).await;
        let (net, pool) = plugin.create_network(&w, &cidr).await;

        let mut endpoints = Vec::new();
        for i in 1..=2 {
            let mac = format!("02:42:0a:cb:07:0{i}");
            let address = plugin.request_address(&pool, &mac).await;
            let ep = docker_id();
            let (status, answer) = plugin.create_endpoint(&net, &ep, &address, &mac).await;
            assert_eq!(status, 200, "{answer}");
            endpoints.push((ep, address));
        }
        let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
        let mut containers = Vec::new();
        for (ep, address) in &endpoints {
            let port = port_of(&w.n, ep).await.expect("the endpoint's port");
            assert_eq!(port.device_owner, "compute:kuryr");
            // ipvlan links send with the VM's MAC: the pair says so.
            assert!(
                vm_now.allowed_address_pairs.contains(&AddressPair {
                    ip_address: bare(address).into(),
                    mac_address: Some(vm_port.mac_address.clone()),
                }),
                "{address} with the VM's MAC in {:?}",
                vm_now.allowed_address_pairs
            );
            let name = format!("t_c{}", &port.id[..11]);
            let link = guest.link(&name).await.expect("the ipvlan link in the VM");
            assert_eq!(link["linkinfo"]["info_kind"], "ipvlan", "{link}");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], "l2", "{link}");
            assert_eq!(link["link"], "eth0", "{link}");
            assert_eq!(link["address"], vm_port.mac_address.as_str(), "{link}");
            assert_eq!(link["mtu"], 1450, "{link}");

            let src = plugin.join(&net, ep).await;
            assert_eq!(src, name);
            let container = into_guest_container(&guest, &src, address).await;
            pings_both_ways(
                &guest,
                &container,
                "10.203.7.20",
                &target_ns,
                bare(address),
                "ipvlan",
            )
            .await;
            containers.push((container, src));
        }
        let (first, _) = &containers[0];
        assert!(
            guest
                .pings(Some(first), bare(&endpoints[1].1), Duration::from_secs(30))
                .await
        );
        tcp_exchange(
            &guest,
            first,
            &target_ns,
            "10.203.7.20:7002".parse().unwrap(),
        )
        .await;
        assert!(
            guest
                .pings(None, "10.203.7.20", Duration::from_secs(30))
                .await,
            "the VM's own address stops working next to ipvlan containers"
        );
        without_pair_the_container_is_cut_off(
            &w,
            &guest,
            &vm_port,
            first,
            &endpoints[0].1,
            "10.203.7.20",
        )
        .await;

        for ((ep, address), (container, src)) in endpoints.iter().zip(&containers) {
            out_of_guest_container(&guest, container, src).await;
            let port = port_of(&w.n, ep).await.unwrap();
            plugin.delete_endpoint(&net, ep).await;
            assert!(guest.link(src).await.is_none());
            plugin.release_address(&pool, address).await;
            assert!(w.n.ports().get_opt(&port.id).await.unwrap().is_none());
        }
        let vm_now = w.n.ports().get(&vm_port.id).await.unwrap();
        assert!(
            vm_now.allowed_address_pairs.is_empty(),
            "{:?}",
            vm_now.allowed_address_pairs
        );
        plugin.delete_network(&net, &pool).await;
        assert!(
            guest
                .pings(None, "10.203.7.20", Duration::from_secs(30))
                .await,
            "the VM's own address works after its containers went"
        );
    })
    .await;
}

/// A trunk on a new port of `vm_net`, bound to this host, its trunk bridge, and the guest
/// booted on it, as Nova does it (the trunk first: the OVS trunk driver refuses a bound
/// parent); once the agent has wired the trunk.
async fn vm_on_a_trunk(
    w: &World,
    vm_net: &Network,
    vm_subnet: &Subnet,
    ip: &str,
    docker: bool,
) -> (Port, kuryr_openstack::neutron::Trunk, Arc<Guest>) {
    let vm_port = w.vm_port(&vm_net.id, &vm_subnet.id, ip, "-vm").await;
    w.bind(&vm_port.id, "").await;
    let trunk =
        w.n.trunks()
            .create(&TrunkSpec {
                name: Some(w.name("-trunk")),
                port_id: Some(vm_port.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
    w.trunks.lock().unwrap().push(trunk.id.clone());
    w.bind(&vm_port.id, &hostname()).await;
    let bridge = w.trunk_bridge(&trunk.id);
    let guest = w.boot(&vm_port, &bridge, docker).await;
    w.active(&vm_port.id).await;
    eventually(
        "the agent wires the trunk",
        Duration::from_secs(60),
        || async {
            let t = w.n.trunks().get(&trunk.id).await.unwrap();
            (t.status == "ACTIVE").then_some(())
        },
    )
    .await;
    (vm_port, trunk, guest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a QEMU guest (scripts/vm); scripts/test runs it"]
async fn vlan_containers_in_a_vm_are_trunk_subports() {
    with_world(2, |w| async move {
        let (vm_net, vm_subnet) = w.network(&w.cidr(2)).await;
        let (_vm_port, trunk, guest) =
            vm_on_a_trunk(&w, &vm_net, &vm_subnet, "10.203.2.10", false).await;
        let mut plugin = w.start_guest_kuryr(&guest, VLAN_CONF).await;

        // The containers' network is not the VM's: that is what trunks are for.
        let cidr = w.cidr(3);
        let (net, pool) = plugin.create_network(&w, &cidr).await;
        let network =
            w.n.networks()
                .list(&Filters::new().tags(id_tags(&net)))
                .await
                .unwrap()
                .pop()
                .unwrap();
        w.networks.lock().unwrap().push(network.id.clone());
        let subnet =
            w.n.subnets()
                .list(&Filters::new().eq("network_id", network.id.as_str()))
                .await
                .unwrap()
                .pop()
                .unwrap();
        let target = w
            .vm_port(&network.id, &subnet.id, "10.203.3.20", "-target")
            .await;
        let target_ns = w.plug_namespace("t", &target, "br-int");
        w.active(&target.id).await;

        // Another subport already has VLAN 100: kuryr must leave it and its id alone.
        let neighbour =
            w.n.ports()
                .create(&PortSpec {
                    name: Some(w.name("-neighbour")),
                    network_id: Some(network.id.clone()),
                    ..Default::default()
                })
                .await
                .unwrap();
        w.n.add_subports(
            &trunk.id,
            &[kuryr_openstack::neutron::Subport {
                port_id: neighbour.id.clone(),
                segmentation_type: "vlan".into(),
                segmentation_id: 100,
                mac_address: None,
            }],
        )
        .await
        .unwrap();

        // A CreateEndpoint whose link cannot be made (its name is held by a bridge) says so
        // and takes its subport off the trunk again.
        let mac = "02:42:0a:cb:03:09";
        let address = plugin.request_address(&pool, mac).await;
        let held = ports_with_ip(&w.n, &network.id, bare(&address))
            .await
            .remove(0);
        let name = format!("t_c{}", &held.id[..11]);
        guest_ip(&guest, &["link", "add", "name", &name, "type", "bridge"]).await;
        let ep = docker_id();
        let (status, answer) = plugin.create_endpoint(&net, &ep, &address, mac).await;
        assert_eq!(status, 500, "{answer}");
        let err = answer["Err"].as_str().unwrap();
        assert!(
            err.contains(&format!("{name} exists but is a bridge")),
            "{err}"
        );
        let log = guest_kuryr_log(&guest).await;
        assert!(log.contains("attached subport"), "{log}");
        assert!(log.contains("detached subport"), "{log}");
        assert!(
            port_of(&w.n, &ep).await.is_none(),
            "the port lost the endpoint's tags"
        );
        assert_eq!(
            subports_of(&w.n, &trunk.id).await.len(),
            1,
            "only the neighbour"
        );
        guest_ip(&guest, &["link", "del", &name]).await;
        plugin.release_address(&pool, &address).await;
        assert!(w.n.ports().get_opt(&held.id).await.unwrap().is_none());

        // Two containers, two subports with VLAN ids of their own.
        let mut endpoints = Vec::new();
        for i in 1..=2 {
            let mac = format!("02:42:0a:cb:03:0{i}");
            let address = plugin.request_address(&pool, &mac).await;
            let ep = docker_id();
            let (status, answer) = plugin.create_endpoint(&net, &ep, &address, &mac).await;
            assert_eq!(status, 200, "{answer}");
            endpoints.push((ep, address, mac));
        }
        let on_trunk = subports_of(&w.n, &trunk.id).await;
        assert_eq!(on_trunk.len(), 3, "{on_trunk:?}");
        let mut vlan_ids = Vec::new();
        let mut containers = Vec::new();
        for (ep, address, mac) in &endpoints {
            let port = port_of(&w.n, ep).await.expect("the endpoint's port");
            assert_eq!(port.device_id, "", "a subport has no device_id");
            let mine = on_trunk
                .iter()
                .find(|s| s.port_id == port.id)
                .expect("a subport");
            assert_eq!(mine.segmentation_type, "vlan");
            assert!(
                (1..=4094).contains(&mine.segmentation_id) && mine.segmentation_id != 100,
                "{mine:?}"
            );
            vlan_ids.push(mine.segmentation_id);
            let name = format!("t_c{}", &port.id[..11]);
            let link = guest.link(&name).await.expect("the VLAN link in the VM");
            assert_eq!(link["linkinfo"]["info_kind"], "vlan", "{link}");
            assert_eq!(
                link["linkinfo"]["info_data"]["id"], mine.segmentation_id,
                "{link}"
            );
            assert_eq!(link["link"], "eth0", "{link}");
            assert_eq!(link["address"], mac.as_str(), "{link}");
            assert_eq!(link["mtu"], 1450, "{link}");
            // Neutron's trunk plugin binds the subport to the VM's host; the agent wires it.
            let bound = w.active(&port.id).await;
            assert_eq!(bound.binding_host_id, hostname());
            assert_eq!(bound.device_owner, "trunk:subport");

            let src = plugin.join(&net, ep).await;
            assert_eq!(src, name);
            let container = into_guest_container(&guest, &src, address).await;
            pings_both_ways(
                &guest,
                &container,
                "10.203.3.20",
                &target_ns,
                bare(address),
                "VLAN",
            )
            .await;
            containers.push((container, src, port.id.clone()));
        }
        assert_ne!(vlan_ids[0], vlan_ids[1], "two containers, two VLAN ids");
        let first = containers[0].0.clone();
        assert!(
            guest
                .pings(Some(&first), bare(&endpoints[1].1), Duration::from_secs(30))
                .await,
            "containers on two VLANs of one trunk reach each other through br-int"
        );
        tcp_exchange(
            &guest,
            &first,
            &target_ns,
            "10.203.3.20:7003".parse().unwrap(),
        )
        .await;

        // kuryr put its subnet on the stack's router (default_router): through it, the
        // container reaches a port on another Neutron network, its gateway the subnet's, as
        // Docker sets it from the IPAM pool.
        let router = router1(&w).await;
        assert!(
            routed_subnets(&w, &router.id).await.contains(&subnet.id),
            "kuryr attached its subnet to router1"
        );
        let far_ns = behind_the_router(&w, &router.id).await;
        let gateway = subnet.gateway_ip.clone().expect("the subnet's gateway");
        guest_ip(
            &guest,
            &["-n", &first, "route", "add", "default", "via", &gateway],
        )
        .await;
        assert!(
            guest
                .pings(Some(&first), "10.203.8.20", Duration::from_secs(60))
                .await,
            "the container in the VM cannot ping the port behind the router"
        );
        tcp_exchange(&guest, &first, &far_ns, "10.203.8.20:7004".parse().unwrap()).await;

        // A kuryr restart (kill -9) in the guest keeps their traffic, and the new daemon
        // takes them down.
        let pid = guest.run(&["/bin/pidof", "kuryr"]).await;
        guest.run(&["/bin/kill", "-9", pid.trim()]).await;
        eventually(
            "kuryr gone in the guest",
            Duration::from_secs(10),
            || async { (guest.exec(&["/bin/pidof", "kuryr"]).await.code != 0).then_some(()) },
        )
        .await;
        assert!(
            guest
                .pings(Some(&first), "10.203.3.20", Duration::from_secs(30))
                .await,
            "the container lost its traffic with kuryr gone"
        );
        plugin = w.start_guest_kuryr(&guest, VLAN_CONF).await;
        assert!(
            guest
                .pings(
                    Some(&containers[1].0),
                    "10.203.3.20",
                    Duration::from_secs(30)
                )
                .await,
            "the container lost its traffic after kuryr's restart"
        );

        for ((ep, _, _), (container, src, port_id)) in endpoints.iter().zip(&containers) {
            out_of_guest_container(&guest, container, src).await;
            plugin.delete_endpoint(&net, ep).await;
            assert!(guest.link(src).await.is_none(), "the VLAN link went");
            assert!(
                !subports_of(&w.n, &trunk.id)
                    .await
                    .iter()
                    .any(|s| s.port_id == *port_id),
                "the subport went"
            );
            plugin.delete_endpoint(&net, ep).await;
        }
        // Only the neighbour is left on the trunk, with its VLAN id.
        let left = subports_of(&w.n, &trunk.id).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(
            (left[0].port_id.as_str(), left[0].segmentation_id),
            (neighbour.id.as_str(), 100)
        );
        // A port left on the trunk (a DeleteEndpoint that failed half-way) cannot be deleted
        // as it is: ReleaseAddress takes it off the trunk first.
        let last_port = &containers[1].2;
        w.n.add_subports(
            &trunk.id,
            &[kuryr_openstack::neutron::Subport {
                port_id: last_port.clone(),
                segmentation_type: "vlan".into(),
                segmentation_id: 200,
                mac_address: None,
            }],
        )
        .await
        .unwrap();
        for (_, address, _) in &endpoints {
            plugin.release_address(&pool, address).await;
        }
        for (_, _, port_id) in &containers {
            assert!(w.n.ports().get_opt(port_id).await.unwrap().is_none());
        }
        let left = subports_of(&w.n, &trunk.id).await;
        assert_eq!(left.len(), 1, "{left:?}");

        // Docker removes the network once the ports that are not kuryr's are gone.
        w.n.remove_subports(
            &trunk.id,
            &[kuryr_openstack::neutron::Subport {
                port_id: neighbour.id.clone(),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
        for other in [&neighbour.id, &target.id] {
            w.n.ports().delete(other).await.unwrap();
        }
        plugin.delete_network(&net, &pool).await;
        assert!(w.n.networks().get_opt(&network.id).await.unwrap().is_none());
        assert!(w.n.subnetpools().get_opt(&pool).await.unwrap().is_none());
        assert!(
            !routed_subnets(&w, &router.id).await.contains(&subnet.id),
            "kuryr took its subnet off router1"
        );
    })
    .await;
}

/// `docker ARGS` in the guest; it must succeed. Its stdout, trimmed.
async fn guest_docker(guest: &Guest, args: &[&str]) -> String {
    let mut argv = vec!["docker"];
    argv.extend_from_slice(args);
    guest.run(&argv).await.trim().to_owned()
}

/// Whether container `name` in the guest gets an answer to a ping of `target` within
/// `within`.
async fn container_pings(guest: &Guest, name: &str, target: &str, within: Duration) -> bool {
    let started = Instant::now();
    loop {
        let argv = ["docker", "exec", name, "ping", "-c", "1", "-W", "1", target];
        if guest.exec(&argv).await.code == 0 {
            return true;
        }
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a QEMU guest (scripts/vm); scripts/test runs it"]
async fn docker_in_a_vm_runs_containers_on_trunk_subports() {
    with_world(6, |w| async move {
        let (vm_net, vm_subnet) = w.network(&w.cidr(10)).await;
        let (_vm_port, trunk, guest) =
            vm_on_a_trunk(&w, &vm_net, &vm_subnet, "10.203.10.10", true).await;
        let up = guest.exec(&["docker-up"]).await;
        assert_eq!(up.code, 0, "the guest's Docker engine: {up:?}");
        w.start_guest_kuryr(&guest, VLAN_CONF).await;

        // Docker finds kuryr's socket in the guest's /run/docker/plugins.
        let name = w.name("-dnet");
        let id = guest_docker(
            &guest,
            &[
                "network",
                "create",
                "-d",
                "kuryr",
                "--ipam-driver",
                "kuryr",
                "--subnet",
                "10.203.11.0/24",
                "--gateway",
                "10.203.11.1",
                &name,
            ],
        )
        .await;
        let network =
            w.n.networks()
                .list(&Filters::new().tags(id_tags(&id)))
                .await
                .unwrap()
                .pop()
                .expect("the Docker network's Neutron network");
        w.networks.lock().unwrap().push(network.id.clone());
        let subnet =
            w.n.subnets()
                .list(&Filters::new().eq("network_id", network.id.as_str()))
                .await
                .unwrap()
                .pop()
                .unwrap();
        assert_eq!(subnet.cidr, "10.203.11.0/24");
        let pool = subnet
            .subnetpool_id
            .clone()
            .expect("kuryr's IPAM takes the subnet from a subnetpool");
        w.pools.lock().unwrap().push(pool.clone());
        let target = w
            .vm_port(&network.id, &subnet.id, "10.203.11.20", "-target")
            .await;
        let target_ns = w.plug_namespace("t", &target, "br-int");
        w.active(&target.id).await;

        // Two containers, each on a subport of the VM's trunk with a VLAN id of its own.
        let containers = [w.name("-a"), w.name("-b")];
        let mut addresses = Vec::new();
        let mut vlan_ids = Vec::new();
        let mut ports = Vec::new();
        for container in &containers {
            guest_docker(
                &guest,
                &[
                    "run",
                    "-d",
                    "--name",
                    container,
                    "--network",
                    &name,
                    "kuryr/busybox:latest",
                    "sleep",
                    "3600",
                ],
            )
            .await;
            let address = guest_docker(
                &guest,
                &[
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    container,
                ],
            )
            .await;
            let port = ports_with_ip(&w.n, &network.id, &address).await.remove(0);
            assert_eq!(port.device_owner, "trunk:subport", "{port:?}");
            let on_trunk = subports_of(&w.n, &trunk.id).await;
            let mine = on_trunk
                .iter()
                .find(|s| s.port_id == port.id)
                .unwrap_or_else(|| panic!("{container}'s port is a subport: {on_trunk:?}"));
            assert_eq!(mine.segmentation_type, "vlan");
            vlan_ids.push(mine.segmentation_id);
            let bound = w.active(&port.id).await;
            assert_eq!(bound.binding_host_id, hostname());
            assert!(
                container_pings(&guest, container, "10.203.11.20", Duration::from_secs(30)).await,
                "container {container} in the VM cannot ping the port outside it"
            );
            assert!(
                pings(&target_ns, &address, Duration::from_secs(30)),
                "the port outside the VM cannot ping container {container}"
            );
            addresses.push(address);
            ports.push(port.id);
        }
        assert_ne!(vlan_ids[0], vlan_ids[1], "two containers, two VLAN ids");
        assert!(
            container_pings(
                &guest,
                &containers[0],
                &addresses[1],
                Duration::from_secs(30)
            )
            .await,
            "the two containers reach each other"
        );
        let listener = listen_in(&target_ns, "10.203.11.20:7005".parse().unwrap());
        let received = tokio::task::spawn_blocking(move || answer_one(listener));
        let out = guest
            .exec_with_input(
                &[
                    "docker",
                    "exec",
                    "-i",
                    &containers[0],
                    "nc",
                    "-w",
                    "10",
                    "10.203.11.20",
                    "7005",
                ],
                b"hello from docker\n",
            )
            .await;
        assert_eq!(received.await.unwrap(), "hello from docker\n");
        assert_eq!(out.stdout, "got hello from docker\n", "{out:?}");

        // A container of this machine's Docker engine, through its own kuryr (another control
        // plane, a veth on br-int), on the same Neutron network and subnet.
        docker_harness::check_docker();
        let host = Arc::new(docker_harness::Kuryr::without_daemon("vmhost").await);
        *w.host_docker.lock().unwrap() = Some(host.clone());
        let host_conf =
            docker_harness::stack_config_with(&host.plugin, "[vif_pool]\nenabled = false");
        let host_socket = PathBuf::from(format!("/run/docker/plugins/{}.sock", host.plugin));
        host.serve_with(&host_conf, &host_socket, false).await;
        let host_net = host.name("net");
        let net_opt = format!("neutron.net.uuid={}", network.id);
        let sub_opt = format!("neutron.subnet.uuid={}", subnet.id);
        host.create_network(
            &host_net,
            &[
                "--subnet",
                "10.203.11.0/24",
                "-o",
                &net_opt,
                "-o",
                &sub_opt,
                "--ipam-opt",
                &sub_opt,
            ],
        )
        .await;
        let host_container = host.name("c");
        host.run(&host_container, &["--net", &host_net]).await;
        let host_ip = host.attachment(&host_container, &host_net).await.ip;
        let host_port = ports_with_ip(&w.n, &network.id, &host_ip).await.remove(0);
        let host_port = w.active(&host_port.id).await;
        assert_eq!(host_port.binding_host_id, hostname());
        assert!(
            container_pings(&guest, &containers[0], &host_ip, Duration::from_secs(60)).await,
            "the container in the VM cannot ping the container of this machine's Docker"
        );
        assert!(
            host.pings(&host_container, &addresses[0], Duration::from_secs(30))
                .await,
            "the container of this machine's Docker cannot ping the container in the VM"
        );
        host.docker_ok(&[
            "exec",
            "-d",
            &host_container,
            "sh",
            "-c",
            "echo pong | nc -l -p 7006 > /tmp/got",
        ])
        .await;
        eventually(
            "TCP from the VM's container to this machine's",
            Duration::from_secs(30),
            || async {
                let out = guest
                    .exec_with_input(
                        &[
                            "docker",
                            "exec",
                            "-i",
                            &containers[0],
                            "nc",
                            "-w",
                            "3",
                            &host_ip,
                            "7006",
                        ],
                        b"ping\n",
                    )
                    .await;
                (out.stdout == "pong\n").then_some(())
            },
        )
        .await;
        let got = host
            .docker_ok(&["exec", &host_container, "cat", "/tmp/got"])
            .await;
        assert_eq!(got.trim(), "ping", "what this machine's container received");
        host.remove_container(&host_container).await;
        host.remove_network(&host_net).await;

        // docker rm takes the subports off the trunk and deletes the ports; docker network rm
        // the network, once the port that is not kuryr's is gone.
        let mut rm = vec!["rm", "-f"];
        rm.extend(containers.iter().map(String::as_str));
        guest_docker(&guest, &rm).await;
        assert!(subports_of(&w.n, &trunk.id).await.is_empty());
        for port in &ports {
            assert!(w.n.ports().get_opt(port).await.unwrap().is_none());
        }
        w.n.ports().delete(&target.id).await.unwrap();
        guest_docker(&guest, &["network", "rm", &name]).await;
        assert!(w.n.networks().get_opt(&network.id).await.unwrap().is_none());
        assert!(w.n.subnetpools().get_opt(&pool).await.unwrap().is_none());
        let router = router1(&w).await;
        assert!(!routed_subnets(&w, &router.id).await.contains(&subnet.id));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_mode_needs_the_vm_port_to_be_a_trunk_parent() {
    with_world(3, |w| async move {
        let cidr = w.cidr(4);
        let (vm_net, vm_subnet) = w.network(&cidr).await;
        let vm_port = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.4.10", "-vm")
            .await;
        // The VM's vNIC need not carry traffic for this: only its MAC matters.
        let vm_ns = w.name("v");
        ip(&["netns", "add", &vm_ns]);
        w.netns.lock().unwrap().push(vm_ns.clone());
        ip_in(&vm_ns, &["link", "set", "lo", "up"]);
        ip_in(
            &vm_ns,
            &[
                "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
            ],
        );
        ip_in(
            &vm_ns,
            &["link", "set", "eth0", "address", &vm_port.mac_address, "up"],
        );
        let plugin = Plugin::Socket(w.start_kuryr(&vm_ns, VLAN_CONF).await);
        let (net, pool) = plugin.create_network(&w, &w.cidr(5)).await;
        let network =
            w.n.networks()
                .list(&Filters::new().tags(id_tags(&net)))
                .await
                .unwrap()
                .pop()
                .unwrap();
        w.networks.lock().unwrap().push(network.id.clone());
        let mac = "02:42:0a:cb:05:01";
        let address = plugin.request_address(&pool, mac).await;
        let ep = docker_id();
        let (status, answer) = plugin.create_endpoint(&net, &ep, &address, mac).await;
        assert_eq!(status, 409, "{answer}");
        let err = answer["Err"].as_str().unwrap();
        assert!(
            err.contains(&format!(
                "the VM's port {} is not the parent of a trunk",
                vm_port.id
            )) && err.contains("openstack network trunk create"),
            "{err}"
        );
        assert!(port_of(&w.n, &ep).await.is_none(), "rolled back");
        plugin.release_address(&pool, &address).await;
        plugin.delete_network(&net, &pool).await;
    })
    .await;
}

#[tokio::test]
async fn serve_refuses_a_port_driver_it_does_not_have() {
    support::env("OS_AUTH_URL");
    let dir = std::env::temp_dir().join(format!("kn{:x}-drivers", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (conf, expected) in [
        (
            "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.sriov\n",
            "kuryr has no SR-IOV port driver",
        ),
        (
            "[DEFAULT]\ndefault_port_driver = macvtap\n",
            "default_port_driver = macvtap: no such port driver",
        ),
        (
            "[DEFAULT]\ndefault_port_driver = vlan\n",
            "[binding] link_iface is not set",
        ),
        (
            "[binding]\ndriver = kuryr.lib.binding.drivers.vlan\nlink_iface = eth0\n",
            "set default_port_driver = vlan",
        ),
    ] {
        let file = dir.join("kuryr.conf");
        std::fs::write(&file, conf).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("--config-file")
            .arg(&file)
            .args(["serve", "--socket"])
            .arg(dir.join("kuryr.sock"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{conf}: {stderr}");
        assert!(stderr.contains(expected), "{conf}: {stderr}");
        assert!(
            !dir.join("kuryr.sock").exists(),
            "no socket for a daemon that did not start"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
