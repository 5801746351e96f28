//! Port pools against the real Neutron and Docker: filling, a hit (no Neutron request on
//! Docker's path), a burst that empties the pool, recycling, the maximum, recovery after
//! `kill -9`, pre-population, and `kuryr pool`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod docker_harness;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use docker_harness::*;
use kuryr_openstack::neutron::{Filters, Port};
use serde_json::Value;

const POOL_PORT_NAME: &str = "kuryr-pool-port";

/// kuryr.conf of the stack plus a `[vif_pool]` section.
fn pool_config(k: &Kuryr, vif_pool: &str) -> PathBuf {
    conf_with(k, &format!("[vif_pool]\nenabled = true\n{vif_pool}"))
}

/// kuryr.conf of the stack plus `extra` lines.
fn conf_with(k: &Kuryr, extra: &str) -> PathBuf {
    stack_config_with(&k.plugin, extra)
}

fn plugin_socket(k: &Kuryr) -> PathBuf {
    PathBuf::from(format!("/run/docker/plugins/{}.sock", k.plugin))
}

/// `kuryr --config-file <conf> <args> --plugin-name <plugin>`: exit status, stdout, stderr.
fn kuryr_cli(k: &Kuryr, conf: &PathBuf, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .arg("--config-file")
        .arg(conf)
        .args(args)
        .args(["--plugin-name", &k.plugin])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kuryr_json(k: &Kuryr, conf: &PathBuf, args: &[&str]) -> Value {
    let (ok, out, err) = kuryr_cli(k, conf, args);
    assert!(ok, "kuryr {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kuryr {args:?}: {e}: {out}"))
}

/// Free and held ports of the network's pools, as the daemon reports them.
fn pool_counts(k: &Kuryr, conf: &PathBuf, network_id: &str) -> (u64, u64) {
    let report = kuryr_json(k, conf, &["pool", "list", "--json"]);
    let mut free = 0;
    let mut held = 0;
    for p in report["pools"].as_array().unwrap() {
        if p["network_id"] == network_id {
            free += p["free"].as_u64().unwrap();
            held += p["held"].as_u64().unwrap();
        }
    }
    (free, held)
}

/// The free pool ports of a network, as Neutron has them.
async fn free_pool_ports(k: &Kuryr, network_id: &str) -> Vec<Port> {
    k.neutron
        .ports()
        .list(
            &Filters::new()
                .eq("network_id", network_id)
                .eq("name", POOL_PORT_NAME),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.device_id.is_empty())
        .collect()
}

fn assert_pool_port(p: &Port) {
    let host = hostname();
    assert_eq!(p.device_owner, "compute:kuryr", "{p:#?}");
    assert_eq!(p.binding_host_id, host, "{p:#?}");
    // Tests run several daemons on one host: each owns its pool ports by plugin name.
    assert!(
        p.tags
            .iter()
            .any(|t| t.starts_with(&format!("kuryr.pool:{host}:"))),
        "{p:#?}"
    );
    assert!(p.tags.contains(&"compute:kuryr".to_string()), "{p:#?}");
}

async fn start_pooled(k: &Kuryr, vif_pool: &str) -> PathBuf {
    let conf = pool_config(k, vif_pool);
    k.serve_with(&conf, &plugin_socket(k), false).await;
    conf
}

/// The host end of a port's veth, and what the kernel says of a link.
fn host_end(port_id: &str) -> String {
    format!("tap{}", &port_id[..11])
}

