//! Docker's call sequences replayed over the plugin's unix socket against the real local
//! Neutron, with the Neutron state checked after every step: names, tags, owners, host
//! binding, the host's veth, and that nothing is left once Docker has removed everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use kuryr_openstack::neutron::{
    Filters, FixedIp, Network, NetworkSpec, Neutron, Port, PortSpec, Subnet, SubnetPool,
    SubnetPoolSpec, SubnetSpec,
};
use serde_json::{json, Value};
use support::flow::{
    bare, host_ifname, id_tags, link_exists, link_mac, mac, network_of, ports_with_ip, Flow,
};
use support::{cidrs, docker_id, err_text, neutron, unique, Plugin};

async fn port_of(n: &Neutron, endpoint: &str) -> Option<Port> {
    let mut found = n
        .ports()
        .list(&Filters::new().tags(id_tags(endpoint)))
        .await
        .unwrap();
    assert!(found.len() <= 1, "several ports carry {endpoint}'s tags");
    found.pop()
}

async fn pools_named(n: &Neutron, name: &str) -> Vec<SubnetPool> {
    n.subnetpools()
        .list(&Filters::new().eq("name", name))
        .await
        .unwrap()
}

/// The recorded session of Docker 20.10 (network create, two containers, removal).
fn recorded_basic() -> Vec<(String, Value, Value)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../libnetwork/tests/fixtures/docker-20.10-wire-basic.jsonl"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_owned(),
                v["request"].clone(),
                v["response"].clone(),
            )
        })
        .collect()
}

