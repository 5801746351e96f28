//! The Neutron Linux bridge agent's binding (vif_type `bridge`): the tap goes into the
//! network's bridge, as upstream's `bridge` script does with
//!
//! ```text
//! ip link show brq<net[:11]> || { brctl addbr brq<net[:11]>; brctl setfd ... 0; brctl stp ... off; ip link set ... up; }
//! ip link set TAP master brq<net[:11]> && ip link set TAP up
//! ip link set TAP nomaster                                  # unbind
//! ```
//!
//! The bridge is per network, shared by every port of it (and the agent's VXLAN/VLAN
//! interface), so unplug never removes it; the agent does when the network leaves the host.

use crate::{linux_bridge_name, Error, Netlink};

/// The bridge a port of `network_id` goes into: the one named in `binding:vif_details`
/// (`bridge_name`, set when the agent maps the network onto an existing bridge), else
/// `brq<network_id[:11]>`.
pub fn bridge_for(network_id: &str, vif_bridge: Option<&str>) -> String {
    vif_bridge.map_or_else(|| linux_bridge_name(network_id), str::to_owned)
}

impl Netlink {
    /// Puts `tap` into `bridge` (created if missing) and brings it up.
    ///
    /// # Errors
    ///
    /// [`Error::MissingLink`] if `tap` does not exist, [`Error::NotBridge`] if `bridge` is
    /// another kind of link; kernel errors otherwise. A bridge created here stays on failure:
    /// another port of the network may already use it.
    pub async fn plug_linux_bridge(&self, tap: &str, bridge: &str) -> Result<(), Error> {
        if self.link(tap).await?.is_none() {
            return Err(Error::MissingLink {
                name: tap.to_owned(),
                reason: "the container's veth must exist before it is plugged",
            });
        }
        self.ensure_bridge(bridge).await?;
        self.set_master(tap, bridge).await?;
        self.set_up(tap).await?;
        tracing::info!(tap, bridge, "plugged into Linux bridge");
        Ok(())
    }

    /// Takes `tap` out of its bridge; a missing tap is fine. The bridge stays.
    pub async fn unplug_linux_bridge(&self, tap: &str) -> Result<(), Error> {
        self.set_nomaster(tap).await?;
        Ok(())
    }
}
