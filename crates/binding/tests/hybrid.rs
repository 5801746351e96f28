#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! ovs_hybrid_plug against the real kernel and Open vSwitch (needs root and a running Open
//! vSwitch): tap → qbr ← qvb=qvo → OVS bridge. Read back from /sys/class/net and `ovs-vsctl`.

mod common;

use common::*;
use kuryr_binding::{hybrid_names, Binder, Error, Netlink, PlugRequest, UnplugRequest};
use serde_json::json;

fn request(port_id: &str, tap: &str, bridge: &str) -> PlugRequest {
    PlugRequest {
        port_id: port_id.to_owned(),
        endpoint_id: format!("ep-{port_id}"),
        mac: MAC,
        host_ifname: tap.to_owned(),
        network_id: "net".into(),
        project_id: "project".into(),
        mtu: 1500,
        host: "this-host".into(),
        vif_type: "ovs".into(),
        vif_details: json!({"bridge_name": bridge, "ovs_hybrid_plug": true, "port_filter": true}),
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

/// Deletes the hybrid links too, should a test fail before its unplug.
fn hybrid_links(port_id: &str, links: &mut Links) {
    let names = hybrid_names(port_id);
    links.0.extend([names.bridge_end, names.bridge]);
}

/// Asserts the whole arrangement and returns the ifindexes of qbr, qvb, qvo.
fn assert_plugged(req: &PlugRequest, bridge: &TestBridge) -> [String; 3] {
    let names = hybrid_names(&req.port_id);
    let tap = &req.host_ifname;
    assert!(
        is_linux_bridge(&names.bridge),
        "{} is a bridge",
        names.bridge
    );
    assert_eq!(sysfs(&names.bridge, "bridge/forward_delay"), "0");
    assert_eq!(sysfs(&names.bridge, "bridge/stp_state"), "0");
    assert!(is_up(&names.bridge));
    assert_eq!(master_of(tap).as_deref(), Some(names.bridge.as_str()));
    assert_eq!(
        master_of(&names.bridge_end).as_deref(),
        Some(names.bridge.as_str())
    );
    // qvo is OVS's, not a Linux bridge port (userspace datapath: no master at all).
    assert_eq!(master_of(&names.ovs_end), None);
    for end in [&names.bridge_end, &names.ovs_end] {
        assert_eq!(
            sysfs(end, "mtu"),
            MTU.to_string(),
            "{end} has the tap's MTU"
        );
        assert!(is_up(end), "{end} is up");
    }
    assert_eq!(bridge.ports(), vec![names.ovs_end.clone()]);
    let rows = ifaces_of(&req.port_id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].external_ids,
        expected_ids(&req.port_id, &req.endpoint_id)
    );
    assert!(rows[0].ofport.unwrap_or(-1) > 0, "{rows:?}");
    assert_eq!(ifaces_named(&names.ovs_end), rows);
    [&names.bridge, &names.bridge_end, &names.ovs_end].map(|n| sysfs(n, "ifindex"))
}

fn assert_nothing_left(req: &PlugRequest, bridge: &TestBridge) {
    let names = hybrid_names(&req.port_id);
    for name in [&names.bridge, &names.bridge_end, &names.ovs_end] {
        assert!(!link_exists(name), "{name} is gone");
        assert_eq!(ports_named(name), 0, "no OVS port {name}");
        assert!(ifaces_named(name).is_empty(), "no OVS interface {name}");
    }
    assert!(ifaces_of(&req.port_id).is_empty());
    assert!(bridge.ports().is_empty());
    assert!(link_exists(&req.host_ifname), "the tap is the caller's");
    assert_eq!(master_of(&req.host_ifname), None);
}

#[tokio::test]
async fn hybrid_plug_builds_the_arrangement_and_is_idempotent() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(1);
    let mut links = Links::default();
    let port = port_id(1);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let req = request(&port, &tap, &bridge.name);

    binder.plug(&req).await.unwrap();
    let indexes = assert_plugged(&req, &bridge);
    binder.plug(&req).await.unwrap();
    assert_eq!(assert_plugged(&req, &bridge), indexes, "nothing recreated");
}

#[tokio::test]
async fn hybrid_unplug_removes_everything_but_the_tap() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(2);
    let mut links = Links::default();
    let port = port_id(2);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let req = request(&port, &tap, &bridge.name);

    binder.plug(&req).await.unwrap();
    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert_nothing_left(&req, &bridge);
    binder.unplug(&unplug_request(&req)).await.unwrap();
    assert_nothing_left(&req, &bridge);
}

#[tokio::test]
async fn unplug_removes_hybrid_leftovers_even_if_vif_details_changed() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(3);
    let mut links = Links::default();
    let port = port_id(3);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let req = request(&port, &tap, &bridge.name);

    binder.plug(&req).await.unwrap();
    let mut unplug = unplug_request(&req);
    unplug.vif_details = json!({"ovs_hybrid_plug": false});
    binder.unplug(&unplug).await.unwrap();
    assert_nothing_left(&req, &bridge);
}

#[tokio::test]
async fn hybrid_plug_into_a_missing_bridge_makes_nothing() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(4);
    let mut links = Links::default();
    let port = port_id(4);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let missing = bridge_name(99);

    let err = binder
        .plug(&request(&port, &tap, &missing))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OvsBridgeMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
    // Nothing of the arrangement was made.
    assert_nothing_left(&request(&port, &tap, &bridge.name), &bridge);
    assert!(is_up(&tap));
}

#[tokio::test]
async fn hybrid_plug_failing_at_the_ovs_step_removes_the_links_it_made() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(6);
    let mut links = Links::default();
    let port = port_id(6);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let names = hybrid_names(&port);
    // A bond named like qvo: not a layout kuryr plugs over.
    let pid = std::process::id();
    vsctl(&[
        "add-bond",
        &bridge.name,
        &names.ovs_end,
        &format!("kxa{pid}"),
        &format!("kxb{pid}"),
    ]);

    let err = binder
        .plug(&request(&port, &tap, &bridge.name))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OvsConflict { .. }), "{err:?}");
    assert!(err.to_string().contains(&names.ovs_end), "{err}");
    for name in [&names.bridge, &names.bridge_end, &names.ovs_end] {
        assert!(!link_exists(name), "{name} was removed again");
    }
    assert_eq!(master_of(&tap), None);
    assert!(link_exists(&tap));
    assert_eq!(
        bridge.ports(),
        vec![names.ovs_end.clone()],
        "the bond is left alone"
    );
}

#[tokio::test]
async fn rollback_keeps_what_an_earlier_plug_made() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(5);
    let mut links = Links::default();
    let port = port_id(5);
    hybrid_links(&port, &mut links);
    let tap = veth(&binder.netlink, &port, &mut links).await.host;
    let req = request(&port, &tap, &bridge.name);
    binder.plug(&req).await.unwrap();
    let indexes = assert_plugged(&req, &bridge);

    // The same port again, now into a bridge that does not exist: this plug made nothing,
    // so its failure removes nothing.
    let err = binder
        .plug(&request(&port, &tap, &bridge_name(98)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OvsBridgeMissing { .. }), "{err:?}");
    assert_eq!(assert_plugged(&req, &bridge), indexes);
}
