//! Packets: containers started by the real Docker engine on kuryr networks talk through the
//! Open vSwitch bridge br-int that the real neutron-openvswitch-agent programs
//! (`scripts/stack up` runs both), and the agent enforces security groups.
//!
//! Each test has its own `kuryr serve`, Docker networks and CIDRs (10.202.N.0/24), removed at
//! the end failed or not.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::process::Command;
use std::time::Duration;

use docker_harness::*;
use kuryr_openstack::neutron::{FixedIp, Port, PortSpec, SecurityGroupRuleSpec, SecurityGroupSpec};

/// How long the first ping between two new ports may take: the agent programs the firewall
/// flows (the default group's members) a while after the ports turn ACTIVE, and with the
/// tests running side by side on 2 cores this once took longer than 20 s.
const FIRST_PING: Duration = Duration::from_secs(45);

/// The port once Neutron says it is ACTIVE (the agent saw it in br-int).
async fn active(k: &Kuryr, port_id: &str) -> Port {
    eventually(&format!("port {port_id} ACTIVE"), || async {
        let p = k.neutron.ports().get(port_id).await.unwrap();
        (p.status == "ACTIVE").then_some(p)
    })
    .await
}

/// A container and everything the test checks about it.
struct Running {
    name: String,
    ip: String,
    port: Port,
}

