//! Containers and the outside world, through the real Neutron L3 agent: the stack's router
//! (`router1`, gateway on the external network `public` on br-ex, 172.24.4.0/24) that the
//! stack's kuryr.conf names as `default_router`, SNAT for containers, and published ports
//! (`-p`, `-P`) as floating-IP port forwardings. The outside is a network namespace with a
//! veth in br-ex holding an address above the allocation pool (172.24.4.201-250).
//!
//! Each test has its own `kuryr serve` on the stack's kuryr.conf as it is, its own Docker
//! networks (10.208.N.0/24) and external host.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use docker_harness::*;
use kuryr_openstack::neutron::{
    Filters, FloatingIp, Neutron, PortForwarding, PortForwardingSpec, Router, RouterInterface,
    RouterSpec,
};

/// The stack's router and external network.
const ROUTER: &str = "router1";
/// How long the L3 agent may take to wire a new router interface or forwarding (it works
/// through its queue one router update at a time, a few seconds each on 2 busy cores).
const L3_READY: Duration = Duration::from_secs(90);

fn plugin_socket(k: &Kuryr) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{}.sock", k.plugin))
}

/// A daemon on the stack's kuryr.conf as `scripts/stack` wrote it (default_router set).
async fn serve_default(k: &Kuryr) {
    let conf = config_file();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains(&format!("default_router = {ROUTER}")),
        "the stack's kuryr.conf names no default_router {ROUTER}: run scripts/stack up again"
    );
    k.serve_with(&conf, &plugin_socket(k), false).await;
}

/// An endpoint's port: a pool port names its endpoint in Neutron only once the container has
/// held it for `[vif_pool] owner_write_delay` (pools are on in the stack's kuryr.conf).
async fn port_of(k: &Kuryr, endpoint_id: &str) -> kuryr_openstack::neutron::Port {
    eventually(&format!("the port of endpoint {endpoint_id}"), || async {
        let mut found = k.ports_of(endpoint_id).await;
        (found.len() == 1).then(|| found.remove(0))
    })
    .await
}

async fn router(n: &Neutron, name: &str) -> Router {
    let mut found = n
        .routers()
        .list(&Filters::new().eq("name", name))
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "one router named {name} (scripts/stack up makes router1): {found:#?}"
    );
    found.remove(0)
}

/// The router interfaces on a subnet: (router id, port id).
async fn interfaces_on(n: &Neutron, network_id: &str, subnet_id: &str) -> Vec<(String, String)> {
    n.ports()
        .list(
            &Filters::new()
                .eq("network_id", network_id)
                .eq("fixed_ips", format!("subnet_id={subnet_id}")),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.device_owner.starts_with("network:router_interface"))
        .map(|p| (p.device_id, p.id))
        .collect()
}

/// The floating IP kuryr gives a Docker network's published ports on this host.
async fn network_fip(n: &Neutron, docker_net: &str) -> Option<FloatingIp> {
    let description = format!(
        "Published ports of Docker network {docker_net} on kuryr.host:{}",
        hostname()
    );
    let mut found = n
        .floating_ips()
        .list(&Filters::new().eq("description", description.as_str()))
        .await
        .unwrap();
    assert!(found.len() <= 1, "one floating IP per network: {found:#?}");
    found.pop()
}

