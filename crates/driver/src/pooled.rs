//! The pooled path of a container's calls (bare metal, `[vif_pool] enabled`): its address
//! comes from a pre-made port bound to this host, so Docker's path asks Neutron nothing
//! once the network is known: RequestAddress takes a port from the pool (only this
//! daemon hands out this host's pool ports), CreateEndpoint plugs it, Join answers from
//! memory. A free port usually waits plugged in, so CreateEndpoint and DeleteEndpoint leave
//! the host as it is. Neutron learns the endpoint (`device_id`, tags) in the background once
//! the container has held the port for `owner_write_delay`; until it has, the port's
//! interface on this host is what tells a restarted daemon that the port is taken
//! ([`crate::pool`]). Whatever this path cannot serve (a given address or MAC, a
//! second address family, an empty pool) goes the usual way, on the same ports.
//!
//! This file is the one seam between the driver and the pools: every call asks it first
//! (`pooled_*`), and what the usual path must tell the pools (a port it took over, a
//! network going away) goes through it too, so no other file checks whether pools are on.

use std::net::IpAddr;

use kuryr_libnetwork::ipam::{
    ReleaseAddressRequest, RequestAddressRequest, RequestAddressResponse,
};
use kuryr_libnetwork::network::{
    CreateEndpointRequest, CreateEndpointResponse, EndpointInterface, EndpointRequest, JoinRequest,
    JoinResponse,
};
use kuryr_libnetwork::MacAddress;
use kuryr_openstack::neutron::Port;

use crate::error::Result;
use crate::ipam::with_prefix;
use crate::mapping;
use crate::Driver;

impl Driver {
    /// RequestAddress from a pool; None when the usual path must answer.
    pub(crate) async fn pooled_address(
        &self,
        req: &RequestAddressRequest,
    ) -> Result<Option<RequestAddressResponse>> {
        let Some(pools) = &self.pools else {
            return Ok(None);
        };
        if req.address.is_some() || req.is_gateway() {
            return Ok(None);
        }
        let Ok(mac) = req.mac_address() else {
            return Ok(None);
        };
        let Some(subnet) = self.cached_pool_subnet(&req.pool_id).await? else {
            return Ok(None);
        };
        if subnet.tags.iter().any(|t| t == mapping::SWARM_SUBNET_TAG) {
            return Ok(None);
        }
        // A MAC from Docker (it asked before pools were on, or `--mac-address`): a bound
        // port's MAC cannot change, so the usual path makes or adopts the port.
        if mac.is_some() {
            return Ok(None);
        }
        // Dual stack: the IPv6 address goes on the IPv4 port, by the usual path.
        if subnet.ip_version == 6 {
            let subnets = self.cached_subnets(&subnet.network_id).await?;
            if subnets.iter().any(|s| s.ip_version == 4) {
                return Ok(None);
            }
        }
        let Some(port) = pools.take(&subnet) else {
            return Ok(None);
        };
        let ip = port
            .fixed_ips
            .iter()
            .find(|f| f.subnet_id == subnet.id)
            .and_then(|f| f.ip_address.parse::<IpAddr>().ok());
        let Some(ip) = ip else {
            pools.forget_port(&port.id);
            return Ok(None);
        };
        // Neutron shows the port free until its owner is written: the host's mark is what
        // tells a daemon restarted before CreateEndpoint that Docker has the address.
        if pools.is_plugged(&port.id) {
            if let Err(e) = pools.mark_requested(&port.id).await {
                tracing::warn!(port = %port.id, "{}; the port goes back to its pool", e.report());
                pools.release(&port.id);
                return Ok(None);
            }
        }
        Ok(Some(RequestAddressResponse {
            address: with_prefix(ip, &subnet)?,
            data: Default::default(),
        }))
    }

    /// CreateEndpoint of an address a pool port holds: the host side only.
    pub(crate) async fn pooled_endpoint(
        &self,
        req: &CreateEndpointRequest,
    ) -> Result<Option<CreateEndpointResponse>> {
        let Some(pools) = &self.pools else {
            return Ok(None);
        };
        let interface = req.interface.clone().unwrap_or_default();
        let addresses: Vec<IpAddr> = [interface.address, interface.address_ipv6]
            .into_iter()
            .flatten()
            .map(|a| a.addr())
            .collect();
        let Some(first) = addresses.first() else {
            return Ok(None);
        };
        let Some(network) = self.cached_network(&req.network_id).await? else {
            return Ok(None);
        };
        let Some(held) = pools.held_by_address(&network.id, *first) else {
            return Ok(None);
        };
        let port = held.port;
        let same_addresses = port.fixed_ips.len() == addresses.len()
            && addresses.iter().all(|a| {
                port.fixed_ips
                    .iter()
                    .any(|f| f.ip_address.parse::<IpAddr>().ok() == Some(*a))
            });
        let same_mac = interface
            .mac_address
            .as_ref()
            .is_none_or(|m| m.to_string().eq_ignore_ascii_case(&port.mac_address));
        if !same_addresses || !same_mac || held.endpoint.is_some() {
            // The usual path takes over every port holding these addresses.
            for ip in &addresses {
                if let Some(h) = pools.held_by_address(&network.id, *ip) {
                    pools.release_to_slow_path(&h.port.id).await;
                }
            }
            return Ok(None);
        }
        let endpoint = req.endpoint_id.as_str();
        // A port whose interface waits plugged in needs nothing more from the host: the
        // owner job marks the interface the endpoint's, off the path.
        let plugged = if !pools.is_plugged(&port.id) {
            self.plug(req, &port, &network).await
        } else if self.config.vif_plugging_is_fatal {
            self.wait_active(&port).await
        } else {
            Ok(())
        };
        if let Err(e) = plugged {
            if let Err(undo) = self.unplug(endpoint, &port).await {
                tracing::warn!(port = %port.id, "rolling back CreateEndpoint: {undo}");
            }
            return Err(e);
        }
        pools.bind_endpoint(&port.id, endpoint);
        let mac = if interface.mac_address.is_none() {
            port.mac_address.parse::<MacAddress>().ok()
        } else {
            None
        };
        Ok(Some(CreateEndpointResponse {
            interface: EndpointInterface {
                mac_address: mac,
                ..Default::default()
            },
        }))
    }

