//! Helpers shared by the binding tests: names unique to the test process, OVS bridges and
//! links that are removed when the test ends (failed or not), and independent views of the
//! result (`ovs-vsctl`, /sys/class/net).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kuryr_binding::ovsdb::DEFAULT_SOCKET;
use kuryr_binding::{veth_names, Netlink, Ovsdb, VethNames, VethSpec};
use serde_json::Value;

pub const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56];
pub const MAC_TEXT: &str = "fa:16:3e:12:34:56";
pub const MTU: u32 = 1450;

/// A Neutron-like id whose first 11 characters (the part in interface names) are unique to
/// this process and `case`.
pub fn port_id(case: u8) -> String {
    format!(
        "{:08x}-{case:02x}00-4000-8000-000000000000",
        std::process::id()
    )
}

/// The OVSDB client for the running ovsdb-server; fails the test, saying how to start Open
/// vSwitch, if it is not running (the tests never start it themselves).
pub fn ovsdb() -> Ovsdb {
    assert!(
        Path::new(DEFAULT_SOCKET).exists(),
        "ovsdb-server is not running (no {DEFAULT_SOCKET}): run `scripts/stack up`, or \
         `/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random`"
    );
    Ovsdb::new(DEFAULT_SOCKET)
}

/// Runs `ovs-vsctl` and returns its stdout, failing the test if it fails.
pub fn vsctl(args: &[&str]) -> String {
    let out = Command::new("ovs-vsctl")
        .args(args)
        .output()
        .expect("ovs-vsctl (apt-get install openvswitch-switch)");
    assert!(
        out.status.success(),
        "ovs-vsctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An OVS bridge `brkt<pid><n>` on the userspace datapath (this machine's kernel has no
/// openvswitch module), deleted with its ports on drop.
pub struct TestBridge {
    pub name: String,
}

impl TestBridge {
    pub fn new(n: u8) -> Self {
        let _ = ovsdb();
        let name = bridge_name(n);
        vsctl(&[
            "--may-exist",
            "add-br",
            &name,
            "--",
            "set",
            "Bridge",
            &name,
            "datapath_type=netdev",
        ]);
        TestBridge { name }
    }

    /// Names of the bridge's ports, sorted.
    pub fn ports(&self) -> Vec<String> {
        let out = vsctl(&["list-ports", &self.name]);
        out.lines().map(str::to_owned).collect()
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = Command::new("ovs-vsctl")
            .args(["--if-exists", "del-br", &self.name])
            .status();
    }
}

/// The name a [`TestBridge`] `n` gets (also usable for a bridge that must not exist).
pub fn bridge_name(n: u8) -> String {
    format!("brkt{}{n}", std::process::id())
}

/// Links deleted on drop (deleting one end of a veth deletes both).
#[derive(Default)]
pub struct Links(pub Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.0 {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Makes port `port_id`'s veth pair (as the driver does before plugging) and returns its
/// names, registered for deletion in `links`.
pub async fn veth(nl: &Netlink, port_id: &str, links: &mut Links) -> VethNames {
    let names = veth_names(port_id);
    links.0.push(names.host.clone());
    nl.ensure_veth(&VethSpec {
        names: &names,
        mac: MAC,
        mtu: MTU,
    })
    .await
    .unwrap();
    names
}

/// An Interface row as `ovs-vsctl` sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct IfaceRow {
    pub uuid: String,
    pub ofport: Option<i64>,
    pub external_ids: BTreeMap<String, String>,
}

/// The Interface rows named `name` (none, one, ...), through `ovs-vsctl find`.
pub fn ifaces_named(name: &str) -> Vec<IfaceRow> {
    find_ifaces(&format!("name={name}"))
}

/// The Interface rows whose external_ids include `iface-id=<port_id>`.
pub fn ifaces_of(port_id: &str) -> Vec<IfaceRow> {
    find_ifaces(&format!("external_ids:iface-id={port_id}"))
}

fn find_ifaces(condition: &str) -> Vec<IfaceRow> {
    let out = vsctl(&[
        "--format=json",
        "--data=json",
        "--columns=_uuid,ofport,external_ids",
        "find",
        "Interface",
        condition,
    ]);
    let table: Value = serde_json::from_str(&out).unwrap();
    table["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| IfaceRow {
            uuid: row[0][1].as_str().unwrap().to_owned(),
            ofport: row[1].as_i64(),
            external_ids: row[2][1]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| {
                    (
                        kv[0].as_str().unwrap().to_owned(),
                        kv[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// How many Port rows are named `name`.
pub fn ports_named(name: &str) -> usize {
    let out = vsctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Port",
        &format!("name={name}"),
    ]);
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

/// The external_ids kuryr must set, exactly.
pub fn expected_ids(port_id: &str, endpoint_id: &str) -> BTreeMap<String, String> {
    [
        ("attached-mac", MAC_TEXT),
        ("iface-id", port_id),
        ("iface-status", "active"),
        ("owner", "kuryr"),
        ("vm-uuid", endpoint_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn sys(name: &str) -> PathBuf {
    Path::new("/sys/class/net").join(name)
}

pub fn link_exists(name: &str) -> bool {
    sys(name).exists()
}

/// The bridge `name` is attached to, from /sys/class/net/<name>/master.
pub fn master_of(name: &str) -> Option<String> {
    let target = std::fs::read_link(sys(name).join("master")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// A file under /sys/class/net/<name>/, trimmed.
pub fn sysfs(name: &str, file: &str) -> String {
    std::fs::read_to_string(sys(name).join(file))
        .unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
        .trim()
        .to_owned()
}

pub fn is_linux_bridge(name: &str) -> bool {
    sys(name).join("bridge").is_dir()
}

/// Administratively up (IFF_UP in /sys/class/net/<name>/flags).
pub fn is_up(name: &str) -> bool {
    let flags = sysfs(name, "flags");
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    flags & 1 == 1
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(case: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kuryr-binding-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ethtool -k DEV` (the tool, as an independent view) as feature → state (`on`,
/// `off [fixed]`, ...).
pub fn ethtool_features(dev: &str) -> BTreeMap<String, String> {
    let out = Command::new("ethtool")
        .args(["-k", dev])
        .output()
        .expect("ethtool (apt-get install ethtool)");
    assert!(
        out.status.success(),
        "ethtool -k {dev}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .map(|(feature, state)| (feature.to_owned(), state.trim().to_owned()))
        .collect()
}

/// The TX checksum features of `dev` (`tx-checksumming` and `tx-checksum-*`), from
/// [`ethtool_features`].
pub fn tx_checksum(dev: &str) -> BTreeMap<String, String> {
    ethtool_features(dev)
        .into_iter()
        .filter(|(feature, _)| feature.starts_with("tx-checksum"))
        .collect()
}
