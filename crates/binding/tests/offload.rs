#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! TX checksum offload on OVS's userspace (`netdev`) datapath, against the real kernel and
//! Open vSwitch (needs root and a running Open vSwitch; the tests never start it). Each test
//! uses its own bridges `brkt<pid><n>` (datapath_type=netdev) and veth pairs, removed at the
//! end even when it fails. Features are read back with `ethtool -k`.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};

use common::*;
use kuryr_binding::offload::disable_tx_checksum;
use kuryr_binding::{
    hybrid_names, veth_names, Binder, Error, Netlink, PlugRequest, VethNames, VethSpec,
};
use serde_json::{json, Value};

fn request(port_id: &str, tap: &str, vif_details: Value) -> PlugRequest {
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
        vif_details,
    }
}

/// vif_details as Neutron's OVS driver writes them for an agent with
/// `[ovs] datapath_type = netdev`.
fn netdev_details(bridge: &str, hybrid: bool) -> Value {
    json!({
        "bridge_name": bridge,
        "datapath_type": "netdev",
        "ovs_hybrid_plug": hybrid,
        "port_filter": true,
    })
}

/// Asserts that every TX checksum feature of `dev` reads `off` (`off [fixed]` included).
fn assert_tx_checksum_off(dev: &str) {
    let features = tx_checksum(dev);
    assert!(
        features.contains_key("tx-checksum-ip-generic"),
        "{features:?}"
    );
    for (feature, state) in &features {
        assert!(state.starts_with("off"), "{dev} {feature}: {state}");
    }
}

/// A fresh veth starts with the generic TX checksum on: what the tests turn off.
fn assert_tx_checksum_on(dev: &str) {
    assert_eq!(
        tx_checksum(dev)["tx-checksum-ip-generic"],
        "on",
        "{dev} starts with TX checksum offload"
    );
}

#[tokio::test]
async fn netdev_plug_turns_tx_checksum_off_on_the_container_end() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(1);
    let mut links = Links::default();
    let port = port_id(1);
    let names = veth(&binder.netlink, &port, &mut links).await;
    assert_tx_checksum_on(&names.container);
    let host_before = ethtool_features(&names.host);

    binder
        .plug(&request(
            &port,
            &names.host,
            netdev_details(&bridge.name, false),
        ))
        .await
        .unwrap();

    assert_tx_checksum_off(&names.container);
    assert_eq!(tx_checksum(&names.container)["tx-checksumming"], "off");
    // The kernel drops what needs the checksum, as for `ethtool -K tx off`.
    assert!(ethtool_features(&names.container)["tx-tcp-segmentation"].starts_with("off"));
    assert_eq!(
        ethtool_features(&names.host),
        host_before,
        "host end untouched"
    );
    assert_eq!(bridge.ports(), vec![names.host.clone()]);
}

#[tokio::test]
async fn a_second_plug_changes_nothing() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(2);
    let mut links = Links::default();
    let port = port_id(2);
    let names = veth(&binder.netlink, &port, &mut links).await;
    let req = request(&port, &names.host, netdev_details(&bridge.name, false));

    binder.plug(&req).await.unwrap();
    let features = ethtool_features(&names.container);
    let rows = ifaces_of(&port);
    binder.plug(&req).await.unwrap();

    assert_eq!(ethtool_features(&names.container), features);
    assert_eq!(ifaces_of(&port), rows);
    assert_eq!(bridge.ports(), vec![names.host.clone()]);
    assert!(
        disable_tx_checksum(&names.container)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to turn off"
    );
}

#[tokio::test]
async fn without_netdev_datapath_type_offload_stays_as_it_was() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(3);
    let mut links = Links::default();
    let details = [
        json!({"bridge_name": bridge.name, "port_filter": true, "ovs_hybrid_plug": false}),
        json!({"bridge_name": bridge.name, "datapath_type": "system"}),
    ];
    for (case, details) in (3..).zip(details) {
        let port = port_id(case);
        let names = veth(&binder.netlink, &port, &mut links).await;
        let before = ethtool_features(&names.container);
        assert_tx_checksum_on(&names.container);

        binder
            .plug(&request(&port, &names.host, details))
            .await
            .unwrap();

        assert_eq!(ethtool_features(&names.container), before, "{port}");
        assert!(bridge.ports().contains(&names.host));
    }
}

#[tokio::test]
async fn hybrid_netdev_plug_turns_off_only_the_container_end() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(4);
    let mut links = Links::default();
    let port = port_id(5);
    let hybrid = hybrid_names(&port);
    links
        .0
        .extend([hybrid.bridge_end.clone(), hybrid.bridge.clone()]);
    let names = veth(&binder.netlink, &port, &mut links).await;
    let host_before = ethtool_features(&names.host);

    binder
        .plug(&request(
            &port,
            &names.host,
            netdev_details(&bridge.name, true),
        ))
        .await
        .unwrap();

    assert_tx_checksum_off(&names.container);
    assert_eq!(ethtool_features(&names.host), host_before);
    // qvb and qvo only forward what the container sent, already checksummed.
    assert_tx_checksum_on(&hybrid.bridge_end);
    assert_tx_checksum_on(&hybrid.ovs_end);
    assert_eq!(bridge.ports(), vec![hybrid.ovs_end.clone()]);
}

