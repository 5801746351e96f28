//! Free pool ports wait plugged in. A port of a plain Open vSwitch binding gets its veth
//! pair and its place on the bridge when it enters the pool, and keeps them between
//! containers (Docker hands the container end back to the host when a container stops), so
//! the agent wires the port once, Neutron shows it ACTIVE before a container takes it, and
//! CreateEndpoint and DeleteEndpoint only relabel the host end.
//!
//! The label is the host end's alias (`ip link set tapX alias ...`), which outlives the
//! daemon: [`FREE_ALIAS`] while the port is free, `kuryr-endpoint=<endpoint id>` while a
//! container has it. A restarted daemon reads it to tell the two apart ([`HostMark`]).
//! Other bindings (hybrid plug, Linux bridge, scripts) are plugged by CreateEndpoint as
//! without pools.

use kuryr_binding::{veth_names, VifBinding};
use kuryr_libnetwork::MacAddress;
use kuryr_openstack::neutron::Port;
use serde_json::Value;
use std::sync::Arc;

use super::Pools;
use crate::error::{host_err, neutron_err, Result};

/// The alias of the host end of a free port's veth.
pub const FREE_ALIAS: &str = "kuryr-pool-port";
const ENDPOINT_ALIAS_PREFIX: &str = "kuryr-endpoint=";

/// What the host end of a pool port's veth says about who has the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMark {
    /// Waiting in the pool.
    Free,
    /// A container's endpoint has it.
    Endpoint(String),
    /// Plugged without a mark: by CreateEndpoint's usual path, so a container has it.
    Unmarked,
}

impl HostMark {
    pub fn from_alias(alias: Option<&str>) -> HostMark {
        match alias {
            Some(FREE_ALIAS) => HostMark::Free,
            Some(a) => match a.strip_prefix(ENDPOINT_ALIAS_PREFIX) {
                Some(endpoint) if !endpoint.is_empty() => HostMark::Endpoint(endpoint.to_owned()),
                _ => HostMark::Unmarked,
            },
            None => HostMark::Unmarked,
        }
    }
}

fn endpoint_alias(endpoint_id: &str) -> String {
    format!("{ENDPOINT_ALIAS_PREFIX}{endpoint_id}")
}

/// Whether free ports of this binding wait plugged in.
fn prepluggable(port: &Port) -> bool {
    let details = Value::Object(port.binding_vif_details.clone());
    matches!(
        VifBinding::from_port(&port.binding_vif_type, &details),
        VifBinding::Ovs { hybrid: false, .. }
    )
}

impl Pools {
    /// Whether the port's interface waits plugged in (CreateEndpoint then only marks it).
    pub(crate) fn is_plugged(&self, port_id: &str) -> bool {
        self.state().book.is_plugged(port_id)
    }

    /// Make a free port's interface wait plugged in, redoing whatever a container or a crash
    /// left otherwise. False when the binding is not one that waits plugged in, or the host
    /// refused: the port is then pooled as it is, and CreateEndpoint plugs it.
    pub(super) async fn ready_interface(&self, port: &Port) -> bool {
        if !prepluggable(port) {
            self.state().book.set_plugged(&port.id, false);
            return false;
        }
        let plugged = self.is_plugged(&port.id);
        if self.interface_home(port).await {
            // Free again: marked so, and (after a restart) on the bridge as before.
            let marked = self.mark_free(&port.id).await;
            let plugged = match marked {
                Ok(()) if plugged => Ok(()),
                Ok(()) => self.plug_free(port).await,
                Err(e) => Err(e),
            };
            if plugged.is_ok() {
                self.state().book.set_plugged(&port.id, true);
                return true;
            }
        }
        self.state().book.set_plugged(&port.id, false);
        self.remove_interface(&port.id).await;
        match self.plug_free(port).await {
            Ok(()) => {
                self.state().book.set_plugged(&port.id, true);
                true
            }
            Err(e) => {
                tracing::warn!(port = %port.id, "plugging a free pool port in ahead of use: {}; CreateEndpoint will plug it", e.report());
                self.remove_interface(&port.id).await;
                false
            }
        }
    }

    /// Ports entering the pool, plugged in ahead of use a batch at a time.
    pub(super) async fn ready_all(self: &Arc<Self>, ports: Vec<Port>) -> Vec<Port> {
        let mut set = tokio::task::JoinSet::new();
        for port in ports {
            let pools = self.clone();
            set.spawn(async move {
                pools.ready_interface(&port).await;
                port
            });
        }
        let mut ready = Vec::new();
        while let Some(done) = set.join_next().await {
            match done {
                Ok(port) => ready.push(port),
                // The port stays in Neutron, tagged: the next scan recovers it.
                Err(e) => tracing::warn!("plugging in a free pool port: {e}"),
            }
        }
        ready
    }

