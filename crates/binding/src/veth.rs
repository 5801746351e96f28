//! The veth pair of a port: the host end stays here (to be plugged into the agent's bridge),
//! the container end, carrying the Neutron port's MAC, is handed to Docker, which moves it into
//! the container's namespace.

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkUnspec, LinkVeth};

use crate::error::{EEXIST, ENODEV};
use crate::{validate_ifname, Error, LinkInfo, Netlink, Op, VethNames};

/// Smallest and largest MTU a veth takes (`ETH_MIN_MTU`, `ETH_MAX_MTU`).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// What the pair must look like.
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    pub names: &'a VethNames,
    /// The Neutron port's MAC, for the container end.
    pub mac: [u8; 6],
    /// The network's MTU, for both ends.
    pub mtu: u32,
}

/// What the host end's name holds now.
enum Existing {
    Absent,
    /// Our pair, both ends here (boxed: far larger than `Absent`).
    Ours {
        host: Box<LinkInfo>,
        container: Box<LinkInfo>,
    },
}

impl Netlink {
    /// Makes the pair exist as `spec` says: container end with the MAC, both ends with the MTU,
    /// host end up (the container end stays down: Docker brings it up in the container).
    ///
    /// Idempotent: an existing pair (host end a veth whose peer here is the container end) is
    /// fixed up, not recreated. A host-end name held by anything else is an error and is left
    /// alone. If the pair cannot be finished after being created, it is deleted again.
    pub async fn ensure_veth(&self, spec: &VethSpec<'_>) -> Result<(), Error> {
        validate(spec)?;
        let mut raced = false;
        loop {
            match self.existing(spec.names).await? {
                Existing::Ours { host, container } => {
                    return self.fix(spec, &host, &container).await;
                }
                Existing::Absent => match self.create(spec).await {
                    Ok(()) => return self.finish_created(spec).await,
                    // Someone made one of the names between our look and our create: look
                    // again, once.
                    Err(e) if e.errno() == Some(EEXIST) && !raced => raced = true,
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// Makes a veth pair that joins two bridges (hybrid plug's `qvb`/`qvo`): both ends with
    /// `mtu` and up, addresses left to the kernel. Returns whether this call created it.
    ///
    /// Idempotent as [`Netlink::ensure_veth`]: an existing pair is fixed up, a name held by
    /// anything else is an error.
    pub async fn ensure_veth_pair(&self, names: &VethNames, mtu: u32) -> Result<bool, Error> {
        validate_ifname(&names.host)?;
        validate_ifname(&names.container)?;
        validate_mtu(names, mtu)?;
        let mut raced = false;
        loop {
            match self.existing(names).await? {
                Existing::Ours { host, container } => {
                    for end in [&host, &container] {
                        if end.mtu != Some(mtu) || !end.up {
                            let message =
                                LinkUnspec::new_with_index(end.index).mtu(mtu).up().build();
                            self.change(&end.name, message).await?;
                        }
                    }
                    return Ok(false);
                }
                Existing::Absent => {
                    let peer = LinkUnspec::new_with_name(&names.container).mtu(mtu).build();
                    let message = LinkVeth::new(&names.host, &names.container)
                        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                        .mtu(mtu)
                        .up()
                        .build();
                    match self.handle.link().add(message).execute().await {
                        Ok(()) => {
                            tracing::info!(a = %names.host, b = %names.container, "created veth pair");
                            // The kernel refuses IFF_UP in the peer part of RTM_NEWLINK
                            // (ENOTCONN): bring that end up now, and delete the pair if that
                            // fails, so that no half-made pair stays.
                            if let Err(e) = self.set_up(&names.container).await {
                                self.roll_back(names, None).await;
                                return Err(e);
                            }
                            return Ok(true);
                        }
                        Err(e) if crate::error::errno_of(&e) == Some(EEXIST) && !raced => {
                            raced = true;
                        }
                        Err(e) => {
                            return Err(Error::netlink(Op::CreateVeth, pair_target(names), e))
                        }
                    }
                }
            }
        }
    }

    /// Reads what the names hold and decides whether it is our pair.
    async fn existing(&self, names: &VethNames) -> Result<Existing, Error> {
        let Some(host) = self.link(&names.host).await? else {
            if self.link(&names.container).await?.is_some() {
                return Err(Error::ContainerNameTaken {
                    name: names.container.clone(),
                    host: names.host.clone(),
                });
            }
            return Ok(Existing::Absent);
        };
        if !host.is_veth() {
            return Err(Error::NotVeth {
                name: names.host.clone(),
                kind: host.kind,
            });
        }
        let wrong_peer = |found: String| Error::WrongPeer {
            host: names.host.clone(),
            expected: names.container.clone(),
            found,
        };
        if host.peer_netns_id.is_some() {
            return Err(wrong_peer("is in another network namespace".into()));
        }
        let Some(peer_index) = host.peer_index else {
            return Err(wrong_peer("is not reported by the kernel".into()));
        };
        let Some(container) = self.link_by_index(peer_index).await? else {
            return Err(wrong_peer(format!("(index {peer_index}) is not visible")));
        };
        if container.name != names.container {
            return Err(wrong_peer(format!("is named {}", container.name)));
        }
        Ok(Existing::Ours {
            host: Box::new(host),
            container: Box::new(container),
        })
    }

    /// One `RTM_NEWLINK` for the whole pair. The container end's MAC and MTU go into the peer
    /// part of the request rather than being set afterwards: the kernel then records the MAC
    /// as set by userspace (`addr_assign_type` 3), so udev's `MACAddressPolicy=persistent`
    /// leaves it alone, and a pair never exists with a random MAC.
    async fn create(&self, spec: &VethSpec<'_>) -> Result<(), Error> {
        let names = spec.names;
        let peer = LinkUnspec::new_with_name(&names.container)
            .address(spec.mac.to_vec())
            .mtu(spec.mtu)
            .build();
        let message = LinkVeth::new(&names.host, &names.container)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .mtu(spec.mtu)
            .up()
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Op::CreateVeth, pair_target(names), e))?;
        tracing::info!(host = %names.host, container = %names.container, "created veth pair");
        Ok(())
    }

    /// Checks (and fixes) the pair just created; deletes it if that fails.
    async fn finish_created(&self, spec: &VethSpec<'_>) -> Result<(), Error> {
        let names = spec.names;
        let (error, created) = match self.existing(names).await {
            Ok(Existing::Ours { host, container }) => {
                match self.fix(spec, &host, &container).await {
                    Ok(()) => return Ok(()),
                    Err(e) => (e, Some(host.index)),
                }
            }
            // Deleted by someone else right away: nothing of ours is left.
            Ok(Existing::Absent) => {
                return Err(Error::Kernel {
                    op: Op::Read,
                    target: names.host.clone(),
                    errno: ENODEV,
                });
            }
            // The name holds something else now: not ours to delete.
            Err(e @ (Error::NotVeth { .. } | Error::WrongPeer { .. })) => return Err(e),
            Err(e) => (e, None),
        };
        self.roll_back(names, created).await;
        Err(error)
    }

    /// Deletes the pair we created (by index when known, so nothing else is hit), logging
    /// rather than returning a failure: the caller reports the error that caused the rollback.
    async fn roll_back(&self, names: &VethNames, index: Option<u32>) {
        let deleted = match index {
            Some(index) => self
                .handle
                .link()
                .del(index)
                .execute()
                .await
                .map_err(|e| Error::netlink(Op::Delete, names.host.as_str(), e)),
            None => self.delete_link(&names.host).await.map(|_| ()),
        };
        match deleted {
            Ok(()) => tracing::info!(host = %names.host, "deleted half-made veth pair"),
            Err(e) => tracing::warn!(
                host = %names.host,
                error = %e,
                "could not delete half-made veth pair: delete it by hand"
            ),
        }
    }

    /// Brings an existing pair to `spec`, sending only the changes that are needed.
    async fn fix(
        &self,
        spec: &VethSpec<'_>,
        host: &LinkInfo,
        container: &LinkInfo,
    ) -> Result<(), Error> {
        let names = spec.names;
        let mut changed = false;
        if container.mac != Some(spec.mac) || container.mtu != Some(spec.mtu) {
            let message = LinkUnspec::new_with_index(container.index)
                .address(spec.mac.to_vec())
                .mtu(spec.mtu)
                .build();
            self.change(&names.container, message).await?;
            changed = true;
        }
        if host.mtu != Some(spec.mtu) || !host.up {
            let message = LinkUnspec::new_with_index(host.index)
                .mtu(spec.mtu)
                .up()
                .build();
            self.change(&names.host, message).await?;
            changed = true;
        }
        if changed {
            tracing::info!(host = %names.host, container = %names.container, "fixed veth pair");
        } else {
            tracing::debug!(host = %names.host, container = %names.container, "veth pair is fine");
        }
        Ok(())
    }
}

/// Refuses, before anything is sent, what the kernel would refuse with a bare `EINVAL`.
fn validate(spec: &VethSpec<'_>) -> Result<(), Error> {
    let names = spec.names;
    validate_ifname(&names.host)?;
    validate_ifname(&names.container)?;
    let invalid = |reason: String| Error::InvalidRequest {
        target: pair_target(names),
        reason,
    };
    if names.host == names.container {
        return Err(invalid("both ends have the same name".into()));
    }
    validate_mtu(names, spec.mtu)?;
    if spec.mac[0] & 1 == 1 || spec.mac == [0; 6] {
        return Err(invalid(format!(
            "MAC {} is not a unicast address",
            format_mac(&spec.mac)
        )));
    }
    Ok(())
}

/// Refuses an MTU the kernel would refuse for a veth.
pub(crate) fn validate_mtu(names: &VethNames, mtu: u32) -> Result<(), Error> {
    if MTU_RANGE.contains(&mtu) {
        return Ok(());
    }
    Err(Error::InvalidRequest {
        target: pair_target(names),
        reason: format!(
            "MTU {mtu} is outside a veth's {}..={}",
            MTU_RANGE.start(),
            MTU_RANGE.end()
        ),
    })
}

fn pair_target(names: &VethNames) -> String {
    format!("{}/{}", names.host, names.container)
}

pub(crate) fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::veth_names;

    fn spec(names: &VethNames, mac: [u8; 6], mtu: u32) -> VethSpec<'_> {
        VethSpec { names, mac, mtu }
    }

