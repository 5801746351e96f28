//! The rtnetlink connection and the link operations every binding needs: read a link, change
//! it, delete it. Kernel answers are turned into [`Error`]s that name the link.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoData, InfoVlan, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec};
use tokio::task::JoinHandle;

use crate::error::{errno_of, ENODEV};
use crate::{validate_ifname, Error, Op};

/// What a link looks like now, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`veth`, `dummy`, `bridge`, ...); `None` for links without one
    /// (loopback, physical NICs).
    pub kind: Option<String>,
    /// Hardware address, if it is a 6-byte (Ethernet) one.
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`); the carrier may still be down.
    pub up: bool,
    /// For a veth, the other end's index. It is an index in *this* namespace only when
    /// `peer_netns_id` is `None`.
    pub peer_index: Option<u32>,
    /// For a veth whose other end is in another namespace (e.g. moved into a container), that
    /// namespace's id as seen from here.
    pub peer_netns_id: Option<i32>,
    /// Index of the bridge (or bond) this link is attached to (`IFLA_MASTER`), if any.
    pub master: Option<u32>,
    /// For a link stacked on another (VLAN, macvlan, ipvlan), the index of that lower link
    /// (`IFLA_LINK`); `None` when the lower link is in another namespace.
    pub lower_index: Option<u32>,
    /// For a VLAN link, its VLAN id.
    pub vlan_id: Option<u16>,
    /// `IFLA_IFALIAS` (`ip link set NAME alias TEXT`), if set.
    pub alias: Option<String>,
}

impl LinkInfo {
    pub fn is_veth(&self) -> bool {
        self.kind.as_deref() == Some("veth")
    }

    fn from_message(msg: &LinkMessage) -> Self {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            peer_index: None,
            peer_netns_id: None,
            master: None,
            lower_index: None,
            vlan_id: None,
            alias: None,
        };
        let mut link = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => info.name.clone_from(name),
                LinkAttribute::Address(addr) => info.mac = <[u8; 6]>::try_from(&addr[..]).ok(),
                LinkAttribute::Mtu(mtu) => info.mtu = Some(*mtu),
                LinkAttribute::IfAlias(alias) if !alias.is_empty() => {
                    info.alias = Some(alias.clone())
                }
                LinkAttribute::Link(index) => link = Some(*index),
                LinkAttribute::LinkNetNsId(id) => info.peer_netns_id = Some(*id),
                LinkAttribute::Controller(index) => info.master = Some(*index).filter(|i| *i != 0),
                LinkAttribute::LinkInfo(infos) => {
                    info.kind = infos.iter().find_map(|i| match i {
                        NlLinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    });
                    info.vlan_id = infos.iter().find_map(|i| match i {
                        NlLinkInfo::Data(InfoData::Vlan(data)) => {
                            data.iter().find_map(|d| match d {
                                InfoVlan::Id(id) => Some(*id),
                                _ => None,
                            })
                        }
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        // IFLA_LINK means "peer" for a veth, the lower device for a VLAN or macvlan; with
        // IFLA_LINK_NETNSID it is an index in another namespace.
        if info.is_veth() {
            info.peer_index = link;
        } else {
            info.lower_index = link.filter(|_| info.peer_netns_id.is_none());
            info.peer_netns_id = None;
        }
        info
    }
}

/// A netlink (rtnetlink) connection to the kernel of the current network namespace.
///
/// The connection runs as a task on the tokio runtime that [`Netlink::connect`] was called on;
/// dropping the `Netlink` stops it.
#[derive(Debug)]
pub struct Netlink {
    pub(crate) handle: Handle,
    task: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// Opens the netlink socket and spawns its connection task on the current tokio runtime.
    pub async fn connect() -> Result<Netlink, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        let task = runtime.spawn(connection);
        Ok(Netlink { handle, task })
    }

    /// The link named `name`, or `None` if there is none.
    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>, Error> {
        validate_ifname(name)?;
        let request = self.handle.link().get().match_name(name);
        first_link(request.execute(), name).await
    }

    /// The link with index `index`, or `None` if there is none.
    pub(crate) async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, Error> {
        let request = self.handle.link().get().match_index(index);
        first_link(request.execute(), &format!("#{index}")).await
    }

    /// Deletes the link named `name` (for a veth, deleting one end removes the pair).
    /// `Ok(false)` if there was no such link.
    pub async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        validate_ifname(name)?;
        // By name in one request: no window between looking the index up and deleting.
        let message = LinkUnspec::new_with_name(name).build();
        match self.handle.link().del_with_message(message).execute().await {
            Ok(()) => {
                tracing::debug!(link = name, "deleted link");
                Ok(true)
            }
            Err(e) if errno_of(&e) == Some(ENODEV) => Ok(false),
            Err(e) => Err(Error::netlink(Op::Delete, name, e)),
        }
    }

    /// Brings the link up: `ip link set NAME up`.
    pub async fn set_up(&self, name: &str) -> Result<(), Error> {
        let link = self.existing_link(name).await?;
        if link.up {
            return Ok(());
        }
        let message = LinkUnspec::new_with_index(link.index).up().build();
        self.change(name, message).await
    }

    /// Sets the link's MTU: `ip link set NAME mtu MTU`.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), Error> {
        let link = self.existing_link(name).await?;
        if link.mtu == Some(mtu) {
            return Ok(());
        }
        let message = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.change(name, message).await
    }

    /// Sets the link's alias (`ip link set NAME alias TEXT`); an empty one removes it. By
    /// name in one request, so a missing link is `ENODEV` and nothing else is read.
    pub async fn set_alias(&self, name: &str, alias: &str) -> Result<(), Error> {
        validate_ifname(name)?;
        let mut message = LinkUnspec::new_with_name(name).build();
        message
            .attributes
            .push(LinkAttribute::IfAlias(alias.to_owned()));
        self.change(name, message).await
    }

    /// The link named `name`; its absence is an error (`ENODEV`, "the link disappeared").
    pub(crate) async fn existing_link(&self, name: &str) -> Result<LinkInfo, Error> {
        self.link(name).await?.ok_or_else(|| Error::Kernel {
            op: Op::Read,
            target: name.to_owned(),
            errno: ENODEV,
        })
    }

    /// Applies `message` (built with [`LinkUnspec::new_with_index`]) to an existing link:
    /// `ip link set`.
    pub(crate) async fn change(&self, name: &str, message: LinkMessage) -> Result<(), Error> {
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Op::Configure, name, e))
    }
}

/// The one link a by-name or by-index `RTM_GETLINK` answers; `ENODEV` means there is none.
async fn first_link(
    answers: impl futures::Stream<Item = Result<LinkMessage, rtnetlink::Error>>,
    target: &str,
) -> Result<Option<LinkInfo>, Error> {
    let mut answers = std::pin::pin!(answers);
    match answers.try_next().await {
        Ok(found) => Ok(found.as_ref().map(LinkInfo::from_message)),
        Err(e) if errno_of(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(Op::Read, target, e)),
    }
}
