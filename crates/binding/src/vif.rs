//! The entry point: which binding a Neutron port needs (from its `binding:vif_type` and
//! `binding:vif_details`), and [`Binder`], which plugs and unplugs a port's host interface
//! accordingly.
//!
//! | vif_type | binding |
//! | --- | --- |
//! | `ovs` | into OVS bridge `bridge_name` (default br-int), or through qbr/qvb/qvo with `ovs_hybrid_plug`; with `datapath_type` `netdev`, TX checksum offload off on the container end first |
//! | `bridge` | into Linux bridge `brq<network[:11]>` (or vif_details' `bridge_name`) |
//! | `tap` | nothing: the agent finds the tap itself |
//! | `binding_failed`, `unbound`, empty | an error: no agent took the port |
//! | anything else | the executable `<bindir>/<vif_type>` |

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::ovs::{OvsPort, DEFAULT_BRIDGE};
use crate::script::{
    validate_vif_type, ScriptArgs, Scripts, DEFAULT_BINDIR, DEFAULT_SCRIPT_TIMEOUT,
};
use crate::veth::format_mac;
use crate::{
    hybrid, hybrid_names, linuxbridge, offload, validate_ifname, veth_names, Error, Netlink, Ovsdb,
};

/// The `datapath_type` in vif_details of a bridge on OVS's userspace datapath (Neutron's
/// `[ovs] datapath_type`); `system` is the kernel's.
const USERSPACE_DATAPATH: &str = "netdev";

/// How a port is bound on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VifBinding {
    /// Neutron's Open vSwitch agent: the tap into OVS `bridge`, or with `hybrid`, into a Linux
    /// bridge joined to OVS by a veth (for the iptables firewall). `userspace`: the bridge is
    /// on the userspace (`netdev`) datapath, which forwards partial checksums uncompleted, so
    /// the container end gets TX checksum offload turned off.
    Ovs {
        bridge: String,
        hybrid: bool,
        userspace: bool,
    },
    /// Neutron's Linux bridge agent: the tap into a Linux bridge, the one vif_details name
    /// or else the network's `brq` bridge.
    LinuxBridge { bridge: Option<String> },
    /// The tap as it is.
    Tap,
    /// An executable in the bindir, named like the vif_type.
    Script(String),
    /// Neutron did not bind the port (no live agent for the host); carries the vif_type.
    Unusable(String),
}

impl VifBinding {
    /// The binding for a port with this `binding:vif_type` and `binding:vif_details`.
    pub fn from_port(vif_type: &str, vif_details: &Value) -> VifBinding {
        let bridge_name = vif_details
            .get("bridge_name")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty());
        match vif_type {
            "ovs" => VifBinding::Ovs {
                bridge: bridge_name.unwrap_or(DEFAULT_BRIDGE).to_owned(),
                hybrid: vif_details.get("ovs_hybrid_plug") == Some(&Value::Bool(true)),
                userspace: vif_details.get("datapath_type").and_then(Value::as_str)
                    == Some(USERSPACE_DATAPATH),
            },
            "bridge" => VifBinding::LinuxBridge {
                bridge: bridge_name.map(str::to_owned),
            },
            "tap" => VifBinding::Tap,
            "" | "unbound" | "binding_failed" => VifBinding::Unusable(vif_type.to_owned()),
            other => VifBinding::Script(other.to_owned()),
        }
    }
}

/// A port to plug into the host.
#[derive(Debug, Clone)]
pub struct PlugRequest {
    pub port_id: String,
    /// The Docker endpoint id (OVS `vm-uuid`).
    pub endpoint_id: String,
    /// The Neutron port's MAC.
    pub mac: [u8; 6],
    /// The host end of the container's veth (`tap<port[:11]>`), which must exist.
    pub host_ifname: String,
    pub network_id: String,
    pub project_id: String,
    /// The network's MTU (for hybrid plug's veth, if the tap reports none).
    pub mtu: u32,
    /// The port's `binding:host_id`, for the error when Neutron did not bind it.
    pub host: String,
    pub vif_type: String,
    pub vif_details: Value,
}