/// A floating IP the test allocates from the stack's external network, as a user would.
async fn user_floating_ip(k: &Kuryr) -> FloatingIp {
    let public = k
        .neutron
        .networks()
        .list(&Filters::new().eq("name", "public"))
        .await
        .unwrap()
        .pop()
        .expect("the stack's external network public (scripts/stack up makes it)");
    k.neutron
        .floating_ips()
        .create(&kuryr_openstack::neutron::FloatingIpSpec {
            floating_network_id: Some(public.id),
            description: Some(k.name("mine")),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn forwardings(n: &Neutron, fip: &FloatingIp) -> Vec<PortForwarding> {
    n.port_forwardings(&fip.id)
        .unwrap()
        .list(&Filters::new())
        .await
        .unwrap()
}

/// A host on the external network: a namespace with a veth in br-ex.
struct ExternalHost {
    ns: String,
    outer: String,
    ip: String,
    servers: Vec<Child>,
}

impl ExternalHost {
    /// `172.24.4.<n>` (n above the allocation pool, unique per test).
    fn new(n: u8) -> ExternalHost {
        assert!(n > 200, "addresses up to .200 are Neutron's");
        let host = ExternalHost {
            ns: format!("kuryr-ext-{n}"),
            outer: format!("kxo{n}"),
            ip: format!("172.24.4.{n}"),
            servers: Vec::new(),
        };
        host.remove();
        let inner = format!("kxi{n}");
        let bridges = vsctl(&["list-br"]);
        assert!(
            bridges.lines().any(|b| b == "br-ex"),
            "Open vSwitch has no br-ex (bridges: {bridges:?}): run scripts/stack up, which \
             makes the external network"
        );
        for args in [
            vec!["netns", "add", &host.ns],
            vec![
                "link",
                "add",
                &host.outer,
                "type",
                "veth",
                "peer",
                "name",
                &inner,
            ],
            vec!["link", "set", &inner, "netns", &host.ns],
            vec!["link", "set", &host.outer, "up"],
        ] {
            ip(&args);
        }
        vsctl(&["add-port", "br-ex", &host.outer]);
        let addr = format!("{}/24", host.ip);
        for args in [
            vec!["addr", "add", &addr, "dev", &inner],
            vec!["link", "set", &inner, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            host.ok(&[&["ip"][..], &args].concat());
        }
        // TCP and UDP through a veth on the userspace datapath need full checksums.
        run_ok(Command::new("ethtool").args(["-K", &host.outer, "tx", "off"]));
        host.ok(&["ethtool", "-K", &inner, "tx", "off"]);
        host
    }

    fn remove(&self) {
        let _ = Command::new("ovs-vsctl")
            .args(["--if-exists", "del-port", "br-ex", &self.outer])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(args);
        c
    }

    fn exec(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args))
    }

    /// A web server answering `text` on `port`.
    fn serve_http(&mut self, port: u16, text: &str) {
        let dir = std::env::temp_dir().join(format!("{}-www-{port}", self.ns));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), text).unwrap();
        let child = self
            .command(&[
                "busybox",
                "httpd",
                "-f",
                "-p",
                &port.to_string(),
                "-h",
                dir.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
    }

    /// The page at `url`, once it answers (polled: the L3 agent wires routers and
    /// forwardings a while after Neutron has them).
    async fn fetch(&self, url: &str) -> String {
        poll(&format!("{url} answers from {}", self.ns), || {
            let out = self.exec(&["python3", "-c", HTTP_CLIENT, url]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .await
    }

    /// A UDP datagram to `ip:port` and the answer, once one comes.
    async fn udp_exchange(&self, ip: &str, port: u16) -> String {
        poll(&format!("udp {ip}:{port} answers from {}", self.ns), || {
            let out = self.exec(&["python3", "-c", UDP_CLIENT, ip, &port.to_string()]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .await
    }
}

impl Drop for ExternalHost {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.remove();
    }
}

// busybox's wget crashes on this machine kind (SIGSEGV, also inside containers): Python's
// client outside, an HTTP request through `nc` in containers.
const HTTP_CLIENT: &str = "import sys, urllib.request\n\
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())\n";

const UDP_CLIENT: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.settimeout(2)\n\
s.sendto(b'ping', (sys.argv[1], int(sys.argv[2])))\n\
print(s.recv(100).decode())\n";

// No indented block: a string continuation would eat the indentation.
const UDP_ECHO: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', int(sys.argv[1])))\n\
[s.sendto(b'pong ' + d, a) for d, a in iter(lambda: s.recvfrom(100), None)]\n";

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn run_ok(c: &mut Command) -> String {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Poll a blocking check every 500 ms for at most [`L3_READY`].
async fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = tokio::task::block_in_place(&mut f) {
            return v;
        }
        assert!(
            started.elapsed() < L3_READY,
            "timed out after {L3_READY:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A UDP echo server in a container's network namespace (the image has no UDP tool), run
/// from the host; killed when dropped.
struct ContainerUdpEcho(Child);

impl ContainerUdpEcho {
    async fn start(k: &Kuryr, container: &str, port: u16) -> ContainerUdpEcho {
        let pid = k
            .docker_ok(&["inspect", "--format", "{{.State.Pid}}", container])
            .await;
        let child = Command::new("nsenter")
            .args([
                "-t",
                &pid,
                "-n",
                "python3",
                "-c",
                UDP_ECHO,
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ContainerUdpEcho(child)
    }
}

impl Drop for ContainerUdpEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `docker run -d` of a web server answering `text` on `port`, on `network` (a name, or
/// `--network`'s `name=...,driver-opt=...`), with `extra` options.
async fn web(k: &Kuryr, name: &str, network: &str, port: u16, text: &str, extra: &[&str]) {
    k.containers.lock().unwrap().push(name.to_owned());
    let script = format!(
        "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    let image = image();
    let mut args = vec!["run", "-d", "--name", name, "--net", network];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&image, "sh", "-c", &script]);
    k.docker_ok(&args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_go_on_the_configured_router_and_off_it_with_the_network() {
    const CIDRS: [&str; 4] = [
        "10.208.1.0/24",
        "10.208.2.0/24",
        "10.208.3.0/24",
        "10.208.4.0/24",
    ];
    with_kuryr_unstarted("l3-router", &CIDRS, |k| async move {
        serve_default(&k).await;
        let n = k.neutron.clone();
        let router1 = router(&n, ROUTER).await;
        // A router of the user's, and a network of the user's already on it.
        let own = n
            .routers()
            .create(&RouterSpec {
                name: Some(k.name("own-router")),
                ..Default::default()
            })
            .await
            .unwrap();
        let (user_net, user_subnets) = k.neutron_network(&k.name("user-net"), &[CIDRS[3]]).await;
        n.add_router_interface(
            &own.id,
            &RouterInterface::Subnet(user_subnets[0].id.clone()),
        )
        .await
        .unwrap();

        // No option: the stack's router; neutron.router=none: none; a router by name.
        let cases = [
            (k.name("default"), CIDRS[0], vec![], Some(&router1.id)),
            (
                k.name("none"),
                CIDRS[1],
                vec!["-o", "neutron.router=none"],
                None,
            ),
            (
                k.name("named"),
                CIDRS[2],
                vec!["-o", "neutron.router.name"],
                Some(&own.id),
            ),
        ];
        let mut made = Vec::new();
        for (name, cidr, opts, want) in &cases {
            let mut args: Vec<String> = vec!["--subnet".into(), (*cidr).into()];
            if opts.len() == 2 && opts[1] == "neutron.router.name" {
                args.extend(["-o".into(), format!("neutron.router.name={}", own.name)]);
            } else {
                args.extend(opts.iter().map(|s| s.to_string()));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let id = k.create_network(name, &args).await;
            let net = k.network_of(&id).await;
            let subnet = k.subnets_on(&net.id).await.remove(0);
            let on = interfaces_on(&n, &net.id, &subnet.id).await;
            match want {
                Some(router_id) => {
                    assert_eq!(
                        on.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
                        vec![router_id.as_str()],
                        "{name}: one interface, on the router it asked for"
                    );
                    assert!(
                        subnet.tags.contains(&format!("kuryr.router:{router_id}")),
                        "{name}: the subnet names its router: {:?}",
                        subnet.tags
                    );
                }
                None => assert!(on.is_empty(), "{name}: no router interface: {on:?}"),
            }
            made.push((name.clone(), net, subnet));
        }
        // Docker's network on the user's network (and router interface) adopts, never routes.
        let adopted = k.name("adopted");
        k.create_network(
            &adopted,
            &[
                "--subnet",
                CIDRS[3],
                "-o",
                &format!("neutron.net.uuid={}", user_net.id),
            ],
        )
        .await;

        for (name, net, subnet) in &made {
            k.remove_network(name).await;
            assert!(
                interfaces_on(&n, &net.id, &subnet.id).await.is_empty(),
                "{name}: the interface kuryr added goes with the network"
            );
        }
        k.remove_network(&adopted).await;
        assert_eq!(
            interfaces_on(&n, &user_net.id, &user_subnets[0].id)
                .await
                .iter()
                .map(|(r, _)| r.clone())
                .collect::<Vec<_>>(),
            vec![own.id.clone()],
            "the interface the user added stays"
        );
        // Routers kuryr did not create stay.
        assert!(n.routers().get_opt(&router1.id).await.unwrap().is_some());
        assert!(n.routers().get_opt(&own.id).await.unwrap().is_some());
        n.remove_router_interface(
            &own.id,
            &RouterInterface::Subnet(user_subnets[0].id.clone()),
        )
        .await
        .unwrap();
        n.routers().delete(&own.id).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_reach_the_outside_and_published_ports_answer_from_it() {
    const CIDR: &str = "10.208.5.0/24";
    with_kuryr_unstarted("l3-publish", &[CIDR], |k| async move {
        serve_default(&k).await;
        let n = k.neutron.clone();
        let mut outside = ExternalHost::new(211);
        outside.serve_http(8000, "outside");
        let net = k.name("net");
        let docker_net = k.create_network(&net, &["--subnet", CIDR]).await;

        let web1 = k.name("web");
        web(
            &k,
            &web1,
            &net,
            80,
            "inside",
            &["-p", "18080:80", "-p", "18081:8081/udp"],
        )
        .await;
        // SNAT: the container reaches a host on the external network.
        let request = format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 8000",
            outside.ip
        );
        poll(
            &format!("{web1} fetches a page from {}", outside.ip),
            || {
                let out = std::process::Command::new(docker_bin())
                    .args(["exec", &web1, "sh", "-c", &request])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .trim_end()
                    .ends_with("outside")
                    .then_some(())
            },
        )
        .await;

        // Its published ports answer on the network's floating IP.
        let a = k.attachment(&web1, &net).await;
        let port = port_of(&k, &a.endpoint_id).await;
        let fip = network_fip(&n, &docker_net)
            .await
            .expect("the network's floating IP");
        let mut pfs: Vec<(String, u32, String, u32)> = forwardings(&n, &fip)
            .await
            .into_iter()
            .map(|pf| {
                assert_eq!(pf.internal_port_id, port.id);
                (
                    pf.protocol,
                    pf.external_port.unwrap(),
                    pf.internal_ip_address,
                    pf.internal_port.unwrap(),
                )
            })
            .collect();
        pfs.sort();
        assert_eq!(
            pfs,
            vec![
                ("tcp".into(), 18080, a.ip.clone(), 80),
                ("udp".into(), 18081, a.ip.clone(), 8081)
            ]
        );
        let page = outside
            .fetch(&format!("http://{}:18080/", fip.floating_ip_address))
            .await;
        assert_eq!(page, "inside");
        // `kuryr published` shows where each port answers.
        let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
            .arg("--config-file")
            .arg(config_file())
            .args(["published", "--json", &web1])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut rows: Vec<(String, String, String)> = shown
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(e["network"], net.as_str());
                assert_eq!(e["endpoint"], a.endpoint_id.as_str());
                (
                    e["container"].as_str().unwrap().to_owned(),
                    e["published"].as_str().unwrap().to_owned(),
                    e["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort();
        let f = &fip.floating_ip_address;
        assert_eq!(
            rows,
            vec![
                (
                    web1.clone(),
                    format!("{f}:18080/tcp"),
                    format!("{}:80", a.ip)
                ),
                (
                    web1.clone(),
                    format!("{f}:18081/udp"),
                    format!("{}:8081", a.ip)
                ),
            ]
        );
        let _echo = ContainerUdpEcho::start(&k, &web1, 8081).await;
        assert_eq!(
            outside.udp_exchange(&fip.floating_ip_address, 18081).await,
            "pong ping"
        );

        // -P: kuryr picks the host port, the first free one of Docker's ephemeral range.
        let web2 = k.name("auto");
        web(&k, &web2, &net, 9000, "picked", &["-P", "--expose", "9000"]).await;
        let picked = forwardings(&n, &fip)
            .await
            .into_iter()
            .find(|pf| pf.internal_port == Some(9000))
            .expect("a forwarding for -P");
        assert_eq!(picked.external_port, Some(49153));
        let page = outside
            .fetch(&format!("http://{}:49153/", fip.floating_ip_address))
            .await;
        assert_eq!(page, "picked");

        // -p IP:HOSTPORT:PORT on a floating IP of the project, and a host port range.
        let mine = user_floating_ip(&k).await;
        // (Neutron forwards a container port from one place only: two ports, two servers.)
        let web3 = k.name("named");
        k.containers.lock().unwrap().push(web3.clone());
        let named = format!("{}:18095:80", mine.floating_ip_address);
        k.docker_ok(&[
            "run",
            "-d",
            "--name",
            &web3,
            "--net",
            &net,
            "-p",
            &named,
            "-p",
            "18100-18110:81",
            &image(),
            "sh",
            "-c",
            "mkdir -p /www && echo third > /www/index.html && httpd -p 81 -h /www && \
             exec httpd -f -p 80 -h /www",
        ])
        .await;
        let on_mine = forwardings(&n, &mine).await;
        assert_eq!(
            on_mine
                .iter()
                .map(|pf| (pf.external_port, pf.internal_port))
                .collect::<Vec<_>>(),
            vec![(Some(18095), Some(80))]
        );
        let ranged = forwardings(&n, &fip)
            .await
            .into_iter()
            .find(|pf| pf.internal_port == Some(81))
            .expect("a forwarding for the range");
        assert_eq!(
            ranged.external_port,
            Some(18100),
            "the range's first free port"
        );
        for url in [
            format!("http://{}:18095/", mine.floating_ip_address),
            format!("http://{}:18100/", fip.floating_ip_address),
        ] {
            assert_eq!(outside.fetch(&url).await, "third");
        }
        k.remove_container(&web3).await;
        let kept = n.floating_ips().get(&mine.id).await.unwrap();
        assert!(forwardings(&n, &kept).await.is_empty());
        assert!(
            !has_kuryr_tag(&kept.tags),
            "the user's floating IP stays, without kuryr's tags: {:?}",
            kept.tags
        );
        n.floating_ips().delete(&mine.id).await.unwrap();

        // Each container's forwardings go with it; the floating IP with the last one.
        k.remove_container(&web1).await;
        let left = forwardings(&n, &fip).await;
        assert_eq!(left.len(), 1, "only -P's forwarding is left: {left:#?}");
        k.remove_container(&web2).await;
        assert!(
            network_fip(&n, &docker_net).await.is_none(),
            "the floating IP is released with its last forwarding"
        );
        let neutron_net = k.network_of(&docker_net).await;
        let subnet = k.subnets_on(&neutron_net.id).await.remove(0);
        k.remove_network(&net).await;
        assert!(interfaces_on(&n, &neutron_net.id, &subnet.id)
            .await
            .is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_already_forwarded_is_refused_naming_its_holder_and_nothing_is_half_made() {
    const CIDR: &str = "10.208.6.0/24";
    with_kuryr_unstarted("l3-conflict", &[CIDR], |k| async move {
        serve_default(&k).await;
        let n = k.neutron.clone();
        let net = k.name("net");
        let docker_net = k.create_network(&net, &["--subnet", CIDR]).await;
        let first = k.name("first");
        k.run(&first, &["--net", &net, "-p", "18090:80"]).await;
        let first_ep = k.attachment(&first, &net).await.endpoint_id;
        let fip = network_fip(&n, &docker_net).await.unwrap();

        // The same host port again, on the same network.
        let second = k.name("second");
        k.containers.lock().unwrap().push(second.clone());
        let out = k
            .docker(&[
                "run",
                "-d",
                "--name",
                &second,
                "--net",
                &net,
                "-p",
                "18090:80",
                &image(),
                "sleep",
                "600",
            ])
            .await;
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success());
        assert!(
            err.contains(&format!(
                "{}:18090/tcp is already forwarded",
                fip.floating_ip_address
            )) && err.contains(&first_ep),
            "the error names the port and the endpoint that holds it: {err}"
        );

        // A forwarding someone else made on that floating IP.
        let neutron_net = k.network_of(&docker_net).await;
        let subnet = k.subnets_on(&neutron_net.id).await.remove(0);
        // Neutron hands out addresses at random, so a pool port may hold any one: a free one.
        let held: Vec<String> = k
            .ports_on(&neutron_net.id)
            .await
            .into_iter()
            .flat_map(|p| p.fixed_ips.into_iter().map(|f| f.ip_address))
            .collect();
        let vm_ip = (200..=250)
            .rev()
            .map(|i| format!("10.208.6.{i}"))
            .find(|ip| !held.contains(ip))
            .unwrap();
        let other = k.neutron_port(&k.name("vm"), &subnet, &vm_ip).await;
        let theirs = n
            .port_forwardings(&fip.id)
            .unwrap()
            .create(&PortForwardingSpec {
                protocol: Some("tcp".into()),
                external_port: Some(18091),
                internal_port: Some(22),
                internal_ip_address: Some(vm_ip.clone()),
                internal_port_id: Some(other.id.clone()),
                description: Some("the user's".into()),
            })
            .await
            .unwrap();
        // Two bindings, the second refused: the first is not left behind.
        let third = k.name("third");
        k.containers.lock().unwrap().push(third.clone());
        let out = k
            .docker(&[
                "run",
                "-d",
                "--name",
                &third,
                "--net",
                &net,
                "-p",
                "18092:80",
                "-p",
                "18091:81",
                &image(),
                "sleep",
                "600",
            ])
            .await;
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success());
        assert!(
            err.contains("18091/tcp is already forwarded") && err.contains("kuryr did not make"),
            "{err}"
        );
        let mut left: Vec<u32> = forwardings(&n, &fip)
            .await
            .iter()
            .map(|pf| pf.external_port.unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![18090, 18091],
            "only the first's and the user's forwardings"
        );
        n.port_forwardings(&fip.id)
            .unwrap()
            .delete(&theirs.id)
            .await
            .unwrap();
        k.remove_container(&first).await;
        assert!(network_fip(&n, &docker_net).await.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_get_floating_ips_of_their_own_on_request() {
    const CIDR: &str = "10.208.7.0/24";
    with_kuryr_unstarted("l3-fip", &[CIDR], |k| async move {
        serve_default(&k).await;
        let n = k.neutron.clone();
        let mut outside = ExternalHost::new(212);
        outside.serve_http(8000, "outside");
        // Every container of this network gets one.
        let net = k.name("net");
        k.create_network(&net, &["--subnet", CIDR, "-o", "neutron.floatingip=auto"])
            .await;
        let auto = k.name("auto");
        web(&k, &auto, &net, 80, "own", &["--expose", "80"]).await;
        let a = k.attachment(&auto, &net).await;
        let port = port_of(&k, &a.endpoint_id).await;
        let own = n
            .floating_ips()
            .list(&Filters::new().eq("port_id", port.id.as_str()))
            .await
            .unwrap();
        assert_eq!(own.len(), 1, "one floating IP on the port: {own:#?}");
        assert_eq!(own[0].fixed_ip_address.as_deref(), Some(a.ip.as_str()));
        assert_eq!(
            own[0].description,
            format!(
                "Floating IP of Docker endpoint {} on kuryr.host:{}",
                a.endpoint_id,
                hostname()
            )
        );
        let page = outside
            .fetch(&format!("http://{}/", own[0].floating_ip_address))
            .await;
        assert_eq!(page, "own");

        // One container names a floating IP of the project; none opts out.
        let mine = user_floating_ip(&k).await;
        let named = k.name("named");
        let spec = format!(
            "name={net},driver-opt=neutron.floatingip={}",
            mine.floating_ip_address
        );
        web(&k, &named, &spec, 80, "named", &["--expose", "80"]).await;
        let page = outside
            .fetch(&format!("http://{}/", mine.floating_ip_address))
            .await;
        assert_eq!(page, "named");
        let none = k.name("none");
        k.run(
            &none,
            &[
                "--network",
                &format!("name={net},driver-opt=neutron.floatingip=none"),
            ],
        )
        .await;
        let none_endpoint = k.attachment(&none, &net).await.endpoint_id;
        let none_port = port_of(&k, &none_endpoint).await;
        assert!(n
            .floating_ips()
            .list(&Filters::new().eq("port_id", none_port.id.as_str()))
            .await
            .unwrap()
            .is_empty());

        // Going, a container's own floating IP is released, a named one disassociated.
        k.remove_container(&auto).await;
        assert!(n
            .floating_ips()
            .get_opt(&own[0].id)
            .await
            .unwrap()
            .is_none());
        k.remove_container(&named).await;
        let kept = n.floating_ips().get(&mine.id).await.unwrap();
        assert_eq!(
            kept.port_id, None,
            "the user's floating IP stays, disassociated"
        );
        n.floating_ips().delete(&mine.id).await.unwrap();
    })
    .await;
}
