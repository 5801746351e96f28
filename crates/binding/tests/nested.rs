#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The links of nested containers (VLAN, macvlan, ipvlan on the VM's interface) against the
//! real kernel (needs root). The "VM's interface" is one end of a veth pair, which works on
//! kernels without the dummy driver. Each test uses names made from this process id and
//! removes its links even when it fails. Results are checked both through `Netlink::link` and
//! independently through `ip -d -j link show`.
//!
//! VLAN and ipvlan links need a kernel with 802.1Q and ipvlan, which this project's CI
//! machine lacks (`CONFIG_VLAN_8021Q` and `CONFIG_IPVLAN` unset, no modules): those tests
//! are ignored here and `scripts/test` runs them inside a `scripts/vm` guest (Debian's
//! kernel), where they fail if the kernel cannot make the link. The tests of the refusal
//! of a kernel without them are ignored too and run on the CI machine itself; each fails
//! if its kernel is not of the kind it needs, saying so.

use std::process::{Command, Stdio};

use kuryr_binding::{veth_names, Error, NestedLink, NestedSpec, Netlink};
use serde_json::Value;

const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x65, 0x43, 0x21];
const MAC_TEXT: &str = "fa:16:3e:65:43:21";
const OTHER_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x65, 0x43, 0x22];
const EOPNOTSUPP: i32 = 95;

/// The container link's name for test case `case`, as the driver derives it from a port id.
fn link_name(case: u8) -> String {
    veth_names(&format!(
        "{:08x}-{case:02x}00-4000-8000-000000000000",
        std::process::id()
    ))
    .container
}

/// A "VM interface": one end of a veth pair with MTU 1450, up, deleted (with every link on
/// it) on drop.
struct Parent {
    name: String,
    extra: Vec<String>,
}