/// A port to unplug from the host.
#[derive(Debug, Clone)]
pub struct UnplugRequest {
    pub port_id: String,
    pub endpoint_id: String,
    pub mac: [u8; 6],
    pub host_ifname: String,
    pub network_id: String,
    pub vif_type: String,
    pub vif_details: Value,
}

/// Plugs and unplugs host interfaces; holds the netlink and OVSDB connections.
#[derive(Debug)]
pub struct Binder {
    pub netlink: Netlink,
    pub ovsdb: Ovsdb,
    /// Where binding scripts are (upstream's `[DEFAULT] bindir`).
    pub bindir: PathBuf,
    /// How long a binding script may run.
    pub script_timeout: Duration,
}

impl Binder {
    /// A binder with upstream's bindir ([`DEFAULT_BINDIR`]) and a 60 s script limit.
    pub fn new(netlink: Netlink, ovsdb: Ovsdb) -> Self {
        Binder {
            netlink,
            ovsdb,
            bindir: PathBuf::from(DEFAULT_BINDIR),
            script_timeout: DEFAULT_SCRIPT_TIMEOUT,
        }
    }

    /// Plugs the port's host interface as its vif_type says.
    ///
    /// Idempotent: plugging a plugged port leaves the same state. Everything is validated
    /// before anything changes; a plug that fails on the way removes what it made, but never
    /// the veth, which is the caller's.
    ///
    /// On OVS's userspace datapath (vif_details `datapath_type` `netdev`), the container end of
    /// the veth (`t_c<port[:11]>`, still in the host namespace) first gets its TX checksum
    /// offload turned off; see [`offload`].
    ///
    /// # Errors
    ///
    /// [`Error::Unbound`] if Neutron did not bind the port; invalid names, MAC or vif_type;
    /// the errors of each binding (see [`Ovsdb::add_port`], [`hybrid::plug`],
    /// [`offload::disable_tx_checksum`], [`Netlink::plug_linux_bridge`], [`Scripts::bind`]).
    pub async fn plug(&self, req: &PlugRequest) -> Result<(), Error> {
        let binding = VifBinding::from_port(&req.vif_type, &req.vif_details);
        validate(&binding, &req.host_ifname, &req.port_id, &req.mac)?;
        match &binding {
            VifBinding::Unusable(vif_type) => Err(Error::Unbound {
                port_id: req.port_id.clone(),
                host: req.host.clone(),
                vif_type: vif_type.clone(),
            }),
            VifBinding::Tap => Ok(()),
            VifBinding::Ovs {
                bridge,
                hybrid,
                userspace,
            } => {
                if self.netlink.link(&req.host_ifname).await?.is_none() {
                    return Err(Error::MissingLink {
                        name: req.host_ifname.clone(),
                        reason: "the container's veth must exist before it is plugged",
                    });
                }
                if *userspace {
                    // Before the port is in OVS, so it never forwards a partial checksum. Only
                    // the container end: the packets start there, and the links between it and
                    // OVS (tap, qbr, qvb/qvo) forward them as they are, already checksummed.
                    // The veth is the caller's: a failed plug below does not turn it back on.
                    offload::disable_tx_checksum(&veth_names(&req.port_id).container).await?;
                }
                if *hybrid {
                    let plug = hybrid::HybridPlug {
                        tap: &req.host_ifname,
                        mtu: req.mtu,
                        ovs: ovs_port(req, bridge),
                    };
                    hybrid::plug(&self.netlink, &self.ovsdb, &plug).await
                } else {
                    self.ovsdb.add_port(&ovs_port(req, bridge)).await?;
                    Ok(())
                }
            }
            VifBinding::LinuxBridge { bridge } => {
                let bridge = linuxbridge::bridge_for(&req.network_id, bridge.as_deref());
                self.netlink
                    .plug_linux_bridge(&req.host_ifname, &bridge)
                    .await
            }
            VifBinding::Script(vif_type) => {
                let mac = format_mac(&req.mac);
                let args = ScriptArgs {
                    port_id: &req.port_id,
                    host_ifname: &req.host_ifname,
                    endpoint_id: &req.endpoint_id,
                    mac: &mac,
                    network_id: &req.network_id,
                    project_id: &req.project_id,
                    vif_details: &req.vif_details,
                };
                self.scripts().bind(vif_type, &args).await
            }
        }
    }

