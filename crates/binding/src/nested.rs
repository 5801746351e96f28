//! A container's link inside a VM (nested containers): a VLAN, macvlan or ipvlan link on the
//! VM's interface, the equivalents of
//!
//! ```text
//! ip link add link ETH0 name t_cX address MAC mtu MTU type vlan id ID
//! ip link add link ETH0 name t_cX address MAC mtu MTU type macvlan mode bridge
//! ip link add link ETH0 name t_cX mtu MTU type ipvlan mode l2
//! ```
//!
//! The link carries the name of a veth's container end (`t_c<port[:11]>`), so Docker moves it
//! into the container the same way; there is no host end, since the VM's vNIC carries the
//! traffic to Neutron.

use rtnetlink::packet_route::link::{IpVlanMode, MacVlanMode};
use rtnetlink::{LinkIpVlan, LinkMacVlan, LinkUnspec, LinkVlan};

use crate::error::EEXIST;
use crate::veth::format_mac;
use crate::{validate_ifname, Error, LinkInfo, Netlink, Op};

/// The largest MTU any link takes (`ETH_MAX_MTU`) and the smallest an Ethernet one takes.
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// What kind of link a nested container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedLink {
    /// An 802.1Q VLAN with this id: the container's port is a trunk subport with it.
    Vlan(u16),
    /// A macvlan in bridge mode (so containers of one VM reach each other), with its own MAC.
    Macvlan,
    /// An ipvlan in L2 mode: it has the VM interface's MAC.
    Ipvlan,
}

impl NestedLink {
    /// The kernel's `IFLA_INFO_KIND`.
    pub fn kind(self) -> &'static str {
        match self {
            NestedLink::Vlan(_) => "vlan",
            NestedLink::Macvlan => "macvlan",
            NestedLink::Ipvlan => "ipvlan",
        }
    }

    fn op(self) -> Op {
        match self {
            NestedLink::Vlan(_) => Op::CreateVlan,
            NestedLink::Macvlan => Op::CreateMacvlan,
            NestedLink::Ipvlan => Op::CreateIpvlan,
        }
    }

    /// Whether the link has a MAC of its own (ipvlan shares its parent's).
    fn own_mac(self) -> bool {
        !matches!(self, NestedLink::Ipvlan)
    }
}

/// What the link must look like.
#[derive(Debug, Clone, Copy)]
pub struct NestedSpec<'a> {
    /// `t_c<port[:11]>`.
    pub name: &'a str,
    /// The VM's interface (`[binding] link_iface`).
    pub parent: &'a str,
    pub link: NestedLink,
    /// The Neutron port's MAC (not used for ipvlan).
    pub mac: [u8; 6],
    /// The network's MTU; at most the parent's.
    pub mtu: u32,
}

