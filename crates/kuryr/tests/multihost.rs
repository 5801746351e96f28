//! Several hosts against the real agents: the simulated compute hosts of `scripts/hosts`
//! (each its own network and mount namespaces, Open vSwitch, `neutron-openvswitch-agent`,
//! Docker engine and `kuryr serve`, tunnelling VXLAN to the others) share Neutron networks.
//! Containers on two hosts talk through the tunnels, a port plugged by hand (a VM) reaches a
//! container on another host with security groups holding across hosts, one host's kuryr
//! survives SIGKILL while the other keeps working, and each host's pools keep to their host.
//!
//! The hosts must be up: `scripts/hosts up 2` (scripts/test does it, runs this suite alone
//! and takes the hosts down afterwards):
//! `cargo test -p kuryr --test multihost -- --ignored --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docker_harness::{
    config, docker_bin, image, in_cidr, remove_network_and_ports, repo_root, write_private,
};
use kuryr::openstack::neutron_client;
use kuryr_openstack::neutron::{
    Filters, FixedIp, Network, NetworkSpec, Neutron, Port, PortSpec, SecurityGroupRuleSpec,
    SecurityGroupSpec, Subnet, SubnetSpec,
};
use serde_json::Value;

/// The first ping across hosts waits for both agents to wire the ports and for the tunnel
/// flows (tens of seconds on a busy machine).
const FIRST_PING: Duration = Duration::from_secs(90);
const POOL_PORT_NAME: &str = "kuryr-pool-port";

