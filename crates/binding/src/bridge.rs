//! Linux bridges and bridge ports through netlink, the equivalents of
//!
//! ```text
//! ip link add NAME type bridge forward_delay 0 stp_state 0 && ip link set NAME up
//! ip link set DEV master NAME
//! ip link set DEV nomaster
//! ```
//!
//! (upstream's scripts use `brctl` and sysfs for the same).

use rtnetlink::packet_route::link::BridgeStpState;
use rtnetlink::{LinkBridge, LinkUnspec};

use crate::error::EEXIST;
use crate::{validate_ifname, Error, LinkInfo, Netlink, Op};

impl Netlink {
    /// Makes the Linux bridge `name` exist and be up. A new bridge gets forward delay 0 and
    /// STP off, so that a port forwards as soon as it is attached (a container must not wait
    /// 15 s of STP learning for its first packet). An existing bridge's settings are left as
    /// they are (it may be an agent's), it is only brought up.
    ///
    /// Returns whether this call created it.
    ///
    /// # Errors
    ///
    /// [`Error::NotBridge`] if `name` is a link of another kind; kernel errors otherwise.
    pub async fn ensure_bridge(&self, name: &str) -> Result<bool, Error> {
        validate_ifname(name)?;
        if let Some(link) = self.link(name).await? {
            self.bring_up_bridge(name, &link).await?;
            return Ok(false);
        }
        let message = LinkBridge::new(name)
            .stp_state(BridgeStpState::Disabled)
            .forward_delay(0)
            .build();
        match self.handle.link().add(message).execute().await {
            Ok(()) => {
                tracing::info!(bridge = name, "created Linux bridge");
                Ok(true)
            }
            // Another plug on the same network made it between our look and our create.
            Err(e) if crate::error::errno_of(&e) == Some(EEXIST) => {
                let link = self.existing_link(name).await?;
                self.bring_up_bridge(name, &link).await?;
                Ok(false)
            }
            Err(e) => Err(Error::netlink(Op::CreateBridge, name, e)),
        }
    }

    async fn bring_up_bridge(&self, name: &str, link: &LinkInfo) -> Result<(), Error> {
        if link.kind.as_deref() != Some("bridge") {
            return Err(Error::NotBridge {
                name: name.to_owned(),
                kind: link.kind.clone(),
            });
        }
        if !link.up {
            let message = LinkUnspec::new_with_index(link.index).up().build();
            self.change(name, message).await?;
        }
        Ok(())
    }

    /// Attaches link `name` to bridge `master` (no change if it already is).
    ///
    /// # Errors
    ///
    /// Either link missing, `master` not a bridge, or the kernel refusing.
    pub async fn set_master(&self, name: &str, master: &str) -> Result<(), Error> {
        let link = self.existing_link(name).await?;
        let bridge = self.existing_link(master).await?;
        if bridge.kind.as_deref() != Some("bridge") {
            return Err(Error::NotBridge {
                name: master.to_owned(),
                kind: bridge.kind,
            });
        }
        if link.master == Some(bridge.index) {
            return Ok(());
        }
        let message = LinkUnspec::new_with_index(link.index)
            .controller(bridge.index)
            .build();
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(|e| Error::netlink(Op::SetMaster, format!("{name} to {master}"), e))?;
        tracing::debug!(link = name, bridge = master, "attached to bridge");
        Ok(())
    }

    /// Detaches link `name` from whatever bridge it is attached to. `Ok(false)` if there is no
    /// such link; a link that is attached to nothing is left as it is.
    pub async fn set_nomaster(&self, name: &str) -> Result<bool, Error> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        if link.master.is_none() {
            return Ok(true);
        }
        let message = LinkUnspec::new_with_index(link.index)
            .nocontroller()
            .build();
        match self.handle.link().change(message).execute().await {
            Ok(()) => {
                tracing::debug!(link = name, "detached from bridge");
                Ok(true)
            }
            Err(e) if crate::error::errno_of(&e) == Some(crate::error::ENODEV) => Ok(false),
            Err(e) => Err(Error::netlink(Op::SetMaster, name, e)),
        }
    }
}
