//! Free pool ports wait plugged in. A port of a plain Open vSwitch binding gets its veth
//! pair and its place on the bridge when it enters the pool, and keeps them between
//! containers (Docker hands the container end back to the host when a container stops), so
//! the agent wires the port once, Neutron shows it ACTIVE before a container takes it, and
//! CreateEndpoint and DeleteEndpoint only relabel the host end.
//!
//! The label is the host end's alias (`ip link set tapX alias ...`), which outlives the
//! daemon: [`FREE_ALIAS`] while the port is free, `kuryr-requested=<unix time>` from the
//! RequestAddress that hands its address to Docker, `kuryr-endpoint=<endpoint id>` while a
//! container has it. A restarted daemon reads it to tell them apart ([`HostMark`]): until a
//! container's endpoint has the port, nothing else (Neutron shows the port free) says that
//! Docker holds its address.
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
const REQUESTED_ALIAS_PREFIX: &str = "kuryr-requested=";

/// How long an address handed to Docker counts as Docker's when no endpoint has come for
/// it. Docker sends CreateEndpoint right after RequestAddress and retries a call the
/// plugin does not answer for 30 s; after that it has given the container up.
pub const REQUESTED_HOLD: std::time::Duration = std::time::Duration::from_secs(120);

/// What the host end of a pool port's veth says about who has the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMark {
    /// Waiting in the pool.
    Free,
    /// Its address was handed to Docker (at this many seconds since the Unix epoch); no
    /// endpoint yet.
    Requested(u64),
    /// A container's endpoint has it.
    Endpoint(String),
    /// Plugged without a mark: by CreateEndpoint's usual path, so a container has it.
    Unmarked,
}

impl HostMark {
    pub fn from_alias(alias: Option<&str>) -> HostMark {
        match alias {
            Some(FREE_ALIAS) => HostMark::Free,
            Some(a) => {
                if let Some(at) = a.strip_prefix(REQUESTED_ALIAS_PREFIX) {
                    return at.parse().map_or(HostMark::Unmarked, HostMark::Requested);
                }
                match a.strip_prefix(ENDPOINT_ALIAS_PREFIX) {
                    Some(endpoint) if !endpoint.is_empty() => {
                        HostMark::Endpoint(endpoint.to_owned())
                    }
                    _ => HostMark::Unmarked,
                }
            }
            None => HostMark::Unmarked,
        }
    }

    /// Whether Docker may still hold the address of a port marked so `now` (seconds since
    /// the Unix epoch): marked requested less than [`REQUESTED_HOLD`] ago.
    pub fn requested_recently(&self, now: u64) -> bool {
        matches!(self, HostMark::Requested(at) if now.saturating_sub(*at) < REQUESTED_HOLD.as_secs())
    }
}

fn endpoint_alias(endpoint_id: &str) -> String {
    format!("{ENDPOINT_ALIAS_PREFIX}{endpoint_id}")
}

fn requested_alias(now: u64) -> String {
    format!("{REQUESTED_ALIAS_PREFIX}{now}")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    /// RequestAddress handed the port's address to Docker: marked so before Docker hears
    /// of it, so that a daemon restarted before the endpoint comes leaves the port alone.
    pub(crate) async fn mark_requested(&self, port_id: &str) -> Result<()> {
        self.binder()
            .await?
            .netlink
            .set_alias(&veth_names(port_id).host, &requested_alias(unix_now()))
            .await
            .map_err(host_err(format!(
                "marking the interface of port {port_id} as handed to Docker"
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
            HostMark::from_alias(Some(&requested_alias(1_700_000_000))),
            HostMark::Requested(1_700_000_000)
        );
        assert_eq!(
            HostMark::from_alias(Some("kuryr-requested=soon")),
            HostMark::Unmarked
        );
        assert_eq!(
            HostMark::from_alias(Some(ENDPOINT_ALIAS_PREFIX)),
            HostMark::Unmarked
        );
        assert_eq!(
            HostMark::from_alias(Some("set by an operator")),
            HostMark::Unmarked
        );
    }

    #[test]
    fn a_requested_mark_holds_the_port_for_a_while() {
        let at = 1_700_000_000;
        let mark = HostMark::Requested(at);
        assert!(mark.requested_recently(at));
        assert!(mark.requested_recently(at + REQUESTED_HOLD.as_secs() - 1));
        assert!(!mark.requested_recently(at + REQUESTED_HOLD.as_secs()));
        // A clock set back keeps the port held rather than freeing it.
        assert!(mark.requested_recently(at - 50));
        assert!(!HostMark::Free.requested_recently(at));
    }
}
