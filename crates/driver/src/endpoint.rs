//! Endpoints: CreateEndpoint binds a Neutron port to this host and makes the container's
//! veth pair (in a VM: see [`crate::nested`]); Join tells Docker which interface to move into
//! the container and its routes; DeleteEndpoint removes the interface and unbinds the port
//! from the endpoint.

use std::net::IpAddr;

use ipnet::IpNet;
use kuryr_binding::{veth_names, UnplugRequest};
use kuryr_libnetwork::network::{
    CreateEndpointRequest, CreateEndpointResponse, EndpointInterface, EndpointOperInfoResponse,
    EndpointRequest, InterfaceName, JoinRequest, JoinResponse, StaticRoute,
};
use kuryr_libnetwork::plugin::Empty;
use kuryr_libnetwork::MacAddress;
use kuryr_openstack::neutron::{FixedIp, Network, Port, PortSpec, Subnet};
use serde_json::Value;

use crate::error::{host_err, neutron_err, DriverError, Result};
use crate::lookup::{is_unbound_kuryr_port, same_cidr, with_tags};
use crate::mapping::{self, id_tags, DEVICE_OWNER};
use crate::nested::{NestedKind, PortMode};
use crate::plugging::NotActive;
use crate::Driver;

/// What CreateEndpoint writes on the endpoint's port besides its tags and MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Bare metal: bound to this host, owned by kuryr (`device_owner`, `device_id`).
    Bind,
    /// macvlan, ipvlan: owned by kuryr but never bound (the VM's port carries it).
    Own,
    /// vlan: only tagged, since Neutron's trunk plugin binds subports itself and refuses a
    /// port with a `device_id`.
    Tag,
}