    /// Undoes [`Binder::plug`]; the veth stays (the caller deletes it). Unplugging what is not
    /// plugged is fine.
    ///
    /// An `ovs` port is looked up in OVS by its Neutron port id, whatever bridge it is on, and
    /// the hybrid links are removed if they exist whether or not vif_details still say
    /// hybrid, so a binding that changed since the plug leaves nothing behind.
    ///
    /// # Errors
    ///
    /// Every step is tried; the failures are returned together.
    pub async fn unplug(&self, req: &UnplugRequest) -> Result<(), Error> {
        let binding = VifBinding::from_port(&req.vif_type, &req.vif_details);
        validate(&binding, &req.host_ifname, &req.port_id, &req.mac)?;
        match &binding {
            // The binding may have changed since the plug (an agent died): an OVS port
            // kuryr made for this Neutron port still goes.
            VifBinding::Unusable(_) | VifBinding::Tap if self.ovsdb.path().exists() => {
                self.ovsdb.del_ports_of(&req.port_id).await.map(|_| ())
            }
            VifBinding::Unusable(_) | VifBinding::Tap => Ok(()),
            VifBinding::Ovs { .. } => {
                hybrid::unplug(&self.netlink, &self.ovsdb, &req.port_id, &req.host_ifname).await
            }
            VifBinding::LinuxBridge { .. } => {
                self.netlink.unplug_linux_bridge(&req.host_ifname).await
            }
            VifBinding::Script(vif_type) => {
                let mac = format_mac(&req.mac);
                let args = ScriptArgs {
                    port_id: &req.port_id,
                    host_ifname: &req.host_ifname,
                    endpoint_id: &req.endpoint_id,
                    mac: &mac,
                    network_id: &req.network_id,
                    project_id: "",
                    vif_details: &req.vif_details,
                };
                self.scripts().unbind(vif_type, &args).await
            }
        }
    }

    fn scripts(&self) -> Scripts {
        Scripts {
            bindir: self.bindir.clone(),
            timeout: self.script_timeout,
        }
    }
}

fn ovs_port<'a>(req: &'a PlugRequest, bridge: &'a str) -> OvsPort<'a> {
    OvsPort {
        bridge,
        name: &req.host_ifname,
        iface_id: &req.port_id,
        mac: req.mac,
        vm_uuid: &req.endpoint_id,
    }
}

