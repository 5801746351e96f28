//! Containers inside a VM, against the real Neutron and the real neutron-openvswitch-agent.
//!
//! The "VM" is a network namespace whose `eth0` is a veth carrying the VM port's MAC, its
//! other end plugged into Open vSwitch as Nova's os-vif plugs a VM: into `br-int`, or for a
//! trunk parent into the trunk bridge `tbr-<trunk>` that the agent's trunk handler wires to
//! `br-int`. `kuryr serve` runs INSIDE that namespace (`ip netns exec`), with
//! `default_port_driver` and `link_iface = eth0`, and reaches Keystone and Neutron through a
//! relay that listens on their loopback ports inside the namespace. The test speaks Docker's
//! calls over kuryr's socket, then does what Docker does with the interface Join names: moves
//! it into a container namespace, gives it the address, and pings a plain Neutron port
//! outside the VM (a namespace plugged into br-int).
//!
//! Each test has its own namespaces, OVS ports and Neutron resources (CIDRs 10.203.N.0/24),
//! removed at the end, failed or not.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuryr_openstack::neutron::{
    AddressPair, Filters, FixedIp, Network, NetworkSpec, Neutron, Port, PortSpec, Subnet,
    SubnetSpec, TrunkSpec,
};
use serde_json::{json, Value};
use support::flow::ports_with_ip;
use support::{call_socket, docker_id, eventually, neutron};

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

