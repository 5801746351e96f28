#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Plugging into Open vSwitch against the real ovsdb-server and ovs-vswitchd (needs root and a
//! running Open vSwitch; the tests fail, saying how to start it, if it is not running). Each
//! test uses its own bridges `brkt<pid><n>` on the userspace datapath and its own veth pairs,
//! removed at the end even when it fails. Results are read back with `ovs-vsctl`.

mod common;

use common::*;
use kuryr_binding::ovsdb::OvsdbError;
use kuryr_binding::{Binder, Error, Netlink, OvsPort, Ovsdb, PlugRequest, UnplugRequest};
use serde_json::json;

fn ovs_port<'a>(
    bridge: &'a str,
    name: &'a str,
    port_id: &'a str,
    endpoint: &'a str,
) -> OvsPort<'a> {
    OvsPort {
        bridge,
        name,
        iface_id: port_id,
        mac: MAC,
        vm_uuid: endpoint,
    }
}

fn plug_request(port_id: &str, tap: &str, bridge: &str) -> PlugRequest {
    PlugRequest {
        port_id: port_id.to_owned(),
        endpoint_id: format!("ep-{port_id}"),
        mac: MAC,
        host_ifname: tap.to_owned(),
        network_id: "net".into(),
        project_id: "project".into(),
        mtu: MTU,
        host: "this-host".into(),
        vif_type: "ovs".into(),
        vif_details: json!({"bridge_name": bridge, "port_filter": true, "ovs_hybrid_plug": false}),
    }
}

fn unplug_request(req: &PlugRequest) -> UnplugRequest {
    UnplugRequest {
        port_id: req.port_id.clone(),
        endpoint_id: req.endpoint_id.clone(),
        mac: req.mac,
        host_ifname: req.host_ifname.clone(),
        network_id: req.network_id.clone(),
        vif_type: req.vif_type.clone(),
        vif_details: req.vif_details.clone(),
    }
}

#[tokio::test]
async fn plug_sets_upstreams_external_ids_and_is_idempotent() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let bridge = TestBridge::new(1);
    let mut links = Links::default();
    let port = port_id(1);
    let tap = veth(&nl, &port, &mut links).await.host;

    let first = db
        .add_port(&ovs_port(&bridge.name, &tap, &port, "ep1"))
        .await
        .unwrap();
    assert!(first.created);
    assert!(first.ofport > 0, "{first:?}");
    assert_eq!(bridge.ports(), vec![tap.clone()]);
    assert_eq!(vsctl(&["port-to-br", &tap]), bridge.name);
    let rows = ifaces_named(&tap);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].external_ids, expected_ids(&port, "ep1"));
    assert_eq!(rows[0].ofport, Some(first.ofport));

    let second = db
        .add_port(&ovs_port(&bridge.name, &tap, &port, "ep1"))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.ofport, first.ofport);
    assert_eq!(ifaces_named(&tap), rows, "same row, same values");
    assert_eq!(ports_named(&tap), 1);
    assert_eq!(bridge.ports(), vec![tap.clone()]);
}

#[tokio::test]
async fn binder_plug_then_unplug_leaves_nothing_in_ovs() {
    let nl = Netlink::connect().await.unwrap();
    let binder = Binder::new(nl, ovsdb());
    let bridge = TestBridge::new(2);
    let mut links = Links::default();
    let port = port_id(2);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let req = plug_request(&port, &tap, &bridge.name);

    binder.plug(&req).await.unwrap();
    binder.plug(&req).await.unwrap();
    assert_eq!(bridge.ports(), vec![tap.clone()]);
    assert_eq!(
        ifaces_of(&port)[0].external_ids,
        expected_ids(&port, &req.endpoint_id)
    );

    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert!(bridge.ports().is_empty());
    assert_eq!(ports_named(&tap), 0);
    assert!(ifaces_named(&tap).is_empty());
    assert!(ifaces_of(&port).is_empty());
    assert!(link_exists(&tap), "the veth is the caller's");

    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert!(binder.ovsdb.del_ports_of(&port).await.unwrap().is_empty());
}

#[tokio::test]
async fn plug_into_a_missing_bridge_says_so_and_changes_nothing() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let mut links = Links::default();
    let port = port_id(3);
    let tap = veth(&nl, &port, &mut links).await.host;
    let missing = bridge_name(99);

    let err = db
        .add_port(&ovs_port(&missing, &tap, &port, "ep"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OvsBridgeMissing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("Open vSwitch bridge {missing} does not exist")),
        "{text}"
    );
    assert!(text.contains("neutron-openvswitch-agent"), "{text}");
    assert!(text.contains("integration_bridge"), "{text}");
    assert_eq!(ports_named(&tap), 0);
    assert!(ifaces_named(&tap).is_empty());
    assert!(!db.bridge_exists(&missing).await.unwrap());
}

#[tokio::test]
async fn a_port_on_another_bridge_is_moved() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let old = TestBridge::new(4);
    let new = TestBridge::new(5);
    let mut links = Links::default();
    let port = port_id(4);
    let tap = veth(&nl, &port, &mut links).await.host;
    vsctl(&["add-port", &old.name, &tap]);

    let plugged = db
        .add_port(&ovs_port(&new.name, &tap, &port, "ep"))
        .await
        .unwrap();
    assert!(plugged.created);
    assert!(plugged.ofport > 0);
    assert!(old.ports().is_empty());
    assert_eq!(new.ports(), vec![tap.clone()]);
    assert_eq!(ports_named(&tap), 1);
    let rows = ifaces_named(&tap);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].external_ids, expected_ids(&port, "ep"));
}