fn link_attr(link: &str, attr: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{link}/{attr}"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A free port waits plugged in: its veth on the host, marked free, on br-int.
fn assert_waits_plugged_in(p: &Port) {
    let tap = host_end(&p.id);
    assert!(host_link_exists(&tap), "free port {} has no {tap}", p.id);
    assert!(
        host_link_exists(&format!("t_c{}", &p.id[..11])),
        "the container end of free port {} is on the host",
        p.id
    );
    assert_eq!(link_attr(&tap, "ifalias"), "kuryr-pool-port", "{tap}");
    assert_eq!(external_ids(&tap)["iface-id"], p.id.as_str(), "{tap}");
}

fn on_path_requests(stats: &Value) -> u64 {
    stats["neutron_requests"]["on_path"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_pool_serves_a_container_without_neutron_requests_and_refills() {
    let cidr = "10.206.1.0/24";
    with_kuryr_unstarted("pool-hit", &[cidr], |k| async move {
        let conf = start_pooled(
            &k,
            "ports_pool_min = 3\nports_pool_batch = 4\nports_pool_update_frequency = 2",
        )
        .await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let (ok, out, err) =
            kuryr_cli(&k, &conf, &["pool", "populate", &docker_id, "--count", "4"]);
        assert!(ok, "populate: {err}");
        assert!(out.contains("4 ports added"), "{out}");
        let free = free_pool_ports(&k, &network.id).await;
        assert_eq!(free.len(), 4, "{free:#?}");
        free.iter().for_each(assert_pool_port);
        free.iter().for_each(assert_waits_plugged_in);
        let pooled: HashSet<String> = free.iter().map(|p| p.id.clone()).collect();
        eventually(
            "the free ports ACTIVE before any container takes one",
            || async {
                let now = free_pool_ports(&k, &network.id).await;
                now.iter().all(|p| p.status == "ACTIVE").then_some(())
            },
        )
        .await;

        // The first container also looks the network up (then remembered).
        let warm = k.name("warm");
        k.run(&warm, &["--net", &net]).await;
        kuryr_json(&k, &conf, &["stats", "--json", "--reset"]);
        let c = k.name("c1");
        k.run(&c, &["--net", &net]).await;
        let stats = kuryr_json(&k, &conf, &["stats", "--json"]);
        assert_eq!(
            on_path_requests(&stats),
            0,
            "no Neutron request on Docker's path for a pool hit: {stats:#}"
        );
        let a = k.attachment(&c, &net).await;
        let port = eventually("the endpoint's tags on its pool port", || async {
            k.ports_of(&a.endpoint_id).await.into_iter().next()
        })
        .await;
        assert!(pooled.contains(&port.id), "the container got a pool port");
        assert_eq!(port.fixed_ips[0].ip_address, a.ip);
        assert_eq!(port.mac_address, a.mac, "the port has Docker's MAC");
        assert_eq!(port.binding_host_id, hostname());
        let port = eventually("device_id = the endpoint", || async {
            let p = k.neutron.ports().get(&port.id).await.unwrap();
            (p.device_id == a.endpoint_id).then_some(p)
        })
        .await;
        assert_eq!(port.name, "kuryr-unbound-port");
        let (addr, _) = k.interface(&c, "eth0").await;
        assert!(addr.contains(&a.ip), "{addr}");
        // The interface that waited is the container's, and says so.
        let tap = host_end(&port.id);
        let index = link_attr(&tap, "ifindex");
        assert!(
            !host_link_exists(&format!("t_c{}", &port.id[..11])),
            "the container end moved into the container"
        );
        eventually("the interface marked with the endpoint", || async {
            (link_attr(&tap, "ifalias") == format!("kuryr-endpoint={}", a.endpoint_id))
                .then_some(())
        })
        .await;
        // Two taken of four: below ports_pool_min = 3, so a batch of 4 follows.
        eventually("the pool back at ports_pool_min or more", || async {
            (free_pool_ports(&k, &network.id).await.len() >= 3).then_some(())
        })
        .await;

        // Released, the port waits plugged in again: the same interface, marked free.
        k.remove_container(&c).await;
        let back = eventually("the released port free again in Neutron", || async {
            free_pool_ports(&k, &network.id)
                .await
                .into_iter()
                .find(|p| p.id == port.id)
        })
        .await;
        eventually("its interface marked free", || async {
            (link_attr(&tap, "ifalias") == "kuryr-pool-port").then_some(())
        })
        .await;
        assert_waits_plugged_in(&back);
        assert_eq!(
            link_attr(&tap, "ifindex"),
            index,
            "the same veth, kept plugged in"
        );

        // A container gone within owner_write_delay (2 s) costs Neutron nothing: its port
        // never leaves the pool's state there.
        let revisions = |ports: Vec<Port>| -> Vec<(String, u64)> {
            let mut v: Vec<_> = ports
                .into_iter()
                .map(|p| (p.id, p.revision_number))
                .collect();
            v.sort();
            v
        };
        // (Once the agent has wired every free port: ACTIVE bumps a port's revision.)
        let before = eventually("every free port ACTIVE", || async {
            let now = free_pool_ports(&k, &network.id).await;
            now.iter()
                .all(|p| p.status == "ACTIVE")
                .then(|| revisions(now))
        })
        .await;
        let (free_before, _) = pool_counts(&k, &conf, &network.id);
        let image = image();
        k.docker_ok(&["run", "--rm", "--net", &net, &image, "true"])
            .await;
        eventually(
            "the short-lived container's port back in the pool",
            || async { (pool_counts(&k, &conf, &network.id) == (free_before, 1)).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            revisions(free_pool_ports(&k, &network.id).await),
            before,
            "no pool port changed in Neutron"
        );

        k.remove_container(&warm).await;
        let mut all: HashSet<String> = pooled.clone();
        all.extend(
            free_pool_ports(&k, &network.id)
                .await
                .into_iter()
                .map(|p| p.id),
        );
        k.remove_network(&net).await;
        assert!(
            k.networks_of(&docker_id).await.is_empty(),
            "network deleted with its pool"
        );
        assert!(k.ports_on(&network.id).await.is_empty(), "no port left");
        for id in &all {
            assert!(
                !host_link_exists(&host_end(id)),
                "{} left on the host",
                host_end(id)
            );
        }
        let ovs = vsctl(&["--columns=external_ids", "list", "Interface"]);
        for id in &all {
            assert!(!ovs.contains(id.as_str()), "OVS interface of {id} left");
        }
    })
    .await;
}

/// The daemon's pool counters (`kuryr pool list --json`).
fn pool_counters(k: &Kuryr, conf: &PathBuf) -> Value {
    kuryr_json(k, conf, &["pool", "list", "--json"])["counters"].clone()
}

/// The target size the daemon reports for the network's pool.
fn pool_target(k: &Kuryr, conf: &PathBuf, network_id: &str) -> Option<u64> {
    let report = kuryr_json(k, conf, &["pool", "list", "--json"]);
    report["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["network_id"] == network_id)
        .and_then(|p| p["target"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_configuration_pools_from_a_networks_first_container_on() {
    let cidr = "10.206.10.0/24";
    with_kuryr_unstarted("pool-default", &[cidr], |k| async move {
        // The stack's kuryr.conf says nothing about pools.
        let conf = config_file();
        assert!(!std::fs::read_to_string(&conf)
            .unwrap()
            .contains("[vif_pool]"));
        k.serve_with(&conf, &plugin_socket(&k), false).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let report = kuryr_json(&k, &conf, &["pool", "list", "--json"]);
        assert_eq!(report["enabled"], true, "{report:#}");
        assert!(
            free_pool_ports(&k, &network.id).await.is_empty(),
            "nothing is made before a container asks"
        );

        // The first container's port is made on demand; its request starts the pool.
        let first = k.name("c1");
        k.run(&first, &["--net", &net]).await;
        let free = eventually("two free pool ports, plugged in and ACTIVE", || async {
            let f = free_pool_ports(&k, &network.id).await;
            (f.len() == 2 && f.iter().all(|p| p.status == "ACTIVE")).then_some(f)
        })
        .await;
        free.iter().for_each(assert_pool_port);
        free.iter().for_each(assert_waits_plugged_in);
        assert_eq!(pool_target(&k, &conf, &network.id), Some(2));

        // From the second container on, Docker's path asks Neutron nothing.
        kuryr_json(&k, &conf, &["stats", "--json", "--reset"]);
        let second = k.name("c2");
        k.run(&second, &["--net", &net]).await;
        let stats = kuryr_json(&k, &conf, &["stats", "--json"]);
        assert_eq!(on_path_requests(&stats), 0, "{stats:#}");
        let port = port_of_container(&k, &second, &net).await;
        assert!(
            free.iter().any(|p| p.id == port.id),
            "the second container got a pool port"
        );
        let (addr, link) = k.interface(&second, "eth0").await;
        assert!(addr.contains(&port.fixed_ips[0].ip_address), "{addr}");
        assert!(
            link.contains(&format!("link/ether {}", port.mac_address)),
            "{link}"
        );
        assert!(
            k.pings(
                &second,
                &k.attachment(&first, &net).await.ip,
                Duration::from_secs(60)
            )
            .await
        );

        k.remove_container(&second).await;
        k.remove_container(&first).await;
        k.remove_network(&net).await;
        assert!(
            k.ports_on(&network.id).await.is_empty(),
            "network rm deletes its pool"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_and_ip6_adopt_one_dual_stack_port_with_the_default_configuration() {
    // With pools on, Docker sends no MAC with RequestAddress: the adopted port serves one
    // request of each address family.
    const V4: &str = "10.206.9.0/24";
    const V6: &str = "fd00:206:9::/64";
    with_kuryr_unstarted("pool-dual-port", &[V4, V6], |k| async move {
        k.serve_with(&config_file(), &plugin_socket(&k), false)
            .await;
        one_dual_stack_port_serves_ip_and_ip6(&k, [V4, V6], ["10.206.9.70", "fd00:206:9::70"])
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_goes_back_to_neutron_and_starts_over() {
    let cidr = "10.206.8.0/24";
    with_kuryr_unstarted("pool-idle", &[cidr], |k| async move {
        // The default sizing, with an idle timeout a test can wait for.
        let conf = conf_with(
            &k,
            "[vif_pool]\nports_pool_idle_timeout = 10\nports_pool_update_frequency = 1",
        );
        k.serve_with(&conf, &plugin_socket(&k), false).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let image = image();
        k.docker_ok(&["run", "--rm", "--net", &net, &image, "true"])
            .await;
        // (A pool being filled is not given back, so its ports are seen.)
        let pooled: Vec<String> = eventually("the pool made its two ports", || async {
            let f = free_pool_ports(&k, &network.id).await;
            (f.len() == 2).then(|| f.into_iter().map(|p| p.id).collect())
        })
        .await;
        eventually("the idle pool given back to Neutron", || async {
            (free_pool_ports(&k, &network.id).await.is_empty()
                && pool_counts(&k, &conf, &network.id) == (0, 0))
                .then_some(())
        })
        .await;
        let ovs = vsctl(&["--columns=external_ids", "list", "Interface"]);
        for id in &pooled {
            assert!(
                !host_link_exists(&host_end(id)),
                "{} of a given-back port left on the host",
                host_end(id)
            );
            assert!(!ovs.contains(id.as_str()), "OVS interface of {id} left");
        }

        // The next container works, and its request starts the pool again.
        let created = pool_counters(&k, &conf)["created"].as_u64().unwrap();
        let c = k.name("c");
        k.run(&c, &["--net", &net]).await;
        eventually("the pool filled again", || async {
            (pool_counters(&k, &conf)["created"].as_u64().unwrap() >= created + 2).then_some(())
        })
        .await;
        k.remove_container(&c).await;
        k.remove_network(&net).await;
        assert!(k.ports_on(&network.id).await.is_empty(), "no port left");
    })
    .await;
}

/// A container's port from a pool, found by its endpoint's tags once they are written.
async fn port_of_container(k: &Kuryr, container: &str, network: &str) -> Port {
    let a = k.attachment(container, network).await;
    eventually("the endpoint's tags on its port", || async {
        k.ports_of(&a.endpoint_id).await.into_iter().next()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_ports_are_recycled_up_to_the_maximum() {
    let cidr = "10.206.2.0/24";
    with_kuryr_unstarted("pool-recycle", &[cidr], |k| async move {
        let conf = start_pooled(
            &k,
            "ports_pool_min = 0\nports_pool_max = 2\nports_pool_batch = 2\nports_pool_update_frequency = 2",
        )
        .await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let (ok, out, err) =
            kuryr_cli(&k, &conf, &["pool", "populate", &docker_id, "--count", "5"]);
        assert!(ok, "{err}");
        assert!(out.contains("2 ports added, 2 free"), "ports_pool_max = 2 caps it: {out}");
        assert_eq!(free_pool_ports(&k, &network.id).await.len(), 2);

        // Three containers: two pool ports, one made on demand (the pool is empty).
        let names: Vec<String> = (1..=3).map(|i| k.name(&format!("c{i}"))).collect();
        let mut ports = Vec::new();
        for c in &names {
            k.run(c, &["--net", &net]).await;
            ports.push(port_of_container(&k, c, &net).await);
        }
        let pooled = ports.iter().filter(|p| p.tags.iter().any(|t| t.starts_with("kuryr.pool:"))).count();
        assert_eq!(pooled, 2, "two containers from the pool: {ports:#?}");
        assert_eq!(free_pool_ports(&k, &network.id).await.len(), 0);

        // Stopping them: two pool ports come back (the maximum), the third is deleted.
        for c in &names {
            k.remove_container(c).await;
        }
        let free = eventually("two ports back in the pool", || async {
            let f = free_pool_ports(&k, &network.id).await;
            (f.len() == 2).then_some(f)
        })
        .await;
        for p in &free {
            assert_pool_port(p);
            assert!(
                !p.tags.iter().any(|t| t.starts_with("kuryr.net.uuid.")),
                "no endpoint tags left: {p:#?}"
            );
            assert!(ports.iter().any(|q| q.id == p.id), "a recycled port, not a new one");
        }
        eventually("only the pool's ports left on the network", || async {
            let left: Vec<Port> = k
                .ports_on(&network.id)
                .await
                .into_iter()
                .filter(|p| p.device_owner != "network:dhcp")
                .collect();
            (left.len() == 2).then_some(())
        })
        .await;
        assert_eq!(pool_counts(&k, &conf, &network.id), (2, 0));

        // A recycled port serves the next container.
        let c = k.name("again");
        k.run(&c, &["--net", &net]).await;
        let again = port_of_container(&k, &c, &net).await;
        assert!(free.iter().any(|p| p.id == again.id), "a recycled port is reused");
        assert!(k.pings(&c, &again.fixed_ips[0].ip_address, Duration::from_secs(5)).await);

        // A free port deleted in Neutron behind kuryr's back leaves the pool and the host.
        let other = free.iter().find(|p| p.id != again.id).expect("a second free port");
        assert!(host_link_exists(&host_end(&other.id)), "the free port waits plugged in");
        k.neutron.ports().delete(&other.id).await.unwrap();
        eventually("the deleted port's interface gone", || async {
            (!host_link_exists(&host_end(&other.id))).then_some(())
        })
        .await;
        assert_eq!(pool_counts(&k, &conf, &network.id), (0, 1));
        let ovs = vsctl(&["--columns=external_ids", "list", "Interface"]);
        assert!(!ovs.contains(other.id.as_str()), "OVS interface of {} left", other.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_empties_the_pool_falls_back_to_new_ports() {
    let cidr = "10.206.3.0/24";
    with_kuryr_unstarted("pool-burst", &[cidr], |k| async move {
        let conf = start_pooled(
            &k,
            "ports_pool_min = 0\nports_pool_batch = 3\nports_pool_update_frequency = 60",
        )
        .await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let (ok, _, err) = kuryr_cli(
            &k,
            &conf,
            &["pool", "populate", &network.id, "--count", "3"],
        );
        assert!(ok, "{err}");
        let names: Vec<String> = (1..=8).map(|i| k.name(&format!("b{i}"))).collect();
        let runs = names.iter().map(|c| {
            let k = k.clone();
            let c = c.clone();
            let net = net.clone();
            async move { k.run(&c, &["--net", &net]).await }
        });
        futures_join_all(runs).await;
        let mut ids = HashSet::new();
        let mut ips = HashSet::new();
        let mut pooled = 0;
        for c in &names {
            let p = port_of_container(&k, c, &net).await;
            pooled += usize::from(p.tags.iter().any(|t| t.starts_with("kuryr.pool:")));
            assert!(ids.insert(p.id.clone()), "port {} handed out twice", p.id);
            assert!(ips.insert(p.fixed_ips[0].ip_address.clone()));
        }
        assert_eq!(
            pooled, 3,
            "the three pool ports were used, the rest made on demand"
        );
        let report = kuryr_json(&k, &conf, &["pool", "list", "--json"]);
        assert_eq!(report["counters"]["hits"], 3, "{report:#}");
        assert!(
            report["counters"]["misses"].as_u64().unwrap() >= 5,
            "{report:#}"
        );
    })
    .await;
}

/// Run futures concurrently (the harness has no `futures` crate).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_no_port_is_lost_leaked_or_handed_out_twice() {
    let cidr = "10.206.4.0/24";
    with_kuryr_unstarted("pool-kill", &[cidr], |k| async move {
        let settings = "ports_pool_min = 0\nports_pool_batch = 6\nports_pool_update_frequency = 1";
        let conf = start_pooled(&k, settings).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let (ok, _, err) = kuryr_cli(&k, &conf, &["pool", "populate", &docker_id, "--count", "6"]);
        assert!(ok, "{err}");
        let before: HashSet<String> = free_pool_ports(&k, &network.id)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(before.len(), 6);
        let first: Vec<String> = (1..=2).map(|i| k.name(&format!("k{i}"))).collect();
        for c in &first {
            k.run(c, &["--net", &net]).await;
        }
        // kill -9, then a new daemon: it finds the four free ports in Neutron.
        {
            let mut daemon = k.daemon.lock().unwrap();
            let d = daemon.as_mut().unwrap();
            d.child.kill().unwrap();
            d.child.wait().unwrap();
        }
        k.serve_with(&conf, &plugin_socket(&k), false).await;
        eventually("the free ports recovered", || async {
            (pool_counts(&k, &conf, &network.id).0 == 4).then_some(())
        })
        .await;
        let held: Vec<Port> = {
            let mut v = Vec::new();
            for c in &first {
                v.push(port_of_container(&k, c, &net).await);
            }
            v
        };
        // The two containers keep their ports and work; four more take the other four.
        let more: Vec<String> = (3..=6).map(|i| k.name(&format!("k{i}"))).collect();
        for c in &more {
            k.run(c, &["--net", &net]).await;
        }
        let mut ids = HashSet::new();
        for p in &held {
            ids.insert(p.id.clone());
        }
        for c in &more {
            let p = port_of_container(&k, c, &net).await;
            assert!(ids.insert(p.id.clone()), "port {} handed out twice", p.id);
        }
        assert_eq!(ids, before, "the six pool ports serve the six containers");
        let ip = &held[1].fixed_ips[0].ip_address;
        assert!(
            k.pings(&first[0], ip, Duration::from_secs(10)).await,
            "old containers still talk"
        );
        // Everything released: the ports return to the pool; network rm leaves nothing.
        for c in first.iter().chain(&more) {
            k.remove_container(c).await;
        }
        eventually("all six back in the pool", || async {
            (free_pool_ports(&k, &network.id).await.len() == 6).then_some(())
        })
        .await;
        k.remove_network(&net).await;
        assert!(k.ports_on(&network.id).await.is_empty(), "no port leaked");
    })
    .await;
}

/// The daemon killed between Docker's RequestAddress (answered from a pool) and its
/// CreateEndpoint: Neutron still shows the port free, yet Docker holds its address. The
/// restarted daemon must not hand that address to another container, and must serve the
/// CreateEndpoint that Docker sends it next with that very port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_answered_before_a_kill_is_not_handed_out_again() {
    let cidr = "10.206.11.0/24";
    with_kuryr_unstarted("pool-kill-request", &[cidr], |k| async move {
        let settings = "ports_pool_min = 0\nports_pool_batch = 3\nports_pool_update_frequency = 1";
        let conf = start_pooled(&k, settings).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let pool_id = k.subnets_on(&network.id).await[0]
            .subnetpool_id
            .clone()
            .expect("a kuryr subnet has a subnetpool");
        let (ok, _, err) = kuryr_cli(&k, &conf, &["pool", "populate", &docker_id, "--count", "3"]);
        assert!(ok, "{err}");
        eventually("three free ports", || async {
            (pool_counts(&k, &conf, &network.id).0 == 3).then_some(())
        })
        .await;
        let socket = plugin_socket(&k);
        let request = serde_json::json!({"PoolID": pool_id, "Address": "", "Options": {}});
        let (status, answer) = plugin_call(&socket, "/IpamDriver.RequestAddress", &request);
        assert_eq!(status, 200, "RequestAddress: {answer}");
        let taken = answer["Address"].as_str().unwrap().to_owned();
        let taken_ip = taken.split('/').next().unwrap().to_owned();
        let port = free_pool_ports(&k, &network.id)
            .await
            .into_iter()
            .find(|p| p.fixed_ips.iter().any(|f| f.ip_address == taken_ip))
            .expect("the pool port of the address is in Neutron, still free there");

        {
            let mut daemon = k.daemon.lock().unwrap();
            let d = daemon.as_mut().unwrap();
            d.child.kill().unwrap();
            d.child.wait().unwrap();
        }
        k.serve_with(&conf, &plugin_socket(&k), false).await;
        eventually("the two other free ports recovered", || async {
            (pool_counts(&k, &conf, &network.id).0 >= 2).then_some(())
        })
        .await;
        // Other containers' requests, pool hits and misses: never the address Docker holds.
        let mut others = Vec::new();
        for _ in 0..4 {
            let (status, answer) = plugin_call(&socket, "/IpamDriver.RequestAddress", &request);
            assert_eq!(status, 200, "RequestAddress: {answer}");
            let address = answer["Address"].as_str().unwrap().to_owned();
            assert_ne!(address, taken, "{taken} handed out again after the restart");
            others.push(address);
        }
        // Docker's next call for the first container: its endpoint on that same port.
        let endpoint = format!("{:0>64}", "e1");
        let create = serde_json::json!({
            "NetworkID": docker_id,
            "EndpointID": endpoint,
            "Interface": {"Address": taken, "AddressIPv6": "", "MacAddress": ""},
            "Options": {},
        });
        let (status, answer) = plugin_call(&socket, "/NetworkDriver.CreateEndpoint", &create);
        assert_eq!(status, 200, "CreateEndpoint: {answer}");
        let holders: Vec<Port> = k
            .ports_on(&network.id)
            .await
            .into_iter()
            .filter(|p| p.fixed_ips.iter().any(|f| f.ip_address == taken_ip))
            .collect();
        assert_eq!(holders.len(), 1, "one port holds {taken}: {holders:#?}");
        assert_eq!(
            holders[0].id, port.id,
            "the endpoint has the port Docker was answered with"
        );

        let ids = serde_json::json!({"NetworkID": docker_id, "EndpointID": endpoint});
        let (status, answer) = plugin_call(&socket, "/NetworkDriver.DeleteEndpoint", &ids);
        assert_eq!(status, 200, "DeleteEndpoint: {answer}");
        for address in others.iter().chain([&taken]) {
            let ip = address.split('/').next().unwrap();
            let release = serde_json::json!({"PoolID": pool_id, "Address": ip});
            let (status, answer) = plugin_call(&socket, "/IpamDriver.ReleaseAddress", &release);
            assert_eq!(status, 200, "ReleaseAddress {ip}: {answer}");
        }
        k.remove_network(&net).await;
        eventually("no port left on the network", || async {
            k.ports_on(&network.id).await.is_empty().then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_do_not_grow_the_pools() {
    let cidr = "10.206.7.0/24";
    with_kuryr_unstarted("pool-restarts", &[cidr], |k| async move {
        let settings = "ports_pool_min = 3\nports_pool_batch = 3\nports_pool_update_frequency = 1";
        let conf = start_pooled(&k, settings).await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        let first = k.name("c0");
        k.run(&first, &["--net", &net]).await;
        eventually("the pool filled", || async {
            (free_pool_ports(&k, &network.id).await.len() >= 3).then_some(())
        })
        .await;
        for round in 1..=4 {
            {
                let mut daemon = k.daemon.lock().unwrap();
                let d = daemon.as_mut().unwrap();
                d.child.kill().unwrap();
                d.child.wait().unwrap();
            }
            k.serve_with(&conf, &plugin_socket(&k), false).await;
            // A container at once: its address may be asked before the free ports are
            // counted again.
            let c = k.name(&format!("r{round}"));
            k.run(&c, &["--net", &net]).await;
            k.remove_container(&c).await;
        }
        eventually("the pools settled", || async {
            let (free, _) = pool_counts(&k, &conf, &network.id);
            (free >= 3).then_some(())
        })
        .await;
        let free = free_pool_ports(&k, &network.id).await.len();
        assert!(
            free <= 3 + 3,
            "after 4 restarts the pool holds {free} free ports, more than ports_pool_min + one batch"
        );
        k.remove_container(&first).await;
        k.remove_network(&net).await;
        assert!(k.ports_on(&network.id).await.is_empty(), "no port leaked");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_network_is_prefilled_when_configured() {
    let cidr = "10.206.5.0/24";
    with_kuryr_unstarted("pool-prefill", &[cidr], |k| async move {
        let conf = start_pooled(
            &k,
            "ports_pool_min = 3\nports_pool_batch = 3\npopulate_on_network_create = true",
        )
        .await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        // (Neutron shows a port of a bulk create before it is bound.)
        let free = eventually("the new network's pool filled", || async {
            let f = free_pool_ports(&k, &network.id).await;
            (f.len() == 3 && f.iter().all(|p| p.binding_vif_type == "ovs")).then_some(f)
        })
        .await;
        free.iter().for_each(assert_pool_port);
        eventually("the daemon's pool has them", || async {
            (pool_counts(&k, &conf, &network.id) == (3, 0)).then_some(())
        })
        .await;
        k.remove_network(&net).await;
        assert!(
            k.ports_on(&network.id).await.is_empty(),
            "network rm deletes its pool"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_lists_populates_frees_and_explains_refusals() {
    let cidr = "10.206.6.0/24";
    with_kuryr_unstarted("pool-cli", &[cidr], |k| async move {
        let conf = start_pooled(&k, "ports_pool_min = 0\nports_pool_batch = 5").await;
        let net = k.name("net");
        let docker_id = k.create_network(&net, &["--subnet", cidr]).await;
        let network = k.network_of(&docker_id).await;
        // By Neutron network name, with a subnet given by CIDR.
        let (ok, out, err) = kuryr_cli(
            &k,
            &conf,
            &[
                "pool",
                "populate",
                &network.name,
                "--subnet",
                cidr,
                "--count",
                "2",
            ],
        );
        assert!(ok, "{err}");
        assert!(out.contains("2 ports added"), "{out}");
        let (ok, out, _) = kuryr_cli(&k, &conf, &["pool", "list"]);
        assert!(ok);
        assert!(out.contains(&network.id) && out.contains("hits 0"), "{out}");

        let (ok, _, err) = kuryr_cli(&k, &conf, &["pool", "populate", "no-such-network-name"]);
        assert!(!ok);
        assert!(err.contains("no Neutron network named"), "{err}");
        let (ok, _, err) = kuryr_cli(&k, &conf, &["pool", "populate", &docker_id, "--count", "0"]);
        assert!(!ok);
        assert!(err.contains("count must be 1 to 1000"), "{err}");
        let (ok, _, err) = kuryr_cli(
            &k,
            &conf,
            &["pool", "populate", &docker_id, "--subnet", "10.9.9.0/24"],
        );
        assert!(!ok);
        assert!(err.contains("has no subnet 10.9.9.0/24"), "{err}");

        let (ok, out, err) = kuryr_cli(&k, &conf, &["pool", "free", &docker_id]);
        assert!(ok, "{err}");
        assert!(out.contains("2 free pool ports deleted"), "{out}");
        assert!(free_pool_ports(&k, &network.id).await.is_empty());

        // The admin socket is root's only.
        use std::os::unix::fs::PermissionsExt;
        let socket = format!("/run/kuryr/{}_manage.sock", k.plugin);
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{socket}");

        // A daemon without pools says how to turn them on.
        let off = conf_with(&k, "[vif_pool]\nenabled = false");
        k.serve_with(&off, &plugin_socket(&k), false).await;
        let (ok, _, err) = kuryr_cli(&k, &conf, &["pool", "populate", &docker_id]);
        assert!(!ok);
        assert!(err.contains("set [vif_pool] enabled = true"), "{err}");
        // No daemon: the error names the socket.
        k.stop_daemon().await;
        let (ok, _, err) = kuryr_cli(&k, &conf, &["stats"]);
        assert!(!ok);
        assert!(err.contains("is `kuryr serve` running"), "{err}");
    })
    .await;
}