/// `ip -d -j link show dev NAME` in a namespace, or `None` if there is no such link.
fn link_in(ns: &str, name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "-j", "link", "show", "dev", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let mut links: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    links.pop()
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

/// Whether this kernel can make 802.1Q VLAN links (tried on `parent` in `ns`).
fn kernel_has_vlan(ns: &str, parent: &str) -> bool {
    let ok = Command::new("ip")
        .args([
            "-n",
            ns,
            "link",
            "add",
            "link",
            parent,
            "name",
            "vlanprobe",
            "type",
            "vlan",
            "id",
            "4000",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if ok {
        ip_in(ns, &["link", "del", "vlanprobe"]);
    }
    ok
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
    });
    let outcome = tokio::spawn(body(w.clone())).await;
    let log = w.daemon.lock().unwrap().take().map(Daemon::stop);
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
    /// address), the other end in OVS bridge `bridge` with the external_ids the agent reads.
    fn plug_guest(&self, what: &str, port: &Port, bridge: &str) -> String {
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

    fn kuryr_log(&self) -> String {
        self.daemon
            .lock()
            .unwrap()
            .as_ref()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .unwrap_or_default()
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
// Docker's calls

struct Plugin {
    socket: PathBuf,
}

impl Plugin {
    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        call_socket(&self.socket, path, &serde_json::to_vec(&body).unwrap()).await
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

/// What Docker does with the interface Join named: into the container's namespace, renamed
/// `eth0`, with the address, up.
fn into_container(w: &World, vm_ns: &str, link: &str, address: &str) -> String {
    let ns = w.name(&format!("c{}", &link[3..7]));
    ip(&["netns", "add", &ns]);
    w.netns.lock().unwrap().push(ns.clone());
    ip_in(vm_ns, &["link", "set", link, "netns", &ns]);
    ip_in(&ns, &["link", "set", link, "name", "eth0"]);
    ip_in(&ns, &["addr", "add", address, "dev", "eth0"]);
    ip_in(&ns, &["link", "set", "eth0", "up"]);
    ip_in(&ns, &["link", "set", "lo", "up"]);
    ns
}

/// What Docker does when the container stops: the interface goes back, with its name.
fn out_of_container(container_ns: &str, vm_ns: &str, link: &str) {
    ip_in(container_ns, &["link", "set", "eth0", "down"]);
    ip_in(container_ns, &["link", "set", "eth0", "name", link]);
    ip_in(container_ns, &["link", "set", link, "netns", vm_ns]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
        let vm_ns = w.plug_guest("v", &vm_port, "br-int");
        let target_ns = w.plug_guest("t", &target, "br-int");
        w.active(&vm_port.id).await;
        w.active(&target.id).await;
        let plugin = Plugin {
            socket: w
                .start_kuryr(
                    &vm_ns,
                    "[DEFAULT]\ndefault_port_driver = kuryr_libnetwork.port_driver.drivers.nested\n\
                     [binding]\nlink_iface = eth0\n",
                )
                .await,
        };

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
        ip_in(&vm_ns, &["link", "add", "name", &name, "type", "bridge"]);
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
            link_in(&vm_ns, &name).unwrap()["linkinfo"]["info_kind"],
            "bridge"
        );
        ip_in(&vm_ns, &["link", "del", &name]);
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
            let link = link_in(&vm_ns, &name).expect("the container's link in the VM");
            assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge", "{link}");
            assert_eq!(link["link"], "eth0", "{link}");
            assert_eq!(link["address"], mac.as_str(), "{link}");
            assert_eq!(link["mtu"], 1450, "{link}");
        }

        // The first container talks to a port outside the VM, both ways.
        let (ep, address, _) = &endpoints[0];
        let src = plugin.join(&net, ep).await;
        let port = port_of(&w.n, ep).await.unwrap();
        assert_eq!(src, format!("t_c{}", &port.id[..11]));
        let container = into_container(&w, &vm_ns, &src, address);
        assert!(
            pings(&container, "10.203.1.20", Duration::from_secs(30)),
            "the container in the VM cannot ping the port outside it"
        );
        assert!(
            pings(&target_ns, bare(address), Duration::from_secs(5)),
            "the port outside the VM cannot ping the container"
        );
        // The pair is what lets the container out: without it, Neutron's firewall drops it.
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
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            !pings(&container, "10.203.1.20", Duration::from_secs(3)),
            "the container got out without its allowed address pair"
        );
        out_of_container(&container, &vm_ns, &src);

        for (ep, address, _) in &endpoints {
            let port = port_of(&w.n, ep).await.unwrap();
            plugin.delete_endpoint(&net, ep).await;
            assert!(link_in(&vm_ns, &format!("t_c{}", &port.id[..11])).is_none());
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
        let log = w.kuryr_log();
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
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlan_containers_in_a_vm_are_trunk_subports() {
    with_world(2, |w| async move {
        let (vm_net, vm_subnet) = w.network(&w.cidr(2)).await;
        // As Nova does: the trunk first (the OVS trunk driver refuses a bound parent), then
        // the VM boots and binds its port.
        let vm_port = w
            .vm_port(&vm_net.id, &vm_subnet.id, "10.203.2.10", "-vm")
            .await;
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
        let vm_ns = w.plug_guest("v", &vm_port, &bridge);
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
        let plugin = Plugin {
            socket: w
                .start_kuryr(
                    &vm_ns,
                    "[DEFAULT]\ndefault_port_driver = vlan\n[binding]\nlink_iface = eth0\n",
                )
                .await,
        };

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
        let target_ns = w.plug_guest("t", &target, "br-int");
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

        let mac = "02:42:0a:cb:03:01";
        let address = plugin.request_address(&pool, mac).await;
        let ep = docker_id();
        let vlan = kernel_has_vlan(&vm_ns, "eth0");
        let (status, answer) = plugin.create_endpoint(&net, &ep, &address, mac).await;
        let port_id = if vlan {
            assert_eq!(status, 200, "{answer}");
            vlan_data_plane(
                &w, &plugin, &net, &ep, &address, mac, &trunk.id, &vm_ns, &target_ns,
            )
            .await
        } else {
            // This kernel cannot make the VLAN link (CONFIG_VLAN_8021Q unset, no modules):
            // CreateEndpoint says so and undoes the subport it had added.
            assert_eq!(status, 500, "{answer}");
            let err = answer["Err"].as_str().unwrap();
            assert!(err.contains("CONFIG_VLAN_8021Q"), "{err}");
            let log = w.kuryr_log();
            assert!(log.contains("attached subport"), "{log}");
            assert!(log.contains("detached subport"), "{log}");
            assert!(
                port_of(&w.n, &ep).await.is_none(),
                "the port lost the endpoint's tags"
            );
            let ports = ports_with_ip(&w.n, &network.id, bare(&address)).await;
            assert_eq!(ports.len(), 1);
            assert_eq!(ports[0].device_id, "");
            let name = format!("t_c{}", &ports[0].id[..11]);
            assert!(link_in(&vm_ns, &name).is_none());
            eprintln!(
                "this kernel has no 802.1Q VLAN support: checked the subport and its rollback, \
                 not the data plane"
            );
            ports[0].id.clone()
        };
        // Only the neighbour is left on the trunk, with its VLAN id.
        let left = subports_of(&w.n, &trunk.id).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(
            (left[0].port_id.as_str(), left[0].segmentation_id),
            (neighbour.id.as_str(), 100)
        );
        // A port left on the trunk (a DeleteEndpoint that failed half-way) cannot be deleted
        // as it is: ReleaseAddress takes it off the trunk first.
        w.n.add_subports(
            &trunk.id,
            &[kuryr_openstack::neutron::Subport {
                port_id: port_id.clone(),
                segmentation_type: "vlan".into(),
                segmentation_id: 200,
                mac_address: None,
            }],
        )
        .await
        .unwrap();
        plugin.release_address(&pool, &address).await;
        assert!(w.n.ports().get_opt(&port_id).await.unwrap().is_none());
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
    })
    .await;
}

/// The `vlan` data plane on a kernel with 802.1Q: the subport, its VLAN link, packets to a
/// port outside the VM, and DeleteEndpoint. Returns the endpoint's port id.
#[allow(clippy::too_many_arguments)]
async fn vlan_data_plane(
    w: &World,
    plugin: &Plugin,
    net: &str,
    ep: &str,
    address: &str,
    mac: &str,
    trunk_id: &str,
    vm_ns: &str,
    target_ns: &str,
) -> String {
    let port = port_of(&w.n, ep).await.expect("the endpoint's port");
    assert_eq!(port.device_id, "", "a subport has no device_id");
    let on_trunk = subports_of(&w.n, trunk_id).await;
    assert_eq!(on_trunk.len(), 2, "{on_trunk:?}");
    let mine = on_trunk
        .iter()
        .find(|s| s.port_id == port.id)
        .expect("a subport");
    assert_eq!(mine.segmentation_type, "vlan");
    assert!((1..=4094).contains(&mine.segmentation_id) && mine.segmentation_id != 100);
    let name = format!("t_c{}", &port.id[..11]);
    let link = link_in(vm_ns, &name).expect("the VLAN link in the VM");
    assert_eq!(link["linkinfo"]["info_kind"], "vlan", "{link}");
    assert_eq!(
        link["linkinfo"]["info_data"]["id"], mine.segmentation_id,
        "{link}"
    );
    assert_eq!(link["link"], "eth0", "{link}");
    assert_eq!(link["address"], mac, "{link}");
    assert_eq!(link["mtu"], 1450, "{link}");
    // Neutron's trunk plugin binds the subport to the VM's host; the agent wires it.
    let bound = w.active(&port.id).await;
    assert_eq!(bound.binding_host_id, hostname());
    assert_eq!(bound.device_owner, "trunk:subport");

    let src = plugin.join(net, ep).await;
    assert_eq!(src, name);
    let container = into_container(w, vm_ns, &src, address);
    assert!(
        pings(&container, "10.203.3.20", Duration::from_secs(30)),
        "the container in the VM cannot ping the port outside it over its VLAN"
    );
    assert!(pings(target_ns, bare(address), Duration::from_secs(5)));
    out_of_container(&container, vm_ns, &src);

    plugin.delete_endpoint(net, ep).await;
    assert!(link_in(vm_ns, &name).is_none());
    plugin.delete_endpoint(net, ep).await;
    port.id
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
        let plugin = Plugin {
            socket: w
                .start_kuryr(
                    &vm_ns,
                    "[DEFAULT]\ndefault_port_driver = vlan\n[binding]\nlink_iface = eth0\n",
                )
                .await,
        };
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
