//! The ovs_hybrid_plug arrangement (vif_type `ovs` with `ovs_hybrid_plug: true`, used with
//! Neutron's iptables firewall, which can only filter on a Linux bridge): upstream's `ovs`
//! script does
//!
//! ```text
//! brctl addbr qbrX; brctl setfd qbrX 0; brctl stp qbrX off; ip link set qbrX up
//! brctl addif qbrX TAP
//! ip link add qvbX type veth peer name qvoX   (MTU of the tap, both up)
//! brctl addif qbrX qvbX
//! ovs-vsctl --may-exist add-port BRIDGE qvoX -- set Interface qvoX external_ids:...
//! ```
//!
//! where X is the port id's first 11 characters. Unplug undoes all of it; the tap is the
//! caller's.

use crate::ovs::OvsPort;
use crate::{hybrid_names, Error, HybridNames, Netlink, Ovsdb, VethNames};

/// What to plug: the tap, and what [`OvsPort`] needs for `qvo` (whose `name` is ignored).
#[derive(Debug, Clone, Copy)]
pub struct HybridPlug<'a> {
    pub tap: &'a str,
    /// Used when the tap reports no MTU.
    pub mtu: u32,
    pub ovs: OvsPort<'a>,
}

/// What a plug made, to undo exactly that if a later step fails.
#[derive(Default)]
struct Made {
    bridge: bool,
    tap_attached: bool,
    pair: bool,
}

/// Plugs `plug.tap` into OVS through `qbr`/`qvb`/`qvo` named from `plug.ovs.iface_id`.
///
/// Idempotent: what exists already is checked and completed. If a step fails, what this call
/// made is removed again (the tap is only detached, never deleted).
///
/// # Errors
///
/// [`Error::MissingLink`] without the tap; netlink and OVS errors of the steps.
pub async fn plug(netlink: &Netlink, ovsdb: &Ovsdb, plug: &HybridPlug<'_>) -> Result<(), Error> {
    let names = hybrid_names(plug.ovs.iface_id);
    let mut made = Made::default();
    let result = plug_steps(netlink, ovsdb, plug, &names, &mut made).await;
    if let Err(e) = result {
        roll_back(netlink, plug.tap, &names, &made).await;
        return Err(e);
    }
    tracing::info!(tap = plug.tap, bridge = %names.bridge, ovs = %names.ovs_end, "hybrid plug done");
    Ok(())
}

async fn plug_steps(
    netlink: &Netlink,
    ovsdb: &Ovsdb,
    plug: &HybridPlug<'_>,
    names: &HybridNames,
    made: &mut Made,
) -> Result<(), Error> {
    let Some(tap) = netlink.link(plug.tap).await? else {
        return Err(Error::MissingLink {
            name: plug.tap.to_owned(),
            reason: "the container's veth must exist before it is plugged",
        });
    };
    // Checked first, so that a plug bound to fail makes (and removes) no links; the OVS step
    // checks again in its transaction.
    if !ovsdb.bridge_exists(plug.ovs.bridge).await? {
        return Err(Error::OvsBridgeMissing {
            bridge: plug.ovs.bridge.to_owned(),
        });
    }
    let mtu = tap.mtu.unwrap_or(plug.mtu);
    made.bridge = netlink.ensure_bridge(&names.bridge).await?;
    let bridge = netlink.existing_link(&names.bridge).await?;
    if tap.master != Some(bridge.index) {
        netlink.set_master(plug.tap, &names.bridge).await?;
        made.tap_attached = true;
    }
    made.pair = netlink.ensure_veth_pair(&pair(names), mtu).await?;
    netlink.set_master(&names.bridge_end, &names.bridge).await?;
    ovsdb
        .add_port(&OvsPort {
            name: &names.ovs_end,
            ..plug.ovs
        })
        .await?;
    Ok(())
}

/// The veth joining the Linux bridge to OVS, as [`VethNames`] (`host` is the bridge's end).
fn pair(names: &HybridNames) -> VethNames {
    VethNames {
        host: names.bridge_end.clone(),
        container: names.ovs_end.clone(),
    }
}

/// Undoes what a failed plug made, logging (not returning) failures: the caller reports the
/// error that caused the rollback. The OVS port is not here: [`Ovsdb::add_port`] removes a
/// port it created when it fails, and it is the last step.
async fn roll_back(netlink: &Netlink, tap: &str, names: &HybridNames, made: &Made) {
    let mut failed = Vec::new();
    if made.pair {
        if let Err(e) = netlink.delete_link(&names.bridge_end).await {
            failed.push(e);
        }
    }
    if made.tap_attached {
        if let Err(e) = netlink.set_nomaster(tap).await {
            failed.push(e);
        }
    }
    if made.bridge {
        if let Err(e) = netlink.delete_link(&names.bridge).await {
            failed.push(e);
        }
    }
    for e in failed {
        tracing::warn!(tap, error = %e, "could not undo part of a failed hybrid plug: remove it by hand");
    }
}

/// Removes port `port_id`'s hybrid arrangement: the OVS port of `qvo`, the `qvb`/`qvo` pair,
/// `qbr`; detaches `tap` (which stays). Whatever is already gone is skipped; every step is
/// tried even if one fails, and all failures are returned.
pub async fn unplug(
    netlink: &Netlink,
    ovsdb: &Ovsdb,
    port_id: &str,
    tap: &str,
) -> Result<(), Error> {
    let names = hybrid_names(port_id);
    let mut failed = Vec::new();
    if let Err(e) = ovsdb.del_ports_of(port_id).await {
        failed.push(e);
    }
    if let Err(e) = remove_links(netlink, tap, &names).await {
        failed.push(e);
    }
    Error::from_list(failed).map_or(Ok(()), Err)
}

/// The Linux side of [`unplug`]: only links that are what kuryr makes are deleted.
pub(crate) async fn remove_links(
    netlink: &Netlink,
    tap: &str,
    names: &HybridNames,
) -> Result<(), Error> {
    let mut failed = Vec::new();
    match netlink.link(&names.bridge_end).await {
        Ok(Some(link)) if link.is_veth() => {
            if let Err(e) = netlink.delete_link(&names.bridge_end).await {
                failed.push(e);
            }
        }
        Ok(_) => {}
        Err(e) => failed.push(e),
    }
    let bridge = match netlink.link(&names.bridge).await {
        Ok(link) => link.filter(|l| l.kind.as_deref() == Some("bridge")),
        Err(e) => {
            failed.push(e);
            None
        }
    };
    if let Some(bridge) = bridge {
        // Detach the tap first, so that it is left as an ordinary link, then delete qbr.
        match netlink.link(tap).await {
            Ok(Some(link)) if link.master == Some(bridge.index) => {
                if let Err(e) = netlink.set_nomaster(tap).await {
                    failed.push(e);
                }
            }
            Ok(_) => {}
            Err(e) => failed.push(e),
        }
        if let Err(e) = netlink.delete_link(&names.bridge).await {
            failed.push(e);
        }
    }
    Error::from_list(failed).map_or(Ok(()), Err)
}