impl Driver {
    pub(crate) async fn create_endpoint(
        &self,
        req: &CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse> {
        let fip = self.floating_ip_wanted(req).await?;
        let created = self.create_endpoint_port(req).await?;
        let Some(choice) = fip else {
            self.no_fip(&req.endpoint_id);
            return Ok(created);
        };
        let associated = match self.tagged_port_of(&req.endpoint_id).await {
            Ok(Some(port)) => self.associate_fip(&req.endpoint_id, &port, &choice).await,
            Ok(None) => Err(DriverError::bug(format!(
                "the port of endpoint {} is not found right after CreateEndpoint made it",
                req.endpoint_id.as_str()
            ))),
            Err(e) => Err(e),
        };
        match associated {
            Ok(address) => {
                tracing::info!(endpoint = %req.endpoint_id.as_str(), %address, "floating IP associated");
                Ok(created)
            }
            Err(e) => {
                // Docker sends no DeleteEndpoint for an endpoint it was refused.
                let ids = EndpointRequest {
                    network_id: req.network_id.clone(),
                    endpoint_id: req.endpoint_id.clone(),
                };
                if let Err(undo) = self.delete_endpoint(&ids).await {
                    tracing::warn!(endpoint = %req.endpoint_id.as_str(), "rolling back the endpoint: {}", undo.report());
                }
                Err(e)
            }
        }
    }

    /// CreateEndpoint's port, bound and plugged.
    async fn create_endpoint_port(
        &self,
        req: &CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse> {
        if let Some(pooled) = self.pooled_endpoint(req).await? {
            return Ok(pooled);
        }
        let network = self.cached_network(&req.network_id).await?.ok_or_else(|| {
            DriverError::not_found(format!(
                "no Neutron network carries the tags of Docker network {}; was it created \
                 with -d kuryr? Re-create it (docker network rm, docker network create)",
                req.network_id.as_str()
            ))
        })?;
        let interface = req.interface.clone().unwrap_or_default();
        let addresses: Vec<IpNet> = [interface.address, interface.address_ipv6]
            .into_iter()
            .flatten()
            .collect();
        if addresses.is_empty() {
            return Err(DriverError::invalid(
                "the endpoint has no address; kuryr needs one from an IPAM driver \
                 (use --ipam-driver kuryr, or give the network a --subnet)",
            ));
        }
        let mut subnets = self.cached_subnets(&network.id).await?;
        let in_subnets = |subnets: &[Subnet]| {
            addresses.iter().all(|a| {
                subnets
                    .iter()
                    .any(|s| same_cidr(&s.cidr, &a.trunc().to_string()))
            })
        };
        if !in_subnets(&subnets) {
            // A subnet added since they were remembered.
            subnets = self.subnets_of(&network.id).await?;
            self.cache.set_subnets(&network.id, &subnets);
        }
        let mut fixed_ips = Vec::new();
        for address in &addresses {
            let subnet = subnets
                .iter()
                .find(|s| same_cidr(&s.cidr, &address.trunc().to_string()))
                .ok_or_else(|| {
                    DriverError::not_found(format!(
                        "address {address} is in no subnet of Neutron network {}; the \
                         network's subnets are {}",
                        network.id,
                        subnets
                            .iter()
                            .map(|s| s.cidr.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            fixed_ips.push(FixedIp {
                subnet_id: subnet.id.clone(),
                ip_address: address.addr().to_string(),
            });
        }
        let (port, created) = self
            .bind_port(req, &network, &fixed_ips, interface.mac_address.as_ref())
            .await?;
        let plugged = match &self.config.port_mode {
            PortMode::Veth => self.plug(req, &port, &network).await,
            PortMode::Nested(nested) => self.plug_nested(nested, &port, &network).await,
        };
        if let Err(e) = plugged {
            self.ledger.forget(&port.id);
            self.unbind_after_failure(req, &port, created).await;
            return Err(e);
        }
        if is_ipam_port(&port) {
            self.ledger.bind(&port, req.endpoint_id.as_str());
        }
        // An ipvlan link has the VM's MAC, which Docker must not replace by the port's.
        let ipvlan =
            matches!(&self.config.port_mode, PortMode::Nested(n) if n.kind == NestedKind::Ipvlan);
        let mac = if interface.mac_address.is_none() && !ipvlan {
            port.mac_address.parse::<MacAddress>().ok()
        } else {
            None
        };
        Ok(CreateEndpointResponse {
            interface: EndpointInterface {
                mac_address: mac,
                ..Default::default()
            },
        })
    }

    /// The endpoint's port, bound to this host and tagged with the endpoint id: the one IPAM
    /// made (or adopted) for the addresses, or a new one when IPAM was not kuryr's.
    async fn bind_port(
        &self,
        req: &CreateEndpointRequest,
        network: &Network,
        fixed_ips: &[FixedIp],
        mac: Option<&MacAddress>,
    ) -> Result<(Port, bool)> {
        if let Some(entry) = self.ledger.by_endpoint(req.endpoint_id.as_str()) {
            return Ok((entry.port, false));
        }
        // The port IPAM made here for these addresses: no lookup needed.
        if let Some(port) = self.ledger_port_for(network, fixed_ips) {
            let id = port.id.clone();
            match self.adopt_port(req, port, mac).await {
                Ok(port) => return Ok((port, false)),
                // Gone meanwhile: the lookups below tell what there is.
                Err(e) if e.neutron_cause().is_some_and(|n| n.is_not_found()) => {
                    self.ledger.forget(&id);
                }
                Err(e) => return Err(e),
            }
        }
        // A retried call finds its port already tagged.
        if let Some(port) = self.tagged_port_of(&req.endpoint_id).await? {
            self.usual_path_takes_over(std::slice::from_ref(&port))
                .await;
            return Ok((port, false));
        }
        let mut ports: Vec<Port> = Vec::new();
        for ip in fixed_ips {
            let found = self
                .ports_holding(&network.id, &ip.subnet_id, &ip.ip_address)
                .await?;
            for port in found {
                if !ports.iter().any(|p| p.id == port.id) {
                    ports.push(port);
                }
            }
        }
        // Pool ports found here are the usual path's from now on (after a restart, a
        // recovered pool port may hold the address Docker was given).
        self.usual_path_takes_over(&ports).await;
        match ports.len() {
            0 => self
                .create_bound_port(req, network, fixed_ips, mac)
                .await
                .map(|p| (p, true)),
            1 => {
                let port = ports.remove(0);
                self.adopt_port(req, port, mac).await.map(|p| (p, false))
            }
            2 => {
                // Dual stack with one port per family (upstream's IPAM): keep the one that is
                // not an IPAM leftover, or replace both with one dual-stack port.
                let (unbound, other): (Vec<Port>, Vec<Port>) =
                    ports.into_iter().partition(is_unbound_kuryr_port);
                if other.len() > 1 {
                    return Err(DriverError::conflict(format!(
                        "the endpoint's addresses are on two different ports ({}); give \
                         --ip and --ip6 of one port",
                        other
                            .iter()
                            .map(|p| p.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                for port in &unbound {
                    self.neutron
                        .ports()
                        .delete(&port.id)
                        .await
                        .map_err(neutron_err(format_args!("deleting port {}", port.id)))?;
                }
                match other.into_iter().next() {
                    Some(port) => self.adopt_port(req, port, mac).await.map(|p| (p, false)),
                    None => self
                        .create_bound_port(req, network, fixed_ips, mac)
                        .await
                        .map(|p| (p, true)),
                }
            }
            n => Err(DriverError::conflict(format!(
                "the endpoint's addresses are on {n} ports; kuryr needs one"
            ))),
        }
    }

    /// The unbound port this daemon's IPAM made for exactly these addresses, if it still
    /// remembers one.
    fn ledger_port_for(&self, network: &Network, fixed_ips: &[FixedIp]) -> Option<Port> {
        let mut found: Option<Port> = None;
        for ip in fixed_ips {
            let entry = self
                .ledger
                .by_address(&network.id, ip.ip_address.parse().ok()?)?;
            if entry.deleted || entry.endpoint.is_some() || !is_unbound_kuryr_port(&entry.port) {
                return None;
            }
            match &found {
                Some(p) if p.id != entry.port.id => return None,
                _ => found = Some(entry.port),
            }
        }
        found.filter(|p| p.fixed_ips.len() == fixed_ips.len())
    }

    /// How the mode claims an endpoint's port.
    fn claim(&self) -> Claim {
        match &self.config.port_mode {
            PortMode::Veth => Claim::Bind,
            PortMode::Nested(n) if n.kind == NestedKind::Vlan => Claim::Tag,
            PortMode::Nested(_) => Claim::Own,
        }
    }

    async fn create_bound_port(
        &self,
        req: &CreateEndpointRequest,
        network: &Network,
        fixed_ips: &[FixedIp],
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        let mut tags = id_tags(&req.endpoint_id).to_vec();
        tags.push(mapping::host_tag(&self.config.host_id));
        let claim = self.claim();
        let owned = claim != Claim::Tag;
        let api = self.neutron.ports();
        let mut spec = PortSpec {
            name: Some(mapping::endpoint_port_name(&req.endpoint_id)),
            network_id: Some(network.id.clone()),
            admin_state_up: Some(true),
            device_owner: owned.then(|| DEVICE_OWNER.into()),
            device_id: owned.then(|| req.endpoint_id.as_str().into()),
            binding_host_id: (claim == Claim::Bind).then(|| self.config.host_id.clone()),
            mac_address: mac.map(ToString::to_string),
            fixed_ips: Some(fixed_ips.to_vec()),
            ..Default::default()
        };
        let created = if self.readiness.tags_on_port_create() {
            let request = mapping::request_tag();
            spec.tags = Some([tags.clone(), vec![request.clone()]].concat());
            api.create_once(&spec, &request).await
        } else {
            api.create(&spec).await
        };
        let mut port = created.map_err(neutron_err(format_args!(
            "creating the port of endpoint {} on network {}",
            req.endpoint_id.as_str(),
            network.id
        )))?;
        if let Err(e) = self
            .add_tags(api.clone(), &port.id, &port.tags, &tags)
            .await
        {
            let _ = api.delete(&port.id).await;
            return Err(DriverError::neutron(
                format!("tagging port {}", port.id),
                &e,
            ));
        }
        with_tags(&mut port, tags);
        Ok(port)
    }

    /// Bind an existing port: host and owner in ONE update (Neutron's DVR scheduling needs
    /// both at once), Docker's MAC, and no update at all when nothing changes (a port an
    /// orchestrator pre-bound costs no Neutron write). In a VM the port is only owned, or
    /// only tagged (see [`Claim`]).
    async fn adopt_port(
        &self,
        req: &CreateEndpointRequest,
        port: Port,
        mac: Option<&MacAddress>,
    ) -> Result<Port> {
        let mut spec = PortSpec::default();
        let claim = self.claim();
        match claim {
            Claim::Bind if port.binding_host_id != self.config.host_id => {
                spec.binding_host_id = Some(self.config.host_id.clone());
                spec.device_owner = Some(DEVICE_OWNER.into());
            }
            Claim::Own if port.device_owner != DEVICE_OWNER => {
                spec.device_owner = Some(DEVICE_OWNER.into());
            }
            _ => {}
        }
        if !port.admin_state_up {
            spec.admin_state_up = Some(true);
        }
        if port.device_id.is_empty() && claim != Claim::Tag {
            spec.device_id = Some(req.endpoint_id.as_str().into());
        }
        if let Some(mac) = mac {
            if !port.mac_address.eq_ignore_ascii_case(&mac.to_string()) {
                spec.mac_address = Some(mac.to_string());
            }
        }
        let api = self.neutron.ports();
        // Neutron refuses a new MAC on a bound port (a pool port, say): unbind it first;
        // the update below binds it again.
        let bound = !matches!(
            port.binding_vif_type.as_str(),
            "" | "unbound" | "binding_failed"
        );
        if spec.mac_address.is_some() && bound && claim == Claim::Bind {
            let unbind = PortSpec {
                binding_host_id: Some(String::new()),
                ..Default::default()
            };
            api.update(&port.id, &unbind)
                .await
                .map_err(neutron_err(format_args!(
                    "unbinding port {} to give it the MAC {}",
                    port.id,
                    spec.mac_address.as_deref().unwrap_or_default()
                )))?;
            spec.binding_host_id = Some(self.config.host_id.clone());
            spec.device_owner.get_or_insert_with(|| DEVICE_OWNER.into());
        }
        let port = if spec == PortSpec::default() {
            port
        } else {
            let tags = port.tags.clone();
            let updated = api
                .update(&port.id, &spec)
                .await
                .map_err(neutron_err(format_args!(
                    "binding port {} to host {}",
                    port.id, self.config.host_id
                )))?;
            Port { tags, ..updated }
        };
        let tags = id_tags(&req.endpoint_id).to_vec();
        self.add_tags(api, &port.id, &port.tags, &tags)
            .await
            .map_err(neutron_err(format_args!("tagging port {}", port.id)))?;
        let mut port = port;
        with_tags(&mut port, tags);
        Ok(port)
    }

    /// The host side: the veth pair, with the port's MAC and the network's MTU, its host end
    /// plugged in where the port's `binding:vif_type` says.
    pub(crate) async fn plug(
        &self,
        req: &CreateEndpointRequest,
        port: &Port,
        network: &Network,
    ) -> Result<()> {
        let binder = self.binder().await?;
        let plug = crate::host::Plug {
            endpoint_id: req.endpoint_id.as_str(),
            mtu: network.mtu.unwrap_or(1500),
            host: &self.config.host_id,
            alias: None,
        };
        crate::host::plug_port(binder, port, &plug).await?;
        if self.config.vif_plugging_is_fatal {
            self.wait_active(port).await?;
        }
        Ok(())
    }

    /// Undo [`Driver::plug`]: unplug the host end, then delete the veth pair.
    pub(crate) async fn unplug(&self, endpoint_id: &str, port: &Port) -> Result<()> {
        let names = veth_names(&port.id);
        let binder = self.binder().await?;
        // A port whose MAC Neutron cannot give is unplugged by name and id alone.
        let mac = port
            .mac_address
            .parse::<MacAddress>()
            .map_or([2, 0, 0, 0, 0, 1], |m| m.0);
        let unplugged = binder
            .unplug(&UnplugRequest {
                port_id: port.id.clone(),
                endpoint_id: endpoint_id.to_owned(),
                mac,
                host_ifname: names.host.clone(),
                network_id: port.network_id.clone(),
                vif_type: port.binding_vif_type.clone(),
                vif_details: Value::Object(port.binding_vif_details.clone()),
            })
            .await;
        // The veth goes in any case: a container that is gone must not keep its interface.
        binder
            .netlink
            .delete_link(&names.host)
            .await
            .map_err(host_err(format!("deleting {}", names.host)))?;
        unplugged.map_err(host_err(format!(
            "unplugging port {} from the host",
            port.id
        )))
    }

    /// `vif_plugging_is_fatal`: wait until Neutron says the port is ACTIVE.
    pub(crate) async fn wait_active(&self, port: &Port) -> Result<()> {
        let timeout = self.config.vif_plugging_timeout;
        match self.plugging.wait(&self.neutron, &port.id, timeout).await {
            Ok(()) => Ok(()),
            Err(NotActive::Timeout(status)) => Err(DriverError::unavailable(format!(
                "port {} is still {status} after {timeout:?} (vif_plugging_timeout) and \
                 vif_plugging_is_fatal is set; check the Neutron agent of host {}",
                port.id, self.config.host_id
            ))),
        }
    }

    /// Undo CreateEndpoint after the host part failed: a port made here goes, an adopted one
    /// loses the endpoint's tags (IPAM's ReleaseAddress then handles it as usual).
    /// (In a VM, [`Driver::plug_nested`] has undone its own steps already.)
    async fn unbind_after_failure(&self, req: &CreateEndpointRequest, port: &Port, created: bool) {
        if self.config.port_mode == PortMode::Veth {
            if let Err(e) = self.unplug(req.endpoint_id.as_str(), port).await {
                tracing::warn!(port = %port.id, "rolling back CreateEndpoint: {}", e.report());
            }
        }
        let result = if created {
            self.neutron.ports().delete(&port.id).await.map(|_| ())
        } else {
            let tags = id_tags(&req.endpoint_id).to_vec();
            match self.neutron.ports().tags(&port.id).await {
                Ok(current) => {
                    self.remove_tags(self.neutron.ports(), &port.id, &current, &tags)
                        .await
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            tracing::warn!(port = %port.id, "rolling back CreateEndpoint: {e}");
        }
    }

    pub(crate) async fn endpoint_oper_info(
        &self,
        req: &EndpointRequest,
    ) -> Result<EndpointOperInfoResponse> {
        let mut value = serde_json::Map::new();
        if let Some(port) = self.port_of(&req.endpoint_id).await? {
            value.insert("status".into(), Value::String(port.status));
        }
        Ok(EndpointOperInfoResponse { value })
    }

    pub(crate) async fn delete_endpoint(&self, req: &EndpointRequest) -> Result<Empty> {
        // The rest of the teardown happens whatever this says; its error is the answer (and
        // the teardown is tried again).
        let released = self.release_endpoint_fips(req).await;
        let deleted = self.delete_endpoint_port(req).await;
        released.and(deleted)
    }

    async fn delete_endpoint_port(&self, req: &EndpointRequest) -> Result<Empty> {
        if self.pooled_delete_endpoint(req).await? {
            return Ok(Empty {});
        }
        if let Some(entry) = self.ledger.by_endpoint(req.endpoint_id.as_str()) {
            if self.config.port_mode == PortMode::Veth {
                // IPAM's own port: ReleaseAddress deletes it next, by id, and its endpoint
                // tags with it; if that never comes, the reconciler removes it (its endpoint
                // is gone from Docker).
                self.unplug(req.endpoint_id.as_str(), &entry.port).await?;
                self.ledger.unbind(&entry.port);
                return Ok(Empty {});
            }
        }
        let Some(port) = self.port_of(&req.endpoint_id).await? else {
            tracing::warn!(endpoint = %req.endpoint_id.as_str(), "DeleteEndpoint: no Neutron port carries its tags; nothing to undo");
            return Ok(Empty {});
        };
        match &self.config.port_mode {
            PortMode::Veth => self.unplug(req.endpoint_id.as_str(), &port).await?,
            PortMode::Nested(nested) => self.unplug_nested(nested, &port).await?,
        }
        let tags = id_tags(&req.endpoint_id).to_vec();
        self.remove_tags(self.neutron.ports(), &port.id, &port.tags, &tags)
            .await
            .map_err(neutron_err(format_args!("untagging port {}", port.id)))?;
        let mut untagged = port;
        untagged.tags.retain(|t| !tags.contains(t));
        self.ledger.unbind(&untagged);
        Ok(Empty {})
    }

    pub(crate) async fn join(&self, req: &JoinRequest) -> Result<JoinResponse> {
        if let Some(pooled) = self.pooled_join(req).await? {
            return Ok(pooled);
        }
        let port = self.port_of(&req.endpoint_id).await?.ok_or_else(|| {
            DriverError::not_found(format!(
                "no Neutron port carries the tags of endpoint {}; CreateEndpoint did not \
                 complete: restart the container",
                req.endpoint_id.as_str()
            ))
        })?;
        let subnets = self.cached_subnets(&port.network_id).await?;
        Ok(self.join_response(&port, &subnets))
    }

    /// Join's answer for a port: its veth's container end, the gateways and host routes of
    /// its subnets.
    pub(crate) fn join_response(&self, port: &Port, subnets: &[Subnet]) -> JoinResponse {
        let gateway_of = |v6: bool| -> Option<IpAddr> {
            port.fixed_ips
                .iter()
                .filter_map(|f| subnets.iter().find(|s| s.id == f.subnet_id))
                .filter(|s| (s.ip_version == 6) == v6)
                .filter_map(|s| s.gateway_ip.as_deref()?.parse().ok())
                .next()
        };
        JoinResponse {
            interface_name: InterfaceName {
                src_name: veth_names(&port.id).container,
                dst_prefix: self.config.veth_dst_prefix.clone(),
            },
            gateway: gateway_of(false),
            gateway_ipv6: gateway_of(true),
            static_routes: static_routes(port, subnets),
            disable_gateway_service: true,
        }
    }
}

/// Whether a port is one kuryr's IPAM made (ReleaseAddress deletes it), not a user's.
fn is_ipam_port(port: &Port) -> bool {
    port.tags.iter().any(|t| t == DEVICE_OWNER)
        && !port.tags.iter().any(|t| t == mapping::EXISTING_PORT_TAG)
}

/// The `host_routes` of the port's subnets, as routes via their next hop.
fn static_routes(port: &Port, subnets: &[Subnet]) -> Vec<StaticRoute> {
    subnets
        .iter()
        .filter(|s| port.fixed_ips.iter().any(|f| f.subnet_id == s.id))
        .flat_map(|s| &s.host_routes)
        .filter_map(|r| {
            Some(StaticRoute {
                destination: r.destination.parse().ok()?,
                route_type: 0,
                next_hop: Some(r.nexthop.parse().ok()?),
            })
        })
        .collect()
}
