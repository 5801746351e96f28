//! Faults between kuryr and the real Neutron: a fault-injecting proxy (`kuryr-faultproxy`, a
//! test tool: the real Neutron cannot be asked to fail on cue) answers errors or drops the
//! connection for chosen requests, and each test checks in the real Neutron and on the host
//! that nothing is left once the faults stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kuryr_faultproxy::{Action, FaultProxy, Rule};
use kuryr_openstack::neutron::{Filters, Neutron, Port};
use kuryr_openstack::HttpOptions;
use serde_json::json;
use support::flow::{
    bare, host_ifname, id_tags, link_exists, mac, network_of, ports_with_ip, Flow,
};
use support::{cidrs, err_text, eventually, neutron, neutron_url, neutron_with, Plugin};

/// kuryr's plugin on a Neutron reached through a fault proxy.
async fn plugin_behind_proxy() -> (FaultProxy, Plugin) {
    let proxy = FaultProxy::start(neutron_url()).await.unwrap();
    let plugin = plugin_on(&proxy).await;
    (proxy, plugin)
}

/// Another daemon behind the same proxy, as after a restart: it remembers nothing of what
/// the first one made and has to look everything up in Neutron.
async fn plugin_on(proxy: &FaultProxy) -> Plugin {
    let through = neutron_with(HttpOptions::default(), Some(proxy.url()));
    Plugin::start_on(through, support::config(), true).await
}

