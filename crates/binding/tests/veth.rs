#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The veth pair against the real kernel (needs root). Every test uses its own names, made
//! from this process id, and removes what it made even when it fails. Results are checked
//! both through `Netlink::link` and independently through `ip -d -j link show`.

use std::process::Command;

use kuryr_binding::{veth_names, Error, Netlink, VethNames, VethSpec};
use serde_json::Value;

const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56];
const MAC_TEXT: &str = "fa:16:3e:12:34:56";
const MTU: u32 = 1450;

/// A Neutron-like port id whose first 11 characters (the part in the names) are unique to
/// this process and test case.
fn port_id(case: u8) -> String {
    format!(
        "{:08x}-{case:02x}00-4000-8000-000000000000",
        std::process::id()
    )
}

/// Deletes the links and namespaces on drop, so a failed test leaves nothing behind.
struct Cleanup {
    links: Vec<String>,
    netns: Vec<String>,
}

impl Cleanup {
    fn new(names: &VethNames) -> Self {
        Cleanup {
            links: vec![names.host.clone(), names.container.clone()],
            netns: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(std::process::Stdio::null())
                .status();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
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

/// Makes a link that is not a veth: a dummy, or a bridge on kernels built without dummy
/// (e.g. minimal VM kernels without modules). Returns its kind.
fn add_non_veth(name: &str) -> &'static str {
    for kind in ["dummy", "bridge"] {
        let ok = Command::new("ip")
            .args(["link", "add", name, "type", kind])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            return kind;
        }
    }
    panic!("cannot create a dummy or bridge link {name}");
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
    assert_eq!(links.len(), 1, "{links:?}");
    links.pop()
}

/// How many links in the namespace have exactly this name.
fn count_links(name: &str) -> usize {
    let out = Command::new("ip")
        .args(["-j", "link", "show"])
        .output()
        .unwrap();
    let links: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    links.iter().filter(|l| l["ifname"] == name).count()
}

fn flags(link: &Value) -> Vec<&str> {
    link["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

/// Asserts, through both views, that the pair is exactly as `spec` says.
async fn assert_pair(nl: &Netlink, names: &VethNames, mac: &str, mtu: u32) -> (u32, u32) {
    let host = nl.link(&names.host).await.unwrap().expect("host end");
    let container = nl
        .link(&names.container)
        .await
        .unwrap()
        .expect("container end");
    assert!(
        host.is_veth() && container.is_veth(),
        "{host:?} {container:?}"
    );
    assert_eq!(host.kind.as_deref(), Some("veth"));
    assert_eq!(host.mtu, Some(mtu));
    assert_eq!(container.mtu, Some(mtu));
    assert!(host.up, "{host:?}");
    assert_eq!(host.peer_index, Some(container.index));
    assert_eq!(container.peer_index, Some(host.index));
    assert_eq!(host.peer_netns_id, None);

    let h = ip_link(&names.host).expect("ip sees the host end");
    let c = ip_link(&names.container).expect("ip sees the container end");
    for (link, peer) in [(&h, &names.container), (&c, &names.host)] {
        assert_eq!(link["linkinfo"]["info_kind"], "veth", "{link}");
        assert_eq!(link["mtu"], mtu, "{link}");
        assert_eq!(link["link"], peer.as_str(), "{link}");
    }
    assert!(flags(&h).contains(&"UP"), "{h}");
    assert_eq!(c["address"], mac, "{c}");
    assert_eq!(count_links(&names.host), 1);
    assert_eq!(count_links(&names.container), 1);
    (host.index, container.index)
}

#[tokio::test]
async fn creates_the_pair_and_is_idempotent() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(1));
    let _cleanup = Cleanup::new(&names);
    let spec = VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    };

    nl.ensure_veth(&spec).await.unwrap();
    let indexes = assert_pair(&nl, &names, MAC_TEXT, MTU).await;
    let container = nl.link(&names.container).await.unwrap().unwrap();
    assert_eq!(container.mac, Some(MAC));
    // 3 = NET_ADDR_SET: the MAC was given at creation, so udev's MACAddressPolicy keeps it.
    let assign = std::fs::read_to_string(format!(
        "/sys/class/net/{}/addr_assign_type",
        names.container
    ))
    .unwrap();
    assert_eq!(assign.trim(), "3");

    nl.ensure_veth(&spec).await.unwrap();
    assert_eq!(assert_pair(&nl, &names, MAC_TEXT, MTU).await, indexes);
}

#[tokio::test]
async fn fixes_an_existing_pair() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(2));
    let _cleanup = Cleanup::new(&names);
    let spec = VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    };
    // As if left behind half-configured: other MAC and MTUs, host end down, container end up.
    ip(&[
        "link",
        "add",
        &names.host,
        "mtu",
        "1400",
        "type",
        "veth",
        "peer",
        "name",
        &names.container,
        "address",
        "fa:16:3e:00:00:01",
        "mtu",
        "1300",
    ]);
    ip(&["link", "set", &names.container, "up"]);
    let before = nl.link(&names.host).await.unwrap().unwrap();
    assert!(!before.up);

    nl.ensure_veth(&spec).await.unwrap();
    let (host_index, _) = assert_pair(&nl, &names, MAC_TEXT, MTU).await;
    assert_eq!(host_index, before.index, "fixed in place, not recreated");
}

#[tokio::test]
async fn concurrent_calls_make_one_pair() {
    let nl = Netlink::connect().await.unwrap();
    let other = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(3));
    let _cleanup = Cleanup::new(&names);
    let spec = VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    };
    let (a, b) = tokio::join!(nl.ensure_veth(&spec), other.ensure_veth(&spec));
    a.unwrap();
    b.unwrap();
    assert_pair(&nl, &names, MAC_TEXT, MTU).await;
}