impl Parent {
    fn new(case: u8) -> Parent {
        let name = format!("nkv{:x}{case}", std::process::id());
        let peer = format!("nkp{:x}{case}", std::process::id());
        ip(&[
            "link", "add", "name", &name, "mtu", "1450", "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &name, "up"]);
        Parent {
            name,
            extra: Vec::new(),
        }
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for link in self.extra.iter().chain([&self.name]) {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip -d -j link show dev NAME`, or `None` if there is no such link.
fn ip_link(name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-d", "-j", "link", "show", "dev", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let mut links: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    links.pop()
}

/// Whether this kernel can make links of `kind` (tried with `ip` on a scratch link).
fn kernel_has(kind: &str, parent: &Parent) -> bool {
    let probe = format!("nkq{:x}", std::process::id());
    let mut args = vec![
        "link",
        "add",
        "link",
        &parent.name,
        "name",
        &probe,
        "type",
        kind,
    ];
    if kind == "vlan" {
        args.extend(["id", "4000"]);
    }
    let ok = Command::new("ip")
        .args(&args)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if ok {
        ip(&["link", "del", &probe]);
    }
    ok
}

fn spec<'a>(name: &'a str, parent: &'a Parent, link: NestedLink, mtu: u32) -> NestedSpec<'a> {
    NestedSpec {
        name,
        parent: &parent.name,
        link,
        mac: MAC,
        mtu,
    }
}

/// Checks the link through both views; returns what `ip` says about it.
async fn assert_link(nl: &Netlink, name: &str, parent: &Parent, kind: &str, mtu: u32) -> Value {
    let info = nl.link(name).await.unwrap().expect("the link exists");
    let parent_info = nl.link(&parent.name).await.unwrap().unwrap();
    assert_eq!(info.kind.as_deref(), Some(kind), "{info:?}");
    assert_eq!(info.lower_index, Some(parent_info.index), "{info:?}");
    assert_eq!(info.mtu, Some(mtu));
    assert!(
        !info.up,
        "left down for Docker to bring up in the container"
    );
    let seen = ip_link(name).expect("ip sees the link");
    assert_eq!(seen["linkinfo"]["info_kind"], kind, "{seen}");
    assert_eq!(seen["link"], parent.name.as_str(), "{seen}");
    assert_eq!(seen["mtu"], mtu, "{seen}");
    seen
}

#[tokio::test]
async fn macvlan_in_bridge_mode_with_the_ports_mac() {
    let mut parent = Parent::new(1);
    let name = link_name(1);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();

    assert!(nl
        .ensure_macvlan(&name, &parent.name, MAC, 1400)
        .await
        .unwrap());
    let seen = assert_link(&nl, &name, &parent, "macvlan", 1400).await;
    assert_eq!(seen["address"], MAC_TEXT, "{seen}");
    assert_eq!(seen["linkinfo"]["info_data"]["mode"], "bridge", "{seen}");

    // Idempotent, and a drifted MAC or MTU is put back.
    assert!(!nl
        .ensure_macvlan(&name, &parent.name, MAC, 1400)
        .await
        .unwrap());
    ip(&[
        "link",
        "set",
        &name,
        "address",
        "fa:16:3e:00:00:99",
        "mtu",
        "1300",
    ]);
    assert!(!nl
        .ensure_macvlan(&name, &parent.name, MAC, 1450)
        .await
        .unwrap());
    let seen = assert_link(&nl, &name, &parent, "macvlan", 1450).await;
    assert_eq!(seen["address"], MAC_TEXT, "{seen}");
    nl.ensure_macvlan(&name, &parent.name, OTHER_MAC, 1450)
        .await
        .unwrap();
    assert_eq!(ip_link(&name).unwrap()["address"], "fa:16:3e:65:43:22");

    assert!(nl.delete_nested(&name, NestedLink::Macvlan).await.unwrap());
    assert!(ip_link(&name).is_none());
    assert!(!nl.delete_nested(&name, NestedLink::Macvlan).await.unwrap());
}

#[tokio::test]
async fn refuses_before_sending_what_cannot_work() {
    let mut parent = Parent::new(2);
    let name = link_name(2);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();

    // The VM's interface has MTU 1450: a 1500 network cannot go through it.
    let err = nl
        .ensure_nested(&spec(&name, &parent, NestedLink::Macvlan, 1500))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidLink { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("MTU 1500 is larger than the MTU 1450"),
        "{err}"
    );

    let missing = format!("nkx{:x}", std::process::id());
    let err = nl
        .ensure_macvlan(&name, &missing, MAC, 1400)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingParent { .. }), "{err:?}");
    assert!(err.to_string().contains("[binding] link_iface"), "{err}");

    let err = nl
        .ensure_vlan(&name, &parent.name, 0, MAC, 1400)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("VLAN id 0"), "{err}");
    assert!(ip_link(&name).is_none(), "nothing was made");
}

#[tokio::test]
async fn a_same_named_link_of_another_kind_is_left_alone() {
    let mut parent = Parent::new(3);
    let name = link_name(3);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();
    ip(&["link", "add", "name", &name, "type", "bridge"]);

    let err = nl
        .ensure_macvlan(&name, &parent.name, MAC, 1400)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLink { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is a bridge, not a macvlan link on nkv"),
        "{err}"
    );
    let err = nl
        .delete_nested(&name, NestedLink::Macvlan)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongLink { .. }), "{err:?}");
    assert_eq!(ip_link(&name).unwrap()["linkinfo"]["info_kind"], "bridge");

    // A macvlan on another parent is not ours either.
    ip(&["link", "del", &name]);
    let other = Parent::new(4);
    assert!(nl
        .ensure_macvlan(&name, &other.name, MAC, 1400)
        .await
        .unwrap());
    let err = nl
        .ensure_macvlan(&name, &parent.name, MAC, 1400)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is a macvlan link on another link"),
        "{err}"
    );
}

/// Fails unless this kernel can make links of `kind`, naming the option it lacks.
fn require_kernel(kind: &str, option: &str, parent: &Parent) {
    assert!(
        kernel_has(kind, parent),
        "this kernel cannot make {kind} links ({option} unset): run this test in a guest \
         with Debian's kernel, as scripts/test does (scripts/vm up NAME --file BINARY:PATH)"
    );
}

/// Fails if this kernel can make links of `kind`: the refusal cannot be seen on it.
fn require_kernel_without(kind: &str, option: &str, parent: &Parent) {
    assert!(
        !kernel_has(kind, parent),
        "this kernel makes {kind} links ({option} set): the refusal of a kernel without \
         them cannot be seen here; the test of the link itself covers this kernel"
    );
}

#[tokio::test]
#[ignore = "needs 802.1Q and ipvlan: scripts/test runs it in a scripts/vm guest"]
async fn vlan_with_its_id_mac_and_mtu() {
    let mut parent = Parent::new(5);
    let name = link_name(5);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();
    require_kernel("vlan", "CONFIG_VLAN_8021Q", &parent);

    assert!(nl
        .ensure_vlan(&name, &parent.name, 101, MAC, 1450)
        .await
        .unwrap());
    let seen = assert_link(&nl, &name, &parent, "vlan", 1450).await;
    assert_eq!(seen["address"], MAC_TEXT, "{seen}");
    assert_eq!(seen["linkinfo"]["info_data"]["id"], 101, "{seen}");
    assert_eq!(
        seen["linkinfo"]["info_data"]["protocol"], "802.1Q",
        "{seen}"
    );
    assert_eq!(nl.link(&name).await.unwrap().unwrap().vlan_id, Some(101));
    assert!(!nl
        .ensure_vlan(&name, &parent.name, 101, MAC, 1450)
        .await
        .unwrap());
    // The same name on another VLAN is another subport's: refused.
    let err = nl
        .ensure_vlan(&name, &parent.name, 102, MAC, 1450)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is VLAN 101 on"), "{err}");
    assert!(nl
        .delete_nested(&name, NestedLink::Vlan(101))
        .await
        .unwrap());
    assert!(ip_link(&name).is_none());
}

#[tokio::test]
#[ignore = "needs a kernel without 802.1Q and ipvlan: scripts/test runs it on the CI machine"]
async fn a_kernel_without_8021q_is_named_in_the_refusal() {
    let mut parent = Parent::new(7);
    let name = link_name(7);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();
    require_kernel_without("vlan", "CONFIG_VLAN_8021Q", &parent);

    let err = nl
        .ensure_vlan(&name, &parent.name, 101, MAC, 1450)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(EOPNOTSUPP), "{err:?}");
    assert!(err.to_string().contains("CONFIG_VLAN_8021Q"), "{err}");
    assert!(ip_link(&name).is_none(), "nothing was made");
}

#[tokio::test]
#[ignore = "needs 802.1Q and ipvlan: scripts/test runs it in a scripts/vm guest"]
async fn ipvlan_in_l2_mode_with_the_vms_mac() {
    let mut parent = Parent::new(6);
    let name = link_name(6);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();
    require_kernel("ipvlan", "CONFIG_IPVLAN", &parent);

    assert!(nl.ensure_ipvlan(&name, &parent.name, 1450).await.unwrap());
    let seen = assert_link(&nl, &name, &parent, "ipvlan", 1450).await;
    assert_eq!(seen["linkinfo"]["info_data"]["mode"], "l2", "{seen}");
    let parent_mac = ip_link(&parent.name).unwrap()["address"].clone();
    assert_eq!(
        seen["address"], parent_mac,
        "ipvlan shares the parent's MAC"
    );
    assert!(!nl.ensure_ipvlan(&name, &parent.name, 1450).await.unwrap());
    assert!(nl.delete_nested(&name, NestedLink::Ipvlan).await.unwrap());
    assert!(ip_link(&name).is_none());
}

#[tokio::test]
#[ignore = "needs a kernel without 802.1Q and ipvlan: scripts/test runs it on the CI machine"]
async fn a_kernel_without_ipvlan_is_named_in_the_refusal() {
    let mut parent = Parent::new(8);
    let name = link_name(8);
    parent.extra.push(name.clone());
    let nl = Netlink::connect().await.unwrap();
    require_kernel_without("ipvlan", "CONFIG_IPVLAN", &parent);

    let err = nl
        .ensure_ipvlan(&name, &parent.name, 1450)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(EOPNOTSUPP), "{err:?}");
    assert!(err.to_string().contains("CONFIG_IPVLAN"), "{err}");
    assert!(ip_link(&name).is_none(), "nothing was made");
}