#[tokio::test]
async fn a_missing_container_end_is_a_clear_error_and_ovs_is_untouched() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(6);
    let mut links = Links::default();
    let port = port_id(6);
    // The host end exists, but its peer is not named t_c<port[:11]> (renamed, or moved away).
    let odd = VethNames {
        host: veth_names(&port).host,
        container: format!("kxp{}", std::process::id()),
    };
    links.0.push(odd.host.clone());
    binder.netlink.ensure_veth_pair(&odd, MTU).await.unwrap();
    let container = veth_names(&port).container;

    let err = binder
        .plug(&request(
            &port,
            &odd.host,
            netdev_details(&bridge.name, false),
        ))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::MissingLink { name, .. } if *name == container),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{container} does not exist: ")),
        "{text}"
    );
    assert!(text.contains("userspace (netdev) datapath"), "{text}");
    assert!(text.contains("recreate the endpoint"), "{text}");
    assert!(bridge.ports().is_empty(), "nothing plugged");
    assert!(ifaces_of(&port).is_empty());
}

#[tokio::test]
async fn disable_tx_checksum_reports_what_it_turned_off() {
    let nl = Netlink::connect().await.unwrap();
    let mut links = Links::default();
    let names = veth(&nl, &port_id(7), &mut links).await;

    let off = disable_tx_checksum(&names.container).await.unwrap();
    assert!(
        off.contains(&"tx-checksum-ip-generic".to_owned()),
        "{off:?}"
    );
    assert!(off.iter().all(|f| f.starts_with("tx-checksum-")), "{off:?}");
    assert_tx_checksum_off(&names.container);
    assert!(disable_tx_checksum(&names.container)
        .await
        .unwrap()
        .is_empty());

    let absent = format!("kxno{}", std::process::id());
    let err = disable_tx_checksum(&absent).await.unwrap_err();
    assert!(matches!(err, Error::MissingLink { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{absent} does not exist")),
        "{err}"
    );
    let err = disable_tx_checksum("bad/name").await.unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
}

/// A network namespace, deleted on drop (with the links moved into it).
struct Netns(String);

impl Netns {
    fn new(suffix: char) -> Self {
        let name = format!("kxns{}{suffix}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        run("ip", &["netns", "add", &name]);
        Netns(name)
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.0, "ip"];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    fn python(&self, code: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, "python3", "-c", code]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SERVER: &str = r#"
import socket
s = socket.create_server(("10.253.8.2", 5001))
s.settimeout(30)
c, _ = s.accept()
c.settimeout(30)
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
c.sendall(str(n).encode())
c.close()
"#;

const CLIENT: &str = r#"
import socket, time
deadline = time.time() + 10
while True:
    try:
        c = socket.create_connection(("10.253.8.2", 5001), timeout=10)
        break
    except ConnectionRefusedError:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
c.sendall(b"x" * 1048576)
c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = c.recv(100)
    if not b:
        break
    reply += b
print(reply.decode())
"#;

/// The problem itself: TCP between two containers whose veths are plugged into a netdev
/// bridge (which, with offload on, fails: the connection times out).
#[tokio::test]
async fn tcp_between_two_containers_on_a_netdev_bridge() {
    let binder = Binder::new(Netlink::connect().await.unwrap(), ovsdb());
    let bridge = TestBridge::new(8);
    let mut links = Links::default();
    let mut containers = Vec::new();
    for (case, suffix) in [(8u8, 'a'), (9, 'b')] {
        let port = port_id(case);
        let names = veth_names(&port);
        links.0.push(names.host.clone());
        // Each its own MAC: they share an L2 segment.
        let mac = [0xfa, 0x16, 0x3e, 0x53, 0, case];
        binder
            .netlink
            .ensure_veth(&VethSpec {
                names: &names,
                mac,
                mtu: MTU,
            })
            .await
            .unwrap();
        let mut req = request(&port, &names.host, netdev_details(&bridge.name, false));
        req.mac = mac;
        binder.plug(&req).await.unwrap();

        // What Docker does after the plug: the container end into the container.
        let ns = Netns::new(suffix);
        run("ip", &["link", "set", &names.container, "netns", &ns.0]);
        let address = format!("10.253.8.{}/24", containers.len() + 1);
        ns.ip(&["addr", "add", &address, "dev", &names.container]);
        ns.ip(&["link", "set", &names.container, "up"]);
        ns.ip(&["link", "set", "lo", "up"]);
        containers.push(ns);
    }

    let mut server = Killed(
        containers[1]
            .python(SERVER)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let client = containers[0].python(CLIENT).output().expect("python3");
    if !client.status.success() {
        let _ = server.0.kill();
    }
    let _ = server.0.wait();
    let mut server_stderr = String::new();
    if let Some(mut stderr) = server.0.stderr.take() {
        let _ = stderr.read_to_string(&mut server_stderr);
    }
    assert!(
        client.status.success(),
        "client: {}\nserver: {server_stderr}",
        String::from_utf8_lossy(&client.stderr),
    );
    assert_eq!(String::from_utf8_lossy(&client.stdout).trim(), "1048576");
}