#[tokio::test]
async fn a_non_veth_with_the_host_name_is_refused_and_left_alone() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(4));
    let _cleanup = Cleanup::new(&names);
    let kind = add_non_veth(&names.host);
    let before = ip_link(&names.host).unwrap();

    let err = nl
        .ensure_veth(&VethSpec {
            names: &names,
            mac: MAC,
            mtu: MTU,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotVeth { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} exists and is not a veth (kind {kind}): remove it (it is not kuryr's)",
            names.host
        )
    );

    let after = ip_link(&names.host).expect("the link is still there");
    assert_eq!(after["linkinfo"]["info_kind"], kind);
    assert_eq!(after["ifindex"], before["ifindex"]);
    assert_eq!(after["mtu"], before["mtu"]);
    assert_eq!(after["flags"], before["flags"]);
    assert!(ip_link(&names.container).is_none());
}

#[tokio::test]
async fn a_taken_container_name_is_refused_and_left_alone() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(5));
    let _cleanup = Cleanup::new(&names);
    let kind = add_non_veth(&names.container);

    let err = nl
        .ensure_veth(&VethSpec {
            names: &names,
            mac: MAC,
            mtu: MTU,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ContainerNameTaken { .. }), "{err:?}");
    assert!(err.to_string().contains(&names.container), "{err}");
    assert_eq!(
        ip_link(&names.container).unwrap()["linkinfo"]["info_kind"],
        kind
    );
    assert!(ip_link(&names.host).is_none());
}

#[tokio::test]
async fn a_veth_with_another_peer_is_refused() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(6));
    let other = format!("kx{:08x}", std::process::id());
    let mut cleanup = Cleanup::new(&names);
    cleanup.links.push(other.clone());
    ip(&[
        "link",
        "add",
        &names.host,
        "type",
        "veth",
        "peer",
        "name",
        &other,
    ]);

    let err = nl
        .ensure_veth(&VethSpec {
            names: &names,
            mac: MAC,
            mtu: MTU,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongPeer { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("is named {other}")),
        "{err}"
    );
    assert!(ip_link(&names.host).is_some() && ip_link(&other).is_some());
    assert!(ip_link(&names.container).is_none());
}

#[tokio::test]
async fn a_pair_whose_container_end_moved_away_is_refused() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(7));
    let ns = format!("kuryr-test-{}", std::process::id());
    let mut cleanup = Cleanup::new(&names);
    cleanup.netns.push(ns.clone());
    let spec = VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    };
    nl.ensure_veth(&spec).await.unwrap();
    ip(&["netns", "add", &ns]);
    ip(&["link", "set", &names.container, "netns", &ns]);

    let host = nl.link(&names.host).await.unwrap().unwrap();
    assert!(host.is_veth());
    assert!(host.peer_netns_id.is_some(), "{host:?}");

    let err = nl.ensure_veth(&spec).await.unwrap_err();
    assert!(matches!(err, Error::WrongPeer { .. }), "{err:?}");
    assert!(
        err.to_string().contains("another network namespace"),
        "{err}"
    );
    assert!(nl.link(&names.container).await.unwrap().is_none());

    // The MAC went along into the namespace.
    let out = Command::new("ip")
        .args(["-n", &ns, "-j", "link", "show", "dev", &names.container])
        .output()
        .unwrap();
    let moved: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved[0]["address"], MAC_TEXT);
}

#[tokio::test]
async fn delete_removes_both_ends() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(8));
    let _cleanup = Cleanup::new(&names);
    nl.ensure_veth(&VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    })
    .await
    .unwrap();

    assert!(nl.delete_link(&names.host).await.unwrap());
    assert!(nl.link(&names.host).await.unwrap().is_none());
    assert!(nl.link(&names.container).await.unwrap().is_none());
    assert!(ip_link(&names.host).is_none());
    assert!(ip_link(&names.container).is_none());
    assert!(!nl.delete_link(&names.host).await.unwrap());
    assert!(!nl.delete_link(&names.container).await.unwrap());
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let nl = Netlink::connect().await.unwrap();
    let long = "x".repeat(16);
    for bad in ["", ".", "..", "a/b", "a b", "a\tb", long.as_str()] {
        let err = nl.link(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err:?}");
        let err = nl.delete_link(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err:?}");
        let names = VethNames {
            host: bad.to_owned(),
            container: "t_cok".to_owned(),
        };
        let err = nl
            .ensure_veth(&VethSpec {
                names: &names,
                mac: MAC,
                mtu: MTU,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("invalid interface name"), "{err}");
    }
    assert!(ip_link("t_cok").is_none());
}

#[tokio::test]
async fn invalid_mtu_and_mac_are_refused_before_sending() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(9));
    let _cleanup = Cleanup::new(&names);
    for (mac, mtu) in [(MAC, 10), ([0x01, 0, 0x5e, 0, 0, 1], MTU), ([0; 6], MTU)] {
        let err = nl
            .ensure_veth(&VethSpec {
                names: &names,
                mac,
                mtu,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
    }
    assert!(ip_link(&names.host).is_none());
}

#[tokio::test]
async fn missing_link_reads_as_none() {
    let nl = Netlink::connect().await.unwrap();
    let names = veth_names(&port_id(10));
    assert!(nl.link(&names.host).await.unwrap().is_none());
    let lo = nl.link("lo").await.unwrap().unwrap();
    assert_eq!(lo.kind, None);
    assert_eq!(lo.peer_index, None);
}