/// Replace recorded values by this run's (ids, pool ids, addresses), also inside CIDRs.
fn substitute(value: &Value, map: &HashMap<String, String>) -> Value {
    match value {
        Value::String(s) => {
            if let Some(v) = map.get(s) {
                return Value::String(v.clone());
            }
            if let Some((addr, len)) = s.split_once('/') {
                if let Some(v) = map.get(addr) {
                    return Value::String(format!("{v}/{len}"));
                }
            }
            value.clone()
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, map)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), substitute(v, map)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replay the recorded session; `old_order` deletes the network before releasing the pool,
/// as Docker before 20.10 did. Checks Neutron after every step.
async fn replay_basic(old_order: bool, test_no: u8) {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (cidr, _) = cidrs(test_no);
    let prefix = cidr.trim_end_matches("0/24").to_owned(); // "10.x.y."
    let mut calls = recorded_basic();
    if old_order {
        let len = calls.len();
        calls.swap(len - 1, len - 2);
        assert_eq!(calls[len - 2].0, "/NetworkDriver.DeleteNetwork");
    }
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("10.99.0.0/24".into(), cidr.clone());
    map.insert("10.99.0.1".into(), format!("{prefix}1"));
    let docker_net = docker_id();
    let mut network: Option<Network> = None;
    let mut endpoint_port: Option<String> = None;
    for (path, recorded_req, recorded_resp) in calls {
        // Fresh ids for every id in the recording.
        for key in ["NetworkID", "EndpointID"] {
            if let Some(id) = recorded_req.get(key).and_then(Value::as_str) {
                if !map.contains_key(id) {
                    let fresh = if key == "NetworkID" {
                        docker_net.clone()
                    } else {
                        docker_id()
                    };
                    map.insert(id.to_owned(), fresh);
                }
            }
        }
        let req = substitute(&recorded_req, &map);
        let (status, resp) = plugin.call(&path, req.clone()).await;
        assert_eq!(status, 200, "{path} {req} answered {status}: {resp}");
        match path.as_str() {
            "/Plugin.Activate" => assert_eq!(resp, recorded_resp),
            "/NetworkDriver.GetCapabilities" => assert_eq!(resp["Scope"], "local"),
            "/IpamDriver.GetCapabilities" => assert_eq!(resp, recorded_resp),
            "/IpamDriver.RequestPool" => {
                let pool_id = resp["PoolID"].as_str().unwrap().to_owned();
                assert_eq!(resp["Pool"], cidr.as_str());
                assert_eq!(
                    resp["Data"]["com.docker.network.gateway"],
                    format!("{prefix}1/24")
                );
                map.insert("p1".into(), pool_id.clone());
                let pool = n.subnetpools().get(&pool_id).await.unwrap();
                assert_eq!(pool.name, format!("kuryrPool-{cidr}"));
                assert_eq!(pool.prefixes, vec![cidr.clone()]);
            }
            "/IpamDriver.RequestAddress" if req["Options"]["RequestAddressType"].is_string() => {
                assert_eq!(resp["Address"], format!("{prefix}1/24"));
            }
            "/IpamDriver.RequestAddress" => {
                let ours = resp["Address"].as_str().unwrap();
                let recorded = recorded_resp["Address"].as_str().unwrap();
                map.insert(bare(recorded).to_owned(), bare(ours).to_owned());
                let net = network.as_ref().unwrap();
                let ports = ports_with_ip(&n, &net.id, bare(ours)).await;
                assert_eq!(ports.len(), 1, "one port holds {ours}");
                let p = &ports[0];
                assert_eq!(p.name, "kuryr-unbound-port");
                assert!(p.tags.contains(&"compute:kuryr".into()), "{:?}", p.tags);
                let mac = req["Options"]["com.docker.network.endpoint.macaddress"]
                    .as_str()
                    .unwrap();
                assert_eq!(p.mac_address, mac);
            }
            "/NetworkDriver.CreateNetwork" => {
                let net = network_of(&n, &docker_net).await.expect("network created");
                assert_eq!(net.name, format!("kuryr-net-{}", &docker_net[..8]));
                let subnets = n
                    .subnets()
                    .list(&Filters::new().eq("network_id", net.id.as_str()))
                    .await
                    .unwrap();
                assert_eq!(subnets.len(), 1);
                assert_eq!(subnets[0].name, format!("kuryr-subnet-{cidr}"));
                assert_eq!(subnets[0].cidr, cidr);
                assert_eq!(
                    subnets[0].gateway_ip.as_deref(),
                    Some(format!("{prefix}1").as_str())
                );
                assert_eq!(
                    subnets[0].subnetpool_id.as_deref(),
                    Some(map["p1"].as_str())
                );
                assert!(subnets[0].tags.contains(&map["p1"]));
                network = Some(net);
            }
            "/NetworkDriver.CreateEndpoint" => {
                assert_eq!(resp, json!({"Interface": {}}));
                let endpoint = req["EndpointID"].as_str().unwrap();
                let p = port_of(&n, endpoint)
                    .await
                    .expect("port tagged with the endpoint");
                assert_eq!(p.device_owner, "compute:kuryr");
                assert_eq!(p.device_id, endpoint);
                assert_eq!(p.binding_host_id, plugin.driver.config().host_id);
                assert_eq!(p.mac_address, req["Interface"]["MacAddress"]);
                assert!(link_exists(&host_ifname(&p.id)), "host veth end exists");
                assert_eq!(link_mac(&format!("t_c{}", &p.id[..11])), p.mac_address);
                endpoint_port = Some(p.id);
            }
            "/NetworkDriver.Join" => {
                let endpoint = req["EndpointID"].as_str().unwrap();
                let p = port_of(&n, endpoint).await.unwrap();
                assert_eq!(
                    resp,
                    json!({"InterfaceName": {"SrcName": format!("t_c{}", &p.id[..11]), "DstPrefix": "eth"},
                           "Gateway": format!("{prefix}1"), "DisableGatewayService": true})
                );
            }
            "/NetworkDriver.EndpointOperInfo" => {
                let endpoint = req["EndpointID"].as_str().unwrap();
                let p = port_of(&n, endpoint).await.unwrap();
                // The agent may wire the port between kuryr's answer and this
                // read: DOWN then ACTIVE is the one change allowed meanwhile.
                let answered = resp["Value"]["status"].as_str().unwrap_or_default();
                assert!(
                    answered == p.status || (answered == "DOWN" && p.status == "ACTIVE"),
                    "EndpointOperInfo answered {resp}, Neutron now says {}",
                    p.status
                );
            }
            "/NetworkDriver.DeleteEndpoint" => {
                // The host side goes; the port (IPAM's) goes at ReleaseAddress, next.
                let port = endpoint_port.as_ref().expect("CreateEndpoint came first");
                assert!(!link_exists(&host_ifname(port)), "host veth end removed");
            }
            "/IpamDriver.ReleaseAddress" => {
                let ip = req["Address"].as_str().unwrap();
                let net = network.as_ref().unwrap();
                if ip != format!("{prefix}1") {
                    assert!(
                        ports_with_ip(&n, &net.id, ip).await.is_empty(),
                        "port of {ip} deleted"
                    );
                }
            }
            "/NetworkDriver.DeleteNetwork" => {
                assert!(
                    network_of(&n, &docker_net).await.is_none(),
                    "network deleted"
                );
                let net = network.as_ref().unwrap();
                assert!(n.networks().get_opt(&net.id).await.unwrap().is_none());
            }
            _ => {}
        }
    }
    // Whatever the order, nothing is left.
    let net = network.unwrap();
    assert!(n.networks().get_opt(&net.id).await.unwrap().is_none());
    assert!(
        n.subnetpools().get_opt(&map["p1"]).await.unwrap().is_none(),
        "pool deleted"
    );
    let left = n
        .ports()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    assert!(left.is_empty(), "ports left: {left:?}");
}

#[tokio::test]
async fn recorded_docker_session_release_pool_first() {
    replay_basic(false, 1).await;
}

#[tokio::test]
async fn recorded_docker_session_delete_network_first() {
    replay_basic(true, 2).await;
}

#[tokio::test]
async fn protocol_basics_and_errors() {
    let plugin = Plugin::start().await;
    assert_eq!(
        plugin.ok("/Plugin.Activate", Value::Null).await,
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    assert_eq!(
        plugin.ok("/IpamDriver.GetCapabilities", Value::Null).await,
        json!({"RequiresMACAddress": true})
    );
    assert_eq!(
        plugin
            .ok("/IpamDriver.GetDefaultAddressSpaces", Value::Null)
            .await,
        json!({"LocalDefaultAddressSpace": "no_address_space", "GlobalDefaultAddressSpace": "no_address_space"})
    );
    let (status, answer) = plugin.call("/NetworkDriver.Frobnicate", json!({})).await;
    assert_eq!(status, 404);
    assert!(err_text(&answer).contains("not a call"), "{answer}");
    // Every call that takes a body refuses truncated, wrong-typed and oversized ones with 400.
    let docker_net = docker_id();
    for path in kuryr_libnetwork::PATHS {
        if matches!(
            *path,
            "/Plugin.Activate"
                | "/NetworkDriver.GetCapabilities"
                | "/IpamDriver.GetCapabilities"
                | "/IpamDriver.GetDefaultAddressSpaces"
        ) {
            continue;
        }
        for body in [
            br#"{"NetworkID": "#.to_vec(),
            br#"{"NetworkID": 7, "EndpointID": [], "PoolID": {}, "Pool": 1, "DiscoveryType": "x", "Address": 5}"#.to_vec(),
            b"[]".to_vec(),
        ] {
            let (status, answer) = plugin.call_raw(path, &body).await;
            assert_eq!(status, 400, "{path} {}: {answer}", String::from_utf8_lossy(&body));
            assert!(!err_text(&answer).is_empty());
        }
        let huge = format!(
            r#"{{"NetworkID": "{docker_net}", "Pad": "{}"}}"#,
            "x".repeat(2 << 20)
        );
        let (status, answer) = plugin.call_raw(path, huge.as_bytes()).await;
        assert!(
            status == 400 || status == 413,
            "{path} oversized: {status} {answer}"
        );
    }
    // Bad values name the field.
    let (status, answer) = plugin
        .call(
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": docker_net, "IPv4Data": [{"Pool": "10.0.0.0/33"}], "IPv6Data": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err_text(&answer).contains("IPv4Data[0].Pool"), "{answer}");
    let (status, answer) = plugin
        .call(
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": docker_net, "Options": {"com.docker.network.generic": {"neutron.net.uuid": "nope"}},
                   "IPv4Data": [{"Pool": "10.0.0.0/24"}], "IPv6Data": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err_text(&answer).contains("neutron.net.uuid"), "{answer}");
    // Nothing reached Neutron.
    assert!(network_of(&neutron(), &docker_net).await.is_none());
}

#[tokio::test]
async fn neutron_not_reachable_is_a_clear_503_and_the_daemon_keeps_serving() {
    use kuryr_openstack::auth::EndpointFilter;
    use kuryr_openstack::{AuthMethod, HttpOptions, Session};
    // A no-auth Neutron on a port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let session = Session::new(
        AuthMethod::NoAuth {
            endpoint: url.parse().unwrap(),
            project_id: None,
        },
        HttpOptions {
            retries: 0,
            ..HttpOptions::default()
        },
    )
    .unwrap();
    let dead_neutron = Neutron::new(session, EndpointFilter::new("network"));
    let plugin = Plugin::start_on(dead_neutron, support::config(), false).await;
    // Answers without Neutron still work.
    plugin.ok("/Plugin.Activate", Value::Null).await;
    let (status, answer) = plugin
        .call(
            "/IpamDriver.RequestPool",
            json!({"AddressSpace": "", "Pool": "10.1.2.0/24", "SubPool": "", "Options": {}, "V6": false}),
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    let text = err_text(&answer);
    assert!(text.contains("Neutron not reachable"), "{text}");
}

#[tokio::test]
async fn dual_stack_endpoint_is_one_port_with_both_addresses() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, v6) = cidrs(3);
    let flow = Flow::create(&plugin, Some(&v4), Some(&v6), json!({}), json!({}))
        .await
        .unwrap();
    let net = network_of(&n, &flow.docker_net).await.unwrap();
    let subnets = n
        .subnets()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    assert_eq!(subnets.len(), 2);
    let (endpoint, addresses) = flow.run(&mac(3), &[]).await;
    let port = port_of(&n, &endpoint).await.unwrap();
    let mut ips: Vec<&str> = port
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.as_str())
        .collect();
    ips.sort();
    let mut want: Vec<&str> = addresses.iter().map(|a| bare(a)).collect();
    want.sort();
    assert_eq!(ips, want, "one port carries both addresses");
    let all = n
        .ports()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "no second port per family: {all:?}");
    let join = plugin
        .ok(
            "/NetworkDriver.Join",
            json!({"NetworkID": flow.docker_net, "EndpointID": endpoint, "SandboxKey": "/x", "Options": {}}),
        )
        .await;
    assert!(
        join["GatewayIPv6"].as_str().unwrap().starts_with("fd00:"),
        "{join}"
    );
    flow.stop(&endpoint, &addresses).await;
    flow.remove().await;
    assert!(n.networks().get_opt(&net.id).await.unwrap().is_none());
    for p in &flow.pools {
        assert!(n.subnetpools().get_opt(p).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn no_subnet_takes_a_block_of_the_default_pool_and_works_end_to_end() {
    let n = neutron();
    let (v4, _) = cidrs(4);
    // This test's own default pool: a /16 around its block, /26 per network.
    let base = v4.trim_end_matches(".0/24");
    let default_name = unique("default");
    let default = n
        .subnetpools()
        .create(&SubnetPoolSpec {
            name: Some(default_name.clone()),
            prefixes: Some(vec![format!("{base}.0/24")]),
            default_prefixlen: Some(26),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut config = support::config();
    config.default_subnetpool_v4 = default_name.clone();
    let plugin = Plugin::start_with(config).await;
    // Without --subnet Docker asks for an IPv4 pool with an empty Pool.
    let first = Flow::create(&plugin, Some(""), None, json!({}), json!({}))
        .await
        .unwrap();
    let second = Flow::create(&plugin, Some(""), None, json!({}), json!({}))
        .await
        .unwrap();
    let p1 = n.subnetpools().get(&first.pools[0]).await.unwrap();
    let p2 = n.subnetpools().get(&second.pools[0]).await.unwrap();
    assert_eq!(p1.prefixes, vec![format!("{base}.0/26")]);
    assert_eq!(
        p2.prefixes,
        vec![format!("{base}.64/26")],
        "the next free block"
    );
    let (endpoint, addresses) = first.run(&mac(4), &[]).await;
    assert!(
        addresses[0].starts_with(&format!("{base}.")),
        "{addresses:?}"
    );
    first.stop(&endpoint, &addresses).await;
    first.remove().await;
    second.remove().await;
    assert!(n.subnetpools().get_opt(&p1.id).await.unwrap().is_none());
    assert!(
        n.subnetpools()
            .get_opt(&default.id)
            .await
            .unwrap()
            .is_some(),
        "the default pool stays"
    );
    n.subnetpools().delete(&default.id).await.unwrap();
    // Without the default pool, the error says what to create.
    let (status, answer) = plugin
        .call(
            "/IpamDriver.RequestPool",
            json!({"AddressSpace": "", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        err_text(&answer).contains("openstack subnet pool create"),
        "{answer}"
    );
}

#[tokio::test]
async fn existing_network_subnet_and_pool_are_adopted_and_given_back() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, _) = cidrs(5);
    let name = unique("existing");
    let net = n
        .networks()
        .create(&NetworkSpec {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let pool = n
        .subnetpools()
        .create(&SubnetPoolSpec {
            name: Some(unique("userpool")),
            prefixes: Some(vec![v4.clone()]),
            default_prefixlen: Some(24),
            ..Default::default()
        })
        .await
        .unwrap();
    let subnet = n
        .subnets()
        .create(&SubnetSpec {
            name: Some(unique("usersubnet")),
            network_id: Some(net.id.clone()),
            ip_version: Some(4),
            cidr: Some(v4.clone()),
            subnetpool_id: Some(pool.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    // A conflicting `shared` is refused before anything changes.
    let err = Flow::create(
        &plugin,
        Some(&v4),
        None,
        json!({"neutron.net.name": name, "neutron.net.shared": "true"}),
        json!({"neutron.pool.uuid": pool.id}),
    )
    .await
    .err()
    .unwrap();
    assert!(err_text(&err).contains("shared"), "{err}");
    assert!(n.networks().get(&net.id).await.unwrap().tags.is_empty());

    let flow = Flow::create(
        &plugin,
        Some(&v4),
        None,
        json!({"neutron.net.name": name}),
        json!({"neutron.pool.uuid": pool.id}),
    )
    .await
    .unwrap();
    assert_eq!(flow.pools, vec![pool.id.clone()]);
    let tagged = n.networks().get(&net.id).await.unwrap();
    let mut want = id_tags(&flow.docker_net);
    want.push(format!("kuryr.net.existing:{}", &flow.docker_net[..12]));
    for t in &want {
        assert!(tagged.tags.contains(t), "{t} in {:?}", tagged.tags);
    }
    assert!(n
        .subnetpools()
        .get(&pool.id)
        .await
        .unwrap()
        .tags
        .contains(&"kuryr.subnetpool.existing".into()));
    assert!(n
        .subnets()
        .get(&subnet.id)
        .await
        .unwrap()
        .tags
        .contains(&pool.id));
    let (endpoint, addresses) = flow.run(&mac(5), &[]).await;
    assert_eq!(port_of(&n, &endpoint).await.unwrap().network_id, net.id);
    flow.stop(&endpoint, &addresses).await;
    flow.remove().await;
    // Given back untouched: network, subnet and pool exist without kuryr's tags.
    assert!(n.networks().get(&net.id).await.unwrap().tags.is_empty());
    let s = n.subnets().get(&subnet.id).await.unwrap();
    assert!(s.tags.is_empty(), "{:?}", s.tags);
    assert!(n.subnetpools().get(&pool.id).await.unwrap().tags.is_empty());
    n.subnets().delete(&subnet.id).await.unwrap();
    n.subnetpools().delete(&pool.id).await.unwrap();
    n.networks().delete(&net.id).await.unwrap();
}

#[tokio::test]
async fn ambiguous_network_name_is_refused() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let name = unique("twice");
    let a = n
        .networks()
        .create(&NetworkSpec {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = n
        .networks()
        .create(&NetworkSpec {
            name: Some(name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (v4, _) = cidrs(6);
    let err = Flow::create(
        &plugin,
        Some(&v4),
        None,
        json!({"neutron.net.name": name}),
        json!({}),
    )
    .await
    .err()
    .unwrap();
    let text = err_text(&err);
    assert!(
        text.contains("2 Neutron networks are named") && text.contains("uuid"),
        "{text}"
    );
    assert!(n.networks().get(&a.id).await.unwrap().tags.is_empty());
    assert!(
        pools_named(&n, &format!("kuryrPool-{v4}")).await.is_empty(),
        "the pool was released"
    );
    n.networks().delete(&a.id).await.unwrap();
    n.networks().delete(&b.id).await.unwrap();
}

#[tokio::test]
async fn precreated_port_is_adopted_by_ip_and_reset_not_deleted() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, _) = cidrs(7);
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let net = network_of(&n, &flow.docker_net).await.unwrap();
    let subnet: Subnet = n
        .subnets()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap()
        .remove(0);
    let ip = format!("{}50", v4.trim_end_matches("0/24"));
    let user_port = n
        .ports()
        .create(&PortSpec {
            name: Some(unique("userport")),
            network_id: Some(net.id.clone()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: subnet.id.clone(),
                ip_address: ip.clone(),
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    let (endpoint, addresses) = flow.run(&mac(7), &[Some(ip.as_str())]).await;
    assert_eq!(bare(&addresses[0]), ip);
    let adopted = port_of(&n, &endpoint).await.unwrap();
    assert_eq!(adopted.id, user_port.id, "the user's port was adopted");
    assert!(adopted.tags.contains(&"kuryr.port.existing".into()));
    assert_eq!(adopted.binding_host_id, plugin.driver.config().host_id);
    assert_eq!(adopted.device_owner, "compute:kuryr");
    // Asking for the same address again is refused: it is in use.
    let (status, answer) = plugin
        .call(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[0], "Address": ip, "Options": {}}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    flow.stop(&endpoint, &addresses).await;
    let reset = n.ports().get(&user_port.id).await.unwrap();
    assert_eq!(reset.device_owner, "");
    assert_eq!(reset.binding_host_id, "");
    assert!(reset.tags.is_empty(), "{:?}", reset.tags);
    n.ports().delete(&user_port.id).await.unwrap();
    flow.remove().await;
}

/// `--ip` and `--ip6` of one endpoint on one dual-stack port the user made: both requests
/// adopt it (Docker gives both the endpoint's MAC), another endpoint's request is refused,
/// and the release gives the port back with none of kuryr's tags.
#[tokio::test]
async fn one_existing_dual_stack_port_serves_ip_and_ip6() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, v6) = cidrs(14);
    let flow = Flow::create(&plugin, Some(&v4), Some(&v6), json!({}), json!({}))
        .await
        .unwrap();
    let net = network_of(&n, &flow.docker_net).await.unwrap();
    let subnets: Vec<Subnet> = n
        .subnets()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    let subnet_of = |version: u8| {
        subnets
            .iter()
            .find(|s| s.ip_version == version)
            .unwrap()
            .id
            .clone()
    };
    let ip = format!("{}60", v4.trim_end_matches("0/24"));
    let ip6 = format!("{}60", v6.trim_end_matches("/64"));
    let user_port = n
        .ports()
        .create(&PortSpec {
            name: Some(unique("dualport")),
            network_id: Some(net.id.clone()),
            fixed_ips: Some(vec![
                FixedIp {
                    subnet_id: subnet_of(4),
                    ip_address: ip.clone(),
                },
                FixedIp {
                    subnet_id: subnet_of(6),
                    ip_address: ip6.clone(),
                },
            ]),
            ..Default::default()
        })
        .await
        .unwrap();

    // Another endpoint asking for the IPv6 address after this one took the IPv4 one.
    let first = plugin
        .ok(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[0], "Address": ip,
                   "Options": {"com.docker.network.endpoint.macaddress": mac(20)}}),
        )
        .await;
    assert_eq!(bare(first["Address"].as_str().unwrap()), ip);
    let (status, answer) = plugin
        .call(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[1], "Address": ip6,
                   "Options": {"com.docker.network.endpoint.macaddress": mac(21)}}),
        )
        .await;
    assert_eq!(status, 409, "another endpoint is refused: {answer}");
    plugin
        .ok(
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": flow.pools[0], "Address": ip}),
        )
        .await;
    let released = n.ports().get(&user_port.id).await.unwrap();
    assert!(released.tags.is_empty(), "given back: {:?}", released.tags);

    // One endpoint, both families, one port.
    let (endpoint, addresses) = flow
        .run(&mac(22), &[Some(ip.as_str()), Some(ip6.as_str())])
        .await;
    assert_eq!(bare(&addresses[0]), ip);
    assert_eq!(bare(&addresses[1]), ip6);
    let adopted = port_of(&n, &endpoint).await.unwrap();
    assert_eq!(adopted.id, user_port.id, "the user's port serves both");
    assert_eq!(adopted.device_owner, "compute:kuryr");
    assert_eq!(adopted.fixed_ips.len(), 2, "{adopted:#?}");
    assert_eq!(
        ports_with_ip(&n, &net.id, &ip).await.len(),
        1,
        "no port was made beside it"
    );

    flow.stop(&endpoint, &addresses).await;
    let reset = n.ports().get(&user_port.id).await.unwrap();
    assert_eq!(reset.device_owner, "");
    assert!(reset.tags.is_empty(), "{:?}", reset.tags);
    assert_eq!(reset.fixed_ips.len(), 2, "both addresses stay the user's");
    n.ports().delete(&user_port.id).await.unwrap();
    flow.remove().await;
}

#[tokio::test]
async fn overlapping_cidrs_on_two_networks_with_named_subnets() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, _) = cidrs(8);
    let mut nets = Vec::new();
    for _ in 0..2 {
        let net = n
            .networks()
            .create(&NetworkSpec {
                name: Some(unique("overlap")),
                ..Default::default()
            })
            .await
            .unwrap();
        let subnet = n
            .subnets()
            .create(&SubnetSpec {
                network_id: Some(net.id.clone()),
                ip_version: Some(4),
                cidr: Some(v4.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        nets.push((net, subnet));
    }
    let mut flows = Vec::new();
    for (net, subnet) in &nets {
        let flow = Flow::create(
            &plugin,
            Some(&v4),
            None,
            json!({"neutron.net.uuid": net.id, "neutron.subnet.uuid": subnet.id}),
            json!({"neutron.subnet.uuid": subnet.id}),
        )
        .await
        .unwrap();
        flows.push(flow);
    }
    assert_ne!(flows[0].pools, flows[1].pools, "one pool per subnet");
    for (i, (flow, (net, _))) in flows.iter().zip(&nets).enumerate() {
        let (endpoint, addresses) = flow.run(&mac(80 + i as u8), &[]).await;
        assert_eq!(
            port_of(&n, &endpoint).await.unwrap().network_id,
            net.id,
            "the port is on its own network"
        );
        flow.stop(&endpoint, &addresses).await;
        flow.remove().await;
    }
    for (net, subnet) in nets {
        assert!(n.subnets().get(&subnet.id).await.unwrap().tags.is_empty());
        n.subnets().delete(&subnet.id).await.unwrap();
        n.networks().delete(&net.id).await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_requests_make_one_pool_and_distinct_addresses() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, _) = cidrs(9);
    let request =
        json!({"AddressSpace": "", "Pool": v4, "SubPool": "", "Options": {}, "V6": false});
    let answers =
        futures_join((0..8).map(|_| plugin.call("/IpamDriver.RequestPool", request.clone()))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(s, a)| {
            assert_eq!(*s, 200, "{a}");
            a["PoolID"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one pool for one CIDR: {ids:?}");
    assert_eq!(pools_named(&n, &format!("kuryrPool-{v4}")).await.len(), 1);
    for _ in 1..8 {
        plugin
            .ok(
                "/IpamDriver.ReleasePool",
                json!({"PoolID": ids.iter().next().unwrap()}),
            )
            .await;
    }
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let pool = flow.pools[0].clone();
    let addresses = futures_join((0..10u8).map(|i| {
        let pool = pool.clone();
        let plugin = &plugin;
        async move {
            plugin
                .ok(
                    "/IpamDriver.RequestAddress",
                    json!({"PoolID": pool, "Address": "", "Options": {"com.docker.network.endpoint.macaddress": mac(90 + i)}}),
                )
                .await["Address"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }))
    .await;
    let distinct: std::collections::BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), 10, "{addresses:?}");
    for a in &addresses {
        plugin
            .ok(
                "/IpamDriver.ReleaseAddress",
                json!({"PoolID": pool, "Address": bare(a)}),
            )
            .await;
    }
    flow.remove().await;
    assert!(pools_named(&n, &format!("kuryrPool-{v4}")).await.is_empty());
}

/// Run futures concurrently on this task.
async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().collect();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

#[tokio::test]
async fn a_restarted_daemon_carries_on_from_neutron_alone() {
    let n = neutron();
    let (v4, _) = cidrs(10);
    let first = Plugin::start().await;
    let flow = Flow::create(&first, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let (endpoint, addresses) = flow.run(&mac(10), &[]).await;
    let (docker_net, pools) = (flow.docker_net.clone(), flow.pools.clone());
    drop(flow);
    drop(first);
    let second = Plugin::start().await;
    let flow = Flow {
        plugin: &second,
        docker_net,
        pools,
    };
    let info = second
        .ok(
            "/NetworkDriver.EndpointOperInfo",
            json!({"NetworkID": flow.docker_net, "EndpointID": endpoint}),
        )
        .await;
    assert!(info["Value"]["status"].is_string(), "{info}");
    flow.stop(&endpoint, &addresses).await;
    flow.remove().await;
    assert!(network_of(&n, &flow.docker_net).await.is_none());
}

#[tokio::test]
async fn upstream_python_driver_resources_are_found_and_removed() {
    // What kuryr-libnetwork 18 leaves in Neutron for a network with one container whose IPAM
    // made one port per family: kuryrPool, a named network with the id tags, kuryr-subnet,
    // an unbound port per family.
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, v6) = cidrs(11);
    let docker_net = docker_id();
    let endpoint = docker_id();
    let mut pools = Vec::new();
    let net = n
        .networks()
        .create(&NetworkSpec {
            name: Some(format!("kuryr-net-{}", &docker_net[..8])),
            admin_state_up: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    n.networks()
        .replace_tags(&net.id, &id_tags(&docker_net))
        .await
        .unwrap();
    let mut fixed = Vec::new();
    for (cidr, version) in [(&v4, 4u8), (&v6, 6u8)] {
        let pool = n
            .subnetpools()
            .create(&SubnetPoolSpec {
                name: Some(format!("kuryrPool-{cidr}")),
                prefixes: Some(vec![cidr.clone()]),
                default_prefixlen: Some(if version == 4 { 24 } else { 64 }),
                ..Default::default()
            })
            .await
            .unwrap();
        let subnet = n
            .subnets()
            .create(&SubnetSpec {
                name: Some(format!("kuryr-subnet-{cidr}")),
                network_id: Some(net.id.clone()),
                ip_version: Some(version),
                cidr: Some(cidr.clone()),
                subnetpool_id: Some(pool.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        n.subnets()
            .replace_tags(&subnet.id, std::slice::from_ref(&pool.id))
            .await
            .unwrap();
        let port = n
            .ports()
            .create(&PortSpec {
                name: Some("kuryr-unbound-port".into()),
                network_id: Some(net.id.clone()),
                admin_state_up: Some(true),
                fixed_ips: Some(vec![FixedIp {
                    subnet_id: subnet.id.clone(),
                    ip_address: String::new(),
                }]),
                ..Default::default()
            })
            .await
            .unwrap();
        n.ports()
            .replace_tags(&port.id, &["compute:kuryr".to_string()])
            .await
            .unwrap();
        fixed.push((
            pool.id.clone(),
            port.fixed_ips[0].ip_address.clone(),
            cidr.clone(),
        ));
        pools.push(pool.id);
    }
    let with_len = |ip: &str, cidr: &str| format!("{ip}/{}", cidr.split('/').nth(1).unwrap());
    plugin
        .ok(
            "/NetworkDriver.CreateEndpoint",
            json!({"NetworkID": docker_net, "EndpointID": endpoint,
                   "Interface": {"Address": with_len(&fixed[0].1, &fixed[0].2), "AddressIPv6": with_len(&fixed[1].1, &fixed[1].2),
                                 "MacAddress": mac(11)}, "Options": {}}),
        )
        .await;
    let port = port_of(&n, &endpoint).await.unwrap();
    assert_eq!(
        port.fixed_ips.len(),
        2,
        "the two per-family ports became one"
    );
    let all = n
        .ports()
        .list(&Filters::new().eq("network_id", net.id.as_str()))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let flow = Flow {
        plugin: &plugin,
        docker_net: docker_net.clone(),
        pools: pools.clone(),
    };
    let addresses: Vec<String> = fixed.iter().map(|f| f.1.clone()).collect();
    flow.stop(&endpoint, &addresses).await;
    flow.remove().await;
    assert!(n.networks().get_opt(&net.id).await.unwrap().is_none());
    for p in pools {
        assert!(n.subnetpools().get_opt(&p).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn expose_makes_one_group_with_merged_ranges_and_revoke_removes_it() {
    let n = neutron();
    let plugin = Plugin::start().await;
    let (v4, _) = cidrs(12);
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let (endpoint, addresses) = flow.run(&mac(12), &[]).await;
    let exposed: Vec<Value> = (1234..=1238)
        .map(|p| json!({"Proto": 17, "Port": p}))
        .chain([json!({"Proto": 6, "Port": 80})])
        .collect();
    plugin
        .ok(
            "/NetworkDriver.ProgramExternalConnectivity",
            json!({"NetworkID": flow.docker_net, "EndpointID": endpoint,
                   "Options": {"com.docker.network.endpoint.exposedports": exposed}}),
        )
        .await;
    let port = port_of(&n, &endpoint).await.unwrap();
    let groups = n
        .security_groups()
        .list(&Filters::new().eq("name", format!("{}-exposed_ports", port.id)))
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert!(port.security_groups.contains(&group.id));
    assert!(
        port.security_groups.len() >= 2,
        "next to the default group: {:?}",
        port.security_groups
    );
    type Rule = (String, Option<String>, Option<u32>, Option<u32>);
    let mut rules: Vec<Rule> = group
        .security_group_rules
        .iter()
        .filter(|r| r.direction == "ingress")
        .map(|r| {
            (
                r.ethertype.clone(),
                r.protocol.clone(),
                r.port_range_min,
                r.port_range_max,
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        vec![
            ("IPv4".into(), Some("tcp".into()), Some(80), Some(80)),
            ("IPv4".into(), Some("udp".into()), Some(1234), Some(1238)),
            ("IPv6".into(), Some("tcp".into()), Some(80), Some(80)),
            ("IPv6".into(), Some("udp".into()), Some(1234), Some(1238)),
        ]
    );
    flow.stop(&endpoint, &addresses).await;
    assert!(
        n.security_groups()
            .get_opt(&group.id)
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
    flow.remove().await;
}

/// The OVS Interface rows whose `external_ids:iface-id` is `port_id` (their names).
fn ovs_interfaces_of(port_id: &str) -> Vec<String> {
    let out = std::process::Command::new("ovs-vsctl")
        .args([
            "--bare",
            "--columns=name",
            "find",
            "Interface",
            &format!("external_ids:iface-id={port_id}"),
        ])
        .output()
        .expect("ovs-vsctl: these tests need Open vSwitch (scripts/stack up)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn vif_plugging_is_fatal_answers_once_the_ports_are_active() {
    let n = neutron();
    let plugin = Plugin::start_with(kuryr_driver::DriverConfig {
        vif_plugging_is_fatal: true,
        vif_plugging_timeout: std::time::Duration::from_secs(60),
        ..support::config()
    })
    .await;
    let (v4, _) = cidrs(13);
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    // A burst: the endpoints wait together, answered as their ports turn ACTIVE.
    let started = std::time::Instant::now();
    let runs = futures_join((0..4u8).map(|i| flow.run_checked(mac(130 + i)))).await;
    let took = started.elapsed();
    for (endpoint, _, status) in &runs {
        assert_eq!(
            status, "ACTIVE",
            "endpoint {endpoint}: CreateEndpoint answered before its port was ACTIVE"
        );
        let port = port_of(&n, endpoint).await.unwrap();
        assert_eq!(port.binding_vif_type, "ovs");
        assert_eq!(
            ovs_interfaces_of(&port.id),
            vec![host_ifname(&port.id)],
            "the tap is in OVS with the port's iface-id"
        );
    }
    eprintln!("4 endpoints ACTIVE in {took:?}");
    for (endpoint, addresses, _) in &runs {
        let port = port_of(&n, endpoint).await.unwrap();
        flow.stop(endpoint, addresses).await;
        assert!(ovs_interfaces_of(&port.id).is_empty(), "unplugged from OVS");
        assert!(!link_exists(&host_ifname(&port.id)));
    }
    flow.remove().await;
}

impl Flow<'_> {
    /// [`Flow::run`], then the port's status read right after CreateEndpoint answered.
    async fn run_checked(&self, mac: String) -> (String, Vec<String>, String) {
        let (endpoint, addresses) = self.run(&mac, &[]).await;
        let status = port_of(&neutron(), &endpoint)
            .await
            .map(|p| p.status)
            .unwrap_or_default();
        (endpoint, addresses, status)
    }
}