    /// Both ends of the port's veth in the host's namespace, with the port's MAC: no
    /// container has it (Docker gives the container end back when a container stops).
    async fn interface_home(&self, port: &Port) -> bool {
        let Ok(binder) = self.host_side.binder().await else {
            return false;
        };
        let names = veth_names(&port.id);
        let host = binder.netlink.link(&names.host).await.ok().flatten();
        let container = binder.netlink.link(&names.container).await.ok().flatten();
        let mac = port.mac_address.parse::<MacAddress>().ok().map(|m| m.0);
        match (host, container) {
            (Some(h), Some(c)) => {
                h.is_veth()
                    && c.peer_netns_id.is_none()
                    && c.peer_index == Some(h.index)
                    && c.mac.is_some()
                    && c.mac == mac
            }
            _ => false,
        }
    }

    async fn plug_free(&self, port: &Port) -> Result<()> {
        let binder = self.binder().await?;
        let plug = crate::host::Plug {
            endpoint_id: "",
            mtu: self.network_mtu(&port.network_id).await?,
            host: &self.host,
            alias: Some(FREE_ALIAS),
        };
        crate::host::plug_port(binder, port, &plug).await
    }

    /// Remove the interface of a port no container holds (its OVS port and veth pair). One
    /// whose container end is in another namespace is a container's and stays.
    pub(crate) async fn remove_interface(&self, port_id: &str) {
        self.state().book.set_plugged(port_id, false);
        let Ok(binder) = self.host_side.binder().await else {
            return;
        };
        let names = veth_names(port_id);
        match binder.netlink.link(&names.host).await {
            Ok(Some(link)) if link.peer_netns_id.is_some() => {
                tracing::warn!(port = %port_id, "not removing an interface a container has");
                return;
            }
            Err(e) => {
                tracing::debug!(port = %port_id, "reading its host interface: {e}");
                return;
            }
            _ => {}
        }
        if binder.ovsdb.path().exists() {
            if let Err(e) = binder.ovsdb.del_ports_of(port_id).await {
                tracing::warn!(port = %port_id, "removing the OVS port of a free pool port: {e}");
            }
        }
        for name in [&names.host, &names.container] {
            if let Err(e) = binder.netlink.delete_link(name).await {
                tracing::warn!(port = %port_id, link = %name, "removing a free pool port's veth: {e}");
            }
        }
    }

    /// A container took a port whose interface waits plugged in: mark it the endpoint's.
    pub(crate) async fn mark_taken(&self, port_id: &str, endpoint_id: &str) -> Result<()> {
        self.binder()
            .await?
            .netlink
            .set_alias(&veth_names(port_id).host, &endpoint_alias(endpoint_id))
            .await
            .map_err(host_err(format!(
                "marking the interface of port {port_id} as endpoint {endpoint_id}'s"
            )))
    }

    /// A port back from a container, its interface home: free again.
    async fn mark_free(&self, port_id: &str) -> Result<()> {
        self.binder()
            .await?
            .netlink
            .set_alias(&veth_names(port_id).host, FREE_ALIAS)
            .await
            .map_err(host_err(format!(
                "marking the interface of port {port_id} free"
            )))
    }

    /// A port the pools no longer track: no mark on its interface.
    pub(super) async fn unmark(&self, port_id: &str) -> Result<()> {
        self.binder()
            .await?
            .netlink
            .set_alias(&veth_names(port_id).host, "")
            .await
            .map_err(host_err(format!(
                "unmarking the interface of port {port_id}"
            )))
    }

    async fn binder(&self) -> Result<&kuryr_binding::Binder> {
        self.host_side.binder().await.map_err(host_err(
            "connecting to the host's netlink and Open vSwitch",
        ))
    }

    /// The network's MTU (read once per network).
    async fn network_mtu(&self, network_id: &str) -> Result<u32> {
        if let Some(mtu) = self.state().mtu.get(network_id) {
            return Ok(*mtu);
        }
        let network = self
            .neutron
            .networks()
            .get(network_id)
            .await
            .map_err(neutron_err(format!("reading network {network_id}")))?;
        let mtu = network.mtu.unwrap_or(1500);
        self.state().mtu.insert(network_id.to_owned(), mtu);
        Ok(mtu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_back() {
        assert_eq!(HostMark::from_alias(Some(FREE_ALIAS)), HostMark::Free);
        assert_eq!(
            HostMark::from_alias(Some(&endpoint_alias("ab12"))),
            HostMark::Endpoint("ab12".into())
        );
        assert_eq!(HostMark::from_alias(None), HostMark::Unmarked);
        assert_eq!(
            HostMark::from_alias(Some(ENDPOINT_ALIAS_PREFIX)),
            HostMark::Unmarked
        );
        assert_eq!(
            HostMark::from_alias(Some("set by an operator")),
            HostMark::Unmarked
        );
    }
}
