#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Linux bridge binding and the bridge helpers against the real kernel (needs root). Read
//! back from /sys/class/net.

mod common;

use std::process::Command;

use common::*;
use kuryr_binding::{linux_bridge_name, Binder, Error, Netlink, PlugRequest, UnplugRequest};
use serde_json::json;

fn request(port_id: &str, tap: &str, network_id: &str) -> PlugRequest {
    PlugRequest {
        port_id: port_id.to_owned(),
        endpoint_id: format!("ep-{port_id}"),
        mac: MAC,
        host_ifname: tap.to_owned(),
        network_id: network_id.to_owned(),
        project_id: "project".into(),
        mtu: MTU,
        host: "this-host".into(),
        vif_type: "bridge".into(),
        vif_details: json!({"port_filter": true}),
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

/// A network id whose `brq` name is unique to this process and case.
fn network_id(case: u8) -> String {
    format!(
        "{:08x}-{case:02x}ff-4000-8000-000000000000",
        std::process::id()
    )
}

#[tokio::test]
async fn taps_go_into_the_networks_bridge_which_stays_on_unplug() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb_unused());
    let net = network_id(1);
    let brq = linux_bridge_name(&net);
    let mut links = Links(vec![brq.clone()]);
    let first = veth(&binder.netlink, &port_id(1), &mut links).await.host;
    let second = veth(&binder.netlink, &port_id(2), &mut links).await.host;
    let a = request(&port_id(1), &first, &net);
    let b = request(&port_id(2), &second, &net);

    binder.plug(&a).await.unwrap();
    assert!(is_linux_bridge(&brq));
    assert_eq!(sysfs(&brq, "bridge/forward_delay"), "0");
    assert_eq!(sysfs(&brq, "bridge/stp_state"), "0");
    assert!(is_up(&brq));
    let index = sysfs(&brq, "ifindex");
    assert_eq!(master_of(&first).as_deref(), Some(brq.as_str()));
    assert!(is_up(&first));

    binder.plug(&a).await.unwrap();
    binder.plug(&b).await.unwrap();
    assert_eq!(sysfs(&brq, "ifindex"), index, "the bridge is reused");
    assert_eq!(master_of(&first).as_deref(), Some(brq.as_str()));
    assert_eq!(master_of(&second).as_deref(), Some(brq.as_str()));

    binder.unplug(&unplug_request(&a)).await.unwrap();
    assert_eq!(master_of(&first), None);
    assert!(link_exists(&first));
    assert!(link_exists(&brq), "other ports use the bridge");
    assert_eq!(master_of(&second).as_deref(), Some(brq.as_str()));
    binder.unplug(&unplug_request(&a)).await.unwrap();
}

#[tokio::test]
async fn vif_details_bridge_name_is_used_and_an_existing_bridge_is_kept_as_is() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb_unused());
    let bridge = format!("kbr{}", std::process::id());
    let mut links = Links(vec![bridge.clone()]);
    // An agent's bridge with STP on: plugging does not change its settings.
    ip(&["link", "add", &bridge, "type", "bridge", "stp_state", "1"]);
    let tap = veth(&binder.netlink, &port_id(3), &mut links).await.host;
    let mut req = request(&port_id(3), &tap, &network_id(3));
    req.vif_details = json!({"bridge_name": bridge});

    binder.plug(&req).await.unwrap();
    assert_eq!(master_of(&tap).as_deref(), Some(bridge.as_str()));
    assert!(is_up(&bridge));
    assert_eq!(sysfs(&bridge, "bridge/stp_state"), "1");
    assert!(!link_exists(&linux_bridge_name(&network_id(3))));
}

#[tokio::test]
async fn a_non_bridge_with_the_bridge_name_is_refused() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb_unused());
    let net = network_id(4);
    let brq = linux_bridge_name(&net);
    let peer = format!("kxp{}", std::process::id());
    let mut links = Links(vec![brq.clone()]);
    ip(&["link", "add", &brq, "type", "veth", "peer", "name", &peer]);
    let tap = veth(&binder.netlink, &port_id(4), &mut links).await.host;

    let err = binder
        .plug(&request(&port_id(4), &tap, &net))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotBridge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{brq} exists and is not a Linux bridge (kind veth): remove it (it is not kuryr's)"
        )
    );
    assert_eq!(master_of(&tap), None);
}

#[tokio::test]
async fn bridge_helpers() {
    let nl = Netlink::connect().await.unwrap();
    let bridge = format!("kbh{}", std::process::id());
    let mut links = Links(vec![bridge.clone()]);
    let tap = veth(&nl, &port_id(5), &mut links).await.host;

    assert!(nl.ensure_bridge(&bridge).await.unwrap());
    assert!(!nl.ensure_bridge(&bridge).await.unwrap());
    nl.set_master(&tap, &bridge).await.unwrap();
    nl.set_master(&tap, &bridge).await.unwrap();
    assert_eq!(master_of(&tap).as_deref(), Some(bridge.as_str()));
    let info = nl.link(&tap).await.unwrap().unwrap();
    assert_eq!(
        info.master,
        Some(sysfs(&bridge, "ifindex").parse().unwrap())
    );
    assert!(nl.set_nomaster(&tap).await.unwrap());
    assert!(nl.set_nomaster(&tap).await.unwrap());
    assert_eq!(master_of(&tap), None);
    assert!(!nl.set_nomaster("kxabsent").await.unwrap());

    ip(&["link", "set", &bridge, "down"]);
    nl.set_up(&bridge).await.unwrap();
    assert!(is_up(&bridge));
    nl.set_mtu(&tap, 1400).await.unwrap();
    assert_eq!(sysfs(&tap, "mtu"), "1400");

    let err = nl.set_master(&tap, &tap).await.unwrap_err();
    assert!(matches!(err, Error::NotBridge { .. }), "{err:?}");
    let err = nl.set_up("kxabsent").await.unwrap_err();
    assert_eq!(err.errno(), Some(19), "{err:?}");
}

/// The Linux bridge binding never talks to OVS: a client for a socket that does not exist
/// proves it.
fn ovsdb_unused() -> kuryr_binding::Ovsdb {
    kuryr_binding::Ovsdb::new("/nonexistent/kuryr/db.sock")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
