//! CreateNetwork and DeleteNetwork: a Docker network is a Neutron network (created, or an
//! existing one adopted with `neutron.net.*`) with one subnet per address family.
//!
//! Only what kuryr created is deleted: an adopted network is untagged, and of its subnets
//! only the `kuryr-subnet-*` ones are removed.

use std::net::IpAddr;

use ipnet::IpNet;
use kuryr_libnetwork::network::{
    AllocateNetworkRequest, AllocateNetworkResponse, CreateNetworkRequest, IpamData, NetworkRequest,
};
use kuryr_libnetwork::plugin::Empty;
use kuryr_libnetwork::DockerId;
use kuryr_openstack::neutron::{
    Filters, Network, NetworkSpec, Port, Subnet, SubnetPool, SubnetSpec,
};

use crate::error::{host_err, neutron_err, DriverError, Result};
use crate::ipam::check_shared;
use crate::lookup::same_cidr;
use crate::mapping::{
    self, existing_network_tag, id_tags, DEVICE_OWNER, EXISTING_PORT_TAG, SUBNET_NAME_PREFIX,
};
use crate::nested::PortMode;
use crate::options::{Family, Named, NeutronOptions};
use crate::routing::router_tags;
use crate::Driver;

/// What CreateNetwork did so far, to undo it when a later step fails.
#[derive(Default)]
struct Undo {
    created_network: Option<String>,
    tagged_network: Option<(String, Vec<String>)>,
    created_subnets: Vec<String>,
    /// The subnets this call made, as Neutron answered.
    made_subnets: Vec<Subnet>,
    tagged_subnets: Vec<(String, Vec<String>)>,
    /// (router, subnet) interfaces this call added or may have added.
    routed: Vec<(String, String)>,
}