#[tokio::test]
async fn an_existing_interface_gets_kuryrs_ids_and_keeps_others() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let bridge = TestBridge::new(6);
    let mut links = Links::default();
    let port = port_id(6);
    let tap = veth(&nl, &port, &mut links).await.host;
    vsctl(&[
        "add-port",
        &bridge.name,
        &tap,
        "--",
        "set",
        "Interface",
        &tap,
        "external_ids:iface-id=stale",
        "external_ids:owner=someone",
        "external_ids:note=kept",
    ]);
    let before = ifaces_named(&tap);

    let plugged = db
        .add_port(&ovs_port(&bridge.name, &tap, &port, "ep"))
        .await
        .unwrap();
    assert!(!plugged.created);
    let after = ifaces_named(&tap);
    assert_eq!(after[0].uuid, before[0].uuid, "updated in place");
    let mut expected = expected_ids(&port, "ep");
    expected.insert("note".into(), "kept".into());
    assert_eq!(after[0].external_ids, expected);
}

#[tokio::test]
async fn a_device_ovs_cannot_open_is_reported_and_removed() {
    let db = ovsdb();
    let bridge = TestBridge::new(7);
    let port = port_id(7);
    let absent = format!("kxno{}", std::process::id());

    let err = db
        .add_port(&ovs_port(&bridge.name, &absent, &port, "ep"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OvsInterface { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "ovs-vswitchd could not attach {absent} to bridge {}",
            bridge.name
        )),
        "{text}"
    );
    assert!(text.contains("No such device"), "{text}");
    assert!(bridge.ports().is_empty(), "the port it created was removed");
    assert!(ifaces_named(&absent).is_empty());
}

#[tokio::test]
async fn binder_refuses_a_missing_tap_before_touching_ovs() {
    let nl = Netlink::connect().await.unwrap();
    let binder = Binder::new(nl, ovsdb());
    let bridge = TestBridge::new(8);
    let port = port_id(8);
    let tap = kuryr_binding::veth_names(&port).host;
    let err = binder
        .plug(&plug_request(&port, &tap, &bridge.name))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingLink { .. }), "{err:?}");
    assert!(bridge.ports().is_empty());
}

#[tokio::test]
async fn unplug_leaves_ports_that_are_not_kuryrs() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let bridge = TestBridge::new(9);
    let mut links = Links::default();
    let port = port_id(9);
    let tap = veth(&nl, &port, &mut links).await.host;
    vsctl(&[
        "add-port",
        &bridge.name,
        &tap,
        "--",
        "set",
        "Interface",
        &tap,
        &format!("external_ids:iface-id={port}"),
    ]);
    assert!(db.del_ports_of(&port).await.unwrap().is_empty());
    assert_eq!(bridge.ports(), vec![tap]);
}

#[tokio::test]
async fn concurrent_plugs_share_one_connection() {
    let db = ovsdb();
    let nl = Netlink::connect().await.unwrap();
    let bridge = TestBridge::new(10);
    let mut links = Links::default();
    let mut taps = Vec::new();
    for case in 20..30 {
        let port = port_id(case);
        let tap = veth(&nl, &port, &mut links).await.host;
        taps.push((port, tap));
    }
    let specs: Vec<OvsPort<'_>> = taps
        .iter()
        .map(|(port, tap)| ovs_port(&bridge.name, tap, port, "ep"))
        .collect();
    let plugs = specs.iter().map(|spec| db.add_port(spec));
    let results = futures::future::join_all(plugs).await;
    let mut ofports: Vec<i64> = results.into_iter().map(|r| r.unwrap().ofport).collect();
    ofports.sort_unstable();
    ofports.dedup();
    assert_eq!(ofports.len(), taps.len(), "distinct ofports: {ofports:?}");
    let mut expected: Vec<String> = taps.iter().map(|(_, t)| t.clone()).collect();
    expected.sort();
    assert_eq!(bridge.ports(), expected);

    let unplugs = taps.iter().map(|(port, _)| db.del_ports_of(port));
    for removed in futures::future::join_all(unplugs).await {
        assert_eq!(removed.unwrap().len(), 1);
    }
    assert!(bridge.ports().is_empty());
}

#[tokio::test]
async fn server_errors_are_decoded() {
    let db = ovsdb();
    let err = db
        .transact(&[
            json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}),
            json!({"op": "insert", "table": "Port", "row": {"name": 5}}),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OvsdbError::Transaction { index: 1, op, .. } if op == "insert into Port"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("OVSDB transaction failed at operation 1 (insert into Port): "),
        "{err}"
    );

    let err = db
        .transact(&[json!({"op": "select", "table": "NoSuchTable", "where": []})])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchTable"), "{err}");

    let nowhere = Ovsdb::new("/nonexistent/kuryr/db.sock");
    let err = nowhere.echo().await.unwrap_err();
    assert!(matches!(err, OvsdbError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is Open vSwitch running?"),
        "{err}"
    );
}
