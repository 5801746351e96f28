//! `kuryr serve` driven by a real Docker 20.10 engine (`scripts/docker up`) against the real
//! local Neutron (`scripts/stack up`): what `docker network create`, `docker run`,
//! `docker network connect` and their removal do in Neutron and in the container.
//!
//! Each test starts its own `kuryr serve` under a plugin name of its own
//! (`kuryr-t<pid>-<test>`), uses its own CIDRs (10.201.N.0/24, fd00:201:N::/64), and removes
//! its containers, Docker networks and pre-created Neutron resources at the end, failed or
//! not, before it stops the daemon. Traffic is in `dataplane.rs`.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use docker_harness::*;
use kuryr_openstack::neutron::{Filters, FixedIp};
// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_create_and_remove() {
    const CIDR: &str = "10.201.1.0/24";
    with_kuryr("net", &[CIDR], |k| async move {
        let name = k.name("net");
        let id = k.create_network(&name, &["--subnet", CIDR]).await;

        let net = k.network_of(&id).await;
        assert_eq!(net.name, format!("kuryr-net-{}", &id[..8]));
        for tag in id_tags(&id) {
            assert!(net.tags.contains(&tag), "{tag} on {net:#?}");
        }
        assert!(
            !net.tags
                .iter()
                .any(|t| t.starts_with("kuryr.net.existing:")),
            "a network kuryr made is not marked existing: {:?}",
            net.tags
        );
        let subnets = k.subnets_on(&net.id).await;
        assert_eq!(subnets.len(), 1, "{subnets:#?}");
        let subnet = &subnets[0];
        assert_eq!(subnet.name, format!("kuryr-subnet-{CIDR}"));
        assert_eq!(subnet.cidr, CIDR);
        let pool_id = subnet.subnetpool_id.clone().expect("subnet from a pool");
        assert_eq!(
            subnet.tags,
            vec![pool_id.clone()],
            "subnet tagged with its pool"
        );
        let pool = k.neutron.subnetpools().get(&pool_id).await.unwrap();
        assert_eq!(pool.name, format!("kuryrPool-{CIDR}"));
        assert_eq!(pool.prefixes, vec![CIDR.to_string()]);

        let ipam = k.docker_ipam(&name).await;
        assert_eq!(ipam.len(), 1, "{ipam:?}");
        assert_eq!(ipam[0]["Subnet"], CIDR);
        assert_eq!(subnet.gateway_ip.as_deref(), Some("10.201.1.1"));

        k.remove_network(&name).await;
        assert!(k.networks_of(&id).await.is_empty(), "network tags gone");
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
        assert!(k
            .neutron
            .subnets()
            .get_opt(&subnet.id)
            .await
            .unwrap()
            .is_none());
        assert!(k
            .neutron
            .subnetpools()
            .get_opt(&pool_id)
            .await
            .unwrap()
            .is_none());
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
        assert!(k.ports_on(&net.id).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_gets_the_neutron_port() {
    const CIDR: &str = "10.201.2.0/24";
    with_kuryr("run", &[CIDR], |k| async move {
        // All of this runs with CAP_NET_ADMIN alone (the harness starts every daemon so).
        let pid = k.daemon_pid().expect("the daemon runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
                .to_string()
        };
        let net_admin = format!("{:016x}", 1u64 << 12);
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(field(set), net_admin, "{set} of kuryr serve (pid {pid})");
        }
        assert_eq!(
            field("CapInh:"),
            format!("{:016x}", 0),
            "CapInh of kuryr serve"
        );
        assert_eq!(
            field("NoNewPrivs:"),
            "1",
            "kuryr serve can gain no capability"
        );

        let net_name = k.name("net");
        let id = k.create_network(&net_name, &["--subnet", CIDR]).await;
        let net = k.network_of(&id).await;
        let subnet = k.subnets_on(&net.id).await.remove(0);
        let c = k.name("c");
        k.run(&c, &["--net", &net_name]).await;

        let a = k.attachment(&c, &net_name).await;
        assert!(in_cidr(&a.ip, CIDR), "{a:?}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.network_id, net.id);
        assert_eq!(port.name, "kuryr-unbound-port");
        assert_eq!(port.device_owner, "compute:kuryr");
        assert_eq!(port.device_id, a.endpoint_id);
        assert_eq!(port.binding_host_id, hostname());
        assert!(
            port.mac_address.eq_ignore_ascii_case(&a.mac),
            "{port:#?} {a:?}"
        );
        assert!(
            port.tags.contains(&"compute:kuryr".to_string()),
            "{:?}",
            port.tags
        );
        assert_eq!(
            port.fixed_ips,
            vec![FixedIp {
                subnet_id: subnet.id.clone(),
                ip_address: a.ip.clone()
            }]
        );
        assert_eq!(
            k.ports_on(&net.id).await.len(),
            1,
            "one port on the network"
        );

        let (addr, link) = k.interface(&c, "eth0").await;
        assert!(
            addr.contains(&format!("inet {}/24", port.fixed_ips[0].ip_address)),
            "{addr}"
        );
        assert!(
            link.to_lowercase()
                .contains(&format!("link/ether {}", port.mac_address.to_lowercase())),
            "{link}"
        );
        // Join gives the subnet's gateway: the container's default route.
        assert_eq!(Some(a.gateway.as_str()), subnet.gateway_ip.as_deref());
        let routes = k
            .docker_ok(&["exec", &c, "ip", "route", "show", "default"])
            .await;
        assert!(
            routes.contains(&format!("default via {} dev eth0", a.gateway)),
            "{routes}"
        );
        let tap = format!("tap{}", &port.id[..11]);
        assert!(host_link_exists(&tap), "host end {tap} of the veth pair");

        // The reconciler reads Docker's view: a running container's port is no orphan.
        let report = k
            .gc(&["--dry-run", "--min-age", "0", "--confirm-after", "0.5"])
            .await;
        let orphans = report["orphans"].to_string();
        assert!(
            !orphans.contains(&port.id) && !orphans.contains(&tap),
            "{report:#}"
        );
        assert!(
            !report["notes"].to_string().contains("Docker"),
            "Docker's view was read: {report:#}"
        );

        k.remove_container(&c).await;
        eventually("the port is deleted", || async {
            k.neutron
                .ports()
                .get_opt(&port.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        assert!(k.ports_on(&net.id).await.is_empty());
        assert!(!host_link_exists(&tap), "{tap} removed from the host");

        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_container_has_one_port_with_both_addresses() {
    const V4: &str = "10.201.3.0/24";
    const V6: &str = "fd00:201:3::/64";
    with_kuryr("dual", &[V4, V6], |k| async move {
        let net_name = k.name("net");
        let id = k
            .create_network(&net_name, &["--ipv6", "--subnet", V4, "--subnet", V6])
            .await;
        let net = k.network_of(&id).await;
        let mut subnets = k.subnets_on(&net.id).await;
        subnets.sort_by_key(|s| s.ip_version);
        assert_eq!(subnets.len(), 2, "{subnets:#?}");
        assert_eq!(subnets[0].name, format!("kuryr-subnet-{V4}"));
        assert_eq!(subnets[1].name, format!("kuryr-subnet-{V6}"));
        let pools: Vec<String> = subnets
            .iter()
            .map(|s| s.subnetpool_id.clone().expect("a pool"))
            .collect();

        let c = k.name("c");
        k.run(&c, &["--net", &net_name]).await;
        let a = k.attachment(&c, &net_name).await;
        assert!(in_cidr(&a.ip, V4), "{a:?}");
        assert!(in_cidr(&a.ipv6, V6), "{a:?}");
        assert_eq!(k.ports_on(&net.id).await.len(), 1, "one dual-stack port");
        let port = k.port_of(&a.endpoint_id).await;
        let mut ips: Vec<(String, String)> = port
            .fixed_ips
            .iter()
            .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
            .collect();
        ips.sort_by_key(|(s, _)| if *s == subnets[0].id { 0 } else { 1 });
        assert_eq!(
            ips,
            vec![
                (subnets[0].id.clone(), a.ip.clone()),
                (subnets[1].id.clone(), a.ipv6.clone())
            ]
        );
        assert!(port.mac_address.eq_ignore_ascii_case(&a.mac));
        let (addr, _) = k.interface(&c, "eth0").await;
        assert!(addr.contains(&format!("inet {}/24", a.ip)), "{addr}");
        assert!(addr.contains(&format!("inet6 {}/64", a.ipv6)), "{addr}");

        k.remove_container(&c).await;
        eventually("the port is deleted", || async {
            k.ports_on(&net.id).await.is_empty().then_some(())
        })
        .await;
        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
        for pool in pools {
            assert!(
                k.neutron
                    .subnetpools()
                    .get_opt(&pool)
                    .await
                    .unwrap()
                    .is_none(),
                "subnetpool {pool} deleted"
            );
        }
    })
    .await;
}

/// `--ip` and `--ip6` naming the two addresses of one dual-stack port the user made: the
/// container gets that one port, twice in a row (nothing left tagged after the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_and_ip6_adopt_one_dual_stack_port() {
    const V4: &str = "10.201.41.0/24";
    const V6: &str = "fd00:201:41::/64";
    const IP: &str = "10.201.41.70";
    const IP6: &str = "fd00:201:41::70";
    with_kuryr("dual-port", &[V4, V6], |k| async move {
        one_dual_stack_port_serves_ip_and_ip6(&k, [V4, V6], [IP, IP6]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_disconnect_a_running_container() {
    const A: &str = "10.201.4.0/24";
    const B: &str = "10.201.14.0/24";
    with_kuryr("conn", &[A, B], |k| async move {
        let (name_a, name_b) = (k.name("a"), k.name("b"));
        let id_a = k.create_network(&name_a, &["--subnet", A]).await;
        let id_b = k.create_network(&name_b, &["--subnet", B]).await;
        let (net_a, net_b) = (k.network_of(&id_a).await, k.network_of(&id_b).await);
        let c = k.name("c");
        k.run(&c, &["--net", &name_a]).await;
        assert_eq!(k.ports_on(&net_a.id).await.len(), 1);
        assert_eq!(k.ports_on(&net_b.id).await.len(), 0);

        k.docker_ok(&["network", "connect", &name_b, &c]).await;
        let ports = k.ports_on(&net_b.id).await;
        assert_eq!(ports.len(), 1, "{ports:#?}");
        let a = k.attachment(&c, &name_b).await;
        assert!(in_cidr(&a.ip, B), "{a:?}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.id, ports[0].id);
        assert_eq!(port.fixed_ips[0].ip_address, a.ip);
        let (addr, _) = k.interface(&c, "eth1").await;
        assert!(addr.contains(&format!("inet {}/24", a.ip)), "{addr}");

        k.docker_ok(&["network", "disconnect", &name_b, &c]).await;
        eventually("the port on the second network is deleted", || async {
            k.ports_on(&net_b.id).await.is_empty().then_some(())
        })
        .await;
        assert_eq!(k.ports_on(&net_a.id).await.len(), 1, "the first stays");
        let tap = format!("tap{}", &port.id[..11]);
        assert!(!host_link_exists(&tap), "{tap} removed from the host");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_network_by_name_is_adopted_and_given_back() {
    const CIDR: &str = "10.201.5.0/24";
    with_kuryr("exist", &[CIDR], |k| async move {
        let neutron_name = k.name("neutron-net");
        let (net, subnets) = k.neutron_network(&neutron_name, &[CIDR]).await;
        let subnet = subnets[0].clone();
        let name = k.name("net");
        let opt = format!("neutron.net.name={neutron_name}");
        let id = k
            .create_network(&name, &["--subnet", CIDR, "-o", &opt])
            .await;

        let adopted = k.network_of(&id).await;
        assert_eq!(adopted.id, net.id);
        assert_eq!(adopted.name, neutron_name, "the name is kept");
        for tag in id_tags(&id) {
            assert!(adopted.tags.contains(&tag), "{tag} on {:?}", adopted.tags);
        }
        let existing = format!("kuryr.net.existing:{}", &id[..12]);
        assert!(adopted.tags.contains(&existing), "{:?}", adopted.tags);
        let on_net = k.subnets_on(&net.id).await;
        assert_eq!(
            on_net.len(),
            1,
            "the user's subnet is used, none added: {on_net:#?}"
        );
        assert_eq!(on_net[0].id, subnet.id);
        let pools = k.pools_named(&format!("kuryrPool-{CIDR}")).await;
        assert_eq!(pools.len(), 1, "{pools:#?}");
        assert!(
            on_net[0].tags.contains(&pools[0].id),
            "the subnet carries its pool's id: {:?}",
            on_net[0].tags
        );

        let c = k.name("c");
        k.run(&c, &["--net", &name]).await;
        let a = k.attachment(&c, &name).await;
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.network_id, net.id);
        assert_eq!(port.fixed_ips[0].subnet_id, subnet.id);
        assert_eq!(port.fixed_ips[0].ip_address, a.ip);

        k.remove_container(&c).await;
        k.remove_network(&name).await;
        let after = k.neutron.networks().get(&net.id).await.unwrap();
        assert!(
            after.tags.is_empty(),
            "kuryr's tags removed: {:?}",
            after.tags
        );
        let after = k.neutron.subnets().get(&subnet.id).await.unwrap();
        assert!(
            after.tags.is_empty(),
            "the subnet stays, untagged: {:?}",
            after.tags
        );
        assert!(k.ports_on(&net.id).await.is_empty());
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_network_name_is_refused() {
    const CIDR: &str = "10.201.15.0/24";
    with_kuryr("ambig", &[CIDR], |k| async move {
        let dup = k.name("dup");
        let (n1, _) = k.neutron_network(&dup, &[]).await;
        let (n2, _) = k.neutron_network(&dup, &[]).await;
        let name = k.name("net");
        let opt = format!("neutron.net.name={dup}");
        let out = k
            .docker(&[
                "network",
                "create",
                "-d",
                &k.plugin,
                "--ipam-driver",
                &k.plugin,
                "--subnet",
                CIDR,
                "-o",
                &opt,
                &name,
            ])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            k.networks.lock().unwrap().push(name.clone());
        }
        assert!(!out.status.success(), "refused");
        assert!(
            stderr.contains(&format!("2 Neutron networks are named \"{dup}\"")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&n1.id) && stderr.contains(&n2.id),
            "{stderr}"
        );
        for n in [&n1, &n2] {
            let after = k.neutron.networks().get(&n.id).await.unwrap();
            assert!(after.tags.is_empty(), "{:?}", after.tags);
        }
        assert!(
            k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty(),
            "the pool of the refused network is released"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precreated_port_is_adopted_then_reset() {
    const CIDR: &str = "10.201.6.0/24";
    const IP: &str = "10.201.6.50";
    with_kuryr("port", &[CIDR], |k| async move {
        let net_name = k.name("net");
        let id = k.create_network(&net_name, &["--subnet", CIDR]).await;
        let net = k.network_of(&id).await;
        let subnet = k.subnets_on(&net.id).await.remove(0);
        let user = k.neutron_port(&k.name("user-port"), &subnet, IP).await;
        assert!(user.tags.is_empty());

        // Checked at the end, so that both rounds run whatever they show.
        let mut device_ids = Vec::new();
        for round in 1..=2 {
            let c = k.name(&format!("c{round}"));
            k.run(&c, &["--net", &net_name, "--ip", IP]).await;
            let a = k.attachment(&c, &net_name).await;
            assert_eq!(a.ip, IP);
            let ports = k.ports_on(&net.id).await;
            assert_eq!(ports.len(), 1, "the user's port, no other: {ports:#?}");
            let port = k.port_of(&a.endpoint_id).await;
            assert_eq!(
                port.id, user.id,
                "round {round}: the user's port is adopted"
            );
            assert!(
                port.tags.contains(&"kuryr.port.existing".to_string()),
                "{:?}",
                port.tags
            );
            assert!(!port.tags.contains(&"compute:kuryr".to_string()));
            assert_eq!(port.device_owner, "compute:kuryr");
            assert_eq!(port.binding_host_id, hostname());
            assert!(
                port.mac_address.eq_ignore_ascii_case(&a.mac),
                "{} vs {}",
                port.mac_address,
                a.mac
            );
            let (addr, link) = k.interface(&c, "eth0").await;
            assert!(addr.contains(&format!("inet {IP}/24")), "{addr}");
            assert!(
                link.to_lowercase()
                    .contains(&port.mac_address.to_lowercase()),
                "{link}"
            );

            k.remove_container(&c).await;
            let after = eventually("the port is given back", || async {
                let p = k.neutron.ports().get(&user.id).await.unwrap();
                (!has_kuryr_tag(&p.tags)).then_some(p)
            })
            .await;
            assert!(after.tags.is_empty(), "untagged: {:?}", after.tags);
            assert_eq!(after.device_owner, "", "reset, not deleted");
            assert_eq!(after.binding_host_id, "");
            assert_eq!(after.fixed_ips[0].ip_address, IP);
            device_ids.push((round, a.endpoint_id, port.device_id, after.device_id));
        }

        // The user's port still holds an address of the subnet: the user deletes it first.
        k.neutron.ports().delete(&user.id).await.unwrap();
        k.neutron_ports.lock().unwrap().clear();
        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());

        let wrong: Vec<String> = device_ids
            .iter()
            .filter(|(_, endpoint, bound, released)| bound != endpoint || !released.is_empty())
            .map(|(round, endpoint, bound, released)| {
                format!(
                    "round {round}: endpoint {endpoint}, device_id while bound {bound:?}, \
                     after release {released:?}"
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "the adopted port's device_id is the endpoint id while bound and empty once \
             released (kuryr filled it in):\n{}",
            wrong.join("\n")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_cidr_on_two_networks_told_apart_by_subnet() {
    // Not 10.201.7.0/24, which kuryr-openstack's tests/neutron.rs uses.
    const CIDR: &str = "10.201.17.0/24";
    with_kuryr("same", &[CIDR], |k| async move {
        let (net1, sub1) = k.neutron_network(&k.name("neutron-1"), &[CIDR]).await;
        let (net2, sub2) = k.neutron_network(&k.name("neutron-2"), &[CIDR]).await;
        let mut seen = Vec::new();
        for (i, (net, sub)) in [(&net1, &sub1[0]), (&net2, &sub2[0])]
            .into_iter()
            .enumerate()
        {
            let name = k.name(&format!("n{}", i + 1));
            let net_opt = format!("neutron.net.uuid={}", net.id);
            let sub_opt = format!("neutron.subnet.uuid={}", sub.id);
            let id = k
                .create_network(
                    &name,
                    &[
                        "--subnet",
                        CIDR,
                        "-o",
                        &net_opt,
                        "-o",
                        &sub_opt,
                        "--ipam-opt",
                        &sub_opt,
                    ],
                )
                .await;
            assert_eq!(k.network_of(&id).await.id, net.id);
            let c = k.name(&format!("c{}", i + 1));
            k.run(&c, &["--net", &name]).await;
            let a = k.attachment(&c, &name).await;
            assert!(in_cidr(&a.ip, CIDR), "{a:?}");
            let port = k.port_of(&a.endpoint_id).await;
            assert_eq!(port.network_id, net.id, "{name}'s port is on its network");
            assert_eq!(port.fixed_ips.len(), 1);
            assert_eq!(port.fixed_ips[0].subnet_id, sub.id);
            assert_eq!(port.fixed_ips[0].ip_address, a.ip);
            seen.push((name, c, port.id));
        }
        let pools = k.pools_named(&format!("kuryrPool-{CIDR}")).await;
        assert_eq!(pools.len(), 2, "one pool per subnet: {pools:#?}");
        for sub in [&sub1[0], &sub2[0]] {
            assert_eq!(
                pools.iter().filter(|p| p.tags.contains(&sub.id)).count(),
                1,
                "a pool tagged with subnet {}: {pools:#?}",
                sub.id
            );
        }

        for (name, c, port) in &seen {
            k.remove_container(c).await;
            eventually("the port is deleted", || async {
                k.neutron
                    .ports()
                    .get_opt(port)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            })
            .await;
            k.remove_network(name).await;
        }
        for (net, sub) in [(&net1, &sub1[0]), (&net2, &sub2[0])] {
            let n = k.neutron.networks().get(&net.id).await.unwrap();
            assert!(n.tags.is_empty(), "{:?}", n.tags);
            let s = k.neutron.subnets().get(&sub.id).await.unwrap();
            assert!(s.tags.is_empty(), "{:?}", s.tags);
        }
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposed_ports_become_a_security_group() {
    const CIDR: &str = "10.201.8.0/24";
    with_kuryr("expose", &[CIDR], |k| async move {
        let net_name = k.name("net");
        k.create_network(&net_name, &["--subnet", CIDR]).await;
        let c = k.name("c");
        k.run(&c, &["--net", &net_name, "--expose", "1234-1238/udp"])
            .await;
        let a = k.attachment(&c, &net_name).await;
        let port = k.port_of(&a.endpoint_id).await;
        let group_name = format!("{}-exposed_ports", port.id);
        let groups = k
            .neutron
            .security_groups()
            .list(&Filters::new().eq("name", group_name.as_str()))
            .await
            .unwrap();
        assert_eq!(groups.len(), 1, "{groups:#?}");
        let group = &groups[0];
        assert_eq!(group.description, "Docker exposed ports created by Kuryr.");
        let mut ingress: Vec<String> = group
            .security_group_rules
            .iter()
            .filter(|r| r.direction == "ingress")
            .map(|r| {
                format!(
                    "{} {} {:?}-{:?} from {:?}",
                    r.ethertype,
                    r.protocol.as_deref().unwrap_or("any"),
                    r.port_range_min,
                    r.port_range_max,
                    r.remote_ip_prefix
                )
            })
            .collect();
        ingress.sort();
        assert_eq!(
            ingress,
            vec![
                "IPv4 udp Some(1234)-Some(1238) from None",
                "IPv6 udp Some(1234)-Some(1238) from None",
            ],
            "one ingress rule per ethertype"
        );
        assert!(
            port.security_groups.contains(&group.id),
            "attached to the port: {:?}",
            port.security_groups
        );

        // Stopping the container revokes its external connectivity.
        k.docker_ok(&["kill", &c]).await;
        eventually("the exposed-ports group is deleted", || async {
            k.neutron
                .security_groups()
                .get_opt(&group.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        eventually("the port is deleted", || async {
            k.neutron
                .ports()
                .get_opt(&port.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_without_subnet_uses_the_default_pool() {
    with_kuryr("default", &[], |k| async move {
        let default = default_pool(&k.neutron).await;
        let net_name = k.name("net");
        let id = k.create_network(&net_name, &[]).await;
        let ipam = k.docker_ipam(&net_name).await;
        assert_eq!(ipam.len(), 1, "{ipam:?}");
        let cidr = ipam[0]["Subnet"].as_str().unwrap().to_owned();
        let (block, len) = cidr.split_once('/').unwrap();
        assert_eq!(
            len.parse::<u32>().ok(),
            default.default_prefixlen,
            "a block of the default prefix length"
        );
        assert!(
            default.prefixes.iter().any(|p| in_cidr(block, p)),
            "{cidr} inside the default pool {:?}",
            default.prefixes
        );
        let net = k.network_of(&id).await;
        let subnets = k.subnets_on(&net.id).await;
        assert_eq!(subnets.len(), 1);
        assert_eq!(subnets[0].cidr, cidr);
        assert_eq!(subnets[0].name, format!("kuryr-subnet-{cidr}"));
        assert_eq!(k.pools_named(&format!("kuryrPool-{cidr}")).await.len(), 1);

        let c = k.name("c");
        k.run(&c, &["--net", &net_name]).await;
        let a = k.attachment(&c, &net_name).await;
        assert!(in_cidr(&a.ip, &cidr), "{a:?} in {cidr}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.fixed_ips[0].ip_address, a.ip);
        let (addr, _) = k.interface(&c, "eth0").await;
        assert!(addr.contains(&format!("inet {}/{len}", a.ip)), "{addr}");

        k.remove_container(&c).await;
        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
        assert!(k.pools_named(&format!("kuryrPool-{cidr}")).await.is_empty());
        assert!(
            k.neutron
                .subnetpools()
                .get_opt(&default.id)
                .await
                .unwrap()
                .is_some(),
            "the default pool stays"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_releases_addresses_and_pools() {
    const CIDR: &str = "10.201.10.0/24";
    const RANGE: &str = "10.201.10.128/25";
    with_kuryr("ipam", &[CIDR, RANGE], |k| async move {
        let net_name = k.name("net");
        let id = k
            .create_network(&net_name, &["--subnet", CIDR, "--ip-range", RANGE])
            .await;
        // As upstream: the --ip-range is the subnetpool's and the subnet's CIDR.
        let net = k.network_of(&id).await;
        let subnet = k.subnets_on(&net.id).await.remove(0);
        assert_eq!(subnet.cidr, RANGE);
        assert_eq!(subnet.name, format!("kuryr-subnet-{RANGE}"));
        let pool_id = subnet.subnetpool_id.clone().unwrap();
        let pool = k.neutron.subnetpools().get(&pool_id).await.unwrap();
        assert_eq!(pool.name, format!("kuryrPool-{RANGE}"));
        assert_eq!(pool.prefixes, vec![RANGE.to_string()]);

        // The second container asks for its MAC: the IPAM port is created with it.
        const MAC: &str = "02:42:0a:c9:0a:99";
        let mut ports = Vec::new();
        for (i, extra) in [(1, vec![]), (2, vec!["--mac-address", MAC])] {
            let c = k.name(&format!("c{i}"));
            let mut args = vec!["--net", net_name.as_str()];
            args.extend(extra);
            k.run(&c, &args).await;
            let a = k.attachment(&c, &net_name).await;
            assert!(in_cidr(&a.ip, RANGE), "{a:?} in --ip-range {RANGE}");
            assert_eq!(a.prefix_len, 25);
            let port = k.port_of(&a.endpoint_id).await;
            assert!(port.mac_address.eq_ignore_ascii_case(&a.mac), "{port:#?}");
            if i == 2 {
                assert_eq!(port.mac_address, MAC);
                let (_, link) = k.interface(&c, "eth0").await;
                assert!(link.contains(&format!("link/ether {MAC}")), "{link}");
            }
            ports.push((c, port));
        }
        assert_eq!(k.ports_on(&net.id).await.len(), 2);
        assert_ne!(
            ports[0].1.fixed_ips[0].ip_address,
            ports[1].1.fixed_ips[0].ip_address
        );

        for (c, port) in &ports {
            k.remove_container(c).await;
            eventually("the IPAM port is deleted", || async {
                k.neutron
                    .ports()
                    .get_opt(&port.id)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            })
            .await;
        }
        assert!(k.ports_on(&net.id).await.is_empty());
        assert!(
            k.neutron
                .subnets()
                .get_opt(&subnet.id)
                .await
                .unwrap()
                .is_some(),
            "the subnet stays while the Docker network exists"
        );

        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
        assert!(k
            .neutron
            .subnetpools()
            .get_opt(&pool_id)
            .await
            .unwrap()
            .is_none());
        assert!(k
            .pools_named(&format!("kuryrPool-{RANGE}"))
            .await
            .is_empty());
    })
    .await;
}

/// `--ip-range` on an existing Neutron network, as upstream does it: the existing subnet
/// whose CIDR is the range is used (not a new one for `--subnet`, which would overlap it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_range_on_an_existing_network_uses_its_subnet() {
    const SUBNET: &str = "10.208.0.0/16";
    const RANGE: &str = "10.208.1.0/24";
    with_kuryr("ip-range", &[RANGE], |k| async move {
        let (net, user_subnets) = k.neutron_network(&k.name("neutron-net"), &[RANGE]).await;
        let user = user_subnets[0].clone();
        let name = k.name("net");
        let opt = format!("neutron.net.name={}", net.name);
        let id = k
            .create_network(
                &name,
                &["--subnet", SUBNET, "--ip-range", RANGE, "-o", &opt],
            )
            .await;
        assert_eq!(k.network_of(&id).await.id, net.id);
        let subnets = k.subnets_on(&net.id).await;
        assert_eq!(
            subnets.iter().map(|s| &s.id).collect::<Vec<_>>(),
            vec![&user.id],
            "the existing subnet is used: {subnets:#?}"
        );
        let pools = k.pools_named(&format!("kuryrPool-{RANGE}")).await;
        assert_eq!(pools.len(), 1, "{pools:#?}");
        assert_eq!(pools[0].prefixes, vec![RANGE.to_string()]);

        let c = k.name("c");
        k.run(&c, &["--net", &name]).await;
        let a = k.attachment(&c, &name).await;
        assert!(in_cidr(&a.ip, RANGE), "{a:?}");
        assert_eq!(a.prefix_len, 24, "{a:?}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.fixed_ips.len(), 1, "{port:#?}");
        assert_eq!(port.fixed_ips[0].subnet_id, user.id);

        k.remove_container(&c).await;
        k.remove_network(&name).await;
        assert!(
            k.neutron
                .subnets()
                .get_opt(&user.id)
                .await
                .unwrap()
                .is_some(),
            "the user's subnet stays"
        );
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_some());
        assert!(k
            .pools_named(&format!("kuryrPool-{RANGE}"))
            .await
            .is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_daemon_finds_everything_by_tags() {
    const CIDR: &str = "10.201.11.0/24";
    with_kuryr("restart", &[CIDR], |k| async move {
        let net_name = k.name("net");
        let id = k.create_network(&net_name, &["--subnet", CIDR]).await;
        let net = k.network_of(&id).await;
        let c1 = k.name("c1");
        k.run(&c1, &["--net", &net_name]).await;
        let a1 = k.attachment(&c1, &net_name).await;
        let port1 = k.port_of(&a1.endpoint_id).await;

        // The driver keeps no state: a new daemon serves what the old one made.
        k.restart().await;
        let c2 = k.name("c2");
        k.run(&c2, &["--net", &net_name]).await;
        let a2 = k.attachment(&c2, &net_name).await;
        assert!(in_cidr(&a2.ip, CIDR), "{a2:?}");
        assert_ne!(a1.ip, a2.ip);
        assert_eq!(k.port_of(&a2.endpoint_id).await.network_id, net.id);
        assert_eq!(k.ports_on(&net.id).await.len(), 2);

        k.restart().await;
        k.remove_container(&c1).await;
        eventually("the first container's port is deleted", || async {
            k.neutron
                .ports()
                .get_opt(&port1.id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
        let tap = format!("tap{}", &port1.id[..11]);
        assert!(!host_link_exists(&tap), "{tap} removed from the host");
        k.remove_container(&c2).await;
        k.remove_network(&net_name).await;
        assert!(k
            .neutron
            .networks()
            .get_opt(&net.id)
            .await
            .unwrap()
            .is_none());
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_network_keeps_the_users_subnets() {
    // The user's subnet is IPv6: Neutron lets a network mix pool and pool-less subnets of
    // different families only.
    const USER: &str = "fd00:201:12::/64";
    const CIDR: &str = "10.201.13.0/24";
    with_kuryr("keep", &[USER, CIDR], |k| async move {
        let (net, user_subnets) = k.neutron_network(&k.name("neutron-net"), &[USER]).await;
        let user = user_subnets[0].clone();
        let name = k.name("net");
        let opt = format!("neutron.net.uuid={}", net.id);
        let id = k
            .create_network(&name, &["--subnet", CIDR, "-o", &opt])
            .await;
        assert_eq!(k.network_of(&id).await.id, net.id);
        let mut subnets = k.subnets_on(&net.id).await;
        subnets.retain(|s| s.id != user.id);
        assert_eq!(subnets.len(), 1, "kuryr added one subnet: {subnets:#?}");
        let ours = subnets.remove(0);
        assert_eq!(ours.name, format!("kuryr-subnet-{CIDR}"));
        assert_eq!(ours.cidr, CIDR);

        let c = k.name("c");
        k.run(&c, &["--net", &name]).await;
        let a = k.attachment(&c, &name).await;
        assert!(in_cidr(&a.ip, CIDR), "{a:?}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.network_id, net.id);
        assert_eq!(port.fixed_ips.len(), 1, "{port:#?}");
        assert_eq!(port.fixed_ips[0].subnet_id, ours.id);

        k.remove_container(&c).await;
        k.remove_network(&name).await;
        let after = k.neutron.networks().get(&net.id).await.unwrap();
        assert!(after.tags.is_empty(), "{:?}", after.tags);
        let left: Vec<String> = k
            .subnets_on(&net.id)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            left,
            vec![user.id.clone()],
            "kuryr's subnet deleted, the user's kept"
        );
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
        assert!(k.ports_on(&net.id).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_network_with_a_subnet_takes_another_cidr() {
    const USER: &str = "10.201.12.0/24";
    const CIDR: &str = "10.201.16.0/24";
    with_kuryr("second", &[USER, CIDR], |k| async move {
        let (net, user_subnets) = k.neutron_network(&k.name("neutron-net"), &[USER]).await;
        let user = user_subnets[0].clone();
        let name = k.name("net");
        let opt = format!("neutron.net.uuid={}", net.id);
        let args = [
            "network",
            "create",
            "-d",
            &k.plugin,
            "--ipam-driver",
            &k.plugin,
            "--subnet",
            CIDR,
            "-o",
            &opt,
            &name,
        ];
        k.networks.lock().unwrap().push(name.clone());
        let out = k.docker(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            // A refused CreateNetwork leaves Neutron as it was.
            let after = k.neutron.networks().get(&net.id).await.unwrap();
            assert!(after.tags.is_empty(), "rolled back: {:?}", after.tags);
            let subnets = k.subnets_on(&net.id).await;
            assert_eq!(subnets.len(), 1, "rolled back: {subnets:#?}");
            assert!(
                k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty(),
                "the pool of the refused network is released"
            );
        }
        assert!(
            out.status.success(),
            "docker network create --subnet {CIDR} -o neutron.net.uuid=<network with a \
             pool-less IPv4 subnet {USER}>: Neutron allows one pool per IP version on a \
             network, so kuryr's subnet must be created pool-less. Docker said: {}",
            stderr.trim()
        );
        let mut subnets = k.subnets_on(&net.id).await;
        subnets.retain(|s| s.id != user.id);
        assert_eq!(subnets.len(), 1, "kuryr added one subnet: {subnets:#?}");
        let ours = subnets.remove(0);
        let c = k.name("c");
        k.run(&c, &["--net", &name]).await;
        let a = k.attachment(&c, &name).await;
        assert!(in_cidr(&a.ip, CIDR), "{a:?}");
        let port = k.port_of(&a.endpoint_id).await;
        assert_eq!(port.fixed_ips[0].subnet_id, ours.id);
        k.remove_container(&c).await;
        k.remove_network(&name).await;
        let left: Vec<String> = k
            .subnets_on(&net.id)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            left,
            vec![user.id.clone()],
            "kuryr's subnet deleted, the user's kept"
        );
        assert!(k.pools_named(&format!("kuryrPool-{CIDR}")).await.is_empty());
    })
    .await;
}