    pub(crate) async fn pooled_join(&self, req: &JoinRequest) -> Result<Option<JoinResponse>> {
        let Some(pools) = &self.pools else {
            return Ok(None);
        };
        let Some(held) = pools.held_by_endpoint(req.endpoint_id.as_str()) else {
            return Ok(None);
        };
        let subnets = self.cached_subnets(&held.port.network_id).await?;
        Ok(Some(self.join_response(&held.port, &subnets)))
    }

    pub(crate) async fn pooled_delete_endpoint(&self, req: &EndpointRequest) -> Result<bool> {
        let Some(pools) = &self.pools else {
            return Ok(false);
        };
        let Some(held) = pools.held_by_endpoint(req.endpoint_id.as_str()) else {
            return Ok(false);
        };
        let id = &held.port.id;
        // A port whose interface waits plugged in keeps it for the next container (Docker
        // gives the container end back when the container stops; recycling checks).
        if !pools.is_plugged(id) {
            self.unplug(req.endpoint_id.as_str(), &held.port).await?;
        }
        pools.unbind_endpoint(id);
        Ok(true)
    }

    pub(crate) async fn pooled_release(&self, req: &ReleaseAddressRequest) -> Result<bool> {
        let Some(pools) = &self.pools else {
            return Ok(false);
        };
        let Some(ip) = req.address else {
            return Ok(false);
        };
        let Some(subnet) = self.cache.pool_subnet(req.pool_id.as_str()) else {
            return Ok(false);
        };
        match pools.held_by_address(&subnet.network_id, ip) {
            Some(held) if held.endpoint.is_none() => Ok(pools.release(&held.port.id)),
            _ => Ok(false),
        }
    }

    /// The usual path found these ports (a retried CreateEndpoint, a restart): the pools no
    /// longer track them.
    pub(crate) async fn usual_path_takes_over(&self, ports: &[Port]) {
        if let Some(pools) = &self.pools {
            for port in ports {
                pools.release_to_slow_path(&port.id).await;
            }
        }
    }

    /// The port a pooled endpoint holds (its tags may still be on their way to Neutron).
    pub(crate) fn pooled_port_of(&self, endpoint_id: &str) -> Option<Port> {
        self.pools
            .as_ref()?
            .held_by_endpoint(endpoint_id)
            .map(|held| held.port)
    }

    /// ProgramExternalConnectivity of an endpoint a pool port may serve.
    pub(crate) fn pooled_exposed(&self, endpoint_id: &str) {
        if let Some(pools) = &self.pools {
            pools.set_exposed(endpoint_id);
        }
    }

    /// A released port kuryr made: back into its pool if it is one of this host's pool
    /// ports (the daemon restarted while a container held it). False: delete it.
    pub(crate) fn pooled_recycle(&self, port: &Port) -> bool {
        self.pools
            .as_ref()
            .is_some_and(|pools| pools.recycle(port.clone()))
    }

    /// Delete a network's resources with its pools closed: no refill or recycling puts a
    /// port on it meanwhile, and its free pool ports go first (of every host when
    /// `every_host`: the Neutron network itself goes).
    pub(crate) async fn with_pools_closed<T, F>(
        &self,
        network_id: &str,
        every_host: bool,
        delete: F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let Some(pools) = &self.pools else {
            return delete.await;
        };
        let closed = pools.close_network(network_id, every_host).await;
        let deleted = delete.await;
        pools.reopen_network(network_id);
        closed.and(deleted)
    }

    /// A new network's pools filled ahead of use, when `populate_on_network_create` says.
    pub(crate) async fn pooled_network_created(&self, docker_id: &kuryr_libnetwork::DockerId) {
        // A swarm network's addresses are the manager's IPAM's, never a host's pool.
        if docker_id.is_swarm() {
            return;
        }
        let Some(pools) = &self.pools else { return };
        if !pools.config().populate_on_network_create {
            return;
        }
        // Remembered by the create: no Neutron request.
        match self.docker_network_subnets(docker_id).await {
            Ok(subnets) => pools.prefill(subnets),
            Err(e) => {
                tracing::warn!(network = %docker_id.as_str(), "pre-filling the port pool: {}", e.report())
            }
        }
    }
}
