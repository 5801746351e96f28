//! The host side of a container's network interface, done through netlink (never by running
//! `ip`).
//!
//! kuryr answers Docker's `Join` with the name of an interface that Docker then moves into the
//! container's network namespace. This crate makes that interface: a veth pair whose
//! container end carries the Neutron port's MAC and whose host end stays in the host
//! namespace, to be plugged into the Neutron agent's bridge. The names are the ones upstream
//! kuryr-lib derives from the port id, so pairs made by the Python driver are recognised.
//!
//! Layout: [`names`] derives and validates interface names, [`netlink`] owns the netlink
//! connection and reads and deletes links, [`veth`] creates the pair. The binding drivers
//! (OVS, Linux bridge, ...) that plug the host end in will live here too, each in its own
//! module next to [`veth`].
//!
//! ```
//! let names = kuryr_binding::veth_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
//! assert_eq!(names.host, "tap9a7c1f0e-3b");
//! assert_eq!(names.container, "t_c9a7c1f0e-3b");
//! ```

pub mod error;
pub mod names;
pub mod netlink;
pub mod veth;

pub use error::{Error, Op};
pub use names::{validate_ifname, veth_names, VethNames, IFNAME_MAX};
pub use netlink::{LinkInfo, Netlink};
pub use veth::VethSpec;