/// `scripts/hosts` with these arguments; its output, failing the test with its errors.
fn hosts_script(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("scripts/hosts"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/hosts");
    assert!(
        out.status.success(),
        "scripts/hosts {args:?} failed ({}): {}{}\nThis suite needs the simulated hosts: run \
         `scripts/hosts up 2` after `scripts/stack up`",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/hosts up 2` bringing a host back with an empty Docker data root and kuryr
/// state (a host reinstalled after it died).
fn hosts_up_fresh() {
    let out = Command::new(repo_root().join("scripts/hosts"))
        .args(["up", "2"])
        .env("KURYR_HOSTS_FRESH_DOCKER", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/hosts");
    assert!(
        out.status.success(),
        "KURYR_HOSTS_FRESH_DOCKER=1 scripts/hosts up 2 failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One simulated host, as `scripts/hosts env I` describes it.
#[derive(Clone)]
struct Host {
    index: u32,
    name: String,
    env: HashMap<String, String>,
}

impl Host {
    fn get(index: u32) -> Host {
        let text = hosts_script(&["env", &index.to_string()]);
        let mut env = HashMap::new();
        for line in text.lines() {
            let Some((key, value)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
            else {
                continue;
            };
            let value = value.trim_matches(|c| c == '\'' || c == '"');
            env.insert(key.to_owned(), value.to_owned());
        }
        assert!(
            env.contains_key("DOCKER_HOST"),
            "scripts/hosts env {index} gives no DOCKER_HOST: {text}"
        );
        Host {
            index,
            name: format!("host-{index}"),
            env,
        }
    }

    /// The Docker client against this host's engine.
    async fn docker(&self, args: &[&str]) -> Output {
        let mut command = Command::new(docker_bin());
        command
            .args(args)
            .env("DOCKER_HOST", &self.env["DOCKER_HOST"]);
        output(command).await
    }

    async fn docker_ok(&self, args: &[&str]) -> String {
        self.succeeds(&format!("docker {args:?}"), self.docker(args).await)
    }

    /// A command inside the host's namespaces.
    async fn exec(&self, args: &[&str]) -> Output {
        let mut command = Command::new(repo_root().join("scripts/hosts"));
        command.arg("exec").arg(self.index.to_string()).args(args);
        output(command).await
    }

    async fn exec_ok(&self, args: &[&str]) -> String {
        self.succeeds(&format!("{args:?}"), self.exec(args).await)
    }

    /// The trimmed standard output of a command that must have succeeded on this host.
    fn succeeds(&self, what: &str, out: Output) -> String {
        assert!(
            out.status.success(),
            "{}: {what}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The pids of this host's `kuryr serve` (the processes named kuryr in its mount
    /// namespace).
    fn kuryr_pids(&self) -> Vec<u32> {
        let ns = std::fs::metadata(&self.env["KURYR_HOST_MNT_NS"])
            .expect("the host's mount namespace file")
            .ino();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if comm.trim() == "kuryr" && !zombie && mnt == format!("mnt:[{ns}]") {
                pids.push(pid);
            }
        }
        pids
    }

    /// `kuryr gc` against this host's daemon, taking anything old enough to be an orphan:
    /// its JSON report.
    async fn gc(&self) -> Value {
        self.gc_with(&["--min-age", "0", "--confirm-after", "1"])
            .await
    }

    /// `kuryr gc ARGS --json` against this host's daemon: its JSON report.
    async fn gc_with(&self, args: &[&str]) -> Value {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kuryr"));
        command
            .args(["--config-file", &self.env["KURYR_HOST_CONFIG"], "gc"])
            .args(["--admin-socket", &self.env["KURYR_HOST_ADMIN_SOCKET"]])
            .args(args)
            .arg("--json");
        let out = output(command).await;
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: kuryr gc gave no JSON report ({e}): {}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// A libnetwork call straight to this host's kuryr, as its Docker engine sends it.
    async fn plugin(&self, path: &str, body: Value) -> (u16, Value) {
        let socket = std::path::PathBuf::from(&self.env["KURYR_HOST_PLUGIN_SOCKET"]);
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || docker_harness::plugin_call(&socket, &path, &body))
            .await
            .unwrap()
    }

    /// Whether `container` gets an answer to ping from `ip` within `within`.
    async fn pings(&self, container: &str, ip: &str, within: Duration) -> bool {
        let ping = ["exec", container, "ping", "-c", "1", "-W", "1", ip];
        answers_within(within, || self.docker(&ping)).await
    }
}

/// A command's output, run off the async workers, with no standard input.
async fn output(mut command: Command) -> Output {
    command.stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Whether `probe` succeeds once within `within` (tried every half second).
async fn answers_within<F, Fut>(within: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Output>,
{
    let started = Instant::now();
    loop {
        if probe().await.status.success() {
            return true;
        }
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A container on a host, with what Docker says of its attachment.
#[derive(Debug, Clone)]
struct Container {
    name: String,
    ip: String,
}

/// What a test made on the hosts and in Neutron, removed at the end whatever happened.
struct Scene {
    prefix: String,
    neutron: Neutron,
    hosts: [Host; 2],
    containers: Mutex<Vec<(u32, String)>>,
    networks: Mutex<Vec<(u32, String)>>,
    neutron_networks: Mutex<Vec<String>>,
    neutron_ports: Mutex<Vec<String>>,
    groups: Mutex<Vec<String>>,
    vms: Mutex<Vec<(u32, String)>>,
    /// Docker networks made by libnetwork calls straight to the hosts' kuryr, and the
    /// pools RequestPool gave (host, pool id): given back as Docker would.
    plugin_networks: Mutex<Vec<String>>,
    plugin_pools: Mutex<Vec<(u32, String)>>,
}

impl Scene {
    fn host(&self, index: u32) -> &Host {
        &self.hosts[index as usize - 1]
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// A Neutron network with one IPv4 subnet, as a user makes it for VMs.
    async fn user_network(&self, cidr: &str) -> (Network, Subnet) {
        let net = self
            .neutron
            .networks()
            .create(&NetworkSpec {
                name: Some(self.name("net")),
                ..Default::default()
            })
            .await
            .unwrap();
        self.neutron_networks.lock().unwrap().push(net.id.clone());
        let subnet = self
            .neutron
            .subnets()
            .create(&SubnetSpec {
                name: Some(self.name("subnet")),
                network_id: Some(net.id.clone()),
                ip_version: Some(4),
                cidr: Some(cidr.to_owned()),
                enable_dhcp: Some(false),
                ..Default::default()
            })
            .await
            .unwrap();
        (net, subnet)
    }

    /// The Docker network `name` on a host, on the user's network and subnet.
    async fn attach(&self, host: u32, name: &str, cidr: &str, net: &Network, subnet: &Subnet) {
        let net_opt = format!("neutron.net.uuid={}", net.id);
        let sub_opt = format!("neutron.subnet.uuid={}", subnet.id);
        self.networks.lock().unwrap().push((host, name.to_owned()));
        self.host(host)
            .docker_ok(&[
                "network",
                "create",
                "-d",
                "kuryr",
                "--ipam-driver",
                "kuryr",
                "--subnet",
                cidr,
                "-o",
                &net_opt,
                "-o",
                &sub_opt,
                "--ipam-opt",
                &sub_opt,
                name,
            ])
            .await;
    }

    async fn remove_network(&self, host: u32, name: &str) {
        self.host(host).docker_ok(&["network", "rm", name]).await;
        self.networks
            .lock()
            .unwrap()
            .retain(|(h, n)| !(*h == host && n == name));
    }

    async fn run(&self, host: u32, name: &str, network: &str) -> Container {
        self.containers
            .lock()
            .unwrap()
            .push((host, name.to_owned()));
        let h = self.host(host);
        h.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--net",
            network,
            &image(),
            "sleep",
            "3600",
        ])
        .await;
        let info: Value = serde_json::from_str(
            &h.docker_ok(&[
                "inspect",
                "--format",
                "{{json .NetworkSettings.Networks}}",
                name,
            ])
            .await,
        )
        .unwrap();
        let attached = &info[network];
        Container {
            name: name.to_owned(),
            ip: attached["IPAddress"].as_str().unwrap().to_owned(),
        }
    }

    async fn remove_container(&self, host: u32, name: &str) {
        self.host(host).docker_ok(&["rm", "-f", name]).await;
        self.containers
            .lock()
            .unwrap()
            .retain(|(h, n)| !(*h == host && n == name));
    }

    /// The Neutron port holding a container's address on `network_id`.
    async fn port_of(&self, network_id: &str, c: &Container) -> Port {
        let filters = Filters::new()
            .eq("network_id", network_id)
            .eq("fixed_ips", format!("ip_address={}", c.ip));
        let ports = self.neutron.ports().list(&filters).await.unwrap();
        assert_eq!(
            ports.len(),
            1,
            "one port holds {}'s {}: {ports:#?}",
            c.name,
            c.ip
        );
        ports.into_iter().next().unwrap()
    }

    /// The kuryr pools that pin `subnet_id`.
    async fn pools_of_subnet(
        &self,
        cidr: &str,
        subnet_id: &str,
    ) -> Vec<kuryr_openstack::neutron::SubnetPool> {
        self.neutron
            .subnetpools()
            .list(&Filters::new().eq("name", format!("kuryrPool-{cidr}")))
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.tags.iter().any(|t| t == subnet_id))
            .collect()
    }

    async fn ports_on(&self, network_id: &str) -> Vec<Port> {
        self.neutron
            .ports()
            .list(&Filters::new().eq("network_id", network_id))
            .await
            .unwrap()
    }

    /// The free pool ports of `host` on a network (no container holds them).
    async fn free_pool_ports(&self, network_id: &str, host: &str) -> Vec<Port> {
        self.ports_on(network_id)
            .await
            .into_iter()
            .filter(|p| p.name == POOL_PORT_NAME && p.device_id.is_empty())
            .filter(|p| p.binding_host_id == host)
            .collect()
    }

    /// The ids of [`Scene::free_pool_ports`].
    async fn free_pool_port_ids(&self, network_id: &str, host: &str) -> HashSet<String> {
        self.free_pool_ports(network_id, host)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect()
    }

    /// TCP from `from` (on host `a`) to `to` (on host `b`): a payload arrives.
    async fn passes_tcp(&self, a: u32, from: &str, b: u32, to: &Container) -> bool {
        let started = Instant::now();
        let payload = format!("tcp-from-{from}");
        while started.elapsed() < Duration::from_secs(60) {
            // A listener each round: one connection ends it.
            self.host(b)
                .docker_ok(&[
                    "exec",
                    "-d",
                    &to.name,
                    "sh",
                    "-c",
                    "nc -l -p 7000 > /tmp/got",
                ])
                .await;
            let sent = self
                .host(a)
                .docker(&[
                    "exec",
                    from,
                    "sh",
                    "-c",
                    &format!("echo {payload} | nc -w 3 {} 7000", to.ip),
                ])
                .await;
            if sent.status.success() {
                let poll = Instant::now();
                while poll.elapsed() < Duration::from_secs(5) {
                    let got = self
                        .host(b)
                        .docker(&["exec", &to.name, "cat", "/tmp/got"])
                        .await;
                    if String::from_utf8_lossy(&got.stdout).trim() == payload {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    async fn cleanup(&self) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        for (host, c) in containers.iter().rev() {
            let _ = self.host(*host).docker(&["rm", "-f", c]).await;
        }
        let vms = std::mem::take(&mut *self.vms.lock().unwrap());
        for (host, name) in vms {
            unplug_vm(self.host(host), &name).await;
        }
        let ports = std::mem::take(&mut *self.neutron_ports.lock().unwrap());
        for p in ports {
            let _ = self.neutron.ports().delete(&p).await;
        }
        let networks = std::mem::take(&mut *self.networks.lock().unwrap());
        for (host, n) in networks.iter().rev() {
            let out = self.host(*host).docker(&["network", "rm", n]).await;
            if !out.status.success() {
                eprintln!(
                    "cleanup: {} docker network rm {n}: {}",
                    self.host(*host).name,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let plugin_networks = std::mem::take(&mut *self.plugin_networks.lock().unwrap());
        for id in plugin_networks {
            for h in &self.hosts {
                let delete = serde_json::json!({ "NetworkID": id });
                let _ = h.plugin("/NetworkDriver.DeleteNetwork", delete).await;
            }
        }
        let plugin_pools = std::mem::take(&mut *self.plugin_pools.lock().unwrap());
        for (host, id) in plugin_pools {
            let release = serde_json::json!({ "PoolID": id });
            let _ = self
                .host(host)
                .plugin("/IpamDriver.ReleasePool", release)
                .await;
        }
        let nets = std::mem::take(&mut *self.neutron_networks.lock().unwrap());
        for n in nets {
            if let Ok(Some(net)) = self.neutron.networks().get_opt(&n).await {
                remove_network_and_ports(&self.neutron, &net).await;
            }
        }
        let groups = std::mem::take(&mut *self.groups.lock().unwrap());
        for g in groups {
            let _ = self.neutron.security_groups().delete(&g).await;
        }
    }

    /// Networks an earlier run of this test left (killed before its clean-up).
    async fn purge_leftovers(&self) {
        for h in &self.hosts {
            let out = h
                .docker(&["ps", "-aq", "--filter", &format!("name={}-", self.prefix)])
                .await;
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = h.docker(&["rm", "-f", id]).await;
            }
            let out = h
                .docker(&[
                    "network",
                    "ls",
                    "-q",
                    "--filter",
                    &format!("name={}-", self.prefix),
                ])
                .await;
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = h.docker(&["network", "rm", id]).await;
            }
        }
        let nets = self.neutron.networks().list(&Filters::new()).await.unwrap();
        for net in nets
            .iter()
            .filter(|n| n.name.starts_with(&format!("{}-", self.prefix)))
        {
            eprintln!(
                "removing network {} ({}) left by an earlier run",
                net.id, net.name
            );
            remove_network_and_ports(&self.neutron, net).await;
        }
    }
}

/// Run a test body against hosts 1 and 2; whatever it made is removed afterwards, also when
/// it panicked (the panic is then re-raised with both hosts' kuryr logs).
async fn with_hosts<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<Scene>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let config = config();
    let scene = Arc::new(Scene {
        prefix: format!("kmh-{test}"),
        neutron: neutron_client(&config.openstack).unwrap(),
        hosts: [Host::get(1), Host::get(2)],
        containers: Mutex::default(),
        networks: Mutex::default(),
        neutron_networks: Mutex::default(),
        neutron_ports: Mutex::default(),
        groups: Mutex::default(),
        vms: Mutex::default(),
        plugin_networks: Mutex::default(),
        plugin_pools: Mutex::default(),
    });
    scene.purge_leftovers().await;
    let outcome = tokio::spawn(body(scene.clone())).await;
    scene.cleanup().await;
    if let Err(e) = outcome {
        for h in &scene.hosts {
            if let Some(log) = h.env.get("KURYR_HOST_LOG") {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(80).collect();
                eprintln!("--- {} kuryr log (last lines) ---", h.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A VM's port plugged by hand into a host's br-int as Nova's os-vif plugs it, its interface
/// in a network namespace `name` of the host.
async fn plug_vm(host: &Host, name: &str, port: &Port, prefix_len: u8) {
    let host_end = format!("vmh{}", &port.id[..11]);
    let address = format!("{}/{prefix_len}", port.fixed_ips[0].ip_address);
    let iface_id = format!("external-ids:iface-id={}", port.id);
    let mac = format!("external-ids:attached-mac={}", port.mac_address);
    let steps: Vec<Vec<&str>> = vec![
        vec!["ip", "netns", "add", name],
        vec![
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "vm0", "netns", name,
        ],
        vec!["ip", "link", "set", &host_end, "up"],
        vec![
            "ip",
            "netns",
            "exec",
            name,
            "ip",
            "link",
            "set",
            "vm0",
            "address",
            &port.mac_address,
        ],
        vec![
            "ip", "netns", "exec", name, "ip", "link", "set", "vm0", "mtu", "1450",
        ],
        vec![
            "ip", "netns", "exec", name, "ip", "link", "set", "vm0", "up",
        ],
        vec![
            "ip", "netns", "exec", name, "ip", "addr", "add", &address, "dev", "vm0",
        ],
        // TCP through a veth on the userspace datapath needs TX checksum offload off.
        vec![
            "ip", "netns", "exec", name, "ethtool", "-K", "vm0", "tx", "off",
        ],
        vec![
            "ovs-vsctl",
            "--may-exist",
            "add-port",
            "br-int",
            &host_end,
            "--",
            "set",
            "Interface",
            &host_end,
            &iface_id,
            &mac,
            "external-ids:iface-status=active",
            "external-ids:vm-uuid=kmh-vm",
        ],
    ];
    for step in steps {
        host.exec_ok(&step).await;
    }
}

async fn unplug_vm(host: &Host, name: &str) {
    let out = host.exec(&["ip", "netns", "pids", name]).await;
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = host.exec(&["kill", "-9", pid]).await;
    }
    let links = host.exec(&["ip", "-o", "link", "show"]).await;
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        if let Some(link) = line.split(": ").nth(1) {
            let link = link.split('@').next().unwrap_or(link);
            if link.starts_with("vmh") {
                let _ = host
                    .exec(&["ovs-vsctl", "--if-exists", "del-port", "br-int", link])
                    .await;
                let _ = host.exec(&["ip", "link", "del", link]).await;
            }
        }
    }
    let _ = host.exec(&["ip", "netns", "del", name]).await;
}

/// Ping from inside a host's network namespace `netns` (a VM).
async fn vm_pings(host: &Host, netns: &str, ip: &str, within: Duration) -> bool {
    let ping = [
        "ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", ip,
    ];
    answers_within(within, || host.exec(&ping)).await
}

/// Poll `f` until it gives `Some`, for at most `within`.
async fn within<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
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
            started.elapsed() < within,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn containers_on_two_hosts_talk_through_the_tunnels() {
    const CIDR: &str = "10.210.1.0/24";
    with_hosts("talk", |s| async move {
        let (net, subnet) = s.user_network(CIDR).await;
        let docker_net = s.name("dn");
        // Two engines, two control planes (their engine ids), attaching at the same moment.
        tokio::join!(
            s.attach(1, &docker_net, CIDR, &net, &subnet),
            s.attach(2, &docker_net, CIDR, &net, &subnet)
        );
        // Each engine has its own pool behind the subnet, marked with its engine's id.
        let pools = s.pools_of_subnet(CIDR, &subnet.id).await;
        assert_eq!(pools.len(), 2, "one pool per engine: {pools:#?}");
        let marks = |p: &kuryr_openstack::neutron::SubnetPool| {
            p.tags.iter().filter(|t| t.starts_with("kuryr.cp:")).count()
        };
        assert!(pools.iter().all(|p| marks(p) == 1), "{pools:#?}");
        assert_ne!(
            pools[0].tags, pools[1].tags,
            "two engines, two control planes"
        );
        let (n1, n2) = (s.name("c1"), s.name("c2"));
        let (c1, c2) = tokio::join!(s.run(1, &n1, &docker_net), s.run(2, &n2, &docker_net));
        // Each port is bound to its own host, wired in that host's br-int and ACTIVE.
        for (host, c) in [(1, &c1), (2, &c2)] {
            let h = s.host(host);
            let port = within("the port ACTIVE", Duration::from_secs(60), || async {
                let p = s.port_of(&net.id, c).await;
                (p.status == "ACTIVE").then_some(p)
            })
            .await;
            assert_eq!(port.binding_host_id, h.name, "{port:#?}");
            let tap = format!("tap{}", &port.id[..11]);
            let ports = h.exec_ok(&["ovs-vsctl", "list-ports", "br-int"]).await;
            assert!(
                ports.lines().any(|l| l == tap),
                "{tap} in {}'s br-int: {ports}",
                h.name
            );
        }
        assert!(
            s.host(1).pings(&c1.name, &c2.ip, FIRST_PING).await,
            "{} on host-1 cannot ping {} on host-2",
            c1.name,
            c2.ip
        );
        assert!(
            s.host(2)
                .pings(&c2.name, &c1.ip, Duration::from_secs(20))
                .await
        );
        assert!(
            s.passes_tcp(1, &c1.name, 2, &c2).await,
            "TCP from host-1 to host-2 over the tunnel"
        );
        // Removal on both hosts leaves the user's network and subnet, without a port.
        s.remove_container(1, &c1.name).await;
        s.remove_network(1, &docker_net).await;
        // host-1's engine gave back only its own pool; host-2's stays.
        let left = s.pools_of_subnet(CIDR, &subnet.id).await;
        assert_eq!(left.len(), 1, "{left:#?}");
        let c3 = s.run(2, &s.name("c3"), &docker_net).await;
        assert!(s.host(2).pings(&c3.name, &c2.ip, FIRST_PING).await);
        s.remove_container(2, &c3.name).await;
        s.remove_container(2, &c2.name).await;
        s.remove_network(2, &docker_net).await;
        assert!(
            s.pools_of_subnet(CIDR, &subnet.id).await.is_empty(),
            "the last engine deletes its pool"
        );
        let left = s.ports_on(&net.id).await;
        assert!(left.is_empty(), "ports left: {left:#?}");
        let net_after = s.neutron.networks().get(&net.id).await.unwrap();
        assert!(
            !net_after.tags.iter().any(|t| t.starts_with("kuryr.")),
            "the network is given back untagged: {:?}",
            net_after.tags
        );
        let subnet_after = s.neutron.subnets().get(&subnet.id).await.unwrap();
        assert!(subnet_after.tags.is_empty(), "{:?}", subnet_after.tags);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn a_vm_port_on_one_host_reaches_a_container_on_another_with_security_groups() {
    const CIDR: &str = "10.210.2.0/24";
    with_hosts("vm", |s| async move {
        let (net, subnet) = s.user_network(CIDR).await;
        let docker_net = s.name("dn");
        s.attach(2, &docker_net, CIDR, &net, &subnet).await;
        let allowed = s.run(2, &s.name("allowed"), &docker_net).await;
        let other = s.run(2, &s.name("other"), &docker_net).await;
        // The VM's own group: ICMP in only from the first container's address.
        let group = s
            .neutron
            .security_groups()
            .create(&SecurityGroupSpec {
                name: Some(s.name("vm-group")),
                ..Default::default()
            })
            .await
            .unwrap();
        s.groups.lock().unwrap().push(group.id.clone());
        s.neutron
            .security_group_rules()
            .create(&SecurityGroupRuleSpec {
                security_group_id: Some(group.id.clone()),
                direction: Some("ingress".into()),
                ethertype: Some("IPv4".into()),
                protocol: Some("icmp".into()),
                remote_ip_prefix: Some(format!("{}/32", allowed.ip)),
                ..Default::default()
            })
            .await
            .unwrap();
        let port = s
            .neutron
            .ports()
            .create(&PortSpec {
                name: Some(s.name("vm-port")),
                network_id: Some(net.id.clone()),
                fixed_ips: Some(vec![FixedIp {
                    subnet_id: subnet.id.clone(),
                    ip_address: "10.210.2.250".into(),
                }]),
                security_groups: Some(vec![group.id.clone()]),
                device_owner: Some("compute:nova".into()),
                device_id: Some("kmh-vm".into()),
                binding_host_id: Some("host-1".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        s.neutron_ports.lock().unwrap().push(port.id.clone());
        let vm = s.name("vm");
        s.vms.lock().unwrap().push((1, vm.clone()));
        plug_vm(s.host(1), &vm, &port, 24).await;
        within(
            "the VM's port ACTIVE on host-1",
            Duration::from_secs(60),
            || async {
                let p = s.neutron.ports().get(&port.id).await.unwrap();
                (p.status == "ACTIVE" && p.binding_host_id == "host-1").then_some(())
            },
        )
        .await;
        let vm_ip = "10.210.2.250";
        assert!(
            s.host(2).pings(&allowed.name, vm_ip, FIRST_PING).await,
            "a container on host-2 reaches the VM on host-1, which its rule allows"
        );
        // The other container is wired (it reaches its neighbour, same group), yet the VM's
        // group drops its pings.
        assert!(
            s.host(2)
                .pings(&other.name, &allowed.ip, Duration::from_secs(30))
                .await
        );
        assert!(
            !s.host(2)
                .pings(&other.name, vm_ip, Duration::from_secs(4))
                .await,
            "the VM's group must drop pings from an address its rule does not name"
        );
        // The containers' group (the project's default) admits its members only.
        assert!(
            !vm_pings(s.host(1), &vm, &allowed.ip, Duration::from_secs(4)).await,
            "the containers' group must drop the VM's pings"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn one_hosts_kuryr_killed_and_restarted_while_the_other_works() {
    const CIDR: &str = "10.210.3.0/24";
    with_hosts("kill", |s| async move {
        let (net, subnet) = s.user_network(CIDR).await;
        let docker_net = s.name("dn");
        s.attach(1, &docker_net, CIDR, &net, &subnet).await;
        s.attach(2, &docker_net, CIDR, &net, &subnet).await;
        let c1 = s.run(1, &s.name("c1"), &docker_net).await;
        let c2 = s.run(2, &s.name("c2"), &docker_net).await;
        assert!(s.host(1).pings(&c1.name, &c2.ip, FIRST_PING).await);
        let host2_port = s.port_of(&net.id, &c2).await;

        let pids = s.host(1).kuryr_pids();
        assert_eq!(pids.len(), 1, "one kuryr on host-1: {pids:?}");
        let status = Command::new("kill")
            .args(["-9", &pids[0].to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        within("host-1's kuryr gone", Duration::from_secs(10), || async {
            s.host(1).kuryr_pids().is_empty().then_some(())
        })
        .await;
        // host-2 keeps serving, and host-1's container keeps its connectivity.
        let c3 = s.run(2, &s.name("c3"), &docker_net).await;
        assert!(s.host(2).pings(&c3.name, &c1.ip, FIRST_PING).await);
        assert!(
            s.host(1)
                .pings(&c1.name, &c2.ip, Duration::from_secs(10))
                .await
        );

        // `hosts up` restarts only what host-1 lacks: its kuryr.
        hosts_script(&["up", "2"]);
        let restarted = s.host(1).kuryr_pids();
        assert_eq!(restarted.len(), 1, "{restarted:?}");
        assert_ne!(restarted[0], pids[0]);
        // The new daemon serves a new container and removes the one from before the kill.
        let c4 = s.run(1, &s.name("c4"), &docker_net).await;
        assert!(s.host(1).pings(&c4.name, &c2.ip, FIRST_PING).await);
        let c1_port = s.port_of(&net.id, &c1).await;
        s.remove_container(1, &c1.name).await;
        within(
            "c1's address given back",
            Duration::from_secs(30),
            || async {
                let p = s.neutron.ports().get_opt(&c1_port.id).await.unwrap();
                // Deleted, or back in host-1's pool without its endpoint.
                p.is_none_or(|p| p.device_id.is_empty() && p.name == POOL_PORT_NAME)
                    .then_some(())
            },
        )
        .await;
        // host-2's ports are as they were.
        let after = s.neutron.ports().get(&host2_port.id).await.unwrap();
        assert_eq!(after.binding_host_id, "host-2");
        assert_eq!(after.fixed_ips, host2_port.fixed_ips);
        assert_eq!(s.port_of(&net.id, &c2).await.id, host2_port.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn each_hosts_pools_keep_to_their_host() {
    const CIDR: &str = "10.210.4.0/24";
    with_hosts("pools", |s| async move {
        let (net, subnet) = s.user_network(CIDR).await;
        let docker_net = s.name("dn");
        s.attach(1, &docker_net, CIDR, &net, &subnet).await;
        s.attach(2, &docker_net, CIDR, &net, &subnet).await;
        // A network's first container on a host starts that host's pool.
        let c1 = s.run(1, &s.name("c1"), &docker_net).await;
        let c2 = s.run(2, &s.name("c2"), &docker_net).await;
        for host in ["host-1", "host-2"] {
            let free = within(
                "the host's pool filled",
                Duration::from_secs(60),
                || async {
                    let free = s.free_pool_ports(&net.id, host).await;
                    (!free.is_empty()).then_some(free)
                },
            )
            .await;
            for p in &free {
                assert!(
                    p.tags.contains(&format!("kuryr.pool:{host}")),
                    "a pool port of {host} carries its host's pool tag: {p:#?}"
                );
            }
        }
        // Every kuryr port is bound to the host whose container or pool has it.
        for (host, c) in [("host-1", &c1), ("host-2", &c2)] {
            assert_eq!(s.port_of(&net.id, c).await.binding_host_id, host);
        }
        // A second container on host-2 comes from host-2's pool, never host-1's.
        let host1_free: HashSet<String> = s.free_pool_port_ids(&net.id, "host-1").await;
        let host2_free: HashSet<String> = s.free_pool_port_ids(&net.id, "host-2").await;
        let c3 = s.run(2, &s.name("c3"), &docker_net).await;
        let c3_port = s.port_of(&net.id, &c3).await;
        assert_eq!(c3_port.binding_host_id, "host-2");
        assert!(
            !host1_free.contains(&c3_port.id),
            "host-2 handed out a pool port of host-1"
        );
        assert!(
            host2_free.contains(&c3_port.id),
            "a hit of host-2's pool: {c3_port:#?}"
        );
        // host-1 leaves the network: its pool ports go, host-2's stay and keep serving.
        s.remove_container(1, &c1.name).await;
        s.remove_network(1, &docker_net).await;
        assert!(
            s.free_pool_ports(&net.id, "host-1").await.is_empty(),
            "host-1's pool ports are deleted"
        );
        let kept: HashSet<String> = s.free_pool_port_ids(&net.id, "host-2").await;
        let untaken: HashSet<String> = host2_free
            .into_iter()
            .filter(|id| *id != c3_port.id)
            .collect();
        assert!(
            untaken.is_subset(&kept),
            "host-2's free pool ports survive host-1's network rm: {untaken:?}, now {kept:?}"
        );
        let c4 = s.run(2, &s.name("c4"), &docker_net).await;
        assert!(s.host(2).pings(&c4.name, &c2.ip, FIRST_PING).await);
        assert!(s
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn a_removed_host_leaves_ports_only_its_own_fresh_daemon_cleans() {
    const CIDR: &str = "10.210.5.0/24";
    with_hosts("gone", |s| async move {
        let (net, subnet) = s.user_network(CIDR).await;
        let docker_net = s.name("dn");
        s.attach(1, &docker_net, CIDR, &net, &subnet).await;
        s.attach(2, &docker_net, CIDR, &net, &subnet).await;
        let c1 = s.run(1, &s.name("c1"), &docker_net).await;
        let c2 = s.run(2, &s.name("c2"), &docker_net).await;
        assert!(s.host(1).pings(&c1.name, &c2.ip, FIRST_PING).await);
        // host-1 has a container's port and free pool ports when it dies.
        within("host-1's pool filled", Duration::from_secs(60), || async {
            s.ports_on(&net.id)
                .await
                .iter()
                .any(|p| p.binding_host_id == "host-1" && p.name == POOL_PORT_NAME)
                .then_some(())
        })
        .await;
        let c1_port = s.port_of(&net.id, &c1).await;
        // What names host-1's Docker engine, which goes with the power cut: its control
        // plane (the engine's id) and its Docker network's id.
        let old_engine = s.host(1).docker_ok(&["info", "--format", "{{.ID}}"]).await;
        let old_network = s
            .host(1)
            .docker_ok(&["network", "inspect", "--format", "{{.Id}}", &docker_net])
            .await;
        let host2_network = s
            .host(2)
            .docker_ok(&["network", "inspect", "--format", "{{.Id}}", &docker_net])
            .await;
        let host1: HashMap<String, u64> = s
            .ports_on(&net.id)
            .await
            .into_iter()
            .filter(|p| p.binding_host_id == "host-1")
            .map(|p| (p.id, p.revision_number))
            .collect();
        assert!(host1.contains_key(&c1_port.id));

        // A power cut: host-1's agent, Docker and kuryr stop at once.
        hosts_script(&["down", "1"]);
        // host-2's daemon takes none of host-1's ports for its orphans...
        let report = s.host(2).gc().await;
        let taken: Vec<&Value> = report["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| host1.contains_key(o["resource"].as_str().unwrap_or("")))
            .collect();
        assert!(
            taken.is_empty(),
            "host-2's gc took host-1's ports: {report:#}"
        );
        // ...nor hands one out, and keeps serving.
        let c3 = s.run(2, &s.name("c3"), &docker_net).await;
        let c3_port = s.port_of(&net.id, &c3).await;
        assert!(
            !host1.contains_key(&c3_port.id),
            "host-2 took a port of host-1"
        );
        assert_eq!(c3_port.binding_host_id, "host-2");
        assert!(s.host(2).pings(&c3.name, &c2.ip, FIRST_PING).await);
        for (id, revision) in &host1 {
            let port = s.neutron.ports().get_opt(id).await.unwrap();
            let port = port.unwrap_or_else(|| panic!("host-1's port {id} was deleted"));
            assert_eq!(
                port.revision_number, *revision,
                "host-1's port {id} was changed while host-1 was down: {port:#?}"
            );
        }

        // host-1 comes back reinstalled: a new Docker engine, which has none of the old
        // containers and networks. Its daemon's gc removes every port of the old one.
        hosts_up_fresh();
        within(
            "host-1's old ports removed by its gc",
            Duration::from_secs(90),
            || async {
                let report = s.host(1).gc().await;
                let errors = report["errors"].as_array().cloned().unwrap_or_default();
                assert!(errors.is_empty(), "host-1's gc failed: {report:#}");
                let mut left = Vec::new();
                for id in host1.keys() {
                    if s.neutron.ports().get_opt(id).await.unwrap().is_some() {
                        left.push(id.clone());
                    }
                }
                left.is_empty().then_some(())
            },
        )
        .await;
        // host-2's ports and containers are as they were.
        for c in [&c2, &c3] {
            let port = s.port_of(&net.id, c).await;
            assert_eq!(port.binding_host_id, "host-2");
        }
        assert!(
            s.host(2)
                .pings(&c3.name, &c2.ip, Duration::from_secs(10))
                .await
        );
        // The old engine's Docker network is gone with its engine: the scene must not try
        // to remove it on host-1.
        s.networks.lock().unwrap().retain(|(h, _)| *h != 1);
        s.containers.lock().unwrap().retain(|(h, _)| *h != 1);

        // The old engine's mappings stay until an operator names its control plane; any
        // daemon then removes them, and host-2's stay.
        let tags_of = |id: String| {
            let s = s.clone();
            async move { s.neutron.networks().get(&id).await.unwrap().tags }
        };
        let old_tags = docker_harness::id_tags(&old_network);
        let tags = tags_of(net.id.clone()).await;
        assert!(
            old_tags.iter().all(|t| tags.contains(t)),
            "the old engine's mapping is still there: {tags:?}"
        );
        let report = s
            .host(2)
            .gc_with(&["--forget-control-plane", &old_engine])
            .await;
        assert!(
            report["errors"].as_array().is_none_or(|e| e.is_empty()),
            "{report:#}"
        );
        let tags = tags_of(net.id.clone()).await;
        assert!(
            old_tags.iter().all(|t| !tags.contains(t))
                && !tags.iter().any(|t| t.contains(&old_network[..12])),
            "the old engine's tags are gone: {tags:?}"
        );
        for t in docker_harness::id_tags(&host2_network) {
            assert!(tags.contains(&t), "host-2's mapping stays: {tags:?}");
        }
        let pools = s.pools_of_subnet(CIDR, &subnet.id).await;
        assert_eq!(pools.len(), 1, "host-2's pool only: {pools:#?}");
        let subnet_tags = s.neutron.subnets().get(&subnet.id).await.unwrap().tags;
        assert_eq!(subnet_tags, vec![pools[0].id.clone()]);
        // The last control plane leaves: the network and subnet are given back untagged.
        for c in [&c2, &c3] {
            s.remove_container(2, &c.name).await;
        }
        s.remove_network(2, &docker_net).await;
        assert_eq!(tags_of(net.id.clone()).await, Vec::<String>::new());
        let subnet_after = s.neutron.subnets().get(&subnet.id).await.unwrap();
        assert_eq!(subnet_after.tags, Vec::<String>::new());
        assert!(s.pools_of_subnet(CIDR, &subnet.id).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the simulated hosts; scripts/test runs it between `scripts/hosts up 2` and `down`"]
async fn one_network_made_on_two_hosts_at_once_is_one_neutron_network() {
    const CIDR: &str = "10.210.6.0/24";
    const ADDRESSES_PER_HOST: usize = 6;
    with_hosts("race", |s| async move {
        // An earlier run's pool, if that run died before giving it back.
        let old = s
            .neutron
            .subnetpools()
            .list(&Filters::new().eq("name", format!("kuryrPool-{CIDR}")))
            .await
            .unwrap();
        for pool in old {
            let _ = s.neutron.subnetpools().delete(&pool.id).await;
        }
        // What every host of a swarm gets for one global-scope network: the manager's
        // RequestPool once, then CreateNetwork with the same id on each host.
        let (status, pool) = s
            .host(1)
            .plugin(
                "/IpamDriver.RequestPool",
                serde_json::json!({"AddressSpace": "global", "Pool": CIDR, "SubPool": "",
                    "Options": {}, "V6": false}),
            )
            .await;
        assert_eq!(status, 200, "RequestPool: {pool}");
        let pool_id = pool["PoolID"].as_str().unwrap().to_owned();
        s.plugin_pools.lock().unwrap().push((1, pool_id.clone()));
        let docker_id = docker_harness::random_docker_id();
        let create = serde_json::json!({
            "NetworkID": docker_id,
            "Options": {"com.docker.network.enable_ipv6": false,
                        "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "global", "Pool": CIDR, "Gateway": "10.210.6.1/24"}],
            "IPv6Data": []
        });
        s.plugin_networks.lock().unwrap().push(docker_id.clone());
        let (a, b) = tokio::join!(
            s.host(1)
                .plugin("/NetworkDriver.CreateNetwork", create.clone()),
            s.host(2)
                .plugin("/NetworkDriver.CreateNetwork", create.clone()),
        );
        let tags = docker_harness::id_tags(&docker_id);
        let made = s
            .neutron
            .networks()
            .list(&Filters::new().tags(tags.clone()))
            .await
            .unwrap();
        for n in &made {
            s.neutron_networks.lock().unwrap().push(n.id.clone());
        }
        assert_eq!(
            (a.0, b.0),
            (200, 200),
            "CreateNetwork on both hosts: {a:?} {b:?}"
        );
        assert_eq!(
            made.len(),
            1,
            "one Neutron network for the Docker network: {made:#?}"
        );
        let network = &made[0];
        let subnets = s
            .neutron
            .subnets()
            .list(&Filters::new().eq("cidr", CIDR))
            .await
            .unwrap();
        assert_eq!(subnets.len(), 1, "one subnet of {CIDR}: {subnets:#?}");
        assert_eq!(subnets[0].network_id, network.id);

        // Both hosts take addresses from the one subnet at once: no address twice.
        let request = serde_json::json!({"PoolID": pool_id, "Address": "", "Options": {}});
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..2 * ADDRESSES_PER_HOST {
            let host = s.host(1 + (i % 2) as u32).clone();
            let request = request.clone();
            calls.spawn(async move {
                let answer = host.plugin("/IpamDriver.RequestAddress", request).await;
                (host.index, answer)
            });
        }
        let mut addresses: HashMap<String, u32> = HashMap::new();
        while let Some(done) = calls.join_next().await {
            let (host, (status, answer)) = done.unwrap();
            assert_eq!(status, 200, "host-{host} RequestAddress: {answer}");
            let address = answer["Address"].as_str().unwrap().to_owned();
            if let Some(other) = addresses.insert(address.clone(), host) {
                panic!("{address} given to host-{other} and host-{host}");
            }
        }
        let ports = s.ports_on(&network.id).await;
        for address in addresses.keys() {
            let ip = address.split('/').next().unwrap();
            let holders: Vec<&Port> = ports
                .iter()
                .filter(|p| p.fixed_ips.iter().any(|f| f.ip_address == ip))
                .collect();
            assert_eq!(holders.len(), 1, "one port holds {ip}: {holders:#?}");
        }
        for (address, host) in &addresses {
            let ip = address.split('/').next().unwrap();
            let release = serde_json::json!({"PoolID": pool_id, "Address": ip});
            let (status, answer) = s
                .host(*host)
                .plugin("/IpamDriver.ReleaseAddress", release)
                .await;
            assert_eq!(status, 200, "ReleaseAddress {address}: {answer}");
        }
        // Each host's DeleteNetwork; the last one leaves nothing.
        let delete = serde_json::json!({"NetworkID": docker_id});
        for (order, host) in [2, 1].into_iter().enumerate() {
            let (status, answer) = s
                .host(host)
                .plugin("/NetworkDriver.DeleteNetwork", delete.clone())
                .await;
            // The other host's pool may be filling at that moment: its ports hold the
            // network until that host's own DeleteNetwork closes its pool, and the first
            // one finishes in the background.
            let finishes_later = order == 0
                && answer["Err"]
                    .as_str()
                    .is_some_and(|e| e.contains("tries it again in the background"));
            assert!(
                status == 200 || finishes_later,
                "host-{host} DeleteNetwork: {answer}"
            );
        }
        s.plugin_networks.lock().unwrap().clear();
        let release = serde_json::json!({"PoolID": pool_id});
        let (status, answer) = s.host(1).plugin("/IpamDriver.ReleasePool", release).await;
        assert_eq!(status, 200, "ReleasePool: {answer}");
        s.plugin_pools.lock().unwrap().clear();
        within("the network deleted", Duration::from_secs(60), || async {
            s.neutron
                .networks()
                .list(&Filters::new().tags(tags.clone()))
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        })
        .await;
        assert!(s.pools_of_subnet(CIDR, &subnets[0].id).await.is_empty());
        let left = s
            .neutron
            .subnetpools()
            .list(&Filters::new().eq("name", format!("kuryrPool-{CIDR}")))
            .await
            .unwrap();
        assert!(
            left.is_empty(),
            "RequestPool's pool is given back: {left:#?}"
        );
    })
    .await;
}

/// Undoes the swarm test's Docker side whatever happened: the service, the network, the
/// swarm (worker first) and the managed plugin on both hosts.
struct SwarmUndo {
    hosts: [Host; 2],
    service: String,
    network: String,
}

impl Drop for SwarmUndo {
    fn drop(&mut self) {
        let docker = |host: &Host, args: &[&str]| {
            let _ = Command::new(docker_bin())
                .args(args)
                .env("DOCKER_HOST", &host.env["DOCKER_HOST"])
                .stdin(Stdio::null())
                .output();
        };
        docker(&self.hosts[0], &["service", "rm", &self.service]);
        // Refused while the tasks stop: tried until it goes (FreeNetwork then removes the
        // Neutron side), for at most a minute.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let out = Command::new(docker_bin())
                .args(["network", "rm", &self.network])
                .env("DOCKER_HOST", &self.hosts[0].env["DOCKER_HOST"])
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => break,
                Ok(o) if String::from_utf8_lossy(&o.stderr).contains("not found") => break,
                Ok(_) => std::thread::sleep(Duration::from_secs(1)),
                Err(_) => break,
            }
        }
        docker(&self.hosts[1], &["swarm", "leave", "--force"]);
        docker(&self.hosts[0], &["swarm", "leave", "--force"]);
        for host in &self.hosts {
            docker(host, &["plugin", "rm", "-f", SWARM_PLUGIN]);
        }
    }
}

/// The managed plugin's name on the hosts (beside their `kuryr serve`, plugin `kuryr`).
const SWARM_PLUGIN: &str = "kuryr-swarm";

/// The managed plugin from `scripts/package rootfs`, enabled on a host with its kuryr.conf
/// made global-scope (Swarm networks need a global driver), Open vSwitch and the admin
/// socket at the plugin's own paths.
async fn enable_swarm_plugin(host: &Host, folder: &std::path::Path) {
    let _ = host.docker(&["plugin", "rm", "-f", SWARM_PLUGIN]).await;
    let etc = std::path::Path::new(&host.env["KURYR_HOST_DIR"]).join("plugin-etc");
    std::fs::create_dir_all(&etc).unwrap();
    let conf = std::fs::read_to_string(&host.env["KURYR_HOST_CONFIG"]).unwrap();
    let conf: String = conf
        .lines()
        // The host's own paths: inside the plugin, its mounts are at the default ones.
        .filter(|l| {
            ![
                "ovsdb_connection",
                "sock_file",
                "state_path",
                "docker_socket",
            ]
            .iter()
            .any(|key| l.starts_with(key))
        })
        .map(|l| {
            if l.starts_with("capability_scope") {
                "capability_scope = global".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    write_private(&etc.join("kuryr.conf"), &conf);
    host.docker_ok(&["plugin", "create", SWARM_PLUGIN, folder.to_str().unwrap()])
        .await;
    host.docker_ok(&[
        "plugin",
        "set",
        SWARM_PLUGIN,
        &format!("config.source={}", etc.display()),
        &format!("args=--plugin-name {SWARM_PLUGIN}"),
    ])
    .await;
    host.docker_ok(&["plugin", "enable", SWARM_PLUGIN]).await;
}

/// The running tasks of a service: (node, container name) from the manager's view.
async fn running_tasks(manager: &Host, service: &str) -> Vec<(String, String)> {
    let text = manager
        .docker_ok(&[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--no-trunc",
            "--format",
            "{{.Node}} {{.Name}}.{{.ID}} {{.CurrentState}}",
        ])
        .await;
    text.lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("Running"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `scripts/hosts up 2` and `scripts/package rootfs`; scripts/test runs it"]
async fn a_swarm_service_gets_neutron_ports_on_both_hosts_and_leaves_nothing() {
    const CIDR: &str = "10.214.1.0/24";
    with_hosts("swarm", |s| async move {
        let folder = repo_root().join("target/plugin");
        assert!(
            folder.join("config.json").is_file() && folder.join("rootfs/usr/bin/kuryr").is_file(),
            "{} holds no managed plugin: run `scripts/package rootfs` first (scripts/test does)",
            folder.display()
        );
        let (manager, worker) = (s.host(1), s.host(2));
        let service = s.name("svc");
        let network = s.name("snet");
        let _undo = SwarmUndo {
            hosts: [manager.clone(), worker.clone()],
            service: service.clone(),
            network: network.clone(),
        };
        for host in [manager, worker] {
            let _ = host.docker(&["swarm", "leave", "--force"]).await;
            enable_swarm_plugin(host, &folder).await;
        }
        let manager_ip = &manager.env["KURYR_HOST_IP"];
        manager
            .docker_ok(&[
                "swarm",
                "init",
                "--advertise-addr",
                manager_ip,
                "--listen-addr",
                &format!("{manager_ip}:2377"),
            ])
            .await;
        let token = manager
            .docker_ok(&["swarm", "join-token", "-q", "worker"])
            .await;
        worker
            .docker_ok(&[
                "swarm",
                "join",
                "--token",
                &token,
                "--advertise-addr",
                &worker.env["KURYR_HOST_IP"],
                &format!("{manager_ip}:2377"),
            ])
            .await;

        // A swarm-scope network: the manager's AllocateNetwork makes it in Neutron.
        let driver = format!("{SWARM_PLUGIN}:latest");
        let swarm_id = manager
            .docker_ok(&[
                "network",
                "create",
                "-d",
                &driver,
                "--ipam-driver",
                &driver,
                "--scope",
                "swarm",
                "--subnet",
                CIDR,
                &network,
            ])
            .await;
        assert_eq!(swarm_id.len(), 25, "a swarm network id: {swarm_id}");
        let neutron_net = within(
            "AllocateNetwork's Neutron network",
            Duration::from_secs(30),
            || async {
                s.neutron
                    .networks()
                    .list(&Filters::new().tags([format!("kuryr.net.uuid.lh:{swarm_id}")]))
                    .await
                    .unwrap()
                    .into_iter()
                    .next()
            },
        )
        .await;

        // dnsrr: no IPVS here (see the README); four tasks spread over both hosts.
        let image = &manager.env["KURYR_TEST_IMAGE"];
        manager
            .docker_ok(&[
                "service",
                "create",
                "--detach",
                "--name",
                &service,
                "--endpoint-mode",
                "dnsrr",
                "--replicas",
                "4",
                "--network",
                &network,
                image,
                "sleep",
                "600",
            ])
            .await;
        let tasks = within(
            "4 tasks running on both hosts",
            Duration::from_secs(120),
            || async {
                let tasks = running_tasks(manager, &service).await;
                let nodes: HashSet<&str> = tasks.iter().map(|(n, _)| n.as_str()).collect();
                (tasks.len() == 4 && nodes.len() == 2).then_some(tasks)
            },
        )
        .await;
        // Each task's address is a Neutron port's, bound to the task's host.
        let mut ips: Vec<(u32, String, String)> = Vec::new();
        for (node, container) in &tasks {
            let index: u32 = node.trim_start_matches("host-").parse().unwrap();
            let ip = s
                .host(index)
                .docker_ok(&[
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    container,
                ])
                .await;
            assert!(in_cidr(&ip, CIDR), "{container}: {ip}");
            let ports: Vec<Port> = s
                .ports_on(&neutron_net.id)
                .await
                .into_iter()
                .filter(|p| p.fixed_ips.iter().any(|f| f.ip_address == ip))
                .collect();
            assert_eq!(ports.len(), 1, "one Neutron port holds {ip}: {ports:#?}");
            assert_eq!(ports[0].binding_host_id, *node, "{ports:#?}");
            ips.push((index, container.clone(), ip));
        }
        // Tasks reach each other across the hosts.
        let on = |h: u32| ips.iter().find(|(i, _, _)| *i == h).unwrap().clone();
        let (one, two) = (on(1), on(2));
        assert!(
            s.host(2).pings(&two.1, &one.2, FIRST_PING).await,
            "host-2's task reaches host-1's"
        );
        assert!(
            s.host(1).pings(&one.1, &two.2, FIRST_PING).await,
            "host-1's task reaches host-2's"
        );

        // Scaling down gives the ports back; removing the service and the network leaves
        // nothing in Neutron.
        manager
            .docker_ok(&["service", "scale", "--detach", &format!("{service}=1")])
            .await;
        within(
            "1 port left after scaling to 1",
            Duration::from_secs(120),
            || async {
                let ports = s.ports_on(&neutron_net.id).await;
                let kuryr: Vec<&Port> = ports
                    .iter()
                    .filter(|p| p.device_owner == "compute:kuryr" || p.name.starts_with("kuryr"))
                    .collect();
                (running_tasks(manager, &service).await.len() == 1 && kuryr.len() == 1)
                    .then_some(())
            },
        )
        .await;
        manager.docker_ok(&["service", "rm", &service]).await;
        within(
            "the tasks' containers gone",
            Duration::from_secs(60),
            || async {
                let mut left = 0;
                for h in [manager, worker] {
                    left += h
                        .docker_ok(&["ps", "-aq", "--filter", &format!("name={service}")])
                        .await
                        .lines()
                        .count();
                }
                (left == 0).then_some(())
            },
        )
        .await;
        manager.docker_ok(&["network", "rm", &network]).await;
        within(
            "the Neutron network freed",
            Duration::from_secs(60),
            || async {
                s.neutron
                    .networks()
                    .get_opt(&neutron_net.id)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    })
    .await;
}
