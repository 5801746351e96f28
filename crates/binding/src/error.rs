//! Errors of the binding.
//!
//! Each message names the interface and the operation and, where the cause is known, says what
//! to do: the operator reads it in Docker's answer to `docker run`, not in a debugger.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::ovsdb::OvsdbError;

/// What was being done to an interface when the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateVeth,
    CreateBridge,
    Read,
    Configure,
    /// Attaching a link to a bridge, or detaching it (`ip link set X master/nomaster`).
    SetMaster,
    Delete,
    /// Turning TX checksum offload off (`ethtool -K X tx off`).
    DisableTxChecksum,
    /// Creating a container's link on the VM's interface (nested containers).
    CreateVlan,
    CreateMacvlan,
    CreateIpvlan,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::CreateVeth => "creating veth pair",
            Op::CreateBridge => "creating bridge",
            Op::SetMaster => "attaching or detaching",
            Op::Read => "reading link",
            Op::Configure => "configuring link",
            Op::Delete => "deleting link",
            Op::DisableTxChecksum => "turning TX checksum offload off on",
            Op::CreateVlan => "creating VLAN link",
            Op::CreateMacvlan => "creating macvlan link",
            Op::CreateIpvlan => "creating ipvlan link",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused before sending: the kernel would not take this name.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// Refused before sending: other parts of a request that cannot work.
    #[error("invalid veth request for {target}: {reason}")]
    InvalidRequest { target: String, reason: String },

    /// The netlink socket could not be opened.
    #[error("opening the netlink socket failed: kuryr needs Linux with rtnetlink")]
    Socket(#[source] io::Error),

    /// [`crate::Netlink::connect`] was called outside a tokio runtime.
    #[error("the netlink connection needs a tokio runtime: connect from within one")]
    NoRuntime,

    /// The kernel answered with an error number.
    #[error("{op} {target}: {}{}", describe_errno(*.errno), hint(*.op, *.errno))]
    Kernel { op: Op, target: String, errno: i32 },

    /// The request did not get an answer from the kernel (connection gone, unparsable reply).
    #[error("{op} {target}: netlink request failed")]
    Transport {
        op: Op,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },

    /// A link has the host end's name but is something else.
    #[error(
        "{name} exists and is not a veth ({}): remove it (it is not kuryr's)",
        kind.as_deref().map_or("no link kind".to_owned(), |k| format!("kind {k}"))
    )]
    NotVeth { name: String, kind: Option<String> },

    /// The host end is a veth, but its other end is not the expected container end here.
    #[error(
        "{host} exists and is a veth, but its peer {found} instead of {expected}: \
         remove {host} if no container uses it"
    )]
    WrongPeer {
        host: String,
        expected: String,
        /// Completes "its peer ...", e.g. `is named veth0` or `is in another network namespace`.
        found: String,
    },

    /// The container end's name is taken while the host end is missing.
    #[error("{name} exists without {host}: remove {name} (a leftover, or not kuryr's)")]
    ContainerNameTaken { name: String, host: String },

    /// A link that a binding needs to exist (the host end of the veth) does not.
    #[error("{name} does not exist: {reason}")]
    MissingLink { name: String, reason: &'static str },

    /// TX checksum offload could not be turned off other than by a kernel error number: no
    /// ethtool netlink interface, a feature the kernel keeps on, a failed exchange.
    #[error("turning TX checksum offload off on {name}: {reason}")]
    Offload { name: String, reason: String },

    /// A nested container's link name is held by a link of another kind, on another parent,
    /// or with another VLAN id.
    #[error("{name} exists but is {found}, not {expected}: remove it if no container uses it (a leftover, or not kuryr's)")]
    WrongLink {
        name: String,
        /// e.g. `a veth`, `a macvlan on eth1`, `VLAN 12 on eth0`.
        found: String,
        expected: String,
    },

    /// The VM's interface that a nested container's link goes on does not exist here.
    #[error(
        "{parent} does not exist in kuryr's network namespace, so {name} cannot be made on it: \
         [binding] link_iface must name the VM's interface (the one with the VM port's MAC)"
    )]
    MissingParent { parent: String, name: String },

    /// Refused before sending: a nested container's link that cannot work.
    #[error("cannot make {name}: {reason}")]
    InvalidLink { name: String, reason: String },

    /// A link has a bridge's name but is something else.
    #[error(
        "{name} exists and is not a Linux bridge ({}): remove it (it is not kuryr's)",
        kind.as_deref().map_or("no link kind".to_owned(), |k| format!("kind {k}"))
    )]
    NotBridge { name: String, kind: Option<String> },

    /// Talking to ovsdb-server failed (connection, protocol, or a refused transaction).
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),

    /// The OVS bridge to plug into does not exist.
    #[error(
        "Open vSwitch bridge {bridge} does not exist: the Neutron Open vSwitch agent \
         (neutron-openvswitch-agent) creates it, as its `[ovs] integration_bridge` (br-int by \
         default) or as the `bridge_name` it puts in the port's binding:vif_details; is the \
         agent running on this host?"
    )]
    OvsBridgeMissing { bridge: String },

    /// OVS already has a port or interface of this name, laid out in a way kuryr does not
    /// make (a bond, or an interface under a port of another name): left alone.
    #[error("Open vSwitch already has {name}, {reason}: remove it (`ovs-vsctl del-port {name}`) if it is a leftover")]
    OvsConflict { name: String, reason: String },

    /// Other clients kept changing the same OVS rows while the plug transaction was built.
    #[error("plugging {name} into Open vSwitch bridge {bridge}: the database kept changing under the transaction; retry")]
    OvsBusy { name: String, bridge: String },

    /// ovs-vswitchd took the interface into its configuration but could not attach it.
    #[error("ovs-vswitchd could not attach {name} to bridge {bridge}: {error}")]
    OvsInterface {
        name: String,
        bridge: String,
        error: String,
    },

    /// ovs-vswitchd did not apply the configuration in time.
    #[error(
        "ovs-vswitchd did not attach {name} to bridge {bridge} within {} s: is ovs-vswitchd \
         running (`ovs-ctl status`)? See its log (/var/log/openvswitch/ovs-vswitchd.log)",
        waited.as_secs_f32()
    )]
    VswitchdTimeout {
        name: String,
        bridge: String,
        waited: Duration,
    },

    /// Neutron did not bind the port: no mechanism driver took it for this host.
    #[error(
        "Neutron could not bind port {port_id} to host {host} (binding:vif_type {vif_type:?}): \
         no Neutron L2 agent for host {host} is alive, or none serves this network; check \
         `openstack network agent list --host {host}`"
    )]
    Unbound {
        port_id: String,
        host: String,
        vif_type: String,
    },

    /// A vif_type that cannot name a binding script.
    #[error("invalid vif_type {vif_type:?}: {reason}")]
    InvalidVifType {
        vif_type: String,
        reason: &'static str,
    },

    /// No binding script for this vif_type.
    #[error("vif_type {vif_type} is not supported: no executable {}", path.display())]
    VifTypeNotSupported { vif_type: String, path: PathBuf },

    /// The binding script could not be started.
    #[error("running {}: {source}", path.display())]
    ScriptSpawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The binding script failed.
    #[error("{} {action} {port_id} failed ({status}){}", path.display(), stderr_suffix(stderr))]
    ScriptFailed {
        path: PathBuf,
        action: &'static str,
        port_id: String,
        /// `exit status 3`, `killed by signal 9`, ...
        status: String,
        /// What the script wrote on stderr (the end of it, if long).
        stderr: String,
    },

    /// The binding script did not finish in time; it was killed.
    #[error("{} {action} {port_id} did not finish within {} s and was killed", path.display(), timeout.as_secs_f32())]
    ScriptTimeout {
        path: PathBuf,
        action: &'static str,
        port_id: String,
        timeout: Duration,
    },

    /// Several steps of a best-effort teardown failed; each is kept.
    #[error("{}", join_errors(.0))]
    Several(Vec<Error>),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::from(", no stderr")
    } else {
        format!(": {stderr}")
    }
}