    /// The driver shares one `Netlink` between request handlers on a multi-thread runtime.
    #[test]
    fn netlink_is_shareable_and_its_futures_are_send() {
        fn shareable<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        shareable::<Netlink>();
        let _type_check_only = |nl: &Netlink, spec: &VethSpec<'_>| {
            send(&nl.ensure_veth(spec));
            send(&nl.link("x"));
            send(&nl.delete_link("x"));
        };
    }

    #[test]
    fn valid_spec() {
        let names = veth_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
        assert!(validate(&spec(&names, [0xfa, 0x16, 0x3e, 1, 2, 3], 1450)).is_ok());
    }

    #[test]
    fn refuses_bad_mtu_mac_and_names() {
        let names = veth_names("9a7c1f0e-3b2d-4c5e-8f6a-1b2c3d4e5f60");
        let mac = [0xfa, 0x16, 0x3e, 1, 2, 3];
        for mtu in [0, 67, 65536] {
            let err = validate(&spec(&names, mac, mtu)).unwrap_err();
            assert!(err.to_string().contains(&format!("MTU {mtu}")), "{err}");
        }
        for mac in [[0; 6], [1, 0, 0x5e, 0, 0, 1], [0xff; 6]] {
            let err = validate(&spec(&names, mac, 1500)).unwrap_err();
            assert!(err.to_string().contains("not a unicast address"), "{err}");
        }
        let same = VethNames {
            host: "x".into(),
            container: "x".into(),
        };
        assert!(validate(&spec(&same, mac, 1500)).is_err());
        let bad = VethNames {
            host: "tap/x".into(),
            container: "t_cx".into(),
        };
        let err = validate(&spec(&bad, mac, 1500)).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    }
}