/// Neutron answers again: the recorded release deletes the port in the background, and its
/// record goes once done.
async fn port_goes_and_the_record_with_it(plugin: &Plugin, n: &Neutron, port_id: &str) {
    eventually("the released port goes", Duration::from_secs(60), || {
        let (n, id) = (n.clone(), port_id.to_owned());
        async move {
            n.ports()
                .get_opt(&id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    eventually("the record goes", Duration::from_secs(10), || async {
        plugin
            .driver
            .unfinished_teardowns()
            .is_empty()
            .then_some(())
    })
    .await;
}

async fn network_id_of(n: &Neutron, docker_net: &str) -> Option<String> {
    network_of(n, docker_net).await.map(|net| net.id)
}

/// A Docker network on this test's block, and its Neutron network's id.
async fn network<'a>(plugin: &'a Plugin, n: &Neutron, block: u8) -> (Flow<'a>, String) {
    let (v4, _) = cidrs(block);
    let flow = Flow::create(plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let net = network_id_of(n, &flow.docker_net).await.unwrap();
    (flow, net)
}

/// A running container's endpoint, addresses, Neutron port and host interface (which exists).
async fn container(
    flow: &Flow<'_>,
    n: &Neutron,
    net: &str,
    mac_no: u8,
) -> (String, Vec<String>, Port, String) {
    let (endpoint, addresses) = flow.run(&mac(mac_no), &[]).await;
    let port = ports_with_ip(n, net, bare(&addresses[0]))
        .await
        .pop()
        .unwrap();
    let tap = host_ifname(&port.id);
    assert!(link_exists(&tap), "{tap} exists while the container runs");
    (endpoint, addresses, port, tap)
}

#[tokio::test]
async fn port_deletes_answered_500_or_lost_are_sent_again() {
    let (proxy, plugin) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 201).await;
    for (i, action) in [Action::Status { status: 500 }, Action::Lost]
        .into_iter()
        .enumerate()
    {
        let (endpoint, addresses) = flow.run(&mac(10 + i as u8), &[]).await;
        proxy.set_rules(vec![Rule::new("DELETE", "/ports/", action.clone()).times(2)]);
        flow.stop(&endpoint, &addresses).await;
        proxy.clear();
        let left = ports_with_ip(&n, &net, bare(&addresses[0])).await;
        assert!(
            left.is_empty(),
            "{action:?}: the released port is left: {left:#?}"
        );
    }
    assert!(proxy.stats().total_faults() >= 3, "{:?}", proxy.stats());
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn the_daemon_that_made_a_port_tears_it_down_through_an_outage() {
    let (proxy, plugin) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 207).await;
    let (endpoint, addresses, port, tap) = container(&flow, &n, &net, 80).await;

    // Neutron's ports API is down: the host side needs no Neutron, the port's deletion does.
    proxy.set_rules(vec![Rule::new("", "/ports", Action::Down)]);
    let ids = json!({"NetworkID": flow.docker_net, "EndpointID": endpoint});
    plugin.ok("/NetworkDriver.DeleteEndpoint", ids).await;
    assert!(!link_exists(&tap), "the endpoint's veth goes at once");
    let (status, answer) = plugin
        .call(
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": flow.pools[0], "Address": bare(&addresses[0])}),
        )
        .await;
    assert_ne!(status, 200, "{answer}");
    assert!(
        err_text(&answer).contains("again in the background"),
        "{answer}"
    );
    assert_eq!(plugin.driver.unfinished_teardowns().len(), 1);

    proxy.clear();
    port_goes_and_the_record_with_it(&plugin, &n, &port.id).await;
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn a_teardown_during_an_outage_is_finished_once_neutron_answers() {
    let (proxy, first) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&first, &n, 202).await;
    let (endpoint, addresses, port, tap) = container(&flow, &n, &net, 20).await;
    let (docker_net, pools) = (flow.docker_net.clone(), flow.pools.clone());
    drop(flow);
    drop(first);
    let plugin = plugin_on(&proxy).await;
    let flow = Flow {
        plugin: &plugin,
        docker_net,
        pools,
    };

    // Neutron's ports API is down: the restarted DeleteEndpoint cannot find the port.
    proxy.set_rules(vec![Rule::new("", "/ports", Action::Down)]);
    let ids = json!({"NetworkID": flow.docker_net, "EndpointID": endpoint});
    let (status, answer) = plugin.call("/NetworkDriver.DeleteEndpoint", ids).await;
    assert_ne!(status, 200, "{answer}");
    assert!(
        err_text(&answer).contains("again in the background"),
        "{answer}"
    );
    assert_eq!(plugin.driver.unfinished_teardowns().len(), 1);
    assert!(link_exists(&tap), "nothing was undone yet");

    // Neutron is back: the background finishes the endpoint's teardown by itself.
    proxy.clear();
    eventually(
        "the endpoint's veth goes",
        Duration::from_secs(60),
        || async { (!link_exists(&tap)).then_some(()) },
    )
    .await;
    eventually(
        "the port loses the endpoint's tags",
        Duration::from_secs(30),
        || {
            let n = n.clone();
            let id = port.id.clone();
            async move {
                let p = n.ports().get(&id).await.unwrap();
                (!p.tags.iter().any(|t| t.starts_with("kuryr.net.uuid."))).then_some(())
            }
        },
    )
    .await;
    eventually("the record goes", Duration::from_secs(10), || async {
        plugin
            .driver
            .unfinished_teardowns()
            .is_empty()
            .then_some(())
    })
    .await;
    plugin
        .ok(
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": flow.pools[0], "Address": bare(&addresses[0])}),
        )
        .await;
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn delete_network_removes_what_failed_teardowns_left() {
    // No proxy needed: the teardown calls simply never come, as when Docker dropped them.
    let plugin = Plugin::start().await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 203).await;
    let (_, _, port, tap) = container(&flow, &n, &net, 30).await;
    // Docker deletes the network without DeleteEndpoint or ReleaseAddress reaching kuryr.
    flow.remove().await;
    assert!(
        network_id_of(&n, &flow.docker_net).await.is_none(),
        "the Neutron network is gone"
    );
    assert!(
        n.ports().get_opt(&port.id).await.unwrap().is_none(),
        "the endpoint's port is gone"
    );
    assert!(!link_exists(&tap), "the endpoint's veth is gone");
}

#[tokio::test]
async fn a_call_whose_caller_hangs_up_is_finished() {
    let (proxy, plugin) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 204).await;
    let address = plugin
        .ok(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[0], "Address": "",
                   "Options": {"com.docker.network.endpoint.macaddress": mac(40)}}),
        )
        .await["Address"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = ports_with_ip(&n, &net, bare(&address)).await.pop().unwrap();

    // Neutron is slow to update ports; the caller gives up after 300 ms and hangs up.
    proxy.set_rules(vec![Rule::new(
        "PUT",
        "/ports/",
        Action::Delay { ms: 1500 },
    )]);
    let endpoint = support::docker_id();
    let body = json!({"NetworkID": flow.docker_net, "EndpointID": endpoint,
                      "Interface": {"Address": address, "MacAddress": mac(40)}, "Options": {}});
    let hung_up = tokio::time::timeout(
        Duration::from_millis(300),
        plugin.call("/NetworkDriver.CreateEndpoint", body),
    )
    .await;
    assert!(
        hung_up.is_err(),
        "the call answered within 300 ms: {hung_up:?}"
    );

    // kuryr finishes the endpoint anyway: the port carries it and its veth is made.
    let tap = host_ifname(&port.id);
    eventually(
        "the endpoint's veth is made",
        Duration::from_secs(30),
        || async { link_exists(&tap).then_some(()) },
    )
    .await;
    eventually(
        "the port carries the endpoint",
        Duration::from_secs(30),
        || {
            let (n, id, endpoint) = (n.clone(), port.id.clone(), endpoint.clone());
            async move {
                let p = n.ports().get(&id).await.unwrap();
                id_tags(&endpoint)
                    .iter()
                    .all(|t| p.tags.contains(t))
                    .then_some(())
            }
        },
    )
    .await;
    proxy.clear();
    flow.stop(&endpoint, &[address]).await;
    assert!(!link_exists(&tap), "the endpoint's veth goes with it");
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn a_port_create_whose_answer_was_lost_is_found_not_made_twice() {
    let (proxy, plugin) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 205).await;
    // Neutron makes the port; its answer never reaches kuryr.
    proxy.set_rules(vec![Rule::new("POST", "/v2.0/ports", Action::Lost).times(1)]);
    let (endpoint, addresses) = flow.run(&mac(50), &[]).await;
    proxy.clear();
    assert_eq!(proxy.stats().total_faults(), 1, "{:?}", proxy.stats());
    let kuryr_ports = n
        .ports()
        .list(
            &Filters::new()
                .eq("network_id", net.as_str())
                .tags(["compute:kuryr"]),
        )
        .await
        .unwrap();
    assert_eq!(
        kuryr_ports.len(),
        1,
        "one port for one container: {kuryr_ports:#?}"
    );
    assert!(kuryr_ports[0]
        .fixed_ips
        .iter()
        .any(|ip| ip.ip_address == bare(&addresses[0])));
    flow.stop(&endpoint, &addresses).await;
    assert!(ports_with_ip(&n, &net, bare(&addresses[0]))
        .await
        .is_empty());
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn a_pool_create_whose_answer_was_lost_is_found_not_made_twice() {
    let (proxy, plugin) = plugin_behind_proxy().await;
    let n = neutron();
    let (v4, _) = cidrs(208);
    let name = format!("kuryrPool-{v4}");
    // Neutron makes the subnetpool; its answer never reaches kuryr.
    proxy.set_rules(vec![
        Rule::new("POST", "/v2.0/subnetpools", Action::Lost).times(1)
    ]);
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    proxy.clear();
    assert_eq!(proxy.stats().total_faults(), 1, "{:?}", proxy.stats());
    let pools = n
        .subnetpools()
        .list(&Filters::new().eq("name", name.as_str()))
        .await
        .unwrap();
    assert_eq!(pools.len(), 1, "one pool for one network: {pools:#?}");
    assert_eq!(
        pools[0].id, flow.pools[0],
        "the pool Neutron made is the PoolID"
    );
    let net = network_of(&n, &flow.docker_net).await.unwrap();
    let subnets = n
        .subnets()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    assert_eq!(subnets.len(), 1, "{subnets:#?}");
    assert_eq!(
        subnets[0].subnetpool_id.as_deref(),
        Some(pools[0].id.as_str())
    );
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
    assert!(n
        .subnetpools()
        .list(&Filters::new().eq("name", name.as_str()))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_release_whose_lookup_fails_is_finished_once_neutron_answers() {
    let (proxy, first) = plugin_behind_proxy().await;
    let n = neutron();
    let (flow, net) = network(&first, &n, 206).await;
    let address = first
        .ok(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[0], "Address": "",
                   "Options": {"com.docker.network.endpoint.macaddress": mac(70)}}),
        )
        .await["Address"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = ports_with_ip(&n, &net, bare(&address)).await.pop().unwrap();
    // A restarted daemon: the release has to find the port.
    let (docker_net, pools) = (flow.docker_net.clone(), flow.pools.clone());
    drop(flow);
    drop(first);
    let plugin = plugin_on(&proxy).await;
    let flow = Flow {
        plugin: &plugin,
        docker_net,
        pools,
    };

    // Neutron cannot say which port holds the address.
    proxy.set_rules(vec![Rule::new("GET", "/v2.0/ports", Action::Down)]);
    let (status, answer) = plugin
        .call(
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": flow.pools[0], "Address": bare(&address)}),
        )
        .await;
    assert_ne!(status, 200, "{answer}");
    assert!(
        err_text(&answer).contains("again in the background"),
        "{answer}"
    );
    assert_eq!(plugin.driver.unfinished_teardowns().len(), 1);
    assert!(n.ports().get_opt(&port.id).await.unwrap().is_some());

    proxy.clear();
    port_goes_and_the_record_with_it(&plugin, &n, &port.id).await;
    flow.remove().await;
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}

/// The floating IP kuryr gives a Docker network's published ports on this host.
async fn published_fip(
    n: &Neutron,
    docker_net: &str,
) -> Option<kuryr_openstack::neutron::FloatingIp> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let description = format!(
        "Published ports of Docker network {docker_net} on kuryr.host:{}",
        host.trim()
    );
    let mut found = n
        .floating_ips()
        .list(&Filters::new().eq("description", description.as_str()))
        .await
        .unwrap();
    assert!(found.len() <= 1, "one floating IP per network: {found:#?}");
    found.pop()
}

#[tokio::test]
async fn publishing_rolls_back_on_a_neutron_error_halfway_and_finds_a_lost_forwarding() {
    let proxy = FaultProxy::start(neutron_url()).await.unwrap();
    let mut config = support::config();
    // The stack's router (scripts/stack makes it, with its gateway on the external network).
    config.default_router = Some(kuryr_driver::options::Named::Name("router1".into()));
    let through = neutron_with(HttpOptions::default(), Some(proxy.url()));
    let plugin = Plugin::start_on(through, config, true).await;
    let n = neutron();
    let (flow, net) = network(&plugin, &n, 221).await;
    let (endpoint, addresses, port, _tap) = container(&flow, &n, &net, 91).await;
    let program = json!({"NetworkID": flow.docker_net, "EndpointID": endpoint, "Options": {
        "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}],
        "com.docker.network.portmap": [
            {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 18200, "HostPortEnd": 18200},
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 18201, "HostPortEnd": 18201}]}});

    // Neutron refuses the exposed-ports group, made after the forwardings: they go, and so
    // does the floating IP made for them.
    proxy.set_rules(vec![Rule::new(
        "POST",
        "/security-groups",
        Action::Status { status: 409 },
    )]);
    let (status, answer) = plugin
        .call(
            "/NetworkDriver.ProgramExternalConnectivity",
            program.clone(),
        )
        .await;
    proxy.clear();
    assert_eq!(status, 409, "{answer}");
    assert!(
        published_fip(&n, &flow.docker_net).await.is_none(),
        "the floating IP made for the call is released"
    );
    let after = n.ports().get(&port.id).await.unwrap();
    assert_eq!(
        after.security_groups, port.security_groups,
        "the port's groups are unchanged"
    );
    let groups = n
        .security_groups()
        .list(&Filters::new().eq("name", format!("{}-exposed_ports", port.id)))
        .await
        .unwrap();
    assert!(
        groups.is_empty(),
        "no exposed-ports group is left: {groups:#?}"
    );

    // The answer to a forwarding's creation is lost: it is found, not made twice.
    proxy.set_rules(vec![
        Rule::new("POST", "/port_forwardings", Action::Lost).times(1)
    ]);
    plugin
        .ok("/NetworkDriver.ProgramExternalConnectivity", program)
        .await;
    proxy.clear();
    let fip = published_fip(&n, &flow.docker_net)
        .await
        .expect("the network's floating IP");
    let mut pfs: Vec<(String, Option<u32>)> = n
        .port_forwardings(&fip.id)
        .unwrap()
        .list(&Filters::new())
        .await
        .unwrap()
        .into_iter()
        .map(|pf| (pf.protocol, pf.external_port))
        .collect();
    pfs.sort();
    assert_eq!(
        pfs,
        vec![("tcp".into(), Some(18200)), ("udp".into(), Some(18201))],
        "one forwarding per published port"
    );
    assert!(proxy.stats().total_faults() >= 2, "{:?}", proxy.stats());

    // Revoke, stop and remove leave no forwarding, floating IP or router interface.
    flow.stop(&endpoint, &addresses).await;
    assert!(published_fip(&n, &flow.docker_net).await.is_none());
    flow.remove().await;
    let interfaces: Vec<Port> = n
        .ports()
        .list(&Filters::new().eq("network_id", net.as_str()))
        .await
        .unwrap();
    assert!(interfaces.is_empty(), "{interfaces:#?}");
    assert!(network_id_of(&n, &flow.docker_net).await.is_none());
}