fn join_errors(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The kernel's error number (positive, e.g. 1 for `EPERM`), if the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// One error from a teardown's list: `None` if the list is empty, the error itself if it
    /// holds one, [`Error::Several`] otherwise.
    pub(crate) fn from_list(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Several(errors)),
        }
    }

    /// Turns an rtnetlink failure of `op` on `target` into an error that says which.
    pub(crate) fn netlink(op: Op, target: impl Into<String>, source: rtnetlink::Error) -> Self {
        let target = target.into();
        match errno_of(&source) {
            Some(errno) => Error::Kernel { op, target, errno },
            None => Error::Transport { op, target, source },
        }
    }
}

pub(crate) const EPERM: i32 = 1;
pub(crate) const ENODEV: i32 = 19;
pub(crate) const EEXIST: i32 = 17;
const EBUSY: i32 = 16;
const EACCES: i32 = 13;
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;
const EADDRNOTAVAIL: i32 = 99;

/// The positive errno of a kernel NACK, if that is what `err` is.
pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| code.get().abs()),
        _ => None,
    }
}

/// `strerror` text without std's " (os error N)" suffix, which reads as noise in a sentence.
fn describe_errno(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// What the operator can do about `errno` during `op`, as a ": ..." suffix (empty if nothing
/// useful can be said).
fn hint(op: Op, errno: i32) -> &'static str {
    match (op, errno) {
        (_, EPERM | EACCES) => ": kuryr needs CAP_NET_ADMIN (run as root)",
        (Op::CreateVeth, EEXIST) => ": a link with one of these names appeared meanwhile; retry",
        (Op::CreateVeth, EOPNOTSUPP) => ": this kernel has no veth support (modprobe veth)",
        (Op::CreateBridge, EOPNOTSUPP) => ": this kernel has no bridge support (modprobe bridge)",
        (Op::CreateVlan, EOPNOTSUPP) => {
            ": this kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q; modprobe 8021q)"
        }
        (Op::CreateMacvlan, EOPNOTSUPP) => {
            ": this kernel has no macvlan support (CONFIG_MACVLAN; modprobe macvlan)"
        }
        (Op::CreateIpvlan, EOPNOTSUPP) => {
            ": this kernel has no ipvlan support (CONFIG_IPVLAN; modprobe ipvlan)"
        }
        (Op::CreateMacvlan | Op::CreateIpvlan, EBUSY) => {
            ": the VM's interface already carries links of the other kind (macvlan and ipvlan \
             cannot share one)"
        }
        (Op::CreateVlan | Op::CreateMacvlan | Op::CreateIpvlan, EEXIST) => {
            ": a link with this name appeared meanwhile; retry"
        }
        (Op::CreateVlan | Op::CreateMacvlan | Op::CreateIpvlan, EINVAL) => {
            ": the kernel refused the MAC, MTU or VLAN id"
        }
        (Op::DisableTxChecksum, EOPNOTSUPP) => ": the link's driver cannot change its features",
        (_, EADDRNOTAVAIL) => ": the MAC address is not a usable unicast address",
        (Op::CreateVeth | Op::Configure, EINVAL) => ": the kernel refused the MAC or MTU",
        (_, ENODEV) => ": the link disappeared meanwhile; retry",
        (_, EBUSY) => ": the link is busy; retry",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_message_says_what_to_do() {
        let err = Error::Kernel {
            op: Op::CreateVeth,
            target: "tapX/t_cX".into(),
            errno: EPERM,
        };
        assert_eq!(
            err.to_string(),
            "creating veth pair tapX/t_cX: Operation not permitted: \
             kuryr needs CAP_NET_ADMIN (run as root)"
        );
        assert_eq!(err.errno(), Some(EPERM));
    }

    #[test]
    fn unknown_errno_has_no_hint() {
        let err = Error::Kernel {
            op: Op::Delete,
            target: "tapX".into(),
            errno: 5,
        };
        assert_eq!(err.to_string(), "deleting link tapX: Input/output error");
    }

    #[test]
    fn not_veth_message() {
        let err = Error::NotVeth {
            name: "tapX".into(),
            kind: Some("dummy".into()),
        };
        assert_eq!(
            err.to_string(),
            "tapX exists and is not a veth (kind dummy): remove it (it is not kuryr's)"
        );
    }
}