/// Refuses, before anything changes, names the kernel or OVS would refuse or misread.
fn validate(
    binding: &VifBinding,
    host_ifname: &str,
    port_id: &str,
    mac: &[u8; 6],
) -> Result<(), Error> {
    validate_ifname(host_ifname)?;
    if mac[0] & 1 == 1 || *mac == [0; 6] {
        return Err(Error::InvalidRequest {
            target: host_ifname.to_owned(),
            reason: format!("MAC {} is not a unicast address", format_mac(mac)),
        });
    }
    match binding {
        VifBinding::Ovs {
            bridge,
            hybrid,
            userspace,
        } => {
            // An OVS bridge has a local port of its own name: a link name's rules apply.
            validate_ifname(bridge)?;
            if *userspace {
                validate_ifname(&veth_names(port_id).container)?;
            }
            if *hybrid {
                let names = hybrid_names(port_id);
                for name in [&names.bridge, &names.bridge_end, &names.ovs_end] {
                    validate_ifname(name)?;
                }
            }
        }
        VifBinding::LinuxBridge {
            bridge: Some(bridge),
        } => validate_ifname(bridge)?,
        VifBinding::Script(vif_type) => validate_vif_type(vif_type)?,
        VifBinding::LinuxBridge { bridge: None } | VifBinding::Tap | VifBinding::Unusable(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_port() {
        let none = json!({});
        assert_eq!(
            VifBinding::from_port("ovs", &none),
            VifBinding::Ovs {
                bridge: "br-int".into(),
                hybrid: false,
                userspace: false,
            }
        );
        assert_eq!(
            VifBinding::from_port(
                "ovs",
                &json!({"bridge_name": "br-x", "ovs_hybrid_plug": true, "port_filter": true})
            ),
            VifBinding::Ovs {
                bridge: "br-x".into(),
                hybrid: true,
                userspace: false,
            }
        );
        // Only a JSON true means hybrid.
        assert_eq!(
            VifBinding::from_port("ovs", &json!({"ovs_hybrid_plug": "True"})),
            VifBinding::Ovs {
                bridge: "br-int".into(),
                hybrid: false,
                userspace: false,
            }
        );
        // Neutron's OVS driver puts the agent's datapath_type in vif_details.
        assert_eq!(
            VifBinding::from_port(
                "ovs",
                &json!({"datapath_type": "netdev", "ovs_hybrid_plug": true})
            ),
            VifBinding::Ovs {
                bridge: "br-int".into(),
                hybrid: true,
                userspace: true,
            }
        );
        for kernel in [
            json!({"datapath_type": "system"}),
            json!({"datapath_type": 1}),
        ] {
            assert_eq!(
                VifBinding::from_port("ovs", &kernel),
                VifBinding::Ovs {
                    bridge: "br-int".into(),
                    hybrid: false,
                    userspace: false,
                }
            );
        }
        assert_eq!(
            VifBinding::from_port("bridge", &none),
            VifBinding::LinuxBridge { bridge: None }
        );
        assert_eq!(
            VifBinding::from_port("bridge", &json!({"bridge_name": "br-phys"})),
            VifBinding::LinuxBridge {
                bridge: Some("br-phys".into())
            }
        );
        assert_eq!(VifBinding::from_port("tap", &none), VifBinding::Tap);
        for unusable in ["", "unbound", "binding_failed"] {
            assert_eq!(
                VifBinding::from_port(unusable, &none),
                VifBinding::Unusable(unusable.into())
            );
        }
        assert_eq!(
            VifBinding::from_port("midonet", &Value::Null),
            VifBinding::Script("midonet".into())
        );
    }

    #[test]
    fn unbound_error_says_what_to_check() {
        let err = Error::Unbound {
            port_id: "p1".into(),
            host: "node1".into(),
            vif_type: "binding_failed".into(),
        };
        assert_eq!(
            err.to_string(),
            "Neutron could not bind port p1 to host node1 (binding:vif_type \"binding_failed\"): \
             no Neutron L2 agent for host node1 is alive, or none serves this network; check \
             `openstack network agent list --host node1`"
        );
    }

    #[test]
    fn validation() {
        let mac = [0xfa, 0x16, 0x3e, 0, 0, 1];
        let ovs = VifBinding::Ovs {
            bridge: "br-int".into(),
            hybrid: true,
            userspace: true,
        };
        assert!(validate(&ovs, "tapx", "port", &mac).is_ok());
        assert!(validate(&ovs, "tap/x", "port", &mac).is_err());
        assert!(validate(&ovs, "tapx", "port", &[1, 0, 0, 0, 0, 0]).is_err());
        let bad_bridge = VifBinding::Ovs {
            bridge: "br int".into(),
            hybrid: false,
            userspace: false,
        };
        assert!(validate(&bad_bridge, "tapx", "port", &mac).is_err());
        // On the userspace datapath the container end is touched: its name is checked too.
        let userspace = VifBinding::Ovs {
            bridge: "br-int".into(),
            hybrid: false,
            userspace: true,
        };
        let err = validate(&userspace, "tapx", "p/rt", &mac).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { ref name, .. } if name == "t_cp/rt"),
            "{err}"
        );
        let err = validate(&VifBinding::Script("../x".into()), "tapx", "p", &mac).unwrap_err();
        assert!(matches!(err, Error::InvalidVifType { .. }), "{err}");
    }
}