impl Netlink {
    /// A VLAN link `name` on `parent` with `vlan_id`, `mac` and `mtu`; see
    /// [`Netlink::ensure_nested`].
    pub async fn ensure_vlan(
        &self,
        name: &str,
        parent: &str,
        vlan_id: u16,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<bool, Error> {
        self.ensure_nested(&NestedSpec {
            name,
            parent,
            link: NestedLink::Vlan(vlan_id),
            mac,
            mtu,
        })
        .await
    }

    /// A macvlan link (bridge mode) `name` on `parent` with `mac` and `mtu`; see
    /// [`Netlink::ensure_nested`].
    pub async fn ensure_macvlan(
        &self,
        name: &str,
        parent: &str,
        mac: [u8; 6],
        mtu: u32,
    ) -> Result<bool, Error> {
        self.ensure_nested(&NestedSpec {
            name,
            parent,
            link: NestedLink::Macvlan,
            mac,
            mtu,
        })
        .await
    }

    /// An ipvlan link (L2 mode) `name` on `parent` with `mtu`; see [`Netlink::ensure_nested`].
    pub async fn ensure_ipvlan(&self, name: &str, parent: &str, mtu: u32) -> Result<bool, Error> {
        self.ensure_nested(&NestedSpec {
            name,
            parent,
            link: NestedLink::Ipvlan,
            mac: [0; 6],
            mtu,
        })
        .await
    }

    /// Makes the link exist as `spec` says, left down (Docker brings it up in the container).
    /// Returns whether this call created it.
    ///
    /// Idempotent: a link of the same kind on the same parent (and VLAN id) gets its MAC and
    /// MTU fixed; a link of that name that is anything else is an error and is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLink`] before anything is sent (bad VLAN id, MAC, or an MTU the parent
    /// cannot carry); [`Error::MissingParent`]; [`Error::WrongLink`]; kernel errors, e.g.
    /// `EOPNOTSUPP` on a kernel without that link type.
    pub async fn ensure_nested(&self, spec: &NestedSpec<'_>) -> Result<bool, Error> {
        validate(spec)?;
        let parent = self
            .link(spec.parent)
            .await?
            .ok_or_else(|| Error::MissingParent {
                parent: spec.parent.to_owned(),
                name: spec.name.to_owned(),
            })?;
        if let Some(parent_mtu) = parent.mtu.filter(|m| spec.mtu > *m) {
            return Err(Error::InvalidLink {
                name: spec.name.to_owned(),
                reason: format!(
                    "the network's MTU {} is larger than the MTU {parent_mtu} of {}; give the \
                     VM's interface the network's MTU (Neutron's DHCP or config drive tells the VM)",
                    spec.mtu, spec.parent
                ),
            });
        }
        let mut raced = false;
        loop {
            if let Some(existing) = self.link(spec.name).await? {
                check_existing(spec, &parent, &existing)?;
                self.fix_nested(spec, &existing).await?;
                return Ok(false);
            }
            match self.create_nested(spec, parent.index).await {
                Ok(()) => return Ok(true),
                // Someone made the name between our look and our create: look again, once.
                Err(e) if e.errno() == Some(EEXIST) && !raced => raced = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes the nested link `name` if it is one of `link`'s kind; `Ok(false)` if there is
    /// no such link. A link of that name of another kind is not kuryr's and is left alone.
    pub async fn delete_nested(&self, name: &str, link: NestedLink) -> Result<bool, Error> {
        let Some(existing) = self.link(name).await? else {
            return Ok(false);
        };
        if existing.kind.as_deref() != Some(link.kind()) {
            return Err(Error::WrongLink {
                name: name.to_owned(),
                found: describe(&existing, None),
                expected: format!("a {} link", link.kind()),
            });
        }
        self.delete_link(name).await
    }

    async fn create_nested(&self, spec: &NestedSpec<'_>, parent_index: u32) -> Result<(), Error> {
        let message = match spec.link {
            NestedLink::Vlan(id) => LinkVlan::new(spec.name, parent_index, id)
                .address(spec.mac.to_vec())
                .mtu(spec.mtu)
                .build(),
            NestedLink::Macvlan => LinkMacVlan::new(spec.name, parent_index, MacVlanMode::Bridge)
                .address(spec.mac.to_vec())
                .mtu(spec.mtu)
                .build(),
            NestedLink::Ipvlan => LinkIpVlan::new(spec.name, parent_index, IpVlanMode::L2)
                .mtu(spec.mtu)
                .build(),
        };
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(spec.link.op(), spec.name, e))?;
        tracing::info!(
            link = spec.name,
            parent = spec.parent,
            kind = spec.link.kind(),
            "created nested link"
        );
        Ok(())
    }

    /// Brings an existing link to the spec's MAC and MTU, sending only what differs.
    async fn fix_nested(&self, spec: &NestedSpec<'_>, existing: &LinkInfo) -> Result<(), Error> {
        let mac_wrong = spec.link.own_mac() && existing.mac != Some(spec.mac);
        let mtu_wrong = existing.mtu != Some(spec.mtu);
        if !mac_wrong && !mtu_wrong {
            return Ok(());
        }
        let mut message = LinkUnspec::new_with_index(existing.index).mtu(spec.mtu);
        if mac_wrong {
            message = message.address(spec.mac.to_vec());
        }
        self.change(spec.name, message.build()).await?;
        tracing::info!(link = spec.name, "fixed nested link");
        Ok(())
    }
}

/// Refuses, before anything is sent, what the kernel would refuse with a bare `EINVAL`.
fn validate(spec: &NestedSpec<'_>) -> Result<(), Error> {
    validate_ifname(spec.name)?;
    validate_ifname(spec.parent)?;
    let invalid = |reason: String| Error::InvalidLink {
        name: spec.name.to_owned(),
        reason,
    };
    if spec.name == spec.parent {
        return Err(invalid("it has the name of the VM's interface".into()));
    }
    if let NestedLink::Vlan(id) = spec.link {
        if !(1..=4094).contains(&id) {
            return Err(invalid(format!("VLAN id {id} is outside 1..=4094")));
        }
    }
    if !MTU_RANGE.contains(&spec.mtu) {
        return Err(invalid(format!(
            "MTU {} is outside {}..={}",
            spec.mtu,
            MTU_RANGE.start(),
            MTU_RANGE.end()
        )));
    }
    if spec.link.own_mac() && (spec.mac[0] & 1 == 1 || spec.mac == [0; 6]) {
        return Err(invalid(format!(
            "MAC {} is not a unicast address",
            format_mac(&spec.mac)
        )));
    }
    Ok(())
}

/// Whether an existing link of the spec's name is the one the spec describes.
fn check_existing(
    spec: &NestedSpec<'_>,
    parent: &LinkInfo,
    existing: &LinkInfo,
) -> Result<(), Error> {
    let same_kind = existing.kind.as_deref() == Some(spec.link.kind());
    let same_parent = existing.lower_index == Some(parent.index);
    let same_vlan = match spec.link {
        NestedLink::Vlan(id) => existing.vlan_id == Some(id),
        _ => true,
    };
    if same_kind && same_parent && same_vlan {
        return Ok(());
    }
    let expected = match spec.link {
        NestedLink::Vlan(id) => format!("VLAN {id} on {}", spec.parent),
        other => format!("a {} link on {}", other.kind(), spec.parent),
    };
    let lower_name = (!same_parent).then_some("another link");
    Err(Error::WrongLink {
        name: spec.name.to_owned(),
        found: describe(existing, lower_name.or(Some(spec.parent))),
        expected,
    })
}

/// `a veth`, `VLAN 12 on eth0`, `a macvlan link on another link`, ...
fn describe(link: &LinkInfo, on: Option<&str>) -> String {
    let on = on.map(|p| format!(" on {p}")).unwrap_or_default();
    match (link.kind.as_deref(), link.vlan_id) {
        (Some("vlan"), Some(id)) => format!("VLAN {id}{on}"),
        (Some(kind @ ("macvlan" | "ipvlan")), _) => format!("a {kind} link{on}"),
        (Some(kind), _) => format!("a {kind}"),
        (None, _) => "a link without a kind".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 1, 2, 3];

    fn spec(link: NestedLink, mac: [u8; 6], mtu: u32) -> NestedSpec<'static> {
        NestedSpec {
            name: "t_c9a7c1f0e-3b",
            parent: "eth0",
            link,
            mac,
            mtu,
        }
    }

    #[test]
    fn valid_specs() {
        for link in [
            NestedLink::Vlan(1),
            NestedLink::Vlan(4094),
            NestedLink::Macvlan,
        ] {
            assert!(validate(&spec(link, MAC, 1450)).is_ok(), "{link:?}");
        }
        // ipvlan has its parent's MAC: none is needed.
        assert!(validate(&spec(NestedLink::Ipvlan, [0; 6], 1450)).is_ok());
    }

    #[test]
    fn refuses_what_the_kernel_would() {
        for id in [0, 4095, u16::MAX] {
            let err = validate(&spec(NestedLink::Vlan(id), MAC, 1500)).unwrap_err();
            assert!(err.to_string().contains(&format!("VLAN id {id}")), "{err}");
        }
        for mtu in [0, 67, 65536] {
            let err = validate(&spec(NestedLink::Macvlan, MAC, mtu)).unwrap_err();
            assert!(err.to_string().contains(&format!("MTU {mtu}")), "{err}");
        }
        for mac in [[0; 6], [1, 0, 0x5e, 0, 0, 1]] {
            let err = validate(&spec(NestedLink::Macvlan, mac, 1500)).unwrap_err();
            assert!(err.to_string().contains("not a unicast address"), "{err}");
        }
        let same = NestedSpec {
            parent: "t_c9a7c1f0e-3b",
            ..spec(NestedLink::Macvlan, MAC, 1500)
        };
        assert!(validate(&same).is_err());
        let bad = NestedSpec {
            parent: "eth/0",
            ..spec(NestedLink::Macvlan, MAC, 1500)
        };
        assert!(matches!(validate(&bad), Err(Error::InvalidName { .. })));
    }

    fn link(kind: &str, lower: u32, vlan: Option<u16>) -> LinkInfo {
        LinkInfo {
            index: 9,
            name: "t_c9a7c1f0e-3b".into(),
            kind: Some(kind.into()),
            mac: Some(MAC),
            mtu: Some(1450),
            up: false,
            peer_index: None,
            peer_netns_id: None,
            master: None,
            lower_index: Some(lower),
            vlan_id: vlan,
            alias: None,
        }
    }

    #[test]
    fn an_existing_link_must_match_kind_parent_and_vlan() {
        let parent = LinkInfo {
            index: 2,
            name: "eth0".into(),
            kind: None,
            ..link("x", 2, None)
        };
        let vlan7 = spec(NestedLink::Vlan(7), MAC, 1450);
        assert!(check_existing(&vlan7, &parent, &link("vlan", 2, Some(7))).is_ok());
        let err = check_existing(&vlan7, &parent, &link("vlan", 2, Some(8))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t_c9a7c1f0e-3b exists but is VLAN 8 on eth0, not VLAN 7 on eth0: remove it if no \
             container uses it (a leftover, or not kuryr's)"
        );
        let err = check_existing(&vlan7, &parent, &link("vlan", 3, Some(7))).unwrap_err();
        assert!(err.to_string().contains("VLAN 7 on another link"), "{err}");
        let mac = spec(NestedLink::Macvlan, MAC, 1450);
        assert!(check_existing(&mac, &parent, &link("macvlan", 2, None)).is_ok());
        let err = check_existing(&mac, &parent, &link("veth", 2, None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a veth, not a macvlan link on eth0"),
            "{err}"
        );
    }
}