/// How long FreeNetwork waits for the nodes' last endpoints to go (Docker's plugin calls time
/// out at 30 s).
const FREE_NETWORK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Driver {
    pub(crate) async fn create_network(&self, req: &CreateNetworkRequest) -> Result<Empty> {
        self.create_network_as(req, false).await
    }

    /// CreateNetwork, or with `swarm_manager` the manager's AllocateNetwork: only that one
    /// makes a swarm network in Neutron; a node's CreateNetwork finds it or fails.
    async fn create_network_as(
        &self,
        req: &CreateNetworkRequest,
        swarm_manager: bool,
    ) -> Result<Empty> {
        let may_create = swarm_manager || !req.network_id.is_swarm();
        let generic = req
            .options
            .generic()
            .map_err(|e| DriverError::invalid(format!("Options: {e}")))?;
        let opts = NeutronOptions::parse(&generic)?;
        let families = [
            (Family::V4, req.ipv4_data.first()),
            (Family::V6, req.ipv6_data.first()),
        ];
        for (family, data) in families {
            if let Some(d) = data {
                check_ipam_data(family, d)?;
            }
        }
        let mut undo = Undo::default();
        let mut result = self
            .create_network_steps(req, &opts, &families, may_create, &mut undo)
            .await;
        let raced = match &result {
            Err(e) if self.raced(&req.network_id, &undo).await => Some(e.report()),
            _ => None,
        };
        if let Some(first) = raced {
            // A global-scope network reaches every host's CreateNetwork: another host made
            // it at the same moment, and its subnet took the pool's CIDR first (the pool
            // gives a CIDR once, which decides the race). What this call made goes, except
            // a network holding the other's subnet; the other's network serves.
            tracing::info!(network = %req.network_id.as_str(), "another host made this network at the same moment; using what it made ({first})");
            self.undo(std::mem::take(&mut undo)).await;
            result = self
                .create_network_steps(req, &opts, &families, may_create, &mut undo)
                .await;
        }
        if result.is_err() {
            self.undo(undo).await;
        } else {
            self.pooled_network_created(&req.network_id).await;
        }
        result.map(|_| Empty {})
    }

    async fn create_network_steps(
        &self,
        req: &CreateNetworkRequest,
        opts: &NeutronOptions,
        families: &[(Family, Option<&IpamData>); 2],
        may_create: bool,
        undo: &mut Undo,
    ) -> Result<()> {
        // Its pools made a moment ago by this daemon, and no CreateNetwork of it tried here
        // before: the network cannot be in Neutron yet (a CreateNetwork sent again after a
        // restart, or of an existing pool, looks first).
        // A swarm network is never fresh on a node: the manager's AllocateNetwork made it
        // (each node's RequestPool makes a pool of its own, which the subnet is tagged with).
        let first_attempt = self.cache.first_create_attempt(req.network_id.as_str());
        let fresh = first_attempt
            && !req.network_id.is_swarm()
            && families.iter().any(|(_, d)| d.is_some())
            && families.iter().all(|(_, d)| {
                d.is_none_or(|d| self.cache.new_pool_of(&d.pool.to_string()).is_some())
            });
        let network = self
            .network_for(&req.network_id, opts, fresh, may_create, undo)
            .await?;
        for (family, data) in families {
            if let Some(data) = data {
                self.ensure_subnet(&network, *family, data, opts, undo)
                    .await?;
            }
        }
        // A network this call made has exactly the subnets it made: the first container
        // needs no lookup.
        if undo.created_network.as_deref() == Some(network.id.as_str()) {
            self.cache.set_network(req.network_id.as_str(), &network);
            self.cache.set_subnets(&network.id, &undo.made_subnets);
        }
        Ok(())
    }

    /// Whether another host's CreateNetwork of the same Docker network got in the way of
    /// this one: a network kuryr made for it (this call's or another's) has a subnet this
    /// call did not make.
    async fn raced(&self, docker_id: &DockerId, undo: &Undo) -> bool {
        let Ok(networks) = self
            .neutron
            .networks()
            .list(&Filters::new().tags(id_tags(docker_id)))
            .await
        else {
            return false;
        };
        let existing = existing_network_tag(docker_id);
        networks
            .iter()
            .filter(|n| !n.tags.contains(&existing))
            .flat_map(|n| &n.subnets)
            .any(|s| !undo.created_subnets.contains(s))
    }

    /// The Neutron network: already mapped (a retried call), adopted, or created.
    async fn network_for(
        &self,
        docker_id: &DockerId,
        opts: &NeutronOptions,
        fresh: bool,
        may_create: bool,
        undo: &mut Undo,
    ) -> Result<Network> {
        if !fresh {
            if let Some(network) = self.network_of(docker_id).await? {
                return Ok(network);
            }
        }
        if !may_create {
            return Err(DriverError::not_found(format!(
                "swarm network {} has no Neutron network: the swarm manager's AllocateNetwork \
                 makes it; is the plugin enabled on the manager, with capability_scope = global?",
                docker_id.as_str()
            )));
        }
        let api = self.neutron.networks();
        let mut tags = id_tags(docker_id).to_vec();
        if opts.floating_ip {
            tags.push(mapping::fip_auto_tag(docker_id));
        }
        // Without `neutron.net.*`, a nested mode may have a network of its own (the VM's).
        let default = match &opts.network {
            Some(_) => None,
            None => self.default_network_id().await?.map(Named::Id),
        };
        if let Some(named) = opts.network.as_ref().or(default.as_ref()) {
            let network = self
                .named(api.clone(), "network", named, |n: &Network| &n.id)
                .await?;
            check_shared("network", &network.id, network.shared, opts.shared)?;
            tags.push(existing_network_tag(docker_id));
            let control_plane = self.config.control_plane.id().await?;
            tags.push(mapping::network_scope_tag(docker_id, &control_plane));
            self.tag_each(api, &network.id, &tags)
                .await
                .map_err(neutron_err(format_args!("tagging network {}", network.id)))?;
            undo.tagged_network = Some((network.id.clone(), tags));
            return Ok(network);
        }
        let name = mapping::network_name(docker_id);
        let network = api
            .create(&NetworkSpec {
                name: Some(name.clone()),
                admin_state_up: Some(true),
                shared: opts.shared,
                ..Default::default()
            })
            .await
            .map_err(neutron_err(format_args!("creating network {name}")))?;
        undo.created_network = Some(network.id.clone());
        // This host's tag: its reconciler may remove the network once Docker has none such.
        tags.push(mapping::host_tag(&self.config.host_id));
        api.replace_tags(&network.id, &tags)
            .await
            .map_err(neutron_err(format_args!("tagging network {}", network.id)))?;
        Ok(Network { tags, ..network })
    }

    /// The network's subnet for one family: an existing one with exactly the pool's CIDR
    /// is adopted, otherwise `kuryr-subnet-<cidr>` is created from the pool.
    async fn ensure_subnet(
        &self,
        network: &Network,
        family: Family,
        data: &IpamData,
        opts: &NeutronOptions,
        undo: &mut Undo,
    ) -> Result<()> {
        let cidr = data.pool;
        let gateway = data.gateway.map(|g| g.addr());
        // A network made a moment ago by this call has no subnets yet.
        let all_subnets = if undo.created_network.as_deref() == Some(network.id.as_str()) {
            Vec::new()
        } else {
            self.subnets_of(&network.id).await?
        };
        let on_network: Vec<&Subnet> = all_subnets
            .iter()
            .filter(|s| same_cidr(&s.cidr, &cidr.to_string()))
            .collect();
        let named_subnet = match opts.subnet(family) {
            Some(named) => Some(
                self.named(self.neutron.subnets(), "subnet", named, |s: &Subnet| &s.id)
                    .await?,
            ),
            None => None,
        };
        let pool = self
            .pool_for_network(&cidr, family, opts, named_subnet.as_ref())
            .await?;
        match on_network.as_slice() {
            [] => {
                if let Some(s) = &named_subnet {
                    return Err(DriverError::conflict(format!(
                        "{} names subnet {}, which is on network {}, not on {}; pass the \
                         subnet's network with -o neutron.net.uuid={}",
                        NeutronOptions::subnet_key(family),
                        s.id,
                        s.network_id,
                        network.id,
                        s.network_id
                    )));
                }
                let pool = pool.as_ref();
                // Neutron keeps one subnetpool per IP version on a network: next to a subnet
                // of another pool (or of none), a subnet of kuryr's own one-CIDR pool is
                // created pool-less; its tag still ties it to the pool for IPAM.
                let other_pool = all_subnets.iter().any(|s| {
                    s.ip_version == family.ip_version()
                        && s.subnetpool_id.as_deref() != pool.map(|p| p.id.as_str())
                });
                let from_pool = match pool {
                    Some(p) if other_pool => {
                        if !p.prefixes.iter().all(|x| same_cidr(x, &cidr.to_string())) {
                            return Err(DriverError::conflict(format!(
                                "network {} already has IPv{} subnets from another \
                                subnetpool (or none), and Neutron allows one pool per IP \
                                version on a network; subnetpool {} ({}) cannot give {cidr} \
                                there: pass --ipam-opt {}=<the pool of those subnets>, or \
                                use another network",
                                network.id,
                                family.ip_version(),
                                p.id,
                                p.name,
                                NeutronOptions::pool_key(family)
                            )));
                        }
                        false
                    }
                    _ => true,
                };
                self.create_subnet(network, family, data, opts, pool, from_pool, undo)
                    .await
            }
            [existing] => {
                if let Some(s) = &named_subnet {
                    if s.id != existing.id {
                        return Err(DriverError::conflict(format!(
                            "network {} has subnet {} with CIDR {cidr}, not the subnet {} \
                             that {} names",
                            network.id,
                            existing.id,
                            s.id,
                            NeutronOptions::subnet_key(family)
                        )));
                    }
                }
                let current = existing
                    .gateway_ip
                    .as_deref()
                    .and_then(|g| g.parse::<IpAddr>().ok());
                if let (Some(want), Some(have)) = (gateway, current) {
                    if want != have {
                        return Err(DriverError::conflict(format!(
                            "--gateway {want} differs from the gateway {have} of existing \
                             subnet {}; pass --gateway {have}",
                            existing.id
                        )));
                    }
                }
                // The pool IPAM used; without `-o neutron.pool.*`, the subnet's own pool.
                let pool = match (pool, &existing.subnetpool_id) {
                    (Some(p), _) => Some(p),
                    (None, Some(id)) => self
                        .neutron
                        .subnetpools()
                        .get_opt(id)
                        .await
                        .map_err(neutron_err(format_args!("looking up subnetpool {id}")))?,
                    (None, None) => None,
                };
                if let Some(pool) = &pool {
                    self.cache.pool_used(&pool.id);
                }
                // Only a tag this call adds is this call's to take back on a failure.
                if let Some(pool) = pool.as_ref().filter(|p| !existing.tags.contains(&p.id)) {
                    let tag = vec![pool.id.clone()];
                    self.tag_each(self.neutron.subnets(), &existing.id, &tag)
                        .await
                        .map_err(neutron_err(format_args!("tagging subnet {}", existing.id)))?;
                    undo.tagged_subnets.push((existing.id.clone(), tag));
                }
                Ok(())
            }
            several => Err(DriverError::conflict(format!(
                "network {} has {} subnets with CIDR {cidr} ({}); kuryr needs exactly one",
                network.id,
                several.len(),
                several
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The subnetpool IPAM made for this CIDR; None when the network's addresses come
    /// from another IPAM driver (Docker's default), which kuryr supports too.
    async fn pool_for_network(
        &self,
        cidr: &IpNet,
        family: Family,
        opts: &NeutronOptions,
        subnet: Option<&Subnet>,
    ) -> Result<Option<SubnetPool>> {
        if let Some(named) = opts.pool(family) {
            return self
                .named(
                    self.neutron.subnetpools(),
                    "subnetpool",
                    named,
                    |p: &SubnetPool| &p.id,
                )
                .await
                .map(Some);
        }
        if subnet.is_none() {
            if let Some(pool) = self.cache.new_pool_of(&cidr.to_string()) {
                return Ok(Some(pool));
            }
        }
        self.find_kuryr_pool(cidr, subnet.map(|s| s.id.as_str()))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_subnet(
        &self,
        network: &Network,
        family: Family,
        data: &IpamData,
        opts: &NeutronOptions,
        pool: Option<&SubnetPool>,
        from_pool: bool,
        undo: &mut Undo,
    ) -> Result<()> {
        let (cidr, gateway) = (data.pool, data.gateway.map(|g| g.addr()));
        let name = mapping::subnet_name(&cidr);
        let api = self.neutron.subnets();
        let subnet = api
            .create(&SubnetSpec {
                name: Some(name.clone()),
                network_id: Some(network.id.clone()),
                ip_version: Some(family.ip_version()),
                cidr: Some(cidr.to_string()),
                subnetpool_id: pool.filter(|_| from_pool).map(|p| p.id.clone()),
                enable_dhcp: Some(self.config.enable_dhcp),
                gateway_ip: gateway.map(|g| Some(g.to_string())),
                ..Default::default()
            })
            .await;
        let subnet = match subnet {
            Ok(s) => s,
            Err(e) => return Err(self.explain_subnet_failure(&name, network, pool, &e).await),
        };
        undo.created_subnets.push(subnet.id.clone());
        let mut subnet = subnet;
        let router = self.router_for(opts).await?;
        // Also on a subnet made from the pool: upstream's ReleaseAddress only looks at the
        // subnets tagged with the PoolID. The router's tag goes before the interface.
        let mut tags: Vec<String> = pool.map(|p| p.id.clone()).into_iter().collect();
        tags.extend(router_tags(router.as_ref(), subnet.gateway_ip.is_some()));
        if mapping::serves_swarm(&network.tags) {
            tags.push(mapping::SWARM_SUBNET_TAG.to_owned());
        }
        if !tags.is_empty() {
            api.replace_tags(&subnet.id, &tags)
                .await
                .map_err(neutron_err(format_args!("tagging subnet {}", subnet.id)))?;
            subnet.tags = tags;
        }
        if let Some(pool) = pool {
            self.cache.pool_used(&pool.id);
            self.cache.set_pool_subnet(&pool.id, &subnet);
        }
        if let Some(router) = router.filter(|_| subnet.gateway_ip.is_some()) {
            undo.routed.push((router.id.clone(), subnet.id.clone()));
            self.attach_subnet(&router, &subnet).await?;
        }
        undo.made_subnets.push(subnet);
        Ok(())
    }

    /// A subnet the pool cannot give is almost always taken by another network (often one
    /// Docker forgot while kuryr was down): say which.
    async fn explain_subnet_failure(
        &self,
        name: &str,
        network: &Network,
        pool: Option<&SubnetPool>,
        err: &kuryr_openstack::Error,
    ) -> DriverError {
        let doing = format!("creating subnet {name} on network {}", network.id);
        let taken = match (pool, err.kind()) {
            (Some(pool), Some("SubnetAllocationError")) => self
                .neutron
                .subnets()
                .list(
                    &Filters::new()
                        .eq("subnetpool_id", pool.id.as_str())
                        .fields(["id", "network_id"]),
                )
                .await
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        match (pool, taken.as_slice()) {
            (Some(pool), [first, ..]) => DriverError::conflict(format!(
                "{doing}: subnetpool {} ({}) already gave this CIDR to subnet {} of network \
                 {}; delete that network if it is a leftover, or pick another --subnet, or \
                 give each network its own pool with --ipam-opt neutron.pool.uuid=...",
                pool.id, pool.name, first.id, first.network_id
            )),
            _ => DriverError::neutron(doing, err),
        }
    }

    /// Best effort: a failed CreateNetwork leaves Neutron as it found it.
    async fn undo(&self, undo: Undo) {
        // A subnet with a router interface cannot be deleted.
        for (router, subnet) in &undo.routed {
            if let Err(e) = self.detach_subnet(router, subnet).await {
                tracing::warn!(%router, %subnet, "rolling back: cannot detach subnet: {}", e.report());
            }
        }
        for id in &undo.created_subnets {
            if let Err(e) = self.neutron.subnets().delete(id).await {
                tracing::warn!(subnet = %id, "rolling back: cannot delete subnet: {e}");
            }
        }
        for (id, tags) in &undo.tagged_subnets {
            let _ = self.untag_each(self.neutron.subnets(), id, tags).await;
        }
        if let Some(id) = &undo.created_network {
            // Another host's CreateNetwork of the same network may have put its subnet on
            // it (found it while this call made it): then it is that host's now.
            let foreign = match self.neutron.networks().get_opt(id).await {
                Ok(Some(n)) => n.subnets.iter().any(|s| !undo.created_subnets.contains(s)),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(network = %id, "rolling back: cannot read network: {e}");
                    false
                }
            };
            if foreign {
                tracing::info!(network = %id, "rolling back: another host's subnet is on the network this call made; left to it");
            } else if let Err(e) = self.neutron.networks().delete(id).await {
                tracing::warn!(network = %id, "rolling back: cannot delete network: {e}");
            }
        }
        if let Some((id, tags)) = &undo.tagged_network {
            let _ = self.untag_each(self.neutron.networks(), id, tags).await;
        }
    }

    /// A swarm manager's AllocateNetwork, before any node creates the network and before
    /// it takes the tasks' addresses from kuryr's IPAM: the Neutron network and subnets are
    /// made here, so those addresses are Neutron ports' from the start; each node's
    /// CreateNetwork then finds them.
    pub(crate) async fn allocate_network(
        &self,
        req: &AllocateNetworkRequest,
    ) -> Result<AllocateNetworkResponse> {
        self.create_network_as(&req.as_create(), true).await?;
        Ok(AllocateNetworkResponse {
            options: req.options.clone(),
        })
    }

    /// A swarm manager's FreeNetwork (`docker network rm`, no task left on any node): the
    /// Neutron side goes, as a local network's does at DeleteNetwork.
    pub(crate) async fn free_network(&self, req: &NetworkRequest) -> Result<Empty> {
        // The manager frees the network once no task uses it: the kuryr ports left are of
        // nodes still taking their last endpoints down, or of nodes that died, bound to
        // other hosts, so none of them would delete them. Other ports (a user's) hold the
        // network for a while; past the wait, the teardown journal tries again.
        if let Some(network) = self.network_of(&req.network_id).await? {
            let ports = self
                .neutron
                .ports()
                .list(
                    &Filters::new()
                        .eq("network_id", network.id.as_str())
                        .eq("device_owner", mapping::DEVICE_OWNER)
                        .fields(["id"]),
                )
                .await
                .map_err(neutron_err(format_args!(
                    "listing the kuryr ports on network {}",
                    network.id
                )))?;
            for port in ports {
                tracing::info!(port = %port.id, "FreeNetwork: deleting a task's port");
                self.neutron
                    .ports()
                    .delete(&port.id)
                    .await
                    .map_err(neutron_err(format_args!("deleting port {}", port.id)))?;
            }
        }
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            match self.remove_network(req).await {
                Err(e)
                    if e.neutron_cause().is_some_and(|n| n.is_conflict())
                        && started.elapsed() < FREE_NETWORK_WAIT =>
                {
                    tracing::info!(network = %req.network_id.as_str(), "nodes are still removing their tasks' ports; trying again: {}", e.report());
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(4));
                }
                other => return other,
            }
        }
    }

    /// DeleteNetwork. A node's DeleteNetwork of a swarm network only means its last task
    /// there left: other nodes' tasks still use the network and the manager may place new
    /// ones any time, so only what this daemon remembers goes; FreeNetwork removes it.
    pub(crate) async fn delete_network(&self, req: &NetworkRequest) -> Result<Empty> {
        if req.network_id.is_swarm() {
            if let Some(network) = self.cache.network(req.network_id.as_str()) {
                self.cache
                    .forget_network(req.network_id.as_str(), &network.id);
            }
            tracing::info!(network = %req.network_id.as_str(), "a swarm network left this node; the manager's FreeNetwork removes it from Neutron");
            return Ok(Empty {});
        }
        self.remove_network(req).await
    }

    /// Removes a Docker network's Neutron side: what kuryr made is deleted, what it adopted
    /// is given back.
    pub(crate) async fn remove_network(&self, req: &NetworkRequest) -> Result<Empty> {
        // Read afresh: other control planes may have attached it since it was remembered.
        let Some(network) = self.network_of(&req.network_id).await? else {
            tracing::warn!(network = %req.network_id.as_str(), "DeleteNetwork: no Neutron network carries its tags; nothing to delete");
            return Ok(Empty {});
        };
        // A network the user made stays, and other hosts' pools on it with it; so does one
        // that other control planes attached.
        let adopted = network
            .tags
            .contains(&existing_network_tag(&req.network_id));
        let deleted = self
            .with_pools_closed(
                &network.id,
                !adopted && !mapping::attached_by_some(&network.tags),
                self.delete_network_resources(req, &network),
            )
            .await;
        // Whatever happened, what was remembered is read again next time.
        self.cache
            .forget_network(req.network_id.as_str(), &network.id);
        self.ledger.forget_network(&network.id);
        deleted
    }

    async fn delete_network_resources(
        &self,
        req: &NetworkRequest,
        network: &Network,
    ) -> Result<Empty> {
        // Before the router interfaces, which a floating IP's forwardings hold.
        self.release_network_fips(&req.network_id).await?;
        let adopted = network
            .tags
            .contains(&existing_network_tag(&req.network_id));
        if !adopted && mapping::attached_by_some(&network.tags) {
            return self.leave_to_others(req, network).await;
        }
        if !adopted {
            // An adopted network may serve other Docker networks: leave their ports alone.
            self.delete_leftover_ports(network).await?;
        }
        let subnets = match self.cache.subnets(&network.id) {
            Some(subnets) => subnets,
            None => self.subnets_of(&network.id).await?,
        };
        let mut pools: Vec<String> = Vec::new();
        if !adopted {
            // Neutron deletes a network's subnets with it, once no router holds them.
            self.detach_subnets(&subnets).await?;
            match self.neutron.networks().delete(&network.id).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(DriverError::neutron(
                        format!("deleting network {}", network.id),
                        &e,
                    ))
                }
            }
            pools.extend(subnets.iter().filter_map(|s| s.subnetpool_id.clone()));
            self.forget_pools(pools).await?;
            return Ok(Empty {});
        }
        // An adopted network stays, and so do the user's subnets on it.
        for subnet in subnets {
            let ours = subnet.name.starts_with(SUBNET_NAME_PREFIX);
            if !ours {
                // The user's subnet stays; its pool may now be unused by Docker.
                pools.extend(subnet.subnetpool_id.clone());
                continue;
            }
            // Another Docker network on this Neutron network may still use it.
            if self.subnet_in_use(&subnet).await? {
                tracing::warn!(subnet = %subnet.id, "subnet of an adopted network still in use; left in place, with its router");
                continue;
            }
            self.detach_subnets(std::slice::from_ref(&subnet)).await?;
            match self.neutron.subnets().delete(&subnet.id).await {
                Ok(_) => pools.extend(subnet.subnetpool_id.clone()),
                Err(e) if e.is_conflict() => {
                    tracing::warn!(subnet = %subnet.id, "subnet of an adopted network still in use; left in place: {e}");
                }
                Err(e) => {
                    return Err(DriverError::neutron(
                        format!("deleting subnet {}", subnet.id),
                        &e,
                    ))
                }
            }
        }
        let mut ours = id_tags(&req.network_id).to_vec();
        ours.push(existing_network_tag(&req.network_id));
        ours.push(mapping::fip_auto_tag(&req.network_id));
        // Under whichever control plane id it was attached (the id may be configured since).
        let scope = mapping::network_scope_prefix(&req.network_id);
        ours.extend(
            network
                .tags
                .iter()
                .filter(|t| t.starts_with(&scope) && !ours.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.untag_network(&network.id, &ours).await?;
        self.forget_pools(pools).await?;
        Ok(Empty {})
    }

    /// A network kuryr made for this Docker network that Docker networks of other control
    /// planes attached since (`-o neutron.net.uuid`): deleting it would cut their
    /// containers off, so only this Docker network's mapping goes, and the network with its
    /// subnets is theirs from now on (they never delete it: an operator does once they are
    /// done). Without this host's tag, no reconciler takes it for an orphan.
    async fn leave_to_others(&self, req: &NetworkRequest, network: &Network) -> Result<Empty> {
        tracing::warn!(
            network = %network.id,
            "the Neutron network kuryr made for this Docker network is attached by Docker \
             networks of other control planes: left to them with its subnets; delete it \
             once they are done with it"
        );
        let mut ours = id_tags(&req.network_id).to_vec();
        ours.push(mapping::fip_auto_tag(&req.network_id));
        ours.extend(
            network
                .tags
                .iter()
                .filter(|t| mapping::is_host_tag(t))
                .cloned(),
        );
        self.untag_network(&network.id, &ours).await?;
        Ok(Empty {})
    }

    /// Removes this Docker network's mapping tags from a Neutron network it leaves in place.
    async fn untag_network(&self, network_id: &str, tags: &[String]) -> Result<()> {
        self.untag_each(self.neutron.networks(), network_id, tags)
            .await
            .map_err(neutron_err(format_args!("untagging network {network_id}")))
    }

    /// Whether a subnet holds ports other than Neutron's own (router interfaces, DHCP).
    async fn subnet_in_use(&self, subnet: &Subnet) -> Result<bool> {
        let ports = self
            .neutron
            .ports()
            .list(
                &Filters::new()
                    .eq("network_id", subnet.network_id.as_str())
                    .eq("fixed_ips", format!("subnet_id={}", subnet.id))
                    .fields(["id", "device_owner"]),
            )
            .await
            .map_err(neutron_err(format_args!(
                "listing the ports of subnet {}",
                subnet.id
            )))?;
        Ok(ports
            .iter()
            .any(|p| !p.device_owner.starts_with("network:")))
    }

    /// Pools released before DeleteNetwork (Docker 20.10's order) go once their subnets
    /// have.
    async fn forget_pools(&self, pool_ids: Vec<String>) -> Result<()> {
        for pool_id in pool_ids {
            let pool = match self.cache.pool(&pool_id) {
                Some(pool) => Some(pool),
                None => self
                    .neutron
                    .subnetpools()
                    .get_opt(&pool_id)
                    .await
                    .ok()
                    .flatten(),
            };
            if let Some(pool) = pool {
                self.forget_subnetpool(&pool).await?;
            }
            self.cache.forget_subnetpool(&pool_id);
        }
        Ok(())
    }

    /// What kuryr left on a network it created: Docker deletes a network only once it has
    /// no endpoints, so every kuryr port of this host still there is stale (a DeleteEndpoint
    /// or ReleaseAddress that failed, or a crash between calls). Each goes with its host side;
    /// a port the user made and a container adopted is given back instead. Ports of other
    /// hosts are left alone, as are Neutron's own (DHCP, router interfaces).
    async fn delete_leftover_ports(&self, network: &Network) -> Result<()> {
        let ports = self
            .neutron
            .ports()
            .list(&Filters::new().eq("network_id", network.id.as_str()))
            .await
            .map_err(neutron_err(format_args!(
                "listing the ports of network {}",
                network.id
            )))?;
        // In a VM, Neutron binds the containers' ports (subports) to the hypervisor.
        let nested = matches!(self.config.port_mode, PortMode::Nested(_));
        let this_host = |p: &Port| {
            nested || p.binding_host_id.is_empty() || p.binding_host_id == self.config.host_id
        };
        // Another Docker network attached to this one (`neutron.net.*`) still has its
        // endpoints here: only ports no endpoint holds are stale then.
        let shared = mapping::attached_by_some(&network.tags);
        for port in ports.iter().filter(|p| this_host(p)) {
            if shared && mapping::id_of_tags(&port.tags).is_some() {
                continue;
            }
            self.remove_stale_port(port).await?;
        }
        Ok(())
    }

    /// Whether the host has the veth kuryr makes for `port`.
    async fn has_host_interface(&self, port: &Port) -> Result<bool> {
        let name = kuryr_binding::veth_names(&port.id).host;
        let binder = self.binder().await?;
        binder
            .netlink
            .link(&name)
            .await
            .map(|l| l.is_some())
            .map_err(host_err(format!("looking for {name}")))
    }

    /// Removes a port no operation will finish, with its host side: a port the user made and
    /// a container adopted is given back instead; a port that is not kuryr's is left alone.
    pub(crate) async fn remove_stale_port(&self, port: &Port) -> Result<()> {
        let adopted = port.tags.iter().any(|t| t == EXISTING_PORT_TAG);
        let ours = port.tags.iter().any(|t| t == DEVICE_OWNER)
            || port.device_owner == DEVICE_OWNER
            || (!port.device_id.is_empty() && port.name == format!("{}-port", port.device_id));
        if !adopted && !ours {
            return Ok(());
        }
        match (mapping::id_of_tags(&port.tags), &self.config.port_mode) {
            (Some(endpoint), mode) => {
                tracing::info!(port = %port.id, %endpoint, "removing an endpoint Docker no longer has");
                match mode {
                    PortMode::Veth => self.unplug(&endpoint, port).await?,
                    PortMode::Nested(nested) => self.unplug_nested(nested, port).await?,
                }
            }
            // A free pool port waits plugged in, with no endpoint: its interface goes too.
            (None, PortMode::Veth) if self.has_host_interface(port).await? => {
                tracing::info!(port = %port.id, "removing the interface of a port nobody holds");
                self.unplug("", port).await?;
            }
            (None, _) => {}
        }
        if adopted {
            return self.release_port(port).await;
        }
        tracing::info!(port = %port.id, "deleting a kuryr port nobody released");
        self.release_subport(port).await?;
        match self.neutron.ports().delete(&port.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::neutron(
                format!("deleting leftover port {}", port.id),
                &e,
            )),
        }
    }
}

/// IPAM data must be consistent before anything is created.
fn check_ipam_data(family: Family, data: &IpamData) -> Result<()> {
    let v = family.ip_version();
    if Family::of(&data.pool) != family {
        return Err(DriverError::invalid(format!(
            "IPv{v}Data Pool {} is not an IPv{v} network",
            data.pool
        )));
    }
    if let Some(gw) = data.gateway {
        if !data.pool.contains(&gw.addr()) {
            return Err(DriverError::invalid(format!(
                "gateway {} is outside the subnet {}",
                gw.addr(),
                data.pool
            )));
        }
    }
    Ok(())
}
