//! Neutron lookups shared by the calls: everything kuryr maps is found by its tags.

use ipnet::IpNet;
use kuryr_libnetwork::{DockerId, PoolId};
use kuryr_openstack::neutron::{Api, Resource, Taggable};
use kuryr_openstack::neutron::{Filters, Network, Port, Subnet, SubnetPool};

use crate::error::{neutron_err, DriverError, Result};
use crate::mapping::{self, id_tags};
use crate::options::Named;
use crate::Driver;

impl Driver {
    /// The Neutron network of a Docker network, found by the id tags.
    pub(crate) async fn network_of(&self, docker_id: &DockerId) -> Result<Option<Network>> {
        let mut found = self
            .neutron
            .networks()
            .list(&Filters::new().tags(id_tags(docker_id)))
            .await
            .map_err(neutron_err(format_args!(
                "looking up the Neutron network of Docker network {}",
                docker_id.as_str()
            )))?;
        // Two hosts making one global-scope network at the same moment both tag a network
        // for an instant; the one whose subnet the pool gave is it, and the other goes.
        if found.len() > 1 && found.iter().filter(|n| !n.subnets.is_empty()).count() == 1 {
            found.retain(|n| !n.subnets.is_empty());
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => Err(DriverError::conflict(format!(
                "{n} Neutron networks carry the tags of Docker network {}: {}; remove the \
                 tags from all but one",
                docker_id.as_str(),
                found
                    .iter()
                    .map(|n| n.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The ports of a network that hold `ip` from subnet `subnet_id` (Neutron filters by
    /// address only, and the same address may be in another subnet of the network).
    pub(crate) async fn ports_holding(
        &self,
        network_id: &str,
        subnet_id: &str,
        ip: &str,
    ) -> Result<Vec<Port>> {
        let ports = self
            .neutron
            .ports()
            .list(
                &Filters::new()
                    .eq("network_id", network_id)
                    .eq("fixed_ips", format!("ip_address={ip}")),
            )
            .await
            .map_err(neutron_err(format_args!(
                "looking up the port of address {ip}"
            )))?;
        Ok(ports
            .into_iter()
            .filter(|p| p.fixed_ips.iter().any(|f| f.subnet_id == subnet_id))
            .collect())
    }

    /// The Neutron port of a Docker endpoint: the one this daemon bound, or the one Neutron
    /// finds by the id tags.
    pub(crate) async fn port_of(&self, endpoint: &DockerId) -> Result<Option<Port>> {
        if let Some(entry) = self.ledger.by_endpoint(endpoint.as_str()) {
            return Ok(Some(entry.port));
        }
        self.tagged_port_of(endpoint).await
    }

    /// The port of a Docker endpoint as Neutron has it now, found by the id tags.
    pub(crate) async fn tagged_port_of(&self, endpoint: &DockerId) -> Result<Option<Port>> {
        // A pooled endpoint's tags may still be on their way to Neutron.
        if let Some(port) = self.pooled_port_of(endpoint.as_str()) {
            return Ok(Some(port));
        }
        let mut found = self
            .neutron
            .ports()
            .list(&Filters::new().tags(id_tags(endpoint)))
            .await
            .map_err(neutron_err(format_args!(
                "looking up the Neutron port of endpoint {}",
                endpoint.as_str()
            )))?;
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => Err(DriverError::conflict(format!(
                "{n} Neutron ports carry the tags of endpoint {}; remove the tags from all \
                 but one",
                endpoint.as_str()
            ))),
        }
    }

    /// The subnets of a network.
    pub(crate) async fn subnets_of(&self, network_id: &str) -> Result<Vec<Subnet>> {
        self.neutron
            .subnets()
            .list(&Filters::new().eq("network_id", network_id))
            .await
            .map_err(neutron_err(format_args!(
                "listing the subnets of Neutron network {network_id}"
            )))
    }

    /// The subnets whose addresses a pool hands out: allocated from the pool, or adopted
    /// and tagged with its id; when several, the one whose CIDR is the pool's prefix.
    pub(crate) async fn subnet_of_pool(&self, pool: &SubnetPool) -> Result<Option<Subnet>> {
        let api = self.neutron.subnets();
        let doing = || format!("looking up the subnet of subnetpool {}", pool.id);
        let mut found = api
            .list(&Filters::new().eq("subnetpool_id", pool.id.as_str()))
            .await
            .map_err(|e| DriverError::neutron(doing(), &e))?;
        let tagged = api
            .list(&Filters::new().tags([pool.id.as_str()]))
            .await
            .map_err(|e| DriverError::neutron(doing(), &e))?;
        for s in tagged {
            if !found.iter().any(|f| f.id == s.id) {
                found.push(s);
            }
        }
        if found.len() > 1 {
            found.retain(|s| pool.prefixes.iter().any(|p| same_cidr(p, &s.cidr)));
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => Err(DriverError::conflict(format!(
                "subnetpool {} has several subnets with its prefix ({}); kuryr cannot tell \
                 which Docker network an address is for: give each network its own pool",
                pool.id,
                found
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The subnet a PoolID hands addresses from, remembered once found.
    pub(crate) async fn cached_pool_subnet(&self, pool_id: &PoolId) -> Result<Option<Subnet>> {
        if let Some(subnet) = self.cache.pool_subnet(pool_id.as_str()) {
            return Ok(Some(subnet));
        }
        let Some(pool) = self.subnetpool(pool_id).await? else {
            return Ok(None);
        };
        let subnet = self.subnet_of_pool(&pool).await?;
        if let Some(s) = &subnet {
            self.cache.set_pool_subnet(&pool.id, s);
        }
        Ok(subnet)
    }

    /// The Neutron network of a Docker network, remembered once found.
    pub(crate) async fn cached_network(&self, docker_id: &DockerId) -> Result<Option<Network>> {
        if let Some(network) = self.cache.network(docker_id.as_str()) {
            return Ok(Some(network));
        }
        let network = self.network_of(docker_id).await?;
        if let Some(n) = &network {
            self.cache.set_network(docker_id.as_str(), n);
        }
        Ok(network)
    }

    /// The subnets of a Docker network's Neutron network, remembered.
    pub(crate) async fn docker_network_subnets(&self, docker_id: &DockerId) -> Result<Vec<Subnet>> {
        match self.cached_network(docker_id).await? {
            Some(network) => self.cached_subnets(&network.id).await,
            None => Err(DriverError::not_found(
                "no Neutron network carries the Docker network's tags",
            )),
        }
    }

    /// A network's subnets, remembered (and read again in the background, see
    /// [`Driver::refresh_cache`]).
    pub(crate) async fn cached_subnets(&self, network_id: &str) -> Result<Vec<Subnet>> {
        if let Some(subnets) = self.cache.subnets(network_id) {
            return Ok(subnets);
        }
        let subnets = self.subnets_of(network_id).await?;
        self.cache.set_subnets(network_id, &subnets);
        Ok(subnets)
    }

    /// A resource named by the user: it must exist, and a name must be unique.
    pub(crate) async fn named<R: Resource>(
        &self,
        api: Api<R>,
        what: &str,
        named: &Named,
        id_of: impl Fn(&R) -> &str,
    ) -> Result<R> {
        match named {
            Named::Id(id) => match api.get_opt(id).await {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(DriverError::not_found(format!(
                    "no Neutron {what} with id {id}; check the id (openstack {what} list)"
                ))),
                Err(e) => Err(DriverError::neutron(format!("looking up {what} {id}"), &e)),
            },
            Named::Name(name) => {
                let mut found = api
                    .list(&Filters::new().eq("name", name.as_str()))
                    .await
                    .map_err(neutron_err(format_args!("looking up {what} {name:?}")))?;
                match found.len() {
                    0 => Err(DriverError::not_found(format!(
                        "no Neutron {what} named {name:?}; check the name or pass its uuid"
                    ))),
                    1 => Ok(found.remove(0)),
                    n => Err(DriverError::conflict(format!(
                        "{n} Neutron {what}s are named {name:?} ({}); pass the uuid instead",
                        found.iter().map(&id_of).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    }

    /// Add tags to a resource that others tag too (a network or subnet several Docker
    /// networks, hosts or control planes map), one request per tag: a whole-list write from
    /// a read that is already stale would drop what the others added meanwhile.
    pub(crate) async fn tag_each<R: Taggable>(
        &self,
        api: Api<R>,
        id: &str,
        add: &[String],
    ) -> kuryr_openstack::Result<()> {
        for tag in add {
            api.add_tag(id, tag).await?;
        }
        Ok(())
    }

    /// Remove this caller's tags from a resource that others tag too, one request per tag
    /// (one that is gone already is fine), for the reason [`Self::tag_each`] gives.
    pub(crate) async fn untag_each<R: Taggable>(
        &self,
        api: Api<R>,
        id: &str,
        remove: &[String],
    ) -> kuryr_openstack::Result<()> {
        for tag in remove {
            api.remove_tag(id, tag).await?;
        }
        Ok(())
    }

    /// Add tags to a resource in one request (a no-op when it has them all).
    pub(crate) async fn add_tags<R: Taggable>(
        &self,
        api: Api<R>,
        id: &str,
        current: &[String],
        add: &[String],
    ) -> kuryr_openstack::Result<()> {
        if add.iter().all(|t| current.contains(t)) {
            return Ok(());
        }
        let mut tags = current.to_vec();
        tags.extend(add.iter().filter(|t| !current.contains(t)).cloned());
        api.replace_tags(id, &tags).await.map(|_| ())
    }

    /// Remove tags from a resource in one request (a no-op when it has none of them).
    pub(crate) async fn remove_tags<R: Taggable>(
        &self,
        api: Api<R>,
        id: &str,
        current: &[String],
        remove: &[String],
    ) -> kuryr_openstack::Result<()> {
        if !current.iter().any(|t| remove.contains(t)) {
            return Ok(());
        }
        let tags: Vec<String> = current
            .iter()
            .filter(|t| !remove.contains(t))
            .cloned()
            .collect();
        api.replace_tags(id, &tags).await.map(|_| ())
    }
}

/// What Neutron now has after tagging `port` with `tags` (see [`Driver::add_tags`]).
pub(crate) fn with_tags(port: &mut Port, tags: Vec<String>) {
    for tag in tags {
        if !port.tags.contains(&tag) {
            port.tags.push(tag);
        }
    }
}

/// Whether two CIDR strings are the same network (`fd00::/64` vs `fd00:0::/64`).
pub(crate) fn same_cidr(a: &str, b: &str) -> bool {
    match (a.parse::<IpNet>(), b.parse::<IpNet>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether a port is one kuryr's IPAM created and no endpoint has adopted yet.
pub(crate) fn is_unbound_kuryr_port(port: &Port) -> bool {
    port.tags.iter().any(|t| t == mapping::DEVICE_OWNER)
        && port.name == mapping::UNBOUND_PORT_NAME
        && port.device_id.is_empty()
}
