//! The host side of a container's network interface, done through netlink and ovsdb-server
//! (never by running `ip`, `brctl` or `ovs-vsctl`).
//!
//! kuryr answers Docker's `Join` with the name of an interface that Docker then moves into the
//! container's network namespace. This crate makes that interface: a veth pair whose
//! container end carries the Neutron port's MAC and whose host end stays in the host
//! namespace, and plugs the host end in where the Neutron agent of the host expects it, as
//! the port's `binding:vif_type` says. The names are the ones upstream kuryr-lib derives from
//! the port id, so interfaces made by the Python driver are recognised.
//!
//! Layout:
//! - [`names`] derives and validates interface names;
//! - [`netlink`] owns the netlink connection and reads, changes and deletes links; [`veth`]
//!   makes veth pairs; [`bridge`] makes Linux bridges and attaches links to them; [`nested`]
//!   makes the VLAN, macvlan or ipvlan link of a container inside a VM;
//! - [`ovsdb`] is a small OVSDB (RFC 7047) client for ovsdb-server's socket; [`ovs`] plugs an
//!   interface into an OVS bridge with it;
//! - [`offload`] turns a link's TX checksum offload off through the ethtool generic netlink
//!   family, for OVS's userspace (`netdev`) datapath;
//! - the bindings: [`ovs`], [`hybrid`] (ovs_hybrid_plug: qbr/qvb/qvo), [`linuxbridge`] and
//!   [`script`] (`<bindir>/<vif_type>` executables, as upstream);
//! - [`vif`] chooses the binding from the port ([`VifBinding`]) and is the entry point
//!   ([`Binder::plug`], [`Binder::unplug`]).
//!
//! ```
//! let names = kuryr_binding::veth_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
//! assert_eq!(names.host, "tap9a7c1f0e-3b");
//! assert_eq!(names.container, "t_c9a7c1f0e-3b");
//!
//! let binding = kuryr_binding::VifBinding::from_port(
//!     "ovs",
//!     &serde_json::json!({
//!         "ovs_hybrid_plug": true,
//!         "bridge_name": "br-int",
//!         "datapath_type": "netdev",
//!     }),
//! );
//! assert_eq!(
//!     binding,
//!     kuryr_binding::VifBinding::Ovs {
//!         bridge: "br-int".into(),
//!         hybrid: true,
//!         userspace: true,
//!     }
//! );
//! ```

pub mod bridge;
pub mod error;
pub mod hybrid;
pub mod linuxbridge;
pub mod names;
pub mod nested;
pub mod netlink;
pub mod offload;
pub mod ovs;
pub mod ovsdb;
mod pyrepr;
pub mod script;
pub mod veth;
pub mod vif;

pub use error::{Error, Op};
pub use names::{
    hybrid_names, linux_bridge_name, validate_ifname, veth_names, HybridNames, VethNames,
    IFNAME_MAX,
};
pub use nested::{NestedLink, NestedSpec};
pub use netlink::{LinkInfo, Netlink};
pub use ovs::{OvsPort, Plugged, PluggedInterface};
pub use ovsdb::{Ovsdb, OvsdbError};
pub use script::{ScriptArgs, Scripts};
pub use veth::VethSpec;
pub use vif::{Binder, PlugRequest, UnplugRequest, VifBinding};
