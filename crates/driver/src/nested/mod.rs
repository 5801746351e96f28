//! Containers inside a VM whose vNIC is a Neutron port (upstream's `vlan` and `nested` port
//! drivers). The container's port is never bound to a host by kuryr; the VM's port carries
//! its traffic, either as a trunk subport on its own VLAN ([`subport`]) or as an extra
//! address the VM's port may send from ([`address_pairs`]). The host side is a link on the
//! VM's interface (`[binding] link_iface`), made by [`kuryr_binding::nested`].

mod address_pairs;
mod subport;

use kuryr_binding::{validate_ifname, veth_names, NestedLink, NestedSpec};
use kuryr_libnetwork::MacAddress;
use kuryr_openstack::neutron::{Filters, Network, Port};

use crate::error::{host_err, neutron_err, DriverError, Result};
use crate::Driver;

/// How containers' ports reach the network (`[DEFAULT] default_port_driver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMode {
    /// Bare metal (`veth`): a veth pair, the port bound to this host.
    Veth,
    /// Containers in a VM (`vlan`, `nested`).
    Nested(Nested),
}

/// The settings of the nested modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// `[binding] link_iface`: the VM's interface, whose MAC finds the VM's Neutron port.
    pub link_iface: String,
    pub kind: NestedKind,
}

/// The link a nested container gets, and how Neutron lets its traffic through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedKind {
    /// `vlan`: the port is a subport of the VM port's trunk; a VLAN link.
    Vlan,
    /// `nested`: the port's addresses are allowed address pairs of the VM's port; a macvlan.
    Macvlan,
    /// `nested` with `[binding] default_driver = ipvlan`: as macvlan, but an ipvlan link,
    /// which has the VM's MAC.
    Ipvlan,
}

impl PortMode {
    /// A nested mode on `link_iface`, which must be a valid interface name.
    ///
    /// # Errors
    /// A message naming `[binding] link_iface` and what to put there.
    pub fn nested(kind: NestedKind, link_iface: &str) -> Result<PortMode, String> {
        if link_iface.is_empty() {
            return Err(
                "[binding] link_iface is not set: containers in a VM need the name of \
                        the VM's interface (e.g. eth0), whose MAC finds the VM's Neutron port"
                    .into(),
            );
        }
        validate_ifname(link_iface).map_err(|e| format!("[binding] link_iface: {e}"))?;
        Ok(PortMode::Nested(Nested {
            link_iface: link_iface.to_owned(),
            kind,
        }))
    }
}

/// The VM's Neutron port as found once by the MAC of `link_iface`; what changes (address
/// pairs, trunk, revision) is read again whenever it is needed.
#[derive(Debug, Clone)]
pub(crate) struct VmPort {
    pub id: String,
    pub mac: String,
    pub network_id: String,
}

impl Driver {
    /// The VM's port: looked up by `link_iface`'s MAC on first use, then cached.
    pub(crate) async fn vm_port(&self, nested: &Nested) -> Result<&VmPort> {
        self.vm_port
            .get_or_try_init(|| self.find_vm_port(nested))
            .await
    }