async fn start(k: &Kuryr, name: &str, network: &str, extra: &[&str]) -> Running {
    let mut args = vec!["--net", network];
    args.extend_from_slice(extra);
    k.run(name, &args).await;
    let a = k.attachment(name, network).await;
    let port = k.port_of(&a.endpoint_id).await;
    Running {
        name: name.to_owned(),
        ip: a.ip,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_ping_each_other_through_br_int() {
    const CIDR: &str = "10.202.1.0/24";
    with_kuryr("ping", &[CIDR], |k| async move {
        let net = k.name("net");
        k.create_network(&net, &["--subnet", CIDR]).await;
        let c1 = start(&k, &k.name("c1"), &net, &[]).await;
        let c2 = start(&k, &k.name("c2"), &net, &[]).await;

        for c in [&c1, &c2] {
            let port = active(&k, &c.port.id).await;
            assert_eq!(port.binding_host_id, hostname());
            assert_eq!(port.binding_vif_type, "ovs", "{port:#?}");
            let tap = format!("tap{}", &port.id[..11]);
            assert!(br_int_ports().contains(&tap), "{tap} in br-int");
            let ids = external_ids(&tap);
            assert_eq!(ids["iface-id"], port.id.as_str());
            assert_eq!(ids["attached-mac"], port.mac_address.as_str());
            assert_eq!(ids["iface-status"], "active");
            assert_eq!(ids["owner"], "kuryr");
            assert_eq!(ids["vm-uuid"], port.device_id.as_str());
        }
        assert!(
            k.pings(&c1.name, &c2.ip, FIRST_PING).await,
            "{} cannot ping {} ({})",
            c1.name,
            c2.name,
            c2.ip
        );
        assert!(k.pings(&c2.name, &c1.ip, Duration::from_secs(5)).await);
        // TCP too: on the userspace datapath it needs the container end's TX checksum
        // offload off, which the ovs binding does.
        k.docker_ok(&[
            "exec",
            "-d",
            &c2.name,
            "sh",
            "-c",
            "nc -l -p 5000 > /tmp/got",
        ])
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = k
            .docker(&[
                "exec",
                &c1.name,
                "sh",
                "-c",
                &format!("echo hello-over-tcp | nc -w 3 {} 5000", c2.ip),
            ])
            .await;
        let got = eventually("c2 received the TCP payload", || async {
            let text = k.docker_ok(&["exec", &c2.name, "cat", "/tmp/got"]).await;
            (!text.is_empty()).then_some(text)
        })
        .await;
        assert_eq!(got, "hello-over-tcp", "{sent:?}");

        for c in [&c1, &c2] {
            k.remove_container(&c.name).await;
            let tap = format!("tap{}", &c.port.id[..11]);
            eventually("the Neutron port is deleted", || async {
                k.neutron
                    .ports()
                    .get_opt(&c.port.id)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            })
            .await;
            assert!(!br_int_ports().contains(&tap), "{tap} left in br-int");
            assert!(!host_link_exists(&tap), "{tap} left on the host");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_are_enforced_by_the_agent() {
    const CIDR: &str = "10.202.2.0/24";
    with_kuryr("sg", &[CIDR], |k| async move {
        let net = k.name("net");
        k.create_network(&net, &["--subnet", CIDR]).await;
        let c1 = start(&k, &k.name("c1"), &net, &[]).await;
        let c2 = start(&k, &k.name("c2"), &net, &[]).await;
        active(&k, &c1.port.id).await;
        active(&k, &c2.port.id).await;
        assert!(
            k.pings(&c1.name, &c2.ip, FIRST_PING).await,
            "the project's default group lets members ping each other"
        );

        // A group with no ingress rule at all (Neutron gives it egress only).
        let group = k
            .neutron
            .security_groups()
            .create(&SecurityGroupSpec {
                name: Some(k.name("no-ingress")),
                ..Default::default()
            })
            .await
            .unwrap();
        let only = |groups: Vec<String>| PortSpec {
            security_groups: Some(groups),
            ..Default::default()
        };
        let result = async {
            k.neutron
                .ports()
                .update(&c2.port.id, &only(vec![group.id.clone()]))
                .await
                .unwrap();
            // The agent applies the change within a few seconds.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let blocked = !k.pings(&c1.name, &c2.ip, Duration::from_secs(3)).await;

            k.neutron
                .security_group_rules()
                .create(&SecurityGroupRuleSpec {
                    security_group_id: Some(group.id.clone()),
                    direction: Some("ingress".into()),
                    ethertype: Some("IPv4".into()),
                    protocol: Some("icmp".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
            let allowed = k.pings(&c1.name, &c2.ip, Duration::from_secs(15)).await;
            (blocked, allowed)
        }
        .await;
        // The container's port goes with the container; then the group can go.
        k.remove_container(&c2.name).await;
        eventually("c2's port is deleted", || async {
            k.neutron
                .ports()
                .get_opt(&c2.port.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        k.neutron.security_groups().delete(&group.id).await.unwrap();
        assert_eq!(
            result,
            (true, true),
            "(ping blocked without an ICMP rule, allowed with one)"
        );
    })
    .await;
}

/// A "VM" on the kuryr network: a plain Neutron port plugged by hand into br-int, its
/// interface in a network namespace of its own. Removed when dropped.
struct Vm {
    netns: String,
    host_end: String,
}

impl Vm {
    fn plug(name: &str, port: &Port, prefix_len: u8) -> Vm {
        let vm = Vm {
            netns: name.to_owned(),
            host_end: format!("vmh{}", &port.id[..11]),
        };
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &vm.netns]);
        ip(&[
            "link",
            "add",
            &vm.host_end,
            "type",
            "veth",
            "peer",
            "name",
            "vm0",
            "netns",
            &vm.netns,
        ]);
        ip(&["link", "set", &vm.host_end, "up"]);
        let ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", vm.netns.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        ns(&["link", "set", "vm0", "address", &port.mac_address]);
        ns(&["link", "set", "vm0", "mtu", "1450"]);
        ns(&["link", "set", "vm0", "up"]);
        ns(&[
            "addr",
            "add",
            &format!("{}/{prefix_len}", port.fixed_ips[0].ip_address),
            "dev",
            "vm0",
        ]);
        vsctl(&[
            "--may-exist",
            "add-port",
            "br-int",
            &vm.host_end,
            "--",
            "set",
            "Interface",
            &vm.host_end,
            &format!("external_ids:iface-id={}", port.id),
            &format!("external_ids:attached-mac={}", port.mac_address),
            "external_ids:iface-status=active",
        ]);
        vm
    }

    fn pings(&self, ip: &str) -> bool {
        (0..10).any(|_| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.netns,
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    ip,
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = Command::new("ovs-vsctl")
            .args(["--if-exists", "del-port", "br-int", &self.host_end])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_and_a_vm_port_on_one_network_reach_each_other() {
    const CIDR: &str = "10.202.3.0/24";
    const VM_IP: &str = "10.202.3.200";
    with_kuryr("vm", &[CIDR], |k| async move {
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", CIDR]).await;
        let network = k.network_of(&docker_id).await;
        let subnet = k.subnets_on(&network.id).await.remove(0);
        let vm_port = k
            .neutron
            .ports()
            .create(&PortSpec {
                name: Some(k.name("vm-port")),
                network_id: Some(network.id.clone()),
                fixed_ips: Some(vec![FixedIp {
                    subnet_id: subnet.id.clone(),
                    ip_address: VM_IP.into(),
                }]),
                device_owner: Some("compute:nova".into()),
                binding_host_id: Some(hostname()),
                ..Default::default()
            })
            .await
            .unwrap();
        k.neutron_ports.lock().unwrap().push(vm_port.id.clone());
        let vm = Vm::plug(&k.name("vm"), &vm_port, 24);
        active(&k, &vm_port.id).await;

        let c = start(&k, &k.name("c"), &net, &[]).await;
        active(&k, &c.port.id).await;
        assert!(
            k.pings(&c.name, VM_IP, FIRST_PING).await,
            "the container cannot ping the VM port {VM_IP}"
        );
        assert!(
            vm.pings(&c.ip),
            "the VM port cannot ping the container {}",
            c.ip
        );
        drop(vm);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kuryr_networks_are_isolated() {
    // One CIDR per network; a container on A also routes B's CIDR on its own link, so only
    // Neutron's L2 isolation keeps the packets apart.
    const A: &str = "10.202.4.0/24";
    const B: &str = "10.202.5.0/24";
    with_kuryr("isolated", &[A, B], |k| async move {
        let (net_a, net_b) = (k.name("a"), k.name("b"));
        k.create_network(&net_a, &["--subnet", A]).await;
        k.create_network(&net_b, &["--subnet", B]).await;
        let a1 = start(&k, &k.name("a1"), &net_a, &["--cap-add", "NET_ADMIN"]).await;
        let a2 = start(&k, &k.name("a2"), &net_a, &[]).await;
        let b1 = start(&k, &k.name("b1"), &net_b, &["--cap-add", "NET_ADMIN"]).await;
        for c in [&a1, &a2, &b1] {
            active(&k, &c.port.id).await;
        }
        k.docker_ok(&["exec", &a1.name, "ip", "route", "add", B, "dev", "eth0"])
            .await;
        k.docker_ok(&["exec", &b1.name, "ip", "route", "add", A, "dev", "eth0"])
            .await;
        assert!(
            k.pings(&a1.name, &a2.ip, FIRST_PING).await,
            "same network: reachable"
        );
        assert!(
            !k.pings(&a1.name, &b1.ip, Duration::from_secs(4)).await,
            "{} on {net_a} reaches {} on {net_b}",
            a1.name,
            b1.name
        );
    })
    .await;
}
