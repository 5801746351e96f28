//! The reconciler and `kuryr gc` against the real Neutron, Open vSwitch and Docker engine:
//! orphans of each kind are made the way crashes and lost answers make them (the calls that
//! would undo them never come; the network itself is one Docker never had), then found,
//! reported by a dry run and removed.
//!
//! One test in its own binary: the reconciler judges every kuryr port of this host, so no
//! other in-process plugin (whose ports Docker does not know) may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use kuryr::reconciler::{GcReport, GcRequest, Reconciler};
use kuryr_openstack::neutron::{FixedIp, NetworkSpec, PortSpec, SubnetSpec};
use serde_json::json;
use support::flow::{bare, host_ifname, link_exists, mac, network_of, ports_with_ip, Flow};
use support::{cidrs, neutron, unique, Plugin};

fn docker_socket() -> PathBuf {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let path = PathBuf::from(host.trim_start_matches("unix://"));
    assert!(
        path.exists(),
        "Docker's API socket {} is missing: start the engine (scripts/docker up; eval \"$(scripts/docker env)\")",
        path.display()
    );
    path
}

fn resources(report: &GcReport) -> HashSet<String> {
    report.orphans.iter().map(|o| o.resource.clone()).collect()
}

#[tokio::test]
async fn orphans_are_found_reported_and_removed() {
    let plugin = Plugin::start().await;
    let n = neutron();
    let reconciler = Reconciler::new(
        plugin.driver.clone(),
        Some(docker_socket()),
        Duration::from_secs(60),
    );
    let (v4, _) = cidrs(210);
    let flow = Flow::create(&plugin, Some(&v4), None, json!({}), json!({}))
        .await
        .unwrap();
    let net = network_of(&n, &flow.docker_net).await.unwrap().id;

    // An address whose answer never reached Docker: RequestAddress, and nothing after.
    let lost = plugin
        .ok(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": flow.pools[0], "Address": "",
                   "Options": {"com.docker.network.endpoint.macaddress": mac(60)}}),
        )
        .await["Address"]
        .as_str()
        .unwrap()
        .to_owned();
    let address_port = ports_with_ip(&n, &net, bare(&lost)).await.pop().unwrap();
    // A user's port on the user's network, adopted by `--ip` for a container that never
    // started (the network is the user's too: no orphan itself, only its port is judged).
    let (user_v4, _) = cidrs(211);
    let user_net = n
        .networks()
        .create(&NetworkSpec {
            name: Some(unique("gc-user-net")),
            ..Default::default()
        })
        .await
        .unwrap();
    let user_subnet = n
        .subnets()
        .create(&SubnetSpec {
            network_id: Some(user_net.id.clone()),
            ip_version: Some(4),
            cidr: Some(user_v4.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let adopted_ip = format!("{}77", user_v4.trim_end_matches("0/24"));
    let user_port = n
        .ports()
        .create(&PortSpec {
            name: Some(unique("gc-user-port")),
            network_id: Some(user_net.id.clone()),
            fixed_ips: Some(vec![FixedIp {
                subnet_id: user_subnet.id.clone(),
                ip_address: adopted_ip.clone(),
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    let on_user_net = Flow::create(
        &plugin,
        Some(&user_v4),
        None,
        json!({"neutron.net.uuid": user_net.id}),
        json!({}),
    )
    .await
    .unwrap();
    plugin
        .ok(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": on_user_net.pools[0], "Address": adopted_ip,
                   "Options": {"com.docker.network.endpoint.macaddress": mac(63)}}),
        )
        .await;
    // A pool whose network never came (Docker died after RequestPool's answer).
    let (lone_v4, _) = cidrs(212);
    let lone_pool = plugin
        .ok(
            "/IpamDriver.RequestPool",
            json!({"AddressSpace": "", "Pool": lone_v4, "SubPool": "", "Options": {}, "V6": false}),
        )
        .await["PoolID"]
        .as_str()
        .unwrap()
        .to_owned();
    // An endpoint Docker never had (its DeleteEndpoint will never come).
    let (_, addresses) = flow.run(&mac(61), &[]).await;
    let endpoint_port = ports_with_ip(&n, &net, bare(&addresses[0]))
        .await
        .pop()
        .unwrap();
    let endpoint_tap = host_ifname(&endpoint_port.id);
    // The agent wires the port (a new revision) a moment after the plug; an orphan is one
    // seen twice unchanged, so the judging starts once the port is ACTIVE.
    support::eventually(
        "the endpoint port ACTIVE",
        Duration::from_secs(60),
        || async {
            let p = n.ports().get(&endpoint_port.id).await.unwrap();
            (p.status == "ACTIVE").then_some(())
        },
    )
    .await;
    // A host interface whose Neutron port someone deleted.
    let (_, addresses) = flow.run(&mac(62), &[]).await;
    let gone = ports_with_ip(&n, &net, bare(&addresses[0]))
        .await
        .pop()
        .unwrap();
    let gone_tap = host_ifname(&gone.id);
    n.ports().delete(&gone.id).await.unwrap();
    assert!(link_exists(&endpoint_tap) && link_exists(&gone_tap));

    // Young ports are left to the calls that may still be working on them.
    let young = reconciler
        .gc(&GcRequest {
            dry_run: true,
            min_age: None,
            confirm_after: Some(0.5),
            ..GcRequest::default()
        })
        .await
        .unwrap();
    let found = resources(&young);
    assert!(
        !found.contains(&address_port.id) && !found.contains(&endpoint_port.id),
        "ports younger than orphan_min_age are not orphans: {young:#?}"
    );

    let dry = reconciler
        .gc(&GcRequest {
            dry_run: true,
            min_age: Some(0.0),
            confirm_after: Some(1.0),
            ..GcRequest::default()
        })
        .await
        .unwrap();
    let found = resources(&dry);
    for (what, id) in [
        ("the address port", &address_port.id),
        ("the adopted port", &user_port.id),
        ("the endpoint port", &endpoint_port.id),
        ("the interface of the deleted port", &gone_tap),
        ("the network Docker never had", &net),
        ("the pool whose network never came", &lone_pool),
    ] {
        assert!(found.contains(id), "{what} ({id}) is reported: {dry:#?}");
    }
    let why = |id: &str| {
        dry.orphans
            .iter()
            .find(|o| o.resource == id)
            .map(|o| o.why.clone())
            .unwrap()
    };
    assert!(why(&address_port.id).contains(bare(&lost)), "{dry:#?}");
    assert!(why(&gone_tap).contains(&gone.id), "{dry:#?}");
    for (what, pool) in [
        ("the network's", &flow.pools[0]),
        ("the adopted subnet's", &on_user_net.pools[0]),
    ] {
        assert!(
            !found.contains(pool),
            "{what} pool {pool} is in use: {dry:#?}"
        );
    }
    assert_eq!(dry.removed, 0);
    assert!(n.ports().get_opt(&address_port.id).await.unwrap().is_some());
    assert!(link_exists(&endpoint_tap), "a dry run removes nothing");

    let done = reconciler
        .gc(&GcRequest {
            dry_run: false,
            min_age: Some(0.0),
            confirm_after: Some(1.0),
            ..GcRequest::default()
        })
        .await
        .unwrap();
    assert!(done.errors.is_empty(), "{done:#?}");
    assert!(done.removed >= 3, "{done:#?}");
    for id in [&address_port.id, &endpoint_port.id] {
        assert!(
            n.ports().get_opt(id).await.unwrap().is_none(),
            "port {id} is gone"
        );
    }
    assert!(
        n.subnetpools().get_opt(&lone_pool).await.unwrap().is_none(),
        "the pool whose network never came is deleted"
    );
    let given_back = n.ports().get(&user_port.id).await.unwrap();
    assert!(
        given_back.tags.is_empty(),
        "the adopted port is given back, not deleted: {given_back:#?}"
    );
    n.ports().delete(&user_port.id).await.unwrap();
    on_user_net.remove().await;
    n.networks().delete(&user_net.id).await.unwrap();
    assert!(!link_exists(&endpoint_tap), "{endpoint_tap} is gone");
    assert!(!link_exists(&gone_tap), "{gone_tap} is gone");
    assert!(
        network_of(&n, &flow.docker_net).await.is_none(),
        "the network goes as DeleteNetwork removes it"
    );

    // Nothing of this network is left to find.
    let after = reconciler
        .gc(&GcRequest {
            dry_run: true,
            min_age: Some(0.0),
            confirm_after: Some(0.5),
            ..GcRequest::default()
        })
        .await
        .unwrap();
    let found = resources(&after);
    assert!(
        ![
            &address_port.id,
            &endpoint_port.id,
            &gone_tap,
            &net,
            &lone_pool
        ]
        .iter()
        .any(|id| found.contains(*id)),
        "{after:#?}"
    );
    flow.remove().await;
    assert!(network_of(&n, &flow.docker_net).await.is_none());
}