    async fn find_vm_port(&self, nested: &Nested) -> Result<VmPort> {
        let iface = &nested.link_iface;
        let link = self
            .binder()
            .await?
            .netlink
            .link(iface)
            .await
            .map_err(host_err(format!("reading [binding] link_iface {iface}")))?
            .ok_or_else(|| {
                DriverError::unavailable(format!(
                    "[binding] link_iface {iface} does not exist in kuryr's network namespace; \
                     set it to the VM's interface (the one whose MAC is the VM's Neutron port's)"
                ))
            })?;
        let mac = link.mac.map(MacAddress).ok_or_else(|| {
            DriverError::unavailable(format!(
                "[binding] link_iface {iface} has no Ethernet MAC; it must be the VM's interface"
            ))
        })?;
        let mut ports = self
            .neutron
            .ports()
            .list(&Filters::new().eq("mac_address", mac.to_string()))
            .await
            .map_err(neutron_err(format_args!(
                "looking up the VM's port by the MAC {mac} of {iface}"
            )))?;
        match ports.len() {
            1 => {
                let port = ports.remove(0);
                tracing::info!(port = %port.id, %iface, "containers go through the VM's port");
                Ok(VmPort {
                    id: port.id,
                    mac: port.mac_address,
                    network_id: port.network_id,
                })
            }
            0 => Err(DriverError::not_found(format!(
                "no Neutron port has the MAC {mac} of {iface} ([binding] link_iface); check \
                 that link_iface is the VM's interface and that kuryr's Neutron user can see \
                 the VM's port (same project, or admin)"
            ))),
            n => Err(DriverError::conflict(format!(
                "{n} Neutron ports have the MAC {mac} of {iface} ({}); kuryr cannot tell which \
                 is the VM's: give the VM's port a unique MAC",
                ports
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The VM's port as Neutron has it now.
    pub(crate) async fn vm_port_now(&self, vm: &VmPort) -> Result<Port> {
        self.neutron
            .ports()
            .get(&vm.id)
            .await
            .map_err(neutron_err(format_args!("reading the VM's port {}", vm.id)))
    }

    /// The network a Docker network goes on when no `neutron.net.*` option names one: for
    /// macvlan and ipvlan, the VM's (the containers share its L2 segment), as upstream.
    pub(crate) async fn default_network_id(&self) -> Result<Option<String>> {
        match &self.config.port_mode {
            crate::PortMode::Nested(n @ Nested { kind, .. }) if *kind != NestedKind::Vlan => {
                Ok(Some(self.vm_port(n).await?.network_id.clone()))
            }
            _ => Ok(None),
        }
    }

    /// CreateEndpoint's host part in a VM: Neutron lets the port's traffic through the VM's
    /// port, then the link on the VM's interface is made. A failed step undoes the earlier
    /// ones.
    pub(crate) async fn plug_nested(
        &self,
        nested: &Nested,
        port: &Port,
        network: &Network,
    ) -> Result<()> {
        let vm = self.vm_port(nested).await?;
        let link = match nested.kind {
            NestedKind::Vlan => NestedLink::Vlan(self.attach_subport(vm, port).await?),
            NestedKind::Macvlan => {
                self.allow_addresses(vm, port, &port.mac_address).await?;
                NestedLink::Macvlan
            }
            NestedKind::Ipvlan => {
                self.allow_addresses(vm, port, &vm.mac).await?;
                NestedLink::Ipvlan
            }
        };
        let mut result = self.make_link(nested, port, network, link).await;
        // A subport turns ACTIVE once the agent of the VM's host has wired it; a port whose
        // addresses ride on the VM's port stays DOWN.
        if result.is_ok() && nested.kind == NestedKind::Vlan && self.config.vif_plugging_is_fatal {
            result = self.wait_active(port).await;
        }
        if let Err(e) = result {
            if let Err(undo) = self.unplug_nested(nested, port).await {
                tracing::warn!(port = %port.id, "rolling back CreateEndpoint: {undo}");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn make_link(
        &self,
        nested: &Nested,
        port: &Port,
        network: &Network,
        link: NestedLink,
    ) -> Result<()> {
        let mac: MacAddress = port.mac_address.parse().map_err(|e| {
            DriverError::unusable(format!("port {} has an unusable MAC: {e}", port.id))
        })?;
        let name = veth_names(&port.id).container;
        self.binder()
            .await?
            .netlink
            .ensure_nested(&NestedSpec {
                name: &name,
                parent: &nested.link_iface,
                link,
                mac: mac.0,
                mtu: network.mtu.unwrap_or(1500),
            })
            .await
            .map(drop)
            .map_err(host_err(format!("making {name} on {}", nested.link_iface)))
    }

    /// Undo [`Driver::plug_nested`], whatever part of it was done: the link goes, then the
    /// subport or the address pairs. Every step runs; the first failure is returned.
    pub(crate) async fn unplug_nested(&self, nested: &Nested, port: &Port) -> Result<()> {
        let name = veth_names(&port.id).container;
        let link = match nested.kind {
            // The VLAN id does not matter for deleting.
            NestedKind::Vlan => NestedLink::Vlan(1),
            NestedKind::Macvlan => NestedLink::Macvlan,
            NestedKind::Ipvlan => NestedLink::Ipvlan,
        };
        let unlinked = match self.binder().await {
            Ok(binder) => binder
                .netlink
                .delete_nested(&name, link)
                .await
                .map(drop)
                .map_err(host_err(format!("deleting {name}"))),
            Err(e) => Err(e),
        };
        let vm = match self.vm_port(nested).await {
            Ok(vm) => vm,
            Err(e) => return unlinked.and(Err(e)),
        };
        let released = match nested.kind {
            NestedKind::Vlan => self.detach_subport(vm, &port.id).await,
            NestedKind::Macvlan | NestedKind::Ipvlan => self.disallow_addresses(vm, port).await,
        };
        unlinked.and(released)
    }

    /// ReleaseAddress in `vlan` mode: a port still on the VM's trunk (DeleteEndpoint failed
    /// half-way) cannot be deleted, so it leaves the trunk first. (Its `device_owner` does
    /// not tell: Neutron sets it only once the agent has wired the subport.)
    pub(crate) async fn release_subport(&self, port: &Port) -> Result<()> {
        match &self.config.port_mode {
            crate::PortMode::Nested(n) if n.kind == NestedKind::Vlan => {
                let vm = self.vm_port(n).await?;
                self.detach_subport(vm, &port.id).await
            }
            _ => Ok(()),
        }
    }
}
